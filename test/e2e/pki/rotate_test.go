package pki

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/testutil"
)

// TestRotateCAUnderWrites: the three phases of rotate-ca on a running
// 3-member cluster while a writer puts keys the whole time. No member is
// restarted during the rotation and no write fails or is lost. Members that
// started before the rotation keep trusting only the old CA, and still
// accept every re-issued certificate (through the cross-signed one) on new
// connections. Dropping the cross-signed certificate is refused until each
// member has been restarted once, which the live probe sees.
func TestRotateCAUnderWrites(t *testing.T) {
	pc := testutil.NewProcCluster(t, 3)
	pc.Start(t)
	ctx := longCtx(t)
	dir := string(pc.Dir)
	oldCA := loadCert(t, pc.Dir.CA().Cert)
	// The writer's client was made before the rotation: it trusts only
	// the old CA, as a kube-apiserver started before it would.
	w := testutil.StartWriter(ctx, pc.Client(t))
	w.WaitFor(t, 50)
	pids := map[string]int{}
	for n, p := range pc.Procs {
		pids[n] = p.Cmd.Process.Pid
	}

	r := ek(t, "pki", "rotate-ca", "--dir", dir)
	for _, want := range []string{"no CA rotation under way", "next: etcdkit pki rotate-ca trust --dir " + dir} {
		if !strings.Contains(r.Stdout, want) {
			t.Fatalf("status before the rotation lacks %q:\n%s", want, r.Stdout)
		}
	}

	// Phase 1: every trust file holds both CAs; the members, started
	// before, trust only the old one (the probe says so) and need no
	// restart for the next phase.
	r = ek(t, "pki", "rotate-ca", "trust", "--dir", dir)
	for _, want := range []string{"phase 1 of 3 done", "no member restart is needed for the next phase", "next: etcdkit pki rotate-ca reissue --dir " + dir} {
		if !strings.Contains(r.Stdout, want) {
			t.Fatalf("trust output lacks %q:\n%s", want, r.Stdout)
		}
	}
	st := rotationStatus(t, dir)
	if len(st.Members) != 6 {
		t.Fatalf("want a probe of 3 client and 3 peer listeners, got %+v", st.Members)
	}
	for _, m := range st.Members {
		if m.Error != "" || m.TrustsNewCA || m.ServesNewLeaf {
			t.Fatalf("after trust, member %s %s: %+v", m.Name, m.Listener, m)
		}
	}
	newCA := loadCerts(t, pc.Dir.CA().Cert)[1]
	w.WaitFor(t, w.Acked()+20)

	// Phase 2: every leaf is re-issued by the new CA; the members serve
	// them from the next handshake on, without a restart.
	ek(t, "pki", "rotate-ca", "reissue", "--dir", dir)
	st = rotationStatus(t, dir)
	for _, m := range st.Members {
		if m.Error != "" || !m.ServesNewLeaf || !m.ServesCrossSigned || m.TrustsNewCA {
			t.Fatalf("after reissue, member %s %s: %+v", m.Name, m.Listener, m)
		}
	}
	// A new peer connection, as a member that trusts only the old CA makes
	// it: m2's re-issued peer certificate and the old CA alone. Both sides
	// accept, so peers reconnecting at any time keep working.
	for _, m := range pc.Spec.Members {
		from := "m2"
		if m.Name == "m2" {
			from = "m3"
		}
		peerPair := pki.LayoutCfssl.Leaf(pc.Dir.Member(from).PKIDir(), pki.RolePeer)
		if err := acceptedBy(ctx, m.PeerURL, peerPair, oldCA); err != nil {
			t.Fatalf("member %s, started before the rotation, rejects %s's new peer certificate: %v", m.Name, from, err)
		}
	}
	w.WaitFor(t, w.Acked()+20)

	// Phase 3: the old CA leaves every trust file.
	r = ek(t, "pki", "rotate-ca", "finish", "--dir", dir)
	if !strings.Contains(r.Stdout, "phase 3 of 3 done") || !strings.Contains(r.Stdout, "restart it before") {
		t.Fatalf("finish output:\n%s", r.Stdout)
	}
	for _, f := range []string{pc.Dir.CA().Cert, pki.LayoutCfssl.CA(pc.Dir.Member("m1").PKIDir()).Cert} {
		if c := loadCerts(t, f); len(c) != 1 || !c[0].Equal(newCA) {
			t.Fatalf("%s after finish: want the new CA alone", f)
		}
	}
	w.WaitFor(t, w.Acked()+20)
	acked, failed := w.Stop()
	if failed != 0 {
		t.Fatalf("%d writes failed during the rotation (%d acknowledged)", failed, len(acked))
	}
	for n, p := range pc.Procs {
		if p.Exited() || p.Cmd.Process.Pid != pids[n] {
			t.Fatalf("member %s was restarted or stopped during the rotation", n)
		}
	}
	// A client that starts now trusts only the new CA, and finds every
	// acknowledged write; the stock etcdctl too.
	testutil.CheckAcked(t, ctx, pc.Client(t), acked)
	tg := pc.Target(t)
	out := etcdctl(t, strings.Join(tg.Endpoints, ","), tg.CACert, tg.Cert, tg.Key, "endpoint", "health")
	if strings.Count(out, "is healthy") != 3 {
		t.Fatalf("etcdctl endpoint health after the rotation:\n%s", out)
	}
	ek(t, "pki", "check", "--dir", dir)

	// Dropping the cross-signed certificate needs every member to trust
	// the new CA, which only a restart gives. Refused, nothing changed.
	// (Only the certificate directories: running members write their data.)
	pkiDirs := []string{pc.Dir.PKIDir()}
	for _, n := range pc.Names() {
		pkiDirs = append(pkiDirs, pc.Dir.Member(n).PKIDir())
	}
	var before []map[string]string
	for _, d := range pkiDirs {
		before = append(before, testutil.TreeState(t, d))
	}
	r = ekFails(t, "pki", "rotate-ca", "finish", "--drop-cross-signed", "--dir", dir)
	testutil.ExpectFailure(t, r, 1, "cannot drop the cross-signed certificate yet", `member "m1"`, `member "m3"`, "still trust only the old CA", "restart them one at a time")
	for i, d := range pkiDirs {
		testutil.AssertTreeState(t, d, before[i])
	}

	// Each member restarted once, one at a time: the probe sees it.
	for _, n := range pc.Names() {
		pc.Stop(t, n, syscall.SIGTERM)
		pc.Start(t, n)
		waitHealthy(t, ctx, dir)
	}
	st = rotationStatus(t, dir)
	for _, m := range st.Members {
		if !m.TrustsNewCA {
			t.Fatalf("after a restart, member %s %s: %+v", m.Name, m.Listener, m)
		}
	}
	ek(t, "pki", "rotate-ca", "finish", "--drop-cross-signed", "--dir", dir)
	for _, f := range []string{pc.Dir.Client().Cert, pki.LayoutCfssl.Leaf(pc.Dir.Member("m2").PKIDir(), pki.RolePeer).Cert} {
		if c := loadCerts(t, f); len(c) != 1 || c[0].CheckSignatureFrom(newCA) != nil {
			t.Fatalf("%s: want a leaf of the new CA alone", f)
		}
	}
	// New peer connections now need the new CA; members reconnect.
	for _, m := range pc.Spec.Members {
		if err := acceptedBy(ctx, m.PeerURL, pki.LayoutCfssl.Leaf(pc.Dir.Member("m1").PKIDir(), pki.RolePeer), newCA); err != nil {
			t.Fatalf("member %s after the rotation: %v", m.Name, err)
		}
	}
	waitHealthy(t, ctx, dir)
	if _, err := pc.Client(t).Put(ctx, "after-rotation", "x"); err != nil {
		t.Fatal(err)
	}
}

// waitHealthy retries `etcdkit health` while a restarted member settles
// (a leader election after the leader restarted).
func waitHealthy(t *testing.T, ctx context.Context, dir string) {
	t.Helper()
	testutil.Retry(t, ctx, func() error {
		if r := ekFails(t, "health", "--dir", dir); r.Code != 0 {
			return fmt.Errorf("health: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		return nil
	})
}

func rotationStatus(t *testing.T, dir string) *pki.RotationStatus {
	t.Helper()
	r := ek(t, "pki", "rotate-ca", "status", "-o", "json", "--dir", dir)
	var st pki.RotationStatus
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, r.Stdout)
	}
	return &st
}

func loadCerts(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	certs, err := pki.LoadCerts(path)
	if err != nil {
		t.Fatal(err)
	}
	return certs
}
