package apply

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/etcdkit/etcdkit/internal/remote"
)

// detectPhase reads each host's facts (OS, architecture, init system,
// listeners on the member's ports, free disk, clock offset) and its etcd
// state (data dir, record, config, whether the member runs). It only
// reads.
type detectPhase struct{}

func (detectPhase) Title() string { return "Detect hosts" }

func (detectPhase) Run(ctx context.Context, r *run) error {
	return r.eachHost(ctx, r.hosts, func(ctx context.Context, h *host) error {
		dataDir := r.c.MemberDataDir(h.m)
		f, err := h.conn.Detect(ctx, remote.DetectOptions{Ports: []int{h.clientPort(), h.peerPort()}, DataDir: dataDir})
		if err != nil {
			return err
		}
		h.facts = f
		o, err := observe(ctx, h.conn, dataDir, r.layout.CA(r.c.MemberPKIDir(h.m)).Cert, f.Systemd)
		if err != nil {
			return h.errorf("%w", err)
		}
		h.obs = o
		r.note(h, "%s", describeHost(h))
		return nil
	})
}

// describeHost is one line about a host: what it is and what runs there.
func describeHost(h *host) string {
	f, o := h.facts, h.obs
	osName := f.OS.PrettyName
	if osName == "" {
		osName = "unknown OS"
	}
	init := "systemd"
	if !f.Systemd {
		init = fmt.Sprintf("no systemd (PID 1 is %s)", dash(f.Init))
	}
	var ports []string
	for _, p := range []int{h.clientPort(), h.peerPort()} {
		if l, ok := f.Listening[p]; ok {
			ports = append(ports, fmt.Sprintf("%d in use by %s", p, l))
		} else {
			ports = append(ports, fmt.Sprintf("%d free", p))
		}
	}
	data := "data dir " + o.DataDir
	switch o.Data {
	case dataMissing, dataEmpty:
		data += " empty"
	case dataEtcd:
		if o.WAL != nil {
			data += " holds " + o.WAL.String()
		} else {
			data += " holds etcd data"
		}
	case dataOther:
		data += " holds other files"
	}
	member := "member not running"
	if o.Running {
		member = fmt.Sprintf("member running (pid %d)", o.PID)
	}
	return fmt.Sprintf("%s, %s, %s; %s; %s; %s free on %s; clock %s; %s",
		osName, f.Arch, init, strings.Join(ports, ", "), data, humanBytes(f.DiskFree), f.DiskPath, signedDuration(f.ClockOffset), member)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func humanBytes(n uint64) string { return remote.HumanSize(int64(n)) }

func signedDuration(d time.Duration) string {
	if d >= 0 {
		return "+" + d.Round(time.Millisecond).String()
	}
	return d.Round(time.Millisecond).String()
}
