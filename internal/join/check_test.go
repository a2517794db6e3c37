package join

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/local"
	"github.com/etcdkit/etcdkit/internal/pki"
)

const (
	testPeer   = "https://10.0.0.4:2380"
	testClient = "https://10.0.0.4:2379"
)

func mustKey(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustCSR(t *testing.T, key crypto.Signer, cn string, hosts []string) string {
	t.Helper()
	csr, err := NewCSR(key, cn, hosts)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

// goodRequest is a request as the joiner builds it.
func goodRequest(t *testing.T) *Request {
	t.Helper()
	tok, _ := NewToken()
	hosts := MemberHosts(testPeer, testClient)
	return &Request{
		Token: tok.String(), Name: "m4", PeerURL: testPeer, ClientURL: testClient,
		ServerCSR: mustCSR(t, mustKey(t), "m4", hosts),
		PeerCSR:   mustCSR(t, mustKey(t), "m4", hosts),
		ClientCSR: mustCSR(t, mustKey(t), "m4-healthcheck-client", nil),
	}
}

func TestCheckRequest(t *testing.T) {
	if _, err := check(goodRequest(t)); err != nil {
		t.Fatalf("a good request is refused: %v", err)
	}
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(r *Request)
		reason Reason
		want   string
	}{
		{"an IP that is not the peer URL's", func(r *Request) {
			r.PeerCSR = mustCSR(t, mustKey(t), "m4", []string{"10.0.0.4", "10.0.0.1"})
		}, ReasonBadRequest, `peer certificate request asks for "10.0.0.1", which is not the host of the peer URL (10.0.0.4:2380)`},
		{"another host's name in the server request", func(r *Request) {
			r.ServerCSR = mustCSR(t, mustKey(t), "m4", []string{"10.0.0.4", "master01.example.com"})
		}, ReasonBadRequest, `server certificate request asks for "master01.example.com"`},
		{"a peer request without the peer URL's host", func(r *Request) {
			r.PeerCSR = mustCSR(t, mustKey(t), "m4", []string{"127.0.0.1"})
		}, ReasonBadRequest, "peer certificate request does not name 10.0.0.4"},
		{"a client request naming a host", func(r *Request) {
			r.ClientCSR = mustCSR(t, mustKey(t), "c", []string{"10.0.0.4"})
		}, ReasonBadRequest, "a client certificate names no host"},
		{"a weak RSA key", func(r *Request) {
			r.ServerCSR = mustCSR(t, weak, "m4", MemberHosts(testPeer, testClient))
		}, ReasonBadRequest, "1024-bit RSA key is too weak"},
		{"not a CSR", func(r *Request) { r.PeerCSR = "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n" }, ReasonBadRequest, "peer certificate request: not a PEM certificate request"},
		{"a bad signature", func(r *Request) {
			csr := mustCSR(t, mustKey(t), "m4", MemberHosts(testPeer, testClient))
			r.ServerCSR = strings.Replace(csr, csr[200:204], "AAAA", 1)
		}, ReasonBadRequest, "server certificate request"},
		{"http peer URL", func(r *Request) { r.PeerURL = "http://10.0.0.4:2380" }, ReasonBadRequest, "give an https:// URL"},
		{"a name with a comma", func(r *Request) { r.Name = "m4,m5=https://x:1" }, ReasonBadRequest, "invalid member name"},
		{"a malformed token", func(r *Request) { r.Token = "etk1.short.x" }, ReasonToken, "invalid join token"},
		{"an unknown layout", func(r *Request) { r.Layout = "pem" }, ReasonBadRequest, "invalid PKI layout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := goodRequest(t)
			tc.change(r)
			_, err := check(r)
			rf := refusalOf(err)
			if err == nil || rf.Reason != tc.reason || !strings.Contains(rf.Message, tc.want) {
				t.Fatalf("got %v (%s), want %s refusal with %q", err, rf.Reason, tc.reason, tc.want)
			}
		})
	}
}

// TestWireTypesCarryNoKey: the request and response types have no field a
// private key could travel in: every field is a string, a number, a
// boolean, a duration or a list of strings, and no field is named for a
// key. The end-to-end test checks the bytes of a real exchange.
func TestWireTypesCarryNoKey(t *testing.T) {
	for _, v := range []any{Request{}, Response{}, ErrorResponse{}, Advertised{}} {
		var walk func(reflect.Type, string)
		walk = func(typ reflect.Type, path string) {
			for i := range typ.NumField() {
				f := typ.Field(i)
				p := path + "." + f.Name
				if n := strings.ToLower(f.Name); strings.Contains(n, "key") || strings.Contains(n, "private") || strings.Contains(n, "secret") {
					t.Errorf("%s: a field named for a key", p)
				}
				switch f.Type.Kind() {
				case reflect.String, reflect.Bool, reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint64:
				case reflect.Slice:
					if f.Type.Elem().Kind() != reflect.String {
						t.Errorf("%s: a %s could hold anything", p, f.Type)
					}
				case reflect.Struct:
					walk(f.Type, p)
				default:
					t.Errorf("%s: type %s could hold a key", p, f.Type)
				}
			}
		}
		walk(reflect.TypeOf(v), reflect.TypeOf(v).Name())
	}
}

