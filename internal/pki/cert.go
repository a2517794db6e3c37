// Package pki is etcdkit's certificate authority: key generation, the CA,
// leaf certificates for etcd's three roles, the cfssl and kubeadm file
// layouts, and loading what is on disk. Profiles are data, and the clock is a
// parameter, so tests can issue certificates that expired yesterday.
package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"
)

// Role is what a leaf certificate is for.
type Role string

const (
	// RoleServer serves etcd's client URLs. It also carries client auth
	// because etcd's gRPC gateway dials the member itself with it.
	RoleServer Role = "server"
	// RolePeer authenticates members to each other in both directions.
	RolePeer Role = "peer"
	// RoleClient authenticates etcdctl, kube-apiserver and health checks.
	RoleClient Role = "client"
)

// Roles lists the leaf roles.
var Roles = []Role{RoleServer, RolePeer, RoleClient}

// ParseRole validates a role name.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("invalid certificate role %q; options are server, peer, client", s)
}

const (
	// DefaultCAValidity is ten years, as kubeadm's CA.
	DefaultCAValidity = 87600 * time.Hour
	// DefaultLeafValidity is five years, as the runbook's cfssl profile.
	DefaultLeafValidity = 43800 * time.Hour
	// backdate makes a fresh certificate valid on hosts whose clock is a
	// little behind the issuer's.
	backdate = 5 * time.Minute
)

// Profile is the key usage of a certificate role.
type Profile struct {
	KeyUsage    x509.KeyUsage
	ExtKeyUsage []x509.ExtKeyUsage
	// Exact keeps KeyUsage as given. Otherwise key encipherment is dropped
	// for keys that cannot encipher (ECDSA, Ed25519); cfssl profiles and
	// renewals set it so the new certificate says what the old one said.
	Exact bool
}

// Profiles maps each role to its usages; cfssl's "peer", "server" and
// "client" profiles in etcd's own documentation use the same.
var Profiles = map[Role]Profile{
	RoleServer: {KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}},
	RolePeer: {KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}},
	RoleClient: {KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
}

// CA is a certificate authority that can sign. Bundle holds every CA
// certificate members must trust; during a CA rotation it has old and new.
type CA struct {
	Cert   *x509.Certificate
	Key    crypto.Signer
	Bundle []*x509.Certificate
	// Now is the issuing clock; nil means time.Now.
	Now func() time.Time
	// Chain is appended after every leaf this CA issues. During a CA
	// rotation it holds the new CA cross-signed by the old one, so members
	// that still trust only the old CA verify the new leaves.
	Chain []*x509.Certificate
}

// CARequest describes a new CA.
type CARequest struct {
	CommonName   string
	Organization []string
	// Subject, when set, is the whole subject (cfssl's "names").
	Subject      *pkix.Name
	KeyAlgorithm KeyAlgorithm
	Validity     time.Duration
	// NotBefore defaults to the clock minus a few minutes.
	NotBefore time.Time
	Now       func() time.Time
}

// NewCA creates a self-signed CA.
func NewCA(req CARequest) (*CA, error) {
	if req.CommonName == "" {
		req.CommonName = "etcd-ca"
	}
	if req.Validity == 0 {
		req.Validity = DefaultCAValidity
	}
	key, err := GenerateKey(req.KeyAlgorithm)
	if err != nil {
		return nil, err
	}
	notBefore := req.NotBefore
	if notBefore.IsZero() {
		notBefore = clock(req.Now)().Add(-backdate)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	subject := pkix.Name{CommonName: req.CommonName, Organization: req.Organization}
	if req.Subject != nil {
		subject = *req.Subject
		subject.CommonName = req.CommonName
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(req.Validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, Bundle: []*x509.Certificate{cert}, Now: req.Now}, nil
}

// LeafRequest describes a leaf certificate.
type LeafRequest struct {
	Role         Role
	CommonName   string
	Organization []string
	// Subject, when set, is the whole subject (cfssl's "names"); CommonName
	// still names the certificate in messages.
	Subject *pkix.Name
	// RawSubject, when set, is copied byte for byte: a renewal keeps the
	// subject exactly as it was, whoever wrote it.
	RawSubject []byte
	// Hosts are the subject alternative names: IP addresses and DNS names.
	Hosts        []string
	KeyAlgorithm KeyAlgorithm
	Validity     time.Duration
	// NotBefore defaults to the CA's clock minus a few minutes; tests set it
	// in the past or the future to make expired or not-yet-valid leaves.
	NotBefore time.Time
	// PublicKey, when set, is signed instead of generating a key pair: the
	// private key stays where it was made (CSR signing for join).
	PublicKey crypto.PublicKey
	// Profile overrides the role's usages (cfssl profiles).
	Profile *Profile
}

// Leaf is an issued certificate and, unless the request carried a public
// key, its private key.
type Leaf struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// Chain is written after the certificate: intermediates a verifier
	// needs to reach a root it trusts.
	Chain []*x509.Certificate
}

// Issue signs a leaf certificate.
func (ca *CA) Issue(req LeafRequest) (*Leaf, error) {
	profile, ok := Profiles[req.Role]
	if req.Profile != nil {
		profile, ok = *req.Profile, true
	}
	if !ok {
		return nil, fmt.Errorf("invalid certificate role %q; options are server, peer, client", req.Role)
	}
	if req.CommonName == "" {
		return nil, errors.New("a certificate needs a common name")
	}
	if req.Validity == 0 {
		req.Validity = DefaultLeafValidity
	}
	leaf := &Leaf{}
	pub := req.PublicKey
	if pub == nil {
		key, err := GenerateKey(req.KeyAlgorithm)
		if err != nil {
			return nil, err
		}
		leaf.Key, pub = key, key.Public()
	}
	notBefore := req.NotBefore
	if notBefore.IsZero() {
		notBefore = clock(ca.Now)().Add(-backdate)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	ips, dns := SplitHosts(req.Hosts)
	keyUsage := profile.KeyUsage
	if _, isRSA := pub.(*rsa.PublicKey); !isRSA && !profile.Exact {
		// Key encipherment only means something for RSA key transport.
		keyUsage &^= x509.KeyUsageKeyEncipherment
	}
	subject := pkix.Name{CommonName: req.CommonName, Organization: req.Organization}
	if req.Subject != nil {
		subject = *req.Subject
	}
	notAfter := notBefore.Add(req.Validity)
	if notAfter.After(ca.Cert.NotAfter) {
		// A leaf never outlives its CA: verifiers reject it from then on,
		// and a date the certificate cannot keep only misleads.
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		RawSubject:            req.RawSubject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              keyUsage,
		ExtKeyUsage:           slices.Clone(profile.ExtKeyUsage),
		BasicConstraintsValid: true,
		IPAddresses:           ips,
		DNSNames:              dns,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign %s certificate %q: %w", req.Role, req.CommonName, err)
	}
	leaf.Cert, err = x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	leaf.Chain = slices.Clone(ca.Chain)
	return leaf, nil
}

// SplitHosts separates IP addresses from DNS names, dropping duplicates.
func SplitHosts(hosts []string) (ips []net.IP, dns []string) {
	seen := map[string]bool{}
	for _, h := range hosts {
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, h)
		}
	}
	return ips, dns
}

// EncodeCert PEM-encodes certificates, in order.
func EncodeCert(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// ParseCerts reads every certificate in PEM data.
func ParseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}

func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}

func clock(now func() time.Time) func() time.Time {
	if now != nil {
		return now
	}
	return time.Now
}
