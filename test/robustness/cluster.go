package robustness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/local"
	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/spec"
	"github.com/etcdkit/etcdkit/internal/testutil"
)

// ClusterOptions shapes a scenario's cluster.
type ClusterOptions struct {
	Members int
	// PeerProxies puts a proxy in front of every member's peer port, so
	// the scenario can partition members (Cluster.Isolate).
	PeerProxies bool
	// QuotaBackendBytes is every member's quota-backend-bytes (0: etcd's
	// default), unless Configure changes one member's.
	QuotaBackendBytes int64
	// Configure, when set, edits members' configs (or anything else in
	// the cluster directory) before they start.
	Configure func(t testing.TB, c *Cluster)
	// SnapshotCount is every member's snapshot-count (0: etcd's default).
	SnapshotCount uint64
	// Preload writes that many keys outside Prefix once the cluster
	// serves, before the history starts: with a small SnapshotCount, raft
	// entries enough for etcd to compact its log (it keeps 5000 after a
	// snapshot), so a member that joins later catches up from a snapshot
	// of the leader's database, as it would in a cluster that has run for
	// a while, not by replaying the log from the first entry.
	Preload int
	// Env is added to the environment of every etcdkit command the suite
	// and the scenario run against the cluster (not the members): a
	// test-only failpoint that breaks an operation.
	Env []string
}

// Cluster is a scenario's cluster: separate `etcdkit member run`
// processes (testutil.ProcCluster), optionally behind peer proxies.
type Cluster struct {
	*testutil.ProcCluster
	T       testing.TB
	Network *Network
	paused  map[string]bool
	admin   *clientv3.Client
	env     []string
}

// NewCluster creates the cluster, starts every member and waits until
// `etcdkit health` passes.
func NewCluster(t testing.TB, o ClusterOptions) *Cluster {
	t.Helper()
	c := &Cluster{ProcCluster: testutil.NewProcCluster(t, o.Members), T: t, paused: map[string]bool{}, env: o.Env}
	if o.QuotaBackendBytes > 0 || o.SnapshotCount > 0 {
		for _, n := range c.Names() {
			cfg := c.Config(t, n)
			if o.QuotaBackendBytes > 0 {
				cfg.QuotaBackendBytes = o.QuotaBackendBytes
			}
			if o.SnapshotCount > 0 {
				cfg.SnapshotCount = o.SnapshotCount
			}
			c.WriteConfig(t, n, cfg)
		}
	}
	if o.PeerProxies {
		c.addProxies(t)
	}
	if o.Configure != nil {
		o.Configure(t, c)
	}
	// Resume paused members before the processes are killed at the end.
	t.Cleanup(func() {
		for n := range c.paused {
			if p := c.Procs[n]; p != nil && !p.Exited() {
				_ = p.Signal(syscall.SIGCONT)
			}
		}
	})
	c.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c.WaitHealthy(ctx)
	if o.Preload > 0 {
		c.preload(o.Preload)
	}
	return c
}

