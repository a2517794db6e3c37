package etcdconf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

const extensionsKey = "etcdkit"

// FieldError is a problem with one key of a config file.
type FieldError struct {
	File string
	Line int // 0 when unknown
	Key  string
	Msg  string
	// Rule is the stable id `etcdkit config lint` reports the problem under.
	Rule string
}

func (e *FieldError) Error() string {
	loc := e.File
	if loc != "" && e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", loc, e.Line)
	}
	switch {
	case loc != "" && e.Key != "":
		return fmt.Sprintf("%s: %s: %s", loc, e.Key, e.Msg)
	case loc != "":
		return fmt.Sprintf("%s: %s", loc, e.Msg)
	case e.Key != "":
		return fmt.Sprintf("%s: %s", e.Key, e.Msg)
	}
	return e.Msg
}

// Rule ids of the problems parsing reports.
const (
	RuleSyntax       = "syntax"
	RuleUnknownKey   = "unknown-key"
	RuleInvalidValue = "invalid-value"
	RuleRemoved      = "removed-setting"
)

// Load reads an etcd config file: etcd's YAML format, or an ETCD_*
// environment file (detected by content).
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse reads etcd's YAML config format, or an environment file of ETCD_*
// variables as a systemd EnvironmentFile= holds (detected by content). name
// is used in messages. Every problem is reported, each with its key (or
// variable) and line; unknown keys are errors with a suggestion, because
// etcd silently ignores them and a typo such as "client-cert-auth"
// misspelt turns authentication off.
func Parse(name string, data []byte) (*Config, error) {
	c, problems := ParseAll(name, data)
	if len(problems) > 0 {
		errs := make([]error, len(problems))
		for i, p := range problems {
			errs[i] = p
		}
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// ParseAll is Parse that keeps going: it returns the config built from
// every key that parsed (nil only when the file is not a config at all),
// and every problem. `config lint` reports them all.
func ParseAll(name string, data []byte) (*Config, []*FieldError) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, []*FieldError{{File: name, Msg: "the file is empty", Rule: RuleSyntax}}
	}
	if IsEnvFile(data) {
		return parseEnv(name, data)
	}
	jsonData, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, []*FieldError{{File: name, Msg: "not valid YAML: " + err.Error(), Rule: RuleSyntax}}
	}
	var raw map[string]any
	dec := json.NewDecoder(bytes.NewReader(jsonData))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return nil, []*FieldError{{File: name, Msg: "not an etcd config file: the top level must be a mapping of keys to values (or NAME=VALUE lines of an environment file)", Rule: RuleSyntax}}
	}
	c := &Config{origin: &origin{keys: yamlPositions(data)}}
	return c, c.fromMap(name, raw)
}

// fromMap fills c from parsed keys; the environment-file reader shares it.
func (c *Config) fromMap(name string, raw map[string]any) []*FieldError {
	var errs []*FieldError
	fail := func(rule, key, format string, args ...any) {
		line, shown := c.locate(key, nil)
		errs = append(errs, &FieldError{File: name, Line: line, Key: shown, Msg: fmt.Sprintf(format, args...), Rule: rule})
	}
	typed := typedKeys()
	typedPart := map[string]any{}
	for _, k := range sortedKeys(raw) {
		v := raw[k]
		switch {
		case k == "client-transport-security" || k == "peer-transport-security":
			m, ok := v.(map[string]any)
			if !ok {
				if v != nil {
					fail(RuleInvalidValue, k, "must be a mapping of %s", strings.Join(securityKeys, ", "))
				}
				continue
			}
			good := map[string]any{}
			for _, sk := range sortedKeys(m) {
				if !IsSecurityKey(sk) {
					fail(RuleUnknownKey, k+"."+sk, "unknown key%s", didYouMean(sk, securityKeys))
					continue
				}
				good[sk] = m[sk]
			}
			typedPart[k] = good
		case typed[k]:
			typedPart[k] = v
		case k == extensionsKey:
			typedPart[k] = v
		case IsKnownKey(k):
			if c.Extra == nil {
				c.Extra = map[string]any{}
			}
			c.Extra[k] = v
		default:
			fail(RuleUnknownKey, k, "unknown key%s", didYouMean(k, KnownKeys()))
		}
	}
	// Decode the typed part key by key so a type error names its key; a
	// security block field by field for the same reason.
	for _, k := range sortedKeys(typedPart) {
		if m, ok := typedPart[k].(map[string]any); ok && (k == "client-transport-security" || k == "peer-transport-security") {
			for _, sk := range sortedKeys(m) {
				if err := decodeKey(c, map[string]any{k: map[string]any{sk: m[sk]}}, false); err != nil {
					fail(RuleInvalidValue, k+"."+sk, "%s", typeMessage(err))
				}
			}
			continue
		}
		if err := decodeKey(c, map[string]any{k: typedPart[k]}, k == extensionsKey); err != nil {
			fail(RuleInvalidValue, k, "%s", typeMessage(err))
		}
	}
	return errs
}

// decodeKey decodes one key into c, merging a security block field into
// what is already there.
func decodeKey(c *Config, one map[string]any, strict bool) error {
	b, _ := json.Marshal(one)
	dec := json.NewDecoder(bytes.NewReader(b))
	if strict {
		dec.DisallowUnknownFields()
	}
	return dec.Decode(c)
}

func typeMessage(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("want %s, got %s", kindName(te.Type), te.Value)
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "json: ")
	return msg
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint64, reflect.Int32, reflect.Uint32:
		return "a whole number"
	case reflect.Slice:
		return "a list"
	case reflect.String:
		return "a string"
	case reflect.Struct, reflect.Map, reflect.Pointer:
		return "a mapping"
	}
	return t.String()
}

// typedKeys are the top-level keys Config has a field for.
func typedKeys() map[string]bool {
	out := map[string]bool{}
	t := reflect.TypeOf(Config{})
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("json"), ",")[0]
		if tag != "" && tag != "-" {
			out[tag] = true
		}
	}
	return out
}

func didYouMean(key string, candidates []string) string {
	if s := Suggest(key, candidates); s != "" {
		return fmt.Sprintf("; did you mean %q?", s)
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// LineOf finds the 1-based line where a key (possibly "a.b") is set in YAML
// source, or 0. It is a best effort for messages, not a YAML parser.
func LineOf(src []byte, key string) int {
	if len(src) == 0 || key == "" {
		return 0
	}
	last := key[strings.LastIndex(key, ".")+1:]
	re := regexp.MustCompile(`^\s*["']?` + regexp.QuoteMeta(last) + `["']?\s*:`)
	for i, line := range strings.Split(string(src), "\n") {
		if re.MatchString(line) {
			return i + 1
		}
	}
	return 0
}

// Marshal writes the config in etcd's YAML format, with etcdkit's own keys
// last.
func (c *Config) Marshal() ([]byte, error) {
	typed, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	m := map[string]any{}
	if err := json.Unmarshal(typed, &m); err != nil {
		return nil, err
	}
	for k, v := range c.Extra {
		// etcd's file wants integer nanoseconds where its field is a
		// time.Duration: write a "10m" the operator wrote as etcd reads it.
		if nv, err := normalize(k, v); err == nil {
			v = nv
		}
		m[k] = v
	}
	return yaml.Marshal(m)
}
