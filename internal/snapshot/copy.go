package snapshot

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/etcdkit/etcdkit/internal/fsutil"
)

// copyTree copies the directory src to dst (which must not exist): into a
// staging directory beside dst first, every file fsynced, then renamed, so
// dst is either a complete copy or absent.
func copyTree(src, dst string) (err error) {
	if fsutil.Exists(dst) {
		return fmt.Errorf("copy %s: %s already exists", src, dst)
	}
	parent := filepath.Dir(dst)
	if err := fsutil.MkdirAll(parent); err != nil {
		return err
	}
	staging, err := os.MkdirTemp(parent, "."+filepath.Base(dst)+".copying-")
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(staging)
		}
	}()
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(staging, rel)
		switch {
		case d.IsDir():
			if rel == "." {
				return nil
			}
			return os.Mkdir(to, fsutil.PrivateDir)
		case d.Type().IsRegular():
			return copyFile(p, to)
		}
		return nil // etcd keeps only directories and files
	})
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err = os.Rename(staging, dst); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return fsutil.SyncDir(parent)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fsutil.PrivateFile)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
