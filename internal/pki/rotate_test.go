package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// handshake runs a TLS handshake between a member that built its trust pool
// from trusted (as etcd does, once, at start) and serves serverPair, and a
// client that trusts clientTrusted and presents clientPair: what etcd's
// listeners and peer dials do.
func handshake(t *testing.T, serverPair Pair, trusted []*x509.Certificate, clientPair Pair, clientTrusted []*x509.Certificate) error {
	t.Helper()
	pool := func(cs []*x509.Certificate) *x509.CertPool {
		p := x509.NewCertPool()
		for _, c := range cs {
			p.AddCert(c)
		}
		return p
	}
	// Files are read per handshake, as etcd's GetCertificate does.
	srvCert, err := tls.LoadX509KeyPair(serverPair.Cert, serverPair.Key)
	if err != nil {
		t.Fatal(err)
	}
	cliCert, err := tls.LoadX509KeyPair(clientPair.Cert, clientPair.Key)
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srv := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientCAs: pool(trusted), ClientAuth: tls.RequireAndVerifyClientCert})
	cli := tls.Client(b, &tls.Config{Certificates: []tls.Certificate{cliCert}, RootCAs: pool(clientTrusted), ServerName: "127.0.0.1"})
	errc := make(chan error, 1)
	go func() {
		err := srv.Handshake()
		if err == nil {
			_, err = srv.Write([]byte("x"))
		}
		errc <- err
	}()
	cerr := cli.Handshake()
	if cerr == nil {
		_, cerr = io.ReadFull(cli, make([]byte, 1))
	}
	serr := <-errc
	if serr != nil {
		return serr
	}
	return cerr
}

func readCerts(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	c, err := LoadCerts(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// snapshot is every file under dirs with its content, to prove a refused
// phase changed nothing.
func snapshot(t *testing.T, dirs ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range dirs {
		filepath.Walk(d, func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				b, _ := os.ReadFile(p)
				out[p] = fi.Mode().String() + string(b)
			}
			return nil
		})
	}
	return out
}

