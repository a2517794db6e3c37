package replace

import (
	"context"
	"fmt"
	"time"

	"github.com/etcdkit/etcdkit/internal/ops"
)

// startPhase waits for the new member to start: the operator starts it on
// its host, or `etcdkit up` does. A member has started once it has
// published its name to the cluster.
type startPhase struct{}

func (startPhase) Name() string  { return "start" }
func (startPhase) Title() string { return "wait for the new member to start" }

func (startPhase) Needed(r *run) bool { return r.new == nil || !r.new.Started }

func (startPhase) Action(r *run) string {
	if r.new != nil && r.new.Started {
		return "started"
	}
	return "wait for it to start: " + r.o.Host.StartHint()
}

func (startPhase) Run(ctx context.Context, r *run) error {
	r.say("waiting up to %v for %q to start: %s", r.o.StartTimeout, r.o.New.Name, r.o.Host.StartHint())
	deadline := time.Now().Add(r.o.StartTimeout)
	for {
		ms, err := ops.MemberList(ctx, r.o.Target)
		if err == nil {
			if n := ms.ByPeerURL(r.o.New.PeerURL); n != nil && n.Started {
				r.say("%s started", n.Label())
				return nil
			}
		}
		ops.Nudge(ctx, r.o.Target)
		if time.Now().After(deadline) {
			return fmt.Errorf("%q did not start within %v; start it (%s)", r.o.New.Name, r.o.StartTimeout, r.o.Host.StartHint())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(ops.PollInterval):
		}
	}
}
