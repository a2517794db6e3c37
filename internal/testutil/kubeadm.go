package testutil

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/etcdkit/etcdkit/internal/fsutil"
	"github.com/etcdkit/etcdkit/internal/pki"
)

// KubeadmCA creates an etcd CA in kubeadm's layout (ca.crt, ca.key) in a
// new directory, for KubeadmNode to copy onto nodes.
func KubeadmCA(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "etcd-ca")
	if _, _, err := pki.InitCA(pki.InitOptions{Dir: dir, Layout: pki.LayoutKubeadm, CARequest: pki.CARequest{CommonName: "etcd-ca"}}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// KubeadmNode gives the node tree under root what kubeadm gives a
// control-plane node: the etcd CA copied into etc/kubernetes/pki/etcd,
// and, issued by etcdkit's pki package in kubeadm's layout, the member's
// server and peer certificates (common name name, hosts by kubeadm's
// rules), healthcheck-client, and apiserver-etcd-client one directory up.
// With name "" only the CA is copied (a node about to join).
func KubeadmNode(t testing.TB, caDir, root, name string, hosts ...string) string {
	t.Helper()
	etcd := filepath.Join(root, "etc", "kubernetes", "pki", "etcd")
	for _, f := range []string{"ca.crt", "ca.key"} {
		b, err := os.ReadFile(filepath.Join(caDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := fsutil.WriteFile(filepath.Join(etcd, f), b, fsutil.PrivateFile); err != nil {
			t.Fatal(err)
		}
	}
	if name == "" {
		return etcd
	}
	l := pki.LayoutKubeadm
	reqs := []pki.LeafRequest{
		{Role: pki.RoleServer, CommonName: name, Hosts: pki.DefaultHosts(l, pki.RoleServer, name, hosts)},
		{Role: pki.RolePeer, CommonName: name, Hosts: pki.DefaultHosts(l, pki.RolePeer, name, hosts)},
		{Role: pki.RoleClient, CommonName: pki.KubeadmHealthcheckClientCN, Organization: []string{pki.KubeadmMastersGroup}},
		{Role: pki.RoleClient, CommonName: pki.KubeadmAPIServerClientCN, Organization: []string{pki.KubeadmMastersGroup}},
	}
	for _, r := range reqs {
		if _, err := pki.IssueInto(pki.IssueOptions{CADir: etcd, Layout: l, Request: r}); err != nil {
			t.Fatal(err)
		}
	}
	return etcd
}
