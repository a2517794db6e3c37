package robustness

import (
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestCheckerCatchesBrokenBehaviour proves the suite can fail: the same
// machinery that passes every scenario is run against deliberately broken
// behaviour, and must report it.
func TestCheckerCatchesBrokenBehaviour(t *testing.T) {
	mode := suiteMode(t)
	mode.Scale = 1
	t.Setenv(EnvArtifacts, t.TempDir())

	// A client that reads from a member cut off from its peers with a
	// serializable read, and reports it as linearizable: the stale value
	// must make the history non-linearizable.
	t.Run("stale serializable read presented as linearizable", func(t *testing.T) {
		res := RunScenario(t, Scenario{
			Name:    "broken-stale-read",
			Summary: "test of the checker",
			Cluster: withPeerProxies,
			Run: func(e *Env) {
				e.WaitWrites(50)
				followers := e.Cluster.Followers(e.Ctx)
				victim, others := followers[0], []string{e.Cluster.Leader(e.Ctx), followers[1]}
				e.Cluster.Isolate(victim)
				majority := dialOnly(e, others...)
				isolated := dialOnly(e, victim)
				// A write the isolated member cannot have...
				v := "broken-stale-read"
				e.record(Request{Kind: KindPut, Key: 0, Value: v}, func(ctx context.Context) (Response, error) {
					r, err := majority.Put(ctx, keyName(0), v)
					if err != nil {
						return Response{}, err
					}
					return Response{Rev: r.Header.Revision}, nil
				})
				// ...and a read of it from that member, served locally.
				r := e.record(Request{Kind: KindGet, Key: 0}, func(ctx context.Context) (Response, error) {
					r, err := isolated.Get(ctx, keyName(0), clientv3.WithSerializable())
					if err != nil {
						return Response{}, err
					}
					return Response{Rev: r.Header.Revision, KVs: kvsOf(r)}, nil
				})
				if r.Status != StatusOK || (len(r.KVs) == 1 && r.KVs[0].Value == v) {
					e.T.Fatalf("the isolated member answered %v: the partition did not isolate it", r)
				}
				e.Cluster.Heal(victim)
				e.WaitWrites(50)
			},
		}, 3, 1, mode)
		if res.Linearizable != "no" {
			t.Fatalf("a stale read passed the linearizability check: %+v", res)
		}
		if res.LostWrites != 0 || !res.WatchOK {
			t.Fatalf("only the read was wrong, yet: lost %d, watch ok %v: %v", res.LostWrites, res.WatchOK, res.Problems)
		}
		t.Logf("caught: %s", summarize(res.Problems, 3))
	})

	// A client that changes the cluster behind the recorder's back:
	// deletes acknowledged ledger keys and overwrites a key. Every check
	// must notice.
	t.Run("acknowledged writes dropped behind the recorder's back", func(t *testing.T) {
		res := RunScenario(t, Scenario{
			Name:    "broken-lost-writes",
			Summary: "test of the checker",
			Run: func(e *Env) {
				e.WaitWrites(100)
				cli := e.Cluster.Admin()
				ctx, cancel := context.WithTimeout(e.Ctx, 30*time.Second)
				defer cancel()
				r, err := cli.Get(ctx, ledgerPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(3))
				if err != nil || len(r.Kvs) == 0 {
					e.T.Fatalf("no ledger key to drop: %v", err)
				}
				for _, kv := range r.Kvs {
					if _, err := cli.Delete(ctx, string(kv.Key)); err != nil {
						e.T.Fatal(err)
					}
				}
				if _, err := cli.Put(ctx, keyName(1), "rogue"); err != nil {
					e.T.Fatal(err)
				}
				e.WaitWrites(100)
			},
		}, 3, 1, mode)
		problems := strings.Join(res.Problems, "\n")
		if res.LostWrites < 3 || !strings.Contains(problems, "ledger key") {
			t.Errorf("dropped ledger keys were not reported lost: lost %d\n%s", res.LostWrites, problems)
		}
		if res.WatchOK || !strings.Contains(problems, "no recorded request") {
			t.Errorf("the watch check did not notice writes nobody recorded:\n%s", problems)
		}
		if res.Linearizable != "no" {
			t.Errorf("revisions nobody accounts for passed the linearizability check")
		}
		t.Logf("caught: %s", summarize(res.Problems, 4))
	})
}

// dialOnly opens a client to the named members only.
func dialOnly(e *Env, names ...string) *clientv3.Client {
	e.T.Helper()
	cli, err := e.Cluster.Target(e.T, names...).Client()
	if err != nil {
		e.T.Fatal(err)
	}
	e.T.Cleanup(func() { cli.Close() })
	return cli
}
