package testutil

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdkit/etcdkit/internal/connect"
	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/local"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// ProcCluster runs the members of a local dir as `etcdkit member run`
// processes, without `up`, so a test can kill, restart and reconfigure
// each one. The dir is made by local.Dir.Create: member i on 127.0.0.i,
// TLS with client certificates on client and peer URLs.
type ProcCluster struct {
	Bin   string
	Dir   local.Dir
	Spec  *spec.Cluster
	Procs map[string]*Proc
}

// NewProcCluster creates (but does not start) a cluster of n members in a
// temporary directory.
func NewProcCluster(t testing.TB, members int) *ProcCluster {
	t.Helper()
	d := local.Dir(filepath.Join(t.TempDir(), "c"))
	c, err := d.Create(local.CreateOptions{Members: members})
	if err != nil {
		t.Fatal(err)
	}
	return &ProcCluster{Bin: Etcdkit(t), Dir: d, Spec: c, Procs: map[string]*Proc{}}
}

// Names lists the members of the spec.
func (pc *ProcCluster) Names() []string {
	var out []string
	for _, m := range pc.Spec.Members {
		out = append(out, m.Name)
	}
	return out
}

// Start starts members at once and waits until each is ready (a member of
// a new cluster is ready once a quorum has started).
func (pc *ProcCluster) Start(t testing.TB, names ...string) {
	t.Helper()
	if len(names) == 0 {
		names = pc.Names()
	}
	for _, n := range names {
		pc.Procs[n] = Start(t, nil, pc.Bin, "member", "run", "--config", pc.Dir.Member(n).Config())
	}
	for _, n := range names {
		WaitReady(t, pc.Procs[n])
	}
}

// Stop signals a member (SIGTERM for a clean stop, SIGKILL for a crash)
// and waits for it to end.
func (pc *ProcCluster) Stop(t testing.TB, name string, sig syscall.Signal) {
	t.Helper()
	p := pc.Procs[name]
	if err := p.Signal(sig); err != nil {
		t.Fatal(err)
	}
	p.Wait(t, time.Minute)
}

// Member is the spec entry of a member.
func (pc *ProcCluster) Member(t testing.TB, name string) *spec.Member {
	t.Helper()
	m, ok := pc.Spec.Member(name)
	if !ok {
		t.Fatalf("no member %q", name)
	}
	return m
}

