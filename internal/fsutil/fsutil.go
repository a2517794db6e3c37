// Package fsutil holds the file-writing rules every etcdkit command follows:
// files are written atomically (temp file, fsync, rename, fsync of the
// directory), private material is 0600 and directories are 0700, so a failed
// or interrupted command never leaves a half-written file behind.
package fsutil

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

const (
	// PrivateFile is the mode of keys, tokens and anything else secret.
	PrivateFile fs.FileMode = 0o600
	// PublicFile is the mode of certificates and configuration.
	PublicFile fs.FileMode = 0o644
	// PrivateDir is the mode of every directory etcdkit creates.
	PrivateDir fs.FileMode = 0o700
)

// WriteFile writes data to path atomically with the given mode. The parent
// directory is created 0700 when missing. On any error the target is left as
// it was and no temporary file remains.
func WriteFile(path string, data []byte, mode fs.FileMode) error {
	return WriteFrom(path, mode, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFrom is WriteFile for content produced by a function, so large
// content (snapshots) can be streamed.
func WriteFrom(path string, mode fs.FileMode, produce func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	if err := MkdirAll(dir); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	// CreateTemp makes 0600; chmod before any byte is written so secret
	// content is never visible with a wider mode.
	if err = tmp.Chmod(mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = produce(tmp); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: fsync: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(dir)
}

// MkdirAll creates dir and its parents with mode 0700. Existing directories
// keep their mode.
func MkdirAll(dir string) error {
	if err := os.MkdirAll(dir, PrivateDir); err != nil {
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	return nil
}

// SyncDir fsyncs a directory so a rename inside it survives a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// Exists reports whether path exists. Errors other than "not found" count as
// existing so callers refuse rather than overwrite.
func Exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil || !errors.Is(err, fs.ErrNotExist)
}

// DirEmpty reports whether dir is missing or has no entries.
func DirEmpty(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return len(entries) == 0, nil
}

// Txn stages several files and commits them together: each is written to a
// temp file first, and only when every one is staged are they renamed into
// place. If staging fails nothing is renamed; it is the closest a POSIX file
// system gets to writing a set of files atomically.
type Txn struct {
	staged []staged
}

type staged struct{ tmp, path string }

// Add stages one file.
func (t *Txn) Add(path string, data []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := MkdirAll(dir); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	name := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	t.staged = append(t.staged, staged{tmp: name, path: path})
	return nil
}

// Commit renames every staged file into place.
func (t *Txn) Commit() error {
	dirs := map[string]bool{}
	for i, s := range t.staged {
		if err := os.Rename(s.tmp, s.path); err != nil {
			t.staged = t.staged[i:]
			t.Abort()
			return fmt.Errorf("write %s: %w", s.path, err)
		}
		dirs[filepath.Dir(s.path)] = true
	}
	t.staged = nil
	for d := range dirs {
		if err := SyncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// Abort removes every staged temp file. Safe to call after Commit.
func (t *Txn) Abort() {
	for _, s := range t.staged {
		os.Remove(s.tmp)
	}
	t.staged = nil
}
