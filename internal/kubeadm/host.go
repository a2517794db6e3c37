package kubeadm

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"

	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/ops/replace"
	"github.com/etcdkit/etcdkit/internal/pki"
)

// Host is the replace.Host of a member replaced in a kubeadm tree: the
// new node's etcd manifest, made from this node's (Template), and its
// certificates, signed by the etcd CA this node keeps (kubeadm puts ca.key
// on every control-plane node), written under Node.Root: a directory whose
// contents are copied onto the new node's /.
type Host struct {
	Template *Manifest
	Member   replace.NewMember
	Node     Node
}

// NewHost is the Host for member nm, from this node's manifest, writing
// under out, with the certificates ca signs (nil: they must be there).
func NewHost(tmpl *Manifest, nm replace.NewMember, out Root, ca *pki.CA) Host {
	return Host{Template: tmpl, Member: nm, Node: Node{Root: out, PKIDir: tmpl.PKIDir(), Manifest: EtcdManifest, CA: ca}}
}

// Write plans the new node's files, then writes its certificates and its
// manifest with initialCluster.
func (h Host) Write(_ context.Context, initialCluster string, _ *replace.MemberRecord) (*ops.Written, error) {
	f, err := h.Node.Plan(h.Member)
	if err != nil {
		return nil, err
	}
	manifest, err := NewManifest(h.Template, h.Member, initialCluster, RenderOptions{})
	if err != nil {
		return nil, err
	}
	return f.Write(manifest)
}

// StartHint says how the new member starts.
func (h Host) StartHint() string {
	host := h.Member.Name
	if u, err := url.Parse(h.Member.PeerURL); err == nil {
		host = u.Hostname()
	}
	if h.Node.Root.IsNode() {
		return "the kubelet starts it from " + EtcdManifest
	}
	return fmt.Sprintf("copy %s onto %s's / (rsync -a %s/ root@%s:/); its kubelet starts it from %s", h.Node.Root, host, h.Node.Root, host, EtcdManifest)
}

// PKIDir is the member's etcd certificate directory (a node path): where
// --trusted-ca-file is, kubeadm's certificatesDir/etcd.
func (m *Manifest) PKIDir() string {
	if ca := m.Config.ClientTransportSecurity.TrustedCAFile; ca != "" {
		return filepath.Dir(ca)
	}
	return PKIDir + "/etcd"
}
