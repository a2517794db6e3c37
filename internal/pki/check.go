package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/etcdkit/etcdkit/internal/fsutil"
)

// Severity of a finding.
type Severity string

const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// DefaultExpiryWarning is how close to its expiry a certificate is warned
// about: a month leaves time to renew without hurry.
const DefaultExpiryWarning = 30 * 24 * time.Hour

// Finding is one problem: which file, what is wrong, and the command that
// fixes it.
type Finding struct {
	Severity Severity `json:"severity"`
	ID       string   `json:"id"`
	File     string   `json:"file"`
	Problem  string   `json:"problem"`
	Fix      string   `json:"fix,omitempty"`
}

// CertStatus is one certificate as a check saw it.
type CertStatus struct {
	ID       string    `json:"id"`
	Role     string    `json:"role"`
	File     string    `json:"file"`
	Subject  string    `json:"subject,omitempty"`
	Issuer   string    `json:"issuer,omitempty"`
	NotAfter time.Time `json:"notAfter,omitzero"`
	Hosts    []string  `json:"hosts,omitempty"`
	// Status is ok, warning, error or missing.
	Status string `json:"status"`
}

// Report is the result of Check.
type Report struct {
	Source       string       `json:"source"`
	Certificates []CertStatus `json:"certificates"`
	Findings     []Finding    `json:"findings"`
}

