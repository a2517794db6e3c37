package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"sigs.k8s.io/yaml"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
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
	// Line is the 1-based line of the path in the file, 0 when unknown.
	Line int
	Path string
	Msg  string
}

func (e *FieldError) Error() string {
	loc := e.File
	if loc != "" && e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", loc, e.Line)
	}
	if loc != "" {
		return fmt.Sprintf("%s: %s: %s", loc, e.Path, e.Msg)
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

// Parse decodes a spec strictly and applies defaults. Every unknown field
// (with a "did you mean") and every value of the wrong type is reported,
// each with its YAML path and line.
func Parse(name string, data []byte) (*Cluster, error) {
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, &FieldError{File: name, Path: "(file)", Msg: "not valid YAML: " + err.Error()}
	}
	var raw map[string]any
	if err := json.Unmarshal(j, &raw); err != nil || raw == nil {
		return nil, &FieldError{File: name, Path: "(file)", Msg: "not a cluster spec: the top level must be a mapping (apiVersion, kind, name, pki, members, ...)"}
	}
	c := &Cluster{lines: etcdconf.YAMLLines(data)}
	var errs []error
	fail := func(path, format string, args ...any) {
		errs = append(errs, &FieldError{File: name, Line: c.lines[path], Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	checkKeys(raw, reflect.TypeOf(Cluster{}), "", fail)
	// Decode field by field so a type error names its path.
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		v := raw[k]
		sub, isMap := v.(map[string]any)
		switch {
		case k == "members":
			list, ok := v.([]any)
			if !ok {
				if v != nil {
					fail(k, "want a list of members")
				}
				continue
			}
			c.Members = make([]Member, len(list))
			for i, el := range list {
				p := fmt.Sprintf("members[%d]", i)
				m, ok := el.(map[string]any)
				if !ok {
					fail(p, "want a mapping (name, peerURL, clientURL, ...)")
					continue
				}
				for _, f := range slices.Sorted(maps.Keys(m)) {
					if err := decodeInto(&c.Members[i], map[string]any{f: m[f]}); err != nil {
						fail(p+"."+f, "%s", typeMessage(err))
					}
				}
			}
		case isMap:
			for _, f := range slices.Sorted(maps.Keys(sub)) {
				if err := decodeInto(c, map[string]any{k: map[string]any{f: sub[f]}}); err != nil {
					fail(k+"."+f, "%s", typeMessage(err))
				}
			}
		default:
			if err := decodeInto(c, map[string]any{k: v}); err != nil {
				fail(k, "%s", typeMessage(err))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	c.SetDefaults()
	return c, nil
}

func decodeInto(dst any, v map[string]any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, dst)
}

func typeMessage(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		want := te.Type.Kind().String()
		switch te.Type.Kind() {
		case reflect.String:
			want = "a string"
		case reflect.Int, reflect.Int64, reflect.Uint64, reflect.Uint:
			want = "a whole number"
		case reflect.Bool:
			want = "true or false"
		case reflect.Struct, reflect.Map, reflect.Pointer:
			want = "a mapping"
		case reflect.Slice:
			want = "a list"
		}
		return fmt.Sprintf("want %s, got %s", want, te.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

var unmarshalerType = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()

// checkKeys reports every key of v that t has no field for.
func checkKeys(v any, t reflect.Type, path string, fail func(path, format string, args ...any)) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("json"), ",")[0]
			if tag == "" || tag == "-" || !f.IsExported() {
				continue
			}
			fields[tag] = f.Type
			names = append(names, tag)
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			p := k
			if path != "" {
				p = path + "." + k
			}
			ft, ok := fields[k]
			if !ok {
				hint := ""
				if s := etcdconf.Suggest(k, names); s != "" {
					hint = fmt.Sprintf("; did you mean %q?", s)
				} else if s := caseInsensitive(k, names); s != "" {
					hint = fmt.Sprintf("; did you mean %q?", s)
				}
				fail(p, "unknown field%s", hint)
				continue
			}
			checkKeys(m[k], ft, p, fail)
		}
	case reflect.Slice:
		list, ok := v.([]any)
		if !ok {
			return
		}
		for i, el := range list {
			checkKeys(el, t.Elem(), fmt.Sprintf("%s[%d]", path, i), fail)
		}
	}
}

func caseInsensitive(k string, names []string) string {
	for _, n := range names {
		if strings.EqualFold(k, n) {
			return n
		}
	}
	return ""
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
	// A key path is on the operator's machine; "~/..." is left for apply
	// to expand, as ssh does.
	keyPath := func(s *SSH) {
		if s != nil && !strings.HasPrefix(s.KeyPath, "~") {
			abs(&s.KeyPath)
		}
	}
	abs(&c.PKI.Dir)
	abs(&c.DataDir)
	keyPath(c.SSH)
	for i := range c.Members {
		abs(&c.Members[i].DataDir)
		abs(&c.Members[i].PKIDir)
		keyPath(c.Members[i].SSH)
	}
	if c.Backup != nil {
		abs(&c.Backup.Dir)
	}
}

// Validate checks the whole spec and reports every problem with its path
// (and line, for a spec read from a file). Warnings are returned apart;
// `--strict` callers treat them as errors.
func (c *Cluster) Validate(file string) (warnings []string, err error) {
	var errs []error
	fail := func(path, format string, args ...any) {
		errs = append(errs, &FieldError{File: file, Line: c.lines[path], Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	warn := func(path, format string, args ...any) {
		warnings = append(warnings, (&FieldError{File: file, Line: c.lines[path], Path: path, Msg: fmt.Sprintf(format, args...)}).Error())
	}
	if c.APIVersion != APIVersion {
		fail("apiVersion", "%q is not supported; use %s", c.APIVersion, APIVersion)
	}
	if c.Kind != Kind {
		fail("kind", "%q is not supported; use %s", c.Kind, Kind)
	}
	if strings.ContainsAny(c.Name, ",= \t") {
		fail("name", "%q: the initial cluster token cannot contain commas, '=' or blanks", c.Name)
	}
	if _, err := pki.ParseLayout(c.PKI.Layout); err != nil {
		fail("pki.layout", "%v", err)
	}
	if _, err := pki.ParseKeyAlgorithm(c.PKI.KeyAlgorithm); err != nil {
		fail("pki.keyAlgorithm", "%v", err)
	}
	if c.PKI.Validity.Duration < 0 {
		fail("pki.validity", "%v is negative", c.PKI.Validity.Duration)
	}
	if len(c.Members) == 0 {
		fail("members", "at least one member is required")
	}
	// Every URL's host:port must be used once, by one member and one role:
	// a peer URL equal to another member's client URL cannot both bind.
	names, hosts := map[string]int{}, map[string]string{}
	for i, m := range c.Members {
		p := fmt.Sprintf("members[%d]", i)
		switch {
		case m.Name == "":
			fail(p+".name", "required")
		case strings.ContainsAny(m.Name, ",= \t"):
			fail(p+".name", "%q: a member name cannot contain commas, '=' or blanks (etcd's initial-cluster is name=url,...)", m.Name)
		default:
			if j, dup := names[m.Name]; dup {
				fail(p+".name", "%q is also the name of members[%d]; names must be unique", m.Name, j)
			} else {
				names[m.Name] = i
			}
		}
		for _, f := range []struct{ key, val string }{{"peerURL", m.PeerURL}, {"clientURL", m.ClientURL}} {
			path := p + "." + f.key
			if f.val == "" {
				fail(path, "required")
				continue
			}
			u, err := url.Parse(f.val)
			switch {
			case err != nil:
				fail(path, "invalid URL %q", f.val)
				continue
			case u.Scheme != "https":
				fail(path, "%q must be https: etcdkit clusters use TLS with client certificates", f.val)
			case u.Port() == "":
				fail(path, "%q needs a port", f.val)
			case u.Path != "" && u.Path != "/":
				fail(path, "%q must not have a path", f.val)
			}
			if prev, dup := hosts[u.Host]; dup {
				fail(path, "%q is also %s; every member and role needs its own host:port", f.val, prev)
			} else {
				hosts[u.Host] = path
			}
		}
		if net.ParseIP(m.Host) == nil && m.Host != "" && strings.ContainsAny(m.Host, " /") {
			fail(p+".host", "invalid host %q", m.Host)
		}
		validateSSH(m.SSH, p+".ssh", fail)
	}
	validateSSH(c.SSH, "ssh", fail)
	if n := len(c.Members); n > 0 && n%2 == 0 {
		warn("members", "%d members tolerate no more failures than %d; use an odd number", n, n-1)
	}
	hb, el := c.Tuning.HeartbeatInterval.Duration, c.Tuning.ElectionTimeout.Duration
	switch {
	case hb <= 0:
		fail("tuning.heartbeatInterval", "%v must be positive", hb)
	case el < 5*hb:
		fail("tuning.electionTimeout", "%v is less than 5 x heartbeatInterval (%v); etcd refuses it (10 x is usual)", el, hb)
	}
	if el > 50*time.Second {
		fail("tuning.electionTimeout", "%v is above etcd's limit of 50s", el)
	}
	if hb%time.Millisecond != 0 || el%time.Millisecond != 0 {
		fail("tuning", "heartbeatInterval and electionTimeout are whole milliseconds in etcd")
	}
	switch q := c.Tuning.QuotaBackendBytes; {
	case q < 0 || q > 100<<30:
		fail("tuning.quotaBackendBytes", "%v is outside etcd's limits (0 for the 2GiB default, up to 100GiB)", q)
	case q > 8<<30:
		warn("tuning.quotaBackendBytes", "%v is above etcd's suggested maximum of 8GiB: defragmentation and restores get slow", q)
	}
	c.validateCompaction(fail)
	if b := c.Backup; b != nil {
		switch {
		case b.Schedule == "" && (b.Dir != "" || b.Keep != 0):
			fail("backup.schedule", `required to take scheduled snapshots: a cron expression such as "0 */6 * * *" or "@every 6h"`)
		case b.Schedule != "":
			if _, err := cronParser.Parse(b.Schedule); err != nil {
				fail("backup.schedule", `invalid cron expression %q (%v); use 5 fields such as "0 */6 * * *", or "@every 6h"`, b.Schedule, err)
			}
			if b.Dir == "" {
				fail("backup.dir", "required with a schedule: the directory the snapshots go to, e.g. /var/backups/etcd")
			}
		}
		if b.Keep < 0 {
			fail("backup.keep", "%d is negative; say how many snapshots to keep, e.g. 28", b.Keep)
		}
	}
	if len(errs) > 0 {
		return warnings, errors.Join(errs...)
	}
	return warnings, nil
}

// validateSSH checks an ssh block's port and user.
func validateSSH(s *SSH, path string, fail func(path, format string, args ...any)) {
	if s == nil {
		return
	}
	if s.Port < 0 || s.Port > 65535 {
		fail(path+".port", "%d is not a TCP port (1-65535); leave it out for 22 or ~/.ssh/config's Port", s.Port)
	}
	if strings.ContainsAny(s.User, " \t:@/") {
		fail(path+".user", "%q is not a user name", s.User)
	}
}

// cronParser reads what scheduled backups in `member run` read: standard
// 5-field cron, an optional seconds field, and descriptors ("@every 6h").
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// validateCompaction checks the auto-compaction pair as etcd reads it:
// periodic retention is a duration or whole hours, revision retention a
// revision count.
func (c *Cluster) validateCompaction(fail func(path, format string, args ...any)) {
	t := c.Tuning
	switch t.AutoCompactionMode {
	case "", "periodic":
		if r := t.AutoCompactionRetention; r != "" {
			if _, err := strconv.Atoi(r); err != nil {
				if d, err := time.ParseDuration(r); err != nil || d < 0 {
					fail("tuning.autoCompactionRetention", "%q: want a duration such as 1h or 30m, or whole hours", r)
				}
			}
		}
	case "revision":
		if r := t.AutoCompactionRetention; r != "" {
			if n, err := strconv.ParseInt(r, 10, 64); err != nil || n < 0 {
				fail("tuning.autoCompactionRetention", "%q: with autoCompactionMode revision, want the number of revisions to keep", r)
			}
		}
	default:
		fail("tuning.autoCompactionMode", "%q: must be periodic or revision", t.AutoCompactionMode)
	}
}

// Write saves a spec atomically.
func (c *Cluster) Write(path string) error {
	data, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	return fsutil.WriteFile(path, data, fsutil.PublicFile)
}
