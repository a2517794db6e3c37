package etcdconf

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Rule ids of problems only an environment file has.
const (
	RuleUnsupported = "unsupported-setting"
)

// ExtensionEnvPrefix is the prefix of etcdkit's own settings in an
// environment file; etcd reads only ETCD_* and ignores them.
const ExtensionEnvPrefix = "ETCDKIT"

// envIgnored are ETCD_* variables etcd reads outside its flags.
var envIgnored = map[string]bool{
	// checked by etcdmain before flags, to run on an unsupported arch
	"ETCD_UNSUPPORTED_ARCH": true,
}

// extensionEnv maps ETCDKIT_* variables to etcdkit's keys, derived from
// the Extensions type: ETCDKIT_BACKUP_DIR is etcdkit.backup.dir.
var extensionEnv = func() map[string]string {
	out := map[string]string{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		for i := 0; i < t.NumField(); i++ {
			tag := strings.Split(t.Field(i).Tag.Get("json"), ",")[0]
			path := prefix + "." + tag
			ft := t.Field(i).Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				walk(ft, path)
				continue
			}
			name := strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(strings.TrimPrefix(path, extensionsKey+".")))
			out[ExtensionEnvPrefix+"_"+name] = path
		}
	}
	walk(reflect.TypeOf(Extensions{}), extensionsKey)
	return out
}()

func extensionEnvName(key string) string {
	for n, k := range extensionEnv {
		if k == key {
			return n
		}
	}
	return ""
}

// parseEnv reads an environment file of ETCD_* variables into a Config,
// mapping each variable to the config-file key etcd would set from it.
func parseEnv(name string, data []byte) (*Config, []*FieldError) {
	vars, syntax := ParseEnvFile(data)
	var errs []*FieldError
	for _, e := range syntax {
		errs = append(errs, &FieldError{File: name, Line: e.Line, Msg: e.Msg, Rule: RuleSyntax})
	}
	c, more := fromVars(name, vars, func(v EnvVar) string { return v.Name })
	return c, append(errs, more...)
}

// Arg is one --flag=value of an etcd command line.
type Arg struct {
	Flag  string
	Value string
	// Line is where the argument is, for messages (a manifest's line).
	Line int
}

// FromArgs reads etcd's command-line flags (a static pod's command) into a
// Config, as etcd would read them. Messages name each flag as --flag.
func FromArgs(name string, args []Arg) (*Config, []*FieldError) {
	var vars []EnvVar
	var errs []*FieldError
	shown := map[string]string{}
	for _, a := range args {
		env := EnvName(a.Flag)
		if _, known := EnvFlag(env); !known {
			var flags []string
			for f := range etcdFlags {
				flags = append(flags, f)
			}
			sort.Strings(flags)
			hint := ""
			if s := Suggest(a.Flag, flags); s != "" {
				hint = fmt.Sprintf("; did you mean --%s?", s)
			}
			errs = append(errs, &FieldError{File: name, Line: a.Line, Key: "--" + a.Flag, Msg: "etcd has no such flag and refuses to start" + hint, Rule: RuleUnknownKey})
			continue
		}
		vars = append(vars, EnvVar{Name: env, Value: a.Value, Line: a.Line})
		shown[env] = "--" + a.Flag
	}
	c, more := fromVars(name, vars, func(v EnvVar) string { return shown[v.Name] })
	c.origin.flags = true
	for k, p := range c.origin.keys {
		c.origin.keys[k] = position{Line: p.Line, Name: shown[p.Name]}
	}
	return c, append(errs, more...)
}

// fromVars maps variables to config-file keys; shown names a variable in
// messages.
func fromVars(name string, vars []EnvVar, shown func(EnvVar) string) (*Config, []*FieldError) {
	c := &Config{origin: &origin{env: true, keys: map[string]position{}}}
	var errs []*FieldError
	raw := map[string]any{}
	for _, v := range vars {
		fail := func(rule, format string, args ...any) {
			errs = append(errs, &FieldError{File: name, Line: v.Line, Key: shown(v), Msg: fmt.Sprintf(format, args...), Rule: rule})
		}
		key, rule, msg := EnvKey(v.Name)
		switch {
		case rule != "":
			fail(rule, "%s", msg)
			continue
		case key == "":
			continue // not etcd's: a variable for the unit's command line
		case v.Value == "":
			continue // etcd skips empty variables
		}
		val, err := envValue(key, v.Value)
		if err != nil {
			fail(RuleInvalidValue, "%v", err)
			continue
		}
		setPath(raw, key, val)
		c.origin.keys[key] = position{Line: v.Line, Name: v.Name}
	}
	return c, append(errs, c.fromMap(name, raw)...)
}

