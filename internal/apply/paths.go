package apply

import (
	"github.com/etcdkit/etcdkit/internal/remote"
	"github.com/etcdkit/etcdkit/internal/render"
)

// Where apply puts things on a host. The PKI and data directories come
// from the spec.
const (
	// BinaryPath is the etcdkit binary every host runs.
	BinaryPath = render.DefaultEtcdkitBinary
	// ConfigPath is the member's etcd config.
	ConfigPath = render.DefaultYAMLPath
	// UnitPath is the member's unit on a systemd host.
	UnitPath = "/etc/systemd/system/etcd.service"
	// UnitName is what systemctl calls it.
	UnitName = "etcd"
	// RecordPath records which cluster and member the host's data dir
	// belongs to, written once the member has run. With every member
	// down it is how apply tells its own data from another cluster's.
	RecordPath = "/var/lib/etcdkit/member.json"
	// PIDFile and LogFile are the fallback's, on hosts without systemd.
	// /run is emptied at boot, as the process is gone then too.
	PIDFile = "/run/etcdkit/etcd.pid"
	LogFile = "/var/log/etcdkit/etcd.log"
)

// Modes of what apply writes: keys and their directories private, the
// rest readable (it holds no secret).
var (
	publicFile = remote.File{Mode: 0o644}
	privateKey = remote.File{Mode: 0o600}
	privateDir = remote.File{Mode: 0o700}
	executable = remote.File{Mode: 0o755}
)

// role is what apply does with a host's member.
type role int

const (
	roleUnknown role = iota
	// roleBootstrap: no cluster exists yet; the member starts with the
	// others as a new cluster (initial-cluster-state new).
	roleBootstrap
	// roleRunning: the member runs; its files are converged and it is
	// restarted, one at a time, only when a file it reads at start
	// changed.
	roleRunning
	// roleRestart: the host holds this member's data but it is not
	// running; it is started again with that data, not re-created.
	roleRestart
	// roleJoin: the member is new to a cluster that exists; it is added
	// as a learner (after a snapshot), started and promoted.
	roleJoin
)

func (ro role) String() string {
	switch ro {
	case roleBootstrap:
		return "bootstrap a new cluster"
	case roleRunning:
		return "running member"
	case roleRestart:
		return "restart with its data"
	case roleJoin:
		return "join the cluster as a new member"
	}
	return "unknown"
}
