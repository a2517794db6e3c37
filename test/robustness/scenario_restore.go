package robustness

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdkit/etcdkit/internal/snapshot"
)

func init() {
	Register(Scenario{
		Name: "cluster-restore",
		Summary: "`etcdkit snapshot save` under load, more writes, stop every member, `etcdkit cluster restore --all-local --move-aside`, start again: " +
			"the restored cluster holds exactly the writes up to the snapshot's revision; the history check restarts at the restore",
		Quick: true,
		Run: func(e *Env) {
			dir := filepath.Join(e.T.TempDir(), "snapshots")
			e.WaitWrites(150)
			info := saveSnapshot(e, dir)
			e.WaitWrites(100)
			var healed func()
			e.NewPhase(func() {
				healed = e.Fault("stop every member and restore the snapshot")
				for _, n := range e.Cluster.Names() {
					e.Cluster.Stop(e.T, n, syscall.SIGTERM)
				}
				e.Etcdkit("cluster", "restore", info.Path, "--spec", e.Cluster.Dir.Spec(), "--all-local", "--move-aside")
				e.Cluster.Start(e.T)
				checkRestored(e, e.Phases()[0], info)
			})
			healed()
			e.WaitWrites(150)
		},
	})
}

// checkRestored compares the restored cluster with the history before the
// restore: every write up to the snapshot's revision is there, every later
// one is gone (rolled back, as a restore must), and the modeled keys hold
// what the history says they held at that revision.
func checkRestored(e *Env, before *PhaseData, info snapshot.Info) {
	e.T.Helper()
	cli := e.Cluster.Admin()
	var have map[string]bool
	var got *clientv3.GetResponse
	err := e.retry("read the restored cluster", func(ctx context.Context) error {
		r, err := cli.Get(ctx, ledgerPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return err
		}
		have = map[string]bool{}
		for _, kv := range r.Kvs {
			have[string(kv.Key)] = true
		}
		got, err = cli.Get(ctx, keyPrefix, clientv3.WithPrefix())
		return err
	})
	if err != nil {
		e.T.Fatal(err)
	}
	var lost []string
	rolled := 0
	for _, a := range AckedWrites(before.Ops) {
		if !strings.HasPrefix(a.want.Key, ledgerPrefix) {
			continue
		}
		switch {
		case a.want.Rev <= info.Revision && !have[a.want.Key]:
			lost = append(lost, fmt.Sprintf("%s (revision %d, in the snapshot at revision %d) is missing after the restore", a.want.Key, a.want.Rev, info.Revision))
		case a.want.Rev > info.Revision:
			rolled++
			if have[a.want.Key] {
				e.Problem("%s was written at revision %d, after the snapshot (revision %d), yet the restored cluster has it", a.want.Key, a.want.Rev, info.Revision)
			}
		}
	}
	e.LostWrites(lost...)
	e.RolledBack(rolled)
	want := StateAt(before.Init, before.Watches["all"], info.Revision)
	for i := range NumKeys {
		w := want.Keys[i]
		var g keyState
		for _, kv := range kvsOf(got) {
			if kv.Key == i {
				g = keyState{Value: kv.Value, Mod: kv.Mod, Lease: kv.Lease}
			}
		}
		if w.Value != g.Value || w.Mod != g.Mod {
			e.Problem("after the restore %s is %q (mod revision %d); at the snapshot's revision %d it was %q (mod revision %d)",
				keyName(i), g.Value, g.Mod, info.Revision, w.Value, w.Mod)
		}
	}
	e.T.Logf("restored revision %d: %d acknowledged ledger writes rolled back", info.Revision, rolled)
}
