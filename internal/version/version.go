// Package version reports what this binary is and what it embeds.
package version

import (
	"runtime"
	"runtime/debug"

	etcdversion "go.etcd.io/etcd/api/v3/version"
)

// Version is set at build time with
// -ldflags "-X github.com/etcdkit/etcdkit/internal/version.Version=v0.1.0".
var Version = ""

// Info is the version of every part of the binary.
type Info struct {
	Etcdkit    string `json:"etcdkit"`
	Etcd       string `json:"etcd"`
	EtcdAPI    string `json:"etcdAPI"`
	Go         string `json:"go"`
	Revision   string `json:"revision,omitempty"`
	ModulePath string `json:"-"`
}

// Get returns the running binary's versions.
func Get() Info {
	i := Info{Etcdkit: Version, Etcd: etcdversion.Version, EtcdAPI: etcdversion.APIVersion, Go: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if i.Etcdkit == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			i.Etcdkit = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				i.Revision = s.Value
			}
		}
	}
	if i.Etcdkit == "" {
		i.Etcdkit = "dev"
	}
	return i
}
