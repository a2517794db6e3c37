// Package discover builds a pki.Inventory (where a cluster's certificates
// are and what each must do) from what an operator has: a PKI directory,
// an `etcdkit up` directory, a cluster spec or a member's etcd config. It
// lives apart from package pki because it reads the spec and etcd configs,
// whose packages themselves use pki.
package discover

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/fsutil"
	"github.com/etcdkit/etcdkit/internal/local"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// Options say where to look. At most one of Spec and Config is set.
type Options struct {
	// Dir is the CA directory, or an `etcdkit up` directory.
	Dir string
	// Spec is a cluster spec; the members' certificate directories come
	// from it and must be reachable from here.
	Spec string
	// Config is one member's etcd config.
	Config string
	// Layout overrides the detected layout of a plain directory.
	Layout pki.Layout
	// Member keeps only one member of a spec, for a host that has only its
	// own certificates.
	Member string
}

// Default places tried, in order, when nothing is given.
var defaultDirs = []string{local.DefaultDir, "/etc/etcd/ssl", "/etc/kubernetes/pki/etcd"}

// Find builds the inventory the options describe.
func Find(o Options) (*pki.Inventory, error) {
	switch {
	case o.Spec != "" && o.Config != "":
		return nil, errors.New("give --spec or --config, not both")
	case o.Config != "":
		return Config(o.Config, o.Dir, o.Layout)
	case o.Spec != "":
		return Spec(o.Spec, o.Dir, o.Member)
	case o.Dir != "":
		if local.Dir(o.Dir).Exists() {
			return Up(o.Dir)
		}
		return Dir(o.Dir, o.Layout)
	}
	for _, d := range defaultDirs {
		if local.Dir(d).Exists() {
			return Up(d)
		}
		if d != local.DefaultDir && fsutil.Exists(d) {
			return Dir(d, o.Layout)
		}
	}
	return nil, fmt.Errorf("no certificates found in %v; say where they are with --dir DIR, --spec FILE or --config FILE", defaultDirs)
}

// Dir is a plain PKI directory: the CA and whichever of the layout's leaf
// files exist. Nothing says which hosts the leaves must cover.
func Dir(dir string, layout pki.Layout) (*pki.Inventory, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if layout == "" {
		if layout, err = pki.DetectLayout(abs); err != nil {
			return nil, err
		}
	}
	inv := &pki.Inventory{Source: "directory " + abs, Args: []string{"--dir", abs}, Layout: layout, CADir: abs}
	inv.Leaves = append(inv.Leaves, dirLeaves(abs, layout, "", false)...)
	return inv, nil
}

// dirLeaves are the layout's leaf files in a directory.
func dirLeaves(dir string, layout pki.Layout, member string, required bool) []pki.Item {
	prefix := ""
	if member != "" {
		prefix = member + "/"
	}
	var out []pki.Item
	for _, role := range []pki.Role{pki.RoleServer, pki.RolePeer} {
		out = append(out, pki.Item{ID: prefix + string(role), Member: member, Role: role, Pair: layout.Leaf(dir, role), Dir: dir, Required: required})
	}
	if member == "" {
		out = append(out, clientLeaves(dir, layout)...)
	}
	return out
}

// clientLeaves are a CA directory's client pairs: cfssl's client.pem, or
// kubeadm's health-check client and the API server's client one up.
func clientLeaves(dir string, layout pki.Layout) []pki.Item {
	if layout == pki.LayoutKubeadm {
		return []pki.Item{
			{ID: "healthcheck-client", Role: pki.RoleClient, Pair: layout.Leaf(dir, pki.RoleClient), Dir: dir},
			{ID: "apiserver-etcd-client", Role: pki.RoleClient, Pair: pki.APIServerClient(dir), Dir: dir},
		}
	}
	return []pki.Item{{ID: "client", Role: pki.RoleClient, Pair: layout.Leaf(dir, pki.RoleClient), Dir: dir}}
}

// Up is an `etcdkit up` directory: the CA and the operator's client pair
// in pki/, and each member's certificates as its etcd config names them.
func Up(dir string) (*pki.Inventory, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	d := local.Dir(abs)
	c, err := d.Load()
	if err != nil {
		return nil, err
	}
	inv := &pki.Inventory{Source: "etcdkit up directory " + abs, Args: []string{"--dir", abs}, Layout: pki.LayoutCfssl, CADir: d.PKIDir()}
	inv.Leaves = append(inv.Leaves, pki.Item{ID: "client", Role: pki.RoleClient, Pair: d.Client(), Dir: d.PKIDir(), Required: true})
	for i := range c.Members {
		m := &c.Members[i]
		inv.Members = append(inv.Members, pki.Endpoint{Name: m.Name, ClientURL: m.ClientURL, PeerURL: m.PeerURL})
		cfg, err := etcdconf.Load(d.Member(m.Name).Config())
		if err != nil {
			return nil, fmt.Errorf("member %q: %w", m.Name, err)
		}
		items, trust := configItems(cfg, m.Name+"/")
		inv.Leaves = append(inv.Leaves, items...)
		inv.Trust = appendTrust(inv.Trust, trust...)
	}
	return inv, nil
}

