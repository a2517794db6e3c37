package etcdconf

import (
	"flag"
	"reflect"
	"sort"
	"strings"
	"sync"

	"go.etcd.io/etcd/pkg/v3/flags"
	"go.etcd.io/etcd/server/v3/embed"
)

// etcd reads ETCD_FOO_BAR as its flag --foo-bar (flags.SetFlagsFromEnv),
// and most flags have a config-file key of the same name. The exceptions
// are below; every other flag's key is found by name, so a newer etcd's
// flags are known without a list to maintain here.

// EnvPrefix is the prefix etcd reads its environment variables with.
const EnvPrefix = "ETCD"

// flagKeys maps flags whose config-file key differs from the flag name.
var flagKeys = map[string]string{
	"cert-file":                          "client-transport-security.cert-file",
	"key-file":                           "client-transport-security.key-file",
	"client-cert-file":                   "client-transport-security.client-cert-file",
	"client-key-file":                    "client-transport-security.client-key-file",
	"client-cert-auth":                   "client-transport-security.client-cert-auth",
	"trusted-ca-file":                    "client-transport-security.trusted-ca-file",
	"auto-tls":                           "client-transport-security.auto-tls",
	"client-cert-allowed-hostname":       "client-transport-security.allowed-hostname",
	"peer-cert-file":                     "peer-transport-security.cert-file",
	"peer-key-file":                      "peer-transport-security.key-file",
	"peer-client-cert-file":              "peer-transport-security.client-cert-file",
	"peer-client-key-file":               "peer-transport-security.client-key-file",
	"peer-client-cert-auth":              "peer-transport-security.client-cert-auth",
	"peer-trusted-ca-file":               "peer-transport-security.trusted-ca-file",
	"peer-auto-tls":                      "peer-transport-security.auto-tls",
	"peer-cert-allowed-cn":               "peer-transport-security.allowed-cn",
	"peer-cert-allowed-hostname":         "peer-transport-security.allowed-hostname",
	"peer-skip-client-san-verification":  "peer-transport-security.skip-client-san-verification",
	"socket-reuse-port":                  "socket-options.reuse-port",
	"socket-reuse-address":               "socket-options.reuse-address",
	"discovery-token":                    "discovery-config.token",
	"discovery-endpoints":                "discovery-config.client.endpoints",
	"discovery-dial-timeout":             "discovery-config.client.dial-timeout",
	"discovery-request-timeout":          "discovery-config.client.request-timeout",
	"discovery-keepalive-time":           "discovery-config.client.keepalive-time",
	"discovery-keepalive-timeout":        "discovery-config.client.keepalive-timeout",
	"discovery-insecure-transport":       "discovery-config.client.secure.insecure-transport",
	"discovery-insecure-skip-tls-verify": "discovery-config.client.secure.insecure-skip-tls-verify",
	"discovery-cert":                     "discovery-config.client.secure.cert",
	"discovery-key":                      "discovery-config.client.secure.key",
	"discovery-cacert":                   "discovery-config.client.secure.cacert",
	"discovery-user":                     "discovery-config.client.auth.username",
	"discovery-password":                 "discovery-config.client.auth.password",
}

// flagOnly are etcd flags with no config-file key: etcdkit, which builds
// every config through the file format, cannot honour them.
var flagOnly = map[string]string{
	"raft-read-timeout":  "etcd has no config-file key for it and etcdkit cannot apply it; remove it (the default, 5s, is right for almost every network)",
	"raft-write-timeout": "etcd has no config-file key for it and etcdkit cannot apply it; remove it (the default, 1s, is right for almost every network)",
	"client-crl-file":    "etcd has no config-file key for certificate revocation lists and etcdkit cannot apply it; remove it and revoke by rotating the CA (`etcdkit pki rotate-ca`)",
	"peer-crl-file":      "etcd has no config-file key for certificate revocation lists and etcdkit cannot apply it; remove it and revoke by rotating the CA (`etcdkit pki rotate-ca`)",
	"discovery-fallback": "it only applies to the removed v2 discovery proxy; remove it",
	"config-file":        "it makes etcd ignore every other ETCD_* variable and read that file; point etcdkit at the file itself (--config FILE)",
	"version":            "etcd refuses to read it from the environment; remove it",
}

