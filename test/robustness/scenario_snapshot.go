package robustness

import (
	"encoding/json"
	"path/filepath"

	"github.com/etcdkit/etcdkit/internal/snapshot"
)

func init() {
	Register(Scenario{
		Name:    "snapshot-save",
		Summary: "`etcdkit snapshot save` three times under load; each snapshot verifies and holds every write acknowledged before it was taken",
		Quick:   true,
		Run: func(e *Env) {
			dir := filepath.Join(e.T.TempDir(), "snapshots")
			for i := 0; i < 3; i++ {
				e.WaitWrites(100)
				info := saveSnapshot(e, dir)
				e.Etcdkit("snapshot", "verify", info.Path)
			}
			e.WaitWrites(50)
		},
	})
}

// saveSnapshot runs `etcdkit snapshot save DIR/` under the traffic and
// checks the snapshot holds every write acknowledged before the command
// started.
func saveSnapshot(e *Env, dir string) snapshot.Info {
	e.T.Helper()
	before := e.Recorder().Ops()
	var acked int64
	for _, op := range before {
		if op.Resp.Status == StatusOK && op.Req.Kind.writes() {
			acked = max(acked, op.Resp.Rev)
		}
	}
	r := e.Etcdkit("snapshot", "save", dir+"/", "-o", "json")
	var info snapshot.Info
	if err := json.Unmarshal([]byte(r.Stdout), &info); err != nil {
		e.T.Fatalf("snapshot save -o json: %v\n%s", err, r.Stdout)
	}
	if info.Revision < acked {
		e.Problem("snapshot %s is at revision %d, but revision %d was acknowledged before it was taken", info.Path, info.Revision, acked)
	}
	e.T.Logf("snapshot at revision %d from %s (acknowledged before: %d)", info.Revision, info.Member, acked)
	return info
}
