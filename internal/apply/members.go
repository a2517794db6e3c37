package apply

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/etcdkit/etcdkit/internal/connect"
	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/render"
)

// membersPhase makes the cluster's membership the spec's, one change at a
// time, each after a snapshot and only when quorum allows (internal/ops
// checks and refuses): members that are down and not in the spec are
// removed first, then each new host joins as a learner, is started and
// promoted once caught up, then the remaining members not in the spec are
// removed. Removals need --allow-remove (preflight refused otherwise).
type membersPhase struct{}

func (membersPhase) Title() string { return "Membership changes" }

func (membersPhase) ShouldRun(r *run) bool {
	return len(r.byRole(roleJoin)) > 0 || len(r.learners()) > 0 || (r.o.AllowRemove && len(r.extra) > 0)
}

func (membersPhase) Run(ctx context.Context, r *run) error {
	t, ms, err := r.liveTarget(ctx)
	if err != nil {
		return err
	}
	down, up := r.extrasByHealth(ms)
	for _, m := range down {
		if err := r.remove(ctx, t, m); err != nil {
			return err
		}
	}
	for _, h := range r.learners() {
		if err := r.promote(ctx, t, h, h.live.ID); err != nil {
			return err
		}
	}
	for _, h := range r.byRole(roleJoin) {
		if err := r.join(ctx, h); err != nil {
			return err
		}
	}
	if t, _, err = r.liveTarget(ctx); err != nil {
		return err
	}
	for _, m := range up {
		if err := r.remove(ctx, t, m); err != nil {
			return err
		}
	}
	return nil
}

// DryRun checks each change the way the real run will (a change that
// would be refused fails the dry run) and plans it.
func (membersPhase) DryRun(ctx context.Context, r *run) error {
	var ms *ops.Membership
	if r.live != nil {
		var err error
		if _, ms, err = r.liveTarget(ctx); err != nil {
			return err
		}
	}
	down, up := r.extrasByHealth(ms)
	for _, m := range slices.Concat(down, up) {
		if err := ops.CheckRemove(ms, ms.Find(m.ID), true); err != nil {
			return err
		}
		if err := r.plan.Do(m.Ref(), addrHost(firstOf(m.PeerURLs)), r.removeWhat(m), nil); err != nil {
			return err
		}
	}
	for _, h := range r.learners() {
		if err := h.conn.Change(ctx, r.promoteWhat(h), nil); err != nil {
			return err
		}
	}
	for _, h := range r.byRole(roleJoin) {
		if ms != nil && h.live == nil {
			if _, err := ops.CheckAdd(ms, r.addOptions(h, nil)); err != nil {
				return err
			}
		}
		if err := h.conn.Change(ctx, r.addWhat(h), nil); err != nil {
			return err
		}
		initial := r.c.InitialCluster()
		if ms != nil {
			initial = joinInitialCluster(ms, h)
		}
		if err := r.writeConfig(ctx, h, render.StateExisting, initial); err != nil {
			return err
		}
		if err := startMember(ctx, h); err != nil {
			return err
		}
		if err := h.conn.Change(ctx, r.promoteWhat(h), nil); err != nil {
			return err
		}
		if err := h.conn.Change(ctx, "record the member's cluster and member IDs in "+RecordPath, nil); err != nil {
			return err
		}
	}
	return nil
}

func (membersPhase) Recovery(r *run, _ error) string {
	return "each membership change is made whole or not at all; see the state with `etcdkit member list` (with the client certificate in " +
		r.o.CADir + "), fix what the message names, then run `" + r.o.Rerun + "` again to continue"
}

// learners are running members of the spec that are still learners (an
// earlier run stopped before promoting them).
func (r *run) learners() []*host {
	var out []*host
	for _, h := range r.byRole(roleRunning, roleRestart) {
		if h.live != nil && h.live.Learner {
			out = append(out, h)
		}
	}
	return out
}

// liveTarget reaches the cluster through the members that run, and
// returns the member list with each member's health.
func (r *run) liveTarget(ctx context.Context) (*connect.Target, *ops.Membership, error) {
	if err := r.ownCredentials(); err != nil {
		return nil, nil, err
	}
	ms, err := ops.ListMembers(ctx, r.specTarget())
	if err != nil {
		return nil, nil, err
	}
	eps := ms.ClientURLs()
	if len(eps) == 0 {
		return nil, nil, fmt.Errorf("no member of cluster %s has a client URL", ms.ClusterID)
	}
	return r.target(eps), ms, nil
}

// extrasByHealth splits the members to remove into those that are down
// (removed first: they already cost the cluster a vote) and the rest.
func (r *run) extrasByHealth(ms *ops.Membership) (down, up []ops.Member) {
	if !r.o.AllowRemove {
		return nil, nil
	}
	for _, m := range r.extra {
		cur := m
		if ms != nil {
			if f := ms.Find(m.ID); f != nil {
				cur = *f
			} else {
				continue // already gone
			}
		}
		if cur.Healthy {
			up = append(up, cur)
		} else {
			down = append(down, cur)
		}
	}
	return down, up
}

