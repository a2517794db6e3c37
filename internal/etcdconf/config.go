// Package etcdconf reads, validates and writes etcd's own configuration
// file format (the YAML that `etcd --config-file` reads), and turns it into
// an embed.Config. etcd's embed.ConfigFromFile exits the process on a
// malformed URL and wants durations as integer nanoseconds; this package
// parses and validates first, reports every problem with the key that holds
// it, and only then builds the embed.Config.
package etcdconf

import (
	"fmt"
	"net/url"
	"strings"
)

// Config is an etcd member configuration. The fields etcdkit reasons about
// are typed; every other key etcd accepts is kept in Extra and handed to
// etcd unchanged. Field tags are etcd's config-file keys.
type Config struct {
	Name    string `json:"name,omitempty"`
	DataDir string `json:"data-dir,omitempty"`
	WalDir  string `json:"wal-dir,omitempty"`

	SnapshotCount     uint64 `json:"snapshot-count,omitempty"`
	HeartbeatInterval uint   `json:"heartbeat-interval,omitempty"` // milliseconds
	ElectionTimeout   uint   `json:"election-timeout,omitempty"`   // milliseconds
	QuotaBackendBytes int64  `json:"quota-backend-bytes,omitempty"`
	MaxLearners       int    `json:"max-learners,omitempty"`

	// URL lists are comma-separated, as in etcd's file format.
	ListenPeerURLs           string `json:"listen-peer-urls,omitempty"`
	ListenClientURLs         string `json:"listen-client-urls,omitempty"`
	ListenClientHTTPURLs     string `json:"listen-client-http-urls,omitempty"`
	ListenMetricsURLs        string `json:"listen-metrics-urls,omitempty"`
	InitialAdvertisePeerURLs string `json:"initial-advertise-peer-urls,omitempty"`
	AdvertiseClientURLs      string `json:"advertise-client-urls,omitempty"`

	InitialCluster      string `json:"initial-cluster,omitempty"`
	InitialClusterToken string `json:"initial-cluster-token,omitempty"`
	InitialClusterState string `json:"initial-cluster-state,omitempty"`
	StrictReconfigCheck *bool  `json:"strict-reconfig-check,omitempty"`

	AutoCompactionMode      string `json:"auto-compaction-mode,omitempty"`
	AutoCompactionRetention string `json:"auto-compaction-retention,omitempty"`

	ClientTransportSecurity Security `json:"client-transport-security,omitzero"`
	PeerTransportSecurity   Security `json:"peer-transport-security,omitzero"`

	Logger     string   `json:"logger,omitempty"`
	LogLevel   string   `json:"log-level,omitempty"`
	LogFormat  string   `json:"log-format,omitempty"`
	LogOutputs []string `json:"log-outputs,omitempty"`

	// ForceNewCluster is accepted so an operator's file can be read, but
	// member run refuses it: every start with it set shrinks the cluster to
	// one member again. `etcdkit cluster recover` sets it for one start.
	ForceNewCluster bool `json:"force-new-cluster,omitempty"`

	// Etcdkit holds etcdkit's own settings. Stock etcd ignores the key.
	Etcdkit *Extensions `json:"etcdkit,omitempty"`

	// Extra holds every other etcd key, by its file name, as parsed.
	Extra map[string]any `json:"-"`

	// origin is where each key was set, for messages; nil for a config
	// built in code.
	origin *origin
}

// Security is a client-transport-security or peer-transport-security block.
type Security struct {
	CertFile                  string   `json:"cert-file,omitempty"`
	KeyFile                   string   `json:"key-file,omitempty"`
	ClientCertFile            string   `json:"client-cert-file,omitempty"`
	ClientKeyFile             string   `json:"client-key-file,omitempty"`
	ClientCertAuth            bool     `json:"client-cert-auth,omitempty"`
	TrustedCAFile             string   `json:"trusted-ca-file,omitempty"`
	AutoTLS                   bool     `json:"auto-tls,omitempty"`
	AllowedCN                 []string `json:"allowed-cn,omitempty"`
	AllowedHostname           []string `json:"allowed-hostname,omitempty"`
	SkipClientSANVerification bool     `json:"skip-client-san-verification,omitempty"`
}

