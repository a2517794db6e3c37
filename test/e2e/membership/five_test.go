package membership

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/etcdkit/etcdkit/internal/testutil"
)

// TestFiveMembersTwoFailures: five members under a writer; m1 and m2 are
// SIGKILLed together, and the three left keep quorum. `member replace m1
// --name m6` is killed right after it added m6, run again and killed
// while it waits for m6 to start, and run a third time once m6 runs;
// then `member replace m2 --name m7` runs straight through. Every
// acknowledged write is on m3..m7, their KV hashes agree, and all five
// vote.
func TestFiveMembersTwoFailures(t *testing.T) {
	pc := testutil.NewProcCluster(t, 5)
	pc.Start(t)
	ctx := longCtx(t)
	all := pc.Target(t).Endpoints
	envAll := env(t, pc, all...)
	backups := filepath.Join(t.TempDir(), "backups")

	w := testutil.StartWriter(ctx, client(t, pc, all...))
	w.WaitFor(t, 200)
	pc.Stop(t, "m1", syscall.SIGKILL)
	pc.Stop(t, "m2", syscall.SIGKILL)
	w.WaitFor(t, w.Acked()+100)

	peer6, client6 := testutil.FreeURLs(t, 6)
	out6 := filepath.Join(t.TempDir(), "m6")
	args6 := append([]string{"member", "replace", "m1", "--name", "m6", "--peer-url", peer6, "--client-url", client6,
		"--backup-dir", backups}, joinFlags(pc.Dir.PKIDir(), out6)...)
	r := testutil.Run(t, append(envAll, killAfter("add")), pc.Bin, args6...)
	if r.Code != -1 {
		t.Fatalf("the failpoint did not kill the replacement after the add: exit %d\n%s", r.Code, r.Stderr)
	}
	p := testutil.Start(t, envAll, pc.Bin, args6...)
	waitStderr(t, p, "waiting up to")
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.Wait(t, time.Minute)
	if !strings.Contains(p.Stderr(), "==> write the new member's config") || strings.Contains(p.Stderr(), "==> add the new member") {
		t.Fatalf("the second run did not continue after the add:\n%s", p.Stderr())
	}
	startMember(t, filepath.Join(out6, "etcd.yaml"))
	r = testutil.RunOK(t, envAll, args6...)
	if !strings.Contains(r.Stdout, `replaced member "m1" with "m6"`) {
		t.Fatalf("third run:\n%s%s", r.Stdout, r.Stderr)
	}

	peer7, client7 := testutil.FreeURLs(t, 7)
	out7 := filepath.Join(t.TempDir(), "m7")
	p = testutil.Start(t, envAll, pc.Bin, append([]string{"member", "replace", "m2", "--name", "m7", "--peer-url", peer7,
		"--client-url", client7, "--backup-dir", backups}, joinFlags(pc.Dir.PKIDir(), out7)...)...)
	testutil.WaitFile(t, p, filepath.Join(out7, "etcd.yaml"))
	startMember(t, filepath.Join(out7, "etcd.yaml"))
	testutil.Finish(t, p)
	if !strings.Contains(p.Stdout(), `replaced member "m2" with "m7"`) {
		t.Fatalf("replace m2:\n%s", p.Stdout())
	}

	w.WaitFor(t, w.Acked()+100)
	acked, _ := w.Stop()
	eps := append(all[2:], client6, client7)
	checkData(t, ctx, pc, eps, acked)
	testutil.ExpectVoters(t, testutil.Members(t, env(t, pc, eps...)), "m3", "m4", "m5", "m6", "m7")
	if snaps, _ := filepath.Glob(filepath.Join(backups, "*.db")); len(snaps) != 2 {
		t.Fatalf("want one snapshot per replacement, got %v", snaps)
	}
}