// Count returns how many findings have a severity.
func (r *Report) Count(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// CheckOptions tunes Check.
type CheckOptions struct {
	// Now is the clock expiry is judged by; zero means time.Now.
	Now time.Time
	// ExpiryWarning is how close to expiry is a warning; zero means 30 days.
	ExpiryWarning time.Duration
}

// checker carries a check's state.
type checker struct {
	inv  *Inventory
	now  time.Time
	warn time.Duration
	r    *Report
	// bundles caches parsed trust files.
	bundles map[string][]*x509.Certificate
}

// Check examines every certificate of an inventory: that each chains to the
// CA its user trusts, that its key matches and is private, that its usages
// fit its role, that it is valid now and for a while, and that it covers
// every host its member advertises and listens on.
func Check(inv *Inventory, o CheckOptions) *Report {
	c := &checker{inv: inv, now: o.Now, warn: o.ExpiryWarning, r: &Report{Source: inv.Source, Certificates: []CertStatus{}, Findings: []Finding{}}, bundles: map[string][]*x509.Certificate{}}
	if c.now.IsZero() {
		c.now = time.Now()
	}
	if c.warn == 0 {
		c.warn = DefaultExpiryWarning
	}
	c.checkCA()
	for _, t := range inv.Trust {
		c.checkTrustFile(t)
	}
	for i := range inv.Leaves {
		c.checkLeaf(&inv.Leaves[i])
	}
	return c.r
}

func (c *checker) add(sev Severity, id, file, fix, format string, args ...any) {
	c.r.Findings = append(c.r.Findings, Finding{Severity: sev, ID: id, File: file, Problem: fmt.Sprintf(format, args...), Fix: fix})
}

// bundle reads a trust file once.
func (c *checker) bundle(path string) ([]*x509.Certificate, error) {
	if b, ok := c.bundles[path]; ok {
		return b, nil
	}
	b, err := LoadCerts(path)
	if err != nil {
		return nil, err
	}
	c.bundles[path] = b
	return b, nil
}

func (c *checker) checkCA() {
	p := c.inv.CA()
	certs, err := c.bundle(p.Cert)
	if err != nil {
		fix := ""
		if IsNotExist(err) {
			fix = fmt.Sprintf("etcdkit pki init --dir %s", c.inv.CADir)
		}
		c.add(SeverityError, "ca", p.Cert, fix, "cannot read the CA: %s", fileError(err))
		c.r.Certificates = append(c.r.Certificates, CertStatus{ID: "ca", Role: "ca", File: p.Cert, Status: "missing"})
		return
	}
	rotating := fsutil.Exists(rotationStateFile(c.inv.CADir))
	for i, ca := range certs {
		id := "ca"
		if i > 0 {
			id = fmt.Sprintf("ca[%d]", i)
		}
		before := len(c.r.Findings)
		if !ca.IsCA {
			c.add(SeverityError, id, p.Cert, "", "%q is not a CA certificate (basic constraints CA:FALSE) but is in the CA file; it cannot sign", ca.Subject.CommonName)
		}
		fix := c.inv.command("pki", "rotate-ca", "status")
		c.expiry(id, p.Cert, ca, fix)
		c.r.Certificates = append(c.r.Certificates, c.status(id, "ca", p.Cert, ca, before))
	}
	if len(certs) > 1 && !rotating {
		c.add(SeverityWarning, "ca", p.Cert, "", "holds %d CA certificates but no CA rotation is under way (no %s); members trust every one of them", len(certs), filepath.Base(rotationStateFile(c.inv.CADir)))
	}
	if !fsutil.Exists(p.Key) {
		return
	}
	c.keyMode("ca", p.Key)
	if _, err := LoadCA(p); err != nil {
		c.add(SeverityError, "ca", p.Key, "", "%s", fileError(err))
	}
}

// checkTrustFile compares a member's or client's CA file with the CA
// directory's: a member that does not trust the CA its peers' certificates
// come from rejects them.
func (c *checker) checkTrustFile(t TrustFile) {
	got, err := c.bundle(t.Pair.Cert)
	if err != nil {
		c.add(SeverityError, t.ID, t.Pair.Cert, fmt.Sprintf("cp %s %s", c.inv.CA().Cert, t.Pair.Cert), "cannot read the trusted CA file: %s", fileError(err))
		return
	}
	want, err := c.bundle(c.inv.CA().Cert)
	if err != nil {
		return
	}
	missing, extra := diffCerts(want, got)
	if len(missing) > 0 || len(extra) > 0 {
		var parts []string
		if len(missing) > 0 {
			parts = append(parts, "lacks "+names(missing))
		}
		if len(extra) > 0 {
			parts = append(parts, "also trusts "+names(extra))
		}
		c.add(SeverityWarning, t.ID, t.Pair.Cert, fmt.Sprintf("cp %s %s", c.inv.CA().Cert, t.Pair.Cert),
			"differs from the CA directory's %s: it %s", filepath.Base(c.inv.CA().Cert), strings.Join(parts, " and "))
	}
	if fsutil.Exists(t.Pair.Key) {
		c.keyMode(t.ID, t.Pair.Key)
	}
}

func (c *checker) checkLeaf(it *Item) {
	st := CertStatus{ID: it.ID, Role: string(it.Role), File: it.Pair.Cert}
	reissue := func(hosts []string) string {
		name := it.Member
		if certs, err := LoadCerts(it.Pair.Cert); err == nil && name == "" {
			name = certs[0].Subject.CommonName
		}
		if name == "" {
			name = it.ID
		}
		return c.inv.IssueCommand(it, name, hosts)
	}
	if !fsutil.Exists(it.Pair.Cert) {
		if it.Required {
			var hosts []string
			for _, n := range it.Needs {
				hosts = append(hosts, n.Host)
			}
			c.add(SeverityError, it.ID, it.Pair.Cert, reissue(hosts), "missing: the %s certificate this member is configured with does not exist", it.Role)
			st.Status = "missing"
			c.r.Certificates = append(c.r.Certificates, st)
		}
		return
	}
	before := len(c.r.Findings)
	certs, err := LoadCerts(it.Pair.Cert)
	if err != nil {
		c.add(SeverityError, it.ID, it.Pair.Cert, reissue(nil), "%s", fileError(err))
		st.Status = "error"
		c.r.Certificates = append(c.r.Certificates, st)
		return
	}
	leaf := certs[0]
	c.key(it, leaf, reissue)
	c.chain(it, leaf, certs[1:], reissue)
	c.usages(it, leaf, reissue)
	c.expiry(it.ID, it.Pair.Cert, leaf, c.inv.command("pki", "renew", it.ID))
	c.hosts(it, leaf, reissue)
	c.r.Certificates = append(c.r.Certificates, c.status(it.ID, string(it.Role), it.Pair.Cert, leaf, before))
}

func (c *checker) status(id, role, file string, cert *x509.Certificate, before int) CertStatus {
	st := CertStatus{ID: id, Role: role, File: file, Subject: cert.Subject.String(), Issuer: cert.Issuer.String(), NotAfter: cert.NotAfter, Hosts: HostsOf(cert), Status: "ok"}
	for _, f := range c.r.Findings[before:] {
		if f.Severity == SeverityError {
			st.Status = "error"
			break
		}
		st.Status = "warning"
	}
	return st
}

func (c *checker) key(it *Item, leaf *x509.Certificate, reissue func([]string) string) {
	if !fsutil.Exists(it.Pair.Key) {
		c.add(SeverityError, it.ID, it.Pair.Key, reissue(HostsOf(leaf)), "missing: the private key of %s does not exist", filepath.Base(it.Pair.Cert))
		return
	}
	c.keyMode(it.ID, it.Pair.Key)
	key, err := LoadKey(it.Pair.Key)
	if err != nil {
		c.add(SeverityError, it.ID, it.Pair.Key, reissue(HostsOf(leaf)), "%s", fileError(err))
		return
	}
	if !KeyMatches(key, leaf.PublicKey) {
		c.add(SeverityError, it.ID, it.Pair.Key, reissue(HostsOf(leaf)), "does not match the certificate in %s (a key from another certificate, or a certificate replaced without its key); etcd refuses to start with it", filepath.Base(it.Pair.Cert))
	}
}

func (c *checker) keyMode(id, path string) {
	problem, err := KeyModeProblem(path)
	if err != nil || problem == "" {
		return
	}
	c.add(SeverityError, id, path, "chmod 600 "+path, "readable by other users (mode %#o); etcdkit member run refuses to start with it", modeOf(path))
}

// chain verifies the leaf against the CA file its user trusts. The
// verification time is inside the leaf's own validity so that an expired
// leaf is reported as expired, not as an unknown authority.
func (c *checker) chain(it *Item, leaf *x509.Certificate, rest []*x509.Certificate, reissue func([]string) string) {
	trustFile := c.inv.TrustFor(it)
	roots, err := c.bundle(trustFile)
	if err != nil {
		return // reported with the trust file or the CA
	}
	if leaf.IsCA {
		c.add(SeverityError, it.ID, it.Pair.Cert, reissue(HostsOf(leaf)), "is a CA certificate (basic constraints CA:TRUE), not a %s certificate", it.Role)
	}
	at := c.now
	if at.Before(leaf.NotBefore) {
		at = leaf.NotBefore
	}
	if at.After(leaf.NotAfter) {
		at = leaf.NotAfter
	}
	if err := verify(leaf, rest, roots, at); err != nil {
		var uae x509.UnknownAuthorityError
		var cie x509.CertificateInvalidError
		switch {
		case errors.As(err, &cie) && cie.Reason == x509.Expired:
			// A CA outside its validity at that time: the expiry checks of
			// the leaf and of the CA report it in their own words.
		case errors.As(err, &uae):
			msg := fmt.Sprintf("is signed by %q, which %s does not trust (it trusts %s)", leaf.Issuer.CommonName, trustFile, names(roots))
			if k8s := c.kubernetesCA(leaf, rest, at); k8s != "" {
				msg = fmt.Sprintf("is signed by the Kubernetes CA (%s), not the etcd CA; etcd trusts only %s", k8s, trustFile)
			}
			c.add(SeverityError, it.ID, it.Pair.Cert, reissue(HostsOf(leaf)), "%s", msg)
		default:
			c.add(SeverityError, it.ID, it.Pair.Cert, reissue(HostsOf(leaf)), "does not chain to %s: %v", trustFile, err)
		}
		return
	}
	if trustFile != c.inv.CA().Cert {
		if ca, err := c.bundle(c.inv.CA().Cert); err == nil && verify(leaf, rest, ca, at) != nil {
			c.add(SeverityWarning, it.ID, it.Pair.Cert, reissue(HostsOf(leaf)), "is signed by %q, which the CA directory's %s no longer holds; members that read it at their next start will reject this certificate", leaf.Issuer.CommonName, filepath.Base(c.inv.CA().Cert))
		}
	}
}

// kubernetesCA names kubeadm's cluster CA when it, not the etcd CA, signed
// the leaf: the most common kubeadm certificate mix-up.
func (c *checker) kubernetesCA(leaf *x509.Certificate, rest []*x509.Certificate, at time.Time) string {
	if c.inv.Layout != LayoutKubeadm {
		return ""
	}
	for _, p := range []string{filepath.Join(filepath.Dir(c.inv.CADir), "ca.crt")} {
		if k8s, err := LoadCerts(p); err == nil && verify(leaf, rest, k8s, at) == nil {
			return p
		}
	}
	return ""
}

func verify(leaf *x509.Certificate, rest, roots []*x509.Certificate, at time.Time) error {
	rp, ip := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		rp.AddCert(r)
	}
	for _, r := range rest {
		ip.AddCert(r)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: rp, Intermediates: ip, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}

// usages checks the extended key usages etcd's TLS needs for the role.
func (c *checker) usages(it *Item, leaf *x509.Certificate, reissue func([]string) string) {
	has := func(u x509.ExtKeyUsage) bool {
		return len(leaf.ExtKeyUsage) == 0 || slices.Contains(leaf.ExtKeyUsage, u) || slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny)
	}
	server, client := has(x509.ExtKeyUsageServerAuth), has(x509.ExtKeyUsageClientAuth)
	fix := reissue(HostsOf(leaf))
	switch it.Role {
	case RoleServer:
		switch {
		case !server && client:
			c.add(SeverityError, it.ID, it.Pair.Cert, fix, "is a client certificate (extended key usage clientAuth only) used as a server certificate; clients reject it (\"x509: certificate specifies an incompatible key usage\")")
		case !server:
			c.add(SeverityError, it.ID, it.Pair.Cert, fix, "lacks the serverAuth extended key usage; clients reject it as a server certificate")
		case !client:
			c.add(SeverityWarning, it.ID, it.Pair.Cert, fix, "lacks the clientAuth extended key usage; with client-cert-auth on, etcd's gRPC gateway (the HTTP/JSON API) dials the member with this certificate and is rejected")
		}
	case RolePeer:
		var miss []string
		if !server {
			miss = append(miss, "serverAuth")
		}
		if !client {
			miss = append(miss, "clientAuth")
		}
		if len(miss) > 0 {
			c.add(SeverityError, it.ID, it.Pair.Cert, fix, "lacks %s: a peer certificate serves peer connections and also dials the other members, so it needs both serverAuth and clientAuth", strings.Join(miss, " and "))
		}
	case RoleClient:
		if !client {
			what := "lacks the clientAuth extended key usage"
			if server {
				what = "is a server certificate (extended key usage serverAuth only) used as a client certificate"
			}
			c.add(SeverityError, it.ID, it.Pair.Cert, fix, "%s; members reject it", what)
		}
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		c.add(SeverityWarning, it.ID, it.Pair.Cert, fix, "lacks the digitalSignature key usage, which TLS 1.3 handshakes use; strict TLS stacks reject it")
	}
}