// removedSettings are flags earlier etcd versions read that 3.6+ does not:
// the runbooks copied from etcd 2 and 3.4 days are full of them.
var removedSettings = map[string]string{
	"enable-v2":                          "the v2 API was removed in etcd 3.6 (flannel and other v2 clients must use the v3 API); remove it",
	"experimental-enable-v2v3":           "the v2 API was removed in etcd 3.6; remove it",
	"v2-deprecation":                     "deprecated: etcd 3.7 ignores it and always runs without the v2 store; remove it",
	"proxy":                              "the v2 proxy was removed in etcd 3.6; use `etcd grpc-proxy` or a load balancer; remove it",
	"proxy-failure-wait":                 "the v2 proxy was removed in etcd 3.6; remove it",
	"proxy-refresh-interval":             "the v2 proxy was removed in etcd 3.6; remove it",
	"proxy-dial-timeout":                 "the v2 proxy was removed in etcd 3.6; remove it",
	"proxy-write-timeout":                "the v2 proxy was removed in etcd 3.6; remove it",
	"proxy-read-timeout":                 "the v2 proxy was removed in etcd 3.6; remove it",
	"discovery":                          "v2 discovery URLs were removed in etcd 3.6; bootstrap with initial-cluster; remove it",
	"discovery-proxy":                    "v2 discovery was removed in etcd 3.6; remove it",
	"ca-file":                            "removed in etcd 3.5; use ETCD_TRUSTED_CA_FILE with ETCD_CLIENT_CERT_AUTH=true",
	"peer-ca-file":                       "removed in etcd 3.5; use ETCD_PEER_TRUSTED_CA_FILE with ETCD_PEER_CLIENT_CERT_AUTH=true",
	"log-output":                         "removed in etcd 3.5; use ETCD_LOG_OUTPUTS",
	"log-package-levels":                 "removed in etcd 3.5 with the capnslog logger; use ETCD_LOG_LEVEL",
	"debug":                              "removed in etcd 3.5; use ETCD_LOG_LEVEL=debug",
	"addr":                               "an etcd 0.4 setting that etcd 3 ignores; use ETCD_ADVERTISE_CLIENT_URLS",
	"bind-addr":                          "an etcd 0.4 setting that etcd 3 ignores; use ETCD_LISTEN_CLIENT_URLS",
	"peer-addr":                          "an etcd 0.4 setting that etcd 3 ignores; use ETCD_INITIAL_ADVERTISE_PEER_URLS",
	"peer-bind-addr":                     "an etcd 0.4 setting that etcd 3 ignores; use ETCD_LISTEN_PEER_URLS",
	"cluster-active-size":                "an etcd 0.4 setting that etcd 3 ignores; remove it",
	"cluster-remove-delay":               "an etcd 0.4 setting that etcd 3 ignores; remove it",
	"cluster-sync-interval":              "an etcd 0.4 setting that etcd 3 ignores; remove it",
	"config":                             "an etcd 0.4 setting that etcd 3 ignores; remove it",
	"force":                              "an etcd 0.4 setting that etcd 3 ignores; remove it",
	"max-result-buffer":                  "an etcd 0.4 setting that etcd 3 ignores; remove it",
	"max-retry-attempts":                 "an etcd 0.4 setting that etcd 3 ignores; remove it",
	"peer-heartbeat-interval":            "an etcd 0.4 setting that etcd 3 ignores; use ETCD_HEARTBEAT_INTERVAL",
	"peer-election-timeout":              "an etcd 0.4 setting that etcd 3 ignores; use ETCD_ELECTION_TIMEOUT",
	"retry-interval":                     "an etcd 0.4 setting that etcd 3 ignores; remove it",
	"snapshot":                           "an etcd 0.4 setting that etcd 3 ignores; remove it",
	"v":                                  "an etcd 0.4 setting that etcd 3 ignores; remove it",
	"vv":                                 "an etcd 0.4 setting that etcd 3 ignores; remove it",
	"experimental-initial-corrupt-check": "experimental flags were removed in etcd 3.7; use ETCD_FEATURE_GATES=InitialCorruptCheck=true",
	"experimental-compact-hash-check-enabled": "experimental flags were removed in etcd 3.7; use ETCD_FEATURE_GATES=CompactHashCheck=true",
}

