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

// DefaultHosts completes the hosts of a server or peer certificate the way
// each layout's own tool does. kubeadm: the node name, localhost, the
// advertise address(es), 127.0.0.1 and ::1 (kubeadm's GetEtcdAltNames).
// cfssl: what was asked, plus localhost and 127.0.0.1 so a member's local
// health checks verify. Client certificates get exactly what was asked.
func DefaultHosts(layout Layout, role Role, nodeName string, hosts []string) []string {
	if role == RoleClient {
		return hosts
	}
	var out []string
	add := func(h string) {
		if h != "" && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	if layout == LayoutKubeadm {
		add(nodeName)
		add("localhost")
	}
	for _, h := range hosts {
		add(h)
	}
	add("localhost")
	add("127.0.0.1")
	if layout == LayoutKubeadm {
		add("::1")
	}
	return out
}
