package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/etcdkit/etcdkit/internal/fsutil"
)

// CA rotation without a restart.
//
// etcd reads a member's certificate and key on every TLS handshake (its
// tls.Config uses GetCertificate and GetClientCertificate), but it reads
// the trusted CA file only once, when the member starts: the pools that
// verify clients, peers and the peers a member dials are built then.
// kube-apiserver's etcd client does the same with --etcd-cafile. A naive
// rotation (trust old+new, re-issue, drop old) would therefore need every
// member restarted between distributing the new CA and re-issuing leaves,
// or members still trusting only the old CA reject every new leaf.
//
// etcdkit avoids that restart: the new CA is cross-signed by the old one,
// and every leaf the new CA issues carries that cross-signed certificate
// after it. A member started before the rotation verifies new leaves
// through it to the old CA; a member started later trusts the new CA
// directly. So:
//
//	trust    new CA and its cross-signed certificate created; every trust
//	         file becomes old+new. No restart.
//	reissue  every leaf re-issued by the new CA (same subject, SANs, usages
//	         and key) with the cross-signed certificate after it; the new CA
//	         becomes the signing CA. Members serve the new leaves on their
//	         next handshake. No restart.
//	finish   the old CA leaves every trust file. No restart: a member keeps
//	         the pool it started with until its next restart, and the
//	         cross-signed certificate keeps its handshakes working until the
//	         old CA expires.
//	finish --drop-cross-signed
//	         once every member trusts the new CA (probed live: it accepts a
//	         client certificate from the new CA alone), leaves lose the
//	         cross-signed certificate. Reaching this state is the one step
//	         that needs each member started after `trust`: a rolling
//	         restart, one member at a time, whenever convenient before the
//	         old CA expires.

// RotationPhase is the last completed phase of a CA rotation.
type RotationPhase string

const (
	PhaseNone    RotationPhase = ""
	PhaseTrust   RotationPhase = "trust"
	PhaseReissue RotationPhase = "reissue"
	PhaseFinish  RotationPhase = "finish"
)

// RotationState is kept in the CA directory between phases.
type RotationState struct {
	Phase RotationPhase `json:"phase"`
	// OldCA and NewCA are SHA-256 fingerprints of the CA certificates.
	OldCA              string          `json:"oldCA"`
	NewCA              string          `json:"newCA"`
	Started            time.Time       `json:"started"`
	CrossSignedDropped bool            `json:"crossSignedDropped,omitempty"`
	History            []PhaseDoneTime `json:"history"`
}

// PhaseDoneTime records when a phase was done.
type PhaseDoneTime struct {
	Phase RotationPhase `json:"phase"`
	At    time.Time     `json:"at"`
}

func rotationStateFile(caDir string) string { return filepath.Join(caDir, "ca-rotation.json") }

// LoadRotation reads the rotation state of a CA directory; nil when no
// rotation was ever started there.
func LoadRotation(caDir string) (*RotationState, error) {
	data, err := os.ReadFile(rotationStateFile(caDir))
	if IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s RotationState
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", rotationStateFile(caDir), err)
	}
	return &s, nil
}

func (s *RotationState) done(p RotationPhase, at time.Time) {
	s.Phase = p
	s.History = append(s.History, PhaseDoneTime{Phase: p, At: at.UTC()})
}

func (s *RotationState) encode() []byte {
	b, _ := json.MarshalIndent(s, "", "  ")
	return append(b, '\n')
}

// Fingerprint is the SHA-256 of a certificate, as hex.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// RotateOptions configures the rotation phases.
type RotateOptions struct {
	// CommonName, KeyAlgorithm and Validity describe the new CA (trust);
	// empty means the old CA's common name with the date, its key
	// algorithm and ten years.
	CommonName   string
	KeyAlgorithm KeyAlgorithm
	Validity     time.Duration
	// DropCrossSigned (finish) removes the cross-signed certificate from
	// every leaf, which requires every member to trust the new CA.
	DropCrossSigned bool
	// Probe asks the members which CA they trust; nil skips the probe and
	// counts every member as not trusting the new CA.
	Probe func(inv *Inventory, newCA *CA) []MemberProbe
	Now   func() time.Time
}

