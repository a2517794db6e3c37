package pki

import (
	"crypto/x509"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/testutil"
)

// The cfssl files of etcd's own TLS guide, as operators keep them.
const (
	caCSR = `{"CN": "etcd-ca", "key": {"algo": "ecdsa", "size": 256},
  "names": [{"C": "US", "L": "San Francisco", "O": "etcd", "ST": "CA"}], "ca": {"expiry": "87600h"}}`
	caConfig = `{
  "signing": {
    "default": {"expiry": "43800h"},
    "profiles": {
      "server": {"expiry": "43800h", "usages": ["signing", "key encipherment", "server auth", "client auth"]},
      "client": {"expiry": "43800h", "usages": ["signing", "key encipherment", "client auth"]},
      "peer":   {"expiry": "43800h", "usages": ["signing", "key encipherment", "server auth", "client auth"]}
    }
  }
}`
	memberCSR = `{"CN": "m1", "hosts": ["127.0.0.1", "localhost", "m1.example.com"],
  "key": {"algo": "rsa", "size": 2048}, "names": [{"C": "US", "L": "San Francisco", "O": "etcd", "OU": "ops", "ST": "CA"}]}`
	clientCSR = `{"CN": "admin", "hosts": [""], "key": {"algo": "ecdsa", "size": 256}}`
)

// TestCfsslInterop, both ways with the real cfssl: certificates cfssl makes
// from cfssl JSON start an etcdkit member and pass `pki check`; etcdkit
// given the same JSON makes equivalent certificates, which the stock
// etcdctl accepts.
func TestCfsslInterop(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"ca-csr.json": caCSR, "ca-config.json": caConfig, "m1-csr.json": memberCSR, "admin-csr.json": clientCSR} {
		testutil.WriteBytes(t, filepath.Join(dir, name), []byte(content))
	}
	ssl := filepath.Join(dir, "ssl")
	shell(t, dir, `mkdir ssl && cd ssl &&
cfssl gencert -initca ../ca-csr.json | cfssljson -bare ca &&
cfssl gencert -ca ca.pem -ca-key ca-key.pem -config ../ca-config.json -profile server ../m1-csr.json | cfssljson -bare server &&
cfssl gencert -ca ca.pem -ca-key ca-key.pem -config ../ca-config.json -profile peer ../m1-csr.json | cfssljson -bare peer &&
cfssl gencert -ca ca.pem -ca-key ca-key.pem -config ../ca-config.json -profile client ../admin-csr.json | cfssljson -bare client`)

	// cfssl's certificates run a member and pass the check of its config.
	config, endpoint := oneMemberConfig(t, dir, cfsslFiles(ssl))
	startMember(t, config)
	r := ek(t, "pki", "check", "--config", config)
	if !strings.Contains(r.Stdout, "no problems found") {
		t.Fatalf("check of cfssl's certificates:\n%s", r.Stdout)
	}
	client := pki.LayoutCfssl.Leaf(ssl, pki.RoleClient)
	etcdctl(t, endpoint, filepath.Join(ssl, "ca.pem"), client.Cert, client.Key, "put", "from", "cfssl")

	// etcdkit from the same JSON: the same certificates, but for the key
	// and serial. First the CA, then each profile, signed by cfssl's CA.
	ek(t, "pki", "init", "--csr", filepath.Join(dir, "ca-csr.json"), "--dir", filepath.Join(dir, "ekca"))
	sameCert(t, loadCert(t, filepath.Join(dir, "ekca", "ca.pem")), loadCert(t, filepath.Join(ssl, "ca.pem")))
	out := filepath.Join(dir, "ek")
	for _, prof := range []struct{ profile, csr, file string }{
		{"server", "m1-csr.json", "server.pem"}, {"peer", "m1-csr.json", "peer.pem"}, {"client", "admin-csr.json", "client.pem"},
	} {
		ek(t, "pki", "issue", "--cfssl-config", filepath.Join(dir, "ca-config.json"), "--profile", prof.profile,
			filepath.Join(dir, prof.csr), "--dir", ssl, "--out", out)
		sameCert(t, loadCert(t, filepath.Join(out, prof.file)), loadCert(t, filepath.Join(ssl, prof.file)))
	}
	// The stock etcdctl accepts etcdkit's client certificate against the
	// member running with cfssl's.
	etcdctl(t, endpoint, filepath.Join(ssl, "ca.pem"), filepath.Join(out, "client.pem"), filepath.Join(out, "client-key.pem"), "get", "from")
}

