// Package membership tests membership changes end to end: real members
// as separate `etcdkit member run` processes (or under `etcdkit up`),
// killed with SIGKILL, changed with the built etcdkit binary.
package membership

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/etcdkit/etcdkit/internal/connect"
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

// startMember runs `etcdkit member run` on a config and waits until it
// serves.
func startMember(t *testing.T, config string) *testutil.Proc {
	t.Helper()
	p := testutil.Start(t, nil, testutil.Etcdkit(t), "member", "run", "--config", config)
	testutil.WaitReady(t, p)
	return p
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

// killAfter is the failpoint that makes a replacement kill itself with
// SIGKILL right after a step.
func killAfter(step string) string { return "ETCDKIT_TEST_KILL_AFTER_STEP=" + step }

func joinFlags(pkiDir, out string) []string {
	return []string{"--pki", pkiDir, "--out", out, "--cert-dir", filepath.Join(out, "ssl"), "--data-dir", filepath.Join(out, "data")}
}