func sameSnapshot(t *testing.T, a, b map[string]string) {
	t.Helper()
	var diff []string
	for k, v := range a {
		if b[k] != v {
			diff = append(diff, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			diff = append(diff, k+" (new)")
		}
	}
	sort.Strings(diff)
	if len(diff) > 0 {
		t.Fatalf("files changed: %v", diff)
	}
}

// The whole rotation, with real TLS handshakes standing in for members at
// each point: a member started before the rotation (trusting only the old
// CA) accepts every re-issued leaf, and so does one started after it.
func TestRotateCAPhases(t *testing.T) {
	p := newTestPKI(t)
	inv := p.inventory()
	old := p.ca.Cert
	server, peer := LayoutCfssl.Leaf(p.member, RoleServer), LayoutCfssl.Leaf(p.member, RolePeer)
	client := LayoutCfssl.Leaf(p.caDir, RoleClient)
	keyBefore, _ := os.ReadFile(server.Key)

	if _, err := RotateReissue(inv, RotateOptions{}); err == nil || !strings.Contains(err.Error(), "reissue comes after trust: no rotation has started") {
		t.Fatalf("reissue before trust: %v", err)
	}
	if _, err := RotateTrust(inv, RotateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{LayoutCfssl.CA(p.caDir).Cert, LayoutCfssl.CA(p.member).Cert} {
		if c := readCerts(t, f); len(c) != 2 || !c[0].Equal(old) {
			t.Fatalf("%s after trust: %d certificates", f, len(c))
		}
	}
	next := readCerts(t, LayoutCfssl.CA(p.caDir).Cert)[1]
	if !strings.HasPrefix(next.Subject.CommonName, "etcd-ca (") {
		t.Fatalf("new CA name %q", next.Subject.CommonName)
	}
	before := snapshot(t, p.caDir, p.member)
	if _, err := RotateFinish(inv, RotateOptions{}); err == nil || !strings.Contains(err.Error(), `finish comes after reissue: the last phase done is "trust"`) {
		t.Fatalf("finish before reissue: %v", err)
	}
	if _, err := RotateTrust(inv, RotateOptions{}); err == nil || !strings.Contains(err.Error(), "a CA rotation is already under way") {
		t.Fatalf("trust twice: %v", err)
	}
	sameSnapshot(t, before, snapshot(t, p.caDir, p.member))

	res, err := RotateReissue(inv, RotateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changed) != 3 {
		t.Fatalf("reissue changed %v", res.Changed)
	}
	for _, f := range []string{server.Cert, peer.Cert, client.Cert} {
		c := readCerts(t, f)
		if len(c) != 2 || c[0].CheckSignatureFrom(next) != nil || c[1].CheckSignatureFrom(old) != nil {
			t.Fatalf("%s: want a leaf of the new CA followed by the cross-signed certificate", f)
		}
	}
	if keyAfter, _ := os.ReadFile(server.Key); string(keyAfter) != string(keyBefore) {
		t.Fatal("reissue replaced a key")
	}
	// Any command that issues from the CA (LoadCA, as `up` and membership
	// changes do) adds the cross-signed certificate while it exists.
	if ca, err := LoadCA(LayoutCfssl.CA(p.caDir)); err != nil || !ca.Cert.Equal(next) || len(ca.Chain) != 1 {
		t.Fatalf("signing CA after reissue: %v", err)
	}
	// A member that started before the rotation, and one after.
	if err := handshake(t, server, []*x509.Certificate{old}, client, []*x509.Certificate{old}); err != nil {
		t.Fatalf("member trusting only the old CA: %v", err)
	}
	if err := handshake(t, peer, []*x509.Certificate{old, next}, peer, []*x509.Certificate{next}); err != nil {
		t.Fatalf("member trusting both: %v", err)
	}

	if _, err := RotateFinish(inv, RotateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{LayoutCfssl.CA(p.caDir).Cert, LayoutCfssl.CA(p.member).Cert} {
		if c := readCerts(t, f); len(c) != 1 || !c[0].Equal(next) {
			t.Fatalf("%s after finish: want the new CA only", f)
		}
	}
	if err := handshake(t, server, []*x509.Certificate{old}, client, []*x509.Certificate{old}); err != nil {
		t.Fatalf("after finish, a member that still trusts only the old CA: %v", err)
	}
	if err := handshake(t, server, []*x509.Certificate{next}, client, []*x509.Certificate{next}); err != nil {
		t.Fatalf("after finish, a member restarted with the new CA only: %v", err)
	}

	// Dropping the cross-signed certificate waits for every member.
	inv.Members = []Endpoint{{Name: "m1", ClientURL: "https://127.0.0.1:2379"}}
	probe := func(trusts bool) func(*Inventory, *CA) []MemberProbe {
		return func(*Inventory, *CA) []MemberProbe {
			return []MemberProbe{{Name: "m1", Listener: "client", URL: "https://127.0.0.1:2379", TrustsNewCA: trusts}}
		}
	}
	before = snapshot(t, p.caDir, p.member)
	_, err = RotateFinish(inv, RotateOptions{DropCrossSigned: true, Probe: probe(false)})
	if err == nil || !strings.Contains(err.Error(), `member "m1" (client https://127.0.0.1:2379) still trust only the old CA`) {
		t.Fatalf("drop while a member trusts only the old CA: %v", err)
	}
	sameSnapshot(t, before, snapshot(t, p.caDir, p.member))
	if _, err := RotateFinish(inv, RotateOptions{DropCrossSigned: true, Probe: probe(true)}); err != nil {
		t.Fatal(err)
	}
	if c := readCerts(t, server.Cert); len(c) != 1 {
		t.Fatalf("server.pem still has %d certificates", len(c))
	}
	if _, err := os.Stat(LayoutCfssl.CrossCert(p.caDir)); !os.IsNotExist(err) {
		t.Fatalf("cross-signed certificate left: %v", err)
	}
	if ca, err := LoadCA(LayoutCfssl.CA(p.caDir)); err != nil || len(ca.Chain) != 0 {
		t.Fatalf("signing CA after the rotation: chain %d, %v", len(ca.Chain), err)
	}
	if err := handshake(t, peer, []*x509.Certificate{next}, peer, []*x509.Certificate{next}); err != nil {
		t.Fatalf("after the rotation: %v", err)
	}
	st, err := Status(context.Background(), inv, false, time.Second)
	if err != nil || st.Phase != PhaseFinish || !strings.Contains(st.Next, "rotate-ca trust") {
		t.Fatalf("status after the rotation: %+v %v", st, err)
	}
}

func TestRotateAbortUndoesTrust(t *testing.T) {
	p := newTestPKI(t)
	inv := p.inventory()
	before := snapshot(t, p.caDir, p.member)
	if _, err := RotateTrust(inv, RotateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := RotateAbort(inv, RotateOptions{}); err != nil {
		t.Fatal(err)
	}
	sameSnapshot(t, before, snapshot(t, p.caDir, p.member))
}

// A phase that fails half-way (a trust file that cannot be replaced) puts
// back what it had already changed.
func TestRotateFailureLeavesNothingChanged(t *testing.T) {
	p := newTestPKI(t)
	inv := p.inventory()
	inv.Trust = append(inv.Trust, TrustFile{ID: "x/ca", Pair: Pair{Cert: filepath.Join(p.member, "x.pem")}})
	// A directory where a trust file is expected: it reads as a bad file.
	if err := os.Mkdir(filepath.Join(p.member, "x.pem"), 0o700); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, p.caDir, p.member)
	if _, err := RotateTrust(inv, RotateOptions{}); err == nil {
		t.Fatal("trust succeeded with a broken trust file")
	}
	sameSnapshot(t, before, snapshot(t, p.caDir, p.member))
}
