package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// KeyAlgorithm names a private key type the way the cluster spec and the
// --key-algorithm flag spell it.
type KeyAlgorithm string

const (
	ECDSAP256 KeyAlgorithm = "ecdsa-p256"
	ECDSAP384 KeyAlgorithm = "ecdsa-p384"
	RSA2048   KeyAlgorithm = "rsa-2048"
	RSA3072   KeyAlgorithm = "rsa-3072"
	RSA4096   KeyAlgorithm = "rsa-4096"
	Ed25519   KeyAlgorithm = "ed25519"

	// DefaultKeyAlgorithm is ECDSA P-256: fast to generate and to handshake,
	// and accepted by every etcd, Kubernetes and cfssl version.
	DefaultKeyAlgorithm = ECDSAP256
)

// KeyAlgorithms lists the accepted values in the order help text shows them.
var KeyAlgorithms = []KeyAlgorithm{ECDSAP256, ECDSAP384, RSA2048, RSA3072, RSA4096, Ed25519}

// ParseKeyAlgorithm validates a user-supplied algorithm name.
func ParseKeyAlgorithm(s string) (KeyAlgorithm, error) {
	if s == "" {
		return DefaultKeyAlgorithm, nil
	}
	for _, a := range KeyAlgorithms {
		if strings.EqualFold(s, string(a)) {
			return a, nil
		}
	}
	names := make([]string, len(KeyAlgorithms))
	for i, a := range KeyAlgorithms {
		names[i] = string(a)
	}
	return "", fmt.Errorf("invalid key algorithm %q; options are %s", s, strings.Join(names, ", "))
}

// GenerateKey creates a private key of the given algorithm.
func GenerateKey(alg KeyAlgorithm) (crypto.Signer, error) {
	switch alg {
	case "", ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	_, err := ParseKeyAlgorithm(string(alg))
	return nil, err
}

// AlgorithmOf names the algorithm of an existing public key, so a renewal
// or a rotation keeps what the operator chose.
func AlgorithmOf(pub crypto.PublicKey) KeyAlgorithm {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P384() {
			return ECDSAP384
		}
		return ECDSAP256
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 3072:
			return RSA3072
		case 4096:
			return RSA4096
		}
		return RSA2048
	case ed25519.PublicKey:
		return Ed25519
	}
	return DefaultKeyAlgorithm
}

// EncodeKey PEM-encodes a private key in the form cfssl and kubeadm write:
// SEC1 "EC PRIVATE KEY" for ECDSA, PKCS#1 "RSA PRIVATE KEY" for RSA and
// PKCS#8 "PRIVATE KEY" where no older form exists (Ed25519).
func EncodeKey(key crypto.Signer) ([]byte, error) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
	case *rsa.PrivateKey:
		return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), nil
	default:
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
	}
}

// ParseKey reads the first private key in PEM data, whatever its form.
func ParseKey(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM private key found")
		}
		var (
			k   any
			err error
		)
		switch block.Type {
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "PRIVATE KEY", "Ed25519 PRIVATE KEY":
			// cfssl writes Ed25519 keys as PKCS#8 under its own label.
			k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PARAMETERS":
			continue
		default:
			if strings.Contains(block.Type, "ENCRYPTED") {
				return nil, errors.New("encrypted private keys are not supported; decrypt it with openssl first")
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", block.Type, err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T", k)
		}
		return s, nil
	}
}

// PublicKeyPin is the kubeadm-style pin of a public key: "sha256:" and the
// hex SHA-256 of its DER SubjectPublicKeyInfo. Join tokens carry it.
func PublicKeyPin(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// KeyMatches reports whether a private key belongs to a public key.
func KeyMatches(key crypto.Signer, pub crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := key.Public().(equaler)
	return ok && e.Equal(pub)
}
