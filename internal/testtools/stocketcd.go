package testtools

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
)

// Stock etcd servers of the minor versions etcdkit adopts and upgrades
// from, each built from its own module under test/stocketcd (a three-line
// main around etcdmain.Main), since two minor versions of the server cannot
// share etcdkit's go.mod. The tools are "etcd-3.6" and "etcd-3.5".
var stockEtcd = []struct{ minor, version string }{
	{"3.6", "v3.6.16"},
	{"3.5", "v3.5.36"},
}

func init() {
	for _, s := range stockEtcd {
		dir := filepath.Join(moduleRoot(), "test", "stocketcd", "v"+s.minor)
		Register(Tool{
			Name:    "etcd-" + s.minor,
			Version: s.version,
			Build: func(ctx context.Context, _, out string, log io.Writer) error {
				cmd := GoCommand(ctx, dir, log, []string{"GOFLAGS=-mod=readonly"}, "build", "-trimpath", "-o", out, ".")
				if err := cmd.Run(); err != nil {
					return fmt.Errorf("go build in %s: %w", dir, err)
				}
				return nil
			},
		})
	}
}

// moduleRoot is etcdkit's checkout, found from this file's path.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}
