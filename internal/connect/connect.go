// Package connect decides which etcd endpoints and TLS files a client
// command uses, and opens clients to them. Flags win, then the ETCDCTL_*
// environment, then discovery sources (an etcdkit dir, /etc/etcd, kubeadm)
// in the order the caller gives; Target.Source says which were used.
// The sources for /etc/etcd are here (system.go); the etcdkit dir's is in
// internal/local, kubeadm's in internal/kubeadm.
package connect

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Defaults match etcdctl's.
const (
	DefaultDialTimeout    = 2 * time.Second
	DefaultCommandTimeout = 5 * time.Second
)

// Settings are the connection settings a user gave or a source found.
type Settings struct {
	Endpoints []string
	CACert    string
	Cert      string
	Key       string
	// InsecureSkipVerify skips server certificate verification (etcdctl's
	// --insecure-skip-tls-verify).
	InsecureSkipVerify bool
	DialTimeout        time.Duration
	CommandTimeout     time.Duration
}

// Target is resolved settings plus where they came from.
type Target struct {
	Settings
	// Source names every place a setting came from, in order.
	Source []string
}

// Source finds settings somewhere (a directory, a manifest). It returns
// found=false when it has nothing to offer, and an error only when what it
// found is broken.
type Source struct {
	Name string
	Find func() (s Settings, found bool, err error)
}

// ErrNoEndpoints is returned when nothing says which cluster to talk to.
var ErrNoEndpoints = errors.New("no etcd endpoints")

// Env reads ETCDCTL_* variables, spelled as etcdctl spells them.
func Env(getenv func(string) string) Settings {
	s := Settings{
		CACert: getenv("ETCDCTL_CACERT"),
		Cert:   getenv("ETCDCTL_CERT"),
		Key:    getenv("ETCDCTL_KEY"),
	}
	if e := getenv("ETCDCTL_ENDPOINTS"); e != "" {
		s.Endpoints = splitEndpoints(e)
	}
	if v := getenv("ETCDCTL_INSECURE_SKIP_TLS_VERIFY"); v == "true" || v == "1" {
		s.InsecureSkipVerify = true
	}
	if d, err := time.ParseDuration(getenv("ETCDCTL_DIAL_TIMEOUT")); err == nil {
		s.DialTimeout = d
	}
	if d, err := time.ParseDuration(getenv("ETCDCTL_COMMAND_TIMEOUT")); err == nil {
		s.CommandTimeout = d
	}
	return s
}

func splitEndpoints(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// Resolve merges flags, environment and sources. A later layer only fills
// what earlier ones left empty; the first source that has something is the
// only source used.
func Resolve(flags, env Settings, sources ...Source) (*Target, error) {
	t := &Target{}
	if t.merge(flags) {
		t.Source = append(t.Source, "flags")
	}
	if t.merge(env) {
		t.Source = append(t.Source, "environment (ETCDCTL_*)")
	}
	if len(t.Endpoints) == 0 || t.CACert == "" || t.Cert == "" {
		for _, src := range sources {
			s, found, err := src.Find()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", src.Name, err)
			}
			if !found {
				continue
			}
			if t.merge(s) {
				t.Source = append(t.Source, src.Name)
			}
			break
		}
	}
	if len(t.Endpoints) == 0 {
		looked := ""
		if len(sources) > 0 {
			names := make([]string, len(sources))
			for i, src := range sources {
				names[i] = src.Name
			}
			looked = "; nothing found in: " + strings.Join(names, ", ")
		}
		return nil, fmt.Errorf("%w: pass --endpoints (or set ETCDCTL_ENDPOINTS), or --dir for a cluster made by `etcdkit up`%s", ErrNoEndpoints, looked)
	}
	if t.DialTimeout == 0 {
		t.DialTimeout = DefaultDialTimeout
	}
	if t.CommandTimeout == 0 {
		t.CommandTimeout = DefaultCommandTimeout
	}
	for i, e := range t.Endpoints {
		t.Endpoints[i] = normalizeEndpoint(e, t.usesTLS())
	}
	return t, nil
}

// merge fills empty fields from s and reports whether it used anything.
func (t *Target) merge(s Settings) bool {
	used := false
	take := func(dst *string, v string) {
		if *dst == "" && v != "" {
			*dst, used = v, true
		}
	}
	if len(t.Endpoints) == 0 && len(s.Endpoints) > 0 {
		t.Endpoints, used = append([]string(nil), s.Endpoints...), true
	}
	take(&t.CACert, s.CACert)
	take(&t.Cert, s.Cert)
	take(&t.Key, s.Key)
	if s.InsecureSkipVerify && !t.InsecureSkipVerify {
		t.InsecureSkipVerify, used = true, true
	}
	if t.DialTimeout == 0 && s.DialTimeout != 0 {
		t.DialTimeout = s.DialTimeout
	}
	if t.CommandTimeout == 0 && s.CommandTimeout != 0 {
		t.CommandTimeout = s.CommandTimeout
	}
	return used
}

func (t *Target) usesTLS() bool {
	return t.CACert != "" || t.Cert != "" || t.InsecureSkipVerify
}

// normalizeEndpoint adds a scheme to "host:port" the way etcdctl treats it.
func normalizeEndpoint(e string, tls bool) string {
	if strings.Contains(e, "://") {
		return e
	}
	if tls {
		return "https://" + e
	}
	return "http://" + e
}

// TLS builds the client TLS config, or nil for plain HTTP endpoints.
func (t *Target) TLS() (*tls.Config, error) {
	if !t.usesTLS() && !anyHTTPS(t.Endpoints) {
		return nil, nil
	}
	if (t.Cert == "") != (t.Key == "") {
		return nil, errors.New("--cert and --key must be given together")
	}
	info := transport.TLSInfo{CertFile: t.Cert, KeyFile: t.Key, TrustedCAFile: t.CACert, InsecureSkipVerify: t.InsecureSkipVerify}
	cfg, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("client TLS: %w", err)
	}
	return cfg, nil
}

func anyHTTPS(eps []string) bool {
	for _, e := range eps {
		if u, err := url.Parse(e); err == nil && u.Scheme == "https" {
			return true
		}
	}
	return false
}

// Client opens a client to the given endpoints (all of the target's when
// none are given). clientv3.New does not block: connection problems show on
// the first request.
func (t *Target) Client(endpoints ...string) (*clientv3.Client, error) {
	return t.ClientWith(nil, endpoints...)
}

// ClientWith is Client that also hands onHandshake the state of every TLS
// connection the client makes, once the server's certificate is verified:
// what a member serves is seen on the connection already made, with no
// second dial.
func (t *Target) ClientWith(onHandshake func(tls.ConnectionState), endpoints ...string) (*clientv3.Client, error) {
	if len(endpoints) == 0 {
		endpoints = t.Endpoints
	}
	tlsCfg, err := t.TLS()
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil && onHandshake != nil {
		tlsCfg.VerifyConnection = func(cs tls.ConnectionState) error {
			onHandshake(cs)
			return nil
		}
	}
	return clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		TLS:                  tlsCfg,
		DialTimeout:          t.DialTimeout,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		Logger:               zap.NewNop(),
	})
}

// Ctx is a context bounded by the command timeout.
func (t *Target) Ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, t.CommandTimeout)
}
