package membership

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/etcdkit/etcdkit/internal/testutil"
)

// TestReplaceRunbook is the runbook's hardest step: members m1..m3 on
// 127.0.0.1-3 and a writer doing sequential puts throughout; SIGKILL m1
// (the leader); `member replace m1 --name m4` on 127.0.0.4, killed right
// after it removed m1 and run again; m4 starts as a learner, catches up
// and is promoted. Every acknowledged write is on every member, their KV
// hashes agree, and the member list is exactly m2, m3, m4, voting and
// healthy. Along the way, with m1 down: removing a second member, adding
// a member and a replacement onto a peer URL in use are refused, with the
// reason and the safe command, and nothing changes.
func TestReplaceRunbook(t *testing.T) {
	pc := testutil.NewProcCluster(t, 3)
	pc.Start(t)
	ctx := longCtx(t)
	pc.MoveLeader(t, ctx, "m1")
	all := pc.Target(t).Endpoints
	envAll := env(t, pc, all...)
	backups := filepath.Join(t.TempDir(), "backups")
	out := filepath.Join(t.TempDir(), "m4")

	w := testutil.StartWriter(ctx, client(t, pc, all...))
	w.WaitFor(t, 200)
	pc.Stop(t, "m1", syscall.SIGKILL)
	w.WaitFor(t, w.Acked()+100) // the survivors elected a leader and serve

	// Refusals while m1 is down; none changes anything.
	m2, m3 := pc.Member(t, "m2"), pc.Member(t, "m3")
	before := testutil.TreeState(t, filepath.Dir(backups))
	r := testutil.Run(t, envAll, pc.Bin, "member", "remove", "m2", "--force", "--backup-dir", backups)
	testutil.ExpectFailure(t, r, 3, `refusing to remove member "m2"`, "only 1 of the 2 remaining voting members would be healthy",
		"down: m1", "bring m1 back", "etcdkit member replace m1")
	peer4, client4 := testutil.FreeURLs(t, 4)
	r = testutil.Run(t, envAll, pc.Bin, "member", "add", "m4", "--peer-urls", peer4, "--backup-dir", backups)
	testutil.ExpectFailure(t, r, 3, `refusing to add member "m4"`, "only 2 of 3 voting members are healthy (down: m1)",
		"etcdkit member replace m1 --name m4")
	replaceArgs := append([]string{"member", "replace", "m1", "--name", "m4", "--peer-url", peer4, "--client-url", client4,
		"--backup-dir", backups}, joinFlags(pc.Dir.PKIDir(), out)...)
	bad := append([]string{"member", "replace", "m1", "--name", "m4", "--peer-url", m3.PeerURL, "--client-url", client4,
		"--backup-dir", backups}, joinFlags(pc.Dir.PKIDir(), out)...)
	r = testutil.Run(t, envAll, pc.Bin, bad...)
	testutil.ExpectFailure(t, r, 1, "the new peer URL "+m3.PeerURL+` is already used by member "m3"`, "choose a free address")
	testutil.AssertTreeState(t, filepath.Dir(backups), before)
	if ms := testutil.Members(t, envAll); len(ms.Members) != 3 {
		t.Fatalf("a refusal changed the members: %+v", ms.Members)
	}

	// The dry run prints the plan and changes nothing.
	r = testutil.RunOK(t, envAll, append(replaceArgs, "--dry-run")...)
	for _, want := range []string{"1. check quorum", "2 of 2 remaining voting members healthy", "3. remove the old member",
		`remove member "m1"`, "4. add the new member as a learner", "6. wait for the new member to start",
		"etcdkit member run --config " + filepath.Join(out, "etcd.yaml"), "dry run: nothing was changed"} {
		if !strings.Contains(r.Stdout, want) {
			t.Fatalf("dry run lacks %q:\n%s", want, r.Stdout)
		}
	}
	testutil.AssertTreeState(t, filepath.Dir(backups), before)

	// Killed right after removing m1: m1 is gone, nothing else changed.
	r = testutil.Run(t, append(envAll, killAfter("remove")), pc.Bin, replaceArgs...)
	if r.Code != -1 || !strings.Contains(r.Stderr, "remove the old member") {
		t.Fatalf("the failpoint did not kill the replacement after the removal: exit %d\n%s", r.Code, r.Stderr)
	}
	testutil.ExpectVoters(t, testutil.Members(t, envAll), "m2", "m3")

	// Run again: it continues, writes m4's files and waits for it.
	p := testutil.Start(t, envAll, pc.Bin, replaceArgs...)
	testutil.WaitFile(t, p, filepath.Join(out, "etcd.yaml"))
	waitStderr(t, p, "waiting up to")
	m4 := startMember(t, filepath.Join(out, "etcd.yaml"))
	testutil.Finish(t, p)
	for _, want := range []string{`replaced member "m1" with "m4"`, "members: m2, m3, m4",
		"--etcd-servers=" + strings.Join([]string{m2.ClientURL, m3.ClientURL, client4}, ",")} {
		if !strings.Contains(p.Stdout(), want) {
			t.Fatalf("replace output lacks %q:\n%s", want, p.Stdout())
		}
	}
	if !strings.Contains(p.Stderr(), `added "m4" as learner`) || !strings.Contains(p.Stderr(), `"m4" is a voting member`) {
		t.Fatalf("m4 did not join as a learner and get promoted:\n%s", p.Stderr())
	}
	if strings.Contains(p.Stderr(), "==> take a snapshot") || strings.Contains(p.Stderr(), "==> remove the old member") {
		t.Fatalf("the re-run redid a step it had done:\n%s", p.Stderr())
	}
	if snaps, _ := filepath.Glob(filepath.Join(backups, "*.db")); len(snaps) != 1 {
		t.Fatalf("want the one snapshot taken before the change, got %v", snaps)
	}

	w.WaitFor(t, w.Acked()+100)
	acked, _ := w.Stop()
	survivors := []string{m2.ClientURL, m3.ClientURL, client4}
	checkData(t, ctx, pc, survivors, acked)
	testutil.ExpectVoters(t, testutil.Members(t, envAll), "m2", "m3", "m4")

	// Re-run after success: nothing to do, same state.
	r = testutil.RunOK(t, envAll, replaceArgs...)
	if !strings.Contains(r.Stdout, "nothing left to do") {
		t.Fatalf("re-run after success:\n%s%s", r.Stdout, r.Stderr)
	}
	testutil.ExpectVoters(t, testutil.Members(t, envAll), "m2", "m3", "m4")

	// The same cluster, reused: m2, m3, m4. Not subtests: the members a
	// step starts must outlive it.
	procs := map[string]*testutil.Proc{"m2": pc.Procs["m2"], "m3": pc.Procs["m3"], "m4": m4}
	clientURLs := map[string]string{"m2": m2.ClientURL, "m3": m3.ClientURL, "m4": client4}
	testLearner(t, pc, env(t, pc, survivors...), backups)
	procs["m4"] = testUpdate(t, pc, env(t, pc, survivors...), procs["m4"], filepath.Join(out, "etcd.yaml"))
	testRemoveLeader(t, pc, procs, clientURLs, backups)
}