// Config reads a member's etcd config.
func (pc *ProcCluster) Config(t testing.TB, name string) *etcdconf.Config {
	t.Helper()
	cfg, err := etcdconf.Load(pc.Dir.Member(name).Config())
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// WriteConfig replaces a member's etcd config.
func (pc *ProcCluster) WriteConfig(t testing.TB, name string, cfg *etcdconf.Config) {
	t.Helper()
	b, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	WriteBytes(t, pc.Dir.Member(name).Config(), b)
}

// Target is the connection to the given members (all when none).
func (pc *ProcCluster) Target(t testing.TB, names ...string) *connect.Target {
	t.Helper()
	s, err := pc.Dir.Settings()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) > 0 {
		s.Endpoints = nil
		for _, n := range names {
			s.Endpoints = append(s.Endpoints, pc.Member(t, n).ClientURL)
		}
	}
	tg, err := connect.Resolve(s, connect.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// Client opens a client to the given members (all when none), closed when
// the test ends.
func (pc *ProcCluster) Client(t testing.TB, names ...string) *clientv3.Client {
	t.Helper()
	cli, err := pc.Target(t, names...).Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// ClientEnv is the ETCDCTL_* environment for the stock etcdctl and for
// etcdkit's client commands.
func (pc *ProcCluster) ClientEnv(t testing.TB, names ...string) []string {
	t.Helper()
	tg := pc.Target(t, names...)
	return []string{
		"ETCDCTL_ENDPOINTS=" + strings.Join(tg.Endpoints, ","),
		"ETCDCTL_CACERT=" + tg.CACert,
		"ETCDCTL_CERT=" + tg.Cert,
		"ETCDCTL_KEY=" + tg.Key,
	}
}

// MoveLeader makes the named member the leader.
func (pc *ProcCluster) MoveLeader(t testing.TB, ctx context.Context, to string) {
	t.Helper()
	cli := pc.Client(t)
	Retry(t, ctx, func() error {
		ml, err := cli.MemberList(ctx)
		if err != nil {
			return err
		}
		var toID uint64
		for _, m := range ml.Members {
			if m.Name == to {
				toID = m.ID
			}
		}
		for _, m := range pc.Spec.Members {
			st, err := cli.Status(ctx, m.ClientURL)
			if err != nil {
				continue
			}
			if st.Leader == toID {
				return nil
			}
			if st.Leader == st.Header.MemberId {
				if _, err := pc.Client(t, m.Name).MoveLeader(ctx, toID); err != nil {
					return err
				}
				return errors.New("leadership moved; checking")
			}
		}
		return errors.New("no leader")
	})
}

// WaitReady waits until a `member run` process logs that it serves
// clients, failing if it exits first.
func WaitReady(t testing.TB, p *Proc) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(p.Stderr(), "member is ready") {
		if p.Exited() {
			t.Fatalf("member exited: %s", p.Stderr())
		}
		if time.Now().After(deadline) {
			t.Fatalf("member %v not ready:\n%s", p.Cmd.Args, p.Stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Writer puts distinct keys ("w-000000", ...) one after the other and
// remembers which were acknowledged, and the error of each that failed, so
// a test can check that none is lost and which errors clients saw.
type Writer struct {
	mu     sync.Mutex
	acked  []string
	errs   []error
	cancel context.CancelFunc
	done   chan struct{}
}

// WriterOptions tunes StartWriterWith.
type WriterOptions struct {
	// Prefix starts every key; default "w-".
	Prefix string
	// Timeout bounds each put; default 2 s. A timeout longer than etcd's
	// own request timeout (7 s) makes every failure etcd's answer rather
	// than this client giving up.
	Timeout time.Duration
}

// StartWriter starts a writer on cli until Stop.
func StartWriter(ctx context.Context, cli *clientv3.Client) *Writer {
	return StartWriterWith(ctx, cli, WriterOptions{})
}

// StartWriterWith starts a writer with options.
func StartWriterWith(ctx context.Context, cli *clientv3.Client, o WriterOptions) *Writer {
	if o.Prefix == "" {
		o.Prefix = "w-"
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &Writer{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; ctx.Err() == nil; i++ {
			k := fmt.Sprintf("%s%06d", o.Prefix, i)
			pctx, pcancel := context.WithTimeout(ctx, o.Timeout)
			_, err := cli.Put(pctx, k, k)
			pcancel()
			w.mu.Lock()
			if err == nil {
				w.acked = append(w.acked, k)
			} else if ctx.Err() == nil {
				w.errs = append(w.errs, err)
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// WaitFor waits until at least n writes were acknowledged.
func (w *Writer) WaitFor(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		w.mu.Lock()
		got := len(w.acked)
		w.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d writes acknowledged", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Acked is how many writes were acknowledged so far.
func (w *Writer) Acked() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// Stop ends the writer and returns the acknowledged keys and the number of
// writes that failed (after clientv3's own retries).
func (w *Writer) Stop() (acked []string, failed int) {
	acked, errs := w.StopErrors()
	return acked, len(errs)
}

// StopErrors ends the writer and returns the acknowledged keys and the
// error of every write that failed.
func (w *Writer) StopErrors() (acked []string, errs []error) {
	w.cancel()
	<-w.done
	return w.acked, w.errs
}

// CheckAcked fails unless every acknowledged key is readable through cli.
func CheckAcked(t testing.TB, ctx context.Context, cli *clientv3.Client, acked []string) {
	t.Helper()
	resp, err := cli.Get(ctx, "w-", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, kv := range resp.Kvs {
		have[string(kv.Key)] = true
	}
	for _, k := range acked {
		if !have[k] {
			t.Fatalf("acknowledged write %s is lost (%d of %d present)", k, len(have), len(acked))
		}
	}
}

// Retry retries fn for up to 45 s: membership calls etcd refuses for a
// while (a member that just connected, a learner catching up).
func Retry(t testing.TB, ctx context.Context, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("gave up: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
