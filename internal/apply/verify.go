package apply

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/etcdkit/etcdkit/internal/ops"
)

// verifyPhase checks the cluster is what the spec says: every spec member
// a started, healthy voting member, no member the spec does not have
// (when removals were allowed), a quorum healthy. It waits for that up
// to the timeout, as health settles after changes.
type verifyPhase struct{}

func (verifyPhase) Title() string { return "Verify" }

func (verifyPhase) ShouldRun(r *run) bool { return !r.o.DryRun }

func (verifyPhase) Run(ctx context.Context, r *run) error {
	if err := r.ownCredentials(); err != nil {
		return err
	}
	deadline := time.Now().Add(r.o.Timeout)
	for {
		ms, err := ops.ListMembers(ctx, r.specTarget())
		if err == nil {
			if err = r.matchesSpec(ms); err == nil {
				r.final = ms
				r.note(nil, "cluster %s: %d voting members, all healthy, as the spec says", ms.ClusterID, len(ms.Members))
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %w", ops.ErrUnhealthy, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// matchesSpec says how the member list differs from the spec.
func (r *run) matchesSpec(ms *ops.Membership) error {
	var errs []error
	for _, h := range r.hosts {
		m := ms.ByPeerURL(h.m.PeerURL)
		switch {
		case m == nil:
			errs = append(errs, h.errorf("no member has peer URL %s", h.m.PeerURL))
		case !m.Started || m.Learner:
			errs = append(errs, h.errorf("%s is not a started voting member", m.Label()))
		case !m.Healthy:
			errs = append(errs, h.errorf("%s is not healthy: %s", m.Label(), m.Error))
		}
	}
	if r.o.AllowRemove {
		for _, m := range extraMembers(r.hosts, ms) {
			errs = append(errs, fmt.Errorf("%s is still a member", m.Label()))
		}
	}
	return errors.Join(errs...)
}
