package etcdconf

import (
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// fileOnlyKeys are config-file keys etcd translates into embed.Config
// fields that carry no JSON tag of their own.
var fileOnlyKeys = []string{
	"listen-peer-urls", "listen-client-urls", "listen-client-http-urls",
	"initial-advertise-peer-urls", "advertise-client-urls",
	"cors", "host-whitelist", "client-transport-security",
	"peer-transport-security", "feature-gates",
}

// securityKeys are the keys of a transport-security block.
var securityKeys = []string{
	"cert-file", "key-file", "client-cert-file", "client-key-file",
	"client-cert-auth", "trusted-ca-file", "auto-tls", "allowed-cn",
	"allowed-hostname", "skip-client-san-verification",
}

var (
	keysOnce      sync.Once
	etcdKeys      map[string]reflect.Type // file key -> embed.Config field type
	sortedEtcdKey []string
)

// knownKeys derives etcd's file keys from embed.Config itself, so a newer
// etcd's keys are known without a list to maintain here.
func knownKeys() map[string]reflect.Type {
	keysOnce.Do(func() {
		etcdKeys = map[string]reflect.Type{}
		t := reflect.TypeOf(embed.Config{})
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("json"), ",")[0]
			if tag == "" || tag == "-" || !f.IsExported() {
				continue
			}
			etcdKeys[tag] = f.Type
		}
		for _, k := range fileOnlyKeys {
			etcdKeys[k] = reflect.TypeOf("")
		}
		for k := range etcdKeys {
			sortedEtcdKey = append(sortedEtcdKey, k)
		}
		sort.Strings(sortedEtcdKey)
	})
	return etcdKeys
}

// IsKnownKey reports whether etcd reads this top-level config-file key.
func IsKnownKey(k string) bool {
	_, ok := knownKeys()[k]
	return ok || k == extensionsKey
}

// KnownKeys lists etcd's config-file keys, sorted.
func KnownKeys() []string {
	knownKeys()
	return sortedEtcdKey
}

// IsSecurityKey reports whether k is a key of a transport-security block.
func IsSecurityKey(k string) bool {
	for _, s := range securityKeys {
		if s == k {
			return true
		}
	}
	return false
}

// SecurityKeys lists the keys of a transport-security block.
func SecurityKeys() []string { return securityKeys }

// isDurationKey reports keys whose embed.Config field is a time.Duration:
// etcd's file wants integer nanoseconds there, which nobody writes by hand.
func isDurationKey(k string) bool {
	return knownKeys()[k] == reflect.TypeOf(time.Duration(0))
}

// Suggest returns the candidate closest to an unknown key, or "" when none
// is close enough to be a plausible typo.
func Suggest(key string, candidates []string) string {
	best, bestD := "", len(key)/3+2
	for _, c := range candidates {
		if d := distance(key, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// distance is the Levenshtein edit distance.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
