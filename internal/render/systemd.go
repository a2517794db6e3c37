package render

import (
	"fmt"
	"strings"

	"github.com/etcdkit/etcdkit/internal/spec"
)

// SystemdUnit is the member's unit. Type=notify: the member (etcdkit
// member run, or stock etcd) tells systemd it is ready only once it has
// joined its cluster and serves clients, so `systemctl start` returning
// means the member works, and units ordered After= it start after that.
// ExecStart runs the binary itself, never through a shell or sudo, so the
// notification comes from the main process systemd listens to.
func SystemdUnit(c *spec.Cluster, m *spec.Member, o Options) ([]byte, error) {
	o = o.withDefaults()
	for _, p := range []struct{ what, path string }{{"binary", o.Binary}, {"config path", o.ConfigPath}} {
		if !strings.HasPrefix(p.path, "/") {
			return nil, fmt.Errorf("the unit's %s %q must be an absolute path", p.what, p.path)
		}
		if strings.ContainsAny(p.path, " \t\n\"'\\$%;") {
			return nil, fmt.Errorf("the unit's %s %q has characters a unit line would have to quote; use a plainer path", p.what, p.path)
		}
	}
	var exec, env, engine string
	switch o.Engine {
	case EngineStock:
		engine = "stock etcd"
		env = "EnvironmentFile=" + o.ConfigPath + "\n"
		exec = o.Binary
	default:
		engine = "etcdkit"
		exec = o.Binary + " member run --config " + o.ConfigPath
	}
	h := append(header(c, m, "systemd unit", o),
		"Install as /etc/systemd/system/etcd.service, then: systemctl daemon-reload && systemctl enable --now etcd",
		"A member of a new cluster reports ready only once a quorum of members runs: start",
		"them together (systemctl start --no-block etcd on each host).")
	var b strings.Builder
	b.WriteString(comment(h))
	fmt.Fprintf(&b, `[Unit]
Description=etcd member %s of cluster %s (%s)
Documentation=https://etcd.io/docs/
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
%sExecStart=%s
Restart=on-failure
RestartSec=5s
# Joining a new cluster waits for the other members; never kill it for that.
TimeoutStartSec=infinity
LimitNOFILE=65536
# etcd is sensitive to disk latency: first in line for I/O.
IOSchedulingClass=best-effort
IOSchedulingPriority=0

[Install]
WantedBy=multi-user.target
`, unitEscape(m.Name), unitEscape(c.Name), engine, env, exec)
	return []byte(b.String()), nil
}

// unitEscape keeps a name from breaking a unit line: % starts a specifier.
func unitEscape(s string) string {
	s = strings.ReplaceAll(s, "%", "%%")
	return strings.NewReplacer("\n", " ", "\\", "/").Replace(s)
}
