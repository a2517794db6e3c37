package apply

import (
	"context"
	"fmt"
	"strings"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/render"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// configPhase writes each member's etcd config (and, where systemd is PID
// 1, its unit). A joining member's config needs the live member list
// after its add, so the membership phase writes it.
type configPhase struct{}

func (configPhase) Title() string { return "Write config" }

func (configPhase) Run(ctx context.Context, r *run) error {
	hosts := r.byRole(roleBootstrap, roleRunning, roleRestart)
	return r.eachHost(ctx, hosts, func(ctx context.Context, h *host) error {
		state, initial := r.initialCluster(h)
		return r.writeConfig(ctx, h, state, initial)
	})
}

// initialCluster is what a member's config says about bootstrapping. A
// new cluster's members list each other. A member that has data keeps
// what its config said: etcd reads initial-cluster only on the first
// start, and rewriting it whenever membership changes would restart
// every member for nothing.
func (r *run) initialCluster(h *host) (render.ClusterState, string) {
	if h.role == roleBootstrap {
		return render.StateNew, r.c.InitialCluster()
	}
	if h.obs.Config != nil {
		if cfg, err := etcdconf.Parse(ConfigPath, h.obs.Config); err == nil && cfg.InitialCluster != "" && cfg.InitialClusterState != "" {
			return render.ClusterState(cfg.InitialClusterState), cfg.InitialCluster
		}
	}
	// No usable config beside the data: say what etcd would need if the
	// data were lost, the members as they are now.
	if r.live != nil {
		var parts []string
		for _, m := range r.live.Members {
			name := m.Name
			if name == "" {
				name = m.ID
			}
			for _, u := range m.PeerURLs {
				parts = append(parts, name+"="+u)
			}
		}
		return render.StateExisting, strings.Join(parts, ",")
	}
	return render.StateExisting, r.c.InitialCluster()
}

// writeConfig renders and writes the member's config and unit.
func (r *run) writeConfig(ctx context.Context, h *host, state render.ClusterState, initial string) error {
	files, err := memberFiles(r.c, h.m, render.EtcdOptions{State: state, InitialCluster: initial}, h.facts.Systemd)
	if err != nil {
		return err
	}
	if h.configChanged, err = h.conn.WriteFile(ctx, ConfigPath, files[ConfigPath], publicFile); err != nil {
		return err
	}
	unit, ok := files[UnitPath]
	if !ok {
		return nil
	}
	if h.unitChanged, err = h.conn.WriteFile(ctx, UnitPath, unit, publicFile); err != nil {
		return err
	}
	if h.unitChanged {
		return h.conn.RunChange(ctx, "reload systemd's units (systemctl daemon-reload)", "systemctl daemon-reload")
	}
	return nil
}

// Files renders what apply writes for one member of c on a host, by path:
// the etcd config for a new cluster and, for a systemd host, the unit.
func Files(c *spec.Cluster, name string, systemd bool) (map[string][]byte, error) {
	m, ok := c.Member(name)
	if !ok {
		return nil, fmt.Errorf("no member %q", name)
	}
	return memberFiles(c, m, render.EtcdOptions{}, systemd)
}

// memberFiles renders the member's config and, for a systemd host, its
// unit. Nothing names the spec file, so renaming it changes no file (and
// restarts no member).
func memberFiles(c *spec.Cluster, m *spec.Member, o render.EtcdOptions, systemd bool) (map[string][]byte, error) {
	f, err := render.Render(c, m, render.FormatYAML, render.Options{EtcdOptions: o})
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{ConfigPath: f.Data}
	if systemd {
		u, err := render.Render(c, m, render.FormatSystemd, render.Options{Binary: BinaryPath, ConfigPath: ConfigPath})
		if err != nil {
			return nil, err
		}
		out[UnitPath] = u.Data
	}
	return out, nil
}
