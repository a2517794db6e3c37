// Package membership tests membership changes end to end: real members
// as separate `etcdkit member run` processes (or under `etcdkit up`),
// killed with SIGKILL, changed with the built etcdkit binary.
package membership

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/etcdkit/etcdkit/internal/connect"
	"github.com/etcdkit/etcdkit/internal/local"
	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/testutil"
)

// longCtx bounds a whole test: a writer runs throughout.
func longCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// env is the ETCDCTL_* environment for the given client URLs.
func env(t *testing.T, pc *testutil.ProcCluster, endpoints ...string) []string {
	t.Helper()
	tg := pc.Target(t)
	return []string{
		"ETCDCTL_ENDPOINTS=" + strings.Join(endpoints, ","),
		"ETCDCTL_CACERT=" + tg.CACert, "ETCDCTL_CERT=" + tg.Cert, "ETCDCTL_KEY=" + tg.Key,
	}
}

// client opens a client to the given client URLs, closed with the test.
func client(t *testing.T, pc *testutil.ProcCluster, endpoints ...string) *clientv3.Client {
	t.Helper()
	tg := pc.Target(t)
	tg.Endpoints = endpoints
	cli, err := tg.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// newURLs picks a free peer and client URL on 127.0.0.i.
func newURLs(t *testing.T, i int) (peer, clientURL string) {
	t.Helper()
	ip := fmt.Sprintf("127.0.0.%d", i)
	ports, err := local.FreePorts(ip, 2)
	if err != nil {
		t.Fatal(err)
	}
	return "https://" + net.JoinHostPort(ip, strconv.Itoa(ports[0])), "https://" + net.JoinHostPort(ip, strconv.Itoa(ports[1]))
}

// run runs etcdkit and fails the test on a non-zero exit.
func run(t *testing.T, env []string, args ...string) testutil.Result {
	t.Helper()
	r := testutil.Run(t, env, testutil.Etcdkit(t), args...)
	if r.Code != 0 {
		t.Fatalf("etcdkit %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	testutil.AssertNoStackTrace(t, r.Stderr)
	return r
}

// members reads `member list -o json`.
func members(t *testing.T, env []string, extra ...string) *ops.Membership {
	t.Helper()
	r := testutil.Run(t, env, testutil.Etcdkit(t), append([]string{"member", "list", "-o", "json"}, extra...)...)
	var ms ops.Membership
	if err := json.Unmarshal([]byte(r.Stdout), &ms); err != nil {
		t.Fatalf("member list -o json: exit %d, %v\n%s%s", r.Code, err, r.Stdout, r.Stderr)
	}
	return &ms
}

// expectMembers checks the member list is exactly names, all started
// healthy voters.
func expectMembers(t *testing.T, ms *ops.Membership, names ...string) {
	t.Helper()
	var got []string
	for _, m := range ms.Members {
		got = append(got, m.Name)
		if !m.Started || m.Learner || !m.Healthy {
			t.Fatalf("member %s: started %v learner %v healthy %v (%s)", m.Name, m.Started, m.Learner, m.Healthy, m.Error)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, names) {
		t.Fatalf("members %v, want %v", got, names)
	}
}

// startMember runs `etcdkit member run` on a config and waits until it
// serves.
func startMember(t *testing.T, config string) *testutil.Proc {
	t.Helper()
	p := testutil.Start(t, nil, testutil.Etcdkit(t), "member", "run", "--config", config)
	testutil.WaitReady(t, p)
	return p
}

// waitFile waits until path exists, failing if p ends first.
func waitFile(t *testing.T, p *testutil.Proc, path string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("%s never appeared\nstdout:\n%s\nstderr:\n%s", path, p.Stdout(), p.Stderr())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitStderr waits until p has printed s on stderr.
func waitStderr(t *testing.T, p *testutil.Proc, s string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(p.Stderr(), s) {
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("stderr never showed %q\nstdout:\n%s\nstderr:\n%s", s, p.Stdout(), p.Stderr())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// finish waits for a background etcdkit command and checks it succeeded.
func finish(t *testing.T, p *testutil.Proc) {
	t.Helper()
	if code := p.Wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("%v: exit %d\nstdout:\n%s\nstderr:\n%s", p.Cmd.Args[1:], code, p.Stdout(), p.Stderr())
	}
	testutil.AssertNoStackTrace(t, p.Stderr())
}

// checkData checks, after the writer stopped, that every acknowledged
// write is on every member and that the members' KV hashes at one
// revision are equal.
func checkData(t *testing.T, ctx context.Context, pc *testutil.ProcCluster, eps []string, acked []string) {
	t.Helper()
	all := client(t, pc, eps...)
	var rev int64
	testutil.Retry(t, ctx, func() error {
		resp, err := all.Get(ctx, "w-", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err == nil {
			rev = resp.Header.Revision
		}
		return err
	})
	checkAcked(t, ctx, pc, eps, "w-", acked)
	hashes := map[uint32][]string{}
	for _, ep := range eps {
		cli := client(t, pc, ep)
		var h *clientv3.HashKVResponse
		testutil.Retry(t, ctx, func() error {
			var err error
			h, err = cli.HashKV(ctx, ep, rev)
			return err
		})
		hashes[h.Hash] = append(hashes[h.Hash], ep)
	}
	if len(hashes) != 1 {
		t.Fatalf("members disagree on the KV hash at revision %d: %v", rev, hashes)
	}
}

// leaderOf finds the member that leads, by name.
func leaderOf(t *testing.T, ctx context.Context, tg *connect.Target) string {
	t.Helper()
	for _, s := range ops.Status(ctx, tg) {
		if s.IsLeader {
			return s.Name
		}
	}
	t.Fatal("no leader")
	return ""
}

// errWriter is testutil's Writer that also keeps each failed write's
// error, to tell a transient error (the outcome unknown, retried by
// clients such as kube-apiserver) from a real one.
type errWriter struct {
	mu     sync.Mutex
	acked  []string
	errs   []error
	cancel context.CancelFunc
	done   chan struct{}
}

func startErrWriter(ctx context.Context, cli *clientv3.Client) *errWriter {
	ctx, cancel := context.WithCancel(ctx)
	w := &errWriter{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; ctx.Err() == nil; i++ {
			k := fmt.Sprintf("e-%06d", i)
			// Longer than etcd's own request timeout (7 s), so a failure
			// is etcd's answer, not this client giving up.
			pctx, pcancel := context.WithTimeout(ctx, 15*time.Second)
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

func (w *errWriter) waitFor(t *testing.T, n int) {
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

func (w *errWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// unavailable reports etcd's transient errors (gRPC code Unavailable).
func unavailable(err error) bool {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code() == codes.Unavailable
	}
	s, ok := status.FromError(err)
	return ok && s.Code() == codes.Unavailable
}

// checkAcked fails unless every acknowledged key (under prefix) is on
// each of the members.
func checkAcked(t *testing.T, ctx context.Context, pc *testutil.ProcCluster, eps []string, prefix string, acked []string) {
	t.Helper()
	for _, ep := range eps {
		resp, err := client(t, pc, ep).Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, kv := range resp.Kvs {
			have[string(kv.Key)] = true
		}
		for _, k := range acked {
			if !have[k] {
				t.Fatalf("acknowledged write %s is lost on %s (%d of %d present)", k, ep, len(have), len(acked))
			}
		}
	}
}

func (w *errWriter) stop() (acked []string, errs []error) {
	w.cancel()
	<-w.done
	return w.acked, w.errs
}

// killAfter is the failpoint that makes a replacement kill itself with
// SIGKILL right after a step.
func killAfter(step string) string { return "ETCDKIT_TEST_KILL_AFTER_STEP=" + step }

func joinFlags(pkiDir, out string) []string {
	return []string{"--pki", pkiDir, "--out", out, "--cert-dir", filepath.Join(out, "ssl"), "--data-dir", filepath.Join(out, "data")}
}