// expiry reports a certificate that is not valid now or soon will not be.
func (c *checker) expiry(id, file string, cert *x509.Certificate, fix string) {
	day := time.DateOnly
	switch {
	case c.now.After(cert.NotAfter):
		c.add(SeverityError, id, file, fix, "expired on %s (%s ago); TLS handshakes with it fail", cert.NotAfter.UTC().Format(day), roundDays(c.now.Sub(cert.NotAfter)))
	case c.now.Before(cert.NotBefore):
		c.add(SeverityError, id, file, fix, "not valid before %s (in %s): issued with a future start, or this host's clock is behind; TLS handshakes with it fail", cert.NotBefore.UTC().Format(time.RFC3339), roundDays(cert.NotBefore.Sub(c.now)))
	case cert.NotAfter.Sub(c.now) < c.warn:
		c.add(SeverityWarning, id, file, fix, "expires on %s, in %s", cert.NotAfter.UTC().Format(day), roundDays(cert.NotAfter.Sub(c.now)))
	}
}

// hosts checks that the certificate covers every host it must serve.
func (c *checker) hosts(it *Item, leaf *x509.Certificate, reissue func([]string) string) {
	if it.Role == RoleClient {
		return
	}
	have := HostsOf(leaf)
	var missing []Need
	for _, n := range it.Needs {
		if leaf.VerifyHostname(n.Host) != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		if len(it.Needs) == 0 && len(have) == 0 {
			c.add(SeverityError, it.ID, it.Pair.Cert, reissue(nil), "has no subject alternative names; Go clients (etcdctl, kube-apiserver, other members) ignore the common name and reject it")
		}
		return
	}
	want := slices.Clone(have)
	var parts []string
	for _, n := range missing {
		parts = append(parts, fmt.Sprintf("%s (%s)", n.Host, n.Why))
		if !slices.Contains(want, n.Host) {
			want = append(want, n.Host)
		}
	}
	valid := strings.Join(have, ", ")
	if valid == "" {
		valid = "no host"
	}
	c.add(SeverityError, it.ID, it.Pair.Cert, reissue(want), "does not cover %s; it is valid for %s, so clients dialing those addresses fail with \"x509: certificate is valid for %s, not %s\"",
		strings.Join(parts, ", "), valid, valid, missing[0].Host)
}

func diffCerts(want, got []*x509.Certificate) (missing, extra []*x509.Certificate) {
	in := func(c *x509.Certificate, set []*x509.Certificate) bool {
		return slices.ContainsFunc(set, func(o *x509.Certificate) bool { return o.Equal(c) })
	}
	for _, w := range want {
		if !in(w, got) {
			missing = append(missing, w)
		}
	}
	for _, g := range got {
		if !in(g, want) {
			extra = append(extra, g)
		}
	}
	return missing, extra
}

func names(certs []*x509.Certificate) string {
	var out []string
	for _, c := range certs {
		out = append(out, fmt.Sprintf("%q", c.Subject.CommonName))
	}
	return strings.Join(out, ", ")
}

func roundDays(d time.Duration) string {
	if d < 48*time.Hour {
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

func modeOf(path string) os.FileMode {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Mode().Perm()
}

// fileError shortens the usual file errors.
func fileError(err error) string {
	if IsNotExist(err) {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return pe.Path + ": file does not exist"
		}
	}
	return err.Error()
}
