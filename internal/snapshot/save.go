// Package snapshot saves, verifies, restores and prunes etcd snapshots, runs
// scheduled backups inside a member, and recovers a cluster that lost its
// quorum. Snapshot files are etcd's own format (the bbolt database followed
// by its sha256), so they are interchangeable with `etcdctl snapshot save`
// and `etcdutl snapshot restore`; etcdkit adds a JSON sidecar (FILE.json)
// that records where and when a snapshot was taken and what it holds.
package snapshot

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdkit/etcdkit/internal/connect"
	"github.com/etcdkit/etcdkit/internal/fsutil"
	"github.com/etcdkit/etcdkit/internal/ops"
)

// SaveOptions tunes Save.
type SaveOptions struct {
	// Progress, when set, is called as bytes arrive.
	Progress func(written int64)
	// Source, when set, is called once the member to stream from is
	// chosen, before any byte arrives; its DBSize is the expected size.
	Source func(Source)
	// Reason is recorded in the sidecar ("manual", "scheduled", "before
	// member remove m1", ...).
	Reason string
	// Time names the file when the target is a directory; default now.
	Time time.Time
	// Overwrite replaces an existing file; by default Save refuses.
	Overwrite bool
}

// Source is the member a snapshot streams from.
type Source struct {
	Endpoint string `json:"endpoint"`
	Name     string `json:"name,omitempty"`
	MemberID string `json:"memberID,omitempty"`
	Version  string `json:"version,omitempty"`
	// DBSize is the member's database size, the snapshot's expected size.
	DBSize int64 `json:"dbSize"`
	// Leaderless is set when no member had a leader and this one was used
	// anyway: it may miss writes the lost quorum acknowledged elsewhere.
	Leaderless bool `json:"leaderless,omitempty"`
}

// Info describes a saved snapshot; it is what the sidecar holds.
type Info struct {
	Path     string    `json:"path"`
	Created  time.Time `json:"created"`
	Reason   string    `json:"reason,omitempty"`
	Endpoint string    `json:"endpoint"`
	Member   string    `json:"member,omitempty"`
	MemberID string    `json:"memberID,omitempty"`
	// Version is the etcd version of the member that served the snapshot.
	Version        string `json:"version,omitempty"`
	StorageVersion string `json:"storageVersion,omitempty"`
	Revision       int64  `json:"revision"`
	TotalKeys      int    `json:"totalKeys"`
	Size           int64  `json:"size"`
	// SHA256 is the sha256 of the whole file (as `sha256sum` prints it).
	SHA256 string `json:"sha256"`
	// DatabaseSHA256 is the sha256 embedded at the file's end (etcd's
	// integrity hash of the database); a restore's cluster token is
	// named by it.
	DatabaseSHA256 string `json:"databaseSha256,omitempty"`
	// Hash is etcdutl's content hash (`etcdutl snapshot status`).
	Hash uint32 `json:"hash"`
	// Verified says the embedded hash and the database were checked
	// before the file was put in place.
	Verified bool `json:"verified"`
	// Warning is set when the snapshot was taken from a member without a
	// leader.
	Warning string `json:"warning,omitempty"`
}

// FileName is the name Save gives a snapshot taken at t in a directory.
// Names sort by time.
func FileName(t time.Time) string {
	return "etcd-snapshot-" + t.UTC().Format("20060102T150405.000Z") + ".db"
}

// Save streams a snapshot from the most up-to-date healthy member of the
// target to path (a file, or a directory to name a file in): it writes
// path.part, fsyncs it, verifies the embedded sha256 and the database,
// renames it into place and writes the sidecar path.json.
func Save(ctx context.Context, t *connect.Target, path string, o SaveOptions) (*Info, error) {
	if o.Time.IsZero() {
		o.Time = time.Now()
	}
	// Refuse an existing file before asking the cluster for anything.
	if !o.Overwrite && fsutil.Exists(Target(path, o.Time)) {
		return nil, fmt.Errorf("%s already exists; choose another name, or give a directory to name the file by time", Target(path, o.Time))
	}
	src, err := ChooseSource(ctx, t)
	if err != nil {
		return nil, err
	}
	cli, err := t.Client(src.Endpoint)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	info, err := saveFrom(ctx, cli, src, path, o)
	if err != nil {
		who := src.Endpoint
		if src.Name != "" {
			who = fmt.Sprintf("member %q (%s)", src.Name, src.Endpoint)
		}
		return nil, fmt.Errorf("snapshot from %s: %w", who, err)
	}
	return info, nil
}

