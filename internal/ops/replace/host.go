package replace

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/render"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// OutDir is the Host of a member the operator starts: its config (and
// certificates, with a CA) are written to an output directory, or only
// shown when there is none.
type OutDir struct {
	// Cluster holds the settings every member shares.
	Cluster *spec.Cluster
	// Member is the new member with its data and certificate directories
	// on its host.
	Member spec.Member
	// CA signs its certificates; nil issues none.
	CA *pki.CA
	// Out receives etcd.yaml and ssl/; empty only renders.
	Out string
}

// Files are the member's files for a join with this initial cluster.
func (h OutDir) Files(initialCluster string) ops.MemberFiles {
	return ops.MemberFiles{
		Cluster: h.Cluster, Member: &h.Member, CA: h.CA,
		Etcd: render.EtcdOptions{State: render.StateExisting, InitialCluster: initialCluster},
	}
}

// Write writes (or renders) the member's files.
func (h OutDir) Write(_ context.Context, initialCluster string, _ *MemberRecord) (*ops.Written, error) {
	f := h.Files(initialCluster)
	if h.Out == "" {
		cfg, data, err := f.Render()
		if err != nil {
			return nil, err
		}
		return &ops.Written{Config: cfg, YAML: data}, nil
	}
	return f.Write(h.Out)
}

// StartHint says how to start the member on its host.
func (h OutDir) StartHint() string {
	config := "its config"
	if h.Out != "" {
		config = filepath.Join(h.Out, ops.ConfigFile)
	}
	return fmt.Sprintf("run `etcdkit member run --config %s` on its host (%s)", config, h.Member.Host)
}
