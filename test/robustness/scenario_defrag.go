package robustness

import (
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdkit/etcdkit/internal/ops"
)

func init() {
	Register(Scenario{
		Name:    "defrag",
		Summary: "compact, then `etcdkit defrag --cluster` under load: one member at a time, followers first, the leader last",
		Quick:   true,
		Run: func(e *Env) {
			e.WaitWrites(150)
			// Give defragmentation something to give back: 5 MiB written,
			// deleted and compacted away.
			for i := range 20 {
				e.Put(fmt.Sprintf("%s%d", fillPrefix, i), bigValue(e, 256<<10))
			}
			for i := range 20 {
				e.Delete(fmt.Sprintf("%s%d", fillPrefix, i))
			}
			compact(e)
			e.WaitWrites(50)
			leader := e.Cluster.Leader(e.Ctx)
			r := e.Etcdkit("defrag", "--cluster", "-o", "json")
			var rs []ops.DefragResult
			if err := json.Unmarshal([]byte(r.Stdout), &rs); err != nil {
				e.T.Fatalf("defrag -o json: %v\n%s", err, r.Stdout)
			}
			if len(rs) != len(e.Cluster.Names()) {
				e.Problem("defrag did %d members, want %d: %s", len(rs), len(e.Cluster.Names()), r.Stdout)
			}
			for i, d := range rs {
				if !d.Done {
					e.Problem("defrag of %s did not finish: %s", d.Name, d.Error)
				}
				if d.SizeAfter >= d.SizeBefore {
					e.Problem("defrag of %s gave nothing back: %d bytes before, %d after", d.Name, d.SizeBefore, d.SizeAfter)
				}
				if last := i == len(rs)-1; last != (d.Name == leader) {
					e.Problem("defrag order %v: the leader %s must go last", rs, leader)
				}
			}
			e.WaitWrites(150)
		},
	})
}

// compact compacts the keyspace at the current revision, physically, and
// tells the checks that history before it is gone.
func compact(e *Env) int64 {
	e.T.Helper()
	cli := e.Cluster.Admin()
	r, err := cli.Get(e.Ctx, Prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		e.T.Fatal(err)
	}
	rev := r.Header.Revision
	if _, err := cli.Compact(e.Ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		e.T.Fatalf("compact at %d: %v", rev, err)
	}
	e.Compacted(rev)
	return rev
}

// bigValue is n random bytes from the run's seed.
func bigValue(e *Env, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(e.Rand.Uint32())
	}
	return b
}