// Spec is a cluster spec: every member's server and peer certificates in
// its PKI directory, which must cover the member's URLs. Members that share
// a directory share its files, so those must cover all of them (the
// runbook's one-certificate-for-all style) unless member picks one.
func Spec(path, caDir, member string) (*pki.Inventory, error) {
	c, _, err := spec.Load(path)
	if err != nil {
		return nil, err
	}
	layout, err := pki.ParseLayout(c.PKI.Layout)
	if err != nil {
		return nil, err
	}
	if caDir == "" {
		caDir = c.PKI.Dir
	}
	if caDir, err = filepath.Abs(caDir); err != nil {
		return nil, err
	}
	abs, _ := filepath.Abs(path)
	inv := &pki.Inventory{Source: "cluster spec " + abs, Args: []string{"--spec", abs, "--dir", caDir}, Layout: layout, CADir: caDir}
	if member != "" {
		if _, ok := c.Member(member); !ok {
			return nil, fmt.Errorf("%s has no member %q", path, member)
		}
		inv.Args = append(inv.Args, "--member", member)
	}
	byPath := map[string]int{}
	for i := range c.Members {
		m := &c.Members[i]
		inv.Members = append(inv.Members, pki.Endpoint{Name: m.Name, ClientURL: m.ClientURL, PeerURL: m.PeerURL})
		if member != "" && m.Name != member {
			continue
		}
		dir := c.MemberPKIDir(m)
		inv.Trust = appendTrust(inv.Trust, pki.TrustFile{ID: m.Name + "/ca", Pair: layout.CA(dir)})
		for _, role := range []pki.Role{pki.RoleServer, pki.RolePeer} {
			raw := m.ClientURL
			why := fmt.Sprintf("member %s clientURL", m.Name)
			if role == pki.RolePeer {
				raw, why = m.PeerURL, fmt.Sprintf("member %s peerURL", m.Name)
			}
			needs := needsOf(why, raw)
			pair := layout.Leaf(dir, role)
			if j, ok := byPath[pair.Cert]; ok {
				it := &inv.Leaves[j]
				it.Member, it.ID = "", string(role)+" ("+filepath.Dir(pair.Cert)+")"
				it.Needs = mergeNeeds(it.Needs, needs)
				continue
			}
			byPath[pair.Cert] = len(inv.Leaves)
			inv.Leaves = append(inv.Leaves, pki.Item{ID: m.Name + "/" + string(role), Member: m.Name, Role: role, Pair: pair, Dir: dir, Trust: layout.CA(dir).Cert, Needs: needs, Required: true})
		}
	}
	for _, it := range clientLeaves(caDir, layout) {
		if _, dup := byPath[it.Pair.Cert]; !dup {
			inv.Leaves = append(inv.Leaves, it)
		}
	}
	return inv, nil
}

// Config is one member's etcd config: the files it names, and the hosts
// its URLs need. The CA directory is the one holding its trusted CA file
// unless caDir says otherwise.
func Config(path, caDir string, layout pki.Layout) (*pki.Inventory, error) {
	cfg, err := etcdconf.Load(path)
	if err != nil {
		return nil, err
	}
	abs, _ := filepath.Abs(path)
	return Member(cfg, path, "etcd config "+abs, caDir, layout, []string{"--config", abs})
}

// Member is Config for a config read from elsewhere (a static pod's
// command line): name is the file in messages, source describes it, args
// are the flags that find the same inventory again (--dir CA-DIR is
// added).
func Member(cfg *etcdconf.Config, name, source, caDir string, layout pki.Layout, args []string) (*pki.Inventory, error) {
	var err error
	items, trust := configItems(cfg, "")
	if caDir == "" {
		for _, t := range trust {
			caDir = filepath.Dir(t.Pair.Cert)
			break
		}
	}
	if caDir == "" {
		return nil, fmt.Errorf("%s sets no trusted-ca-file, so it does not say where the CA is; give --dir CA-DIR", name)
	}
	if caDir, err = filepath.Abs(caDir); err != nil {
		return nil, err
	}
	if layout == "" {
		if layout, err = pki.DetectLayout(caDir); err != nil {
			return nil, err
		}
	}
	inv := &pki.Inventory{Source: source, Args: append(append([]string{}, args...), "--dir", caDir), Layout: layout, CADir: caDir, Leaves: items}
	for _, t := range trust {
		if t.Pair.Cert != layout.CA(caDir).Cert {
			inv.Trust = appendTrust(inv.Trust, t)
		}
	}
	for _, it := range clientLeaves(caDir, layout) {
		if !slices.ContainsFunc(items, func(x pki.Item) bool { return x.Pair.Cert == it.Pair.Cert }) {
			inv.Leaves = append(inv.Leaves, it)
		}
	}
	if cfg.Name != "" {
		ep := pki.Endpoint{Name: cfg.Name}
		if us := etcdconf.SplitList(cfg.AdvertiseClientURLs); len(us) > 0 {
			ep.ClientURL = us[0]
		}
		if us := etcdconf.SplitList(cfg.InitialAdvertisePeerURLs); len(us) > 0 {
			ep.PeerURL = us[0]
		}
		inv.Members = append(inv.Members, ep)
	}
	return inv, nil
}

