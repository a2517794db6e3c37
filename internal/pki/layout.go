package pki

import (
	"fmt"
	"path/filepath"

	"github.com/etcdkit/etcdkit/internal/fsutil"
)

// Layout is a naming convention for the files of a PKI directory.
type Layout string

const (
	// LayoutCfssl is the runbook's /etc/etcd/ssl: ca.pem, ca-key.pem,
	// server.pem, server-key.pem, peer.pem, peer-key.pem, client.pem,
	// client-key.pem.
	LayoutCfssl Layout = "cfssl"
	// LayoutKubeadm is /etc/kubernetes/pki/etcd: ca.crt, ca.key,
	// server.crt, peer.crt, healthcheck-client.crt, with the API server's
	// client pair (apiserver-etcd-client) one directory up.
	LayoutKubeadm Layout = "kubeadm"
)

// ParseLayout validates a layout name.
func ParseLayout(s string) (Layout, error) {
	switch Layout(s) {
	case "", LayoutCfssl:
		return LayoutCfssl, nil
	case LayoutKubeadm:
		return LayoutKubeadm, nil
	}
	return "", fmt.Errorf("invalid PKI layout %q; options are cfssl, kubeadm", s)
}

// Pair is the certificate and key paths of one identity.
type Pair struct {
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// CA is where the CA certificate and key live in dir.
func (l Layout) CA(dir string) Pair {
	if l == LayoutKubeadm {
		return Pair{Cert: filepath.Join(dir, "ca.crt"), Key: filepath.Join(dir, "ca.key")}
	}
	return Pair{Cert: filepath.Join(dir, "ca.pem"), Key: filepath.Join(dir, "ca-key.pem")}
}

// Leaf is where the certificate of a role lives in dir.
func (l Layout) Leaf(dir string, role Role) Pair {
	if l == LayoutKubeadm {
		base := string(role)
		if role == RoleClient {
			base = "healthcheck-client"
		}
		return Pair{Cert: filepath.Join(dir, base+".crt"), Key: filepath.Join(dir, base+".key")}
	}
	return Pair{Cert: filepath.Join(dir, string(role)+".pem"), Key: filepath.Join(dir, string(role)+"-key.pem")}
}

// APIServerClient is kubeadm's kube-apiserver client pair, which lives one
// directory above the etcd PKI directory.
func APIServerClient(etcdPKIDir string) Pair {
	up := filepath.Dir(filepath.Clean(etcdPKIDir))
	return Pair{Cert: filepath.Join(up, "apiserver-etcd-client.crt"), Key: filepath.Join(up, "apiserver-etcd-client.key")}
}

// kubeadm's names for the two etcd client identities it creates.
const (
	KubeadmHealthcheckClientCN = "kube-etcd-healthcheck-client"
	KubeadmAPIServerClientCN   = "kube-apiserver-etcd-client"
	// KubeadmMastersGroup is the organization kubeadm gives both.
	KubeadmMastersGroup = "system:masters"
)

// ClientPair is where a client certificate called name goes in dir. The
// cfssl layout has one client pair; kubeadm has the health-check client in
// dir and the API server's client one directory up.
func (l Layout) ClientPair(dir, name string) Pair {
	if l == LayoutKubeadm && IsAPIServerClientName(name) {
		return APIServerClient(dir)
	}
	return l.Leaf(dir, RoleClient)
}

// IsAPIServerClientName reports whether a client name means kubeadm's
// kube-apiserver client, in either of the spellings kubeadm uses.
func IsAPIServerClientName(name string) bool {
	return name == KubeadmAPIServerClientCN || name == "apiserver-etcd-client"
}

// ext is the certificate file extension of the layout.
func (l Layout) ext() string {
	if l == LayoutKubeadm {
		return ".crt"
	}
	return ".pem"
}

// NextCAKey is where a CA rotation keeps the new CA's key until its leaves
// are issued (kubeadm: ca-next.key, cfssl: ca-next-key.pem).
func (l Layout) NextCAKey(dir string) string {
	if l == LayoutKubeadm {
		return filepath.Join(dir, "ca-next.key")
	}
	return filepath.Join(dir, "ca-next-key.pem")
}

// CrossCert is the new CA certificate signed by the old CA, appended to
// every leaf issued while a rotation is under way.
func (l Layout) CrossCert(dir string) string {
	return filepath.Join(dir, "ca-cross-signed"+l.ext())
}

// DetectLayout names the layout of an existing PKI directory from its CA
// file names; an empty or missing directory is cfssl, etcdkit's default.
func DetectLayout(dir string) (Layout, error) {
	cfssl := fsutil.Exists(LayoutCfssl.CA(dir).Cert)
	kubeadm := fsutil.Exists(LayoutKubeadm.CA(dir).Cert)
	switch {
	case cfssl && kubeadm:
		return "", fmt.Errorf("%s has both ca.pem (cfssl layout) and ca.crt (kubeadm layout); say which with --layout", dir)
	case kubeadm:
		return LayoutKubeadm, nil
	}
	return LayoutCfssl, nil
}
