package replace

import (
	"context"
	"fmt"

	"github.com/etcdkit/etcdkit/internal/ops"
)

// configPhase writes the new member's config, with initial-cluster from
// the live member list and initial-cluster-state existing, and its
// certificates when a CA is at hand. Once the member has started its
// files are in use and are left alone.
type configPhase struct{}

func (configPhase) Name() string  { return "config" }
func (configPhase) Title() string { return "write the new member's config and certificates" }

func (configPhase) Needed(r *run) bool {
	return r.new == nil || (!r.new.Started && !r.st.done("config"))
}

func (configPhase) Action(r *run) string {
	if r.new != nil && r.new.Started {
		return "written (the new member runs)"
	}
	if r.st.done("config") {
		return "written"
	}
	return fmt.Sprintf("write %q's etcd config (initial-cluster-state: existing)", r.o.New.Name)
}

func (configPhase) Run(ctx context.Context, r *run) error {
	initial := ops.InitialCluster(r.ms, r.new, r.o.New.Name)
	w, err := r.o.Host.Write(ctx, initial, r.st.Old)
	if err != nil {
		return err
	}
	r.o.Observer.Wrote(w)
	return nil
}
