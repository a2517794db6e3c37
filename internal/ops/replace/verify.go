package replace

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/etcdkit/etcdkit/internal/ops"
)

// verifyPhase waits until every member is healthy, checks the member list
// is what the replacement meant, and computes kube-apiserver's new
// --etcd-servers.
type verifyPhase struct{}

func (verifyPhase) Name() string  { return "verify" }
func (verifyPhase) Title() string { return "verify health; print the new --etcd-servers" }

func (verifyPhase) Needed(*run) bool { return true }

func (verifyPhase) Action(*run) string {
	return "wait until every member is healthy"
}

func (verifyPhase) Run(ctx context.Context, r *run) error {
	t := *r.o.Target
	t.Endpoints = r.ms.ClientURLs()
	wctx, cancel := context.WithTimeout(ctx, r.o.VerifyTimeout)
	defer cancel()
	if _, err := ops.WaitHealthy(wctx, &t, 500*time.Millisecond); err != nil {
		return fmt.Errorf("%w: %w", ops.ErrUnhealthy, err)
	}
	if err := r.refresh(ctx); err != nil {
		return err
	}
	switch {
	case r.old != nil:
		return fmt.Errorf("%s is still a member", r.old.Label())
	case r.new == nil:
		return fmt.Errorf("%q is not a member", r.o.New.Name)
	case r.new.Learner || !r.new.Started:
		return errors.New(r.new.Label() + " is not a started voting member")
	}
	r.etcdServers = strings.Join(r.ms.ClientURLs(), ",")
	r.st.Completed = true
	return nil
}
