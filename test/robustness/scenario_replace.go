package robustness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/etcdkit/etcdkit/internal/spec"
	"github.com/etcdkit/etcdkit/internal/testutil"
)

func init() {
	Register(Scenario{
		Name: "member-replace",
		Summary: "SIGKILL a follower under load and empty its data dir (its host is lost), then `etcdkit member replace` it with a new member " +
			"on another address, started from the config the command writes: it joins as a learner, catches up and is promoted; " +
			"the checks follow the new member set (the new member must hold the whole history)",
		Sizes:   []int{3, 5},
		Cluster: compactedLog,
		Run: func(e *Env) {
			followers := e.Cluster.Followers(e.Ctx)
			replaceLost(e, followers[e.Rand.IntN(len(followers))], nil)
		},
	})
	Register(Scenario{
		Name:    "member-replace-leader",
		Summary: "as member-replace, with the leader lost: the others elect a new leader and serve, then the lost leader is replaced",
		Sizes:   []int{3, 5},
		Cluster: compactedLog,
		Run:     func(e *Env) { replaceLost(e, e.Cluster.Leader(e.Ctx), nil) },
	})
	Register(Scenario{
		Name: "member-replace-interrupted",
		Summary: "as member-replace, but `etcdkit member replace` is killed (SIGKILL) right after one step, run again and killed after a later one " +
			"(steps chosen by the seed), then run a third time: it finishes the replacement and takes no second snapshot",
		Quick:   true,
		Cluster: compactedLog,
		Run: func(e *Env) {
			// The steps after which a kill leaves work to resume; check
			// runs again on every run anyway.
			steps := []string{"snapshot", "remove", "add", "config", "start", "promote"}
			i := e.Rand.IntN(len(steps) - 1)
			j := i + 1 + e.Rand.IntN(len(steps)-1-i)
			followers := e.Cluster.Followers(e.Ctx)
			replaceLost(e, followers[e.Rand.IntN(len(followers))], []string{steps[i], steps[j]})
		},
	})
}

// compactedLog makes the cluster one that has run for a while: the
// leader has compacted its raft log, so a new member catches up from a
// snapshot of its database (sent over the peer connection), not by
// replaying every entry from the first.
func compactedLog(o *ClusterOptions) {
	o.SnapshotCount = 100
	o.Preload = 5400
}

// killAfterEnv is internal/cli's test-only failpoint: `etcdkit member
// replace` kills itself with SIGKILL right after the named step.
const killAfterEnv = "ETCDKIT_TEST_KILL_AFTER_STEP"

// replaceLost loses a member as a host is lost (SIGKILL, data dir
// emptied) and replaces it with a new member on the next free 127.0.0.N,
// with its own directory like the others', through `etcdkit member
// replace`. The command is killed after each step in interrupt and run
// again.
func replaceLost(e *Env, victim string, interrupt []string) {
	e.T.Helper()
	c := e.Cluster
	e.WaitWrites(150)
	m, err := c.Dir.NextMember(c.Spec)
	if err != nil {
		e.T.Fatal(err)
	}
	dataDir := c.Config(e.T, victim).DataDir
	healed := e.Fault(fmt.Sprintf("SIGKILL %s, empty its data dir, replace it with %s", victim, m.Name))
	c.Kill(victim)
	if err := os.RemoveAll(dataDir); err != nil {
		e.T.Fatal(err)
	}
	e.WaitWrites(50) // the others serve without it
	if runReplace(e, victim, m, interrupt) {
		healed()
	}
	// What was meant, whether or not it worked: the checks judge the
	// cluster against it.
	e.MemberReplaced(victim, m)
	e.WaitWrites(150)
}

// runReplace plays the operator of `etcdkit member replace OLD`: it runs
// the command and, once the new member's config appears, starts the
// member from it (`etcdkit member run --config`), as the operator would
// on the new host. The config names the member's own certificate and
// data dirs, and the snapshot and progress file go to the test's
// directory. With interrupt, the command is killed right after each of
// those steps and run again. It reports whether the replacement
// finished; why not is a problem of the run.
func runReplace(e *Env, old string, m spec.Member, interrupt []string) bool {
	e.T.Helper()
	c := e.Cluster
	md := c.Dir.Member(m.Name)
	backups := filepath.Join(e.T.TempDir(), "backups")
	args := []string{"member", "replace", old, "--name", m.Name, "--peer-url", m.PeerURL, "--client-url", m.ClientURL,
		"--pki", c.Dir.PKIDir(), "--out", string(md), "--cert-dir", md.PKIDir(), "--data-dir", md.Data(),
		"--backup-dir", backups, "--start-timeout", "3m", "--catch-up-timeout", "3m"}
	command := fmt.Sprintf("etcdkit member replace %s --name %s", old, m.Name)
	for run := 0; run <= len(interrupt); run++ {
		env := c.CommandEnv()
		step := ""
		if run < len(interrupt) {
			step = interrupt[run]
			env = append(env, killAfterEnv+"="+step)
		}
		p := testutil.Start(e.T, env, c.Bin, args...)
		code, why := awaitReplace(e, p, m, md.Config())
		switch {
		case why != "":
			e.Problem("%s: %s", command, why)
			return false
		case step != "" && code == -1:
			e.T.Logf("%s: killed after step %q, as asked; running it again", command, step)
		case step != "":
			e.Problem("%s with %s=%s: exit %d, not killed after that step\n%s", command, killAfterEnv, step, code, tail(p.Stderr(), 10))
			return false
		case code != 0:
			e.Problem("%s: exit %d: %s", command, code, failure(p.Stderr()))
			return false
		}
	}
	if mp := c.Procs[m.Name]; mp != nil {
		if strings.Contains(mp.Stderr(), "applied snapshot") {
			e.Note("%s caught up from a snapshot of the leader's database", m.Name)
		} else {
			e.Note("%s caught up by replaying the leader's raft log", m.Name)
		}
	}
	// A resumed replacement redoes no step: one snapshot, taken once.
	if snaps, _ := filepath.Glob(filepath.Join(backups, "*.db")); len(snaps) != 1 {
		e.Problem("%s: want the one snapshot taken before the change in %s, found %d", command, backups, len(snaps))
	}
	return true
}

// awaitReplace waits for a replace command to end, starting the new
// member once its config is written. It returns the exit code, or why it
// gave up waiting.
func awaitReplace(e *Env, p *testutil.Proc, m spec.Member, config string) (code int, why string) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		exited := p.Exited()
		// Checked after a kill too: killed right after writing the
		// config, the command leaves the start to the next run.
		if _, err := os.Stat(config); err == nil && e.Cluster.Procs[m.Name] == nil {
			e.Cluster.Launch(m.Name, config)
		}
		if mp := e.Cluster.Procs[m.Name]; mp != nil && mp.Exited() {
			return 0, fmt.Sprintf("the new member %s exited:\n%s", m.Name, tail(mp.Stderr(), 10))
		}
		if exited {
			return p.Wait(e.T, time.Minute), "" // it has ended: at once
		}
		if time.Now().After(deadline) {
			return 0, fmt.Sprintf("still running after 5 minutes:\n%s", tail(p.Stderr(), 10))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// failure is the error a command printed: its "Error: " line, else its
// last lines.
func failure(stderr string) string {
	lines := strings.Split(stderr, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if msg, ok := strings.CutPrefix(lines[i], "Error: "); ok {
			return msg
		}
	}
	return tail(stderr, 5)
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
