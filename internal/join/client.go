package join

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/pki"
)

// Default joiner settings.
const (
	// DefaultWait bounds how long a join waits for the endpoint while
	// other members are joining (one learner at a time).
	DefaultWait = 10 * time.Minute
	// requestTimeout bounds one request: the endpoint may snapshot and
	// retry the add for a while (a member that just connected).
	requestTimeout = 3 * time.Minute
)

// Options describe a host joining a cluster.
type Options struct {
	// URL is the join endpoint: https://HOST:2382.
	URL   string
	Token string
	// CAHash pins the cluster's CA (sha256:<hex>). Empty only with
	// InsecureSkipCAVerification.
	CAHash                     string
	InsecureSkipCAVerification bool

	Name      string
	PeerURL   string
	ClientURL string
	Paths     Paths
	// Layout names the files; "" takes the cluster's.
	Layout pki.Layout
	// KeyAlgorithm of the keys made here; "" takes the CA's.
	KeyAlgorithm pki.KeyAlgorithm
	// Wait bounds the retries while the endpoint is busy; default
	// DefaultWait.
	Wait     time.Duration
	Progress func(msg string)
}

// Paths are where a joining member's files go on its host.
type Paths struct {
	Config  string
	DataDir string
	CertDir string
}

// Result is a member that joined: the files written and what the endpoint
// said.
type Result struct {
	Response *Response
	Config   *etcdconf.Config
	// ConfigPath is the member's etcd config, for `member run --config`.
	ConfigPath string
	Files      []string
	// CAHash is the CA the endpoint was verified with.
	CAHash string
	// Client is the health-check client pair, and CACert the bundle.
	Client pki.Pair
	CACert string
}

// keys are the joiner's private keys: made here, written here, never sent.
type keys struct {
	server, peer, client crypto.Signer
}

// Join asks the endpoint to add this host as a member. It checks
// everything it can locally first, then verifies the endpoint against the
// pinned CA before sending anything, makes the private keys here and sends
// only certificate requests. Files are written, all or none, only once the
// endpoint has answered with certificates that match the keys.
func Join(ctx context.Context, o Options) (*Result, error) {
	say := o.Progress
	if say == nil {
		say = func(string) {}
	}
	u, tok, pin, err := o.check()
	if err != nil {
		return nil, err
	}
	if err := o.Paths.checkEmpty(o.Layout); err != nil {
		return nil, err
	}
	if pin == "" {
		say(fmt.Sprintf("connecting to %s without a CA hash: trusting the CA it presents", u.Redacted()))
	} else {
		say(fmt.Sprintf("verifying %s against the pinned CA", u.Redacted()))
	}
	ca, err := probe(ctx, u, pin)
	if err != nil {
		return nil, err
	}
	caPin, _ := pki.PublicKeyPin(ca.PublicKey)
	alg := o.KeyAlgorithm
	if alg == "" {
		alg = pki.AlgorithmOf(ca.PublicKey)
	}
	say(fmt.Sprintf("the endpoint holds CA %q (%s); making %s keys here", ca.Subject.CommonName, caPin, alg))
	var k keys
	for _, dst := range []*crypto.Signer{&k.server, &k.peer, &k.client} {
		if *dst, err = pki.GenerateKey(alg); err != nil {
			return nil, err
		}
	}
	req := &Request{Token: tok.String(), Name: o.Name, PeerURL: o.PeerURL, ClientURL: o.ClientURL, Layout: string(o.Layout)}
	hosts := MemberHosts(o.PeerURL, o.ClientURL)
	if req.ServerCSR, err = NewCSR(k.server, o.Name, hosts); err != nil {
		return nil, err
	}
	if req.PeerCSR, err = NewCSR(k.peer, o.Name, hosts); err != nil {
		return nil, err
	}
	if req.ClientCSR, err = NewCSR(k.client, o.Name+"-healthcheck-client", nil); err != nil {
		return nil, err
	}
	resp, err := send(ctx, u, pin, req, o.wait(), say)
	if err != nil {
		return nil, err
	}
	added := func(err error) error {
		return fmt.Errorf("member %q was added to the cluster (id %s), but %w; remove it with `etcdkit member remove %s` and join again, or join again with a new token (the same name and peer URL reuse it)", o.Name, resp.MemberID, err, resp.MemberID)
	}
	certs, err := checkResponse(resp, ca, k, o.PeerURL, o.ClientURL)
	if err != nil {
		return nil, added(err)
	}
	res, err := o.write(resp, certs, k, caPin, alg)
	if err != nil {
		return nil, added(err)
	}
	return res, nil
}

func (o *Options) wait() time.Duration {
	if o.Wait > 0 {
		return o.Wait
	}
	return DefaultWait
}

