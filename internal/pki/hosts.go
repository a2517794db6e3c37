package pki

import (
	"net"
	"net/url"
	"slices"
)

// HostsForURLs returns the hosts a member's server or peer certificate must
// name: the host of every URL it advertises or listens on, plus localhost and
// 127.0.0.1 so health checks on the member itself verify. Wildcard listen
// addresses (0.0.0.0, ::) are skipped: a certificate cannot name them, and
// the advertised URLs say which addresses clients dial.
func HostsForURLs(urls ...string) []string {
	hosts := []string{}
	add := func(h string) {
		if h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			continue
		}
		h := u.Hostname()
		if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
			continue
		}
		add(h)
	}
	add("localhost")
	add("127.0.0.1")
	return hosts
}