// configItems are the certificates an etcd config names. The server
// certificate must cover every host the member advertises to clients and
// listens on for them; the peer certificate the same for peers. A wildcard
// listen address (0.0.0.0) is covered by the advertised hosts.
func configItems(cfg *etcdconf.Config, prefix string) ([]pki.Item, []pki.TrustFile) {
	var items []pki.Item
	var trust []pki.TrustFile
	blocks := []struct {
		role     pki.Role
		sec      etcdconf.Security
		block    string
		urlsKeys [][2]string
	}{
		{pki.RoleServer, cfg.ClientTransportSecurity, "client-transport-security", [][2]string{
			{"advertise-client-urls", cfg.AdvertiseClientURLs}, {"listen-client-urls", cfg.ListenClientURLs}, {"listen-client-http-urls", cfg.ListenClientHTTPURLs}}},
		{pki.RolePeer, cfg.PeerTransportSecurity, "peer-transport-security", [][2]string{
			{"initial-advertise-peer-urls", cfg.InitialAdvertisePeerURLs}, {"listen-peer-urls", cfg.ListenPeerURLs}}},
	}
	for _, b := range blocks {
		s := b.sec
		if s.TrustedCAFile != "" {
			trust = appendTrust(trust, pki.TrustFile{ID: prefix + "ca", Pair: pki.Pair{Cert: s.TrustedCAFile, Key: siblingKey(s.TrustedCAFile)}})
		}
		if s.CertFile == "" {
			continue
		}
		var needs []pki.Need
		for _, kv := range b.urlsKeys {
			needs = mergeNeeds(needs, needsOf(kv[0], etcdconf.SplitList(kv[1])...))
		}
		items = append(items, pki.Item{ID: prefix + string(b.role), Member: cfg.Name, Role: b.role, Pair: pki.Pair{Cert: s.CertFile, Key: s.KeyFile},
			Dir: filepath.Dir(s.CertFile), Trust: s.TrustedCAFile, Needs: needs, Required: true})
		if s.ClientCertFile != "" {
			items = append(items, pki.Item{ID: prefix + string(b.role) + "-client", Member: cfg.Name, Role: pki.RoleClient, Pair: pki.Pair{Cert: s.ClientCertFile, Key: s.ClientKeyFile},
				Dir: filepath.Dir(s.ClientCertFile), Trust: s.TrustedCAFile, Required: true})
		}
	}
	return items, trust
}

// needsOf turns URLs into the hosts a certificate must cover. Wildcard
// listen addresses and unix sockets need nothing a certificate can name.
func needsOf(why string, urls ...string) []pki.Need {
	var out []pki.Need
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme == "unix" || u.Scheme == "unixs" || u.Scheme == "http" {
			continue
		}
		h := u.Hostname()
		if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
			continue
		}
		out = mergeNeeds(out, []pki.Need{{Host: h, Why: why + " " + raw}})
	}
	return out
}

func mergeNeeds(a, b []pki.Need) []pki.Need {
	for _, n := range b {
		if !slices.ContainsFunc(a, func(x pki.Need) bool { return x.Host == n.Host }) {
			a = append(a, n)
		}
	}
	return a
}

func appendTrust(list []pki.TrustFile, add ...pki.TrustFile) []pki.TrustFile {
	for _, t := range add {
		if !slices.ContainsFunc(list, func(x pki.TrustFile) bool { return x.Pair.Cert == t.Pair.Cert }) {
			list = append(list, t)
		}
	}
	return list
}

// siblingKey guesses the CA key that sits beside a CA file in either
// layout (ca.pem/ca-key.pem, ca.crt/ca.key); it need not exist.
func siblingKey(caFile string) string {
	dir, base := filepath.Dir(caFile), filepath.Base(caFile)
	switch filepath.Ext(base) {
	case ".crt":
		return filepath.Join(dir, base[:len(base)-4]+".key")
	case ".pem":
		return filepath.Join(dir, base[:len(base)-4]+"-key.pem")
	}
	return ""
}
