package replace

import (
	"context"

	"github.com/etcdkit/etcdkit/internal/ops"
)

// promotePhase waits for the new learner to catch up with the leader and
// promotes it; etcd refuses earlier (90% of the leader's log).
type promotePhase struct{}

func (promotePhase) Name() string  { return "promote" }
func (promotePhase) Title() string { return "wait for the new member to catch up, and promote it" }

func (promotePhase) Needed(r *run) bool { return r.new == nil || r.new.Learner }

func (promotePhase) Action(r *run) string {
	if r.new != nil && !r.new.Learner {
		return "promoted: a voting member"
	}
	return "promote it once it has caught up with the leader"
}

func (promotePhase) Run(ctx context.Context, r *run) error {
	_, err := ops.Promote(ctx, r.o.Target, r.new.ID, ops.PromoteOptions{
		Wait: true, Timeout: r.o.CatchUpTimeout, CatchUp: r.o.Observer.CatchUp,
	})
	if err != nil {
		return err
	}
	r.say("%q is a voting member", r.o.New.Name)
	return nil
}
