package kubeadm

import (
	"os"
	"path/filepath"
	"time"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/lint"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/pki/discover"
)

// Inspection is what a node's etcd manifest says, checked: the member, its
// flags, its data dir, the etcd certificates of the node, and what
// `etcdkit config lint` and `etcdkit pki check` find wrong. It reads only
// files, so it works when etcd is down.
type Inspection struct {
	// Manifest is the manifest's path on the node; File where it was read.
	Manifest string `json:"manifest"`
	File     string `json:"file"`
	Member   Member `json:"member"`
	// Flags is the etcd container's command line.
	Flags   []string    `json:"flags"`
	DataDir DataDirInfo `json:"dataDir"`
	// PKI is `etcdkit pki check` of the node's etcd certificates: the CA,
	// the member's server and peer certificates (against its URLs),
	// healthcheck-client and apiserver-etcd-client.
	PKI *pki.Report `json:"pki,omitempty"`
	// Findings are `etcdkit config lint`'s, and kubeadm's own.
	Findings []lint.Finding `json:"findings"`
	// APIServer is kube-apiserver's view of etcd, when its manifest is
	// beside etcd's.
	APIServer *APIServerInfo `json:"apiServer,omitempty"`
}

// Member is the member a manifest runs.
type Member struct {
	Name  string `json:"name"`
	Image string `json:"image"`
	// ClientURLs are where clients reach it (kubeadm's annotation, else
	// --advertise-client-urls).
	ClientURLs          []string `json:"clientURLs"`
	ListenClientURLs    []string `json:"listenClientURLs,omitempty"`
	PeerURLs            []string `json:"peerURLs"`
	ListenPeerURLs      []string `json:"listenPeerURLs,omitempty"`
	MetricsURLs         []string `json:"metricsURLs,omitempty"`
	InitialCluster      []string `json:"initialCluster,omitempty"`
	InitialClusterState string   `json:"initialClusterState,omitempty"`
}

// DataDirInfo is the member's data directory as found on disk.
type DataDirInfo struct {
	Path   string `json:"path"`
	Exists bool   `json:"exists"`
	// HasData is set when it holds a member (member/ with a database).
	HasData bool `json:"hasData"`
	// DBSize is the size of the backend database file.
	DBSize int64 `json:"dbSize,omitempty"`
}

// APIServerInfo is kube-apiserver's etcd client settings.
type APIServerInfo struct {
	File        string   `json:"file"`
	EtcdServers []string `json:"etcdServers"`
	CAFile      string   `json:"caFile,omitempty"`
	CertFile    string   `json:"certFile,omitempty"`
	KeyFile     string   `json:"keyFile,omitempty"`
}

// Errors counts the error findings of both checks.
func (in *Inspection) Errors() int {
	n := 0
	for _, f := range in.Findings {
		if f.Severity == lint.Error {
			n++
		}
	}
	if in.PKI != nil {
		n += in.PKI.Count(pki.SeverityError)
	}
	return n
}

// Inspect reads and checks the etcd manifest at a node's path under root.
// Certificates are judged at now.
func Inspect(root Root, path string, now time.Time) (*Inspection, error) {
	m, err := Load(root, path)
	if err != nil {
		return nil, err
	}
	cfg := m.Config
	in := &Inspection{
		Manifest: m.Path, File: m.File, Flags: m.CommandLine(),
		Member: Member{
			Name: m.Name(), Image: m.Image(), ClientURLs: m.ClientURLs(),
			ListenClientURLs: etcdconf.SplitList(cfg.ListenClientURLs),
			PeerURLs:         m.PeerURLs(), ListenPeerURLs: etcdconf.SplitList(cfg.ListenPeerURLs),
			MetricsURLs:         etcdconf.SplitList(cfg.ListenMetricsURLs),
			InitialCluster:      etcdconf.SplitList(cfg.InitialCluster),
			InitialClusterState: cfg.InitialClusterState,
		},
		Findings: m.Findings(),
	}
	if in.Member.InitialClusterState == "" {
		in.Member.InitialClusterState = "new"
	}
	in.DataDir = dataDir(cfg.DataDir, root)
	inv, err := discover.Member(m.Rooted(), m.File, "the certificates "+m.File+" names", "", pki.LayoutKubeadm, nil)
	if err == nil {
		in.PKI = pki.Check(inv, pki.CheckOptions{Now: now})
	}
	if a, err := LoadAPIServer(root, filepath.Join(filepath.Dir(m.Path), filepath.Base(APIServerManifest))); err == nil {
		ca, client := a.EtcdClient()
		in.APIServer = &APIServerInfo{File: a.File, EtcdServers: a.EtcdServers(), CAFile: ca, CertFile: client.Cert, KeyFile: client.Key}
	}
	return in, nil
}

func dataDir(path string, root Root) DataDirInfo {
	d := DataDirInfo{Path: path}
	if path == "" {
		return d
	}
	dir := root.Path(path)
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		d.Exists = true
	}
	if fi, err := os.Stat(filepath.Join(dir, "member", "snap", "db")); err == nil {
		d.HasData, d.DBSize = true, fi.Size()
	}
	return d
}
