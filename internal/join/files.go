package join

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"io/fs"
	"time"

	"github.com/etcdkit/etcdkit/internal/fsutil"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/render"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// checkEmpty refuses to join where a member's files already are: a join
// writes a new member, and must not overwrite another's keys or start on
// another cluster's data. layout "" checks the names of both layouts.
func (p Paths) checkEmpty(layout pki.Layout) error {
	if fsutil.Exists(p.Config) {
		return fmt.Errorf("%s already exists: this host has a member config; remove it if it is left from an earlier cluster, or write elsewhere with --config", p.Config)
	}
	if empty, err := fsutil.DirEmpty(p.DataDir); err != nil || !empty {
		return fmt.Errorf("data dir %s is not empty: a joining member starts with no data; empty it if it is left from an earlier cluster, or choose another --data-dir", p.DataDir)
	}
	layouts := []pki.Layout{layout}
	if layout == "" {
		layouts = []pki.Layout{pki.LayoutCfssl, pki.LayoutKubeadm}
	}
	for _, l := range layouts {
		files := []string{l.CA(p.CertDir).Cert, l.CA(p.CertDir).Key}
		for _, r := range pki.Roles {
			pair := l.Leaf(p.CertDir, r)
			files = append(files, pair.Cert, pair.Key)
		}
		for _, f := range files {
			if fsutil.Exists(f) {
				return fmt.Errorf("%s already exists: a join writes new certificates and keys and never replaces any; move them away, or choose another --cert-dir", f)
			}
		}
	}
	return nil
}

// write renders the member's config from the endpoint's answer and writes
// it with the CA bundle, the certificates and the keys made here, all or
// none.
func (o *Options) write(resp *Response, s *signed, k keys, caPin string, alg pki.KeyAlgorithm) (*Result, error) {
	layout := o.Layout
	if layout == "" {
		var err error
		if layout, err = pki.ParseLayout(resp.Layout); err != nil {
			return nil, fmt.Errorf("the endpoint named an unknown layout: %w", err)
		}
	}
	st := resp.Settings
	c := &spec.Cluster{
		Name:    resp.ClusterName,
		PKI:     spec.PKI{Dir: o.Paths.CertDir, Layout: string(layout), KeyAlgorithm: string(alg)},
		DataDir: o.Paths.DataDir,
		Tuning: spec.Tuning{
			HeartbeatInterval:       spec.Duration{Duration: time.Duration(st.HeartbeatMs) * time.Millisecond},
			ElectionTimeout:         spec.Duration{Duration: time.Duration(st.ElectionMs) * time.Millisecond},
			SnapshotCount:           st.SnapshotCount,
			QuotaBackendBytes:       spec.ByteSize(st.QuotaBackendBytes),
			AutoCompactionMode:      st.AutoCompactionMode,
			AutoCompactionRetention: st.AutoCompactionRetention,
		},
	}
	if st.BackupSchedule != "" {
		c.Backup = &spec.Backup{Dir: st.BackupDir, Schedule: st.BackupSchedule, Keep: st.BackupKeep}
	}
	c.SetDefaults()
	m := &spec.Member{Name: o.Name, PeerURL: o.PeerURL, ClientURL: o.ClientURL, DataDir: o.Paths.DataDir, PKIDir: o.Paths.CertDir}
	cfg, err := render.EtcdConfig(c, m, render.EtcdOptions{State: render.StateExisting, InitialCluster: resp.InitialCluster})
	if err != nil {
		return nil, err
	}
	if st.MaxLearners > 1 {
		cfg.MaxLearners = st.MaxLearners
	}
	data, err := cfg.Marshal()
	if err != nil {
		return nil, err
	}

	res := &Result{Response: resp, Config: cfg, ConfigPath: o.Paths.Config, CAHash: caPin}
	var txn fsutil.Txn
	defer txn.Abort()
	add := func(path string, b []byte, mode fs.FileMode) error {
		res.Files = append(res.Files, path)
		return txn.Add(path, b, mode)
	}
	addPair := func(p pki.Pair, chain []*x509.Certificate, key crypto.Signer) error {
		keyPEM, err := pki.EncodeKey(key)
		if err != nil {
			return err
		}
		if err := add(p.Key, keyPEM, fsutil.PrivateFile); err != nil {
			return err
		}
		return add(p.Cert, pki.EncodeCert(chain...), fsutil.PublicFile)
	}
	dir := o.Paths.CertDir
	res.CACert = layout.CA(dir).Cert
	res.Client = layout.Leaf(dir, pki.RoleClient)
	if err := add(res.CACert, pki.EncodeCert(s.bundle...), fsutil.PublicFile); err != nil {
		return nil, err
	}
	if err := addPair(layout.Leaf(dir, pki.RoleServer), s.server, k.server); err != nil {
		return nil, err
	}
	if err := addPair(layout.Leaf(dir, pki.RolePeer), s.peer, k.peer); err != nil {
		return nil, err
	}
	if err := addPair(res.Client, s.client, k.client); err != nil {
		return nil, err
	}
	if err := add(o.Paths.Config, data, fsutil.PublicFile); err != nil {
		return nil, err
	}
	if err := txn.Commit(); err != nil {
		return nil, err
	}
	return res, nil
}
