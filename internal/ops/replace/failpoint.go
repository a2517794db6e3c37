package replace

import (
	"context"
	"fmt"
	"os"
)

// FailpointEnv names the test-only failpoints of a replacement. They
// exist so the robustness suite (test/robustness) can prove it catches a
// deliberately broken replacement; the variable is set only in the
// processes of that test, and unset (always, outside it) changes nothing.
const FailpointEnv = "ETCDKIT_TEST_FAILPOINT"

// FailpointSkipCatchUp breaks the replacement the way a hasty one is
// broken: the new learner is promoted as soon as it is added, once, with
// no wait for it to start and catch up and no retry. etcd refuses such a
// promotion (the learner has none of the leader's log), so the
// replacement stops half-way: the old member removed, the new one an
// unstarted learner, one voter fewer than before.
const FailpointSkipCatchUp = "replace-skip-catch-up"

func failpoint(name string) bool { return os.Getenv(FailpointEnv) == name }

// hastyPromotePhase is FailpointSkipCatchUp's extra step, right after the
// add.
type hastyPromotePhase struct{}

func (hastyPromotePhase) Name() string { return "promote-at-once" }
func (hastyPromotePhase) Title() string {
	return fmt.Sprintf("promote the new member at once (test failpoint %s=%s)", FailpointEnv, FailpointSkipCatchUp)
}

func (hastyPromotePhase) Needed(r *run) bool { return r.new == nil || r.new.Learner }

func (hastyPromotePhase) Action(*run) string {
	return "promote it without waiting for it to start and catch up, and without retrying"
}

func (hastyPromotePhase) Run(ctx context.Context, r *run) error {
	if r.new == nil {
		return fmt.Errorf("%q is not a member", r.o.New.Name)
	}
	cli, err := r.o.Target.Client()
	if err != nil {
		return err
	}
	defer cli.Close()
	cctx, cancel := r.o.Target.Ctx(ctx)
	defer cancel()
	if _, err := cli.MemberPromote(cctx, r.new.RawID()); err != nil {
		return fmt.Errorf("promote %s: %w", r.new.Label(), err)
	}
	return nil
}
