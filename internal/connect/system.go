package connect

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/pki"
)

// Where the runbook's external etcd keeps its config and certificates.
const (
	DefaultEtcdConf = "/etc/etcd/etcd.conf"
	DefaultSSLDir   = "/etc/etcd/ssl"
	// DefaultEndpoint is etcdctl's default endpoint: the member on this
	// host.
	DefaultEndpoint = "127.0.0.1:2379"
)

// EtcdConf finds the member of an etcd config on this host (an ETCD_*
// environment file or etcd's YAML): its advertised client URLs, its
// trusted CA, and a client certificate: the cfssl layout's client.pem
// beside the CA, else the config's client-cert-file, else its server
// certificate when that allows client authentication (etcdkit's and
// the runbook's do). A missing file is nothing found.
func EtcdConf(path string) Source {
	return Source{
		Name: "etcd config " + path,
		Find: func() (Settings, bool, error) {
			data, err := os.ReadFile(path)
			if errors.Is(err, fs.ErrNotExist) {
				return Settings{}, false, nil
			}
			if err != nil {
				return Settings{}, false, err
			}
			// Discovery is no validation: a config with problems etcd
			// would refuse still says where the member is.
			c, _ := etcdconf.ParseAll(path, data)
			if c == nil {
				return Settings{}, false, fmt.Errorf("not an etcd config; pass --endpoints")
			}
			s, err := confSettings(c)
			return s, err == nil, err
		},
	}
}

func confSettings(c *etcdconf.Config) (Settings, error) {
	s := Settings{Endpoints: etcdconf.SplitList(c.AdvertiseClientURLs)}
	if len(s.Endpoints) == 0 {
		// A member listening on every address is reached on loopback here.
		for _, raw := range etcdconf.SplitList(c.ListenClientURLs) {
			u, err := url.Parse(raw)
			if err != nil {
				continue
			}
			if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsUnspecified() {
				u.Host = net.JoinHostPort("127.0.0.1", u.Port())
			}
			s.Endpoints = append(s.Endpoints, u.String())
		}
	}
	if len(s.Endpoints) == 0 {
		return s, errors.New("it sets neither advertise-client-urls nor listen-client-urls; pass --endpoints")
	}
	sec := c.ClientTransportSecurity
	if sec.TrustedCAFile == "" {
		return s, nil
	}
	s.CACert = sec.TrustedCAFile
	candidates := []pki.Pair{pki.LayoutCfssl.Leaf(filepath.Dir(sec.TrustedCAFile), pki.RoleClient)}
	if sec.ClientCertFile != "" {
		candidates = append(candidates, pki.Pair{Cert: sec.ClientCertFile, Key: sec.ClientKeyFile})
	}
	if sec.CertFile != "" {
		candidates = append(candidates, pki.Pair{Cert: sec.CertFile, Key: sec.KeyFile})
	}
	for _, p := range candidates {
		if clientPair(p) {
			s.Cert, s.Key = p.Cert, p.Key
			return s, nil
		}
	}
	if !sec.ClientCertAuth {
		return s, nil
	}
	return s, fmt.Errorf("the member wants client certificates (client-cert-auth) and none readable here is valid for client authentication (tried %s); pass --cert and --key", pairNames(candidates))
}

// SSLDir finds a cfssl-layout certificate directory (the runbook's
// /etc/etcd/ssl): its CA and client pair, for the member on this host
// (etcdctl's default endpoint, 127.0.0.1:2379). A missing directory or CA
// is nothing found.
func SSLDir(dir string) Source {
	return Source{
		Name: "certificate directory " + dir,
		Find: func() (Settings, bool, error) {
			ca := pki.LayoutCfssl.CA(dir).Cert
			if _, err := os.Stat(ca); err != nil {
				return Settings{}, false, nil
			}
			client := pki.LayoutCfssl.Leaf(dir, pki.RoleClient)
			if !clientPair(client) {
				return Settings{}, false, fmt.Errorf("%s has the CA (ca.pem) but no readable client.pem and client-key.pem valid for client authentication; issue one with `etcdkit pki issue client NAME --dir %s`, or pass --cert and --key", dir, dir)
			}
			return Settings{Endpoints: []string{"https://" + DefaultEndpoint}, CACert: ca, Cert: client.Cert, Key: client.Key}, true, nil
		},
	}
}

// clientPair reports whether a pair is readable and its certificate may
// authenticate a client.
func clientPair(p pki.Pair) bool {
	if p.Cert == "" || p.Key == "" {
		return false
	}
	f, err := os.Open(p.Key)
	if err != nil {
		return false
	}
	f.Close()
	certs, err := pki.LoadCerts(p.Cert)
	if err != nil || len(certs) == 0 {
		return false
	}
	return len(certs[0].ExtKeyUsage) == 0 || slices.Contains(certs[0].ExtKeyUsage, x509.ExtKeyUsageClientAuth) ||
		slices.Contains(certs[0].ExtKeyUsage, x509.ExtKeyUsageAny)
}

func pairNames(ps []pki.Pair) string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Cert)
	}
	return strings.Join(out, ", ")
}
