package join

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdkit/etcdkit/internal/connect"
	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/local"
	"github.com/etcdkit/etcdkit/internal/member"
	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/testutil"
)

// served is one member running in this process with the join endpoint,
// from a one-member `up` directory.
type served struct {
	dir     local.Dir
	url     string
	pin     string
	cli     *clientv3.Client
	target  *connect.Target
	store   *Store
	backups string
}

func serve(t *testing.T) *served {
	t.Helper()
	d := local.Dir(filepath.Join(t.TempDir(), "c"))
	if _, err := d.Create(local.CreateOptions{Members: 1}); err != nil {
		t.Fatal(err)
	}
	path := d.Member("m1").Config()
	cfg, err := etcdconf.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ports, err := local.FreePorts("127.0.0.1", 1)
	if err != nil {
		t.Fatal(err)
	}
	s := &served{dir: d, url: "https://127.0.0.1:" + strconv.Itoa(ports[0]), backups: t.TempDir()}
	// An `up` member's certificate directory has no CA key: point at it.
	cfg.Etcdkit = &etcdconf.Extensions{Join: &etcdconf.Join{Listen: s.url, CADir: d.PKIDir(), BackupDir: s.backups}}
	cfg.LogLevel = "error"
	services, err := Services(cfg, path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- member.Run(ctx, member.Options{Config: cfg, ConfigPath: path, Services: services}) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	st, err := d.Settings()
	if err != nil {
		t.Fatal(err)
	}
	if s.target, err = connect.Resolve(st, connect.Settings{}); err != nil {
		t.Fatal(err)
	}
	if s.cli, err = s.target.Client(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.cli.Close() })
	s.store = &Store{Client: s.cli}
	// Ready once the endpoint announces itself.
	testutil.Retry(t, ctx, func() error {
		select {
		case err := <-done:
			t.Fatalf("member stopped: %v", err)
		default:
		}
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		defer ccancel()
		eps, err := ListEndpoints(cctx, s.cli)
		if err != nil {
			return err
		}
		if len(eps) != 1 {
			return fmt.Errorf("%d join endpoints announced", len(eps))
		}
		if eps[0].URL != s.url {
			t.Fatalf("announced %+v, want %s", eps[0], s.url)
		}
		s.pin = eps[0].CAHash
		return nil
	})
	ca, err := pki.LoadCA(d.CA())
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := pki.PublicKeyPin(ca.Cert.PublicKey); s.pin != want {
		t.Fatalf("announced CA hash %s, want %s", s.pin, want)
	}
	return s
}

