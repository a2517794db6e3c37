// Package pki holds the end-to-end tests of `etcdkit pki`: real members,
// the stock etcdctl, cfssl and openssl, and the built etcdkit binary.
package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/local"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/testutil"
)

// ek runs the etcdkit binary and fails the test unless it exits 0.
func ek(t *testing.T, args ...string) testutil.Result {
	t.Helper()
	r := testutil.Run(t, nil, testutil.Etcdkit(t), args...)
	if r.Code != 0 {
		t.Fatalf("etcdkit %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	testutil.AssertNoStackTrace(t, r.Stderr)
	return r
}

// ekFails runs the etcdkit binary expecting it to fail.
func ekFails(t *testing.T, args ...string) testutil.Result {
	t.Helper()
	return testutil.Run(t, nil, testutil.Etcdkit(t), args...)
}

// memberFiles are the certificate files an etcd config points at.
type memberFiles struct {
	ca, server, serverKey, peer, peerKey string
}

func cfsslFiles(dir string) memberFiles {
	s, p := pki.LayoutCfssl.Leaf(dir, pki.RoleServer), pki.LayoutCfssl.Leaf(dir, pki.RolePeer)
	return memberFiles{pki.LayoutCfssl.CA(dir).Cert, s.Cert, s.Key, p.Cert, p.Key}
}

func kubeadmFiles(dir string) memberFiles {
	s, p := pki.LayoutKubeadm.Leaf(dir, pki.RoleServer), pki.LayoutKubeadm.Leaf(dir, pki.RolePeer)
	return memberFiles{pki.LayoutKubeadm.CA(dir).Cert, s.Cert, s.Key, p.Cert, p.Key}
}

// oneMemberConfig writes the etcd config of a one-member cluster on
// 127.0.0.1 that uses f, and returns its path and client URL.
func oneMemberConfig(t *testing.T, dir string, f memberFiles) (string, string) {
	t.Helper()
	ports, err := local.FreePorts("127.0.0.1", 2)
	if err != nil {
		t.Fatal(err)
	}
	client := "https://127.0.0.1:" + strconv.Itoa(ports[0])
	peer := "https://127.0.0.1:" + strconv.Itoa(ports[1])
	cfg := &etcdconf.Config{
		Name: "m1", DataDir: filepath.Join(dir, "data"),
		ListenClientURLs: client, AdvertiseClientURLs: client,
		ListenPeerURLs: peer, InitialAdvertisePeerURLs: peer,
		InitialCluster: "m1=" + peer, InitialClusterToken: "pki-e2e", InitialClusterState: "new",
		ClientTransportSecurity: etcdconf.Security{CertFile: f.server, KeyFile: f.serverKey, TrustedCAFile: f.ca, ClientCertAuth: true},
		PeerTransportSecurity:   etcdconf.Security{CertFile: f.peer, KeyFile: f.peerKey, TrustedCAFile: f.ca, ClientCertAuth: true},
	}
	b, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "etcd.yaml")
	testutil.WriteBytes(t, path, b)
	return path, client
}

// startMember runs `etcdkit member run` and waits until it serves.
func startMember(t *testing.T, config string) *testutil.Proc {
	t.Helper()
	p := testutil.Start(t, nil, testutil.Etcdkit(t), "member", "run", "--config", config)
	testutil.WaitReady(t, p)
	return p
}

// etcdctl runs the stock etcdctl against one endpoint with a client pair.
func etcdctl(t *testing.T, endpoint, ca, cert, key string, args ...string) string {
	t.Helper()
	full := append([]string{"--endpoints", endpoint, "--cacert", ca, "--cert", cert, "--key", key}, args...)
	r := testutil.Run(t, nil, testutil.Tool(t, "etcdctl"), full...)
	if r.Code != 0 {
		t.Fatalf("etcdctl %s: exit %d\n%s%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// shell runs a command line (the fix commands `pki check` prints, cfssl
// pipelines) with bash, with etcdkit and the Go tools on PATH.
func shell(t *testing.T, dir, line string) string {
	t.Helper()
	var path []string
	for _, tool := range []string{"cfssl", "cfssljson"} {
		path = append(path, filepath.Dir(testutil.Tool(t, tool)))
	}
	path = append(path, filepath.Dir(testutil.Etcdkit(t)), os.Getenv("PATH"))
	cmd := exec.Command("bash", "-o", "pipefail", "-c", line)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+strings.Join(path, ":"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	return string(out)
}

func loadCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	certs, err := pki.LoadCerts(path)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

// acceptedBy does a TLS handshake and an HTTP request to a member's URL,
// presenting pair and trusting only roots, as a peer or a client that
// started with roots would: nil when both sides accepted.
func acceptedBy(ctx context.Context, url string, pair pki.Pair, roots ...*x509.Certificate) error {
	cert, err := tls.LoadX509KeyPair(pair.Cert, pair.Key)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool}, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/version", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s/version: %s", url, resp.Status)
	}
	return nil
}

// longCtx bounds a test that runs several phases against a cluster.
func longCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
