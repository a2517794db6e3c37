// Package spec is the cluster spec: one YAML file that describes a cluster
// and that every renderer, `up`, `apply` and the safety checks read. Reading
// follows a fixed order: parse, defaults, resolve relative paths, validate
// everything and report every error with its YAML path.
package spec

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

const (
	APIVersion = "etcdkit.io/v1alpha1"
	Kind       = "Cluster"
)

// Cluster is the whole spec.
type Cluster struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Name becomes the initial cluster token.
	Name    string   `json:"name"`
	PKI     PKI      `json:"pki"`
	Members []Member `json:"members"`
	// DataDir is every member's data directory unless a member overrides it.
	DataDir string  `json:"dataDir,omitempty"`
	Tuning  Tuning  `json:"tuning,omitzero"`
	Backup  *Backup `json:"backup,omitempty"`
	// SSH is how apply reaches every member's host unless the member says
	// otherwise, field by field.
	SSH *SSH `json:"ssh,omitempty"`

	// lines maps YAML paths to lines of the file the spec was read from.
	lines map[string]int
}

// PKI says where certificates live on each host and how they are made.
type PKI struct {
	// Dir is the certificate directory on each host.
	Dir string `json:"dir,omitempty"`
	// Layout is cfssl (ca.pem, server.pem, ...) or kubeadm (ca.crt, ...).
	Layout       string   `json:"layout,omitempty"`
	KeyAlgorithm string   `json:"keyAlgorithm,omitempty"`
	Validity     Duration `json:"validity,omitzero"`
}

// Member is one etcd member.
type Member struct {
	Name string `json:"name"`
	// Host is where apply connects; defaults to the peer URL's host.
	Host      string `json:"host,omitempty"`
	PeerURL   string `json:"peerURL"`
	ClientURL string `json:"clientURL"`
	// DataDir and PKIDir override the cluster-wide values, for several
	// members on one host (as `etcdkit up` runs them).
	DataDir string `json:"dataDir,omitempty"`
	PKIDir  string `json:"pkiDir,omitempty"`
	SSH     *SSH   `json:"ssh,omitempty"`
}

// SSH is how apply reaches a member's host. Empty fields come from the
// cluster-wide ssh block, then ~/.ssh/config, then root and port 22.
type SSH struct {
	User    string `json:"user,omitempty"`
	Port    int    `json:"port,omitempty"`
	KeyPath string `json:"keyPath,omitempty"`
}

// Tuning holds etcd's time and size parameters.
type Tuning struct {
	HeartbeatInterval       Duration `json:"heartbeatInterval,omitzero"`
	ElectionTimeout         Duration `json:"electionTimeout,omitzero"`
	SnapshotCount           uint64   `json:"snapshotCount,omitempty"`
	QuotaBackendBytes       ByteSize `json:"quotaBackendBytes,omitempty"`
	AutoCompactionMode      string   `json:"autoCompactionMode,omitempty"`
	AutoCompactionRetention string   `json:"autoCompactionRetention,omitempty"`
}

// Backup configures scheduled snapshots.
type Backup struct {
	Dir      string `json:"dir,omitempty"`
	Schedule string `json:"schedule,omitempty"`
	Keep     int    `json:"keep,omitempty"`
}

// Member returns the member of that name.
func (c *Cluster) Member(name string) (*Member, bool) {
	for i := range c.Members {
		if c.Members[i].Name == name {
			return &c.Members[i], true
		}
	}
	return nil, false
}

// MemberDataDir is where a member keeps its data.
func (c *Cluster) MemberDataDir(m *Member) string {
	if m.DataDir != "" {
		return m.DataDir
	}
	return c.DataDir
}

// MemberPKIDir is where a member's certificates are.
func (c *Cluster) MemberPKIDir(m *Member) string {
	if m.PKIDir != "" {
		return m.PKIDir
	}
	return c.PKI.Dir
}

// MemberSSH is how apply reaches m's host: m's own ssh fields, each empty
// one filled from the cluster-wide ssh block.
func (c *Cluster) MemberSSH(m *Member) SSH {
	var s SSH
	if c.SSH != nil {
		s = *c.SSH
	}
	if o := m.SSH; o != nil {
		if o.User != "" {
			s.User = o.User
		}
		if o.Port != 0 {
			s.Port = o.Port
		}
		if o.KeyPath != "" {
			s.KeyPath = o.KeyPath
		}
	}
	return s
}

// InitialCluster is etcd's initial-cluster value for the whole spec.
func (c *Cluster) InitialCluster() string {
	parts := make([]string, len(c.Members))
	for i, m := range c.Members {
		parts[i] = m.Name + "=" + m.PeerURL
	}
	return strings.Join(parts, ",")
}

// ClientURLs lists every member's client URL, the value of kube-apiserver's
// --etcd-servers.
func (c *Cluster) ClientURLs() []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = m.ClientURL
	}
	return out
}

// Duration is a time.Duration written as "100ms" or "43800h" in YAML.
type Duration struct{ time.Duration }

func (d Duration) MarshalJSON() ([]byte, error) {
	if d.Duration == 0 {
		return []byte(`""`), nil
	}
	return json.Marshal(d.String())
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration such as 100ms or 1h, got %s", b)
	}
	if s == "" {
		d.Duration = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. 100ms, 1h)", s)
	}
	d.Duration = v
	return nil
}

// IsZero lets omitempty-like omitzero drop unset durations.
func (d Duration) IsZero() bool { return d.Duration == 0 }

// ByteSize is a size written as "8GiB", "512MiB" or a plain byte count.
type ByteSize int64

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// ParseByteSize reads "8GiB", "8Gi", "8GB" or "8589934592".
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	for _, u := range byteUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("invalid size %q (want e.g. 8GiB, 512MiB)", s)
			}
			return ByteSize(n * float64(u.mult)), nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q (want e.g. 8GiB, 512MiB)", s)
	}
	return ByteSize(n), nil
}

func (b ByteSize) String() string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if int64(b) >= u.mult && int64(b)%u.mult == 0 {
			return fmt.Sprintf("%d%s", int64(b)/u.mult, u.suffix)
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

func (b ByteSize) MarshalJSON() ([]byte, error) { return json.Marshal(b.String()) }

func (b *ByteSize) UnmarshalJSON(data []byte) error {
	var n int64
	if err := json.Unmarshal(data, &n); err == nil {
		*b = ByteSize(n)
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("want a size such as 8GiB, got %s", data)
	}
	v, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}
