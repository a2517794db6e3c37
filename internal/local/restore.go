package local

import (
	"fmt"

	"github.com/etcdkit/etcdkit/internal/snapshot"
)

// RestoreOptions configures Restore (`etcdkit up --restore FILE`).
type RestoreOptions struct {
	// Snapshot is the snapshot file to bring the cluster back from.
	Snapshot string
	// Fresh deletes the cluster in the directory first (new PKI); without
	// it an existing cluster keeps its certificates and gets its data
	// replaced.
	Fresh bool
	// Create makes the cluster when the directory has none.
	Create CreateOptions
	// RevisionBump is snapshot.RestoreOptions.RevisionBump.
	RevisionBump uint64
}

// Restore replaces the data of every member of the local cluster in d with
// a snapshot, creating the cluster first when there is none. Existing data
// dirs are moved aside (renamed with a timestamp), never deleted. The
// members are not started: Up does that next.
func (d Dir) Restore(o RestoreOptions) (*snapshot.RestoreResult, error) {
	// Check the snapshot before anything in the directory changes.
	verified, err := snapshot.Verify(o.Snapshot, snapshot.VerifyOptions{})
	if err != nil {
		return nil, err
	}
	unlock, err := d.Lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if o.Fresh {
		if err := d.Reset(); err != nil {
			return nil, err
		}
	}
	if !d.Exists() {
		if o.Create.Members == 0 {
			o.Create.Members = DefaultMembers
		}
		if _, err := d.Create(o.Create); err != nil {
			return nil, err
		}
	}
	c, err := d.Load()
	if err != nil {
		return nil, err
	}
	if n := o.Create.Members; n != 0 && n != len(c.Members) {
		return nil, fmt.Errorf("%s holds a %d-member cluster; restore into it without --members, or add --fresh to start over with %d members", d, len(c.Members), n)
	}
	var names []string
	for _, m := range c.Members {
		names = append(names, m.Name)
	}
	return snapshot.Restore(snapshot.RestoreOptions{
		Snapshot:     o.Snapshot,
		Cluster:      c,
		Members:      names,
		RevisionBump: o.RevisionBump,
		MoveAside:    true,
		Verified:     verified,
	})
}