func TestHandlerRateLimitsFailures(t *testing.T) {
	ep := &Endpoint{}
	h := ep.Handler()
	body, _ := json.Marshal(Request{Token: "etk1.nope"})
	post := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, JoinPath, strings.NewReader(string(body)))
		r.RemoteAddr = "192.0.2.7:40000"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	for i := range defaultBurst {
		if w := post(); w.Code != http.StatusForbidden {
			t.Fatalf("attempt %d: %d %s", i, w.Code, w.Body)
		}
	}
	w := post()
	var er ErrorResponse
	_ = json.Unmarshal(w.Body.Bytes(), &er)
	if w.Code != http.StatusTooManyRequests || er.Reason != ReasonRateLimited || w.Header().Get("Retry-After") == "" ||
		!strings.Contains(er.Message, "too many failed join attempts from 192.0.2.7") {
		t.Fatalf("after %d failures: %d %+v", defaultBurst, w.Code, er)
	}
	// Unknown fields are refused, so a request cannot smuggle anything.
	r := httptest.NewRequest(http.MethodPost, JoinPath, strings.NewReader(`{"token":"x","privateKey":"y"}`))
	r.RemoteAddr = "192.0.2.8:1"
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "privateKey") {
		t.Fatalf("unknown field: %d %s", w.Code, w.Body)
	}
}

func TestVerifyPinned(t *testing.T) {
	ca, err := pki.NewCA(pki.CARequest{CommonName: "cluster-ca"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA(pki.CARequest{CommonName: "mitm-ca"})
	if err != nil {
		t.Fatal(err)
	}
	pin, _ := pki.PublicKeyPin(ca.Cert.PublicKey)
	good, err := servingCert(ca, []string{"10.0.0.1"}, servingValidity)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := servingCert(other, []string{"10.0.0.1"}, servingValidity)
	if err != nil {
		t.Fatal(err)
	}
	chain := func(s *servedCert) []*x509.Certificate {
		var out []*x509.Certificate
		for _, der := range s.chain {
			c, _ := x509.ParseCertificate(der)
			out = append(out, c)
		}
		return out
	}
	if got, err := verifyPinned(chain(good), "10.0.0.1", pin); err != nil || got.Subject.CommonName != "cluster-ca" {
		t.Fatalf("the right CA: %v, %v", got, err)
	}
	if _, err := verifyPinned(chain(good), "10.0.0.9", pin); err == nil || !strings.Contains(err.Error(), "does not verify against the pinned CA for 10.0.0.9") {
		t.Fatalf("another host: %v", err)
	}
	otherPin, _ := pki.PublicKeyPin(other.Cert.PublicKey)
	_, err = verifyPinned(chain(bad), "10.0.0.1", pin)
	if err == nil || !strings.Contains(err.Error(), "presented CA "+otherPin) || !strings.Contains(err.Error(), "Nothing was sent") {
		t.Fatalf("a man in the middle: %v", err)
	}
	// A leaf alone, as an ordinary server sends it, names no CA to pin.
	if _, err := verifyPinned(chain(good)[:1], "10.0.0.1", pin); err == nil || !strings.Contains(err.Error(), "no CA certificate") {
		t.Fatalf("a leaf alone: %v", err)
	}
	// Without a pin (--insecure-skip-ca-verification) the presented CA is taken.
	if got, err := verifyPinned(chain(bad), "10.0.0.1", ""); err != nil || got.Subject.CommonName != "mitm-ca" {
		t.Fatalf("no pin: %v, %v", got, err)
	}
	for _, s := range []string{"d97f", "sha1:" + strings.Repeat("ab", 32), "sha256:" + strings.Repeat("zz", 32)} {
		if _, err := ParsePin(s); err == nil {
			t.Errorf("ParsePin(%q) accepted", s)
		}
	}
	if p, err := ParsePin(strings.ToUpper(pin[:7]) + strings.ToUpper(pin[7:])); err == nil {
		t.Errorf("upper-case prefix accepted: %s", p)
	}
	if p, err := ParsePin("sha256:" + strings.ToUpper(pin[7:])); err != nil || p != pin {
		t.Errorf("upper-case hex: %q, %v", p, err)
	}
}

func TestParseConfig(t *testing.T) {
	d := local.Dir(filepath.Join(t.TempDir(), "c"))
	if _, err := d.Create(local.CreateOptions{Members: 1}); err != nil {
		t.Fatal(err)
	}
	path := d.Member("m1").Config()
	load := func(j *etcdconf.Join) *etcdconf.Config {
		cfg, err := etcdconf.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Etcdkit = &etcdconf.Extensions{Join: j}
		return cfg
	}
	if c, err := ParseConfig(load(nil), path); c != nil || err != nil {
		t.Fatalf("no join block: %v, %v", c, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := "https://" + ln.Addr().String()
	for _, tc := range []struct {
		name string
		j    etcdconf.Join
		want string
	}{
		{"plain http", etcdconf.Join{Listen: "http://127.0.0.1:2382", CADir: d.PKIDir()}, "serves only HTTPS"},
		{"a host name", etcdconf.Join{Listen: "https://localhost:2382", CADir: d.PKIDir()}, "listen on an IP address"},
		{"no port", etcdconf.Join{Listen: "https://127.0.0.1", CADir: d.PKIDir()}, "missing port"},
		{"ca-dir without listen", etcdconf.Join{CADir: d.PKIDir()}, "etcdkit.join.listen: required"},
		// The member's own certificate directory has the CA certificate
		// but not its key.
		{"no CA key", etcdconf.Join{Listen: "https://127.0.0.1:2382"}, "only a member holding the CA key can serve the join endpoint"},
		{"port in use", etcdconf.Join{Listen: busy, CADir: d.PKIDir()}, "cannot listen on " + ln.Addr().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Services(load(&tc.j), path)
			var fe *etcdconf.FieldError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("got %v, want a FieldError naming %s with %q", err, path, tc.want)
			}
		})
	}
	c, err := ParseConfig(load(&etcdconf.Join{Listen: "https://0.0.0.0:2382", CADir: d.PKIDir()}), path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.Advertise, "https://127.0.0.1:") || !strings.HasSuffix(c.Advertise, ":2382") || c.Client.Cert == "" {
		t.Fatalf("a wildcard listen: %+v", c)
	}
}