// sameCert compares what a certificate says, not its key or serial:
// subject, hosts, key type and size, usages, CA-ness and validity length.
func sameCert(t *testing.T, got, want *x509.Certificate) {
	t.Helper()
	// etcd's guide writes "hosts": [""] for a client; cfssl turns that into
	// an empty DNS name, etcdkit into none.
	sorted := func(s []string) []string {
		s = slices.DeleteFunc(slices.Clone(s), func(h string) bool { return h == "" })
		slices.Sort(s)
		return s
	}
	ekus := func(c *x509.Certificate) []int {
		var out []int
		for _, u := range c.ExtKeyUsage {
			out = append(out, int(u))
		}
		slices.Sort(out)
		return out
	}
	validity := func(c *x509.Certificate) time.Duration { return c.NotAfter.Sub(c.NotBefore) }
	// etcdkit's CAs also have digitalSignature (as kubeadm's); what a CA
	// may sign is the same.
	usage := func(c *x509.Certificate) x509.KeyUsage {
		if c.IsCA {
			return c.KeyUsage & (x509.KeyUsageCertSign | x509.KeyUsageCRLSign)
		}
		return c.KeyUsage
	}
	switch {
	case got.Subject.String() != want.Subject.String():
		t.Fatalf("subject %q, cfssl's %q", got.Subject, want.Subject)
	case !slices.Equal(sorted(pki.HostsOf(got)), sorted(pki.HostsOf(want))):
		t.Fatalf("hosts %v, cfssl's %v", pki.HostsOf(got), pki.HostsOf(want))
	case pki.AlgorithmOf(got.PublicKey) != pki.AlgorithmOf(want.PublicKey):
		t.Fatalf("key %s, cfssl's %s", pki.AlgorithmOf(got.PublicKey), pki.AlgorithmOf(want.PublicKey))
	case usage(got) != usage(want):
		t.Fatalf("key usage %b, cfssl's %b", got.KeyUsage, want.KeyUsage)
	case !slices.Equal(ekus(got), ekus(want)):
		t.Fatalf("extended key usage %v, cfssl's %v", got.ExtKeyUsage, want.ExtKeyUsage)
	case got.IsCA != want.IsCA:
		t.Fatalf("CA %v, cfssl's %v", got.IsCA, want.IsCA)
	case (validity(got) - validity(want)).Abs() > 10*time.Minute:
		t.Fatalf("valid for %v, cfssl's for %v", validity(got), validity(want))
	}
}

// TestStockToolsAcceptEtcdkitCerts: certificates from `pki init` and
// `pki issue`, in both layouts, run a member that the stock etcdctl talks
// to, and openssl verifies them (when openssl is installed).
func TestStockToolsAcceptEtcdkitCerts(t *testing.T) {
	for _, layout := range []pki.Layout{pki.LayoutCfssl, pki.LayoutKubeadm} {
		t.Run(string(layout), func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "pki", "etcd")
			ek(t, "pki", "init", "--layout", string(layout), "--dir", dir)
			ek(t, "pki", "issue", "server", "node1", "--hosts", "127.0.0.1", "--dir", dir)
			ek(t, "pki", "issue", "peer", "node1", "--hosts", "127.0.0.1", "--dir", dir)
			files := cfsslFiles(dir)
			client := pki.LayoutCfssl.Leaf(dir, pki.RoleClient)
			toVerify := []string{files.server, files.peer, client.Cert}
			ek(t, "pki", "issue", "client", "admin", "--dir", dir)
			if layout == pki.LayoutKubeadm {
				files = kubeadmFiles(dir)
				ek(t, "pki", "issue", "client", "apiserver-etcd-client", "--dir", dir)
				client = pki.APIServerClient(dir)
				if client.Cert != filepath.Join(root, "pki", "apiserver-etcd-client.crt") {
					t.Fatalf("kubeadm's API server client goes one directory up, not %s", client.Cert)
				}
				hc := pki.LayoutKubeadm.Leaf(dir, pki.RoleClient)
				toVerify = []string{files.server, files.peer, client.Cert, hc.Cert}
				// kubeadm's SAN rules: node name, localhost, advertise IP,
				// 127.0.0.1, ::1; its client names and group.
				if h := pki.HostsOf(loadCert(t, files.server)); !slices.Equal(h, []string{"node1", "localhost", "127.0.0.1", "::1"}) {
					t.Fatalf("kubeadm server certificate hosts %v", h)
				}
				if s := loadCert(t, client.Cert).Subject; s.CommonName != "kube-apiserver-etcd-client" || !slices.Equal(s.Organization, []string{"system:masters"}) {
					t.Fatalf("API server client subject %v", s)
				}
			}
			config, endpoint := oneMemberConfig(t, root, files)
			startMember(t, config)
			ek(t, "pki", "check", "--config", config, "--strict")
			etcdctl(t, endpoint, files.ca, client.Cert, client.Key, "put", "k", "v")
			if out := etcdctl(t, endpoint, files.ca, client.Cert, client.Key, "get", "k", "--print-value-only"); strings.TrimSpace(out) != "v" {
				t.Fatalf("etcdctl get: %q", out)
			}

			openssl, err := exec.LookPath("openssl")
			if err != nil {
				t.Skip("openssl is not installed; skipping openssl verify (etcdctl accepted the certificates)")
			}
			args := append([]string{"verify", "-CAfile", files.ca}, toVerify...)
			out, err := exec.Command(openssl, args...).CombinedOutput()
			if err != nil || strings.Count(string(out), ": OK") != len(toVerify) {
				t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			// openssl also checks the purpose each certificate is for.
			for purpose, file := range map[string]string{"sslserver": files.server, "sslclient": client.Cert} {
				out, err := exec.Command(openssl, "verify", "-purpose", purpose, "-CAfile", files.ca, file).CombinedOutput()
				if err != nil {
					t.Fatalf("openssl verify -purpose %s %s: %v\n%s", purpose, file, err, out)
				}
			}
		})
	}
}