// check validates the options without touching the network.
func (o *Options) check() (*url.URL, Token, string, error) {
	u, err := url.Parse(o.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, Token{}, "", fmt.Errorf("invalid join endpoint %q: want https://HOST:%d", o.URL, DefaultPort)
	}
	tok, err := ParseToken(o.Token)
	if err != nil {
		return nil, Token{}, "", err
	}
	pin := ""
	switch {
	case o.CAHash != "":
		if pin, err = ParsePin(o.CAHash); err != nil {
			return nil, Token{}, "", err
		}
	case !o.InsecureSkipCAVerification:
		return nil, Token{}, "", errors.New("no CA hash: without one this host cannot tell the cluster's join endpoint from an impostor, and would send its join token to whoever answers")
	}
	if err := CheckName(o.Name); err != nil {
		return nil, Token{}, "", err
	}
	if _, err := checkMemberURL("peer URL", o.PeerURL); err != nil {
		return nil, Token{}, "", err
	}
	if _, err := checkMemberURL("client URL", o.ClientURL); err != nil {
		return nil, Token{}, "", err
	}
	return u, tok, pin, nil
}

// send posts the request, retrying while the endpoint is busy with
// another joining member, up to wait.
func send(ctx context.Context, u *url.URL, pin string, req *Request, wait time.Duration, say func(string)) (*Response, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: requestTimeout, Transport: &http.Transport{
		TLSClientConfig: pinnedTLS(u.Hostname(), pin, nil), ForceAttemptHTTP2: true,
	}}
	defer hc.CloseIdleConnections()
	endpoint := (&url.URL{Scheme: "https", Host: hostPort(u), Path: JoinPath}).String()
	deadline := time.Now().Add(wait)
	lastBusy := ""
	for {
		resp, err := post(ctx, hc, endpoint, body)
		var rf *Refusal
		if errors.As(err, &rf) && rf.Reason == ReasonBusy && time.Now().Add(rf.RetryAfter).Before(deadline) {
			if rf.Message != lastBusy {
				say("waiting: " + rf.Message)
				lastBusy = rf.Message
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(max(rf.RetryAfter, time.Second)):
			}
			continue
		}
		if rf != nil {
			rf.Endpoint = u.Redacted()
		}
		return resp, err
	}
}

func post(ctx context.Context, hc *http.Client, endpoint string, body []byte) (*Response, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hresp, err := hc.Do(hreq)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("join endpoint %s: %w", endpoint, err)
	}
	defer hresp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(hresp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("join endpoint %s: %w", endpoint, err)
	}
	if hresp.StatusCode != http.StatusOK {
		var er ErrorResponse
		if json.Unmarshal(data, &er) != nil || er.Message == "" {
			return nil, fmt.Errorf("join endpoint %s answered %s, not a join response; is the URL the join endpoint (port %d by default)?", endpoint, hresp.Status, DefaultPort)
		}
		return nil, &Refusal{ErrorResponse: er}
	}
	var resp Response
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, fmt.Errorf("join endpoint %s: unreadable answer: %w", endpoint, err)
	}
	return &resp, nil
}

// signed are the response's certificates, checked.
type signed struct {
	bundle               []*x509.Certificate
	server, peer, client []*x509.Certificate
}

// checkResponse verifies what came back: the CA bundle holds the pinned
// CA, and each certificate is for the key made here and chains to it.
func checkResponse(resp *Response, ca *x509.Certificate, k keys, peerURL, clientURL string) (*signed, error) {
	peer, _ := url.Parse(peerURL)
	client, _ := url.Parse(clientURL)
	var s signed
	var err error
	if s.bundle, err = pki.ParseCerts([]byte(resp.CABundle)); err != nil {
		return nil, fmt.Errorf("the CA bundle it returned is unreadable: %w", err)
	}
	roots := x509.NewCertPool()
	found := false
	for _, c := range s.bundle {
		roots.AddCert(c)
		found = found || bytes.Equal(c.Raw, ca.Raw)
	}
	if !found {
		return nil, errors.New("the CA bundle it returned does not hold the CA its endpoint is signed by")
	}
	for _, x := range []struct {
		what  string
		pem   string
		key   crypto.Signer
		usage x509.ExtKeyUsage
		host  string
		dst   *[]*x509.Certificate
	}{
		{"server", resp.ServerCert, k.server, x509.ExtKeyUsageServerAuth, client.Hostname(), &s.server},
		{"peer", resp.PeerCert, k.peer, x509.ExtKeyUsageServerAuth, peer.Hostname(), &s.peer},
		{"client", resp.ClientCert, k.client, x509.ExtKeyUsageClientAuth, "", &s.client},
	} {
		chain, err := pki.ParseCerts([]byte(x.pem))
		if err != nil {
			return nil, fmt.Errorf("the %s certificate it returned is unreadable: %w", x.what, err)
		}
		if !pki.KeyMatches(x.key, chain[0].PublicKey) {
			return nil, fmt.Errorf("the %s certificate it returned is not for the key made here", x.what)
		}
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: x.host, KeyUsages: []x509.ExtKeyUsage{x.usage}}); err != nil {
			return nil, fmt.Errorf("the %s certificate it returned does not verify: %w", x.what, err)
		}
		*x.dst = chain
	}
	return &s, nil
}