// preload writes n keys outside Prefix, several at a time.
func (c *Cluster) preload(n int) {
	c.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cli := c.Admin()
	const writers = 64
	keys := make(chan int)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range keys {
				var err error
				for try := 0; try < 5; try++ {
					pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					_, err = cli.Put(pctx, fmt.Sprintf("preload/%06d", i), "x")
					cancel()
					if err == nil {
						break
					}
				}
				if err != nil {
					errs <- fmt.Errorf("preload: %w", err)
					return
				}
			}
		}()
	}
	go func() {
		defer close(keys)
		for i := range n {
			select {
			case keys <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		c.T.Fatal(err)
	}
}

// addProxies makes each member advertise a proxy as its peer URL; the
// member still listens on its own port.
func (c *Cluster) addProxies(t testing.TB) {
	c.Network = NewNetwork(c.pids)
	t.Cleanup(c.Network.Close)
	advertised := map[string]string{}
	for _, m := range c.Spec.Members {
		u, err := url.Parse(m.PeerURL)
		if err != nil {
			t.Fatal(err)
		}
		ports, err := local.FreePorts(u.Hostname(), 1)
		if err != nil {
			t.Fatal(err)
		}
		listen := net.JoinHostPort(u.Hostname(), strconv.Itoa(ports[0]))
		if err := c.Network.Add(m.Name, listen, u.Host); err != nil {
			t.Fatal(err)
		}
		advertised[m.Name] = "https://" + listen
	}
	var initial []string
	for _, m := range c.Spec.Members {
		initial = append(initial, m.Name+"="+advertised[m.Name])
	}
	for _, m := range c.Spec.Members {
		cfg := c.Config(t, m.Name)
		cfg.InitialAdvertisePeerURLs = advertised[m.Name]
		cfg.InitialCluster = strings.Join(initial, ",")
		c.WriteConfig(t, m.Name, cfg)
	}
}

func (c *Cluster) pids() map[int]string {
	out := map[int]string{}
	for n, p := range c.Procs {
		if p != nil && !p.Exited() {
			out[p.Cmd.Process.Pid] = n
		}
	}
	return out
}

// Dial opens a client to every member, closed when the test ends.
func (c *Cluster) Dial() (*clientv3.Client, error) {
	return c.Target(c.T).Client()
}

// ClientURL is a member's client URL.
func (c *Cluster) ClientURL(name string) string { return c.Member(c.T, name).ClientURL }

// Leader names the leader, waiting (up to a minute) until there is one
// that the other members agree on.
func (c *Cluster) Leader(ctx context.Context) string {
	c.T.Helper()
	var leader string
	c.retry(ctx, time.Minute, func(ctx context.Context) error {
		var err error
		leader, err = c.leader(ctx)
		return err
	})
	return leader
}

// Admin is a client to every member for the scenario's own requests,
// closed when the test ends.
func (c *Cluster) Admin() *clientv3.Client {
	if c.admin == nil {
		c.admin = c.Client(c.T)
	}
	return c.admin
}

// redialAdmin drops the admin client, so the next Admin() is built from
// the files as they are now (a client keeps the CA pool it started with).
// The old one is closed when the test ends.
func (c *Cluster) redialAdmin() { c.admin = nil }

func (c *Cluster) leader(ctx context.Context) (string, error) {
	// Ask only running members: a request to a paused one would hang.
	var live []string
	for _, n := range c.Names() {
		if !c.paused[n] && c.Procs[n] != nil && !c.Procs[n].Exited() {
			live = append(live, n)
		}
	}
	if len(live) == 0 {
		return "", errors.New("no member is running")
	}
	cli, err := c.Target(c.T, live...).Client()
	if err != nil {
		return "", err
	}
	defer cli.Close()
	ml, err := cli.MemberList(ctx)
	if err != nil {
		return "", err
	}
	ids := map[uint64]string{}
	for _, m := range ml.Members {
		ids[m.ID] = m.Name
	}
	seen := map[string]int{}
	for _, n := range live {
		st, err := cli.Status(ctx, c.ClientURL(n))
		if err != nil || st.Leader == 0 {
			continue
		}
		seen[ids[st.Leader]]++
	}
	for name, votes := range seen {
		if name != "" && votes > len(c.Names())/2 {
			return name, nil
		}
	}
	return "", fmt.Errorf("no leader that a quorum agrees on (%v)", seen)
}

// Followers are the running members other than the leader.
func (c *Cluster) Followers(ctx context.Context) []string {
	leader := c.Leader(ctx)
	var out []string
	for _, n := range c.Names() {
		if n != leader {
			out = append(out, n)
		}
	}
	return out
}

// Kill sends SIGKILL to a member and waits for it to die.
func (c *Cluster) Kill(name string) { c.Stop(c.T, name, syscall.SIGKILL) }

// Restart starts a stopped member again and waits until it serves.
func (c *Cluster) Restart(name string) { c.Start(c.T, name) }

// Running reports whether a member's process runs (a paused one does).
func (c *Cluster) Running(name string) bool {
	p := c.Procs[name]
	return p != nil && !p.Exited()
}

// Launch starts a member's process from a config and returns at once:
// a member that joins as a learner is ready only once it has caught up,
// and whoever added it waits for that.
func (c *Cluster) Launch(name, config string) {
	c.Procs[name] = testutil.Start(c.T, nil, c.Bin, "member", "run", "--config", config)
}

// Replaced makes m a member in old's place: in the spec (on disk too, so
// Target, ClientEnv and `etcdkit` commands see the new set) and in the
// processes. m's process is whatever Launch started, if anything.
func (c *Cluster) Replaced(old string, m spec.Member) {
	c.T.Helper()
	var members []spec.Member
	for _, o := range c.Spec.Members {
		if o.Name != old && o.Name != m.Name {
			members = append(members, o)
		}
	}
	c.Spec.Members = append(members, m)
	if err := c.Spec.Write(c.Dir.Spec()); err != nil {
		c.T.Fatal(err)
	}
	delete(c.Procs, old)
	delete(c.paused, old)
	c.redialAdmin()
}

// Pause freezes a member with SIGSTOP.
func (c *Cluster) Pause(name string) {
	c.T.Helper()
	if err := c.Procs[name].Signal(syscall.SIGSTOP); err != nil {
		c.T.Fatal(err)
	}
	c.paused[name] = true
}

// Resume thaws a paused member with SIGCONT.
func (c *Cluster) Resume(name string) {
	c.T.Helper()
	if err := c.Procs[name].Signal(syscall.SIGCONT); err != nil {
		c.T.Fatal(err)
	}
	delete(c.paused, name)
}

// Isolate partitions a member from the others (needs PeerProxies).
func (c *Cluster) Isolate(name string) {
	if c.Network == nil {
		c.T.Fatal("Isolate needs ClusterOptions.PeerProxies")
	}
	c.Network.Isolate(name)
}

// Heal ends a member's partition.
func (c *Cluster) Heal(name string) { c.Network.Heal(name) }

// ElectionTimeout is the members' election timeout.
func (c *Cluster) ElectionTimeout() time.Duration {
	cfg := c.Config(c.T, c.Names()[0])
	if cfg.ElectionTimeout == 0 {
		return etcdconf.DefaultElectionMs * time.Millisecond
	}
	return time.Duration(cfg.ElectionTimeout) * time.Millisecond
}

// Etcdkit runs the etcdkit binary with the cluster's ETCDCTL_* variables.
func (c *Cluster) Etcdkit(args ...string) testutil.Result {
	return testutil.Run(c.T, c.CommandEnv(), c.Bin, args...)
}

// CommandEnv is the environment of an etcdkit command against the
// cluster: its ETCDCTL_* variables and ClusterOptions.Env.
func (c *Cluster) CommandEnv() []string {
	return append(c.ClientEnv(c.T), c.env...)
}

// WaitHealthy waits until `etcdkit health --cluster` passes.
func (c *Cluster) WaitHealthy(ctx context.Context) {
	c.T.Helper()
	c.retry(ctx, 2*time.Minute, func(context.Context) error {
		r := c.Etcdkit("health", "--cluster", "-o", "json")
		if r.Code != 0 {
			return fmt.Errorf("etcdkit health: exit %d: %s", r.Code, strings.TrimSpace(r.Stderr))
		}
		var hs []ops.EndpointHealth
		if err := json.Unmarshal([]byte(r.Stdout), &hs); err != nil {
			return fmt.Errorf("etcdkit health -o json: %w", err)
		}
		if len(hs) != len(c.Names()) {
			return fmt.Errorf("etcdkit health checked %d endpoints, want %d", len(hs), len(c.Names()))
		}
		return nil
	})
}

// HashKV checks that every member holds the same keyspace at rev.
func (c *Cluster) HashKV(ctx context.Context, rev int64) error {
	cli := c.Admin()
	var last error
	deadline := time.Now().Add(time.Minute)
	for _, n := range c.Names() {
		if !c.Running(n) {
			return fmt.Errorf("member %s is not running: HashKV cannot be compared", n)
		}
	}
	for time.Now().Before(deadline) {
		hashes := map[string]string{}
		last = nil
		for _, n := range c.Names() {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			r, err := cli.HashKV(cctx, c.ClientURL(n), rev)
			cancel()
			if err != nil {
				last = fmt.Errorf("member %s: HashKV at revision %d: %w", n, rev, err)
				break
			}
			hashes[n] = fmt.Sprintf("%x (compact revision %d)", r.Hash, r.CompactRevision)
		}
		if last == nil {
			distinct := map[string]bool{}
			for _, h := range hashes {
				distinct[h] = true
			}
			if len(distinct) == 1 {
				return nil
			}
			return fmt.Errorf("members disagree on the keyspace at revision %d: %v", rev, hashes)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return last
}

// retry calls fn until it succeeds or limit passes, then fails the test.
func (c *Cluster) retry(ctx context.Context, limit time.Duration, fn func(context.Context) error) {
	c.T.Helper()
	deadline := time.Now().Add(limit)
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := fn(cctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			c.T.Fatalf("gave up after %v: %v", limit, errors.Join(err, ctx.Err()))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
