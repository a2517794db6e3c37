package robustness

import (
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdkit/etcdkit/internal/ops/replace"
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

// TestSuiteCatchesBrokenReplace is the acceptance proof that a broken
// build is caught: the member-replace scenario passes with etcdkit as it
// is, and fails, naming what broke, when `etcdkit member replace` runs
// with the test-only failpoint that makes it promote the new learner at
// once, without waiting for it to start and catch up. etcd's own
// readiness check refuses that promotion, so no write is lost and the
// history stays linearizable; what must be caught is the degraded
// outcome: the replacement stops half-way, one voter short, with a
// learner that never started.
func TestSuiteCatchesBrokenReplace(t *testing.T) {
	mode := suiteMode(t)
	mode.Scale = 1
	t.Setenv(EnvArtifacts, t.TempDir())
	s, ok := registered("member-replace")
	if !ok {
		t.Fatal("no member-replace scenario")
	}
	t.Run("correct build", func(t *testing.T) {
		res := RunScenario(t, s, 3, 1, mode)
		if !res.OK() {
			t.Fatalf("member-replace failed with no failpoint: %s", summarize(res.Problems, 10))
		}
	})
	t.Run("failpoint "+replace.FailpointSkipCatchUp, func(t *testing.T) {
		broken := s
		broken.Cluster = func(o *ClusterOptions) {
			if s.Cluster != nil {
				s.Cluster(o)
			}
			o.Env = append(o.Env, replace.FailpointEnv+"="+replace.FailpointSkipCatchUp)
		}
		res := RunScenario(t, broken, 3, 1, mode)
		if res.OK() {
			t.Fatalf("the suite passed a replacement that promotes an unstarted learner: %+v", res)
		}
		problems := strings.Join(res.Problems, "\n")
		for _, want := range []string{
			// the scenario: the command failed, with etcd's refusal
			"can only promote a learner member which is in sync with leader",
			// the suite's own end checks: the member set is wrong, the
			// new member holds no data, the cluster is not healthy
			"m4 was added but never started, is still a learner",
			"member m4 is not running",
		} {
			if !strings.Contains(problems, want) {
				t.Errorf("the report does not name %q:\n%s", want, problems)
			}
		}
		if res.Healthy {
			t.Errorf("a cluster one voter short, with a learner that never started, was reported healthy")
		}
		// etcd's safety held: the checker must not invent violations.
		if res.Linearizable != "yes" || res.LostWrites != 0 {
			t.Errorf("linearizable %s, lost %d: etcd refused the promotion, so the data must be intact", res.Linearizable, res.LostWrites)
		}
		t.Logf("caught: %s", summarize(res.Problems, 6))
	})
}

// registered is the registered scenario of that name.
func registered(name string) (Scenario, bool) {
	for _, s := range Scenarios() {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}
