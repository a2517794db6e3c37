// Package render turns a cluster spec into the files a member needs: etcd's
// own config file, and (elsewhere in this package) env files, units and
// manifests.
package render

import (
	"fmt"
	"net"
	"net/url"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// ClusterState is etcd's initial-cluster-state.
type ClusterState string

const (
	// StateNew bootstraps a new cluster from initial-cluster.
	StateNew ClusterState = "new"
	// StateExisting joins a cluster that already runs.
	StateExisting ClusterState = "existing"
)

// EtcdOptions tunes EtcdConfig.
type EtcdOptions struct {
	State ClusterState
	// InitialCluster overrides the spec's member list (a joining member
	// needs the live list, not the spec's).
	InitialCluster string
}

// EtcdConfig is the etcd config of one member of a spec: TLS with client
// certificate authentication on both client and peer URLs, certificates
// from the member's PKI directory in the spec's layout.
func EtcdConfig(c *spec.Cluster, m *spec.Member, o EtcdOptions) (*etcdconf.Config, error) {
	layout, err := pki.ParseLayout(c.PKI.Layout)
	if err != nil {
		return nil, err
	}
	dir := c.MemberPKIDir(m)
	ca, server, peer := layout.CA(dir), layout.Leaf(dir, pki.RoleServer), layout.Leaf(dir, pki.RolePeer)
	state := o.State
	if state == "" {
		state = StateNew
	}
	initial := o.InitialCluster
	if initial == "" {
		initial = c.InitialCluster()
	}
	listenClient, err := listenURLs(m.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("member %q clientURL: %w", m.Name, err)
	}
	t := c.Tuning
	cfg := &etcdconf.Config{
		Name:                     m.Name,
		DataDir:                  c.MemberDataDir(m),
		SnapshotCount:            t.SnapshotCount,
		HeartbeatInterval:        uint(t.HeartbeatInterval.Milliseconds()),
		ElectionTimeout:          uint(t.ElectionTimeout.Milliseconds()),
		QuotaBackendBytes:        int64(t.QuotaBackendBytes),
		ListenPeerURLs:           m.PeerURL,
		ListenClientURLs:         listenClient,
		InitialAdvertisePeerURLs: m.PeerURL,
		AdvertiseClientURLs:      m.ClientURL,
		InitialCluster:           initial,
		InitialClusterToken:      c.Name,
		InitialClusterState:      string(state),
		AutoCompactionMode:       t.AutoCompactionMode,
		AutoCompactionRetention:  t.AutoCompactionRetention,
		ClientTransportSecurity: etcdconf.Security{
			CertFile: server.Cert, KeyFile: server.Key, TrustedCAFile: ca.Cert, ClientCertAuth: true,
		},
		PeerTransportSecurity: etcdconf.Security{
			CertFile: peer.Cert, KeyFile: peer.Key, TrustedCAFile: ca.Cert, ClientCertAuth: true,
		},
	}
	if c.Backup != nil && c.Backup.Schedule != "" {
		b := *c.Backup
		cfg.Etcdkit = &etcdconf.Extensions{Backup: &etcdconf.Backup{Dir: b.Dir, Schedule: b.Schedule, Keep: b.Keep}}
	}
	return cfg, nil
}

// listenURLs listens on the advertised address and, for a member on a
// routable address, on loopback too, so local health checks and a local
// kube-apiserver keep working if the routable interface goes down.
func listenURLs(advertised string) (string, error) {
	u, err := url.Parse(advertised)
	if err != nil {
		return "", err
	}
	ip := net.ParseIP(u.Hostname())
	if ip == nil {
		// A DNS name cannot be bound; listen on every address.
		return fmt.Sprintf("%s://0.0.0.0:%s", u.Scheme, u.Port()), nil
	}
	if ip.IsLoopback() {
		return advertised, nil
	}
	return fmt.Sprintf("%s,%s://127.0.0.1:%s", advertised, u.Scheme, u.Port()), nil
}

// MemberHosts are the SANs a member's server and peer certificates need.
func MemberHosts(m *spec.Member) []string {
	return pki.HostsForURLs(m.ClientURL, m.PeerURL)
}
