package robustness

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// MemberReplaced tells the suite that m took old's place in the cluster
// (a replacement, successful or not: the checks judge the cluster
// against what was meant). From here on the per-member checks follow the
// new member set: old's watcher is retired and checked up to the
// revision it had reached; a watcher on m follows the whole phase from
// its start, since a new member must hold the whole history; every client
// is redialed to the new set; and the end checks expect m, not old.
func (e *Env) MemberReplaced(old string, m spec.Member) {
	e.T.Helper()
	e.Cluster.Replaced(old, m)
	p := e.phase
	if i := slices.IndexFunc(p.watchers, func(w *Watcher) bool { return w.Name == old }); i >= 0 {
		w := p.watchers[i]
		last := w.Last()
		events, reconnects, problems := w.Stop()
		p.data.Watches[old] = events
		if p.data.WatchEnds == nil {
			p.data.WatchEnds = map[string]int64{}
		}
		p.data.WatchEnds[old] = last
		p.data.Reconnects += reconnects
		p.data.WatchProblems = append(p.data.WatchProblems, problems...)
		p.clients[i].Close()
		p.watchers = slices.Delete(p.watchers, i, i+1)
		p.clients = slices.Delete(p.clients, i, i+1)
	}
	cli, err := e.Cluster.Target(e.T, m.Name).Client()
	if err != nil {
		e.T.Fatal(err)
	}
	p.clients = append(p.clients, cli)
	p.watchers = append(p.watchers, StartWatcher(cli, m.Name, p.data.StartRev+1, p.rec))
	e.Redial()
}

// checkMembers compares `etcdkit member list` with the members the
// cluster should have: the same ones, each a started voting member. A
// member that never started has no name yet and is known by its peer URL.
func (e *Env) checkMembers() error {
	var ms ops.Membership
	err := e.retry("etcdkit member list", func(context.Context) error {
		r := e.Cluster.Etcdkit("member", "list", "-o", "json")
		if err := json.Unmarshal([]byte(r.Stdout), &ms); err != nil {
			return fmt.Errorf("exit %d: %s", r.Code, strings.TrimSpace(r.Stderr))
		}
		return nil
	})
	if err != nil {
		return err
	}
	want := e.Cluster.Names()
	var wrong []string
	seen := map[string]bool{}
	for _, m := range ms.Members {
		name := m.Name
		if name == "" {
			for _, s := range e.Cluster.Spec.Members {
				if slices.Contains(m.PeerURLs, s.PeerURL) {
					name = s.Name
				}
			}
		}
		label := name
		if label == "" {
			label = m.Label()
		}
		seen[name] = true
		var faults []string
		if !slices.Contains(want, name) {
			faults = append(faults, "is a member and should not be")
		}
		if !m.Started {
			faults = append(faults, "was added but never started")
		}
		if m.Learner {
			faults = append(faults, "is still a learner")
		}
		if len(faults) > 0 {
			wrong = append(wrong, label+" "+strings.Join(faults, ", "))
		}
	}
	for _, n := range want {
		if !seen[n] {
			wrong = append(wrong, n+" is not a member")
		}
	}
	if len(wrong) > 0 {
		return fmt.Errorf("etcdkit member list: %s (want %s, each a started voting member)", strings.Join(wrong, "; "), strings.Join(want, ", "))
	}
	return nil
}
