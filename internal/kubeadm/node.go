package kubeadm

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/etcdkit/etcdkit/internal/fsutil"
	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/ops/replace"
	"github.com/etcdkit/etcdkit/internal/pki"
)

// DefaultValidity is how long kubeadm's etcd leaf certificates are valid:
// a year, renewed by `kubeadm certs renew` or `etcdkit pki renew`.
const DefaultValidity = 365 * 24 * time.Hour

// Node is the files of one control-plane node's etcd member: its server,
// peer and health-check client certificates in kubeadm's layout, and its
// etcd static pod manifest.
type Node struct {
	// Root is where the node's tree is written: "/" on the node itself,
	// an output directory whose contents are copied to the node.
	Root Root
	// PKIDir is the node's etcd certificate directory (a node path).
	PKIDir string
	// Manifest is the node's etcd manifest path.
	Manifest string
	// CA signs what is missing; nil issues nothing (every certificate
	// must be there already).
	CA       *pki.CA
	Validity time.Duration
	Now      func() time.Time
}

// cert is one of the node's certificates.
type cert struct {
	id    string
	role  pki.Role
	cn    string
	orgs  []string
	hosts []string
	pair  pki.Pair // node paths
	// keep is set when the node has a fitting certificate already.
	keep bool
	// leaf is the certificate to write, issued ahead.
	leaf *pki.Leaf
}

// certs are the certificates member nm needs, kubeadm's way: server and
// peer for the node name, localhost, the member's addresses, 127.0.0.1
// and ::1; the health-check client for system:masters.
func (n Node) certs(nm replace.NewMember) []*cert {
	var hosts []string
	for _, raw := range []string{nm.ClientURL, nm.PeerURL} {
		if u, err := url.Parse(raw); err == nil && u.Hostname() != "" && !slices.Contains(hosts, u.Hostname()) {
			hosts = append(hosts, u.Hostname())
		}
	}
	l := pki.LayoutKubeadm
	out := []*cert{}
	for _, role := range []pki.Role{pki.RoleServer, pki.RolePeer} {
		out = append(out, &cert{id: string(role), role: role, cn: nm.Name, hosts: pki.DefaultHosts(l, role, nm.Name, hosts), pair: l.Leaf(n.PKIDir, role)})
	}
	return append(out, &cert{id: "healthcheck-client", role: pki.RoleClient, cn: pki.KubeadmHealthcheckClientCN,
		orgs: []string{pki.KubeadmMastersGroup}, pair: l.Leaf(n.PKIDir, pki.RoleClient)})
}

// Plan checks what the node has for member nm: a certificate that exists
// and fits (chains to the CA, its key matches, it covers the member's
// addresses) is kept; one that is missing is issued, which needs the CA;
// one that exists but does not fit is an error, with the command that
// replaces it, because a certificate etcdkit did not write is not
// etcdkit's to replace silently.
func (n Node) Plan(nm replace.NewMember) (*Files, error) {
	f := &Files{node: n, nm: nm, certs: n.certs(nm)}
	trust := x509.NewCertPool()
	if n.CA != nil {
		for _, c := range n.bundle() {
			trust.AddCert(c)
		}
	} else {
		caFile := n.Root.Path(pki.LayoutKubeadm.CA(n.PKIDir).Cert)
		certs, err := pki.LoadCerts(caFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNoCA, err)
		}
		for _, c := range certs {
			trust.AddCert(c)
		}
	}
	for _, c := range f.certs {
		cf, kf := n.Root.Path(c.pair.Cert), n.Root.Path(c.pair.Key)
		if !fsutil.Exists(cf) && !fsutil.Exists(kf) {
			if n.CA == nil {
				return nil, fmt.Errorf("%w: %s does not exist, and there is no CA key to issue it with", ErrNoCA, cf)
			}
			continue
		}
		if err := fits(c, cf, kf, trust); err != nil {
			cmd := fmt.Sprintf("etcdkit pki issue %s %s --layout kubeadm --dir %s --force", c.role, c.cn, n.Root.Path(n.PKIDir))
			if c.role != pki.RoleClient {
				cmd = fmt.Sprintf("etcdkit pki issue %s %s --layout kubeadm --dir %s --hosts %s --force", c.role, c.cn, n.Root.Path(n.PKIDir), joinHosts(c.hosts))
			}
			return nil, fmt.Errorf("%s: %w; replace it (the old one is kept as .bak-*): %s", cf, err, cmd)
		}
		c.keep = true
	}
	return f, nil
}

func joinHosts(h []string) string { return strings.Join(h, ",") }

// fits says why an existing certificate cannot serve.
func fits(c *cert, certFile, keyFile string, trust *x509.CertPool) error {
	leaf, err := pki.LoadLeaf(pki.Pair{Cert: certFile, Key: keyFile})
	if err != nil {
		return err
	}
	usage := x509.ExtKeyUsageServerAuth
	if c.role == pki.RoleClient {
		usage = x509.ExtKeyUsageClientAuth
	}
	inter := x509.NewCertPool()
	for _, ch := range leaf.Chain {
		inter.AddCert(ch)
	}
	if trust != nil {
		if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: trust, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return fmt.Errorf("it is not a valid %s certificate from this cluster's etcd CA: %w", c.role, err)
		}
	}
	for _, h := range c.hosts {
		if h == "localhost" || h == "::1" || h == c.cn {
			continue // kubeadm's extras; the member's own addresses matter
		}
		if leaf.Cert.VerifyHostname(h) != nil {
			return fmt.Errorf("it does not cover %s (it covers %s)", h, joinHosts(pki.HostsOf(leaf.Cert)))
		}
	}
	return nil
}

