package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/etcdkit/etcdkit/internal/fsutil"
)

// Entry is one snapshot file in a directory.
type Entry struct {
	Info
	// Managed is true for snapshots etcdkit saved (they have a sidecar).
	// Only those are ever pruned; other .db files are listed, not touched.
	Managed bool `json:"managed"`
}

// List returns the snapshots (*.db files) in dir, newest first. A snapshot
// with a sidecar is described by it; any other .db file (etcdctl's, a
// copy) by its size and modification time.
func List(dir string) ([]Entry, error) {
	files, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var out []Entry
	for _, f := range files {
		if f.IsDir() || !strings.HasSuffix(f.Name(), ".db") {
			continue
		}
		path := filepath.Join(dir, f.Name())
		if side, err := ReadSidecar(path); err == nil {
			out = append(out, Entry{Info: *side, Managed: true})
			continue
		}
		fi, err := f.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, Entry{Info: Info{Path: path, Created: fi.ModTime().UTC(), Size: fi.Size()}})
	}
	slices.SortStableFunc(out, func(a, b Entry) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(b.Path, a.Path)
	})
	return out, nil
}

// PruneOptions says which snapshots to keep.
type PruneOptions struct {
	// Keep is how many of the newest snapshots to keep.
	Keep int
	// KeepDaily keeps the newest snapshot of each of the last KeepDaily
	// days (UTC) that have one, beyond Keep.
	KeepDaily int
	// DryRun reports what would be deleted and deletes nothing.
	DryRun bool
}

// Kept is a snapshot prune keeps, and why.
type Kept struct {
	Entry
	Why []string `json:"why"`
}

// PruneResult is what Prune kept and deleted (or would delete).
type PruneResult struct {
	Kept    []Kept  `json:"kept"`
	Deleted []Entry `json:"deleted"`
	// Unmanaged are .db files without a sidecar, which prune never touches.
	Unmanaged []Entry `json:"unmanaged,omitempty"`
	DryRun    bool    `json:"dryRun,omitempty"`
}

// Prune deletes the snapshots etcdkit saved in dir beyond the retention,
// with their sidecars. The newest snapshot that passes verification is
// always kept, whatever the retention says.
func Prune(dir string, o PruneOptions) (*PruneResult, error) {
	if o.Keep < 0 || o.KeepDaily < 0 || o.Keep+o.KeepDaily == 0 {
		return nil, fmt.Errorf("prune needs --keep N (N >= 1) or --keep-daily N")
	}
	entries, err := List(dir)
	if err != nil {
		return nil, err
	}
	res := &PruneResult{DryRun: o.DryRun}
	var managed []Entry
	for _, e := range entries {
		if e.Managed {
			managed = append(managed, e)
		} else {
			res.Unmanaged = append(res.Unmanaged, e)
		}
	}
	why := map[string][]string{}
	for i, e := range managed {
		if i < o.Keep {
			why[e.Path] = append(why[e.Path], fmt.Sprintf("newest %d", o.Keep))
		}
	}
	days := map[string]bool{}
	for _, e := range managed {
		day := e.Created.UTC().Format(time.DateOnly)
		if days[day] || len(days) >= o.KeepDaily {
			continue
		}
		days[day] = true
		why[e.Path] = append(why[e.Path], "newest of "+day)
	}
	// Retention counts files, not good files: make sure one snapshot that
	// verifies now survives even if every newer one is damaged.
	for _, e := range managed {
		if _, err := Verify(e.Path, VerifyOptions{}); err == nil {
			why[e.Path] = append(why[e.Path], "newest verified")
			break
		}
	}
	var errs []error
	for _, e := range managed {
		if len(why[e.Path]) > 0 {
			res.Kept = append(res.Kept, Kept{Entry: e, Why: why[e.Path]})
			continue
		}
		if !o.DryRun {
			if err := remove(e.Path); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		res.Deleted = append(res.Deleted, e)
	}
	if !o.DryRun && len(res.Deleted) > 0 {
		if err := fsutil.SyncDir(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return res, errors.Join(errs...)
}

// remove deletes a snapshot, then its sidecar: a crash in between leaves
// an orphan sidecar, which nothing lists, never a snapshot without one that
// retention would then stop managing.
func remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Remove(SidecarPath(path)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