// EnvKey is the config-file key a variable of an environment file sets.
// key is "" for a variable that is not etcd's or etcdkit's; rule and msg
// describe a variable etcd does not read (a typo, a removed setting) or one
// etcdkit cannot apply.
func EnvKey(name string) (key, rule, msg string) {
	if k, ok := extensionEnv[name]; ok {
		return k, "", ""
	}
	if strings.HasPrefix(name, ExtensionEnvPrefix+"_") {
		var names []string
		for n := range extensionEnv {
			names = append(names, n)
		}
		sort.Strings(names)
		return "", RuleUnknownKey, "unknown etcdkit variable" + didYouMean(name, names)
	}
	if !strings.HasPrefix(name, EnvPrefix+"_") || envIgnored[name] {
		return "", "", ""
	}
	f, known := EnvFlag(name)
	if !known {
		rest := strings.TrimPrefix(name, EnvPrefix+"_EXPERIMENTAL_")
		if rest != name {
			if f, ok := EnvFlag(EnvPrefix + "_" + rest); ok && etcdFlags[f] {
				return "", RuleRemoved, fmt.Sprintf("experimental flags were removed in etcd 3.7; it is now %s", EnvPrefix+"_"+rest)
			}
			return "", RuleRemoved, "experimental flags were removed in etcd 3.7; most became feature gates (ETCD_FEATURE_GATES=Name=true); see `etcd --help`"
		}
		return "", RuleUnknownKey, "etcd does not read this variable" + didYouMean(name, KnownEnvNames()) + " (etcd warns and ignores it)"
	}
	k, reason := FlagKey(f)
	if reason != "" {
		if _, removed := removedSettings[f]; removed {
			return "", RuleRemoved, reason
		}
		return "", RuleUnsupported, reason
	}
	return k, "", ""
}

// envValue converts a variable's text into the value the key's type wants,
// with the rules etcd's flag parsing applies.
func envValue(key, s string) (any, error) {
	t := keyType(key)
	if t == nil {
		return s, nil
	}
	if t == reflect.TypeOf(time.Duration(0)) {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("invalid duration %q (want e.g. 10m or 500ms)", s)
		}
		return int64(d), nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("invalid value %q: want true or false", s)
		}
		return b, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if _, err := strconv.ParseInt(strings.TrimSpace(s), 0, t.Bits()); err != nil {
			return nil, fmt.Errorf("invalid value %q: want a whole number", s)
		}
		return json.Number(strings.TrimSpace(s)), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if _, err := strconv.ParseUint(strings.TrimSpace(s), 0, t.Bits()); err != nil {
			return nil, fmt.Errorf("invalid value %q: want a whole number, 0 or more", s)
		}
		return json.Number(strings.TrimSpace(s)), nil
	case reflect.Float32, reflect.Float64:
		if _, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err != nil {
			return nil, fmt.Errorf("invalid value %q: want a number", s)
		}
		return json.Number(strings.TrimSpace(s)), nil
	case reflect.Slice:
		var out []any
		for _, item := range SplitList(s) {
			out = append(out, item)
		}
		return out, nil
	}
	return s, nil
}

