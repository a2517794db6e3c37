package replace

import (
	"context"
	"fmt"

	"github.com/etcdkit/etcdkit/internal/ops"
)

// removePhase removes the old member, handing leadership away first if
// it leads (a forced replacement of a healthy member), so clients see no
// election.
type removePhase struct{}

func (removePhase) Name() string  { return "remove" }
func (removePhase) Title() string { return "remove the old member" }

func (removePhase) Needed(r *run) bool { return r.old != nil }

func (removePhase) Action(r *run) string {
	if r.old == nil {
		return fmt.Sprintf("removed: member %q", r.st.Old.Ref())
	}
	if r.old.Leader {
		return fmt.Sprintf("move leadership away from %s, then remove it", r.old.Label())
	}
	return fmt.Sprintf("remove %s", r.old.Label())
}

func (removePhase) Run(ctx context.Context, r *run) error {
	if r.old.Leader {
		to, err := ops.MoveLeader(ctx, r.o.Target, r.ms, r.old, r.o.ChangeTimeout)
		if err != nil {
			return err
		}
		r.say("leadership moved to %s", to.Label())
	}
	if err := ops.RemoveMember(ctx, r.o.Target, r.ms, r.old, r.o.ChangeTimeout); err != nil {
		return err
	}
	r.say("removed %s (id %s)", r.old.Label(), r.old.ID)
	return nil
}
