package pki

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// A rename that fails after others succeeded puts the earlier files back
// and removes directories the set created; a directory where a file
// should go is refused before anything moves.
func TestChangesRollBack(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.pem"), filepath.Join(dir, "b.pem")
	writeFile(t, a, []byte("old a"), 0o644)
	writeFile(t, b, []byte("old b"), 0o600)
	stage := func() *changes {
		var c changes
		c.write(a, []byte("new a"), 0o644)
		c.write(filepath.Join(dir, "new", "sub", "c.pem"), []byte("c"), 0o644)
		c.write(b, []byte("new b"), 0o600)
		return &c
	}
	before := snapshot(t, dir)
	calls := 0
	rename = func(from, to string) error {
		if calls++; calls == 3 {
			return os.ErrPermission
		}
		return os.Rename(from, to)
	}
	defer func() { rename = os.Rename }()
	if err := stage().apply(); err == nil || !strings.Contains(err.Error(), "write "+b) {
		t.Fatalf("apply: %v", err)
	}
	sameSnapshot(t, before, snapshot(t, dir))
	if _, err := os.Stat(filepath.Join(dir, "new")); !os.IsNotExist(err) {
		t.Fatalf("created directory left behind: %v", err)
	}
	rename = os.Rename
	os.Remove(b)
	if err := os.Mkdir(b, 0o700); err != nil {
		t.Fatal(err)
	}
	before = snapshot(t, dir)
	if err := stage().apply(); err == nil || !strings.Contains(err.Error(), "b.pem: it is a directory") {
		t.Fatalf("apply onto a directory: %v", err)
	}
	sameSnapshot(t, before, snapshot(t, dir))
}

func TestIssueIntoLayouts(t *testing.T) {
	root := t.TempDir()
	etcd := filepath.Join(root, "kubernetes", "pki", "etcd")
	if _, _, err := InitCA(InitOptions{Dir: etcd, Layout: LayoutKubeadm, CARequest: CARequest{KeyAlgorithm: RSA2048}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := InitCA(InitOptions{Dir: etcd}); err == nil || !strings.Contains(err.Error(), "a CA already exists at "+filepath.Join(etcd, "ca.crt")) {
		t.Fatalf("second init in the other layout: %v", err)
	}
	hosts := DefaultHosts(LayoutKubeadm, RoleServer, "node1", []string{"10.0.0.7"})
	if !slices.Equal(hosts, []string{"node1", "localhost", "10.0.0.7", "127.0.0.1", "::1"}) {
		t.Fatalf("kubeadm hosts %v", hosts)
	}
	res, err := IssueInto(IssueOptions{CADir: etcd, Request: LeafRequest{Role: RoleServer, CommonName: "node1", Hosts: hosts}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Pair.Cert != filepath.Join(etcd, "server.crt") || AlgorithmOf(res.Leaf.Cert.PublicKey) != RSA2048 {
		t.Fatalf("issued %s with %s", res.Pair.Cert, AlgorithmOf(res.Leaf.Cert.PublicKey))
	}
	res, err = IssueInto(IssueOptions{CADir: etcd, Request: LeafRequest{Role: RoleClient, CommonName: KubeadmAPIServerClientCN}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Pair.Cert != filepath.Join(root, "kubernetes", "pki", "apiserver-etcd-client.crt") {
		t.Fatalf("API server client went to %s", res.Pair.Cert)
	}

	// Refuses to replace; --force keeps the old files.
	_, err = IssueInto(IssueOptions{CADir: etcd, Request: LeafRequest{Role: RoleServer, CommonName: "node2", Hosts: hosts}})
	if err == nil || !strings.Contains(err.Error(), `server.crt already holds the certificate of "node1"`) {
		t.Fatalf("overwrite: %v", err)
	}
	res, err = IssueInto(IssueOptions{CADir: etcd, Force: true, Request: LeafRequest{Role: RoleServer, CommonName: "node2", Hosts: hosts}})
	if err != nil || len(res.Backups) != 2 {
		t.Fatalf("force: %+v %v", res, err)
	}

	// --out: a directory for another host gets the CA certificate too.
	out := filepath.Join(root, "node3")
	res, err = IssueInto(IssueOptions{CADir: etcd, OutDir: out, Request: LeafRequest{Role: RolePeer, CommonName: "node3", Hosts: hosts}})
	if err != nil || res.TrustCopied != filepath.Join(out, "ca.crt") {
		t.Fatalf("out: %+v %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(out, "ca.key")); !os.IsNotExist(err) {
		t.Fatal("the CA key was copied to a member directory")
	}
}

// A leaf never outlives its CA.
func TestIssueCapsValidityAtTheCA(t *testing.T) {
	ca, err := NewCA(CARequest{Validity: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(LeafRequest{Role: RoleClient, CommonName: "c", Validity: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.Cert.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Fatalf("leaf until %v, CA until %v", leaf.Cert.NotAfter, ca.Cert.NotAfter)
	}
}

func TestRenewKeepsSubjectHostsAndKey(t *testing.T) {
	p := newTestPKI(t)
	inv := p.inventory()
	server := LayoutCfssl.Leaf(p.member, RoleServer)
	p.issue(RoleServer, LeafRequest{NotBefore: time.Now().Add(-48 * time.Hour), Validity: time.Hour, Organization: []string{"ops"}})
	old := readCerts(t, server.Cert)[0]
	keyBefore, _ := os.ReadFile(server.Key)

	if _, err := Renew(inv, RenewOptions{Names: []string{"nope"}}); err == nil || !strings.Contains(err.Error(), `no certificate "nope" in test; it has client, m1/server, m1/peer`) {
		t.Fatalf("unknown name: %v", err)
	}
	rs, err := Renew(inv, RenewOptions{Names: []string{"m1/server"}, Validity: 2000 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || len(rs[0].Backups) != 1 || !strings.HasPrefix(rs[0].Backups[0], server.Cert+".bak-") {
		t.Fatalf("renewed %+v", rs)
	}
	now := readCerts(t, server.Cert)[0]
	if string(now.RawSubject) != string(old.RawSubject) || !slices.Equal(HostsOf(now), HostsOf(old)) ||
		!slices.Equal(now.ExtKeyUsage, old.ExtKeyUsage) || now.KeyUsage != old.KeyUsage || now.SerialNumber.Cmp(old.SerialNumber) == 0 {
		t.Fatal("renewal changed the subject, hosts or usages")
	}
	if d := time.Until(now.NotAfter); d < 1990*time.Hour || d > 2000*time.Hour {
		t.Fatalf("new validity ends in %v", d)
	}
	if keyAfter, _ := os.ReadFile(server.Key); string(keyAfter) != string(keyBefore) {
		t.Fatal("renew replaced the key")
	}
	if r := Check(inv, CheckOptions{}); len(r.Findings) != 0 {
		t.Fatalf("after renew: %+v", r.Findings)
	}
	// --all with a new key; the old key is kept too.
	rs, err = Renew(inv, RenewOptions{All: true, NewKey: true})
	if err != nil || len(rs) != 3 || len(rs[1].Backups) != 2 {
		t.Fatalf("renew --all --new-key: %+v %v", rs, err)
	}
	if keyAfter, _ := os.ReadFile(server.Key); string(keyAfter) == string(keyBefore) {
		t.Fatal("--new-key kept the key")
	}
}
