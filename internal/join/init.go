package join

import (
	"crypto/x509"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/fsutil"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/render"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// InitOptions describe the first member of a cluster others will join.
type InitOptions struct {
	// Cluster holds the shared settings (PKI dir, layout, key algorithm
	// and validity, tuning, backups), defaults applied.
	Cluster *spec.Cluster
	// Member is this host's member; its PKIDir holds the CA too.
	Member     spec.Member
	ConfigPath string
	// JoinListen is the join endpoint's URL; "" leaves it off.
	JoinListen string
	Now        func() time.Time
}

// InitResult is what Init wrote.
type InitResult struct {
	Config     *etcdconf.Config
	ConfigPath string
	Files      []string
	// CACreated is false when an existing CA was used.
	CACreated bool
	CA        pki.Pair
	CAHash    string
	// Client is the operator's client pair for `token create`, health.
	Client pki.Pair
}

// DefaultJoinListen is the join endpoint on the host of a client URL.
func DefaultJoinListen(clientURL string) string {
	u, err := url.Parse(clientURL)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	return "https://" + net.JoinHostPort(u.Hostname(), strconv.Itoa(DefaultPort))
}

// Init writes the first member of a new cluster: the CA when there is
// none, the member's server, peer and client certificates, and its config
// as a one-member cluster with the join endpoint enabled. Everything is
// staged and renamed into place together; nothing is started.
func Init(o InitOptions) (*InitResult, error) {
	c, m := o.Cluster, o.Member
	layout, err := pki.ParseLayout(c.PKI.Layout)
	if err != nil {
		return nil, err
	}
	alg, err := pki.ParseKeyAlgorithm(c.PKI.KeyAlgorithm)
	if err != nil {
		return nil, err
	}
	dir := c.MemberPKIDir(&m)
	paths := Paths{Config: o.ConfigPath, DataDir: c.MemberDataDir(&m), CertDir: dir}
	if err := paths.checkLeaves(layout); err != nil {
		return nil, err
	}
	res := &InitResult{ConfigPath: o.ConfigPath, CA: layout.CA(dir), Client: layout.Leaf(dir, pki.RoleClient)}
	var txn fsutil.Txn
	defer txn.Abort()
	add := func(path string, b []byte, mode fs.FileMode) error {
		res.Files = append(res.Files, path)
		return txn.Add(path, b, mode)
	}

	var ca *pki.CA
	if fsutil.Exists(res.CA.Cert) {
		if ca, err = pki.OpenCA(layout, dir); err != nil {
			return nil, err
		}
	} else {
		if fsutil.Exists(res.CA.Key) {
			return nil, fmt.Errorf("%s exists without %s; restore the CA certificate, or move the key away to create a new CA", res.CA.Key, filepath.Base(res.CA.Cert))
		}
		if ca, err = pki.NewCA(pki.CARequest{CommonName: c.Name + "-ca", KeyAlgorithm: alg, Now: o.Now}); err != nil {
			return nil, err
		}
		keyPEM, err := pki.EncodeKey(ca.Key)
		if err != nil {
			return nil, err
		}
		if err := add(res.CA.Key, keyPEM, fsutil.PrivateFile); err != nil {
			return nil, err
		}
		if err := add(res.CA.Cert, pki.EncodeCert(ca.Cert), fsutil.PublicFile); err != nil {
			return nil, err
		}
		res.CACreated = true
	}
	ca.Now = o.Now
	res.CAHash, _ = pki.PublicKeyPin(ca.Cert.PublicKey)

	clientReq := pki.LeafRequest{Role: pki.RoleClient, CommonName: "etcdkit-admin"}
	if layout == pki.LayoutKubeadm {
		clientReq.CommonName, clientReq.Organization = pki.KubeadmHealthcheckClientCN, []string{pki.KubeadmMastersGroup}
	}
	reqs := map[pki.Role]pki.LeafRequest{
		pki.RoleServer: {Role: pki.RoleServer, CommonName: m.Name, Hosts: render.MemberHosts(&m)},
		pki.RolePeer:   {Role: pki.RolePeer, CommonName: m.Name, Hosts: render.MemberHosts(&m)},
		pki.RoleClient: clientReq,
	}
	for _, role := range pki.Roles {
		r := reqs[role]
		r.KeyAlgorithm, r.Validity = alg, c.PKI.Validity.Duration
		leaf, err := ca.Issue(r)
		if err != nil {
			return nil, fmt.Errorf("member %q: %w", m.Name, err)
		}
		keyPEM, err := pki.EncodeKey(leaf.Key)
		if err != nil {
			return nil, err
		}
		p := layout.Leaf(dir, role)
		if err := add(p.Key, keyPEM, fsutil.PrivateFile); err != nil {
			return nil, err
		}
		if err := add(p.Cert, pki.EncodeCert(append([]*x509.Certificate{leaf.Cert}, leaf.Chain...)...), fsutil.PublicFile); err != nil {
			return nil, err
		}
	}

	cfg, err := render.EtcdConfig(c, &m, render.EtcdOptions{State: render.StateNew, InitialCluster: m.Name + "=" + m.PeerURL})
	if err != nil {
		return nil, err
	}
	if o.JoinListen != "" {
		if cfg.Etcdkit == nil {
			cfg.Etcdkit = &etcdconf.Extensions{}
		}
		cfg.Etcdkit.Join = &etcdconf.Join{Listen: o.JoinListen}
		if filepath.Dir(cfg.PeerTransportSecurity.TrustedCAFile) != filepath.Clean(dir) {
			cfg.Etcdkit.Join.CADir = dir
		}
	}
	if o.JoinListen != "" {
		if _, err := ParseListen(o.JoinListen); err != nil {
			return nil, err
		}
	}
	if _, err := cfg.Validate(etcdconf.ValidateOptions{File: o.ConfigPath}); err != nil {
		return nil, err
	}
	data, err := cfg.Marshal()
	if err != nil {
		return nil, err
	}
	if err := add(o.ConfigPath, data, fsutil.PublicFile); err != nil {
		return nil, err
	}
	res.Config = cfg
	return res, txn.Commit()
}

// checkLeaves refuses a host that already has a member: its config, data,
// or leaf certificates. An existing CA is fine: Init uses it.
func (p Paths) checkLeaves(layout pki.Layout) error {
	if fsutil.Exists(p.Config) {
		return fmt.Errorf("%s already exists: this host has a member config; start it with `etcdkit member run --config %s`, or remove it to initialise again", p.Config, p.Config)
	}
	if empty, err := fsutil.DirEmpty(p.DataDir); err != nil || !empty {
		return fmt.Errorf("data dir %s is not empty: a new cluster starts with no data; empty it if it is left from an earlier cluster, or choose another --data-dir", p.DataDir)
	}
	for _, r := range pki.Roles {
		pair := layout.Leaf(p.CertDir, r)
		for _, f := range []string{pair.Cert, pair.Key} {
			if fsutil.Exists(f) {
				return fmt.Errorf("%s already exists: init issues this member's certificates and never replaces any; move them away, or choose another --pki-dir", f)
			}
		}
	}
	return nil
}

// ParseListen checks a join endpoint URL as the config takes it.
func ParseListen(raw string) (*url.URL, error) {
	u, err := etcdconf.ParseURL(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("join endpoint %q: it serves only HTTPS; use https://IP:%d", raw, DefaultPort)
	}
	if net.ParseIP(u.Hostname()) == nil {
		return nil, fmt.Errorf("join endpoint %q: listen on an IP address (0.0.0.0 for every address), not a host name", raw)
	}
	return u, nil
}
