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
}

// Validate checks everything etcd would reject at start-up, and what
// etcdkit's safety rules forbid, before anything starts. It returns
// warnings separately from errors; errors are joined FieldErrors.
func (c *Config) Validate(o ValidateOptions) (warnings []string, err error) {
	var errs []error
	fail := func(key, format string, args ...any) {
		errs = append(errs, &FieldError{File: o.File, Line: LineOf(o.Source, key), Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	warn := func(key, format string, args ...any) {
		warnings = append(warnings, (&FieldError{File: o.File, Line: LineOf(o.Source, key), Key: key, Msg: fmt.Sprintf(format, args...)}).Error())
	}
	allowHTTP := o.AllowInsecureHTTP || (c.Etcdkit != nil && c.Etcdkit.InsecureHTTP)

	if c.Name == "" {
		fail("name", "required: every member needs a unique name")
	}
	if c.DataDir == "" {
		fail("data-dir", "required: where this member keeps its data (e.g. /var/lib/etcd/default.etcd)")
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
				fail(uk.key, "%v", perr)
				continue
			}
			host := u.Hostname()
			if uk.bind && host != "localhost" && net.ParseIP(host) == nil {
				fail(uk.key, "%q: listen URLs need an IP address (or localhost), not a host name", raw)
			}
			sec := c.ClientTransportSecurity
			if uk.peer {
				sec = c.PeerTransportSecurity
			}
			switch u.Scheme {
			case "https", "unixs":
				if sec.CertFile == "" && !sec.AutoTLS {
					block := "client-transport-security"
					if uk.peer {
						block = "peer-transport-security"
					}
					fail(uk.key, "%q is https but %s has no cert-file", raw, block)
				}
			case "http":
				switch {
				case !isLoopback(host):
					fail(uk.key, "%q is plain HTTP on a non-loopback address; use https with client-certificate authentication", raw)
				case !allowHTTP:
					fail(uk.key, "%q is plain HTTP; use https, or allow HTTP on loopback with --insecure-http", raw)
				}
			}
		}
	}
	if c.ListenPeerURLs == "" {
		fail("listen-peer-urls", "required: where this member listens for its peers (e.g. https://10.0.0.1:2380)")
	}
	if c.ListenClientURLs == "" {
		fail("listen-client-urls", "required: where this member listens for clients (e.g. https://10.0.0.1:2379)")
	}
	if c.ListenClientURLs != "" && c.AdvertiseClientURLs == "" {
		fail("advertise-client-urls", "required when listen-client-urls is set: the URLs clients are told to use")
	}
	if c.InitialAdvertisePeerURLs == "" {
		fail("initial-advertise-peer-urls", "required: the peer URLs other members dial")
	}

	// initial-cluster must name this member with exactly its advertised
	// peer URLs; etcd's own message for this is cryptic.
	switch c.InitialClusterState {
	case "", "new", "existing":
	default:
		fail("initial-cluster-state", "%q: must be new or existing", c.InitialClusterState)
	}
	if c.InitialCluster == "" {
		fail("initial-cluster", "required: name=peer-url of every member, this one included")
	} else if names, urls, perr := ParseInitialCluster(c.InitialCluster); perr != nil {
		fail("initial-cluster", "%v", perr)
	} else if c.Name != "" {
		mine, ok := urls[c.Name]
		adv := SplitList(c.InitialAdvertisePeerURLs)
		switch {
		case !ok:
			fail("initial-cluster", "does not name this member %q (it names %s); add %s=%s", c.Name, strings.Join(names, ", "), c.Name, firstOr(adv, "PEER-URL"))
		case len(adv) > 0 && !sameSet(mine, adv):
			fail("initial-cluster", "gives %s=%s but initial-advertise-peer-urls is %s; they must match", c.Name, strings.Join(mine, ","), strings.Join(adv, ","))
		}
		if len(names)%2 == 0 && c.InitialClusterState != "existing" {
			warn("initial-cluster", "%d members: an even member count tolerates no more failures than %d; use an odd number", len(names), len(names)-1)
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
		fail("election-timeout", "%dms is less than 5 x heartbeat-interval (%dms); use at least %d", el, hb, 5*hb)
	}
	if el > 50000 {
		fail("election-timeout", "%dms is above etcd's limit of 50000ms", el)
	}
	if c.QuotaBackendBytes < 0 {
		fail("quota-backend-bytes", "must not be negative")
	} else if c.QuotaBackendBytes > 100<<30 {
		fail("quota-backend-bytes", "%d is above etcd's supported maximum of 100 GiB", c.QuotaBackendBytes)
	}
	switch c.AutoCompactionMode {
	case "", "periodic", "revision":
	default:
		fail("auto-compaction-mode", "%q: must be periodic or revision", c.AutoCompactionMode)
	}
	if c.ForceNewCluster {
		fail("force-new-cluster", "must not be kept in a config: every start with it shrinks the cluster to one member; use `etcdkit cluster recover`, which sets it for one start")
	}

	for _, blk := range []struct {
		key string
		sec Security
	}{{"client-transport-security", c.ClientTransportSecurity}, {"peer-transport-security", c.PeerTransportSecurity}} {
		s := blk.sec
		if s.AutoTLS && (s.CertFile != "" || s.KeyFile != "") {
			fail(blk.key+".auto-tls", "auto-tls is set together with cert-file/key-file; auto-tls makes etcd ignore your certificates and use self-signed ones; remove auto-tls")
		} else if s.AutoTLS {
			warn(blk.key+".auto-tls", "self-signed certificates with no client authentication; use certificates from `etcdkit pki`")
		}
		if (s.CertFile == "") != (s.KeyFile == "") {
			fail(blk.key, "cert-file and key-file must be set together")
		}
		if s.CertFile != "" && !s.ClientCertAuth {
			warn(blk.key+".client-cert-auth", "TLS without client-certificate authentication lets anyone who reaches the port in; set client-cert-auth: true")
		}
		if s.ClientCertAuth && s.TrustedCAFile == "" {
			fail(blk.key+".trusted-ca-file", "client-cert-auth needs trusted-ca-file to verify client certificates")
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
					fail(blk.key+"."+f.key, "%s: %v", f.path, unwrapPathError(serr))
					continue
				}
				if strings.HasSuffix(f.key, "key-file") {
					if p, perr := pki.KeyModeProblem(f.path); perr == nil && p != "" {
						fail(blk.key+"."+f.key, "%s", p)
					}
				}
			}
		}
	}
	if len(errs) > 0 {
		return warnings, errors.Join(errs...)
	}
	return warnings, nil
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
