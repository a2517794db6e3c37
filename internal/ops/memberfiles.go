package ops

import (
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/fsutil"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/render"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// MemberFiles are the files one member needs on its host: its etcd config
// and, when a CA is at hand, its CA bundle and server and peer
// certificates, named by the cluster's PKI layout.
type MemberFiles struct {
	// Cluster holds what every member shares: PKI layout, key algorithm
	// and validity, tuning, token.
	Cluster *spec.Cluster
	// Member is the member, with the data and certificate directories it
	// uses on its host (its config names them).
	Member *spec.Member
	Etcd   render.EtcdOptions
	// CA signs the certificates; nil writes none.
	CA *pki.CA
}

// Written is what WriteMemberFiles wrote.
type Written struct {
	Config     *etcdconf.Config `json:"-"`
	YAML       []byte           `json:"-"`
	ConfigPath string           `json:"config,omitempty"`
	// CertDir is where the certificates were written, to be copied to the
	// member's certificate directory when that is elsewhere.
	CertDir string   `json:"certDir,omitempty"`
	Files   []string `json:"files,omitempty"`
}

// ConfigFile and CertDirName are where WriteMemberFiles puts things in its
// output directory: the layout of an `etcdkit up` member directory.
const (
	ConfigFile  = "etcd.yaml"
	CertDirName = "ssl"
)

// Render builds the member's etcd config.
func (f MemberFiles) Render() (*etcdconf.Config, []byte, error) {
	cfg, err := render.EtcdConfig(f.Cluster, f.Member, f.Etcd)
	if err != nil {
		return nil, nil, err
	}
	data, err := cfg.Marshal()
	if err != nil {
		return nil, nil, err
	}
	return cfg, data, nil
}

// Write writes out/etcd.yaml and, with a CA, the certificates in out/ssl,
// all or none: every file is staged first and renamed into place
// together. Keys are 0600, directories 0700.
func (f MemberFiles) Write(out string) (*Written, error) {
	cfg, data, err := f.Render()
	if err != nil {
		return nil, err
	}
	w := &Written{Config: cfg, YAML: data, ConfigPath: filepath.Join(out, ConfigFile)}
	var txn fsutil.Txn
	defer txn.Abort()
	add := func(path string, b []byte, mode fs.FileMode) error {
		w.Files = append(w.Files, path)
		return txn.Add(path, b, mode)
	}
	if f.CA != nil {
		if err := f.stageCerts(filepath.Join(out, CertDirName), add); err != nil {
			return nil, err
		}
		w.CertDir = filepath.Join(out, CertDirName)
	}
	if err := add(w.ConfigPath, data, fsutil.PublicFile); err != nil {
		return nil, err
	}
	if err := txn.Commit(); err != nil {
		return nil, err
	}
	return w, nil
}

// stageCerts issues the server and peer certificates for the hosts of
// the member's URLs.
func (f MemberFiles) stageCerts(dir string, add func(string, []byte, fs.FileMode) error) error {
	layout, err := pki.ParseLayout(f.Cluster.PKI.Layout)
	if err != nil {
		return err
	}
	alg, err := pki.ParseKeyAlgorithm(f.Cluster.PKI.KeyAlgorithm)
	if err != nil {
		return err
	}
	bundle := f.CA.Bundle
	if len(bundle) == 0 {
		bundle = append(bundle, f.CA.Cert)
	}
	if err := add(layout.CA(dir).Cert, pki.EncodeCert(bundle...), fsutil.PublicFile); err != nil {
		return err
	}
	for _, role := range []pki.Role{pki.RoleServer, pki.RolePeer} {
		leaf, err := f.CA.Issue(pki.LeafRequest{
			Role: role, CommonName: f.Member.Name, Hosts: render.MemberHosts(f.Member),
			KeyAlgorithm: alg, Validity: f.Cluster.PKI.Validity.Duration,
		})
		if err != nil {
			return fmt.Errorf("member %q: %w", f.Member.Name, err)
		}
		key, err := pki.EncodeKey(leaf.Key)
		if err != nil {
			return err
		}
		p := layout.Leaf(dir, role)
		if err := add(p.Key, key, fsutil.PrivateFile); err != nil {
			return err
		}
		if err := add(p.Cert, pki.EncodeCert(leaf.Cert), fsutil.PublicFile); err != nil {
			return err
		}
	}
	return nil
}
