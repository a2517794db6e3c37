package lint

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/pki"
)

// lintConfig runs the checks `member run` makes, and the ones that only
// make sense when judging a file: certificate SANs and stale state.
func lintConfig(name string, c *etcdconf.Config) []Finding {
	var out []Finding
	for _, p := range c.Check(etcdconf.ValidateOptions{File: name, CheckFiles: true, Lint: true}) {
		out = append(out, fromProblem(p))
	}
	out = append(out, certSANs(name, c)...)
	if f, ok := stateNewWithData(name, c); ok {
		out = append(out, f)
	}
	return out
}

// certSANs checks that each certificate covers the addresses clients and
// peers reach the member at. etcd starts with a wrong certificate and the
// failure shows up only in the other side's TLS errors.
func certSANs(name string, c *etcdconf.Config) []Finding {
	var out []Finding
	for _, b := range []struct {
		block, listenKey, advKey string
		listen, adv              string
		sec                      etcdconf.Security
	}{
		{"client-transport-security", "listen-client-urls", "advertise-client-urls", c.ListenClientURLs, c.AdvertiseClientURLs, c.ClientTransportSecurity},
		{"peer-transport-security", "listen-peer-urls", "initial-advertise-peer-urls", c.ListenPeerURLs, c.InitialAdvertisePeerURLs, c.PeerTransportSecurity},
	} {
		if b.sec.CertFile == "" || b.sec.AutoTLS || !readable(b.sec.CertFile) {
			continue
		}
		certs, err := pki.LoadCerts(b.sec.CertFile)
		if err != nil || len(certs) == 0 {
			continue // missing-file or the pki checks report an unreadable certificate
		}
		leaf := certs[0]
		wildcard := ""
		type target struct{ key, host string }
		var targets []target
		for _, raw := range etcdconf.SplitList(b.listen) {
			u, err := etcdconf.ParseURL(raw)
			if err != nil || u.Scheme != "https" {
				continue
			}
			if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsUnspecified() {
				wildcard = u.Hostname()
				continue
			}
			targets = append(targets, target{b.listenKey, u.Hostname()})
		}
		for _, raw := range etcdconf.SplitList(b.adv) {
			if u, err := etcdconf.ParseURL(raw); err == nil && u.Scheme == "https" {
				targets = append(targets, target{b.advKey, u.Hostname()})
			}
		}
		seen := map[string]bool{}
		for _, t := range targets {
			if seen[t.host] || leaf.VerifyHostname(t.host) == nil {
				continue
			}
			seen[t.host] = true
			msg := fmt.Sprintf("the certificate %s does not cover %s (it covers %s)", b.sec.CertFile, t.host, sanList(leaf.DNSNames, leaf.IPAddresses))
			if wildcard != "" && t.key == b.advKey {
				msg = fmt.Sprintf("listening on %s, this member is reached at %s, which the certificate %s does not cover (it covers %s)", wildcard, t.host, b.sec.CertFile, sanList(leaf.DNSNames, leaf.IPAddresses))
			}
			line, key := c.Line(t.key), c.DisplayKey(t.key)
			out = append(out, Finding{Rule: RuleCertSANMismatch, Severity: Error, File: name, Line: line, Key: key, Message: msg,
				Fix: fmt.Sprintf("reissue the certificate with %s among its SANs (`etcdkit pki issue`), or correct the URL", t.host)})
		}
	}
	return out
}

func sanList(dns []string, ips []net.IP) string {
	var all []string
	all = append(all, dns...)
	for _, ip := range ips {
		all = append(all, ip.String())
	}
	if len(all) == 0 {
		return "no names at all"
	}
	return strings.Join(all, ", ")
}

// stateNewWithData: etcd ignores initial-cluster-state once a member has
// data, so `new` does no harm until the data dir is lost; then the member
// bootstraps a second cluster of its own instead of failing to rejoin.
func stateNewWithData(name string, c *etcdconf.Config) (Finding, bool) {
	if c.DataDir == "" || (c.InitialClusterState != "" && c.InitialClusterState != "new") {
		return Finding{}, false
	}
	if _, err := os.Stat(filepath.Join(c.DataDir, "member")); err != nil {
		return Finding{}, false
	}
	key := "initial-cluster-state"
	return Finding{Rule: RuleStateNewWithData, Severity: Warning, File: name, Line: c.Line(key), Key: c.DisplayKey(key),
		Message: fmt.Sprintf("%s already has data, but a lost data dir would make this member bootstrap a new one-member cluster of its own", c.DataDir),
		Fix:     "set " + c.DisplayKey(key) + " to existing now that the member has joined"}, true
}

// lintPod reads a kubeadm static pod manifest: the etcd container's
// command line is checked as etcd would read it.
func lintPod(name string, data []byte) []Finding { return Pod(name, data, nil) }
