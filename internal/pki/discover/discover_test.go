package discover

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/etcdkit/etcdkit/internal/pki"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func hosts(it pki.Item) []string {
	var out []string
	for _, n := range it.Needs {
		out = append(out, n.Host)
	}
	return out
}

// An etcd config names the files, and its URLs say what the certificates
// must cover: a wildcard listen address adds nothing, the advertised
// addresses must be there.
func TestConfigInventory(t *testing.T) {
	dir := t.TempDir()
	ssl := filepath.Join(dir, "ssl")
	cfg := filepath.Join(dir, "etcd.yaml")
	write(t, cfg, `name: master02
data-dir: /var/lib/etcd
listen-client-urls: https://0.0.0.0:2379
advertise-client-urls: https://192.168.100.201:2379,https://etcd2.example.com:2379
listen-peer-urls: https://192.168.100.201:2380
initial-advertise-peer-urls: https://192.168.100.201:2380
initial-cluster: master02=https://192.168.100.201:2380
client-transport-security:
  cert-file: `+ssl+`/server.pem
  key-file: `+ssl+`/server-key.pem
  trusted-ca-file: `+ssl+`/ca.pem
  client-cert-auth: true
peer-transport-security:
  cert-file: `+ssl+`/peer.pem
  key-file: `+ssl+`/peer-key.pem
  trusted-ca-file: `+ssl+`/ca.pem
  client-cert-auth: true
`)
	inv, err := Find(Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if inv.CADir != ssl || inv.Layout != pki.LayoutCfssl || len(inv.Members) != 1 || inv.Members[0].ClientURL != "https://192.168.100.201:2379" {
		t.Fatalf("inventory %+v", inv)
	}
	var ids []string
	for _, it := range inv.Leaves {
		ids = append(ids, it.ID)
	}
	if !slices.Equal(ids, []string{"server", "peer", "client"}) {
		t.Fatalf("leaves %v", ids)
	}
	if h := hosts(inv.Leaves[0]); !slices.Equal(h, []string{"192.168.100.201", "etcd2.example.com"}) {
		t.Fatalf("server needs %v", h)
	}
	if !strings.HasPrefix(inv.Leaves[0].Needs[0].Why, "advertise-client-urls ") {
		t.Fatalf("why: %q", inv.Leaves[0].Needs[0].Why)
	}
	if h := hosts(inv.Leaves[1]); !slices.Equal(h, []string{"192.168.100.201"}) {
		t.Fatalf("peer needs %v", h)
	}
}

// The runbook's /etc/etcd/etcd.conf, an environment file of ETCD_*
// variables, is read the same way.
func TestConfigInventoryFromEnvFile(t *testing.T) {
	dir := t.TempDir()
	ssl := filepath.Join(dir, "ssl")
	cfg := filepath.Join(dir, "etcd.conf")
	write(t, cfg, `#[Member]
ETCD_NAME="master02"
ETCD_DATA_DIR="/var/lib/etcd/default.etcd"
ETCD_LISTEN_PEER_URLS="https://192.168.100.201:2380"
ETCD_LISTEN_CLIENT_URLS="https://192.168.100.201:2379,https://127.0.0.1:2379"
#[Clustering]
ETCD_INITIAL_ADVERTISE_PEER_URLS="https://192.168.100.201:2380"
ETCD_ADVERTISE_CLIENT_URLS="https://192.168.100.201:2379"
ETCD_INITIAL_CLUSTER="master02=https://192.168.100.201:2380"
#[Security]
ETCD_CERT_FILE="`+ssl+`/server.pem"
ETCD_KEY_FILE="`+ssl+`/server-key.pem"
ETCD_CLIENT_CERT_AUTH="true"
ETCD_TRUSTED_CA_FILE="`+ssl+`/ca.pem"
ETCD_PEER_CERT_FILE="`+ssl+`/peer.pem"
ETCD_PEER_KEY_FILE="`+ssl+`/peer-key.pem"
ETCD_PEER_CLIENT_CERT_AUTH="true"
ETCD_PEER_TRUSTED_CA_FILE="`+ssl+`/ca.pem"
`)
	inv, err := Find(Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if inv.CADir != ssl || len(inv.Leaves) < 2 || inv.Leaves[0].Pair.Cert != filepath.Join(ssl, "server.pem") {
		t.Fatalf("inventory %+v", inv)
	}
	if h := hosts(inv.Leaves[0]); !slices.Equal(h, []string{"192.168.100.201", "127.0.0.1"}) {
		t.Fatalf("server needs %v", h)
	}
}

// Members of a spec that share a certificate directory share its files,
// which then must cover all of them; --member keeps one.
func TestSpecInventorySharedDir(t *testing.T) {
	dir := t.TempDir()
	specFile := filepath.Join(dir, "cluster.yaml")
	write(t, specFile, `apiVersion: etcdkit.io/v1alpha1
kind: Cluster
pki: {dir: ssl}
members:
- {name: master01, peerURL: "https://192.168.100.200:2380", clientURL: "https://192.168.100.200:2379"}
- {name: master02, peerURL: "https://192.168.100.201:2380", clientURL: "https://192.168.100.201:2379"}
- {name: master03, peerURL: "https://192.168.100.202:2380", clientURL: "https://192.168.100.202:2379"}
`)
	inv, err := Find(Options{Spec: specFile})
	if err != nil {
		t.Fatal(err)
	}
	if inv.CADir != filepath.Join(dir, "ssl") || len(inv.Members) != 3 {
		t.Fatalf("inventory %+v", inv)
	}
	if h := hosts(inv.Leaves[0]); inv.Leaves[0].Role != pki.RoleServer || !slices.Equal(h, []string{"192.168.100.200", "192.168.100.201", "192.168.100.202"}) {
		t.Fatalf("shared server certificate needs %v", h)
	}
	inv, err = Find(Options{Spec: specFile, Member: "master02"})
	if err != nil {
		t.Fatal(err)
	}
	if inv.Leaves[0].ID != "master02/server" || !slices.Equal(hosts(inv.Leaves[0]), []string{"192.168.100.201"}) {
		t.Fatalf("with --member: %+v", inv.Leaves[0])
	}
	if !slices.Contains(inv.Args, "--member") {
		t.Fatalf("fix commands would lose --member: %v", inv.Args)
	}
}