func (r *run) removeWhat(m ops.Member) string {
	return fmt.Sprintf("remove %s from the cluster (--allow-remove), after a snapshot into %s", m.Label(), r.o.BackupDir)
}

func (r *run) addWhat(h *host) string {
	return fmt.Sprintf("add member %q (%s) to the cluster as a learner, after a snapshot into %s", h.m.Name, h.m.PeerURL, r.o.BackupDir)
}

func (r *run) promoteWhat(h *host) string {
	return fmt.Sprintf("promote member %q to a voting member once it has caught up, after a snapshot", h.m.Name)
}

func (r *run) addOptions(h *host, t *connect.Target) ops.AddOptions {
	o := ops.AddOptions{Name: h.m.Name, PeerURLs: []string{h.m.PeerURL}, ClientURLs: []string{h.m.ClientURL}, Timeout: ops.DefaultChangeTimeout,
		Progress: func(msg string) { r.note(h, "%s", msg) }}
	if t != nil {
		o.Backup = r.backup(t)
	}
	return o
}

// join adds a new host's member as a learner, writes its config with the
// live member list, starts it and promotes it once it has caught up. A
// run cut off anywhere continues: the add of an existing learner is no
// change, files are converged, a running member is not started again.
func (r *run) join(ctx context.Context, h *host) error {
	t, ms, err := r.liveTarget(ctx)
	if err != nil {
		return err
	}
	var added *ops.AddResult
	add := func(context.Context) error {
		added, err = ops.Add(ctx, t, r.addOptions(h, t))
		return err
	}
	if cur := ms.ByPeerURL(h.m.PeerURL); cur != nil {
		r.note(h, "%s was added by an earlier run; continuing", cur.Label())
		err = add(ctx)
	} else {
		err = h.conn.Change(ctx, r.addWhat(h), add)
	}
	if err != nil {
		return err
	}
	if err := r.writeConfig(ctx, h, render.StateExisting, added.InitialCluster); err != nil {
		return err
	}
	if err := startMember(ctx, h); err != nil {
		return err
	}
	h.started = true
	if err := r.promote(ctx, t, h, added.Member.ID); err != nil {
		return err
	}
	if err := r.waitHealthy(ctx, r.running()); err != nil {
		return err
	}
	return r.record(ctx, []*host{h})
}

// promote makes a learner a voter once it has caught up, after a snapshot.
func (r *run) promote(ctx context.Context, t *connect.Target, h *host, id string) error {
	return h.conn.Change(ctx, r.promoteWhat(h), func(ctx context.Context) error {
		_, err := ops.Promote(ctx, t, id, ops.PromoteOptions{Wait: true, Timeout: r.o.Timeout, Backup: r.backup(t),
			Progress: func(msg string) { r.note(h, "%s", msg) }})
		return err
	})
}

// remove takes a member that is not in the spec out of the cluster. Its
// host is not in the spec, so apply cannot stop it there: it says how.
func (r *run) remove(ctx context.Context, t *connect.Target, m ops.Member) error {
	err := r.plan.Do(m.Ref(), addrHost(firstOf(m.PeerURLs)), r.removeWhat(m), func() error {
		// Force: the spec asks for the size it lists, even an even one
		// (spec validation warned about it).
		_, err := ops.Remove(ctx, t, m.ID, ops.RemoveOptions{Force: true, Backup: r.backup(t), Timeout: ops.DefaultChangeTimeout,
			Progress: func(msg string) { r.note(nil, "%s", msg) }})
		return err
	})
	if err != nil {
		return err
	}
	r.warn("%s was removed from the cluster; its host (%s) is not in the spec, so apply did not touch it: there, stop it for good (`systemctl disable --now %s`, or kill the pid in %s) and move its data dir aside before reusing the host",
		m.Label(), addrHost(firstOf(m.PeerURLs)), UnitName, PIDFile)
	return nil
}

// running are the hosts whose members run now.
func (r *run) running() []*host {
	var out []*host
	for _, h := range r.hosts {
		if h.role == roleBootstrap || h.role == roleRunning || h.role == roleRestart || h.started {
			out = append(out, h)
		}
	}
	return out
}

// joinInitialCluster is the initial cluster a joining member would get:
// the live members and itself (for the dry run's plan).
func joinInitialCluster(ms *ops.Membership, h *host) string {
	var parts []string
	for _, m := range ms.Members {
		name := m.Name
		if name == "" {
			name = m.ID
		}
		for _, u := range m.PeerURLs {
			if u != h.m.PeerURL {
				parts = append(parts, name+"="+u)
			}
		}
	}
	return strings.Join(append(parts, h.m.Name+"="+h.m.PeerURL), ",")
}

func firstOf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
