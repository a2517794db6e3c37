package pki

import (
	"crypto/x509"
	"fmt"
	"time"

	"github.com/etcdkit/etcdkit/internal/fsutil"
)

// RenewOptions configures Renew.
type RenewOptions struct {
	// Names pick leaves (see Inventory.Select); All picks every leaf that
	// exists.
	Names []string
	All   bool
	// Validity of the new certificates; zero keeps each one's validity.
	Validity time.Duration
	// NewKey replaces each key too. By default the key is kept, as
	// `kubeadm certs renew` does: a member reads the certificate and the
	// key in two reads per handshake, and a key that changed between them
	// would fail that handshake.
	NewKey bool
	Now    func() time.Time
}

// Renewed is one renewed certificate.
type Renewed struct {
	ID          string    `json:"id"`
	File        string    `json:"file"`
	OldNotAfter time.Time `json:"oldNotAfter"`
	NotAfter    time.Time `json:"notAfter"`
	Backups     []string  `json:"backups"`
}

// Renew re-issues leaves with the same subject, hosts and usages and a new
// validity, keeping the old files as *.bak-STAMP. Every file is written or
// none is. A running member serves the renewed certificate from its next
// TLS handshake: etcd reads certificate files per handshake.
func Renew(inv *Inventory, o RenewOptions) ([]Renewed, error) {
	var items []*Item
	switch {
	case o.All && len(o.Names) > 0:
		return nil, fmt.Errorf("give certificate names or --all, not both")
	case o.All:
		for i := range inv.Leaves {
			if fsutil.Exists(inv.Leaves[i].Pair.Cert) {
				items = append(items, &inv.Leaves[i])
			}
		}
	case len(o.Names) == 0:
		return nil, fmt.Errorf("name the certificates to renew (%v), or give --all", inv.ids())
	default:
		var err error
		if items, err = inv.Select(o.Names); err != nil {
			return nil, err
		}
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%s has no certificates to renew", inv.Source)
	}
	ca, err := OpenCA(inv.Layout, inv.CADir)
	if err != nil {
		return nil, err
	}
	ca.Now = o.Now
	stamp := Stamp(clock(o.Now)())
	var c changes
	var out []Renewed
	for _, it := range items {
		if !fsutil.Exists(it.Pair.Cert) {
			return nil, fmt.Errorf("%s: %s does not exist; create it with `etcdkit pki issue`", it.ID, it.Pair.Cert)
		}
		old, err := LoadCerts(it.Pair.Cert)
		if err != nil {
			return nil, err
		}
		leaf, err := renewLeaf(ca, it, o.Validity, o.NewKey)
		if err != nil {
			return nil, fmt.Errorf("%s (%s): %w", it.ID, it.Pair.Cert, err)
		}
		r := Renewed{ID: it.ID, File: it.Pair.Cert, OldNotAfter: old[0].NotAfter, NotAfter: leaf.Cert.NotAfter}
		files := []string{it.Pair.Cert}
		if leaf.Key != nil {
			files = append(files, it.Pair.Key)
			keyPEM, err := EncodeKey(leaf.Key)
			if err != nil {
				return nil, err
			}
			c.write(it.Pair.Key, keyPEM, fsutil.PrivateFile)
		}
		for _, f := range files {
			b, err := c.backup(f, stamp)
			if err != nil {
				return nil, err
			}
			r.Backups = append(r.Backups, b)
		}
		c.write(it.Pair.Cert, EncodeCert(append([]*x509.Certificate{leaf.Cert}, leaf.Chain...)...), fsutil.PublicFile)
		out = append(out, r)
	}
	return out, c.apply()
}

// renewLeaf issues a copy of an item's certificate from ca: same subject
// bytes, hosts and usages, the same key unless newKey, and the old validity
// unless one is given.
func renewLeaf(ca *CA, it *Item, validity time.Duration, newKey bool) (*Leaf, error) {
	old, err := LoadLeaf(it.Pair)
	if err != nil {
		return nil, err
	}
	c := old.Cert
	if validity == 0 {
		validity = c.NotAfter.Sub(c.NotBefore)
	}
	name := c.Subject.CommonName
	if name == "" {
		name = it.ID
	}
	req := LeafRequest{
		Role:       it.Role,
		CommonName: name,
		RawSubject: c.RawSubject,
		Hosts:      HostsOf(c),
		Validity:   validity,
		Profile:    &Profile{KeyUsage: c.KeyUsage, ExtKeyUsage: c.ExtKeyUsage, Exact: true},
	}
	if newKey {
		req.KeyAlgorithm = AlgorithmOf(c.PublicKey)
	} else {
		req.PublicKey = c.PublicKey
	}
	return ca.Issue(req)
}
