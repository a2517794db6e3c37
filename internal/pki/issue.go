package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/etcdkit/etcdkit/internal/fsutil"
)

// InitOptions configures InitCA.
type InitOptions struct {
	Dir    string
	Layout Layout
	CARequest
}

// InitCA creates a CA in a directory. It refuses a directory that already
// has a CA in either layout: a new CA would orphan every certificate the old
// one signed, which is what rotate-ca is for.
func InitCA(o InitOptions) (*CA, Pair, error) {
	layout := o.Layout
	if layout == "" {
		layout = LayoutCfssl
	}
	p := layout.CA(o.Dir)
	if _, err := firstMissing(o.Dir); err != nil {
		return nil, p, err
	}
	for _, l := range []Layout{LayoutCfssl, LayoutKubeadm} {
		for _, f := range []string{l.CA(o.Dir).Cert, l.CA(o.Dir).Key} {
			if fsutil.Exists(f) {
				return nil, p, fmt.Errorf("%w at %s; to replace a CA without breaking the certificates it signed use `etcdkit pki rotate-ca --dir %s`", ErrCAExists, f, o.Dir)
			}
		}
	}
	ca, err := NewCA(o.CARequest)
	if err != nil {
		return nil, p, err
	}
	keyPEM, err := EncodeKey(ca.Key)
	if err != nil {
		return nil, p, err
	}
	var c changes
	c.write(p.Key, keyPEM, fsutil.PrivateFile)
	c.write(p.Cert, EncodeCert(ca.Cert), fsutil.PublicFile)
	return ca, p, c.apply()
}

// OpenCA loads the CA that signs in dir, as LoadCA does (cross-signed
// chain included), with messages that say what to do when it is missing,
// and refusing a CA key that others can read.
func OpenCA(layout Layout, dir string) (*CA, error) {
	p := layout.CA(dir)
	if !fsutil.Exists(p.Cert) {
		return nil, fmt.Errorf("no CA in %s (no %s); create one with `etcdkit pki init --dir %s`", dir, filepath.Base(p.Cert), dir)
	}
	if !fsutil.Exists(p.Key) {
		return nil, fmt.Errorf("%s has the CA certificate but not its key (%s); issue certificates where the CA key is", dir, filepath.Base(p.Key))
	}
	ca, err := LoadCA(p)
	if err != nil {
		return nil, fmt.Errorf("%w; restore the CA files from a backup (*.bak-*): a new CA would orphan every certificate the old one signed", err)
	}
	if problem, err := KeyModeProblem(p.Key); err == nil && problem != "" {
		return nil, errors.New(problem)
	}
	return ca, nil
}

// IssueOptions configures IssueInto.
type IssueOptions struct {
	// CADir holds the signing CA; Layout "" detects it from the files.
	CADir  string
	Layout Layout
	// OutDir is where the leaf goes, CADir when empty. A CA bundle is
	// copied there when it has none, so the directory is ready for a host.
	OutDir  string
	Request LeafRequest
	// Force replaces an existing certificate, keeping it as a backup.
	Force bool
	Now   func() time.Time
}

// Issued is what IssueInto wrote.
type Issued struct {
	Leaf    *Leaf
	Pair    Pair
	Layout  Layout
	Backups []string
	// TrustCopied is the CA bundle written into OutDir, if one was.
	TrustCopied string
}

// IssueInto issues a leaf from the CA in a directory and writes it under
// the layout's name for its role, all files or none.
func IssueInto(o IssueOptions) (*Issued, error) {
	layout := o.Layout
	if layout == "" {
		var err error
		if layout, err = DetectLayout(o.CADir); err != nil {
			return nil, err
		}
	}
	out := o.OutDir
	if out == "" {
		out = o.CADir
	}
	if _, err := firstMissing(out); err != nil {
		return nil, err
	}
	ca, err := OpenCA(layout, o.CADir)
	if err != nil {
		return nil, err
	}
	ca.Now = o.Now
	req := o.Request
	if req.KeyAlgorithm == "" && req.PublicKey == nil {
		// A new leaf gets the CA's key type unless the operator chose.
		req.KeyAlgorithm = AlgorithmOf(ca.Cert.PublicKey)
	}
	pair := layout.Leaf(out, req.Role)
	if req.Role == RoleClient {
		pair = layout.ClientPair(out, req.CommonName)
	}
	if fsutil.Exists(pair.Cert) && !o.Force {
		what := "a certificate"
		if certs, err := LoadCerts(pair.Cert); err == nil {
			what = fmt.Sprintf("the certificate of %q (expires %s)", certs[0].Subject.CommonName, certs[0].NotAfter.UTC().Format(time.DateOnly))
		}
		return nil, fmt.Errorf("%s already holds %s; to replace it add --force (the old files are kept as .bak-*), to extend it use `etcdkit pki renew`, or write elsewhere with --out DIR", pair.Cert, what)
	}
	leaf, err := ca.Issue(req)
	if err != nil {
		return nil, err
	}
	res := &Issued{Leaf: leaf, Pair: pair, Layout: layout}
	var c changes
	stamp := Stamp(clock(o.Now)())
	for _, f := range []string{pair.Cert, pair.Key} {
		b, err := c.backup(f, stamp)
		if err != nil {
			return nil, err
		}
		if b != "" {
			res.Backups = append(res.Backups, b)
		}
	}
	if leaf.Key != nil {
		keyPEM, err := EncodeKey(leaf.Key)
		if err != nil {
			return nil, err
		}
		c.write(pair.Key, keyPEM, fsutil.PrivateFile)
	}
	c.write(pair.Cert, EncodeCert(append([]*x509.Certificate{leaf.Cert}, leaf.Chain...)...), fsutil.PublicFile)
	if trust := layout.CA(out).Cert; out != o.CADir && !fsutil.Exists(trust) {
		c.write(trust, EncodeCert(ca.Bundle...), fsutil.PublicFile)
		res.TrustCopied = trust
	}
	return res, c.apply()
}
