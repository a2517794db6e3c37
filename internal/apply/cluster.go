package apply

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/etcdkit/etcdkit/internal/ops"
)

// clusterPhase asks the running members (if any) for the member list and
// decides what to do with each host: bootstrap a new cluster, leave a
// running member (restarting it only for changed files), restart a member
// from its data, or join a new member. It only reads; what cannot be done
// safely is left for preflight to report with every other problem.
type clusterPhase struct{}

func (clusterPhase) Title() string { return "Read the cluster" }

func (clusterPhase) Run(ctx context.Context, r *run) error {
	if err := r.loadCA(); err != nil {
		return err
	}
	var running []string
	for _, h := range r.hosts {
		if h.obs.Running {
			running = append(running, h.m.ClientURL)
		}
	}
	var liveErr error
	switch {
	case len(running) == 0:
	case !r.caExists:
		r.clusterProblem(fmt.Errorf("members run on this spec's hosts, but %s holds no CA to talk to them with: pass --ca-dir with the directory that holds the cluster's CA", r.o.CADir))
	default:
		if err := r.ownCredentials(); err != nil {
			return err
		}
		r.live, liveErr = ops.MemberList(ctx, r.target(running))
		if liveErr != nil {
			r.clusterProblem(fmt.Errorf("members run on %s but none answered from this machine: %w; apply must reach the members' client URLs from here (check routes and firewalls for port %d)",
				strings.Join(running, ", "), liveErr, r.hosts[0].clientPort()))
		}
	}
	if r.live != nil {
		r.note(nil, "cluster %s answers with %d members", r.live.ClusterID, len(r.live.Members))
	} else if liveErr == nil {
		r.note(nil, "no member runs on the spec's hosts")
	}
	decide(r.c.Name, r.hosts, r.live)
	r.extra = extraMembers(r.hosts, r.live)
	for _, h := range r.hosts {
		if len(h.problems) == 0 {
			r.note(h, "%s", h.role)
		}
	}
	for _, m := range r.extra {
		if r.o.AllowRemove {
			r.note(nil, "%s is not in the spec: it will be removed (--allow-remove)", m.Label())
		} else {
			r.clusterProblem(fmt.Errorf("%s is in the cluster but not in the spec; apply removes members only when told: add it back to the spec, or run `%s --allow-remove` to remove it", m.Label(), r.o.Rerun))
		}
	}
	return nil
}

// clusterProblem is a refusal about the whole cluster, reported by
// preflight.
func (r *run) clusterProblem(err error) { r.problems = append(r.problems, err) }

// decide sets each host's role and problems from what its host holds and
// the live member list (nil when no member answered).
func decide(clusterName string, hosts []*host, live *ops.Membership) {
	for _, h := range hosts {
		h.role, h.live, h.problems = roleUnknown, nil, nil
		switch o := h.obs; {
		case o.Data == dataOther:
			h.problems = append(h.problems, notEtcdData(h))
		case o.Data == dataEtcd && o.WAL == nil:
			h.problems = append(h.problems, unreadableData(h))
		case live != nil:
			decideLive(h, live)
		default:
			decideOffline(clusterName, h)
		}
	}
	if live != nil {
		return
	}
	// No member answers: the hosts holding this cluster's data make it;
	// they must agree on which cluster that is, and empty hosts join it
	// once it runs.
	var ids []uint64
	for _, h := range hosts {
		if (h.role == roleRestart || h.role == roleRunning) && h.obs.WAL != nil && !slices.Contains(ids, h.obs.WAL.ClusterID) {
			ids = append(ids, h.obs.WAL.ClusterID)
		}
	}
	if len(ids) > 1 {
		for _, h := range hosts {
			if h.role == roleRestart || h.role == roleRunning {
				h.problems = append(h.problems, h.errorf("its data dir holds %s, but the other hosts' data dirs hold other clusters; apply cannot tell which is %q: move the wrong ones aside", h.obs.WAL, clusterName))
			}
		}
		return
	}
	if len(ids) == 1 {
		for _, h := range hosts {
			if h.role == roleBootstrap {
				h.role = roleJoin
			}
		}
	}
}

