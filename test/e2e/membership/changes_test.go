package membership

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/testutil"
)

// testLearner: `member add` a learner (its config and certificates
// written), re-run it; promoting it before it started is refused;
// `promote --wait` killed while it waits changes nothing; once started it
// is promoted, then removed, and every command re-run after success is a
// no-op.
func testLearner(t *testing.T, pc *testutil.ProcCluster, envs []string, backups string) {
	peer5, client5 := testutil.FreeURLs(t, 5)
	out := filepath.Join(t.TempDir(), "m5")
	addArgs := append([]string{"member", "add", "m5", "--peer-urls", peer5, "--client-urls", client5, "--backup-dir", backups},
		joinFlags(pc.Dir.PKIDir(), out)...)
	r := testutil.RunOK(t, envs, addArgs...)
	for _, want := range []string{"initial-cluster-state: existing", "m5=" + peer5, "m2=", "m3=", "m4="} {
		if !strings.Contains(r.Stdout, want) {
			t.Fatalf("member add printed no %q:\n%s", want, r.Stdout)
		}
	}
	if !strings.Contains(r.Stderr, `added member "m5"`) || !strings.Contains(r.Stderr, "as a learner") {
		t.Fatalf("member add:\n%s", r.Stderr)
	}
	for _, f := range []string{"etcd.yaml", "ssl/ca.pem", "ssl/server.pem", "ssl/peer.pem", "ssl/peer-key.pem"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(filepath.Join(out, "ssl", "server-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("server key: %v %v", fi, err)
	}
	r = testutil.RunOK(t, envs, addArgs...)
	if !strings.Contains(r.Stderr, "already in the cluster as a learner: nothing changed") {
		t.Fatalf("re-run of member add:\n%s", r.Stderr)
	}
	var id string
	for _, m := range testutil.Members(t, envs).Members {
		if slices.Contains(m.PeerURLs, peer5) {
			if m.Started || !m.Learner {
				t.Fatalf("new member: %+v", m)
			}
			id = m.ID
		}
	}

	// Not started: it has no name yet, and a promotion is refused.
	r = testutil.Run(t, envs, pc.Bin, "member", "promote", "m5")
	testutil.ExpectFailure(t, r, 1, `no member named "m5"`, "unstarted "+id)
	r = testutil.Run(t, envs, pc.Bin, "member", "remove", "m5", "--backup-dir", backups)
	testutil.ExpectFailure(t, r, 1, `no member named "m5"`, "it may be unstarted member "+id, "etcdkit member remove "+id)
	r = testutil.Run(t, envs, pc.Bin, "member", "promote", id, "--backup-dir", backups)
	testutil.ExpectFailure(t, r, 1, "refusing to promote unstarted member "+id, "has not started",
		"etcdkit member run --config", "etcdkit member promote "+id+" --wait")

	// promote --wait killed while it waits: still a learner.
	p := testutil.Start(t, envs, pc.Bin, "member", "promote", id, "--wait", "--backup-dir", backups)
	waitStderr(t, p, "waiting for")
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.Wait(t, time.Minute)
	if m := testutil.Members(t, envs).Find(id); m == nil || !m.Learner {
		t.Fatalf("after a killed promote: %+v", m)
	}

	// As an operator does it: start the learner and let `promote --wait`
	// wait for it. Waiting for it to be ready first could wait forever
	// here: it catches up from the leader's snapshot, and etcd refuses its
	// first proposal (publishing its name) until it applies a newer entry,
	// which nobody writes while the test waits; the wait nudges.
	m5 := testutil.Start(t, nil, testutil.Etcdkit(t), "member", "run", "--config", filepath.Join(out, "etcd.yaml"))
	r = testutil.RunOK(t, envs, "member", "promote", id, "--wait", "--backup-dir", backups)
	testutil.WaitReady(t, m5)
	if !strings.Contains(r.Stdout, `promoted member "m5"`) {
		t.Fatalf("promote:\n%s%s", r.Stdout, r.Stderr)
	}
	r = testutil.RunOK(t, envs, "member", "promote", "m5", "--backup-dir", backups)
	if !strings.Contains(r.Stdout, "is a voting member already: nothing to do") {
		t.Fatalf("re-run of promote:\n%s", r.Stdout)
	}
	testutil.ExpectVoters(t, testutil.Members(t, envs), "m2", "m3", "m4", "m5")

	// 4 to 3 voters: allowed. The member stops by itself.
	r = testutil.RunOK(t, envs, "member", "remove", "m5", "--backup-dir", backups)
	if !strings.Contains(r.Stdout, `removed member "m5"`) {
		t.Fatalf("remove:\n%s%s", r.Stdout, r.Stderr)
	}
	m5.Wait(t, time.Minute)
	if !strings.Contains(m5.Stderr(), "removed from the cluster") {
		t.Fatalf("the removed member did not say why it stopped:\n%s", m5.Stderr())
	}
	r = testutil.RunOK(t, envs, "member", "remove", "m5", "--backup-dir", backups)
	if !strings.Contains(r.Stdout, `no member "m5" in the cluster`) || !strings.Contains(r.Stdout, "already removed") {
		t.Fatalf("re-run of remove:\n%s", r.Stdout)
	}
	testutil.ExpectVoters(t, testutil.Members(t, envs), "m2", "m3", "m4")
}

// testUpdate moves m4's peer URL to another port: stopped, updated,
// restarted from a config listening there; the re-run is a no-op.
func testUpdate(t *testing.T, pc *testutil.ProcCluster, envs []string, m4 *testutil.Proc, config string) *testutil.Proc {
	if err := m4.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	m4.Wait(t, time.Minute)
	peer, _ := testutil.FreeURLs(t, 4)
	r := testutil.RunOK(t, envs, "member", "update", "m4", "--peer-urls", peer, "--skip-snapshot")
	if !strings.Contains(r.Stdout, `updated member "m4"`) {
		t.Fatalf("update:\n%s%s", r.Stdout, r.Stderr)
	}
	cfg, err := etcdconf.Load(config)
	if err != nil {
		t.Fatal(err)
	}
	// What the operator changes in the member's config: where it
	// listens, what it advertises, its entry in initial-cluster.
	oldPeer := cfg.InitialAdvertisePeerURLs
	cfg.ListenPeerURLs, cfg.InitialAdvertisePeerURLs = peer, peer
	cfg.InitialCluster = strings.Replace(cfg.InitialCluster, "m4="+oldPeer, "m4="+peer, 1)
	b, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	testutil.WriteBytes(t, config, b)
	m4 = startMember(t, config)
	var ms *ops.Membership
	testutil.Retry(t, testutil.Ctx(t), func() error {
		ms = testutil.Members(t, envs)
		if m := ms.Find("m4"); m == nil || !m.Healthy {
			return os.ErrNotExist
		}
		return nil
	})
	if m := ms.Find("m4"); m.PeerURLs[0] != peer {
		t.Fatalf("m4 peer URLs %v, want %s", m.PeerURLs, peer)
	}
	r = testutil.RunOK(t, envs, "member", "update", "m4", "--peer-urls", peer)
	if !strings.Contains(r.Stdout, "nothing to do") {
		t.Fatalf("re-run of update:\n%s", r.Stdout)
	}
	return m4
}

// testRemoveLeader: the leader is removed under a writer connected to
// the others; leadership moves first, so the writer sees no error. Then
// one of the two left is killed: with quorum lost, adding is refused and
// the member list says it is one member's view.
func testRemoveLeader(t *testing.T, pc *testutil.ProcCluster, procs map[string]*testutil.Proc, clientURLs map[string]string, backups string) {
	ctx := longCtx(t)
	var eps []string
	for _, n := range []string{"m2", "m3", "m4"} {
		eps = append(eps, clientURLs[n])
	}
	tg := pc.Target(t)
	tg.Endpoints = eps
	leader := leaderOf(t, ctx, tg)
	var others []string
	for _, n := range []string{"m2", "m3", "m4"} {
		if n != leader {
			others = append(others, n)
		}
	}
	otherEPs := []string{clientURLs[others[0]], clientURLs[others[1]]}
	envs := env(t, pc, eps...)

	w := testutil.StartWriterWith(ctx, client(t, pc, otherEPs...), testutil.WriterOptions{Prefix: "e-", Timeout: 15 * time.Second})
	w.WaitFor(t, 100)
	r := testutil.Run(t, envs, pc.Bin, "member", "remove", leader, "--backup-dir", backups)
	testutil.ExpectFailure(t, r, 1, "it would leave 2 voting members", "tolerate no failure", "--force")
	r = testutil.RunOK(t, envs, "member", "remove", leader, "--force", "--backup-dir", backups)
	if !strings.Contains(r.Stdout, "moved leadership to") || !strings.Contains(r.Stderr, "moving leadership away first") {
		t.Fatalf("the leader was removed without moving leadership first:\n%s%s", r.Stdout, r.Stderr)
	}
	w.WaitFor(t, w.Acked()+100)
	acked, errs := w.StopErrors()
	// The cluster never waits for an election. etcd drops proposals in
	// flight during the hand-over itself (a write at that instant times
	// out: "request timed out", code Unavailable, which clients retry);
	// nothing else may fail.
	if len(errs) > 1 {
		t.Fatalf("the writer saw %d failed writes while the leader was removed: %v", len(errs), errs)
	}
	for _, err := range errs {
		if !unavailable(err) {
			t.Fatalf("a write failed with a non-transient error while the leader was removed: %v", err)
		}
	}
	checkAcked(t, ctx, pc, otherEPs, "e-", acked)
	procs[leader].Wait(t, time.Minute)

	// Quorum lost: one of two left.
	if err := procs[others[0]].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	procs[others[0]].Wait(t, time.Minute)
	peer6, _ := testutil.FreeURLs(t, 6)
	r = testutil.Run(t, envs, pc.Bin, "member", "add", "m6", "--peer-urls", peer6, "--backup-dir", backups, "--command-timeout", "2s")
	testutil.ExpectFailure(t, r, 3, `refusing to add member "m6"`, "the cluster has lost quorum", "0 of 2 voting members are healthy",
		"etcdkit cluster recover")
	r = testutil.Run(t, envs, pc.Bin, "member", "list", "--command-timeout", "2s")
	testutil.ExpectFailure(t, r, 3, "no quorum answered")
	if !strings.Contains(r.Stdout, others[1]) {
		t.Fatalf("member list without quorum shows nothing:\n%s", r.Stdout)
	}
}
