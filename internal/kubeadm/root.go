// Package kubeadm reads and changes the stacked etcd of a kubeadm control
// plane: the etcd static pod manifest (/etc/kubernetes/manifests/etcd.yaml)
// and kube-apiserver's (its --etcd-* flags), with the certificates in
// kubeadm's layout. It finds the connection settings client commands use
// with no flags, inspects the member a node runs, prepares the manifest of
// a member that joins, and rewrites kube-apiserver's --etcd-servers.
//
// Every path a manifest names is the node's path. A Root maps them onto a
// copy of a node's tree (tests, a node's disk mounted elsewhere).
package kubeadm

import (
	"path/filepath"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
)

// Where kubeadm puts things on a control-plane node.
const (
	ManifestDir       = "/etc/kubernetes/manifests"
	EtcdManifest      = ManifestDir + "/etcd.yaml"
	APIServerManifest = ManifestDir + "/kube-apiserver.yaml"
	// PKIDir is kubeadm's certificatesDir; the etcd CA and the members'
	// certificates are in its etcd/ subdirectory.
	PKIDir  = "/etc/kubernetes/pki"
	DataDir = "/var/lib/etcd"
	// TmpDir is where kubeadm keeps manifest backups; etcdkit keeps its
	// own there too. Never in ManifestDir: the kubelet would run a backup
	// as a second pod.
	TmpDir = "/etc/kubernetes/tmp"
	// BackupDir is where snapshots before a membership change go by
	// default: beside the data dir, not in it (kubeadm's data dir is
	// /var/lib/etcd itself, which a restore replaces).
	BackupDir = "/var/lib/etcd-backups"
)

// Root is where a node's file system is: "" or "/" on the node itself,
// or the directory a node's tree was copied to.
type Root string

// Path is where a node's absolute path p is under the root. Relative
// paths are relative to the working directory and stay as they are.
func (r Root) Path(p string) string {
	if r == "" || r == "/" || p == "" || !filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(string(r), p)
}

// IsNode reports whether the root is the node itself.
func (r Root) IsNode() bool { return r == "" || r == "/" }

// Config maps every file a config names onto the root.
func (r Root) Config(c *etcdconf.Config) {
	c.DataDir = r.Path(c.DataDir)
	c.WalDir = r.Path(c.WalDir)
	for _, s := range []*etcdconf.Security{&c.ClientTransportSecurity, &c.PeerTransportSecurity} {
		s.CertFile, s.KeyFile = r.Path(s.CertFile), r.Path(s.KeyFile)
		s.ClientCertFile, s.ClientKeyFile = r.Path(s.ClientCertFile), r.Path(s.ClientKeyFile)
		s.TrustedCAFile = r.Path(s.TrustedCAFile)
	}
}
