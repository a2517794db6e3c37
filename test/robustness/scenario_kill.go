package robustness

func init() {
	Register(Scenario{
		Name:    "kill-leader",
		Summary: "SIGKILL the leader under load, let the others elect a new one and serve, then restart it",
		Sizes:   []int{3, 5},
		Quick:   true,
		Run:     func(e *Env) { killAndRestart(e, e.Cluster.Leader(e.Ctx)) },
	})
	Register(Scenario{
		Name:    "kill-follower",
		Summary: "SIGKILL a follower under load, then restart it; it catches up from the leader",
		Sizes:   []int{3, 5},
		Quick:   true,
		Run: func(e *Env) {
			followers := e.Cluster.Followers(e.Ctx)
			killAndRestart(e, followers[e.Rand.IntN(len(followers))])
		},
	})
}

func killAndRestart(e *Env, victim string) {
	e.WaitWrites(150)
	healed := e.Fault("SIGKILL " + victim)
	e.Cluster.Kill(victim)
	e.WaitWrites(50)
	e.Cluster.Restart(victim)
	healed()
	e.WaitWrites(150)
}
