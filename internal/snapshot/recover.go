package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/membership"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.etcd.io/etcd/server/v3/storage/schema"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/fsutil"
	"github.com/etcdkit/etcdkit/internal/member"
)

// ErrQuorumReachable is returned by Recover when enough members answer
// that the cluster can heal without forcing a new one.
var ErrQuorumReachable = errors.New("quorum is reachable")

// RecoverOptions configures Recover.
type RecoverOptions struct {
	// Member is the surviving member's name; it must be the config's.
	Member string
	// Config is the survivor's etcd config (the file `member run` reads).
	Config     *etcdconf.Config
	ConfigPath string
	Source     []byte
	// AllowInsecureHTTP is member run's --insecure-http.
	AllowInsecureHTTP bool
	// BackupDir receives the copy of the data dir taken first, the
	// snapshot of the recovered data and the recovery start's log.
	// Default: etcdkit.backup.dir of the config, else the data dir's parent.
	BackupDir string
	// ProbeTimeout bounds each connection attempt to another member.
	ProbeTimeout time.Duration
	// ReadyTimeout bounds the recovery start.
	ReadyTimeout time.Duration
	// Now stamps the copies; default time.Now.
	Now func() time.Time
}

// MemberInfo is a member as the survivor's data knows it.
type MemberInfo struct {
	Name       string   `json:"name"`
	ID         string   `json:"id"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs,omitempty"`
	Learner    bool     `json:"learner,omitempty"`
}

// RecoverResult is what Recover did.
type RecoverResult struct {
	Survivor MemberInfo `json:"survivor"`
	DataDir  string     `json:"dataDir"`
	// Copy is the copy of the data dir taken before anything changed.
	Copy string `json:"copy"`
	// Snapshot is a snapshot of the recovered one-member cluster.
	Snapshot *Info `json:"snapshot"`
	// Log is the etcd log of the recovery start.
	Log      string `json:"log"`
	Revision int64  `json:"revision"`
	Keys     int64  `json:"keys"`
	// Removed are the members the recovery dropped; add them back.
	Removed []MemberInfo `json:"removed"`
}

// Recover brings a cluster that lost its quorum for good back to life
// from one surviving member, etcd's --force-new-cluster procedure done
// safely:
//
//  1. refuse while the survivor runs, or while enough other members answer
//     on their peer URLs that the cluster has a quorum and can heal by
//     itself;
//  2. copy the survivor's data dir;
//  3. start the survivor in this process with ForceNewCluster, exactly once
//     (it is never written to a config: every start with it set would shrink
//     the cluster to one member again);
//  4. check it is a one-member cluster with a leader and the data, take a
//     snapshot of it, and stop it.
//
// Afterwards the operator starts the member as usual and adds the lost
// members back one at a time.
func Recover(ctx context.Context, o RecoverOptions) (*RecoverResult, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ProbeTimeout == 0 {
		o.ProbeTimeout = 2 * time.Second
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 2 * time.Minute
	}
	cfg := o.Config
	if cfg.Name != o.Member {
		return nil, fmt.Errorf("%s is the config of member %q, not %q: run cluster recover on the surviving member's host with its config", o.ConfigPath, cfg.Name, o.Member)
	}
	who := fmt.Sprintf("member %q", o.Member)
	dataDir := cfg.DataDir
	db := filepath.Join(dataDir, "member", "snap", "db")
	if !fsutil.Exists(db) {
		return nil, fmt.Errorf("%s: data dir %s holds no etcd data (no member/snap/db): there is nothing to recover from on this host", who, dataDir)
	}
	if err := checkDataDirFree(dataDir); err != nil {
		return nil, fmt.Errorf("%s is still running (its data dir %s is locked); stop it first (systemctl stop etcd, or stop its `etcdkit member run`), then run cluster recover again", who, dataDir)
	}
	members, err := readMembers(db)
	if err != nil {
		return nil, fmt.Errorf("%s: read the membership from %s: %w", who, db, err)
	}
	peerURLs := etcdconf.SplitList(cfg.InitialAdvertisePeerURLs)
	self := slices.IndexFunc(members, func(m MemberInfo) bool {
		return m.Name == o.Member || (m.Name == "" && len(peerURLs) > 0 && slices.Contains(m.PeerURLs, peerURLs[0]))
	})
	if self < 0 {
		return nil, fmt.Errorf("%s is not a member of the cluster its data dir %s knows; was it removed?", who, dataDir)
	}
	res := &RecoverResult{Survivor: members[self], DataDir: dataDir}
	if res.Survivor.Learner {
		return nil, fmt.Errorf("%s is a learner: it may not have all the data; recover from a voting member", who)
	}
	var voters, reachable []string
	for i, m := range members {
		if i == self {
			continue
		}
		res.Removed = append(res.Removed, m)
		if m.Learner {
			continue
		}
		voters = append(voters, m.Name)
		if probe(ctx, m.PeerURLs, o.ProbeTimeout) {
			reachable = append(reachable, fmt.Sprintf("%q (%s)", m.Name, strings.Join(m.PeerURLs, ",")))
		}
	}
	if len(voters) == 0 {
		return nil, fmt.Errorf("%s is already the only voting member of its cluster: start it normally", who)
	}
	total := len(voters) + 1
	if alive := len(reachable) + 1; alive >= total/2+1 {
		return nil, fmt.Errorf("%w: %d of the other %d voting members answer (%s); with %q that is %d of %d, a quorum: start %q normally and the cluster heals by itself. cluster recover is only for when a majority is gone for good",
			ErrQuorumReachable, len(reachable), len(voters), strings.Join(reachable, ", "), o.Member, alive, total, o.Member)
	}

	backupDir := o.BackupDir
	if backupDir == "" && cfg.Etcdkit != nil && cfg.Etcdkit.Backup != nil {
		backupDir = cfg.Etcdkit.Backup.Dir
	}
	if backupDir == "" {
		backupDir = filepath.Dir(filepath.Clean(dataDir))
	}
	stamp := o.Now().UTC().Format("20060102T150405Z")
	res.Copy = filepath.Join(backupDir, filepath.Base(filepath.Clean(dataDir))+".pre-recover-"+stamp)
	if err := copyTree(dataDir, res.Copy); err != nil {
		return nil, fmt.Errorf("%s: copy the data dir before recovery: %w", who, err)
	}
	res.Log = filepath.Join(backupDir, o.Member+"-recover-"+stamp+".log")
	if err := forceNewStart(ctx, o, res, backupDir); err != nil {
		return res, fmt.Errorf("%s: %w (the data dir as it was is in %s; the recovery's etcd log is %s)", who, err, res.Copy, res.Log)
	}
	return res, nil
}

