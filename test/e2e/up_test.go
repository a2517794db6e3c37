package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/testutil"
)

// TestUp is the walking skeleton end to end: a 3-member TLS cluster from
// one command, used through etcdkit, clientv3 and the stock etcdctl,
// stopped with Ctrl-C and started again with its data.
func TestUp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cluster")
	bin := testutil.Etcdkit(t)
	c := testutil.Up(t, dir)
	ctx := testutil.Ctx(t)

	// health needs nothing but --dir.
	r := testutil.Run(t, nil, bin, "health", "--dir", dir)
	if r.Code != 0 {
		t.Fatalf("health: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if n := strings.Count(r.Stdout, " yes "); n != 3 {
		t.Fatalf("health: want 3 healthy endpoints, got %d:\n%s", n, r.Stdout)
	}

	// A write through member 1 is read back through members 2 and 3.
	eps := c.Target(t).Endpoints
	if len(eps) != 3 {
		t.Fatalf("want 3 endpoints, got %v", eps)
	}
	if _, err := c.Client(t, eps[0]).Put(ctx, "skeleton", "v1"); err != nil {
		t.Fatal(err)
	}
	for _, ep := range eps[1:] {
		resp, err := c.Client(t, ep).Get(ctx, "skeleton")
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v1" {
			t.Fatalf("get through %s: %v", ep, resp.Kvs)
		}
	}

	// The stock etcdctl works with exactly the lines `up` printed.
	// etcdctl refuses a flag that shadows a variable, so pick one endpoint
	// with --endpoints and the rest from the printed variables.
	etcdctl := testutil.Tool(t, "etcdctl")
	perEndpoint := withoutVar(c.Env, "ETCDCTL_ENDPOINTS")
	r = testutil.Run(t, perEndpoint, etcdctl, "--endpoints", eps[1], "put", "from-etcdctl", "v2")
	if r.Code != 0 {
		t.Fatalf("etcdctl put: %s%s", r.Stdout, r.Stderr)
	}
	for _, ep := range []string{eps[0], eps[2]} {
		r = testutil.Run(t, perEndpoint, etcdctl, "--endpoints", ep, "get", "from-etcdctl", "--print-value-only")
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != "v2" {
			t.Fatalf("etcdctl get through %s: exit %d: %q %s", ep, r.Code, r.Stdout, r.Stderr)
		}
	}
	r = testutil.Run(t, c.Env, etcdctl, "endpoint", "health", "--cluster")
	if r.Code != 0 {
		t.Fatalf("etcdctl endpoint health: %s%s", r.Stdout, r.Stderr)
	}

	// Three voting members.
	ml, err := c.Client(t).MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ml.Members) != 3 {
		t.Fatalf("want 3 members, got %d", len(ml.Members))
	}
	for _, m := range ml.Members {
		if m.IsLearner {
			t.Fatalf("member %s is a learner", m.Name)
		}
	}

	// Every private key is 0600, every directory 0700.
	keys := 0
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir() && !strings.HasPrefix(p, filepath.Join(dir, "members")+"/m") || d.IsDir() && filepath.Base(p) == "ssl":
			if info.Mode().Perm() != 0o700 {
				t.Errorf("%s: mode %#o, want 0700", p, info.Mode().Perm())
			}
		case strings.HasSuffix(p, "-key.pem"):
			keys++
			if info.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %#o, want 0600", p, info.Mode().Perm())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if keys != 8 { // CA, client, and server+peer for each of 3 members
		t.Fatalf("want 8 private keys, found %d", keys)
	}

	// Member 2's server certificate names 127.0.0.2.
	certs, err := pki.LoadCerts(filepath.Join(dir, "members", "m2", "ssl", "server.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if !hasIP(certs[0], "127.0.0.2") {
		t.Fatalf("m2 server certificate SANs %v lack 127.0.0.2", certs[0].IPAddresses)
	}

	// A second `up` on the same directory is refused while this one runs.
	r = testutil.Run(t, nil, bin, "up", "--dir", dir)
	testutil.ExpectFailure(t, r, 1, "another `etcdkit up` is running on "+dir)

	pids := c.MemberPIDs(t)
	if len(pids) != 3 {
		t.Fatalf("want 3 member pid files, got %v", pids)
	}

	// A member that dies is reported, with its log, and not restarted
	// behind the operator's back; the other two keep serving.
	if err := syscall.Kill(pids["m3"], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitStderr(t, c.Proc, `member "m3" stopped unexpectedly (signal: killed)`)
	if !strings.Contains(c.Proc.Stderr(), filepath.Join(dir, "members", "m3", "member.log")) {
		t.Fatalf("the report does not name m3's log:\n%s", c.Proc.Stderr())
	}
	// m3 may have led: the first write can fail while m1 and m2 elect a
	// new leader, which clientv3 does not retry for a put.
	testutil.Retry(t, ctx, func() error {
		_, err := c.Client(t, eps[0]).Put(ctx, "after-m3-died", "v")
		return err
	})
	delete(pids, "m3")

	// Ctrl-C stops every member and exits 0.
	if code := c.Stop(t); code != 0 {
		t.Fatalf("up exited %d after SIGINT\n%s", code, c.Proc.Stderr())
	}
	for name, pid := range pids {
		if alive(pid) {
			t.Errorf("member %s (pid %d) still running after up stopped", name, pid)
		}
	}

	// A different size needs --fresh, and says so.
	r = testutil.Run(t, nil, bin, "up", "--dir", dir, "--members", "5")
	testutil.ExpectFailure(t, r, 1, "holds a 3-member cluster", "--fresh --members 5")

	// `up` again restarts the same cluster with its data.
	c = testutil.Up(t, dir)
	resp, err := c.Client(t).Get(testutil.Ctx(t), "skeleton")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v1" {
		t.Fatalf("after restart: %v", resp.Kvs)
	}
	if code := c.Stop(t); code != 0 {
		t.Fatalf("second up exited %d", code)
	}
}