// RotateResult says what a phase did.
type RotateResult struct {
	Phase   RotationPhase
	Changed []string
	Backups []string
	Notes   []string
}

// errPhase makes the error of a phase run out of order.
func errPhase(inv *Inventory, want string, s *RotationState) error {
	have := "no rotation has started"
	if s != nil && s.Phase != PhaseNone {
		have = fmt.Sprintf("the last phase done is %q", s.Phase)
	}
	return fmt.Errorf("%s: %s; see `%s`", want, have, inv.command("pki", "rotate-ca", "status"))
}

// RotateTrust is phase 1: create the new CA and make every trust file hold
// old and new.
func RotateTrust(inv *Inventory, o RotateOptions) (*RotateResult, error) {
	now := clock(o.Now)()
	s, err := LoadRotation(inv.CADir)
	if err != nil {
		return nil, err
	}
	if s != nil && s.Phase != PhaseFinish {
		return nil, errPhase(inv, "a CA rotation is already under way", s)
	}
	old, err := OpenCA(inv.Layout, inv.CADir)
	if err != nil {
		return nil, err
	}
	if now.After(old.Cert.NotAfter) {
		return nil, fmt.Errorf("the CA %q expired on %s, so no member accepts certificates from it any more and there is nothing to rotate without an outage; create a new CA in a new directory and re-issue every certificate", old.Cert.Subject.CommonName, old.Cert.NotAfter.UTC().Format(time.DateOnly))
	}
	if old.Cert.MaxPathLenZero {
		return nil, fmt.Errorf("the CA %q forbids intermediate CAs (path length 0), so it cannot cross-sign the new CA and members would need a restart before new leaves; this rotation needs a CA without a path length limit", old.Cert.Subject.CommonName)
	}
	cn := o.CommonName
	if cn == "" {
		cn = strings.TrimSpace(strings.SplitN(old.Cert.Subject.CommonName, " (", 2)[0]) + " (" + now.UTC().Format(time.DateOnly) + ")"
	}
	alg := o.KeyAlgorithm
	if alg == "" {
		alg = AlgorithmOf(old.Cert.PublicKey)
	}
	next, err := NewCA(CARequest{CommonName: cn, Organization: old.Cert.Subject.Organization, KeyAlgorithm: alg, Validity: o.Validity, Now: o.Now})
	if err != nil {
		return nil, err
	}
	cross, err := CrossSign(old, next.Cert, now)
	if err != nil {
		return nil, err
	}
	keyPEM, err := EncodeKey(next.Key)
	if err != nil {
		return nil, err
	}
	var c changes
	res := &RotateResult{Phase: PhaseTrust}
	c.write(inv.Layout.NextCAKey(inv.CADir), keyPEM, fsutil.PrivateFile)
	c.write(inv.Layout.CrossCert(inv.CADir), EncodeCert(cross), fsutil.PublicFile)
	for _, t := range inv.AllTrust() {
		certs, err := LoadCerts(t.Pair.Cert)
		if err != nil {
			return nil, fmt.Errorf("trust file %s: %w", t.Pair.Cert, err)
		}
		c.write(t.Pair.Cert, EncodeCert(append(certs, next.Cert)...), fsutil.PublicFile)
		res.Changed = append(res.Changed, t.Pair.Cert)
	}
	st := &RotationState{OldCA: Fingerprint(old.Cert), NewCA: Fingerprint(next.Cert), Started: now.UTC()}
	st.done(PhaseTrust, now)
	c.write(rotationStateFile(inv.CADir), st.encode(), fsutil.PublicFile)
	res.Notes = append(res.Notes,
		"members read their trusted CA file only when they start: running members keep trusting only the old CA until their next restart, which this rotation does not need (new leaves carry a certificate cross-signed by the old CA)")
	return res, c.apply()
}

