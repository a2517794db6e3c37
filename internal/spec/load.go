package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/etcdkit/etcdkit/internal/fsutil"
	"github.com/etcdkit/etcdkit/internal/pki"
)

// Defaults for a spec that leaves them out; they match etcd's and the
// runbook's.
const (
	DefaultName    = "etcd-cluster"
	DefaultPKIDir  = "/etc/etcd/ssl"
	DefaultDataDir = "/var/lib/etcd/default.etcd"
)

// FieldError is a problem at a YAML path of a spec.
type FieldError struct {
	File string
	Path string
	Msg  string
}

func (e *FieldError) Error() string {
	if e.File != "" {
		return fmt.Sprintf("%s: %s: %s", e.File, e.Path, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Path, e.Msg)
}

// Load reads, defaults, resolves and validates a spec file. Warnings are
// returned even when err is nil.
func Load(path string) (*Cluster, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read cluster spec: %w", err)
	}
	c, err := Parse(path, data)
	if err != nil {
		return nil, nil, err
	}
	abs, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, nil, err
	}
	c.ResolvePaths(abs)
	warnings, err := c.Validate(path)
	return c, warnings, err
}

// Parse decodes a spec strictly (unknown fields are errors) and applies
// defaults.
func Parse(name string, data []byte) (*Cluster, error) {
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, &FieldError{File: name, Path: "(file)", Msg: "not valid YAML: " + err.Error()}
	}
	var c Cluster
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, &FieldError{File: name, Path: "(file)", Msg: strings.TrimPrefix(err.Error(), "json: ")}
	}
	c.SetDefaults()
	return &c, nil
}

// SetDefaults fills what the spec left out.
func (c *Cluster) SetDefaults() {
	if c.APIVersion == "" {
		c.APIVersion = APIVersion
	}
	if c.Kind == "" {
		c.Kind = Kind
	}
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.PKI.Dir == "" {
		c.PKI.Dir = DefaultPKIDir
	}
	if c.PKI.Layout == "" {
		c.PKI.Layout = string(pki.LayoutCfssl)
	}
	if c.PKI.KeyAlgorithm == "" {
		c.PKI.KeyAlgorithm = string(pki.DefaultKeyAlgorithm)
	}
	if c.PKI.Validity.Duration == 0 {
		c.PKI.Validity.Duration = pki.DefaultLeafValidity
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Tuning.HeartbeatInterval.Duration == 0 {
		c.Tuning.HeartbeatInterval.Duration = 100 * time.Millisecond
	}
	if c.Tuning.ElectionTimeout.Duration == 0 {
		c.Tuning.ElectionTimeout.Duration = 1000 * time.Millisecond
	}
	for i := range c.Members {
		m := &c.Members[i]
		if m.Host == "" {
			if u, err := url.Parse(m.PeerURL); err == nil {
				m.Host = u.Hostname()
			}
		}
	}
}

// ResolvePaths makes relative paths absolute against base (the spec's
// directory), so a spec works from any working directory.
func (c *Cluster) ResolvePaths(base string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	abs(&c.PKI.Dir)
	abs(&c.DataDir)
	for i := range c.Members {
		abs(&c.Members[i].DataDir)
		abs(&c.Members[i].PKIDir)
	}
	if c.Backup != nil {
		abs(&c.Backup.Dir)
	}
}

// Validate checks the whole spec and reports every problem with its path.
func (c *Cluster) Validate(file string) (warnings []string, err error) {
	var errs []error
	fail := func(path, format string, args ...any) {
		errs = append(errs, &FieldError{File: file, Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if c.APIVersion != APIVersion {
		fail("apiVersion", "%q is not supported; use %s", c.APIVersion, APIVersion)
	}
	if c.Kind != Kind {
		fail("kind", "%q is not supported; use %s", c.Kind, Kind)
	}
	if _, err := pki.ParseLayout(c.PKI.Layout); err != nil {
		fail("pki.layout", "%v", err)
	}
	if _, err := pki.ParseKeyAlgorithm(c.PKI.KeyAlgorithm); err != nil {
		fail("pki.keyAlgorithm", "%v", err)
	}
	if len(c.Members) == 0 {
		fail("members", "at least one member is required")
	}
	names, peers, clients := map[string]int{}, map[string]int{}, map[string]int{}
	for i, m := range c.Members {
		p := fmt.Sprintf("members[%d]", i)
		if m.Name == "" {
			fail(p+".name", "required")
		} else if j, dup := names[m.Name]; dup {
			fail(p+".name", "%q is also the name of members[%d]; names must be unique", m.Name, j)
		} else {
			names[m.Name] = i
		}
		for _, f := range []struct {
			key, val string
			seen     map[string]int
		}{{"peerURL", m.PeerURL, peers}, {"clientURL", m.ClientURL, clients}} {
			if f.val == "" {
				fail(p+"."+f.key, "required")
				continue
			}
			u, err := url.Parse(f.val)
			switch {
			case err != nil:
				fail(p+"."+f.key, "invalid URL %q", f.val)
				continue
			case u.Scheme != "https":
				fail(p+"."+f.key, "%q must be https: etcdkit clusters use TLS with client certificates", f.val)
			case u.Port() == "":
				fail(p+"."+f.key, "%q needs a port", f.val)
			case u.Path != "" && u.Path != "/":
				fail(p+"."+f.key, "%q must not have a path", f.val)
			}
			if j, dup := f.seen[u.Host]; dup {
				fail(p+"."+f.key, "%q is also used by members[%d]", f.val, j)
			} else {
				f.seen[u.Host] = i
			}
		}
		if net.ParseIP(m.Host) == nil && m.Host != "" && strings.ContainsAny(m.Host, " /") {
			fail(p+".host", "invalid host %q", m.Host)
		}
	}
	if n := len(c.Members); n > 0 && n%2 == 0 {
		warnings = append(warnings, fmt.Sprintf("%s: members: %d members tolerate no more failures than %d; use an odd number", file, n, n-1))
	}
	hb, el := c.Tuning.HeartbeatInterval.Duration, c.Tuning.ElectionTimeout.Duration
	if el < 5*hb {
		fail("tuning.electionTimeout", "%v is less than 5 x heartbeatInterval (%v)", el, hb)
	}
	if el > 50*time.Second {
		fail("tuning.electionTimeout", "%v is above etcd's limit of 50s", el)
	}
	if hb%time.Millisecond != 0 || el%time.Millisecond != 0 {
		fail("tuning", "heartbeatInterval and electionTimeout are whole milliseconds in etcd")
	}
	if q := c.Tuning.QuotaBackendBytes; q < 0 || q > 100<<30 {
		fail("tuning.quotaBackendBytes", "%v is outside etcd's limits (0 to 100GiB; 8GiB is etcd's suggested maximum)", q)
	}
	if len(errs) > 0 {
		return warnings, errors.Join(errs...)
	}
	return warnings, nil
}

// Write saves a spec atomically.
func (c *Cluster) Write(path string) error {
	data, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	return fsutil.WriteFile(path, data, fsutil.PublicFile)
}
