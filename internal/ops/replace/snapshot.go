package replace

import (
	"context"
	"fmt"
)

// snapshotPhase takes a snapshot before the first change, once: the
// state file keeps its path so a re-run does not take another.
type snapshotPhase struct{}

func (snapshotPhase) Name() string  { return "snapshot" }
func (snapshotPhase) Title() string { return "take a snapshot" }

func (snapshotPhase) Needed(r *run) bool { return r.o.Backup != nil && r.st.Snapshot == "" }

func (snapshotPhase) Action(r *run) string {
	switch {
	case r.o.Backup == nil:
		return "skipped (no snapshot asked for)"
	case r.st.Snapshot != "":
		return "taken: " + r.st.Snapshot
	}
	return "save a verified snapshot into " + r.o.StateDir
}

func (snapshotPhase) Run(ctx context.Context, r *run) error {
	reason := "before member add " + r.o.New.Name
	if r.o.Old != "" {
		reason = fmt.Sprintf("before member replace %s with %s", r.st.Old.Ref(), r.o.New.Name)
	}
	path, err := r.o.Backup(ctx, reason)
	if err != nil {
		return fmt.Errorf("%w (nothing was changed)", err)
	}
	r.st.Snapshot = path
	r.say("saved %s", path)
	return nil
}
