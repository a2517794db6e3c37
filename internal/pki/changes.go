package pki

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/etcdkit/etcdkit/internal/fsutil"
)

// changes is a set of file writes and removals that a PKI command applies
// together. Every new content is staged in a temp file beside its target
// first; only when all are staged are they renamed into place. If a rename
// or removal fails part-way, the files already changed get their previous
// content back and directories this set created are removed, so a failed
// command leaves the tree as it found it. (fsutil.Txn stages the same way
// but cannot undo renames already done.)
type changes struct {
	writes  []fileWrite
	removes []string
}

type fileWrite struct {
	path string
	data []byte
	mode fs.FileMode
}

// write stages content for path.
func (c *changes) write(path string, data []byte, mode fs.FileMode) {
	for i := range c.writes {
		if c.writes[i].path == path {
			c.writes[i] = fileWrite{path, data, mode}
			return
		}
	}
	c.writes = append(c.writes, fileWrite{path, data, mode})
}

// backup stages a copy of path's current content as path.bak-STAMP and
// returns that name, or "" when path does not exist.
func (c *changes) backup(path, stamp string) (string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	name := path + ".bak-" + stamp
	c.write(name, data, fi.Mode().Perm())
	return name, nil
}

// remove stages the removal of path (nothing when it does not exist).
func (c *changes) remove(path string) { c.removes = append(c.removes, path) }

// empty reports whether nothing is staged.
func (c *changes) empty() bool { return len(c.writes) == 0 && len(c.removes) == 0 }

// rename is os.Rename; tests make it fail part-way.
var rename = os.Rename

// previous is a file's state before apply, to put it back.
type previous struct {
	path   string
	exists bool
	data   []byte
	mode   fs.FileMode
}

func readPrevious(path string) (previous, error) {
	p := previous{path: path}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, err
	}
	if fi.IsDir() {
		return p, fmt.Errorf("write %s: it is a directory", path)
	}
	p.exists, p.mode = true, fi.Mode().Perm()
	p.data, err = os.ReadFile(path)
	return p, err
}

func (p previous) restore() {
	if !p.exists {
		os.Remove(p.path)
		return
	}
	_ = fsutil.WriteFile(p.path, p.data, p.mode)
}

// apply makes every staged change or none.
func (c *changes) apply() (err error) {
	var (
		created []string // directories made here, removed on failure
		temps   []string
		done    []previous
	)
	defer func() {
		if err == nil {
			return
		}
		for _, t := range temps {
			os.Remove(t)
		}
		for i := len(done) - 1; i >= 0; i-- {
			done[i].restore()
		}
		for i := len(created) - 1; i >= 0; i-- {
			os.RemoveAll(created[i])
		}
	}()
	staged := make([]string, len(c.writes))
	for i, w := range c.writes {
		dir := filepath.Dir(w.path)
		first, err := firstMissing(dir)
		if err != nil {
			return err
		}
		if err := fsutil.MkdirAll(dir); err != nil {
			return err
		}
		if first != "" {
			created = append(created, first)
		}
		if staged[i], err = stage(w); err != nil {
			return err
		}
		temps = append(temps, staged[i])
	}
	prevs := make([]previous, 0, len(c.writes)+len(c.removes))
	for _, w := range c.writes {
		p, err := readPrevious(w.path)
		if err != nil {
			return err
		}
		prevs = append(prevs, p)
	}
	for _, r := range c.removes {
		p, err := readPrevious(r)
		if err != nil {
			return err
		}
		prevs = append(prevs, p)
	}
	dirs := map[string]bool{}
	for i, w := range c.writes {
		if err := rename(staged[i], w.path); err != nil {
			return fmt.Errorf("write %s: %w", w.path, err)
		}
		done = append(done, prevs[i])
		dirs[filepath.Dir(w.path)] = true
	}
	temps = nil
	for i, r := range c.removes {
		if err := os.Remove(r); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", r, err)
		}
		done = append(done, prevs[len(c.writes)+i])
		dirs[filepath.Dir(r)] = true
	}
	for d := range dirs {
		if err := fsutil.SyncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// stage writes one file's content to a synced temp file beside it.
func stage(w fileWrite) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(w.path), "."+filepath.Base(w.path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", w.path, err)
	}
	name := f.Name()
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(name)
		return "", fmt.Errorf("write %s: %w", w.path, err)
	}
	// Chmod before writing, so a key is never readable with a wider mode.
	if err := f.Chmod(w.mode); err != nil {
		return fail(err)
	}
	if _, err := f.Write(w.data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(name)
		return "", fmt.Errorf("write %s: %w", w.path, err)
	}
	return name, nil
}

// firstMissing is the outermost directory of dir that does not exist yet,
// or "" when dir exists.
func firstMissing(dir string) (string, error) {
	missing := ""
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return "", fmt.Errorf("create directory %s: %s is not a directory", dir, d)
			}
			return missing, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("create directory %s: %w", dir, err)
		}
		missing = d
		if filepath.Dir(d) == d {
			return missing, nil
		}
	}
}

// Stamp is the suffix of backup files: the UTC time to the second, so two
// renewals on one day keep both originals.
func Stamp(now time.Time) string { return now.UTC().Format("20060102-150405") }
