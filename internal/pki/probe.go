package pki

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// MemberProbe is what one member's listener showed: the certificate it
// serves, and whether it accepts a client certificate signed by the new CA
// alone (without the cross-signed certificate), which it does only if the
// new CA is in the trust pool it built when it started.
type MemberProbe struct {
	Name     string `json:"name"`
	Listener string `json:"listener"`
	URL      string `json:"url"`
	// ServedIssuer is the issuer of the certificate the member serves.
	ServedIssuer string `json:"servedIssuer,omitempty"`
	// ServesNewLeaf: the served certificate is signed by the new CA.
	ServesNewLeaf bool `json:"servesNewLeaf"`
	// ServesCrossSigned: the cross-signed certificate follows it.
	ServesCrossSigned bool   `json:"servesCrossSigned"`
	TrustsNewCA       bool   `json:"trustsNewCA"`
	Error             string `json:"error,omitempty"`
}

// ProbeMembers asks every member's client and peer listener, at once.
func ProbeMembers(ctx context.Context, inv *Inventory, newCA *CA, timeout time.Duration) []MemberProbe {
	// The probe's own client certificate: signed by the new CA, with no
	// chain, valid for the next hour only and never written anywhere.
	signer := &CA{Cert: newCA.Cert, Key: newCA.Key, Now: newCA.Now}
	leaf, err := signer.Issue(LeafRequest{Role: RoleClient, CommonName: "etcdkit-rotate-ca-probe", Validity: time.Hour, KeyAlgorithm: ECDSAP256})
	type target struct{ name, listener, url string }
	var targets []target
	for _, m := range inv.Members {
		if m.ClientURL != "" {
			targets = append(targets, target{m.Name, "client", m.ClientURL})
		}
		if m.PeerURL != "" {
			targets = append(targets, target{m.Name, "peer", m.PeerURL})
		}
	}
	out := make([]MemberProbe, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		out[i] = MemberProbe{Name: t.name, Listener: t.listener, URL: t.url}
		if err != nil {
			out[i].Error = err.Error()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			probeOne(ctx, &out[i], leaf, newCA.Cert, timeout)
		}()
	}
	wg.Wait()
	return out
}

func probeOne(ctx context.Context, p *MemberProbe, leaf *Leaf, newCA *x509.Certificate, timeout time.Duration) {
	var served []*x509.Certificate
	cfg := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Cert.Raw}, PrivateKey: leaf.Key, Leaf: leaf.Cert}},
		// The probe sends no secret and only reads /version; it asks what
		// the member trusts, so it must reach the member whatever it
		// serves. The served chain is examined below instead.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			served = cs.PeerCertificates
			return nil
		},
	}
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(p.URL, "/")+"/version", nil)
	if err != nil {
		p.Error = err.Error()
		return
	}
	resp, err := client.Do(req)
	if len(served) > 0 {
		p.ServedIssuer = served[0].Issuer.CommonName
		p.ServesNewLeaf = served[0].CheckSignatureFrom(newCA) == nil
		p.ServesCrossSigned = len(served) > 1 && served[1].Subject.String() == newCA.Subject.String() && KeyMatchesPublic(served[1].PublicKey, newCA.PublicKey)
	}
	switch {
	case err == nil:
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		p.TrustsNewCA = true
	case rejectedCertificate(err):
		p.TrustsNewCA = false
	default:
		p.Error = err.Error()
	}
}

// rejectedCertificate reports a TLS alert from the server about our client
// certificate. crypto/tls returns a received alert as a *net.OpError with
// Op "remote error" whose Err is an unexported alert type, so the alert is
// recognised by its text: "bad certificate", "unknown certificate
// authority", "certificate required".
func rejectedCertificate(err error) bool {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" || op.Err == nil {
		return false
	}
	return strings.Contains(op.Err.Error(), "certificate")
}

// KeyMatchesPublic reports whether two public keys are the same.
func KeyMatchesPublic(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}