func (s *served) token(t *testing.T, o CreateOptions) Token {
	t.Helper()
	if o.TTL == 0 {
		o.TTL = time.Hour
	}
	if o.Uses == 0 {
		o.Uses = 1
	}
	tok, _, err := s.store.Create(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (s *served) members(t *testing.T) *ops.Membership {
	t.Helper()
	ms, err := ops.MemberList(context.Background(), s.target)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// joinOptions places a joiner on 127.0.0.i with free ports and its own
// empty directory.
func joinOptions(t *testing.T, s *served, i int, tok Token) (Options, string) {
	t.Helper()
	ip := fmt.Sprintf("127.0.0.%d", i)
	ports, err := local.FreePorts(ip, 2)
	if err != nil {
		t.Fatal(err)
	}
	host := t.TempDir()
	return Options{
		URL: s.url, Token: tok.String(), CAHash: s.pin, Name: fmt.Sprintf("m%d", i),
		PeerURL:   "https://" + net.JoinHostPort(ip, strconv.Itoa(ports[0])),
		ClientURL: "https://" + net.JoinHostPort(ip, strconv.Itoa(ports[1])),
		Paths:     Paths{Config: filepath.Join(host, "etcd.yaml"), DataDir: filepath.Join(host, "data"), CertDir: filepath.Join(host, "ssl")},
		Wait:      time.Second,
	}, host
}

func TestStore(t *testing.T) {
	s := serve(t)
	ctx := context.Background()

	// Eight joins race for a one-use token: exactly one gets it.
	tok := s.token(t, CreateOptions{Uses: 1, Description: "race"})
	var wins, usedUp atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.store.Consume(ctx, tok, fmt.Sprintf("j%d", i))
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, ErrTokenUsedUp):
				usedUp.Add(1)
			default:
				t.Errorf("consume: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || usedUp.Load() != 7 {
		t.Fatalf("%d joins spent a one-use token, %d were told it is used up", wins.Load(), usedUp.Load())
	}
	r, err := s.store.Check(ctx, tok)
	if !errors.Is(err, ErrTokenUsedUp) || r.Used != 1 || len(r.UsedBy) != 1 {
		t.Fatalf("after the race: %+v, %v", r, err)
	}
	if err := s.store.Refund(ctx, tok, r.UsedBy[0]); err != nil {
		t.Fatal(err)
	}
	if r, err := s.store.Check(ctx, tok); err != nil || r.Used != 0 {
		t.Fatalf("after the refund: %+v, %v", r, err)
	}

	// etcd keeps the hash, never the secret.
	resp, err := s.cli.Get(ctx, KeyPrefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if strings.Contains(string(kv.Value), tok.Secret) {
			t.Fatalf("%s holds the secret: %s", kv.Key, kv.Value)
		}
	}
	wrong := tok
	wrong.Secret = strings.Repeat("x", secretLen)
	if _, err := s.store.Check(ctx, wrong); !errors.Is(err, ErrTokenRefused) {
		t.Fatalf("a wrong secret: %v", err)
	}
	if _, err := s.store.Consume(ctx, wrong, "x"); !errors.Is(err, ErrTokenRefused) {
		t.Fatalf("a wrong secret spent: %v", err)
	}

	past := &Store{Client: s.cli, Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }}
	old, _, err := past.Create(ctx, CreateOptions{TTL: time.Hour, Uses: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.Check(ctx, old); !errors.Is(err, ErrTokenExpired) || !strings.Contains(err.Error(), "expired at") {
		t.Fatalf("an expired token: %v", err)
	}
	list, err := s.store.List(ctx)
	if err != nil || len(list) != 2 || list[0].ID != tok.ID || list[0].Description != "race" || list[1].Status != StatusExpired {
		t.Fatalf("list: %+v, %v", list, err)
	}
	if _, err := s.store.Revoke(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.Check(ctx, tok); !errors.Is(err, ErrTokenRefused) {
		t.Fatalf("a revoked token: %v", err)
	}
	if _, err := s.store.Revoke(ctx, tok.ID); !errors.Is(err, ErrTokenNotFound) {
		t.Fatalf("revoked twice: %v", err)
	}
}

// TestJoin drives the real endpoint with the joiner: each refusal leaves
// the member list and the joiner's directory as they were; a join through
// a recording proxy shows that only requests and certificates cross.
func TestJoin(t *testing.T) {
	s := serve(t)
	ctx := context.Background()
	refused := func(t *testing.T, o Options, host string, want ...string) error {
		t.Helper()
		before := len(s.members(t).Members)
		_, err := Join(ctx, o)
		if err == nil {
			t.Fatal("the join was not refused")
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("error lacks %q: %v", w, err)
			}
		}
		if entries, _ := os.ReadDir(host); len(entries) > 0 {
			t.Fatalf("the refused join left %s in %s", entries[0].Name(), host)
		}
		if ms := s.members(t); len(ms.Members) != before {
			t.Fatalf("the refused join changed the member list: %+v", ms.Members)
		}
		return err
	}

	t.Run("wrong secret", func(t *testing.T) {
		tok := s.token(t, CreateOptions{})
		bad := tok
		bad.Secret = strings.Repeat("y", secretLen)
		o, host := joinOptions(t, s, 2, bad)
		err := refused(t, o, host, "refused", "no such token, it was revoked, or its secret is wrong")
		if !errors.Is(err, ErrTokenRefused) {
			t.Fatalf("not ErrTokenRefused: %v", err)
		}
	})
	t.Run("expired", func(t *testing.T) {
		past := &Store{Client: s.cli, Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }}
		tok, _, err := past.Create(ctx, CreateOptions{TTL: time.Hour, Uses: 1})
		if err != nil {
			t.Fatal(err)
		}
		o, host := joinOptions(t, s, 2, tok)
		if err := refused(t, o, host, "has expired", "etcdkit token create"); !errors.Is(err, ErrTokenExpired) {
			t.Fatalf("not ErrTokenExpired: %v", err)
		}
	})
	t.Run("used up", func(t *testing.T) {
		tok := s.token(t, CreateOptions{Uses: 1})
		if _, err := s.store.Consume(ctx, tok, "earlier"); err != nil {
			t.Fatal(err)
		}
		o, host := joinOptions(t, s, 2, tok)
		if err := refused(t, o, host, "used as many times as it allows", "1 of 1 uses"); !errors.Is(err, ErrTokenUsedUp) {
			t.Fatalf("not ErrTokenUsedUp: %v", err)
		}
	})
	t.Run("no CA hash", func(t *testing.T) {
		o, host := joinOptions(t, s, 2, s.token(t, CreateOptions{}))
		o.CAHash = ""
		refused(t, o, host, "no CA hash", "impostor")
	})
	t.Run("man in the middle", func(t *testing.T) {
		other, err := pki.NewCA(pki.CARequest{CommonName: "mitm-ca"})
		if err != nil {
			t.Fatal(err)
		}
		var reached atomic.Int32
		mitm := tlsServer(t, other, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) }))
		tok := s.token(t, CreateOptions{})
		o, host := joinOptions(t, s, 2, tok)
		o.URL = mitm.URL
		err = refused(t, o, host, "not signed by the pinned CA", "mitm-ca", "Nothing was sent")
		if !errors.Is(err, ErrCAMismatch) || reached.Load() != 0 {
			t.Fatalf("%d requests reached the impostor (%v)", reached.Load(), err)
		}
		if r, err := s.store.Check(ctx, tok); err != nil || r.Used != 0 {
			t.Fatalf("the token changed: %+v, %v", r, err)
		}
	})
	t.Run("CSR for another IP", func(t *testing.T) {
		tok := s.token(t, CreateOptions{})
		o, _ := joinOptions(t, s, 2, tok)
		req := goodRequest(t)
		req.Token, req.Name, req.PeerURL, req.ClientURL = tok.String(), o.Name, o.PeerURL, o.ClientURL
		peer, _ := url.Parse(o.PeerURL)
		req.PeerCSR = mustCSR(t, mustKey(t), o.Name, []string{peer.Hostname(), "127.0.0.1", "127.0.0.9"})
		req.ServerCSR = mustCSR(t, mustKey(t), o.Name, MemberHosts(o.PeerURL, o.ClientURL))
		u, _ := url.Parse(s.url)
		_, err := send(ctx, u, s.pin, req, time.Second, func(string) {})
		var rf *Refusal
		if !errors.As(err, &rf) || rf.Reason != ReasonBadRequest || !strings.Contains(err.Error(), `asks for "127.0.0.9", which is not the host of the peer URL`) {
			t.Fatalf("got %v", err)
		}
		if ms := s.members(t); len(ms.Members) != 1 {
			t.Fatalf("member list changed: %+v", ms.Members)
		}
		if r, err := s.store.Check(ctx, tok); err != nil || r.Used != 0 {
			t.Fatalf("the token changed: %+v, %v", r, err)
		}
	})

	t.Run("through a recording proxy", func(t *testing.T) {
		ca, err := pki.LoadCA(s.dir.CA())
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var wire [][]byte
		record := func(b []byte) {
			mu.Lock()
			defer mu.Unlock()
			wire = append(wire, b)
		}
		upstream, _ := url.Parse(s.url)
		roots := x509.NewCertPool()
		roots.AddCert(ca.Cert)
		rp := &httputil.ReverseProxy{
			Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(upstream) },
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
			ModifyResponse: func(resp *http.Response) error {
				b, err := io.ReadAll(resp.Body)
				resp.Body = io.NopCloser(bytes.NewReader(b))
				record(b)
				return err
			},
		}
		proxy := tlsServer(t, ca, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			record(b)
			r.Body = io.NopCloser(bytes.NewReader(b))
			rp.ServeHTTP(w, r)
		}))
		tok := s.token(t, CreateOptions{})
		o, _ := joinOptions(t, s, 2, tok)
		o.URL = proxy.URL
		res, err := Join(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if len(wire) != 2 {
			t.Fatalf("%d bodies crossed, want a request and a response", len(wire))
		}
		var req Request
		var resp Response
		for i, dst := range []any{&req, &resp} {
			dec := json.NewDecoder(bytes.NewReader(wire[i]))
			dec.DisallowUnknownFields()
			if err := dec.Decode(dst); err != nil {
				t.Fatalf("body %d is not a %T: %v", i, dst, err)
			}
		}
		var keys [][]byte
		for _, f := range res.Files {
			if strings.HasSuffix(f, "-key.pem") {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				if fi, _ := os.Stat(f); fi.Mode().Perm() != 0o600 {
					t.Fatalf("%s has mode %v", f, fi.Mode())
				}
				keys = append(keys, b)
			}
		}
		if len(keys) != 3 {
			t.Fatalf("%d key files written: %v", len(keys), res.Files)
		}
		for i, b := range wire {
			if bytes.Contains(b, []byte("PRIVATE KEY")) {
				t.Fatalf("body %d holds a PEM private key", i)
			}
			for _, k := range keys {
				block := pemBody(k)
				if bytes.Contains(b, []byte(block[:40])) {
					t.Fatalf("body %d holds a key written on the joiner", i)
				}
			}
		}
		if req.Name != "m2" || resp.MemberID == "" || !strings.Contains(resp.InitialCluster, "m1=") || !strings.Contains(resp.InitialCluster, "m2="+o.PeerURL) {
			t.Fatalf("request %+v, response %+v", req, resp)
		}
		// The learner is in the list; the certificates verify on disk.
		ms := s.members(t)
		if m := ms.ByPeerURL(o.PeerURL); m == nil || !m.Learner {
			t.Fatalf("no learner with %s: %+v", o.PeerURL, ms.Members)
		}
		for _, role := range []pki.Role{pki.RoleServer, pki.RolePeer, pki.RoleClient} {
			if _, err := pki.LoadLeaf(pki.LayoutCfssl.Leaf(o.Paths.CertDir, role)); err != nil {
				t.Fatal(err)
			}
		}
		if b, _ := os.ReadFile(res.ConfigPath); !strings.Contains(string(b), "initial-cluster-state: existing") {
			t.Fatalf("config:\n%s", b)
		}
		if snaps, _ := filepath.Glob(filepath.Join(s.backups, "*.db")); len(snaps) != 1 {
			t.Fatalf("snapshots before the add: %v", snaps)
		}
		if r, _ := s.store.Check(ctx, tok); r == nil || r.Used != 1 || r.UsedBy[0] != "m2" {
			t.Fatalf("token after the join: %+v", r)
		}

		// While m2 has not caught up, another join waits, and gives up
		// at --wait without spending its token.
		tok3 := s.token(t, CreateOptions{})
		o3, host3 := joinOptions(t, s, 3, tok3)
		if err := refused(t, o3, host3, "still joining as a learner", "max-learners", "member remove"); err == nil {
			t.Fatal("joined beside a learner")
		}
		if r, _ := s.store.Check(ctx, tok3); r == nil || r.Used != 0 {
			t.Fatalf("the busy join spent its token: %+v", r)
		}

		// A re-run of the interrupted join picks the unstarted learner up.
		again, _ := joinOptions(t, s, 2, s.token(t, CreateOptions{}))
		again.PeerURL, again.ClientURL = o.PeerURL, o.ClientURL
		res2, err := Join(ctx, again)
		if err != nil || !res2.Response.Existing || res2.Response.MemberID != res.Response.MemberID {
			t.Fatalf("re-run: %+v, %v", res2, err)
		}
	})
}

// tlsServer serves h with a certificate from ca, the CA following the
// leaf as the join endpoint sends it.
func tlsServer(t *testing.T, ca *pki.CA, h http.Handler) *httptest.Server {
	t.Helper()
	sc, err := servingCert(ca, []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: sc.chain, PrivateKey: sc.leaf.Key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// pemBody is the base64 text of the first PEM block.
func pemBody(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[1:len(lines)-1], "")
}
