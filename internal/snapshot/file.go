package snapshot

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	etcdutlsnap "go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.etcd.io/etcd/server/v3/storage/backend"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
	"go.etcd.io/etcd/server/v3/storage/schema"
	"google.golang.org/protobuf/encoding/protowire"

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
	// DatabaseSHA256 is the sha256 of the database: the hash embedded at
	// the end of a streamed snapshot, or the file's own for a db copy. A
	// restore names the new cluster's token by it.
	DatabaseSHA256 string `json:"databaseSha256"`
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
	st, embeddedOK, err := hashStatus(path)
	if err != nil {
		return nil, err
	}
	if err := refuseBadHash(st, embeddedOK, !o.SkipHashCheck); err != nil {
		return nil, err
	}
	if err := checkDatabase(st); err != nil {
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
	st, embeddedOK, err := hashStatus(path)
	if err != nil {
		return nil, err
	}
	if err := refuseBadHash(st, embeddedOK, false); err != nil {
		return nil, err
	}
	if err := checkDatabase(st); err != nil {
		return nil, err
	}
	return st, nil
}

// hashStatus reads a snapshot file's size and hashes: its sha256, whether
// it has an embedded sha256 and whether that matches.
func hashStatus(path string) (st *FileStatus, embeddedOK bool, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, false, fmt.Errorf("snapshot: %w", err)
	}
	if fi.IsDir() {
		return nil, false, fmt.Errorf("snapshot %s is a directory, not a snapshot file", path)
	}
	if err := checkNotLocked(path); err != nil {
		return nil, false, err
	}
	st = &FileStatus{Path: path, Size: fi.Size()}
	if st.Size < 2*sha256.Size {
		return nil, false, fmt.Errorf("snapshot %s: %w: the file has only %d bytes (truncated or empty)", path, ErrInvalid, st.Size)
	}
	st.HasHash = hasChecksum(st.Size)
	st.SHA256, embeddedOK, err = hashFile(path, st.Size, st.HasHash)
	if err != nil {
		return nil, false, fmt.Errorf("snapshot %s: %w", path, err)
	}
	switch {
	case !st.HasHash:
		st.DatabaseSHA256 = st.SHA256
	case embeddedOK:
		if st.DatabaseSHA256, err = embeddedSHA256(path); err != nil {
			return nil, false, fmt.Errorf("snapshot %s: %w", path, err)
		}
	}
	return st, embeddedOK, nil
}

// embeddedSHA256 reads the sha256 a streamed snapshot ends with (the
// database's, etcd's integrity hash), without reading the rest; "" when
// the file's size says it has none. It does not check it: Verify does.
func embeddedSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if fi.IsDir() || fi.Size() < 2*sha256.Size || !hasChecksum(fi.Size()) {
		return "", nil
	}
	sum := make([]byte, sha256.Size)
	if _, err := f.ReadAt(sum, fi.Size()-sha256.Size); err != nil {
		return "", fmt.Errorf("read: %w", err)
	}
	return hex.EncodeToString(sum), nil
}

// refuseBadHash refuses a mismatched (or, when required, missing)
// embedded hash.
func refuseBadHash(st *FileStatus, embeddedOK, requireHash bool) error {
	switch {
	case st.HasHash && !embeddedOK:
		return fmt.Errorf("snapshot %s: %w: its embedded sha256 does not match its content, so the file is corrupted; use another snapshot", st.Path, ErrInvalid)
	case !st.HasHash && requireHash:
		return fmt.Errorf("snapshot %s: %w: it has no embedded sha256 (its size, %d bytes, is not whole 512-byte blocks plus 32): the file is truncated, or it is a db file copied from a data dir (only then pass --skip-hash-check)", st.Path, ErrInvalid, st.Size)
	}
	return nil
}

// checkDatabase reads and checks the database in a snapshot whose hashes
// are known, and fills in what etcdutl's status reports.
func checkDatabase(st *FileStatus) error {
	dbSize := st.Size
	if st.HasHash {
		dbSize -= sha256.Size
	}
	es, err := dbStatus(st.Path, dbSize)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w: %v", st.Path, ErrInvalid, err)
	}
	st.Revision, st.TotalKeys, st.Hash, st.StorageVersion = es.Revision, es.TotalKey, es.Hash, es.Version
	return nil
}

// streamHash computes, while a snapshot streams in, what hashFile computes
// afterwards: the sha256 of everything, and the sha256 of everything but
// the last 32 bytes (the database, when those bytes are its embedded hash).
// It hashes each byte once: the body hash holds back the last 32 bytes
// until it knows they are not the end, and the whole file's hash is the
// body hash's state continued with them.
type streamHash struct {
	body hash.Hash
	tail []byte
	n    int64
}

func newStreamHash() *streamHash {
	return &streamHash{body: sha256.New(), tail: make([]byte, 0, 2*sha256.Size)}
}

func (h *streamHash) Write(p []byte) (int, error) {
	h.n += int64(len(p))
	if len(p) >= sha256.Size {
		h.body.Write(h.tail)
		h.body.Write(p[:len(p)-sha256.Size])
		h.tail = append(h.tail[:0], p[len(p)-sha256.Size:]...)
		return len(p), nil
	}
	h.tail = append(h.tail, p...)
	if extra := len(h.tail) - sha256.Size; extra > 0 {
		h.body.Write(h.tail[:extra])
		h.tail = append(h.tail[:0], h.tail[extra:]...)
	}
	return len(p), nil
}

// sums returns the sha256 of the whole stream and whether its last 32
// bytes are the sha256 of the rest.
func (h *streamHash) sums() (string, bool, error) {
	whole, err := continuedSum(h.body, h.tail)
	return whole, len(h.tail) == sha256.Size && bytes.Equal(h.body.Sum(nil), h.tail), err
}