// TestUpRefusesUntrustedClients: a plain-HTTP client and a client whose
// certificate comes from another CA are both refused.
func TestUpRefusesUntrustedClients(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cluster")
	c := testutil.Up(t, dir, "--members", "1")
	ep := c.Target(t).Endpoints[0]
	host := strings.TrimPrefix(ep, "https://")

	// Plain HTTP: the cluster speaks TLS only.
	plain, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + host}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	ctx := testutil.Ctx(t)
	if _, err := plain.Get(shortCtx(ctx), "k"); err == nil {
		t.Fatal("a plain-HTTP client was served")
	}

	// A client certificate from another CA fails the TLS handshake.
	other, err := pki.NewCA(pki.CARequest{CommonName: "other"})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := other.Issue(pki.LeafRequest{Role: pki.RoleClient, CommonName: "intruder"})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCerts(c.Dir.CA().Cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca[0])
	tlsCfg := &tls.Config{
		RootCAs:      pool,
		Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Cert.Raw}, PrivateKey: leaf.Key}},
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", host, tlsCfg)
	if err == nil {
		// TLS 1.3 reports a rejected client certificate on the first read.
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a client with a foreign certificate was not refused by the handshake: %v", err)
	}
	foreign, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, TLS: tlsCfg, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer foreign.Close()
	if _, err := foreign.Get(shortCtx(ctx), "k"); err == nil {
		t.Fatal("a client with a foreign certificate was served")
	}
	// And with no client certificate at all.
	anon, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, TLS: &tls.Config{RootCAs: pool}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, err := anon.Get(shortCtx(ctx), "k"); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	c.Stop(t)
}

func hasIP(c *x509.Certificate, ip string) bool {
	for _, a := range c.IPAddresses {
		if a.String() == ip {
			return true
		}
	}
	return false
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func init() {
	// Member processes outlive a crashed test only until their parent-death
	// signal; nothing here depends on the working directory.
	_ = os.Setenv("NOTIFY_SOCKET", "")
}

// TestUpBadInput: bad flags and a directory that is not up's are refused
// with one clear message, and nothing is created.
func TestUpBadInput(t *testing.T) {
	bin := testutil.Etcdkit(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--members", "0"}, "invalid value 0 for flag --members; use 1 to 9"},
		{[]string{"--members", "12"}, "invalid value 12 for flag --members; use 1 to 9"},
		{[]string{"--key-algorithm", "dsa"}, `invalid key algorithm "dsa"; options are ecdsa-p256`},
		{[]string{"--membrs", "3"}, "unknown flag: --membrs"},
	} {
		dir := filepath.Join(t.TempDir(), "c")
		r := testutil.Run(t, nil, bin, append([]string{"up", "--dir", dir}, tc.args...)...)
		testutil.ExpectFailure(t, r, 2, tc.want)
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%v: %s was created", tc.args, dir)
		}
	}

	// A directory holding someone else's files is never touched, --fresh
	// or not.
	dir := t.TempDir()
	mine := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(mine, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, extra := range [][]string{nil, {"--fresh"}} {
		r := testutil.Run(t, nil, bin, append([]string{"up", "--dir", dir}, extra...)...)
		testutil.ExpectFailure(t, r, 1, "is not empty and was not made by `etcdkit up`", `"notes.txt"`)
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.Name() != "notes.txt" {
				t.Errorf("up %v created %s in a foreign directory", extra, e.Name())
			}
		}
		if b, _ := os.ReadFile(mine); string(b) != "keep me" {
			t.Fatal("the foreign file was changed")
		}
	}
}
