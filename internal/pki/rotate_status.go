package pki

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"
)

// CAInfo describes one CA certificate.
type CAInfo struct {
	Subject     string    `json:"subject"`
	Fingerprint string    `json:"fingerprint"`
	NotAfter    time.Time `json:"notAfter"`
}

func caInfo(c *x509.Certificate) *CAInfo {
	if c == nil {
		return nil
	}
	return &CAInfo{Subject: c.Subject.CommonName, Fingerprint: Fingerprint(c), NotAfter: c.NotAfter}
}

// TrustStatus is which of the rotation's CAs a trust file holds.
type TrustStatus struct {
	ID    string   `json:"id"`
	File  string   `json:"file"`
	Holds []string `json:"holds"`
}

// LeafRotation is which CA issued a leaf, and whether the cross-signed
// certificate follows it.
type LeafRotation struct {
	ID          string `json:"id"`
	File        string `json:"file"`
	IssuedBy    string `json:"issuedBy"`
	CrossSigned bool   `json:"crossSigned"`
}

// RotationStatus is the status view of a CA rotation: the phase done, the
// next command, every file's state and, live, what each member serves and
// trusts, with what needs a restart.
type RotationStatus struct {
	CADir string        `json:"caDir"`
	Phase RotationPhase `json:"phase"`
	// Complete: the last rotation finished and dropped the cross-signed
	// certificate; nothing is under way.
	Complete bool      `json:"complete"`
	Started  time.Time `json:"started,omitzero"`
	OldCA    *CAInfo   `json:"oldCA,omitempty"`
	NewCA    *CAInfo   `json:"newCA,omitempty"`
	// CrossSignedUntil is when the cross-signed certificate expires, the
	// deadline for restarting members that still trust only the old CA.
	CrossSignedUntil time.Time      `json:"crossSignedUntil,omitzero"`
	Next             string         `json:"next"`
	Trust            []TrustStatus  `json:"trust"`
	Leaves           []LeafRotation `json:"leaves"`
	Members          []MemberProbe  `json:"members"`
	// Restart says what needs a member restart, if anything, and why.
	Restart []string `json:"restart"`
}

// PhaseTitle describes a completed phase.
func PhaseTitle(p RotationPhase, dropped bool) string {
	switch p {
	case PhaseTrust:
		return "phase 1 of 3 done: new CA created and trusted next to the old one"
	case PhaseReissue:
		return "phase 2 of 3 done: every leaf re-issued by the new CA"
	case PhaseFinish:
		if dropped {
			return "rotation complete: old CA and cross-signed certificate removed"
		}
		return "phase 3 of 3 done: old CA removed from every trust file (leaves still carry the cross-signed certificate)"
	}
	return "no CA rotation under way"
}

// Status builds the status view. With probe, every member is asked what it
// serves and whether it trusts the new CA.
func Status(ctx context.Context, inv *Inventory, probe bool, timeout time.Duration) (*RotationStatus, error) {
	s, err := LoadRotation(inv.CADir)
	if err != nil {
		return nil, err
	}
	st := &RotationStatus{CADir: inv.CADir, Trust: []TrustStatus{}, Leaves: []LeafRotation{}, Members: []MemberProbe{}, Restart: []string{}}
	if s == nil || (s.Phase == PhaseFinish && s.CrossSignedDropped) {
		cur, err := LoadCerts(inv.CA().Cert)
		if err != nil {
			return nil, err
		}
		st.OldCA = caInfo(cur[0])
		if s != nil {
			st.Phase, st.Started, st.Complete = s.Phase, s.Started, true
		}
		st.Next = inv.command("pki", "rotate-ca", "trust")
		st.Restart = append(st.Restart, "no member restart is needed for trust, reissue or finish")
		return st, nil
	}
	st.Phase, st.Started = s.Phase, s.Started
	r, err := loadRotationCAs(inv, s)
	if err != nil {
		return nil, err
	}
	st.OldCA, st.NewCA = caInfo(r.old), caInfo(r.next)
	if st.OldCA == nil {
		st.OldCA = &CAInfo{Fingerprint: s.OldCA, Subject: "(removed)"}
	}
	if r.cross != nil {
		st.CrossSignedUntil = r.cross.NotAfter
	}
	which := func(c *x509.Certificate) string {
		switch {
		case r.next != nil && (c.Equal(r.next) || c.CheckSignatureFrom(r.next) == nil):
			return "new"
		case r.old != nil && (c.Equal(r.old) || c.CheckSignatureFrom(r.old) == nil):
			return "old"
		case Fingerprint(c) == s.OldCA:
			return "old"
		}
		return fmt.Sprintf("other (%q)", c.Issuer.CommonName)
	}
	for _, t := range inv.AllTrust() {
		ts := TrustStatus{ID: t.ID, File: t.Pair.Cert, Holds: []string{}}
		if certs, err := LoadCerts(t.Pair.Cert); err == nil {
			for _, c := range certs {
				ts.Holds = append(ts.Holds, which(c))
			}
		}
		st.Trust = append(st.Trust, ts)
	}
	for _, it := range inv.Leaves {
		certs, err := LoadCerts(it.Pair.Cert)
		if err != nil {
			continue
		}
		lr := LeafRotation{ID: it.ID, File: it.Pair.Cert, IssuedBy: which(certs[0])}
		lr.CrossSigned = len(certs) > 1 && r.cross != nil && certs[1].Equal(r.cross)
		st.Leaves = append(st.Leaves, lr)
	}
	if probe {
		st.Members = ProbeMembers(ctx, inv, r.nextCA, timeout)
	}
	st.Next, st.Restart = nextStep(inv, s, st)
	return st, nil
}

// nextStep names the next command and what needs a restart.
func nextStep(inv *Inventory, s *RotationState, st *RotationStatus) (string, []string) {
	restart := []string{}
	var waiting []string
	if len(st.Members) > 0 {
		waiting = notTrusting(inv, st.Members)
	}
	deadline := ""
	if !st.CrossSignedUntil.IsZero() {
		deadline = " before " + st.CrossSignedUntil.UTC().Format(time.DateOnly) + " (when the cross-signed certificate expires)"
	}
	switch s.Phase {
	case PhaseTrust, PhaseReissue:
		restart = append(restart, "no member restart is needed for the next phase: new leaves carry the cross-signed certificate, which members that trust only the old CA accept")
	case PhaseFinish:
		if len(waiting) > 0 && len(st.Members) > 0 {
			for _, w := range waiting {
				restart = append(restart, w+": restart it"+deadline+", one member at a time")
			}
		}
	}
	if len(st.Members) > 0 && len(waiting) == 0 {
		restart = append(restart, "every member trusts the new CA: none needs a restart")
	}
	switch s.Phase {
	case PhaseTrust:
		return inv.command("pki", "rotate-ca", "reissue"), restart
	case PhaseReissue:
		return inv.command("pki", "rotate-ca", "finish"), restart
	}
	next := inv.command("pki", "rotate-ca", "finish", "--drop-cross-signed")
	if len(st.Members) > 0 && len(waiting) > 0 {
		next = "restart the members listed, then " + next
	}
	return next, restart
}
