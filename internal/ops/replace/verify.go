package replace

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/etcdkit/etcdkit/internal/ops"
)

// verifyPhase waits until the new member is a healthy voter and a quorum
// of voters is healthy, checks the member list is what the replacement
// meant, and computes kube-apiserver's new --etcd-servers. A member that
// is still down (another failure, replaced next) is reported, not waited
// for.
type verifyPhase struct{}

func (verifyPhase) Name() string  { return "verify" }
func (verifyPhase) Title() string { return "verify health; print the new --etcd-servers" }

func (verifyPhase) Needed(*run) bool { return true }

func (verifyPhase) Action(*run) string {
	return "wait until the new member and a quorum are healthy"
}

func (verifyPhase) Run(ctx context.Context, r *run) error {
	deadline := time.Now().Add(r.o.VerifyTimeout)
	for {
		err := r.verified()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %w", ops.ErrUnhealthy, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(ops.PollInterval):
		}
		if err := r.refresh(ctx); err != nil {
			return err
		}
	}
	r.etcdServers = strings.Join(r.ms.ClientURLs(), ",")
	r.unhealthy = nil
	for _, m := range r.ms.Members {
		if !m.Healthy {
			r.unhealthy = append(r.unhealthy, fmt.Sprintf("%s: %s", m.Label(), m.Error))
			r.say("%s is not healthy: %s", m.Label(), m.Error)
		}
	}
	r.st.Completed = true
	return nil
}

// verified says what is still wrong with the member list.
func (r *run) verified() error {
	switch {
	case r.old != nil:
		return fmt.Errorf("%s is still a member", r.old.Label())
	case r.new == nil:
		return fmt.Errorf("%q is not a member", r.o.New.Name)
	case r.new.Learner || !r.new.Started:
		return fmt.Errorf("%s is not a started voting member", r.new.Label())
	case !r.new.Healthy:
		return fmt.Errorf("%s is not healthy: %s", r.new.Label(), r.new.Error)
	}
	voters, healthy := 0, 0
	for _, m := range r.ms.Members {
		if !m.Learner {
			voters++
			if m.Healthy {
				healthy++
			}
		}
	}
	if healthy < ops.Quorum(voters) {
		return fmt.Errorf("only %d of %d voting members are healthy", healthy, voters)
	}
	return nil
}
