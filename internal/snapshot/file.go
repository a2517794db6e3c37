package snapshot

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	etcdutlsnap "go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.etcd.io/etcd/server/v3/storage/backend"
	"go.etcd.io/etcd/server/v3/storage/schema"
	"go.uber.org/zap"

	"github.com/etcdkit/etcdkit/internal/fsutil"
)

// ErrInvalid is wrapped by every error that says a file is not a usable
// snapshot: truncated, corrupted, or not an etcd database at all.
var ErrInvalid = errors.New("not a valid etcd snapshot")

// FileStatus is what a snapshot file holds, read from the file itself.
type FileStatus struct {
	Path string `json:"path"`
	// Size is the file's size in bytes, embedded hash included.
	Size int64 `json:"size"`
	// SHA256 is the sha256 of the whole file, as `sha256sum` prints it.
	SHA256 string `json:"sha256"`
	// HasHash says the file ends with the sha256 of its database, as
	// every snapshot streamed from a member (etcdctl's or etcdkit's) does;
	// a db file copied out of a data dir has none.
	HasHash bool `json:"hasHash"`
	// Revision, TotalKeys, Hash and StorageVersion are etcdutl's
	// `snapshot status` values.
	Revision       int64  `json:"revision"`
	TotalKeys      int    `json:"totalKeys"`
	Hash           uint32 `json:"hash"`
	StorageVersion string `json:"storageVersion,omitempty"`
}

// VerifyOptions tunes Verify.
type VerifyOptions struct {
	// SkipHashCheck accepts a file without an embedded sha256 (a db file
	// copied from a data dir). A file whose embedded hash does not match
	// is refused all the same.
	SkipHashCheck bool
}

// hasChecksum is etcd's rule: a streamed snapshot is a database (whole
// 512-byte blocks) followed by its 32-byte sha256.
func hasChecksum(n int64) bool { return n%512 == sha256.Size }

// Verify checks a snapshot file completely: the embedded sha256 matches the
// database, the database passes bbolt's consistency check, and, when
// there is a sidecar, the file is the one the sidecar describes. It reads
// the whole file.
func Verify(path string, o VerifyOptions) (*FileStatus, error) {
	st, err := readStatus(path, !o.SkipHashCheck)
	if err != nil {
		return nil, err
	}
	side, err := ReadSidecar(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return st, err
	}
	if side != nil && side.SHA256 != "" && (side.SHA256 != st.SHA256 || side.Size != st.Size) {
		return st, fmt.Errorf("snapshot %s: %w: it does not match its sidecar %s (size %d, sha256 %.12s... there; size %d, sha256 %.12s... now): the file changed after it was saved",
			path, ErrInvalid, SidecarPath(path), side.Size, side.SHA256, st.Size, st.SHA256)
	}
	return st, nil
}

// Status reads a snapshot file's revision, key count and hashes, like
// `etcdutl snapshot status`. A file with a mismatched embedded hash is an
// error; one with no embedded hash (a db copy) is read and reported with
// HasHash false.
func Status(path string) (*FileStatus, error) {
	return readStatus(path, false)
}

func readStatus(path string, requireHash bool) (*FileStatus, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("snapshot %s is a directory, not a snapshot file", path)
	}
	if err := checkNotLocked(path); err != nil {
		return nil, err
	}
	st := &FileStatus{Path: path, Size: fi.Size()}
	if st.Size < 2*sha256.Size {
		return nil, fmt.Errorf("snapshot %s: %w: the file has only %d bytes (truncated or empty)", path, ErrInvalid, st.Size)
	}
	st.HasHash = hasChecksum(st.Size)
	full, embeddedOK, err := hashFile(path, st.Size, st.HasHash)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", path, err)
	}
	st.SHA256 = full
	switch {
	case st.HasHash && !embeddedOK:
		return nil, fmt.Errorf("snapshot %s: %w: its embedded sha256 does not match its content, so the file is corrupted; use another snapshot", path, ErrInvalid)
	case !st.HasHash && requireHash:
		return nil, fmt.Errorf("snapshot %s: %w: it has no embedded sha256 (its size, %d bytes, is not whole 512-byte blocks plus 32): the file is truncated, or it is a db file copied from a data dir (only then pass --skip-hash-check)", path, ErrInvalid, st.Size)
	}
	dbSize := st.Size
	if st.HasHash {
		dbSize -= sha256.Size
	}
	es, err := boltStatus(path, dbSize)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w: %v", path, ErrInvalid, err)
	}
	st.Revision, st.TotalKeys, st.Hash, st.StorageVersion = es.Revision, es.TotalKey, es.Hash, es.Version
	return st, nil
}

