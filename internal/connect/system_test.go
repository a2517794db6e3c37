package connect

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/etcdkit/etcdkit/internal/pki"
)

// sslDir is the runbook's /etc/etcd/ssl: a cfssl-layout CA, and the
// leaves that roles names.
func sslDir(t *testing.T, roles ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ssl")
	if _, _, err := pki.InitCA(pki.InitOptions{Dir: dir, CARequest: pki.CARequest{CommonName: "etcd-ca"}}); err != nil {
		t.Fatal(err)
	}
	for _, r := range roles {
		req := pki.LeafRequest{Role: pki.Role(r), CommonName: "master01", Hosts: []string{"192.168.100.200"}}
		if r == "server-only" {
			// A server certificate that may not act as a client.
			req.Role, req.Profile = pki.RoleServer, &pki.Profile{KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		}
		if _, err := pki.IssueInto(pki.IssueOptions{CADir: dir, Request: req}); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func write(t *testing.T, path, data string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestEtcdConf: the runbook's environment file (mistakes and all) says
// where the member is and which files verify it; the client pair is
// client.pem, else the server certificate when it may act as a client.
func TestEtcdConf(t *testing.T) {
	dir := sslDir(t, "server", "client")
	conf := write(t, filepath.Join(t.TempDir(), "etcd.conf"), `#[Member]
ETCD_NAME=master01
ETCD_LISTEN_CLIENT_URLS="https://192.168.100.200:2379,https://127.0.0.1:2379"
ETCD_ADVERTISE_CLIENT_URLS="https://192.168.100.200:2379"
ETCD_CERT_FILE="`+dir+`/server.pem"
ETCD_KEY_FILE="`+dir+`/server-key.pem"
ETCD_TRUSTED_CA_FILE="`+dir+`/ca.pem"
ETCD_CLIENT_CERT_AUTH="true"
ETCD_AUTO_TLS="true"
ETCD_NO_SUCH_SETTING=1
`)
	s, found, err := EtcdConf(conf).Find()
	if err != nil || !found {
		t.Fatalf("found %v, %v", found, err)
	}
	want := Settings{Endpoints: []string{"https://192.168.100.200:2379"}, CACert: dir + "/ca.pem", Cert: dir + "/client.pem", Key: dir + "/client-key.pem"}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("got %+v, want %+v", s, want)
	}
	os.Remove(filepath.Join(dir, "client.pem"))
	if s, _, _ = EtcdConf(conf).Find(); s.Cert != dir+"/server.pem" {
		t.Fatalf("without client.pem: %+v", s)
	}

	// A YAML config listening on every address, with a server certificate
	// that is no client: found, with the reason it cannot connect.
	dir = sslDir(t, "server-only")
	yamlConf := write(t, filepath.Join(t.TempDir(), "etcd.yaml"), `name: m1
listen-client-urls: https://0.0.0.0:2379
client-transport-security:
  cert-file: `+dir+`/server.pem
  key-file: `+dir+`/server-key.pem
  trusted-ca-file: `+dir+`/ca.pem
  client-cert-auth: true
`)
	s, _, err = EtcdConf(yamlConf).Find()
	if err == nil || !strings.Contains(err.Error(), "none readable here is valid for client authentication") || !strings.Contains(err.Error(), "pass --cert and --key") {
		t.Fatalf("got %v", err)
	}
	if !reflect.DeepEqual(s.Endpoints, []string{"https://127.0.0.1:2379"}) {
		t.Fatalf("endpoints %v", s.Endpoints)
	}
	if _, found, err := EtcdConf(filepath.Join(t.TempDir(), "none")).Find(); found || err != nil {
		t.Fatalf("missing file: %v %v", found, err)
	}
}

// TestSSLDir: a cfssl directory gives the member on this host.
func TestSSLDir(t *testing.T) {
	dir := sslDir(t, "client")
	s, found, err := SSLDir(dir).Find()
	if err != nil || !found {
		t.Fatalf("found %v, %v", found, err)
	}
	if !reflect.DeepEqual(s, Settings{Endpoints: []string{"https://127.0.0.1:2379"}, CACert: dir + "/ca.pem", Cert: dir + "/client.pem", Key: dir + "/client-key.pem"}) {
		t.Fatalf("got %+v", s)
	}
	os.Remove(filepath.Join(dir, "client-key.pem"))
	if _, _, err := SSLDir(dir).Find(); err == nil || !strings.Contains(err.Error(), "etcdkit pki issue client NAME --dir "+dir) {
		t.Fatalf("without a client key: %v", err)
	}
	if _, found, err := SSLDir(filepath.Join(dir, "none")).Find(); found || err != nil {
		t.Fatalf("no directory: %v %v", found, err)
	}
}

// TestResolveNamesWhereItLooked: with nothing found, the error lists the
// sources.
func TestResolveNamesWhereItLooked(t *testing.T) {
	_, err := Resolve(Settings{}, Settings{}, SSLDir(filepath.Join(t.TempDir(), "ssl")), EtcdConf("/nonexistent/etcd.conf"))
	if err == nil || !strings.Contains(err.Error(), "nothing found in: certificate directory ") || !strings.Contains(err.Error(), "etcd config /nonexistent/etcd.conf") {
		t.Fatalf("got %v", err)
	}
}
