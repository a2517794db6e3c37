package pki

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testPKI is a CA directory with a member directory beside it, as `pki
// init` and `pki issue --out` make them.
type testPKI struct {
	t      *testing.T
	caDir  string
	member string
	ca     *CA
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	root := t.TempDir()
	p := &testPKI{t: t, caDir: filepath.Join(root, "ca"), member: filepath.Join(root, "m1")}
	ca, _, err := InitCA(InitOptions{Dir: p.caDir, CARequest: CARequest{CommonName: "etcd-ca"}})
	if err != nil {
		t.Fatal(err)
	}
	p.ca = ca
	if err := WriteBundle(LayoutCfssl.CA(p.member).Cert, ca.Cert); err != nil {
		t.Fatal(err)
	}
	p.issue(RoleServer, LeafRequest{})
	p.issue(RolePeer, LeafRequest{})
	p.issueClient(LeafRequest{})
	return p
}

var testHosts = []string{"192.168.100.200", "master01", "localhost", "127.0.0.1"}

// issue writes a member leaf; req's zero fields get sensible values.
func (p *testPKI) issue(role Role, req LeafRequest) {
	p.t.Helper()
	p.issueWith(p.ca, LayoutCfssl.Leaf(p.member, role), role, req)
}

func (p *testPKI) issueClient(req LeafRequest) {
	p.t.Helper()
	p.issueWith(p.ca, LayoutCfssl.Leaf(p.caDir, RoleClient), RoleClient, req)
}

func (p *testPKI) issueWith(ca *CA, pair Pair, role Role, req LeafRequest) {
	p.t.Helper()
	if req.Role == "" {
		req.Role = role
	}
	if req.CommonName == "" {
		req.CommonName = "master01"
	}
	if req.Hosts == nil && role != RoleClient {
		req.Hosts = testHosts
	}
	leaf, err := ca.Issue(req)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := WriteLeaf(pair, leaf); err != nil {
		p.t.Fatal(err)
	}
}

func (p *testPKI) inventory() *Inventory {
	needs := []Need{{Host: "192.168.100.200", Why: "advertise-client-urls https://192.168.100.200:2379"}, {Host: "127.0.0.1", Why: "listen-client-urls https://127.0.0.1:2379"}}
	return &Inventory{
		Source: "test", Args: []string{"--dir", p.caDir}, Layout: LayoutCfssl, CADir: p.caDir,
		Trust: []TrustFile{{ID: "m1/ca", Pair: LayoutCfssl.CA(p.member)}},
		Leaves: []Item{
			{ID: "client", Role: RoleClient, Pair: LayoutCfssl.Leaf(p.caDir, RoleClient), Dir: p.caDir},
			{ID: "m1/server", Member: "m1", Role: RoleServer, Pair: LayoutCfssl.Leaf(p.member, RoleServer), Dir: p.member, Trust: LayoutCfssl.CA(p.member).Cert, Needs: needs, Required: true},
			{ID: "m1/peer", Member: "m1", Role: RolePeer, Pair: LayoutCfssl.Leaf(p.member, RolePeer), Dir: p.member, Trust: LayoutCfssl.CA(p.member).Cert, Needs: needs, Required: true},
		},
	}
}

func TestCheckCleanPKIHasNoFindings(t *testing.T) {
	p := newTestPKI(t)
	r := Check(p.inventory(), CheckOptions{})
	if len(r.Findings) != 0 {
		t.Fatalf("findings on a clean PKI: %+v", r.Findings)
	}
	if len(r.Certificates) != 4 {
		t.Fatalf("want the CA and 3 leaves, got %+v", r.Certificates)
	}
}

