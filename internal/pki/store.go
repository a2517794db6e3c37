package pki

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/etcdkit/etcdkit/internal/fsutil"
)

// ErrCAExists is returned when creating a CA where one already is.
var ErrCAExists = errors.New("a CA already exists")

// WriteCA writes the CA certificate (the whole trust bundle) and key. It
// refuses to replace an existing CA: a new CA would orphan every certificate
// the old one signed.
func WriteCA(p Pair, ca *CA) error {
	for _, f := range []string{p.Cert, p.Key} {
		if fsutil.Exists(f) {
			return fmt.Errorf("%w at %s; use `etcdkit pki rotate-ca` to replace it", ErrCAExists, f)
		}
	}
	keyPEM, err := EncodeKey(ca.Key)
	if err != nil {
		return err
	}
	bundle := ca.Bundle
	if len(bundle) == 0 {
		bundle = []*x509.Certificate{ca.Cert}
	}
	var txn fsutil.Txn
	defer txn.Abort()
	if err := txn.Add(p.Key, keyPEM, fsutil.PrivateFile); err != nil {
		return err
	}
	if err := txn.Add(p.Cert, EncodeCert(bundle...), fsutil.PublicFile); err != nil {
		return err
	}
	return txn.Commit()
}

// WriteLeaf writes a leaf certificate (followed by its chain) and, when it
// has one, its key, both or neither.
func WriteLeaf(p Pair, leaf *Leaf) error {
	var txn fsutil.Txn
	defer txn.Abort()
	if leaf.Key != nil {
		keyPEM, err := EncodeKey(leaf.Key)
		if err != nil {
			return err
		}
		if err := txn.Add(p.Key, keyPEM, fsutil.PrivateFile); err != nil {
			return err
		}
	}
	if err := txn.Add(p.Cert, EncodeCert(append([]*x509.Certificate{leaf.Cert}, leaf.Chain...)...), fsutil.PublicFile); err != nil {
		return err
	}
	return txn.Commit()
}

// WriteBundle writes a trust bundle (CA certificates only) for members that
// must trust the CA but never sign.
func WriteBundle(path string, certs ...*x509.Certificate) error {
	return fsutil.WriteFile(path, EncodeCert(certs...), fsutil.PublicFile)
}

// LoadCA reads a CA that can sign. The first certificate in the file whose
// public key matches the key is the signer; every certificate in the file is
// in the bundle. While a CA rotation's cross-signed certificate lies beside
// the CA (and is valid), it is the CA's Chain, so every leaf issued from
// here, by any command, is trusted by members still trusting the old CA.
func LoadCA(p Pair) (*CA, error) {
	certs, err := LoadCerts(p.Cert)
	if err != nil {
		return nil, err
	}
	key, err := LoadKey(p.Key)
	if err != nil {
		return nil, err
	}
	for _, c := range certs {
		if KeyMatches(key, c.PublicKey) {
			if !c.IsCA {
				return nil, fmt.Errorf("%s: certificate %q is not a CA (basic constraints CA:FALSE)", p.Cert, c.Subject.CommonName)
			}
			return &CA{Cert: c, Key: key, Bundle: certs, Chain: crossChain(p, key)}, nil
		}
	}
	return nil, fmt.Errorf("%s does not match any certificate in %s", p.Key, p.Cert)
}

// crossChain is the cross-signed certificate of the CA whose key is key,
// when one lies in the CA's directory and is still valid.
func crossChain(p Pair, key crypto.Signer) []*x509.Certificate {
	layout := LayoutCfssl
	if filepath.Ext(p.Cert) == ".crt" {
		layout = LayoutKubeadm
	}
	certs, err := LoadCerts(layout.CrossCert(filepath.Dir(p.Cert)))
	if err != nil || !KeyMatches(key, certs[0].PublicKey) || time.Now().After(certs[0].NotAfter) {
		return nil
	}
	return certs[:1]
}

// LoadCerts reads every certificate of a PEM file.
func LoadCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	certs, err := ParseCerts(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return certs, nil
}

// LoadLeaf reads a certificate and its key and checks they belong together.
func LoadLeaf(p Pair) (*Leaf, error) {
	certs, err := LoadCerts(p.Cert)
	if err != nil {
		return nil, err
	}
	key, err := LoadKey(p.Key)
	if err != nil {
		return nil, err
	}
	if !KeyMatches(key, certs[0].PublicKey) {
		return nil, fmt.Errorf("%s does not match the certificate in %s", p.Key, p.Cert)
	}
	return &Leaf{Cert: certs[0], Key: key, Chain: certs[1:]}, nil
}

// LoadKey reads a private key file.
func LoadKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// KeyModeProblem says what is wrong with a private key file's permissions,
// with the chmod that fixes it, or "" when the mode is safe.
func KeyModeProblem(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Sprintf("private key %s is readable by others (mode %#o); run `chmod 600 %s`", path, fi.Mode().Perm(), path), nil
	}
	return "", nil
}

// IsNotExist reports a missing file in errors from this package.
func IsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