// continuedSum is the hex sha256 of what h has hashed followed by more,
// leaving h as it was: the two hashes of a snapshot share all but 32 bytes,
// and hashing a gigabyte twice was a visible part of save and restore.
func continuedSum(h hash.Hash, more []byte) (string, error) {
	c, err := h.(hash.Cloner).Clone()
	if err != nil {
		// Only a GOFIPS140=v1.0.0 build refuses to clone sha256.
		return "", fmt.Errorf("sha256: %w", err)
	}
	c.Write(more)
	return hex.EncodeToString(c.Sum(nil)), nil
}

// hashFile returns the sha256 of the whole file and, when it has an
// embedded hash, whether that hash matches the rest, in one read.
func hashFile(path string, size int64, hasHash bool) (string, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	body := sha256.New()
	bodyLen := size
	if hasHash {
		bodyLen = size - sha256.Size
	}
	if _, err := io.CopyN(body, f, bodyLen); err != nil {
		return "", false, fmt.Errorf("read: %w", err)
	}
	if !hasHash {
		return hex.EncodeToString(body.Sum(nil)), false, nil
	}
	trailer := make([]byte, sha256.Size)
	if _, err := io.ReadFull(f, trailer); err != nil {
		return "", false, fmt.Errorf("read: %w", err)
	}
	whole, err := continuedSum(body, trailer)
	return whole, bytes.Equal(body.Sum(nil), trailer), err
}

// dbStatus reads what `etcdutl snapshot status` reports (revision, live
// keys, content hash, storage version) and checks the database, in one pass
// over it: bbolt's consistency check, the size the database claims against
// the file, etcd's buckets, and every key and value. It computes the hash
// exactly as etcdutl does (crc32 Castagnoli over bucket names, keys and
// values in order), so the two tools agree on a file.
//
// bbolt reads the file through mmap, so a damaged file can fault or panic
// rather than return an error; the pass runs in a goroutine that turns
// faults and panics into errors.
func dbStatusInProcess(path string, dbSize int64) (st etcdutlsnap.Status, err error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("the database is damaged (%s)", plainDamage(fmt.Sprint(r)))
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
			st, err = statusOf(tx, dbSize)
			return err
		})
	}()
	<-done
	return st, err
}

// plainDamage words what bbolt reported while reading a damaged file for
// the operator. bbolt reads pages through unchecked slices, so a page whose
// count or overflow points past the file surfaces as a Go runtime panic
// ("runtime error: slice bounds out of range ..."), and its consistency
// check reports such a page as the panic it recovered from ("panic: ...").
// Both are findings about the file, not a crash of etcdkit, and should not
// read like one.
func plainDamage(msg string) string {
	msg = strings.TrimPrefix(msg, "panic: ")
	if rest, ok := strings.CutPrefix(msg, "runtime error: "); ok {
		return "a page points outside the database: " + rest
	}
	if rest, ok := strings.CutPrefix(msg, "unexpected fault address"); ok {
		return "a page could not be read from the file (fault at" + rest + ")"
	}
	return msg
}

func statusOf(tx *bolt.Tx, dbSize int64) (st etcdutlsnap.Status, err error) {
	if need := tx.Size(); need > dbSize {
		return st, fmt.Errorf("the database is truncated: it needs %d bytes and has %d", need, dbSize)
	}
	for _, b := range []backend.Bucket{schema.Key, schema.Meta} {
		if tx.Bucket(b.Name()) == nil {
			return st, fmt.Errorf("not an etcd database: it has no %q bucket", b.String())
		}
	}
	var problems []string
	for e := range tx.Check() {
		// bbolt words some findings as the panic it recovered from; they
		// are findings about the file, not a crash of this process.
		problems = append(problems, plainDamage(e.Error()))
	}
	if len(problems) > 0 {
		return st, fmt.Errorf("bbolt's integrity check found %d problem(s): %s", len(problems), strings.Join(problems, "; "))
	}
	st.TotalSize = tx.Size()
	if v := schema.ReadStorageVersionFromSnapshot(tx); v != nil {
		st.Version = v.String()
	}
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	live := map[string]struct{}{}
	c := tx.Cursor()
	for name, _ := c.First(); name != nil; name, _ = c.Next() {
		b := tx.Bucket(name)
		if b == nil {
			return st, fmt.Errorf("%q is not a bucket", name)
		}
		h.Write(name)
		isKey := bytes.Equal(name, schema.Key.Name())
		err := b.ForEach(func(k, v []byte) error {
			h.Write(k)
			h.Write(v)
			if !isKey {
				return nil
			}
			if len(k) < 17 {
				return fmt.Errorf("key bucket: %x is not a revision", k)
			}
			st.Revision = mvcc.BytesToRev(k).Main
			key, err := keyOf(v)
			if err != nil {
				return fmt.Errorf("key bucket: revision %d: %w", st.Revision, err)
			}
			if mvcc.IsTombstone(k) {
				delete(live, string(key))
			} else {
				live[string(key)] = struct{}{}
			}
			return nil
		})
		if err != nil {
			return st, err
		}
	}
	st.Hash = h.Sum32()
	st.TotalKey = len(live)
	return st, nil
}

// keyOf reads the key of an encoded mvccpb.KeyValue (field 1) and checks
// that the rest is well-formed protobuf, without decoding the rest:
// proto.Unmarshal copies every value, a gigabyte of allocations to count
// the live keys of a gigabyte's snapshot.
func keyOf(b []byte) ([]byte, error) {
	var key []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			key, n = protowire.ConsumeBytes(b)
		} else {
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return key, nil
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