// etcdmainFlags are the flags etcdmain adds to embed.Config's.
var etcdmainFlags = []string{"config-file", "discovery-fallback", "initial-cluster-state", "v2-deprecation", "version"}

// etcdFlags is every flag etcd 3.7 reads, computed once at start-up:
// AddFlags also resets package-level raft timeouts to their defaults, which
// must not race with a member running in this process.
var etcdFlags = func() map[string]bool {
	fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
	embed.NewConfig().AddFlags(fs)
	out := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { out[f.Name] = true })
	for _, f := range etcdmainFlags {
		out[f] = true
	}
	return out
}()

// EnvName is the environment variable etcd reads a flag from.
func EnvName(flagName string) string { return flags.FlagToEnv(EnvPrefix, flagName) }

// envFlags maps ETCD_* names to flag names, for every flag etcd reads and
// every removed one.
var envFlags = func() map[string]string {
	out := map[string]string{}
	for f := range etcdFlags {
		out[EnvName(f)] = f
	}
	for f := range removedSettings {
		out[EnvName(f)] = f
	}
	return out
}()

// FlagKey is the config-file key (dotted for nested keys) of an etcd flag.
// reason is set instead when the flag has no key etcdkit can apply, or was
// removed from etcd.
func FlagKey(flagName string) (key, reason string) {
	if r, ok := removedSettings[flagName]; ok {
		return "", r
	}
	if r, ok := flagOnly[flagName]; ok {
		return "", r
	}
	if k, ok := flagKeys[flagName]; ok {
		return k, ""
	}
	if IsKnownKey(flagName) || typedKeys()[flagName] {
		return flagName, ""
	}
	if !etcdFlags[flagName] {
		return "", "etcd 3.7 has no such setting"
	}
	return "", "etcd has no config-file key for it and etcdkit cannot apply it; remove it"
}

// EnvFlag is the flag an ETCD_* variable sets, and whether etcd knows it at
// all (a removed flag counts as known: its message says what replaced it).
func EnvFlag(envName string) (string, bool) {
	f, ok := envFlags[envName]
	return f, ok
}

// KnownEnvNames lists every ETCD_* variable etcd 3.7 reads, sorted.
func KnownEnvNames() []string {
	var out []string
	for f := range etcdFlags {
		if f == "version" {
			continue
		}
		out = append(out, EnvName(f))
	}
	sort.Strings(out)
	return out
}

// KeyFlag is the inverse of FlagKey: the flag that sets a config-file key,
// or "" when none does (etcdkit's own keys, file-only etcd keys).
func KeyFlag(key string) string {
	return keyFlags()[key]
}

var (
	keyFlagsOnce sync.Once
	keyFlagsMap  map[string]string
)

func keyFlags() map[string]string {
	keyFlagsOnce.Do(func() {
		keyFlagsMap = map[string]string{}
		for f := range etcdFlags {
			if k, reason := FlagKey(f); reason == "" {
				keyFlagsMap[k] = f
			}
		}
	})
	return keyFlagsMap
}

// keyType is the Go type etcd decodes a config-file key (dotted for nested
// keys) into, or nil for an unknown key.
func keyType(key string) reflect.Type {
	parts := strings.Split(key, ".")
	var t reflect.Type
	switch {
	case parts[0] == "client-transport-security" || parts[0] == "peer-transport-security":
		t = reflect.TypeOf(Security{})
		parts = parts[1:]
	case typedKeys()[parts[0]]:
		t = reflect.TypeOf(Config{})
	default:
		t = reflect.TypeOf(embed.Config{})
		if ft, ok := knownKeys()[parts[0]]; ok && len(parts) == 1 {
			return ft
		}
	}
	for _, p := range parts {
		t = fieldByTag(t, p)
		if t == nil {
			return nil
		}
	}
	return t
}

// fieldByTag finds a struct field's type by its JSON name, looking through
// pointers and untagged embedded structs as encoding/json does.
func fieldByTag(t reflect.Type, name string) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("json"), ",")[0]
		if tag == name {
			return f.Type
		}
		if tag == "" && f.Anonymous {
			if ft := fieldByTag(f.Type, name); ft != nil {
				return ft
			}
		}
	}
	return nil
}