// decideLive judges a host whose data dir is empty or readable etcd data
// against the running cluster's member list.
func decideLive(h *host, live *ops.Membership) {
	o, dir := h.obs, h.obs.DataDir
	h.live = live.ByPeerURL(h.m.PeerURL)
	switch o.Data {
	case dataEtcd:
		switch {
		case hexID(o.WAL.ClusterID) != live.ClusterID:
			h.problems = append(h.problems, h.errorf("data dir %s holds another cluster (%s), not this spec's running cluster %s; if that data is not needed, move it aside (`mv %s %s.old`) and run apply again to add the host as a new member", dir, o.WAL, live.ClusterID, dir, dir))
		default:
			m := live.Find(hexID(o.WAL.MemberID))
			switch {
			case m == nil:
				h.problems = append(h.problems, h.errorf("data dir %s holds member %x, which was removed from the cluster; move the data aside (`mv %s %s.old`) and run apply again to add the host as a new member", dir, o.WAL.MemberID, dir, dir))
			case !slices.Contains(m.PeerURLs, h.m.PeerURL):
				h.problems = append(h.problems, h.errorf("data dir %s holds %s, but the spec gives it peer URL %s; apply does not move members: change the spec back, or move the member with `etcdkit member update %s --peer-urls %s` first", dir, m.Label(), h.m.PeerURL, m.Ref(), h.m.PeerURL))
			default:
				h.live = m
				h.role = dataRole(o)
			}
		}
	default:
		switch {
		case h.live != nil && h.live.Started:
			h.problems = append(h.problems, h.errorf("%s is in the cluster, but its data dir %s on this host is empty: its data is gone; replace it: `etcdkit member remove %s`, then run apply again to add it back as a new member", h.live.Label(), dir, h.live.Ref()))
		case h.live == nil && live.ByName(h.m.Name) != nil:
			other := live.ByName(h.m.Name)
			h.problems = append(h.problems, h.errorf("the cluster already has a member named %q, with peer URLs %s; the spec gives it %s: apply does not move members (`etcdkit member update %s --peer-urls %s`), or remove the old one first", h.m.Name, strings.Join(other.PeerURLs, ","), h.m.PeerURL, h.m.Name, h.m.PeerURL))
		default:
			// New, or added by an earlier run that stopped before it
			// started (an unstarted member with its peer URL).
			h.role = roleJoin
		}
	}
}

// decideOffline judges a host whose data dir is empty or readable etcd
// data when no member answers: its data must be what apply recorded for
// this member of this cluster.
func decideOffline(clusterName string, h *host) {
	o, dir := h.obs, h.obs.DataDir
	switch o.Data {
	case dataEtcd:
		switch {
		case o.Record == nil:
			why := "no member of this spec's cluster runs to compare it with, and apply has no record of it (" + RecordPath + ")"
			if o.RecordErr != nil {
				why = o.RecordErr.Error()
			}
			h.problems = append(h.problems, h.errorf("data dir %s holds another cluster (%s): %s; if it is not needed, move it aside (`mv %s %s.old`) and run apply again", dir, o.WAL, why, dir, dir))
		default:
			if ok, why := o.Record.matches(o.WAL, clusterName, h.m.Name, h.m.PeerURL); !ok {
				h.problems = append(h.problems, h.errorf("data dir %s holds another cluster (%s): %s; if it is not needed, move it aside (`mv %s %s.old`) and run apply again", dir, o.WAL, why, dir, dir))
				return
			}
			h.role = dataRole(o)
		}
	default:
		h.role = roleBootstrap
	}
}

// dataRole is the role of a host holding this member's data.
func dataRole(o *observed) role {
	if o.Running {
		return roleRunning
	}
	return roleRestart
}

func notEtcdData(h *host) error {
	dir := h.obs.DataDir
	return h.errorf("data dir %s holds files that are not an etcd data dir (%s); move them aside (`mv %s %s.old`) and run apply again", dir, strings.Join(h.obs.Entries, ", "), dir, dir)
}

func unreadableData(h *host) error {
	dir := h.obs.DataDir
	return h.errorf("data dir %s holds etcd data apply cannot read (%v); move it aside (`mv %s %s.old`) and run apply again, or restore it from a snapshot", dir, h.obs.WALErr, dir, dir)
}

// extraMembers are the live members no spec member has the peer URL of.
func extraMembers(hosts []*host, live *ops.Membership) []ops.Member {
	if live == nil {
		return nil
	}
	var out []ops.Member
	for _, m := range live.Members {
		inSpec := false
		for _, h := range hosts {
			if slices.Contains(m.PeerURLs, h.m.PeerURL) {
				inSpec = true
			}
		}
		if !inSpec {
			out = append(out, m)
		}
	}
	return out
}