// Files are the node's files for one member, planned.
type Files struct {
	node  Node
	nm    replace.NewMember
	certs []*cert
}

// ErrNoCA is returned by Plan when a certificate must be issued, or the
// CA certificate is needed, and the node has no etcd CA.
var ErrNoCA = errors.New("no etcd CA")

// issue issues the certificates the node lacks.
func (f *Files) issue() error {
	if f.node.CA == nil {
		return ErrNoCA
	}
	alg := pki.AlgorithmOf(f.node.CA.Cert.PublicKey)
	validity := f.node.Validity
	if validity == 0 {
		validity = DefaultValidity
	}
	ca := *f.node.CA
	ca.Now = f.node.Now
	for _, c := range f.certs {
		if c.keep || c.leaf != nil {
			continue
		}
		leaf, err := ca.Issue(pki.LeafRequest{Role: c.role, CommonName: c.cn, Organization: c.orgs, Hosts: c.hosts, KeyAlgorithm: alg, Validity: validity})
		if err != nil {
			return err
		}
		c.leaf = leaf
	}
	return nil
}

// Client is the health-check client pair to reach the cluster with before
// the node's files are written: the node's own when it has one, otherwise
// the one about to be written, staged in a private temporary directory.
// cleanup removes it.
func (f *Files) Client() (ca string, client pki.Pair, cleanup func(), err error) {
	hc := f.certs[2]
	ca = f.node.Root.Path(pki.LayoutKubeadm.CA(f.node.PKIDir).Cert)
	if hc.keep && fsutil.Exists(ca) {
		return ca, pki.Pair{Cert: f.node.Root.Path(hc.pair.Cert), Key: f.node.Root.Path(hc.pair.Key)}, func() {}, nil
	}
	if err := f.issue(); err != nil {
		return "", pki.Pair{}, nil, err
	}
	dir, err := os.MkdirTemp("", "etcdkit-client-")
	if err != nil {
		return "", pki.Pair{}, nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	client = pki.Pair{Cert: filepath.Join(dir, "client.crt"), Key: filepath.Join(dir, "client.key")}
	ca = filepath.Join(dir, "ca.crt")
	if err := pki.WriteLeaf(client, hc.leaf); err != nil {
		cleanup()
		return "", pki.Pair{}, nil, err
	}
	if err := fsutil.WriteFile(ca, pki.EncodeCert(f.node.bundle()...), fsutil.PublicFile); err != nil {
		cleanup()
		return "", pki.Pair{}, nil, err
	}
	return ca, client, cleanup, nil
}

// bundle is what members and clients must trust: every CA certificate
// (old and new during a CA rotation).
func (n Node) bundle() []*x509.Certificate {
	if len(n.CA.Bundle) > 0 {
		return n.CA.Bundle
	}
	return []*x509.Certificate{n.CA.Cert}
}

// Write writes the missing certificates, the CA certificate when the
// node has none, and the manifest, all or none. The manifest is renamed
// into place last: the kubelet starts etcd as soon as it appears, and
// etcd must find its certificates then.
func (f *Files) Write(manifest []byte) (*ops.Written, error) {
	n := f.node
	w := &ops.Written{YAML: manifest, ConfigPath: n.Root.Path(n.Manifest), CertDir: n.Root.Path(n.PKIDir)}
	var txn fsutil.Txn
	defer txn.Abort()
	add := func(path string, data []byte, mode fs.FileMode) error {
		w.Files = append(w.Files, path)
		return txn.Add(path, data, mode)
	}
	needCerts := slices.ContainsFunc(f.certs, func(c *cert) bool { return !c.keep })
	if needCerts {
		if err := f.issue(); err != nil {
			return nil, err
		}
		if ca := n.Root.Path(pki.LayoutKubeadm.CA(n.PKIDir).Cert); !fsutil.Exists(ca) {
			if err := add(ca, pki.EncodeCert(f.node.bundle()...), fsutil.PublicFile); err != nil {
				return nil, err
			}
		}
	}
	for _, c := range f.certs {
		if c.keep {
			continue
		}
		key, err := pki.EncodeKey(c.leaf.Key)
		if err != nil {
			return nil, err
		}
		if err := add(n.Root.Path(c.pair.Key), key, fsutil.PrivateFile); err != nil {
			return nil, err
		}
		if err := add(n.Root.Path(c.pair.Cert), pki.EncodeCert(append([]*x509.Certificate{c.leaf.Cert}, c.leaf.Chain...)...), fsutil.PublicFile); err != nil {
			return nil, err
		}
	}
	// kubeadm writes manifests 0600: they may carry secrets in flags.
	if err := add(w.ConfigPath, manifest, fsutil.PrivateFile); err != nil {
		return nil, err
	}
	if err := txn.Commit(); err != nil {
		return nil, err
	}
	return w, nil
}

// Kept lists the certificates the node had already.
func (f *Files) Kept() []string {
	var out []string
	for _, c := range f.certs {
		if c.keep {
			out = append(out, f.node.Root.Path(c.pair.Cert))
		}
	}
	return out
}
