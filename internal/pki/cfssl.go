package pki

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// cfssl compatibility: etcdkit reads the two JSON files cfssl users keep,
// the signing config (ca-config.json: profiles with expiry and usages) and
// the certificate request (CSR JSON: CN, hosts, key, names), so existing
// files keep working and give the certificates cfssl would give.
//
// Where cfssl is lenient in a way that causes outages, etcdkit refuses:
// cfssl silently signs with the default profile when -profile names one
// that does not exist (a typo turns a peer certificate into whatever the
// default allows); etcdkit names the profiles it has. Settings that would
// change the certificate and that etcdkit does not implement (OCSP and CRL
// URLs, CA profiles, ...) are errors rather than silently dropped.

// CfsslProfile is one signing profile of a cfssl config, resolved.
type CfsslProfile struct {
	Name     string
	Profile  Profile
	Validity time.Duration
	Backdate time.Duration
}

// CfsslConfig is the signing section of cfssl's ca-config.json.
type CfsslConfig struct {
	File     string
	Default  *CfsslProfile
	Profiles map[string]*CfsslProfile
}

// cfssl's usage names (cfssl/config.KeyUsage and ExtKeyUsage).
var (
	cfsslKeyUsage = map[string]x509.KeyUsage{
		"signing":            x509.KeyUsageDigitalSignature,
		"digital signature":  x509.KeyUsageDigitalSignature,
		"content commitment": x509.KeyUsageContentCommitment,
		"key encipherment":   x509.KeyUsageKeyEncipherment,
		"key agreement":      x509.KeyUsageKeyAgreement,
		"data encipherment":  x509.KeyUsageDataEncipherment,
		"cert sign":          x509.KeyUsageCertSign,
		"crl sign":           x509.KeyUsageCRLSign,
		"encipher only":      x509.KeyUsageEncipherOnly,
		"decipher only":      x509.KeyUsageDecipherOnly,
	}
	cfsslExtKeyUsage = map[string]x509.ExtKeyUsage{
		"any":              x509.ExtKeyUsageAny,
		"server auth":      x509.ExtKeyUsageServerAuth,
		"client auth":      x509.ExtKeyUsageClientAuth,
		"code signing":     x509.ExtKeyUsageCodeSigning,
		"email protection": x509.ExtKeyUsageEmailProtection,
		"s/mime":           x509.ExtKeyUsageEmailProtection,
		"ipsec end system": x509.ExtKeyUsageIPSECEndSystem,
		"ipsec tunnel":     x509.ExtKeyUsageIPSECTunnel,
		"ipsec user":       x509.ExtKeyUsageIPSECUser,
		"timestamping":     x509.ExtKeyUsageTimeStamping,
		"ocsp signing":     x509.ExtKeyUsageOCSPSigning,
		"microsoft sgc":    x509.ExtKeyUsageMicrosoftServerGatedCrypto,
		"netscape sgc":     x509.ExtKeyUsageNetscapeServerGatedCrypto,
	}
)

// Keys of a cfssl signing profile: the ones etcdkit uses, the ones that
// only matter to a cfssl server (ignored), and the ones that would change
// the certificate but that etcdkit does not implement (refused when set).
var (
	cfsslProfileUsed        = []string{"usages", "expiry", "backdate"}
	cfsslProfileIgnored     = []string{"auth_key", "prev_auth_key", "remote", "auth_remote", "name_whitelist", "cert_store", "lint_error_level", "ignored_lints", "ignored_lint_sources"}
	cfsslProfileUnsupported = []string{"issuer_urls", "ocsp_url", "crl_url", "ca_constraint", "ocsp_no_check", "not_before", "not_after", "copy_extensions", "ct_log_servers", "allowed_extensions", "policies"}
)

// LoadCfsslConfig reads a cfssl signing config.
func LoadCfsslConfig(path string) (*CfsslConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseCfsslConfig(path, data)
}

