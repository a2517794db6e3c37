package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	etcdutlsnap "go.etcd.io/etcd/etcdutl/v3/snapshot"

	"github.com/etcdkit/etcdkit/internal/fsutil"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// DefaultRevisionBump is how far a restore moves the revision forward by
// default, etcd's recommendation for clusters with watchers and caches
// (Kubernetes): clients never see the revision go back, and marking it
// compacted makes every watcher re-list instead of missing the gap.
const DefaultRevisionBump = 1_000_000_000

// RestoreOptions configures Restore.
type RestoreOptions struct {
	// Snapshot is the snapshot file.
	Snapshot string
	// Cluster is the spec: every member is in the restored cluster's
	// initial membership.
	Cluster *spec.Cluster
	// Members names the members whose data dirs are on this machine and
	// are restored now. Every machine must restore the same snapshot with
	// the same token.
	Members []string
	// Token is the new cluster's token; default DefaultToken.
	Token string
	// RevisionBump moves the revision forward and marks it compacted
	// (both or neither: 0 does neither).
	RevisionBump uint64
	// MoveAside renames non-empty data dirs to DATADIR.before-restore-TIME
	// instead of refusing. Nothing is ever deleted.
	MoveAside bool
	// SkipHashCheck accepts a db file copied from a data dir.
	SkipHashCheck bool
	// Verified is what the caller's own Verify of Snapshot returned, when
	// it checked the file first (before changing anything of its own);
	// Restore then does not read the whole file a second time.
	Verified *FileStatus
	// Now stamps moved-aside directories; default time.Now.
	Now func() time.Time
}

// RestoredMember is one member's restored data dir.
type RestoredMember struct {
	Name    string `json:"name"`
	DataDir string `json:"dataDir"`
	// MovedAside is where the data dir's previous content went, if any.
	MovedAside string `json:"movedAside,omitempty"`
}

// RestoreResult is what Restore did.
type RestoreResult struct {
	Snapshot *FileStatus      `json:"snapshot"`
	Token    string           `json:"token"`
	Revision int64            `json:"revision"`
	Members  []RestoredMember `json:"members"`
}

// DefaultToken is the cluster token of a restore: new for every snapshot,
// so restored members never mix with the old cluster, and the same on
// every machine that restores the same file, so no one has to carry a
// secret from host to host. dbSHA256 is the database's sha256
// (FileStatus.DatabaseSHA256), which a streamed snapshot carries in its
// last 32 bytes, so the token is known before the file has been read.
func DefaultToken(clusterName, dbSHA256 string) string {
	return fmt.Sprintf("%s-restored-%.12s", clusterName, dbSHA256)
}

