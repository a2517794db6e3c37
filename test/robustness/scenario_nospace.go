package robustness

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/etcdkit/etcdkit/internal/ops"
)

// quota is the small quota-backend-bytes the NOSPACE scenarios fill.
const quota = 12 << 20

func init() {
	Register(Scenario{
		Name: "nospace",
		Summary: "fill a cluster with a 12 MiB quota-backend-bytes under load until etcd raises NOSPACE and refuses writes; " +
			"`etcdkit alarm disarm` must refuse while the database is still full; delete, compact, `etcdkit defrag --cluster`, `etcdkit alarm disarm`: writes resume",
		Quick:   true,
		Cluster: func(o *ClusterOptions) { o.QuotaBackendBytes = quota },
		Run:     func(e *Env) { fillAndRecover(e, func() {}) },
	})
	Register(Scenario{
		Name: "nospace-small-disk",
		Summary: "one member's data dir on a 256 MiB tmpfs with a 12 MiB quota (the others keep etcd's default): its NOSPACE alarm stops writes in the whole cluster " +
			"before its disk fills; then the same cleanup as nospace",
		Skip: canMountTmpfs,
		Cluster: func(o *ClusterOptions) {
			o.Configure = func(t testing.TB, c *Cluster) {
				name := c.Names()[0]
				cfg := c.Config(t, name)
				mountTmpfs(t, cfg.DataDir, "256m")
				cfg.QuotaBackendBytes = quota
				c.WriteConfig(t, name, cfg)
			}
		},
		Run: func(e *Env) {
			dataDir := e.Cluster.Config(e.T, e.Cluster.Names()[0]).DataDir
			fillAndRecover(e, func() {
				var st syscall.Statfs_t
				if err := syscall.Statfs(dataDir, &st); err == nil {
					e.Note("when NOSPACE was raised the small disk was %d%% used: the quota stopped writes before the disk filled", 100-100*st.Bavail/st.Blocks)
				}
			})
		},
	})
}

// fillAndRecover writes 256 KiB values until etcd refuses with NOSPACE,
// checks the alarm and the refusals, then recovers as docs/maintenance.md
// tells an operator to. raised runs as soon as the alarm is.
func fillAndRecover(e *Env, raised func()) {
	e.WaitWrites(150)
	var healed func()
	n := 0
	for ; n < 400 && healed == nil; n++ {
		r := e.Put(fmt.Sprintf("%s%d", fillPrefix, n), bigValue(e, 256<<10))
		if strings.Contains(r.Err, "space exceeded") {
			healed = e.Fault("NOSPACE alarm")
		}
	}
	if healed == nil {
		e.T.Fatalf("%d puts of 256 KiB never raised NOSPACE with a %d-byte quota", n, quota)
	}
	raised()
	var as []ops.Alarm
	if err := json.Unmarshal([]byte(e.Etcdkit("alarm", "list", "-o", "json").Stdout), &as); err != nil || len(as) == 0 || as[0].Alarm != ops.AlarmNoSpace {
		e.Problem("etcdkit alarm list after NOSPACE: %v %v", as, err)
	}
	if r := e.Cluster.Etcdkit("health"); r.Code != 3 || !strings.Contains(r.Stderr, "NOSPACE") {
		e.Problem("etcdkit health under NOSPACE: exit %d, want 3 naming the alarm:\n%s", r.Code, r.Stderr)
	}
	// Reads go on while writes are refused.
	e.WaitOps(50)
	if r := e.Cluster.Etcdkit("alarm", "disarm"); r.Code == 0 || !strings.Contains(r.Stderr, "quota") {
		e.Problem("etcdkit alarm disarm with the database still full: exit %d, want a refusal naming the quota:\n%s", r.Code, r.Stderr)
	}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s%d", fillPrefix, i)
		if r := e.Delete(name); r.Status != StatusOK && !strings.Contains(r.Err, "deleted 0") {
			e.T.Fatalf("delete %s: %s", name, r.Err)
		}
	}
	compact(e)
	e.Etcdkit("defrag", "--cluster")
	e.Etcdkit("alarm", "disarm")
	healed()
	e.WaitWrites(150)
}

// canMountTmpfs says why a tmpfs cannot be mounted here, or "".
func canMountTmpfs(testing.TB) string {
	if os.Geteuid() != 0 {
		return "needs root to mount a tmpfs as a member's data dir"
	}
	dir, err := os.MkdirTemp("", "etcdkit-tmpfs-probe-")
	if err != nil {
		return err.Error()
	}
	defer os.Remove(dir)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		return fmt.Sprintf("cannot mount a tmpfs: %v: %s", err, strings.TrimSpace(string(out)))
	}
	_ = exec.Command("umount", dir).Run()
	return ""
}

// mountTmpfs mounts a tmpfs of size at dir until the test ends (after the
// members are killed: cleanups run last-in first-out).
func mountTmpfs(t testing.TB, dir, size string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs on %s: %v: %s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}
