package pki

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/testutil"
)

// TestRenewWithoutRestart: renewing a running member's certificates keeps
// it running and serving, and a client that connects afterwards sees the
// new certificate's NotAfter (etcd reads the files on every handshake).
func TestRenewWithoutRestart(t *testing.T) {
	pc := testutil.NewProcCluster(t, 1)
	pc.Start(t)
	ctx := longCtx(t)
	dir := string(pc.Dir)
	cli := pc.Client(t) // connected before the renewal
	if _, err := cli.Put(ctx, "before", "x"); err != nil {
		t.Fatal(err)
	}
	before := statusNotAfter(t, dir)
	if d := time.Until(before); d < 40000*time.Hour {
		t.Fatalf("a fresh certificate expires in %v", d)
	}

	r := ek(t, "pki", "renew", "m1", "client", "--validity", "2000h", "--dir", dir)
	if !strings.Contains(r.Stdout, "m1/server") || !strings.Contains(r.Stdout, "m1/peer") || !strings.Contains(r.Stdout, ".bak-") {
		t.Fatalf("renew output:\n%s", r.Stdout)
	}
	backups, _ := filepath.Glob(filepath.Join(pc.Dir.Member("m1").PKIDir(), "server.pem.bak-*"))
	if len(backups) != 1 || !loadCert(t, backups[0]).NotAfter.Equal(before) {
		t.Fatalf("the old server certificate is not kept: %v", backups)
	}

	after := statusNotAfter(t, dir)
	if d := time.Until(after); d < 1990*time.Hour || d > 2000*time.Hour {
		t.Fatalf("after renewal a new connection sees a certificate that expires in %v, want about 2000h", d)
	}
	if pc.Procs["m1"].Exited() {
		t.Fatal("the member stopped")
	}
	if _, err := cli.Put(ctx, "after", "x"); err != nil {
		t.Fatalf("the connection made before the renewal: %v", err)
	}
	if _, err := pc.Client(t).Put(ctx, "after-new-client", "x"); err != nil {
		t.Fatalf("a client connecting after the renewal: %v", err)
	}
	r = ek(t, "pki", "check", "--dir", dir, "-o", "json")
	var rep pki.Report
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil || len(rep.Findings) != 0 {
		t.Fatalf("check after renew: %v %+v", err, rep.Findings)
	}
}

// statusNotAfter is what `etcdkit status` reports for the served
// certificate: a new TLS connection's view.
func statusNotAfter(t *testing.T, dir string) time.Time {
	t.Helper()
	r := ek(t, "status", "-o", "json", "--dir", dir)
	var ss []ops.EndpointStatus
	if err := json.Unmarshal([]byte(r.Stdout), &ss); err != nil || len(ss) != 1 || ss[0].CertNotAfter.IsZero() {
		t.Fatalf("status: %v\n%s", err, r.Stdout)
	}
	return ss[0].CertNotAfter
}
