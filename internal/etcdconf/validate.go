package etcdconf

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	"github.com/etcdkit/etcdkit/internal/pki"
)

// ValidateOptions tunes Validate.
type ValidateOptions struct {
	// File names the config in messages.
	File string
	// Source is the file's bytes, used to add line numbers to messages.
	Source []byte
	// CheckFiles checks that certificate and key files exist, and that keys
	// are not readable by others. Off when validating a config written for
	// another host.
	CheckFiles bool
	// AllowInsecureHTTP permits http:// URLs, on loopback addresses only.
	AllowInsecureHTTP bool
	// Lint reports plain HTTP on loopback as a warning rather than refusing
	// it: a linter judges a file, it does not decide whether to run it.
	Lint bool
}

// Severity of a problem.
type Severity string

const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Problem is one thing wrong with a config, under a stable rule id.
type Problem struct {
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	File     string   `json:"file,omitempty"`
	Line     int      `json:"line,omitempty"`
	// Key is the key or variable as the file spells it.
	Key string `json:"key,omitempty"`
	Msg string `json:"message"`
	Fix string `json:"fix,omitempty"`
}

// Message is the problem and its fix in one line.
func (p Problem) Message() string {
	if p.Fix == "" {
		return p.Msg
	}
	return p.Msg + "; " + p.Fix
}

func (p Problem) fieldError() *FieldError {
	return &FieldError{File: p.File, Line: p.Line, Key: p.Key, Msg: p.Message(), Rule: p.Rule}
}

// Rule ids of Check.
const (
	RuleRequired           = "required"
	RuleInvalidURL         = "invalid-url"
	RuleHTTPSWithoutCert   = "https-without-cert"
	RuleHTTPNonLoopback    = "http-non-loopback"
	RuleHTTPLoopback       = "http-loopback"
	RuleInitialCluster     = "initial-cluster"
	RuleInitialClusterSelf = "initial-cluster-self"
	RuleClusterState       = "initial-cluster-state"
	RuleEvenMembers        = "even-member-count"
	RuleElectionTimeout    = "election-timeout"
	RuleQuota              = "quota-backend-bytes"
	RuleCompaction         = "auto-compaction-mode"
	RuleForceNewCluster    = "force-new-cluster"
	RuleAutoTLSWithCerts   = "auto-tls-with-certs"
	RuleAutoTLS            = "auto-tls"
	RuleCertKeyPair        = "cert-key-pair"
	RuleCertAuthOff        = "cert-auth-off"
	RuleTrustedCA          = "trusted-ca-missing"
	RuleMissingFile        = "missing-file"
	RuleKeyPermissions     = "key-permissions"
)

// Validate checks everything etcd would reject at start-up, and what
// etcdkit's safety rules forbid, before anything starts. It returns
// warnings separately from errors; errors are joined FieldErrors.
func (c *Config) Validate(o ValidateOptions) (warnings []string, err error) {
	var errs []error
	for _, p := range c.Check(o) {
		if p.Severity == SeverityError {
			errs = append(errs, p.fieldError())
		} else {
			warnings = append(warnings, p.fieldError().Error())
		}
	}
	if len(errs) > 0 {
		return warnings, errors.Join(errs...)
	}
	return warnings, nil
}

