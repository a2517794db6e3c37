package kubeadm

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/etcdkit/etcdkit/internal/connect"
	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/fsutil"
	"github.com/etcdkit/etcdkit/internal/pki"
)

// Source finds the connection settings in a node's etcd manifest. Not
// explicit (the default path, nothing given), a missing manifest is
// nothing found; explicit, it is an error.
func Source(root Root, path string, explicit bool) connect.Source {
	if path == "" {
		path = EtcdManifest
	}
	return connect.Source{
		Name: SourceName(root, path),
		Find: func() (connect.Settings, bool, error) {
			m, err := Load(root, path)
			if errors.Is(err, ErrNoManifest) && !explicit {
				return connect.Settings{}, false, nil
			}
			if errors.Is(err, ErrNoManifest) {
				return connect.Settings{}, false, fmt.Errorf("%w; on a kubeadm control-plane node with stacked etcd it is %s (with an external etcd cluster, pass --endpoints and its certificates)", err, EtcdManifest)
			}
			if err != nil {
				return connect.Settings{}, false, err
			}
			s, err := m.Settings()
			return s, err == nil, err
		},
	}
}

// SourceName is how `-v` names the manifest a command connected with.
func SourceName(root Root, path string) string {
	if path == "" {
		path = EtcdManifest
	}
	if root.IsNode() {
		return "kubeadm manifest " + path
	}
	return fmt.Sprintf("kubeadm manifest %s under %s", path, root)
}

// Settings are what a client needs to reach this member: its client URLs
// (kubeadm's annotation), the CA that verifies it (--trusted-ca-file) and
// the client certificate kubeadm gives health checks (healthcheck-client,
// beside the CA), else kube-apiserver's (apiserver-etcd-client, one
// directory up).
func (m *Manifest) Settings() (connect.Settings, error) {
	eps := m.ClientURLs()
	if len(eps) == 0 {
		return connect.Settings{}, badManifest("%s: neither the annotation %s nor --advertise-client-urls says where etcd serves clients; restore them, or pass --endpoints", m.File, "kubeadm.kubernetes.io/etcd.advertise-client-urls")
	}
	for _, e := range eps {
		if _, err := etcdconf.ParseURL(e); err != nil {
			return connect.Settings{}, badManifest("%s: client URL: %v", m.File, err)
		}
	}
	s := connect.Settings{Endpoints: eps}
	if !anyHTTPS(eps) {
		return s, nil
	}
	const caKey = "client-transport-security.trusted-ca-file"
	ca := m.Config.ClientTransportSecurity.TrustedCAFile
	if ca == "" {
		return s, badManifest("%s: the etcd command has no --trusted-ca-file, so nothing says which CA signs the member's certificate (kubeadm sets %s); restore the flag, or pass --cacert", m.File, filepath.Join(PKIDir, "etcd", "ca.crt"))
	}
	if !fsutil.Exists(m.Root.Path(ca)) {
		return s, badManifest("%s names %s, which does not exist%s; restore the etcd CA there (from a backup, or another control-plane node's %s), or pass --cacert", m.at(caKey), ca, m.underRoot(ca), filepath.Dir(ca))
	}
	s.CACert = m.Root.Path(ca)
	dir := filepath.Dir(ca)
	candidates := []pki.Pair{pki.LayoutKubeadm.Leaf(dir, pki.RoleClient), pki.APIServerClient(dir)}
	var tried []string
	for _, p := range candidates {
		cert, key := m.Root.Path(p.Cert), m.Root.Path(p.Key)
		if fsutil.Exists(cert) && fsutil.Exists(key) {
			s.Cert, s.Key = cert, key
			return s, nil
		}
		tried = append(tried, p.Cert)
	}
	return s, badManifest("no client certificate for this member's CA: neither %s exists with its key%s; issue one with `etcdkit pki issue client %s --layout kubeadm --dir %s`, or pass --cert and --key", strings.Join(tried, " nor "), m.underRoot(tried[0]), pki.KubeadmHealthcheckClientCN, m.Root.Path(dir))
}

// underRoot says where a node path was looked for, under a copied tree.
func (m *Manifest) underRoot(p string) string {
	if m.Root.IsNode() {
		return ""
	}
	return " (looked for " + m.Root.Path(p) + ")"
}

func anyHTTPS(urls []string) bool {
	for _, u := range urls {
		if strings.HasPrefix(u, "https://") {
			return true
		}
	}
	return false
}
