package replace

import (
	"context"
	"fmt"

	"github.com/etcdkit/etcdkit/internal/ops"
)

// addPhase adds the new member as a learner: it gets the data without a
// vote, and counts against the quorum only once promoted.
type addPhase struct{}

func (addPhase) Name() string  { return "add" }
func (addPhase) Title() string { return "add the new member as a learner" }

func (addPhase) Needed(r *run) bool { return r.new == nil }

func (addPhase) Action(r *run) string {
	if r.new != nil {
		return fmt.Sprintf("added: id %s", r.new.ID)
	}
	return fmt.Sprintf("add %q with peer URL %s as a learner", r.o.New.Name, r.o.New.PeerURL)
}

func (addPhase) Run(ctx context.Context, r *run) error {
	m, _, err := ops.AddMember(ctx, r.o.Target, r.ms, []string{r.o.New.PeerURL}, false, r.o.ChangeTimeout)
	if err != nil {
		return fmt.Errorf("add %q (%s): %w", r.o.New.Name, r.o.New.PeerURL, err)
	}
	r.st.NewID = m.ID
	r.say("added %q as learner %s", r.o.New.Name, m.ID)
	return nil
}
