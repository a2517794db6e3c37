package pki

import (
	"fmt"
	"path/filepath"
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