// CrossSign certifies the new CA's key and name with the old CA, so a
// verifier that trusts only the old CA accepts what the new CA signs. It
// expires no later than either CA.
func CrossSign(old *CA, next *x509.Certificate, now time.Time) (*x509.Certificate, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	notAfter := next.NotAfter
	if old.Cert.NotAfter.Before(notAfter) {
		notAfter = old.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               next.Subject,
		RawSubject:            next.RawSubject,
		SubjectKeyId:          next.SubjectKeyId,
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              next.KeyUsage,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, old.Cert, next.PublicKey, old.Key)
	if err != nil {
		return nil, fmt.Errorf("cross-sign the new CA: %w", err)
	}
	return x509.ParseCertificate(der)
}

// rotationCAs loads the old and new CA of a rotation from the CA
// directory, whichever of them currently signs.
type rotationCAs struct {
	state     *RotationState
	old, next *x509.Certificate
	oldKey    []byte // PEM, when still present
	nextCA    *CA
	cross     *x509.Certificate
}

func loadRotationCAs(inv *Inventory, s *RotationState) (*rotationCAs, error) {
	r := &rotationCAs{state: s}
	p := inv.CA()
	certs, err := LoadCerts(p.Cert)
	if err != nil {
		return nil, err
	}
	for _, c := range certs {
		switch Fingerprint(c) {
		case s.OldCA:
			r.old = c
		case s.NewCA:
			r.next = c
		}
	}
	if r.next == nil {
		return nil, fmt.Errorf("%s does not hold the new CA of the rotation (%s…); it was changed by hand, restore it from the .bak-* copies", p.Cert, s.NewCA[:16])
	}
	keyFile := p.Key
	if s.Phase == PhaseTrust {
		keyFile = inv.Layout.NextCAKey(inv.CADir)
	}
	key, err := LoadKey(keyFile)
	if err != nil {
		return nil, fmt.Errorf("the new CA's key: %w", err)
	}
	if !KeyMatches(key, r.next.PublicKey) {
		return nil, fmt.Errorf("%s does not belong to the new CA %q", keyFile, r.next.Subject.CommonName)
	}
	if s.Phase == PhaseTrust {
		r.oldKey, _ = os.ReadFile(p.Key)
	}
	r.nextCA = &CA{Cert: r.next, Key: key, Bundle: certs}
	if cc, err := LoadCerts(inv.Layout.CrossCert(inv.CADir)); err == nil && KeyMatches(key, cc[0].PublicKey) {
		r.cross = cc[0]
		r.nextCA.Chain = []*x509.Certificate{cc[0]}
	}
	return r, nil
}

