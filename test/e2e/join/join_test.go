// Package join tests `etcdkit init`, `token` and `join` end to end: three
// hosts simulated on 127.0.0.1..3, each a directory and separate
// processes of the built binary, driven as an operator would.
package join

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/etcdkit/etcdkit/internal/join"
	"github.com/etcdkit/etcdkit/internal/local"
	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/testutil"
)

// host is one simulated machine: an address and a directory.
type host struct {
	ip, dir            string
	peerURL, clientURL string
}

func newHost(t *testing.T, root string, i int) host {
	t.Helper()
	ip := fmt.Sprintf("127.0.0.%d", i)
	ports, err := local.FreePorts(ip, 2)
	if err != nil {
		t.Fatal(err)
	}
	h := host{ip: ip, dir: filepath.Join(root, fmt.Sprintf("host%d", i))}
	h.peerURL = "https://" + net.JoinHostPort(ip, strconv.Itoa(ports[0]))
	h.clientURL = "https://" + net.JoinHostPort(ip, strconv.Itoa(ports[1]))
	if err := os.MkdirAll(h.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h host) config() string  { return filepath.Join(h.dir, "etcd.yaml") }
func (h host) certDir() string { return filepath.Join(h.dir, "ssl") }

// place are the flags that put a member's files in the host's directory.
func (h host) place(name string) []string {
	return []string{"--name", name, "--peer-url", h.peerURL, "--client-url", h.clientURL,
		"--data-dir", filepath.Join(h.dir, "data"), "--cert-dir", h.certDir(), "--config", h.config()}
}

// ek runs the etcdkit binary and fails the test unless it exits 0.
func ek(t *testing.T, env []string, args ...string) testutil.Result {
	t.Helper()
	r := testutil.Run(t, env, testutil.Etcdkit(t), args...)
	if r.Code != 0 {
		t.Fatalf("etcdkit %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	testutil.AssertNoStackTrace(t, r.Stderr)
	return r
}

// created is what `token create -o json` prints.
type created struct {
	Token     string            `json:"token"`
	CAHash    string            `json:"caHash"`
	Endpoints []join.Advertised `json:"endpoints"`
}

func tokenCreate(t *testing.T, env []string, args ...string) created {
	t.Helper()
	r := ek(t, env, append([]string{"token", "create", "-o", "json"}, args...)...)
	var c created
	if err := json.Unmarshal([]byte(r.Stdout), &c); err != nil {
		t.Fatalf("token create -o json: %v\n%s", err, r.Stdout)
	}
	return c
}

func members(t *testing.T, env []string) *ops.Membership {
	t.Helper()
	r := testutil.Run(t, env, testutil.Etcdkit(t), "member", "list", "-o", "json")
	var ms ops.Membership
	if err := json.Unmarshal([]byte(r.Stdout), &ms); err != nil {
		t.Fatalf("member list -o json: exit %d, %v\n%s%s", r.Code, err, r.Stdout, r.Stderr)
	}
	return &ms
}

func TestThreeHostsJoin(t *testing.T) {
	bin := testutil.Etcdkit(t)
	root := t.TempDir()
	h1, h2, h3 := newHost(t, root, 1), newHost(t, root, 2), newHost(t, root, 3)
	// host4 is where every refused join is tried; it must stay empty.
	h4 := newHost(t, root, 4)
	joinPorts, err := local.FreePorts(h1.ip, 1)
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "https://" + net.JoinHostPort(h1.ip, strconv.Itoa(joinPorts[0]))

	// host1: init writes the first member with the join endpoint on, and
	// with --start runs it.
	p1 := testutil.Start(t, nil, bin, append([]string{"init", "--start", "--join-listen", endpoint}, h1.place("h1")...)...)
	testutil.WaitReady(t, p1)
	waitStderr(t, p1, "join endpoint is serving")
	for _, want := range []string{`initialised member "h1"; created the CA`, "etcdkit member run --config " + h1.config(), "etcdkit token create --endpoints " + h1.clientURL, "etcdkit join " + endpoint} {
		if !strings.Contains(p1.Stdout(), want) {
			t.Fatalf("init output lacks %q:\n%s", want, p1.Stdout())
		}
	}
	// A second init refuses to replace anything.
	again := testutil.Run(t, nil, bin, append([]string{"init", "--join-listen", endpoint}, h1.place("h1")...)...)
	testutil.ExpectFailure(t, again, 1, h1.config()+" already exists")
	ca := pki.LayoutCfssl.CA(h1.certDir())
	client := pki.LayoutCfssl.Leaf(h1.certDir(), pki.RoleClient)
	env := []string{"ETCDCTL_ENDPOINTS=" + h1.clientURL, "ETCDCTL_CACERT=" + ca.Cert, "ETCDCTL_CERT=" + client.Cert, "ETCDCTL_KEY=" + client.Key}

	tok := tokenCreate(t, env, "--uses", "2", "--description", "hosts 2 and 3")
	caCert, err := pki.LoadCerts(ca.Cert)
	if err != nil {
		t.Fatal(err)
	}
	pin, _ := pki.PublicKeyPin(caCert[0].PublicKey)
	if tok.CAHash != pin || len(tok.Endpoints) != 1 || tok.Endpoints[0].URL != endpoint {
		t.Fatalf("token create: %+v; want CA hash %s and endpoint %s", tok, pin, endpoint)
	}
	joinArgs := func(h host, name, token string) []string {
		return append([]string{"join", endpoint, "--token", token, "--ca-hash", pin}, h.place(name)...)
	}

	// Refusals: each with a clear message, nothing added to the member
	// list, nothing left on host4.
	before := testutil.TreeState(t, h4.dir)
	refused := func(t *testing.T, args []string, code int, want ...string) {
		t.Helper()
		n := len(members(t, env).Members)
		res := testutil.Run(t, nil, bin, args...)
		testutil.ExpectFailure(t, res, code, want...)
		testutil.AssertTreeState(t, h4.dir, before)
		if got := len(members(t, env).Members); got != n {
			t.Fatalf("a refused join changed the member list: %d members, was %d", got, n)
		}
	}
	t.Run("no CA hash", func(t *testing.T) {
		args := slices.DeleteFunc(joinArgs(h4, "h4", tok.Token), func(s string) bool { return s == "--ca-hash" || s == pin })
		refused(t, args, 2, "--ca-hash is required", "impostor", "--insecure-skip-ca-verification")
	})
	t.Run("wrong token", func(t *testing.T) {
		wrong := tok.Token[:len(tok.Token)-4] + "zzzz"
		if wrong == tok.Token {
			wrong = tok.Token[:len(tok.Token)-4] + "yyyy"
		}
		refused(t, joinArgs(h4, "h4", wrong), 1, "join endpoint "+endpoint+" refused", "no such token, it was revoked, or its secret is wrong")
	})
	t.Run("expired token", func(t *testing.T) {
		short := tokenCreate(t, env, "--ttl", "1s")
		id := strings.Split(short.Token, ".")[1]
		deadline := time.Now().Add(time.Minute)
		for !strings.Contains(ek(t, env, "token", "list").Stdout, id+"  expired") {
			if time.Now().After(deadline) {
				t.Fatal("the 1s token never shows as expired")
			}
			time.Sleep(200 * time.Millisecond)
		}
		refused(t, joinArgs(h4, "h4", short.Token), 1, "has expired", "etcdkit token create")
	})
	t.Run("CA hash of another CA (man in the middle)", func(t *testing.T) {
		var reached atomic.Int32
		mitm := impostor(t, func() { reached.Add(1) })
		args := append([]string{"join", mitm, "--token", tok.Token, "--ca-hash", pin}, h4.place("h4")...)
		refused(t, args, 1, "not signed by the pinned CA", "impostor-ca", "Nothing was sent")
		if reached.Load() != 0 {
			t.Fatalf("%d requests reached the impostor", reached.Load())
		}
	})
	t.Run("CSR for an IP that is not the peer URL's", func(t *testing.T) {
		fresh := tokenCreate(t, env)
		status, er := postCSR(t, endpoint, ca.Cert, fresh.Token, h4)
		if status != http.StatusBadRequest || er.Reason != join.ReasonBadRequest || !strings.Contains(er.Message, `asks for "10.9.9.9", which is not the host of the peer URL`) {
			t.Fatalf("%d %+v", status, er)
		}
		if n := len(members(t, env).Members); n != 1 {
			t.Fatalf("%d members", n)
		}
		if !strings.Contains(ek(t, env, "token", "list").Stdout, "0/1") {
			t.Fatal("the refused request spent the token")
		}
	})

	// Two hosts join at the same time with one two-use token; etcd takes
	// one learner at a time, so one waits for the other's promotion. host2
	// runs its member in the join process, which promotes it; host3 only
	// writes its files (--no-start) and is started as a service manager
	// would, and the endpoint promotes it.
	p2 := testutil.Start(t, nil, bin, joinArgs(h2, "h2", tok.Token)...)
	p3 := testutil.Start(t, nil, bin, append(joinArgs(h3, "h3", tok.Token), "--no-start")...)
	p3.WaitOutput(t, "next: etcdkit member run --config "+h3.config(), 4*time.Minute)
	if code := p3.Wait(t, time.Minute); code != 0 {
		t.Fatalf("join --no-start: exit %d\n%s", code, p3.Stderr())
	}
	t.Logf("host3 waited for another learner: %v", strings.Contains(p3.Stderr(), "waiting: "))
	p3 = testutil.Start(t, nil, bin, "member", "run", "--config", h3.config())
	testutil.WaitReady(t, p3)
	p2.WaitOutput(t, `member "h2" joined the cluster as a voting member`, 4*time.Minute)
	t.Logf("host2 waited for another learner: %v", strings.Contains(p2.Stderr(), "waiting: "))
	env[0] = "ETCDCTL_ENDPOINTS=" + strings.Join([]string{h1.clientURL, h2.clientURL, h3.clientURL}, ",")
	var ms *ops.Membership
	deadline := time.Now().Add(3 * time.Minute)
	for {
		ms = members(t, env)
		var bad []string
		for _, m := range ms.Members {
			if !m.Started || m.Learner || !m.Healthy {
				bad = append(bad, fmt.Sprintf("%s: started %v learner %v healthy %v", m.Name, m.Started, m.Learner, m.Healthy))
			}
		}
		if len(bad) == 0 && len(ms.Members) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not 3 healthy voters: %v\nhost1's log:\n%s", bad, p1.Stderr())
		}
		time.Sleep(500 * time.Millisecond)
	}
	waitStderr(t, p1, "promoted the joined member to a voting member")
	var names []string
	for _, m := range ms.Members {
		names = append(names, m.Name)
	}
	if !slices.Equal(names, []string{"h1", "h2", "h3"}) {
		t.Fatalf("members %v", names)
	}
	ek(t, env, "health")
	// The joined hosts made their own keys and never got the CA key.
	for _, h := range []host{h2, h3} {
		if _, err := os.Stat(ca.Key); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(pki.LayoutCfssl.CA(h.certDir()).Key); err == nil {
			t.Fatalf("%s has the CA key", h.dir)
		}
		for _, role := range pki.Roles {
			p := pki.LayoutCfssl.Leaf(h.certDir(), role)
			if fi, err := os.Stat(p.Key); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("%s: %v %v", p.Key, fi, err)
			}
		}
	}
	if l := ek(t, env, "token", "list").Stdout; !strings.Contains(l, "used up  ") || !strings.Contains(l, "2/2") {
		t.Fatalf("token list after two joins:\n%s", l)
	}

	t.Run("used-up token", func(t *testing.T) {
		refused(t, joinArgs(h4, "h4", tok.Token), 1, "used as many times as it allows", "2 of 2 uses")
	})
	t.Run("quorum lost", func(t *testing.T) {
		fresh := tokenCreate(t, env)
		for _, p := range []*testutil.Proc{p2, p3} {
			if err := p.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			p.Wait(t, time.Minute)
		}
		res := testutil.Run(t, nil, bin, joinArgs(h4, "h4", fresh.Token)...)
		testutil.ExpectFailure(t, res, 3, "refusing to add member \"h4\"", "the cluster has lost quorum", "of 3 voting members are healthy")
		testutil.AssertTreeState(t, h4.dir, before)
		if n := len(members(t, env).Members); n != 3 {
			t.Fatalf("%d members after a refused join", n)
		}
	})
}

func waitStderr(t *testing.T, p *testutil.Proc, s string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(p.Stderr(), s) {
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("%v never logged %q:\n%s", p.Cmd.Args, s, p.Stderr())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// impostor serves HTTPS as a join endpoint would, with a certificate from
// another CA, counting the requests that reach it.
func impostor(t *testing.T, hit func()) string {
	t.Helper()
	ca, err := pki.NewCA(pki.CARequest{CommonName: "impostor-ca"})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(pki.LeafRequest{Role: pki.RoleServer, CommonName: "impostor", Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit() }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Cert.Raw, ca.Cert.Raw}, PrivateKey: leaf.Key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// postCSR sends the endpoint a request whose peer CSR names an IP the peer
// URL does not, as a hand-made client could.
func postCSR(t *testing.T, endpoint, caFile, token string, h host) (int, join.ErrorResponse) {
	t.Helper()
	csr := func(hosts []string) string {
		k, err := pki.GenerateKey(pki.ECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		s, err := join.NewCSR(k, "h4", hosts)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	req := join.Request{Token: token, Name: "h4", PeerURL: h.peerURL, ClientURL: h.clientURL,
		ServerCSR: csr(join.MemberHosts(h.peerURL, h.clientURL)),
		PeerCSR:   csr([]string{h.ip, "10.9.9.9"}),
		ClientCSR: csr(nil)}
	body, _ := json.Marshal(req)
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := hc.Post(endpoint+join.JoinPath, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var er join.ErrorResponse
	_ = json.NewDecoder(resp.Body).Decode(&er)
	return resp.StatusCode, er
}