// Each mistake the issue names is found, in the right file, with a message
// that says what is wrong and a command that fixes it.
func TestCheckFindsEachMistake(t *testing.T) {
	hour := time.Hour
	cases := []struct {
		name    string
		break_  func(p *testPKI)
		file    string // base name of the file the finding is about
		problem string
		fix     string
		sev     Severity
	}{
		{
			name:    "missing SAN for an advertised IP",
			break_:  func(p *testPKI) { p.issue(RoleServer, LeafRequest{Hosts: []string{"master01", "127.0.0.1"}}) },
			file:    "server.pem",
			problem: `does not cover 192.168.100.200 (advertise-client-urls https://192.168.100.200:2379); it is valid for master01, 127.0.0.1, so clients dialing those addresses fail with "x509: certificate is valid for master01, 127.0.0.1, not 192.168.100.200"`,
			fix:     "--hosts master01,127.0.0.1,192.168.100.200 --force",
			sev:     SeverityError,
		},
		{
			name: "client certificate used as server certificate",
			break_: func(p *testPKI) {
				p.issueWith(p.ca, LayoutCfssl.Leaf(p.member, RoleServer), RoleClient, LeafRequest{Hosts: testHosts})
			},
			file:    "server.pem",
			problem: "is a client certificate (extended key usage clientAuth only) used as a server certificate",
			fix:     "etcdkit pki issue server m1 --dir",
			sev:     SeverityError,
		},
		{
			name:    "expired leaf",
			break_:  func(p *testPKI) { p.issue(RolePeer, LeafRequest{NotBefore: time.Now().Add(-3 * hour), Validity: hour}) },
			file:    "peer.pem",
			problem: "expired on ",
			fix:     "etcdkit pki renew m1/peer --dir",
			sev:     SeverityError,
		},
		{
			name: "not-yet-valid leaf",
			break_: func(p *testPKI) {
				p.issue(RolePeer, LeafRequest{NotBefore: time.Now().Add(2 * hour), Validity: 24 * hour})
			},
			file:    "peer.pem",
			problem: "not valid before ",
			fix:     "etcdkit pki renew m1/peer --dir",
			sev:     SeverityError,
		},
		{
			name:    "expiring soon",
			break_:  func(p *testPKI) { p.issue(RoleServer, LeafRequest{Validity: 10 * 24 * hour}) },
			file:    "server.pem",
			problem: "expires on ",
			fix:     "etcdkit pki renew m1/server --dir",
			sev:     SeverityWarning,
		},
		{
			name: "key that does not match",
			break_: func(p *testPKI) {
				other, _ := GenerateKey(ECDSAP256)
				pem, _ := EncodeKey(other)
				writeFile(p.t, LayoutCfssl.Leaf(p.member, RoleServer).Key, pem, 0o600)
			},
			file:    "server-key.pem",
			problem: "does not match the certificate in server.pem",
			fix:     "--force",
			sev:     SeverityError,
		},
		{
			name: "world-readable key",
			break_: func(p *testPKI) {
				if err := os.Chmod(LayoutCfssl.Leaf(p.member, RolePeer).Key, 0o644); err != nil {
					p.t.Fatal(err)
				}
			},
			file:    "peer-key.pem",
			problem: "readable by other users (mode 0644)",
			fix:     "chmod 600 ",
			sev:     SeverityError,
		},
		{
			name: "leaf from another CA",
			break_: func(p *testPKI) {
				other, err := NewCA(CARequest{CommonName: "other-ca"})
				if err != nil {
					p.t.Fatal(err)
				}
				p.issueWith(other, LayoutCfssl.Leaf(p.member, RolePeer), RolePeer, LeafRequest{})
			},
			file:    "peer.pem",
			problem: `is signed by "other-ca", which ` + "", // the trust file path follows
			fix:     "etcdkit pki issue peer m1 --dir",
			sev:     SeverityError,
		},
		{
			name: "peer certificate without clientAuth",
			break_: func(p *testPKI) {
				p.issue(RolePeer, LeafRequest{Profile: &Profile{KeyUsage: Profiles[RoleServer].KeyUsage, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}})
			},
			file:    "peer.pem",
			problem: "lacks clientAuth: a peer certificate serves peer connections and also dials the other members",
			fix:     "etcdkit pki issue peer m1",
			sev:     SeverityError,
		},
		{
			name: "malformed PEM",
			break_: func(p *testPKI) {
				writeFile(p.t, LayoutCfssl.Leaf(p.member, RoleServer).Cert, []byte("-----BEGIN CERT"), 0o644)
			},
			file:    "server.pem",
			problem: "no PEM certificate found",
			fix:     "etcdkit pki issue server m1",
			sev:     SeverityError,
		},
		{
			name:    "missing member certificate",
			break_:  func(p *testPKI) { os.Remove(LayoutCfssl.Leaf(p.member, RolePeer).Cert) },
			file:    "peer.pem",
			problem: "missing: the peer certificate this member is configured with does not exist",
			fix:     "--hosts 192.168.100.200,127.0.0.1 --force",
			sev:     SeverityError,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestPKI(t)
			tc.break_(p)
			r := Check(p.inventory(), CheckOptions{})
			if len(r.Findings) != 1 {
				t.Fatalf("want exactly one finding, got %+v", r.Findings)
			}
			f := r.Findings[0]
			if filepath.Base(f.File) != tc.file || f.Severity != tc.sev || !strings.Contains(f.Problem, tc.problem) || !strings.Contains(f.Fix, tc.fix) {
				t.Fatalf("finding %+v\nwant %s in %s: %q, fix containing %q", f, tc.sev, tc.file, tc.problem, tc.fix)
			}
		})
	}
}

// kubeadm's most common mix-up: a certificate for etcd signed by the
// Kubernetes CA in /etc/kubernetes/pki/ca.crt.
func TestCheckNamesTheKubernetesCA(t *testing.T) {
	root := t.TempDir()
	etcdDir := filepath.Join(root, "pki", "etcd")
	if _, _, err := InitCA(InitOptions{Dir: etcdDir, Layout: LayoutKubeadm}); err != nil {
		t.Fatal(err)
	}
	k8s, _, err := InitCA(InitOptions{Dir: filepath.Join(root, "pki"), Layout: LayoutKubeadm, CARequest: CARequest{CommonName: "kubernetes"}})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := k8s.Issue(LeafRequest{Role: RoleClient, CommonName: KubeadmAPIServerClientCN})
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteLeaf(APIServerClient(etcdDir), leaf); err != nil {
		t.Fatal(err)
	}
	inv := &Inventory{Source: "test", Layout: LayoutKubeadm, CADir: etcdDir, Leaves: []Item{
		{ID: "apiserver-etcd-client", Role: RoleClient, Pair: APIServerClient(etcdDir), Dir: etcdDir},
	}}
	r := Check(inv, CheckOptions{})
	if len(r.Findings) != 1 || !strings.Contains(r.Findings[0].Problem, "is signed by the Kubernetes CA ("+filepath.Join(root, "pki", "ca.crt")+"), not the etcd CA") {
		t.Fatalf("findings: %+v", r.Findings)
	}
	if !strings.Contains(r.Findings[0].Fix, "etcdkit pki issue client kube-apiserver-etcd-client --dir "+etcdDir+" --force") {
		t.Fatalf("fix: %s", r.Findings[0].Fix)
	}
}

func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}