// setPath sets a dotted key in nested maps.
func setPath(m map[string]any, key string, v any) {
	parts := strings.Split(key, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
}

// Setting is one setting of a config as etcd's command line and
// environment spell it.
type Setting struct {
	// Section groups settings in a rendered file.
	Section string
	// Key is the config-file key ("client-transport-security.cert-file").
	Key string
	// Flag is etcd's flag name ("cert-file"); "" for etcdkit's own settings.
	Flag string
	// Env is the variable: ETCD_CERT_FILE, or ETCDKIT_BACKUP_DIR.
	Env   string
	Value string
}

// settingSections orders settings the way the runbooks group them.
var settingSections = []struct {
	name  string
	flags []string
}{
	{"Member", []string{"name", "data-dir", "wal-dir", "listen-peer-urls", "listen-client-urls", "listen-client-http-urls", "listen-metrics-urls",
		"snapshot-count", "heartbeat-interval", "election-timeout", "quota-backend-bytes", "max-learners", "auto-compaction-mode", "auto-compaction-retention"}},
	{"Clustering", []string{"initial-advertise-peer-urls", "advertise-client-urls", "initial-cluster", "initial-cluster-token", "initial-cluster-state", "strict-reconfig-check"}},
	{"Security", []string{"cert-file", "key-file", "client-cert-file", "client-key-file", "client-cert-auth", "trusted-ca-file", "auto-tls", "client-cert-allowed-hostname",
		"peer-cert-file", "peer-key-file", "peer-client-cert-file", "peer-client-key-file", "peer-client-cert-auth", "peer-trusted-ca-file", "peer-auto-tls",
		"peer-cert-allowed-cn", "peer-cert-allowed-hostname", "peer-skip-client-san-verification"}},
	{"Logging", []string{"logger", "log-level", "log-format", "log-outputs"}},
}

// Settings lists every setting of the config as flags and environment
// variables, grouped and ordered as in the runbooks: Member, Clustering,
// Security, Logging, Other, then etcdkit's own. A key etcd reads only from
// its config file is an error: the config cannot be written as flags.
func (c *Config) Settings() ([]Setting, error) {
	m, err := c.toMap()
	if err != nil {
		return nil, err
	}
	leaves := map[string]any{}
	flatten(m, "", leaves)
	byFlag := map[string]Setting{}
	var ext []Setting
	var errs []string
	for _, key := range sortedKeys(leaves) {
		v := leaves[key]
		s := Setting{Key: key, Value: formatValue(key, v)}
		if strings.HasPrefix(key, extensionsKey+".") {
			s.Section, s.Env = "etcdkit", extensionEnvName(key)
			ext = append(ext, s)
			continue
		}
		s.Flag = KeyFlag(key)
		if s.Flag == "" {
			errs = append(errs, key)
			continue
		}
		s.Env = EnvName(s.Flag)
		byFlag[s.Flag] = s
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s: etcd reads these only from its config file; they cannot be written as ETCD_* variables or flags", strings.Join(errs, ", "))
	}
	var out []Setting
	for _, sec := range settingSections {
		for _, f := range sec.flags {
			if s, ok := byFlag[f]; ok {
				s.Section = sec.name
				out = append(out, s)
				delete(byFlag, f)
			}
		}
	}
	for _, f := range sortedKeys(byFlag) {
		s := byFlag[f]
		s.Section = "Other"
		out = append(out, s)
	}
	return append(out, ext...), nil
}

// toMap is the config as the generic map its YAML form holds.
func (c *Config) toMap() (map[string]any, error) {
	typed, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	m := map[string]any{}
	dec := json.NewDecoder(strings.NewReader(string(typed)))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	for k, v := range c.Extra {
		m[k] = v
	}
	return m, nil
}

func flatten(v any, prefix string, out map[string]any) {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		if prefix != "" {
			out[prefix] = v
		}
		return
	}
	for k, sub := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		flatten(sub, p, out)
	}
}

// formatValue writes a value as etcd's flags read it.
func formatValue(key string, v any) string {
	if keyType(key) == reflect.TypeOf(time.Duration(0)) {
		if n, err := strconv.ParseInt(fmt.Sprint(v), 10, 64); err == nil {
			return time.Duration(n).String()
		}
	}
	switch x := v.(type) {
	case []any:
		parts := make([]string, len(x))
		for i, item := range x {
			parts[i] = fmt.Sprint(item)
		}
		return strings.Join(parts, ",")
	case []string:
		return strings.Join(x, ",")
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// MarshalEnv writes the config as the environment file a systemd unit's
// EnvironmentFile= reads, and that etcd (through ETCD_* variables) and
// `etcdkit member run --config` read as the same config. header lines are
// written first as comments.
func (c *Config) MarshalEnv(header ...string) ([]byte, error) {
	settings, err := c.Settings()
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	for _, h := range header {
		b.WriteString(strings.TrimRight("# "+h, " ") + "\n")
	}
	section := ""
	for _, s := range settings {
		if s.Section != section {
			if b.Len() > 0 {
				b.WriteString("\n")
			}
			section = s.Section
			if section == "etcdkit" {
				b.WriteString("#[etcdkit] read by `etcdkit member run`; etcd ignores them\n")
			} else {
				fmt.Fprintf(&b, "#[%s]\n", section)
			}
		}
		fmt.Fprintf(&b, "%s=%s\n", s.Env, QuoteEnvValue(s.Value))
	}
	return []byte(b.String()), nil
}