// Check is Validate's problems, each with its rule id and severity, in the
// order of the file's keys as Validate reports them.
func (c *Config) Check(o ValidateOptions) []Problem {
	var out []Problem
	add := func(sev Severity, rule, key, fix, format string, args ...any) {
		line, shown := c.locate(key, o.Source)
		out = append(out, Problem{Rule: rule, Severity: sev, File: o.File, Line: line, Key: shown, Msg: fmt.Sprintf(format, args...), Fix: fix})
	}
	fail := func(rule, key, fix, format string, args ...any) { add(SeverityError, rule, key, fix, format, args...) }
	warn := func(rule, key, fix, format string, args ...any) {
		add(SeverityWarning, rule, key, fix, format, args...)
	}
	name := c.DisplayKey
	allowHTTP := o.AllowInsecureHTTP || (c.Etcdkit != nil && c.Etcdkit.InsecureHTTP)

	if c.Name == "" {
		fail(RuleRequired, "name", "", "required: every member needs a unique name")
	}
	if c.DataDir == "" {
		fail(RuleRequired, "data-dir", "", "required: where this member keeps its data (e.g. /var/lib/etcd/default.etcd)")
	}

	// URLs: parse each, check scheme against the TLS configuration.
	type urlKey struct {
		key, value string
		peer, bind bool
	}
	urlKeys := []urlKey{
		{"listen-peer-urls", c.ListenPeerURLs, true, true},
		{"initial-advertise-peer-urls", c.InitialAdvertisePeerURLs, true, false},
		{"listen-client-urls", c.ListenClientURLs, false, true},
		{"listen-client-http-urls", c.ListenClientHTTPURLs, false, true},
		{"advertise-client-urls", c.AdvertiseClientURLs, false, false},
	}
	for _, uk := range urlKeys {
		for _, raw := range SplitList(uk.value) {
			u, perr := ParseURL(raw)
			if perr != nil {
				fail(RuleInvalidURL, uk.key, "", "%v", perr)
				continue
			}
			host := u.Hostname()
			if uk.bind && host != "localhost" && net.ParseIP(host) == nil {
				fail(RuleInvalidURL, uk.key, "", "%q: listen URLs need an IP address (or localhost), not a host name", raw)
			}
			sec := c.ClientTransportSecurity
			block := "client-transport-security"
			if uk.peer {
				sec, block = c.PeerTransportSecurity, "peer-transport-security"
			}
			switch u.Scheme {
			case "https", "unixs":
				if sec.CertFile == "" && !sec.AutoTLS {
					fail(RuleHTTPSWithoutCert, uk.key, "set "+name(block+".cert-file")+" and "+name(block+".key-file"), "%q is https but %s has no cert-file", raw, block)
				}
			case "http":
				switch {
				case !isLoopback(host):
					fail(RuleHTTPNonLoopback, uk.key, "use https with client-certificate authentication", "%q is plain HTTP on a non-loopback address", raw)
				case o.Lint:
					warn(RuleHTTPLoopback, uk.key, "use https; clients on this host can use the same certificates", "%q is plain HTTP: any process on this host can read and write every key without a certificate", raw)
				case !allowHTTP:
					fail(RuleHTTPLoopback, uk.key, "use https, or allow HTTP on loopback with --insecure-http", "%q is plain HTTP", raw)
				}
			}
		}
	}
	if c.ListenPeerURLs == "" {
		fail(RuleRequired, "listen-peer-urls", "", "required: where this member listens for its peers (e.g. https://10.0.0.1:2380)")
	}
	if c.ListenClientURLs == "" {
		fail(RuleRequired, "listen-client-urls", "", "required: where this member listens for clients (e.g. https://10.0.0.1:2379)")
	}
	if c.ListenClientURLs != "" && c.AdvertiseClientURLs == "" {
		fail(RuleRequired, "advertise-client-urls", "", "required when listen-client-urls is set: the URLs clients are told to use")
	}
	if c.InitialAdvertisePeerURLs == "" {
		fail(RuleRequired, "initial-advertise-peer-urls", "", "required: the peer URLs other members dial")
	}

	// initial-cluster must name this member with exactly its advertised
	// peer URLs; etcd's own message for this is cryptic.
	switch c.InitialClusterState {
	case "", "new", "existing":
	default:
		fail(RuleClusterState, "initial-cluster-state", "", "%q: must be new or existing", c.InitialClusterState)
	}
	if c.InitialCluster == "" {
		fail(RuleRequired, "initial-cluster", "", "required: name=peer-url of every member, this one included")
	} else if names, urls, perr := ParseInitialCluster(c.InitialCluster); perr != nil {
		fail(RuleInitialCluster, "initial-cluster", "", "%v", perr)
	} else if c.Name != "" {
		mine, ok := urls[c.Name]
		adv := SplitList(c.InitialAdvertisePeerURLs)
		switch {
		case !ok:
			fail(RuleInitialClusterSelf, "initial-cluster", fmt.Sprintf("add %s=%s", c.Name, firstOr(adv, "PEER-URL")), "does not name this member %q (it names %s)", c.Name, strings.Join(names, ", "))
		case len(adv) > 0 && !sameSet(mine, adv):
			fail(RuleInitialClusterSelf, "initial-cluster", "they must match", "gives %s=%s but %s is %s", c.Name, strings.Join(mine, ","), name("initial-advertise-peer-urls"), strings.Join(adv, ","))
		}
		if len(names)%2 == 0 && c.InitialClusterState != "existing" {
			warn(RuleEvenMembers, "initial-cluster", "use an odd number", "%d members: an even member count tolerates no more failures than %d", len(names), len(names)-1)
		}
	}

	hb, el := c.HeartbeatInterval, c.ElectionTimeout
	if hb == 0 {
		hb = DefaultHeartbeatMs
	}
	if el == 0 {
		el = DefaultElectionMs
	}
	if el < 5*hb {
		fail(RuleElectionTimeout, "election-timeout", fmt.Sprintf("use at least %d (10 x is usual)", 5*hb), "%dms is less than 5 x heartbeat-interval (%dms)", el, hb)
	}
	if el > 50000 {
		fail(RuleElectionTimeout, "election-timeout", "", "%dms is above etcd's limit of 50000ms", el)
	}
	if c.QuotaBackendBytes < 0 {
		fail(RuleQuota, "quota-backend-bytes", "", "must not be negative")
	} else if c.QuotaBackendBytes > 100<<30 {
		fail(RuleQuota, "quota-backend-bytes", "", "%d is above etcd's supported maximum of 100 GiB", c.QuotaBackendBytes)
	}
	switch c.AutoCompactionMode {
	case "", "periodic", "revision":
	default:
		fail(RuleCompaction, "auto-compaction-mode", "", "%q: must be periodic or revision", c.AutoCompactionMode)
	}
	if c.ForceNewCluster {
		fail(RuleForceNewCluster, "force-new-cluster", "use `etcdkit cluster recover`, which sets it for one start", "must not be kept in a config: every start with it shrinks the cluster to one member")
	}

	for _, blk := range []struct {
		key string
		sec Security
	}{{"client-transport-security", c.ClientTransportSecurity}, {"peer-transport-security", c.PeerTransportSecurity}} {
		s := blk.sec
		k := func(sub string) string { return blk.key + "." + sub }
		if s.AutoTLS && (s.CertFile != "" || s.KeyFile != "") {
			fail(RuleAutoTLSWithCerts, k("auto-tls"), "remove "+name(k("auto-tls")), "auto-tls is set together with %s: auto-tls makes etcd ignore your certificates and use self-signed ones", name(k("cert-file")))
		} else if s.AutoTLS {
			warn(RuleAutoTLS, k("auto-tls"), "use certificates from `etcdkit pki`", "self-signed certificates with no client authentication")
		}
		if (s.CertFile == "") != (s.KeyFile == "") {
			fail(RuleCertKeyPair, blk.key, "", "%s and %s must be set together", name(k("cert-file")), name(k("key-file")))
		}
		if s.CertFile != "" && !s.ClientCertAuth {
			warn(RuleCertAuthOff, k("client-cert-auth"), "set "+name(k("client-cert-auth"))+" to true", "TLS without client-certificate authentication lets anyone who reaches the port in")
		}
		if s.ClientCertAuth && s.TrustedCAFile == "" {
			fail(RuleTrustedCA, k("trusted-ca-file"), "", "client-cert-auth needs %s to verify client certificates", name(k("trusted-ca-file")))
		}
		if o.CheckFiles {
			for _, f := range []struct{ key, path string }{
				{"cert-file", s.CertFile}, {"key-file", s.KeyFile}, {"trusted-ca-file", s.TrustedCAFile},
				{"client-cert-file", s.ClientCertFile}, {"client-key-file", s.ClientKeyFile},
			} {
				if f.path == "" {
					continue
				}
				if _, serr := os.Stat(f.path); serr != nil {
					fix := ""
					if os.IsNotExist(serr) {
						fix = "create it with `etcdkit pki issue`, or correct the path"
					}
					fail(RuleMissingFile, k(f.key), fix, "%s: %v", f.path, unwrapPathError(serr))
					continue
				}
				if strings.HasSuffix(f.key, "key-file") {
					if p, perr := pki.KeyModeProblem(f.path); perr == nil && p != "" {
						fail(RuleKeyPermissions, k(f.key), "", "%s", p)
					}
				}
			}
		}
	}
	return out
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		if os.IsNotExist(err) {
			return errors.New("file does not exist")
		}
		return pe.Err
	}
	return err
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}