// ChooseSource picks the member to snapshot: among members that answer,
// have a leader, raise no errors and vote, the one that has applied the
// most (the leader on a tie). With no leader anywhere it falls back to the
// most advanced member that answers, and says so.
func ChooseSource(ctx context.Context, t *connect.Target) (Source, error) {
	sts := ops.Status(ctx, t)
	var good, leaderless []ops.EndpointStatus
	var errs []error
	for _, s := range sts {
		who := s.Endpoint
		if s.Name != "" {
			who = fmt.Sprintf("member %q (%s)", s.Name, s.Endpoint)
		}
		switch {
		case s.Error != "":
			errs = append(errs, fmt.Errorf("%s: %s", who, s.Error))
		case len(s.Errors) > 0:
			errs = append(errs, fmt.Errorf("%s: %s", who, strings.Join(s.Errors, "; ")))
		case s.IsLearner:
			errs = append(errs, fmt.Errorf("%s: is a learner", who))
		case s.Leader == "":
			leaderless = append(leaderless, s)
		default:
			good = append(good, s)
		}
	}
	pool := good
	if len(pool) == 0 {
		pool = leaderless
	}
	if len(pool) == 0 {
		return Source{}, fmt.Errorf("no member can serve a snapshot: %w", errors.Join(errs...))
	}
	best := slices.MaxFunc(pool, func(a, b ops.EndpointStatus) int {
		if c := cmp.Compare(a.RaftAppliedIndex, b.RaftAppliedIndex); c != 0 {
			return c
		}
		return cmp.Compare(boolInt(a.IsLeader), boolInt(b.IsLeader))
	})
	return Source{
		Endpoint: best.Endpoint, Name: best.Name, MemberID: best.ID, Version: best.Version,
		DBSize: best.DBSize, Leaderless: len(good) == 0,
	}, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Target resolves where a snapshot goes: into a directory (an existing
// one, or a path ending in a separator) under FileName(at), else path.
func Target(path string, at time.Time) string {
	if fi, err := os.Stat(path); (err == nil && fi.IsDir()) || strings.HasSuffix(path, string(filepath.Separator)) {
		return filepath.Join(path, FileName(at))
	}
	return path
}

// saveFrom streams a snapshot through cli, which talks to src only (a
// client to one endpoint, or the in-process client of a member).
func saveFrom(ctx context.Context, cli *clientv3.Client, src Source, path string, o SaveOptions) (info *Info, err error) {
	at := o.Time
	if at.IsZero() {
		at = time.Now()
	}
	path, err = filepath.Abs(Target(path, at))
	if err != nil {
		return nil, err
	}
	if !o.Overwrite && fsutil.Exists(path) {
		return nil, fmt.Errorf("%s already exists; choose another name, or give a directory to name the file by time", path)
	}
	if err := fsutil.MkdirAll(filepath.Dir(path)); err != nil {
		return nil, err
	}
	if o.Source != nil {
		o.Source(src)
	}
	part := path + ".part"
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fsutil.PrivateFile)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(part)
		}
	}()
	resp, err := cli.SnapshotWithVersion(ctx)
	if err != nil {
		return nil, err
	}
	defer resp.Snapshot.Close()
	// The file's hashes are computed as the bytes arrive, so verifying the
	// file afterwards reads it once, for the database check, not twice.
	sums := newStreamHash()
	var w io.Writer = io.MultiWriter(f, sums)
	if o.Progress != nil {
		w = &progressWriter{w: w, fn: o.Progress}
	}
	if _, err = io.Copy(w, resp.Snapshot); err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	whole, embeddedOK, err := sums.sums()
	if err != nil {
		return nil, err
	}
	st := &FileStatus{Path: part, Size: sums.n, SHA256: whole, HasHash: hasChecksum(sums.n)}
	if err = refuseBadHash(st, embeddedOK, true); err != nil {
		return nil, fmt.Errorf("the streamed snapshot failed verification: %w", err)
	}
	st.DatabaseSHA256 = hex.EncodeToString(sums.tail)
	// The database check reads the file from the page cache, which holds
	// exactly what fsync is writing out, so the two run at once: a
	// gigabyte's fsync and its check each take about a second. The file
	// is renamed into place only when both succeeded.
	synced := make(chan error, 1)
	go func() { synced <- f.Sync() }()
	checkErr := checkDatabase(st)
	if err = <-synced; err != nil {
		return nil, fmt.Errorf("fsync %s: %w", part, err)
	}
	if err = f.Close(); err != nil {
		return nil, err
	}
	if err = checkErr; err != nil {
		return nil, fmt.Errorf("the streamed snapshot failed verification: %w", err)
	}
	st.Path = path
	if err = os.Rename(part, path); err != nil {
		return nil, err
	}
	if err = fsutil.SyncDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	info = &Info{
		Path: path, Created: at.UTC(), Reason: o.Reason,
		Endpoint: src.Endpoint, Member: src.Name, MemberID: src.MemberID, Version: src.Version,
		StorageVersion: st.StorageVersion, Revision: st.Revision, TotalKeys: st.TotalKeys,
		Size: st.Size, SHA256: st.SHA256, DatabaseSHA256: st.DatabaseSHA256, Hash: st.Hash, Verified: true,
	}
	if src.Leaderless {
		info.Warning = "the member had no leader (quorum lost?): the snapshot may miss writes acknowledged by other members"
	}
	// The snapshot is complete and usable without its sidecar (it is
	// etcd's format); a failed sidecar is reported, the snapshot kept.
	if err := writeSidecar(info); err != nil {
		return info, fmt.Errorf("snapshot saved to %s, but its sidecar was not written: %w", path, err)
	}
	return info, nil
}

type progressWriter struct {
	w  io.Writer
	n  int64
	fn func(int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	p.fn(p.n)
	return n, err
}
