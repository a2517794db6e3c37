package apply

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/render"
)

// pkiPhase makes sure the CA exists on this machine, and gives each host
// exactly what it needs: the CA bundle, its own server and peer pairs, and
// the client pair. A host's pair is issued again only when it is missing,
// not issued by this CA, misses one of the member's hosts, has another key
// type than the spec asks, does not match its key or expires within 30
// days; otherwise it is left alone, so a converged run changes nothing.
type pkiPhase struct{}

func (pkiPhase) Title() string { return "Certificates" }

func (pkiPhase) Run(ctx context.Context, r *run) error {
	if err := r.ensureCA(); err != nil {
		return err
	}
	client, err := r.ensureClient()
	if err != nil {
		return err
	}
	clientKey, err := pki.EncodeKey(client.Key)
	if err != nil {
		return err
	}
	clientCert := pki.EncodeCert(append([]*x509.Certificate{client.Cert}, client.Chain...)...)
	return r.eachHost(ctx, r.hosts, func(ctx context.Context, h *host) error {
		return r.hostCerts(ctx, h, clientCert, clientKey)
	})
}

func (r *run) hostCerts(ctx context.Context, h *host, clientCert, clientKey []byte) error {
	dir := r.c.MemberPKIDir(h.m)
	if _, err := h.conn.MkdirAll(ctx, dir, privateDir); err != nil {
		return err
	}
	changed, err := h.conn.WriteFile(ctx, r.layout.CA(dir).Cert, pki.EncodeCert(r.ca.Bundle...), publicFile)
	if err != nil {
		return err
	}
	h.caChanged = changed
	alg, _ := pki.ParseKeyAlgorithm(r.c.PKI.KeyAlgorithm)
	for _, role := range []pki.Role{pki.RoleServer, pki.RolePeer} {
		pair := r.layout.Leaf(dir, role)
		hosts := pki.DefaultHosts(r.layout, role, h.m.Name, render.MemberHosts(h.m))
		why, err := r.remoteLeafProblem(ctx, h, pair, hosts, alg)
		if err != nil {
			return err
		}
		if why == "" {
			continue
		}
		r.note(h, "%s certificate %s: %s: issuing a new one", role, pair.Cert, why)
		leaf, err := r.ca.Issue(pki.LeafRequest{Role: role, CommonName: h.m.Name, Hosts: hosts, KeyAlgorithm: alg, Validity: r.c.PKI.Validity.Duration})
		if err != nil {
			return err
		}
		if err := r.writePair(ctx, h, pair, pki.EncodeCert(append([]*x509.Certificate{leaf.Cert}, leaf.Chain...)...), leaf.Key); err != nil {
			return err
		}
	}
	// kubeadm's API server client pair lives one directory up, which
	// kubeadm owns: it is created if missing, never re-moded.
	cp := r.layout.ClientPair(dir, r.clientName())
	if _, err := h.conn.WriteFile(ctx, cp.Key, clientKey, privateKey); err != nil {
		return err
	}
	_, err = h.conn.WriteFile(ctx, cp.Cert, clientCert, publicFile)
	return err
}

// writePair writes the key first, then the certificate: a run cut off in
// between leaves a certificate that does not match its key, which the
// next run notices and issues again.
func (r *run) writePair(ctx context.Context, h *host, p pki.Pair, cert []byte, key crypto.Signer) error {
	k, err := pki.EncodeKey(key)
	if err != nil {
		return err
	}
	if _, err := h.conn.WriteFile(ctx, p.Key, k, privateKey); err != nil {
		return err
	}
	_, err = h.conn.WriteFile(ctx, p.Cert, cert, publicFile)
	return err
}

// remoteLeafProblem says why the host's pair must be issued again, or ""
// when it is good. A good pair's files get their modes fixed if needed.
func (r *run) remoteLeafProblem(ctx context.Context, h *host, p pki.Pair, hosts []string, alg pki.KeyAlgorithm) (string, error) {
	certPEM, err := h.conn.ReadFile(ctx, p.Cert)
	if errors.Is(err, fs.ErrNotExist) {
		return "missing", nil
	}
	if err != nil {
		return "", err
	}
	certs, err := pki.ParseCerts(certPEM)
	if err != nil {
		return fmt.Sprintf("unreadable (%v)", err), nil
	}
	usages := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	if why := certProblem(r.ca, certs[0], certs[1:], usages, hosts...); why != "" {
		return why, nil
	}
	if have := pki.AlgorithmOf(certs[0].PublicKey); alg != "" && have != alg {
		return fmt.Sprintf("its key is %s, the spec asks for %s", have, alg), nil
	}
	keyPEM, err := h.conn.ReadFile(ctx, p.Key)
	if errors.Is(err, fs.ErrNotExist) {
		return "its key " + p.Key + " is missing", nil
	}
	if err != nil {
		return "", err
	}
	key, err := pki.ParseKey(keyPEM)
	if err != nil || !pki.KeyMatches(key, certs[0].PublicKey) {
		return "it does not match its key " + p.Key, nil
	}
	// Good: only make sure of the modes (a key others can read is fixed).
	if _, err := h.conn.WriteFile(ctx, p.Key, keyPEM, privateKey); err != nil {
		return "", err
	}
	_, err = h.conn.WriteFile(ctx, p.Cert, certPEM, publicFile)
	return "", err
}

// certProblem says what is wrong with a certificate for the CA, the usages
// and the hosts it must serve, or "".
func certProblem(ca *pki.CA, cert *x509.Certificate, chain []*x509.Certificate, usages []x509.ExtKeyUsage, hosts ...string) string {
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, c := range ca.Bundle {
		roots.AddCert(c)
	}
	for _, c := range chain {
		inter.AddCert(c)
	}
	for _, u := range usages {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			return fmt.Sprintf("it does not verify against the CA (%v)", err)
		}
	}
	if left := time.Until(cert.NotAfter); left < renewWithin {
		return fmt.Sprintf("it expires on %s", cert.NotAfter.UTC().Format(time.DateOnly))
	}
	for _, h := range hosts {
		if err := cert.VerifyHostname(h); err != nil {
			return fmt.Sprintf("it does not cover %s", h)
		}
	}
	return ""
}
