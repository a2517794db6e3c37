package join

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/pki"
)

// NewCSR makes a PEM certificate signing request for key, naming hosts
// (IP addresses and DNS names) as subject alternative names.
func NewCSR(key crypto.Signer, commonName string, hosts []string) (string, error) {
	ips, dns := pki.SplitHosts(hosts)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: commonName}, IPAddresses: ips, DNSNames: dns,
	}, key)
	if err != nil {
		return "", fmt.Errorf("create certificate request for %q: %w", commonName, err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}

// MemberHosts are the names a member's server and peer certificates carry:
// the hosts of its URLs, plus localhost and 127.0.0.1 for local health
// checks.
func MemberHosts(peerURL, clientURL string) []string {
	return pki.HostsForURLs(clientURL, peerURL)
}

// memberName is what etcdkit accepts as a member name over the network:
// a host name's characters, so it is safe in initial-cluster, file names
// and messages.
var memberName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// CheckName validates a joining member's name.
func CheckName(name string) error {
	if !memberName.MatchString(name) {
		return fmt.Errorf("invalid member name %q: use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// checkMemberURL validates a joining member's peer or client URL: https,
// a host and a port.
func checkMemberURL(what, raw string) (*url.URL, error) {
	u, err := etcdconf.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("%s %q: a joining member uses TLS; give an https:// URL", what, raw)
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsUnspecified() {
		return nil, fmt.Errorf("%s %q: advertise the address other members dial, not %s", what, raw, ip)
	}
	return u, nil
}

// parseCSR reads one PEM request, checks its signature (the joiner holds
// the key) and that its key is one etcd accepts.
func parseCSR(what, data string) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode([]byte(data))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("%s: not a PEM certificate request", what)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%s: bad signature: %w", what, err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("%s: ECDSA curve %s is not accepted; use P-256 or P-384", what, k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("%s: a %d-bit RSA key is too weak; use 2048 bits or more", what, k.N.BitLen())
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("%s: unsupported key type %T", what, k)
	}
	if len(csr.URIs) > 0 || len(csr.EmailAddresses) > 0 {
		return nil, fmt.Errorf("%s: URI and e-mail names are not accepted; ask only for IP addresses and DNS names", what)
	}
	return csr, nil
}

// csrHosts lists a request's IP addresses and DNS names.
func csrHosts(csr *x509.CertificateRequest) []string {
	var out []string
	for _, ip := range csr.IPAddresses {
		out = append(out, ip.String())
	}
	return append(out, csr.DNSNames...)
}

// checkHosts refuses a server or peer request for a name the member's URLs
// do not justify (a certificate for another host's IP would let this host
// impersonate it), and one that leaves out the host of the URL it serves.
func checkHosts(what string, csr *x509.CertificateRequest, req *Request, served string) error {
	peer, _ := url.Parse(req.PeerURL)
	client, _ := url.Parse(req.ClientURL)
	allowed := append(pki.HostsForURLs(req.ClientURL, req.PeerURL), req.Name, "::1")
	for _, h := range csrHosts(csr) {
		if !containsHost(allowed, h) {
			return fmt.Errorf("%s asks for %q, which is not the host of the peer URL (%s) or the client URL (%s); a member's certificates may only name its own URLs' hosts, localhost, 127.0.0.1, ::1 and its name", what, h, peer.Host, client.Host)
		}
	}
	u, _ := url.Parse(served)
	if !containsHost(csrHosts(csr), u.Hostname()) {
		return fmt.Errorf("%s does not name %s, the host of %s: members could not verify it", what, u.Hostname(), served)
	}
	return nil
}

// containsHost compares IP addresses by value (::1 and 0:0::1 are one)
// and DNS names without case.
func containsHost(list []string, h string) bool {
	ip := net.ParseIP(h)
	return slices.ContainsFunc(list, func(x string) bool {
		if ip != nil {
			return ip.Equal(net.ParseIP(x))
		}
		return strings.EqualFold(x, h)
	})
}

// checkClientCSR refuses names in the health-check client's request: a
// client certificate identifies a user, not a host.
func checkClientCSR(csr *x509.CertificateRequest) error {
	if len(csr.IPAddresses) > 0 || len(csr.DNSNames) > 0 {
		return fmt.Errorf("client certificate request asks for host names %v; a client certificate names no host", csrHosts(csr))
	}
	return nil
}