// RotateReissue is phase 2: the new CA becomes the signing CA and re-issues
// every leaf, each followed by the cross-signed certificate.
func RotateReissue(inv *Inventory, o RotateOptions) (*RotateResult, error) {
	now := clock(o.Now)()
	s, err := LoadRotation(inv.CADir)
	if err != nil {
		return nil, err
	}
	if s == nil || (s.Phase != PhaseTrust && s.Phase != PhaseReissue) {
		return nil, errPhase(inv, "reissue comes after trust", s)
	}
	r, err := loadRotationCAs(inv, s)
	if err != nil {
		return nil, err
	}
	r.nextCA.Now = o.Now
	stamp := Stamp(now)
	res := &RotateResult{Phase: PhaseReissue}
	var c changes
	for i := range inv.Leaves {
		it := &inv.Leaves[i]
		if !fsutil.Exists(it.Pair.Cert) {
			continue
		}
		leaf, err := renewLeaf(r.nextCA, it, 0, false)
		if err != nil {
			return nil, fmt.Errorf("%s (%s): %w", it.ID, it.Pair.Cert, err)
		}
		b, err := c.backup(it.Pair.Cert, stamp)
		if err != nil {
			return nil, err
		}
		c.write(it.Pair.Cert, EncodeCert(append([]*x509.Certificate{leaf.Cert}, leaf.Chain...)...), fsutil.PublicFile)
		res.Changed = append(res.Changed, it.Pair.Cert)
		res.Backups = append(res.Backups, b)
	}
	keyPEM, err := EncodeKey(r.nextCA.Key)
	if err != nil {
		return nil, err
	}
	if s.Phase == PhaseTrust {
		// The old key stays beside the CA as a backup until the operator
		// deletes it, so the rotation can be undone by hand until finish.
		p := inv.CA()
		if r.oldKey != nil {
			c.write(p.Key+".bak-"+stamp, r.oldKey, fsutil.PrivateFile)
			res.Backups = append(res.Backups, p.Key+".bak-"+stamp)
		}
		c.write(p.Key, keyPEM, fsutil.PrivateFile)
		c.remove(inv.Layout.NextCAKey(inv.CADir))
		// Copies of the CA key on member hosts (kubeadm) follow.
		for _, t := range inv.Trust {
			if k, err := LoadKey(t.Pair.Key); err == nil && r.old != nil && KeyMatches(k, r.old.PublicKey) {
				c.write(t.Pair.Key, keyPEM, fsutil.PrivateFile)
				res.Changed = append(res.Changed, t.Pair.Key)
			}
		}
	}
	// The signing CA goes first in the CA file: kubeadm and LoadCA read the
	// first certificate that matches the key.
	for _, t := range inv.AllTrust() {
		certs, err := LoadCerts(t.Pair.Cert)
		if err != nil {
			return nil, fmt.Errorf("trust file %s: %w", t.Pair.Cert, err)
		}
		c.write(t.Pair.Cert, EncodeCert(signerFirst(certs, r.next)...), fsutil.PublicFile)
	}
	s.done(PhaseReissue, now)
	c.write(rotationStateFile(inv.CADir), s.encode(), fsutil.PublicFile)
	res.Notes = append(res.Notes, "members read their certificate files on every TLS handshake: they serve and present the new leaves from their next connection on, without a restart")
	return res, c.apply()
}

func signerFirst(certs []*x509.Certificate, signer *x509.Certificate) []*x509.Certificate {
	out := []*x509.Certificate{signer}
	for _, c := range certs {
		if !c.Equal(signer) {
			out = append(out, c)
		}
	}
	return out
}

// RotateFinish is phase 3: the old CA leaves every trust file. With
// DropCrossSigned, and only when every member already trusts the new CA,
// the cross-signed certificate leaves every leaf too.
func RotateFinish(inv *Inventory, o RotateOptions) (*RotateResult, error) {
	now := clock(o.Now)()
	s, err := LoadRotation(inv.CADir)
	if err != nil {
		return nil, err
	}
	if s == nil || (s.Phase != PhaseReissue && s.Phase != PhaseFinish) {
		return nil, errPhase(inv, "finish comes after reissue", s)
	}
	r, err := loadRotationCAs(inv, s)
	if err != nil {
		return nil, err
	}
	var stale []string
	for _, it := range inv.Leaves {
		certs, err := LoadCerts(it.Pair.Cert)
		if IsNotExist(err) {
			continue
		}
		if err != nil || certs[0].CheckSignatureFrom(r.next) != nil {
			stale = append(stale, fmt.Sprintf("%s (%s)", it.ID, it.Pair.Cert))
		}
	}
	if len(stale) > 0 {
		return nil, fmt.Errorf("not every certificate is issued by the new CA yet: %s; run `%s` again first (dropping the old CA now would break them)", strings.Join(stale, ", "), inv.command("pki", "rotate-ca", "reissue"))
	}
	res := &RotateResult{Phase: PhaseFinish}
	stamp := Stamp(now)
	var c changes
	if o.DropCrossSigned {
		var probes []MemberProbe
		if o.Probe != nil {
			probes = o.Probe(inv, r.nextCA)
		}
		if waiting := notTrusting(inv, probes); len(waiting) > 0 {
			return nil, fmt.Errorf("cannot drop the cross-signed certificate yet: %s still trust only the old CA (etcd reads its trusted CA file only at start, and these members started before `rotate-ca trust`); restart them one at a time, waiting for `etcdkit health` between restarts, then run this again", strings.Join(waiting, "; "))
		}
		for _, it := range inv.Leaves {
			certs, err := LoadCerts(it.Pair.Cert)
			if err != nil || len(certs) == 1 {
				continue
			}
			c.write(it.Pair.Cert, EncodeCert(certs[0]), fsutil.PublicFile)
			res.Changed = append(res.Changed, it.Pair.Cert)
		}
		c.remove(inv.Layout.CrossCert(inv.CADir))
		s.CrossSignedDropped = true
		res.Notes = append(res.Notes, "clients started before `rotate-ca trust` (kube-apiserver reads --etcd-cafile at start) must have been restarted too: they verify the members' new certificates only through the cross-signed certificate")
	}
	if s.Phase == PhaseReissue {
		for _, t := range inv.AllTrust() {
			certs, err := LoadCerts(t.Pair.Cert)
			if err != nil {
				return nil, fmt.Errorf("trust file %s: %w", t.Pair.Cert, err)
			}
			kept := slices.DeleteFunc(slices.Clone(certs), func(c *x509.Certificate) bool { return r.old != nil && c.Equal(r.old) })
			if len(kept) == len(certs) {
				continue
			}
			if t.ID == "ca" {
				b, err := c.backup(t.Pair.Cert, stamp)
				if err != nil {
					return nil, err
				}
				res.Backups = append(res.Backups, b)
			}
			c.write(t.Pair.Cert, EncodeCert(kept...), fsutil.PublicFile)
			res.Changed = append(res.Changed, t.Pair.Cert)
		}
		res.Notes = append(res.Notes, "a running member keeps trusting the old CA until its next restart; its peers' new certificates verify through the cross-signed certificate until the old CA expires")
	}
	if c.empty() && s.Phase == PhaseFinish {
		return res, nil
	}
	s.done(PhaseFinish, now)
	c.write(rotationStateFile(inv.CADir), s.encode(), fsutil.PublicFile)
	return res, c.apply()
}

