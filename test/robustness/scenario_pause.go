package robustness

import "time"

func init() {
	Register(Scenario{
		Name:    "pause-leader",
		Summary: "SIGSTOP the leader for longer than the election timeout (the others elect a new leader and serve), then SIGCONT it: the old leader must step down, not serve stale data",
		Sizes:   []int{3, 5},
		Quick:   true,
		Run: func(e *Env) {
			e.WaitWrites(150)
			leader := e.Cluster.Leader(e.Ctx)
			healed := e.Fault("SIGSTOP " + leader)
			e.Cluster.Pause(leader)
			stopped := time.Now()
			// The others elect a leader after the election timeout; stay
			// frozen at least three of them, and until writes flow again.
			if l := e.Cluster.Leader(e.Ctx); l == leader {
				e.T.Fatalf("the frozen member %s is still the leader", leader)
			}
			e.WaitWrites(50)
			if left := 3*e.Cluster.ElectionTimeout() - time.Since(stopped); left > 0 {
				time.Sleep(left)
			}
			e.Cluster.Resume(leader)
			healed()
			e.WaitWrites(150)
		},
	})
}
