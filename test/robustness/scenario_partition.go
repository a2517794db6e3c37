package robustness

import "time"

func init() {
	Register(Scenario{
		Name:    "partition-leader",
		Summary: "cut the leader off from its peers (both directions, through proxies on every peer port), let the majority elect a new leader and serve, then heal",
		Sizes:   []int{3, 5},
		Quick:   true,
		Cluster: withPeerProxies,
		Run:     func(e *Env) { partition(e, e.Cluster.Leader(e.Ctx)) },
	})
	Register(Scenario{
		Name:    "partition-follower",
		Summary: "cut a follower off from its peers, keep serving through the majority, then heal: the follower catches up",
		Sizes:   []int{3, 5},
		Cluster: withPeerProxies,
		Run: func(e *Env) {
			followers := e.Cluster.Followers(e.Ctx)
			partition(e, followers[e.Rand.IntN(len(followers))])
		},
	})
}

func withPeerProxies(o *ClusterOptions) { o.PeerProxies = true }

func partition(e *Env, victim string) {
	e.WaitWrites(150)
	healed := e.Fault("partition " + victim)
	e.Cluster.Isolate(victim)
	cut := time.Now()
	// Requests that reach the isolated member time out, so the traffic
	// slows; a little of it proves the majority serves.
	e.WaitWrites(50)
	// Long enough for the isolated member to notice (check-quorum steps
	// an isolated leader down after an election timeout).
	if left := 3*e.Cluster.ElectionTimeout() - time.Since(cut); left > 0 {
		time.Sleep(left)
	}
	if l := e.Cluster.Leader(e.Ctx); l == victim {
		e.T.Fatalf("the isolated member %s is the leader the majority agrees on", victim)
	}
	e.Cluster.Heal(victim)
	healed()
	e.WaitWrites(150)
	if n := e.Cluster.Network.UnknownOrigins(); n > 0 {
		e.Note("%d peer connection(s) could not be traced to a member", n)
	}
}