// hashFile returns the sha256 of the whole file and, when it has an
// embedded hash, whether that hash matches the rest, in one read.
func hashFile(path string, size int64, hasHash bool) (string, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	whole, body := sha256.New(), sha256.New()
	bodyLen := size
	if hasHash {
		bodyLen = size - sha256.Size
	}
	if _, err := io.CopyN(io.MultiWriter(whole, body), f, bodyLen); err != nil {
		return "", false, fmt.Errorf("read: %w", err)
	}
	if !hasHash {
		return hex.EncodeToString(whole.Sum(nil)), false, nil
	}
	trailer := make([]byte, sha256.Size)
	if _, err := io.ReadFull(f, trailer); err != nil {
		return "", false, fmt.Errorf("read: %w", err)
	}
	whole.Write(trailer)
	return hex.EncodeToString(whole.Sum(nil)), bytes.Equal(body.Sum(nil), trailer), nil
}

// boltStatus runs etcdutl's status (bbolt's consistency check, revision,
// keys). bbolt reads the file through mmap, and some of its checks run in
// goroutines of its own where a damaged file would crash the process with
// a fault or a panic. So the file is probed first, in a goroutine that
// turns faults and panics into errors: its size must hold every page the
// database says it has, and every key and value must be readable.
func boltStatus(path string, dbSize int64) (st etcdutlsnap.Status, err error) {
	if err := probeDB(path, dbSize); err != nil {
		return st, err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the database is damaged (%v)", r)
		}
	}()
	return etcdutlsnap.NewV3(zap.NewNop()).Status(path)
}

func probeDB(path string, dbSize int64) (err error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("the database is damaged (%v)", r)
			}
		}()
		debug.SetPanicOnFault(true)
		db, oerr := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: time.Second})
		if oerr != nil {
			err = fmt.Errorf("not an etcd database: %w", oerr)
			return
		}
		defer db.Close()
		err = db.View(func(tx *bolt.Tx) error {
			if need := tx.Size(); need > dbSize {
				return fmt.Errorf("the database is truncated: it needs %d bytes and has %d", need, dbSize)
			}
			for _, b := range []backend.Bucket{schema.Key, schema.Meta} {
				if tx.Bucket(b.Name()) == nil {
					return fmt.Errorf("not an etcd database: it has no %q bucket", b.String())
				}
			}
			return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
				return b.ForEach(func(_, _ []byte) error { return nil })
			})
		})
	}()
	<-done
	return err
}

// checkNotLocked refuses a database file a running member holds: bbolt
// would wait for the lock forever.
func checkNotLocked(path string) error {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("snapshot: %w", &os.PathError{Op: "open", Path: path, Err: err})
	}
	defer syscall.Close(fd)
	err = syscall.Flock(fd, syscall.LOCK_SH|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return fmt.Errorf("%s is in use by a running etcd member; copy it with `etcdkit snapshot save` instead", path)
	}
	if err == nil {
		_ = syscall.Flock(fd, syscall.LOCK_UN)
	}
	return nil
}

// SidecarPath is where the JSON description of a snapshot lives.
func SidecarPath(snapshot string) string { return snapshot + ".json" }

// ReadSidecar reads a snapshot's sidecar; the error wraps os.ErrNotExist
// when there is none.
func ReadSidecar(snapshot string) (*Info, error) {
	b, err := os.ReadFile(SidecarPath(snapshot))
	if err != nil {
		return nil, err
	}
	var info Info
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Errorf("sidecar %s: not valid JSON: %w", SidecarPath(snapshot), err)
	}
	info.Path = snapshot
	return &info, nil
}

func writeSidecar(info *Info) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFile(SidecarPath(info.Path), append(b, '\n'), fsutil.PublicFile)
}
