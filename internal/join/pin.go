package join

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/etcdkit/etcdkit/internal/pki"
)

// ErrCAMismatch is wrapped when the endpoint's certificate does not lead
// to the pinned CA.
var ErrCAMismatch = errors.New("the join endpoint is not signed by the pinned CA")

// ParsePin validates a --ca-hash: sha256: and 64 hex digits, as
// `etcdkit token create` and kubeadm print it.
func ParsePin(s string) (string, error) {
	hexPart, ok := strings.CutPrefix(strings.TrimSpace(s), "sha256:")
	if !ok {
		return "", fmt.Errorf("invalid CA hash %q: want sha256:<64 hex digits>, as `etcdkit token create` prints it", s)
	}
	b, err := hex.DecodeString(hexPart)
	if err != nil || len(b) != 32 {
		return "", fmt.Errorf("invalid CA hash %q: want sha256:<64 hex digits>, as `etcdkit token create` prints it", s)
	}
	return "sha256:" + hex.EncodeToString(b), nil
}

// pinnedTLS verifies the endpoint by the pin instead of system roots: the
// chain it presents must hold a CA certificate whose public key hashes to
// pin, and the leaf must verify against that CA for the host dialled. With
// pin "" (--insecure-skip-ca-verification) the presented CA is taken on
// trust. trusted receives the CA that was accepted.
func pinnedTLS(host, pin string, trusted func(*x509.Certificate)) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verified in VerifyConnection against the pinned CA; the system
		// roots have nothing to say about a cluster's private CA.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			ca, err := verifyPinned(cs.PeerCertificates, host, pin)
			if err != nil {
				return err
			}
			if trusted != nil {
				trusted(ca)
			}
			return nil
		},
	}
}

func verifyPinned(chain []*x509.Certificate, host, pin string) (*x509.Certificate, error) {
	if len(chain) == 0 {
		return nil, fmt.Errorf("%w: it presented no certificate", ErrCAMismatch)
	}
	var (
		root   *x509.Certificate
		others = x509.NewCertPool()
		seen   []string
	)
	for _, c := range chain[1:] {
		p, err := pki.PublicKeyPin(c.PublicKey)
		if err != nil {
			continue
		}
		if c.IsCA && c.CheckSignatureFrom(c) == nil {
			seen = append(seen, fmt.Sprintf("%s (%q)", p, c.Subject.CommonName))
			if root == nil && (pin == "" || p == pin) {
				root = c
				continue
			}
		}
		others.AddCert(c)
	}
	if root == nil {
		presented := "no CA certificate"
		if len(seen) > 0 {
			presented = "CA " + strings.Join(seen, ", ")
		}
		return nil, fmt.Errorf("%w: it presented %s, not %s; either --ca-hash is wrong (`etcdkit token create` prints the right one) or something between this host and the endpoint intercepts the connection. Nothing was sent", ErrCAMismatch, presented, pin)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	if _, err := chain[0].Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: others, DNSName: host,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return nil, fmt.Errorf("%w: its certificate does not verify against the pinned CA for %s: %v. Nothing was sent", ErrCAMismatch, host, err)
	}
	return root, nil
}

// probe connects to the endpoint and checks its certificate against the
// pin, sending nothing, and returns the CA it trusts.
func probe(ctx context.Context, u *url.URL, pin string) (*x509.Certificate, error) {
	var ca *x509.Certificate
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: pinnedTLS(u.Hostname(), pin, func(c *x509.Certificate) { ca = c })}
	conn, err := d.DialContext(ctx, "tcp", hostPort(u))
	if err != nil {
		if errors.Is(err, ErrCAMismatch) {
			return nil, fmt.Errorf("%s: %w", u.Redacted(), err)
		}
		return nil, fmt.Errorf("cannot reach the join endpoint %s: %w", u.Redacted(), err)
	}
	conn.Close()
	return ca, nil
}

func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), fmt.Sprint(DefaultPort))
}