// RotateAbort undoes phase 1, before any leaf was re-issued.
func RotateAbort(inv *Inventory, o RotateOptions) (*RotateResult, error) {
	s, err := LoadRotation(inv.CADir)
	if err != nil {
		return nil, err
	}
	if s == nil || s.Phase != PhaseTrust {
		return nil, errPhase(inv, "abort only undoes trust, before reissue", s)
	}
	res := &RotateResult{Phase: PhaseNone}
	var c changes
	for _, t := range inv.AllTrust() {
		certs, err := LoadCerts(t.Pair.Cert)
		if err != nil {
			return nil, fmt.Errorf("trust file %s: %w", t.Pair.Cert, err)
		}
		kept := slices.DeleteFunc(slices.Clone(certs), func(c *x509.Certificate) bool { return Fingerprint(c) == s.NewCA })
		if len(kept) != len(certs) {
			c.write(t.Pair.Cert, EncodeCert(kept...), fsutil.PublicFile)
			res.Changed = append(res.Changed, t.Pair.Cert)
		}
	}
	c.remove(inv.Layout.NextCAKey(inv.CADir))
	c.remove(inv.Layout.CrossCert(inv.CADir))
	c.remove(rotationStateFile(inv.CADir))
	return res, c.apply()
}

// notTrusting lists members whose client or peer listener did not accept
// the new CA, or that could not be asked.
func notTrusting(inv *Inventory, probes []MemberProbe) []string {
	var out []string
	for _, m := range inv.Members {
		var bad []string
		seen := false
		for _, p := range probes {
			if p.Name != m.Name {
				continue
			}
			seen = true
			switch {
			case p.Error != "":
				bad = append(bad, fmt.Sprintf("%s %s: %s", p.Listener, p.URL, p.Error))
			case !p.TrustsNewCA:
				bad = append(bad, fmt.Sprintf("%s %s", p.Listener, p.URL))
			}
		}
		if !seen {
			bad = append(bad, "not probed")
		}
		if len(bad) > 0 {
			out = append(out, fmt.Sprintf("member %q (%s)", m.Name, strings.Join(bad, ", ")))
		}
	}
	if len(inv.Members) == 0 {
		out = append(out, fmt.Sprintf("no member URLs are known from %s, so no member can be asked; give --spec or --config", inv.Source))
	}
	return out
}