// forceNewStart runs the single ForceNewCluster start, checks the result
// and snapshots it.
func forceNewStart(ctx context.Context, o RecoverOptions, res *RecoverResult, backupDir string) error {
	cfg := *o.Config
	cfg.LogOutputs = []string{res.Log}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	ready := make(chan *embed.Etcd, 1)
	done := make(chan error, 1)
	go func() {
		done <- member.Run(runCtx, member.Options{
			Config: &cfg, ConfigPath: o.ConfigPath, Source: o.Source,
			AllowInsecureHTTP: o.AllowInsecureHTTP,
			ForceNewCluster:   true,
			// Not a service start: tell no service manager anything.
			Notify: func(string) error { return nil },
			Ready:  func(e *embed.Etcd) { ready <- e },
		})
	}()
	var e *embed.Etcd
	select {
	case e = <-ready:
	case err := <-done:
		if err == nil {
			err = ctx.Err()
		}
		return fmt.Errorf("the recovery start failed: %w", err)
	case <-time.After(o.ReadyTimeout):
		stop()
		<-done
		return fmt.Errorf("the recovery start was not ready after %v", o.ReadyTimeout)
	}
	check := func() error {
		cli := v3client.New(e.Server)
		defer cli.Close()
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		ml, err := cli.MemberList(cctx)
		if err != nil {
			return fmt.Errorf("list members: %w", err)
		}
		if len(ml.Members) != 1 || ml.Members[0].ID != uint64(e.Server.MemberID()) {
			return fmt.Errorf("after the recovery start the cluster has %d members, want only this one", len(ml.Members))
		}
		// A linearizable read proves the one-member cluster has a leader
		// and serves; it also counts what survived.
		resp, err := cli.Get(cctx, "\x00", clientv3.WithFromKey(), clientv3.WithCountOnly())
		if err != nil {
			return fmt.Errorf("read after the recovery start: %w", err)
		}
		res.Keys, res.Revision = resp.Count, resp.Header.Revision
		info, err := saveFrom(cctx, cli, sourceOf(e), backupDir+string(filepath.Separator), SaveOptions{Reason: "after cluster recover of " + o.Member})
		if err != nil {
			return fmt.Errorf("snapshot the recovered data: %w", err)
		}
		res.Snapshot = info
		return nil
	}
	cerr := check()
	stop()
	if err := <-done; err != nil && cerr == nil {
		cerr = fmt.Errorf("stop after the recovery start: %w", err)
	}
	return cerr
}

// probe reports whether anything accepts a connection on one of the peer
// URLs: a live member listens there whatever its state.
func probe(ctx context.Context, peerURLs []string, timeout time.Duration) bool {
	for _, raw := range peerURLs {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			continue
		}
		d := net.Dialer{Timeout: timeout}
		if c, err := d.DialContext(ctx, "tcp", u.Host); err == nil {
			c.Close()
			return true
		}
	}
	return false
}

// readMembers reads the membership a stopped member's database holds.
func readMembers(dbPath string) ([]MemberInfo, error) {
	db, err := bolt.Open(dbPath, 0o400, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var out []MemberInfo
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(schema.Members.Name())
		if b == nil {
			return errors.New("the database has no membership")
		}
		return b.ForEach(func(_, v []byte) error {
			var m membership.Member
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			out = append(out, MemberInfo{
				Name: m.Name, ID: m.ID.String(), PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner,
			})
			return nil
		})
	})
	slices.SortFunc(out, func(a, b MemberInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, err
}