// Enabled reports whether the block configures TLS at all.
func (s Security) Enabled() bool {
	return s.CertFile != "" || s.KeyFile != "" || s.TrustedCAFile != "" || s.AutoTLS
}

// Extensions are etcdkit's settings that live beside etcd's in the same
// file, under the key "etcdkit".
type Extensions struct {
	// InsecureHTTP allows plain-HTTP URLs, and only on loopback addresses.
	InsecureHTTP bool `json:"insecure-http,omitempty"`
	// Backup configures scheduled snapshots taken by the leader.
	Backup *Backup `json:"backup,omitempty"`
	// Join configures the join endpoint: new hosts join with a token and
	// get their certificates signed here. Only a member holding the CA key
	// can serve it; it is off unless Listen is set.
	Join *Join `json:"join,omitempty"`
}

// Join configures the join endpoint (`etcdkit join`).
type Join struct {
	// Listen is the endpoint's own HTTPS URL (https://IP:2382); empty
	// leaves the endpoint off.
	Listen string `json:"listen,omitempty"`
	// CADir is where the CA certificate and key are; default the
	// directory of peer-transport-security.trusted-ca-file.
	CADir string `json:"ca-dir,omitempty"`
	// BackupDir receives the snapshot taken before each member add;
	// default etcdkit.backup.dir, else backups/ beside the data dir.
	BackupDir string `json:"backup-dir,omitempty"`
}

// Backup configures scheduled snapshots.
type Backup struct {
	Dir      string `json:"dir,omitempty"`
	Schedule string `json:"schedule,omitempty"`
	Keep     int    `json:"keep,omitempty"`
}

// Defaults etcdkit writes into configs it renders; etcd's own defaults
// where etcd has one.
const (
	DefaultHeartbeatMs = 100
	DefaultElectionMs  = 1000
)

// URLs parses a comma-separated URL list.
func URLs(list string) ([]url.URL, error) {
	var out []url.URL
	for _, raw := range SplitList(list) {
		u, err := ParseURL(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, *u)
	}
	return out, nil
}

// SplitList splits a comma-separated value, trimming blanks.
func SplitList(list string) []string {
	var out []string
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// ParseURL parses one member URL the way etcd requires it: scheme http,
// https, unix or unixs; host and port; no path.
func ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid URL %q: %w", raw, err)
	}
	switch u.Scheme {
	case "http", "https":
	case "unix", "unixs":
		return u, nil
	default:
		return nil, fmt.Errorf("invalid URL %q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("invalid URL %q: missing host", raw)
	}
	if u.Port() == "" {
		return nil, fmt.Errorf("invalid URL %q: missing port (host:port)", raw)
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("invalid URL %q: a member URL has no path", raw)
	}
	return u, nil
}

// InitialCluster parses "name=url,name=url" into name -> peer URLs, in
// order of first appearance.
func ParseInitialCluster(s string) (names []string, urls map[string][]string, err error) {
	urls = map[string][]string{}
	for _, part := range SplitList(s) {
		name, u, ok := strings.Cut(part, "=")
		name, u = strings.TrimSpace(name), strings.TrimSpace(u)
		if !ok || name == "" || u == "" {
			return nil, nil, fmt.Errorf("invalid entry %q: want name=peer-url", part)
		}
		if _, err := ParseURL(u); err != nil {
			return nil, nil, fmt.Errorf("member %q: %w", name, err)
		}
		if _, seen := urls[name]; !seen {
			names = append(names, name)
		}
		urls[name] = append(urls[name], u)
	}
	return names, urls, nil
}

// FormatInitialCluster is the inverse of ParseInitialCluster.
func FormatInitialCluster(names []string, urls map[string][]string) string {
	var parts []string
	for _, n := range names {
		for _, u := range urls[n] {
			parts = append(parts, n+"="+u)
		}
	}
	return strings.Join(parts, ",")
}