// Restore makes data dirs for o.Members from a snapshot, each a member of a
// new cluster made of every member of the spec, with etcdutl's restore.
// It checks every data dir before it touches any; each member is restored
// into a staging directory while the snapshot is verified, and only when
// the snapshot is sound and every member ready are they moved into place.
func Restore(o RestoreOptions) (*RestoreResult, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	c := o.Cluster
	if len(o.Members) == 0 {
		return nil, errors.New("no member to restore")
	}
	var members []*spec.Member
	var errs []error
	for _, name := range o.Members {
		m, ok := c.Member(name)
		if !ok {
			errs = append(errs, fmt.Errorf("member %q is not in the cluster spec (members: %s)", name, c.InitialCluster()))
			continue
		}
		members = append(members, m)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// The snapshot is verified beside the restores, not before them:
	// verifying reads the whole file (its sha256 and bbolt's check, about
	// a second per GiB), and each restore copies it meanwhile. The restores
	// run in child processes writing staging dirs only, so a damaged file
	// can neither crash this process nor reach a data dir: when the
	// verification fails the children are killed and their dirs removed.
	v := startVerify(o)
	defer v.wait() // no verification outlives the call
	exe, err := os.Executable()
	if err != nil {
		// No child to run the restores in: etcdutl's restore will open the
		// database in this process, so it must be known sound first.
		exe = ""
		if _, err := v.wait(); err != nil {
			return nil, err
		}
	}
	token := o.Token
	if token == "" {
		// Named by the database's sha256, which a streamed snapshot carries
		// in its last 32 bytes: known now, the same on every host. A db
		// copy has none, and is named once the verification has hashed it.
		sha := ""
		if o.Verified != nil {
			sha = o.Verified.DatabaseSHA256
		} else if sha, err = embeddedSHA256(o.Snapshot); err != nil {
			sha = ""
		}
		if sha == "" {
			st, err := v.wait()
			if err != nil {
				return nil, err
			}
			sha = st.DatabaseSHA256
		}
		token = DefaultToken(c.Name, sha)
	}
	res := &RestoreResult{Token: token}

	// Check every data dir first: refuse before changing anything.
	stamp := o.Now().UTC().Format("20060102T150405Z")
	for _, m := range members {
		dir := c.MemberDataDir(m)
		r := RestoredMember{Name: m.Name, DataDir: dir}
		if err := checkDataDirFree(dir); err != nil {
			errs = append(errs, fmt.Errorf("member %q: %w", m.Name, err))
			continue
		}
		empty, err := fsutil.DirEmpty(dir)
		if err != nil {
			errs = append(errs, fmt.Errorf("member %q: data dir %s: %w", m.Name, dir, err))
			continue
		}
		if !empty {
			r.MovedAside = dir + ".before-restore-" + stamp
			if !o.MoveAside {
				errs = append(errs, fmt.Errorf("member %q: data dir %s is not empty; a restore never overwrites data: stop the member and pass --move-aside (it renames the directory to %s), or move it away yourself", m.Name, dir, filepath.Base(r.MovedAside)))
				continue
			}
			if fsutil.Exists(r.MovedAside) {
				errs = append(errs, fmt.Errorf("member %q: %s already exists; retry in a second", m.Name, r.MovedAside))
				continue
			}
		}
		res.Members = append(res.Members, r)
	}
	if len(errs) > 0 {
		// Every problem at once: the snapshot's too, if it has one.
		if _, err := v.wait(); err != nil {
			errs = append([]error{err}, errs...)
		}
		return nil, errors.Join(errs...)
	}

	// Restore each member into a staging dir beside its data dir (same
	// file system, so the final move is a rename).
	staged := make([]string, len(res.Members))
	cleanup := func() {
		for _, s := range staged {
			if s != "" {
				os.RemoveAll(s)
			}
		}
	}
	for i, r := range res.Members {
		parent := filepath.Dir(r.DataDir)
		if err := fsutil.MkdirAll(parent); err != nil {
			cleanup()
			return nil, err
		}
		s, err := os.MkdirTemp(parent, "."+filepath.Base(r.DataDir)+".restoring-")
		if err != nil {
			cleanup()
			return nil, fmt.Errorf("member %q: %w", members[i].Name, err)
		}
		staged[i] = s
	}
	// The members are restored at once: each is a copy of the database plus
	// its own WAL. The verification checks the snapshot's hash, so etcdutl
	// need not hash every copy again.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	restoreErrs := make([]error, len(res.Members))
	var wg sync.WaitGroup
	for i := range res.Members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := members[i]
			err := restoreMember(ctx, exe, etcdutlsnap.RestoreConfig{
				SnapshotPath:        o.Snapshot,
				Name:                m.Name,
				OutputDataDir:       staged[i],
				PeerURLs:            []string{m.PeerURL},
				InitialCluster:      c.InitialCluster(),
				InitialClusterToken: token,
				SkipHashCheck:       true,
				RevisionBump:        o.RevisionBump,
				MarkCompacted:       o.RevisionBump > 0,
			})
			if err != nil {
				restoreErrs[i] = fmt.Errorf("member %q: restore %s: %w", m.Name, o.Snapshot, err)
			}
		}()
	}
	st, verr := v.wait()
	if verr != nil {
		cancel()
	}
	wg.Wait()
	if verr != nil {
		cleanup()
		return nil, verr
	}
	if err := errors.Join(restoreErrs...); err != nil {
		cleanup()
		return nil, err
	}
	res.Snapshot, res.Revision = st, st.Revision
	if o.RevisionBump > 0 {
		res.Revision += int64(o.RevisionBump)
	}

	// Move old data aside, then every staged dir into place. A failure
	// undoes what was moved so far.
	// Staged dirs are removed on failure only: once the loop below ends,
	// every one of them has become a data dir.
	var undo []func()
	rollback := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		cleanup()
	}
	for i, r := range res.Members {
		if r.MovedAside != "" {
			if err := os.Rename(r.DataDir, r.MovedAside); err != nil {
				rollback()
				return nil, fmt.Errorf("member %q: move %s aside: %w", r.Name, r.DataDir, err)
			}
			undo = append(undo, func() { _ = os.Rename(r.MovedAside, r.DataDir) })
		} else if err := os.Remove(r.DataDir); err != nil && !errors.Is(err, os.ErrNotExist) {
			rollback()
			return nil, fmt.Errorf("member %q: %w", r.Name, err)
		}
		if err := os.Rename(staged[i], r.DataDir); err != nil {
			rollback()
			return nil, fmt.Errorf("member %q: put the restored data in %s: %w", r.Name, r.DataDir, err)
		}
		s := staged[i]
		undo = append(undo, func() { _ = os.Rename(r.DataDir, s) })
		if err := fsutil.SyncDir(filepath.Dir(r.DataDir)); err != nil {
			rollback()
			return nil, err
		}
	}
	return res, nil
}

// verification is a Verify of the snapshot running beside the restore.
type verification struct {
	done chan struct{}
	st   *FileStatus
	err  error
}

// startVerify verifies o.Snapshot in the background, unless the caller
// already has (o.Verified).
func startVerify(o RestoreOptions) *verification {
	v := &verification{done: make(chan struct{})}
	if o.Verified != nil {
		v.st = o.Verified
		close(v.done)
		return v
	}
	go func() {
		defer close(v.done)
		v.st, v.err = Verify(o.Snapshot, VerifyOptions{SkipHashCheck: o.SkipHashCheck})
	}()
	return v
}

func (v *verification) wait() (*FileStatus, error) {
	<-v.done
	return v.st, v.err
}

// checkDataDirFree refuses a data dir a running member holds.
func checkDataDirFree(dir string) error {
	db := filepath.Join(dir, "member", "snap", "db")
	fd, err := syscall.Open(db, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if errors.Is(err, syscall.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	defer syscall.Close(fd)
	err = syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return fmt.Errorf("data dir %s is in use by a running etcd member; stop it first", dir)
	}
	if err == nil {
		_ = syscall.Flock(fd, syscall.LOCK_UN)
	}
	return nil
}