// ParseCfsslConfig reads a cfssl signing config; file names it in messages.
func ParseCfsslConfig(file string, data []byte) (*CfsslConfig, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("%s: not a cfssl config: %s", file, jsonMessage(err))
	}
	var signing struct {
		Default  json.RawMessage            `json:"default"`
		Profiles map[string]json.RawMessage `json:"profiles"`
	}
	raw, ok := top["signing"]
	if !ok {
		return nil, fmt.Errorf(`%s: no "signing" section; a cfssl config looks like {"signing": {"profiles": {"peer": {"expiry": "43800h", "usages": [...]}}}}`, file)
	}
	if err := json.Unmarshal(raw, &signing); err != nil {
		return nil, fmt.Errorf("%s: signing: %s", file, jsonMessage(err))
	}
	c := &CfsslConfig{File: file, Profiles: map[string]*CfsslProfile{}}
	var errs []error
	if len(signing.Default) > 0 && string(signing.Default) != "null" {
		p, err := parseCfsslProfile(file, "signing.default", "default", signing.Default)
		if err != nil {
			errs = append(errs, err)
		}
		c.Default = p
	}
	for _, name := range slices.Sorted(maps.Keys(signing.Profiles)) {
		p, err := parseCfsslProfile(file, "signing.profiles."+name, name, signing.Profiles[name])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.Profiles[name] = p
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

func parseCfsslProfile(file, path, name string, raw json.RawMessage) (*CfsslProfile, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, fmt.Errorf("%s: %s: %s", file, path, jsonMessage(err))
	}
	known := slices.Concat(cfsslProfileUsed, cfsslProfileIgnored, cfsslProfileUnsupported)
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		lk := strings.ToLower(k)
		switch {
		case slices.Contains(cfsslProfileUnsupported, lk):
			if !isEmptyJSON(fields[k]) {
				return nil, fmt.Errorf("%s: %s.%s: not supported by etcdkit (it changes the certificate in a way etcdkit does not implement); remove it or keep using cfssl for this profile", file, path, k)
			}
		case slices.Contains(known, lk):
		default:
			return nil, fmt.Errorf("%s: %s.%s: unknown key%s", file, path, k, suggestion(lk, known))
		}
	}
	var p struct {
		Usages   []string `json:"usages"`
		Expiry   string   `json:"expiry"`
		Backdate string   `json:"backdate"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("%s: %s: %s", file, path, jsonMessage(err))
	}
	out := &CfsslProfile{Name: name, Profile: Profile{Exact: true}}
	for _, u := range p.Usages {
		lu := strings.ToLower(strings.TrimSpace(u))
		if ku, ok := cfsslKeyUsage[lu]; ok {
			out.Profile.KeyUsage |= ku
		} else if eku, ok := cfsslExtKeyUsage[lu]; ok {
			if !slices.Contains(out.Profile.ExtKeyUsage, eku) {
				out.Profile.ExtKeyUsage = append(out.Profile.ExtKeyUsage, eku)
			}
		} else {
			names := slices.Concat(slices.Sorted(maps.Keys(cfsslKeyUsage)), slices.Sorted(maps.Keys(cfsslExtKeyUsage)))
			return nil, fmt.Errorf("%s: %s.usages: unknown usage %q%s; cfssl's usages are %s", file, path, u, suggestion(lu, names), strings.Join(names, ", "))
		}
	}
	var err error
	if p.Expiry != "" {
		if out.Validity, err = time.ParseDuration(p.Expiry); err != nil || out.Validity <= 0 {
			return nil, fmt.Errorf("%s: %s.expiry: invalid duration %q (want e.g. 43800h)", file, path, p.Expiry)
		}
	}
	if p.Backdate != "" {
		if out.Backdate, err = time.ParseDuration(p.Backdate); err != nil || out.Backdate < 0 {
			return nil, fmt.Errorf("%s: %s.backdate: invalid duration %q (want e.g. 5m)", file, path, p.Backdate)
		}
	}
	return out, nil
}

// Profile returns the named profile. Unlike cfssl, a name that is not in
// the config is an error, never a silent fall back to the default profile.
func (c *CfsslConfig) Profile(name string) (*CfsslProfile, error) {
	if name == "" {
		if c.Default == nil {
			return nil, fmt.Errorf("%s has no default profile; choose one with --profile (it has %s)", c.File, c.profileNames())
		}
		return c.Default, nil
	}
	p, ok := c.Profiles[name]
	if !ok {
		return nil, fmt.Errorf("profile %q is not in %s (it has %s); cfssl would silently have used the default profile", name, c.File, c.profileNames())
	}
	if p.Validity == 0 && c.Default != nil {
		p.Validity = c.Default.Validity
	}
	return p, nil
}

func (c *CfsslConfig) profileNames() string {
	if len(c.Profiles) == 0 {
		return "no profiles"
	}
	return strings.Join(slices.Sorted(maps.Keys(c.Profiles)), ", ")
}

// Role is the etcd role a profile's usages fit: serverAuth and clientAuth
// is peer (it also fits a server), serverAuth alone server, clientAuth
// alone client. A profile named server, peer or client is that role.
func (p *CfsslProfile) Role() (Role, error) {
	if r, err := ParseRole(p.Name); err == nil {
		return r, nil
	}
	server := slices.Contains(p.Profile.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	client := slices.Contains(p.Profile.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	switch {
	case server && client:
		return RolePeer, nil
	case server:
		return RoleServer, nil
	case client:
		return RoleClient, nil
	}
	return "", fmt.Errorf("profile %q has neither \"server auth\" nor \"client auth\" in its usages, so it fits no etcd role", p.Name)
}

// CfsslCSR is a cfssl certificate request, resolved.
type CfsslCSR struct {
	File         string
	CommonName   string
	Subject      pkix.Name
	Hosts        []string
	KeyAlgorithm KeyAlgorithm
	// CAValidity is "ca": {"expiry": ...} (for a new CA), 0 when unset.
	CAValidity time.Duration
}

var (
	cfsslCSRKeys         = []string{"cn", "names", "hosts", "key", "ca", "serialnumber"}
	cfsslCSRUnsupported  = []string{"delegation_enabled", "extensions", "crl_url"}
	cfsslNameKeys        = []string{"c", "st", "l", "o", "ou", "e", "serialnumber", "oid"}
	cfsslCAKeys          = []string{"expiry", "backdate", "pathlen", "pathlenzero"}
	emailAddressOID      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
	cfsslKeyAlgorithmMsg = "use rsa (size 2048, 3072 or 4096), ecdsa (size 256 or 384) or ed25519"
)

// LoadCfsslCSR reads a cfssl CSR JSON file.
func LoadCfsslCSR(path string) (*CfsslCSR, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseCfsslCSR(path, data)
}

// ParseCfsslCSR reads a cfssl CSR JSON; file names it in messages.
func ParseCfsslCSR(file string, data []byte) (*CfsslCSR, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, fmt.Errorf("%s: not a cfssl CSR JSON: %s", file, jsonMessage(err))
	}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		lk := strings.ToLower(k)
		switch {
		case slices.Contains(cfsslCSRUnsupported, lk):
			if !isEmptyJSON(fields[k]) {
				return nil, fmt.Errorf("%s: %s: not supported by etcdkit; remove it", file, k)
			}
		case !slices.Contains(cfsslCSRKeys, lk):
			return nil, fmt.Errorf("%s: %s: unknown key%s", file, k, suggestion(lk, cfsslCSRKeys))
		}
	}
	var req struct {
		CN    string           `json:"CN"`
		Names []map[string]any `json:"names"`
		Hosts []string         `json:"hosts"`
		Key   *map[string]any  `json:"key"`
		CA    *map[string]any  `json:"ca"`
		SN    string           `json:"serialnumber"`
	}
	if err := json.Unmarshal(data, &req); err != nil {
		return nil, fmt.Errorf("%s: %s", file, jsonMessage(err))
	}
	csr := &CfsslCSR{File: file, CommonName: req.CN, Hosts: req.Hosts}
	if req.CN == "" {
		return nil, fmt.Errorf(`%s: CN: required (the certificate's common name, e.g. "CN": "master01")`, file)
	}
	csr.Subject.CommonName = req.CN
	csr.Subject.SerialNumber = req.SN
	for i, n := range req.Names {
		for _, k := range slices.Sorted(maps.Keys(n)) {
			lk := strings.ToLower(k)
			if !slices.Contains(cfsslNameKeys, lk) {
				return nil, fmt.Errorf("%s: names[%d].%s: unknown key%s", file, i, k, suggestion(lk, cfsslNameKeys))
			}
			if lk == "oid" {
				oids, ok := n[k].(map[string]any)
				if !ok {
					return nil, fmt.Errorf(`%s: names[%d].OID: want a mapping of dotted OIDs to values, e.g. {"1.2.3.4": "x"}`, file, i)
				}
				for _, o := range slices.Sorted(maps.Keys(oids)) {
					oid, err := parseOID(o)
					if err != nil {
						return nil, fmt.Errorf("%s: names[%d].OID: %w", file, i, err)
					}
					csr.Subject.ExtraNames = append(csr.Subject.ExtraNames, pkix.AttributeTypeAndValue{Type: oid, Value: fmt.Sprint(oids[o])})
				}
				continue
			}
			v, ok := n[k].(string)
			if !ok {
				return nil, fmt.Errorf("%s: names[%d].%s: want a string", file, i, k)
			}
			if v == "" {
				continue
			}
			switch lk {
			case "c":
				csr.Subject.Country = append(csr.Subject.Country, v)
			case "st":
				csr.Subject.Province = append(csr.Subject.Province, v)
			case "l":
				csr.Subject.Locality = append(csr.Subject.Locality, v)
			case "o":
				csr.Subject.Organization = append(csr.Subject.Organization, v)
			case "ou":
				csr.Subject.OrganizationalUnit = append(csr.Subject.OrganizationalUnit, v)
			case "e":
				csr.Subject.ExtraNames = append(csr.Subject.ExtraNames, pkix.AttributeTypeAndValue{Type: emailAddressOID, Value: v})
			case "serialnumber":
				csr.Subject.SerialNumber = v
			}
		}
	}
	alg, err := cfsslKeyAlgorithm(req.Key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	csr.KeyAlgorithm = alg
	if req.CA != nil {
		ca := *req.CA
		for _, k := range slices.Sorted(maps.Keys(ca)) {
			lk := strings.ToLower(k)
			switch {
			case !slices.Contains(cfsslCAKeys, lk):
				return nil, fmt.Errorf("%s: ca.%s: unknown key%s", file, k, suggestion(lk, cfsslCAKeys))
			case lk == "pathlen" || lk == "pathlenzero":
				if v := ca[k]; v != nil && v != false && v != float64(0) {
					return nil, fmt.Errorf("%s: ca.%s: path length limits are not supported by etcdkit (a CA rotation needs an intermediate); remove it", file, k)
				}
			case lk == "expiry":
				s, _ := ca[k].(string)
				d, err := time.ParseDuration(s)
				if err != nil || d <= 0 {
					return nil, fmt.Errorf("%s: ca.expiry: invalid duration %v (want e.g. 87600h)", file, ca[k])
				}
				csr.CAValidity = d
			}
		}
	}
	return csr, nil
}

// cfsslKeyAlgorithm maps cfssl's {"algo": ..., "size": ...} to an etcdkit
// key algorithm. cfssl's default when "key" is absent is ECDSA P-256.
func cfsslKeyAlgorithm(key *map[string]any) (KeyAlgorithm, error) {
	if key == nil {
		return ECDSAP256, nil
	}
	k := *key
	for _, f := range slices.Sorted(maps.Keys(k)) {
		if lf := strings.ToLower(f); lf != "algo" && lf != "size" {
			return "", fmt.Errorf("key.%s: unknown key%s", f, suggestion(lf, []string{"algo", "size"}))
		}
	}
	algo, _ := lookupFold(k, "algo").(string)
	size := 0
	switch v := lookupFold(k, "size").(type) {
	case float64:
		size = int(v)
	case nil:
	default:
		return "", fmt.Errorf("key.size: want a number, got %v", v)
	}
	switch strings.ToLower(algo) {
	case "rsa":
		switch size {
		case 0, 2048:
			return RSA2048, nil
		case 3072:
			return RSA3072, nil
		case 4096:
			return RSA4096, nil
		}
		return "", fmt.Errorf("key.size: RSA size %d is not supported; %s", size, cfsslKeyAlgorithmMsg)
	case "ecdsa", "":
		switch size {
		case 0, 256:
			return ECDSAP256, nil
		case 384:
			return ECDSAP384, nil
		}
		return "", fmt.Errorf("key.size: ECDSA size %d is not supported; %s", size, cfsslKeyAlgorithmMsg)
	case "ed25519":
		return Ed25519, nil
	}
	return "", fmt.Errorf("key.algo: unknown key algorithm %q; %s", algo, cfsslKeyAlgorithmMsg)
}

func lookupFold(m map[string]any, key string) any {
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

func parseOID(s string) (asn1.ObjectIdentifier, error) {
	var oid asn1.ObjectIdentifier
	for _, part := range strings.Split(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("invalid OID %q (want dotted numbers, e.g. 1.2.3.4)", s)
		}
		oid = append(oid, n)
	}
	if len(oid) < 2 {
		return nil, fmt.Errorf("invalid OID %q (want dotted numbers, e.g. 1.2.3.4)", s)
	}
	return oid, nil
}

func isEmptyJSON(raw json.RawMessage) bool {
	switch string(bytes.TrimSpace(raw)) {
	case "", "null", "false", `""`, "[]", "{}", "0":
		return true
	}
	// ca_constraint is an object; it only matters when it makes a CA.
	var cc struct {
		IsCA bool `json:"is_ca"`
	}
	if json.Unmarshal(raw, &cc) == nil && bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
		return !cc.IsCA
	}
	return false
}

// jsonMessage turns encoding/json's errors into what a user can act on.
func jsonMessage(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d: %s", se.Offset, se.Error())
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "(top level)"
		}
		return fmt.Sprintf("%s: want %s, got %s", field, te.Type, te.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// suggestion is "; did you mean X?" for the closest known name, if close.
func suggestion(got string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(got, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
