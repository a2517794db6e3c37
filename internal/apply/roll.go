package apply

import (
	"context"
	"fmt"
	"strings"

	"github.com/etcdkit/etcdkit/internal/ops"
)

// rollPhase restarts the running members that must read a changed file
// (their config, say a tuning value, the etcdkit binary, the CA bundle or
// the unit), one at a time: followers first, the leader last after
// handing its leadership over, and only while the whole cluster is
// healthy, waiting for it to be healthy again before the next. A member
// started in this run already read the new files.
type rollPhase struct{}

func (rollPhase) Title() string { return "Roll out changes" }

func (rollPhase) ShouldRun(r *run) bool { return len(r.toRestart()) > 0 }

func (rollPhase) Run(ctx context.Context, r *run) error {
	hosts := r.toRestart()
	t, ms, err := r.liveTarget(ctx)
	if err != nil {
		return err
	}
	// The leader last: every other restart then happens under a stable
	// leader, and only one election (the hand-over) is needed.
	var order []*host
	var leader *host
	for _, h := range hosts {
		if m := ms.ByPeerURL(h.m.PeerURL); m != nil && m.Leader {
			leader = h
			continue
		}
		order = append(order, h)
	}
	if leader != nil {
		order = append(order, leader)
	}
	for _, h := range order {
		running := r.running()
		if err := ops.Unhealthy(ops.Health(ctx, r.target(endpoints(running)))); err != nil {
			return fmt.Errorf("refusing to restart %s while the cluster is not healthy (a restart could cost it its quorum):\n%w", h.name(), err)
		}
		if h == leader {
			if _, ms, err = r.liveTarget(ctx); err != nil {
				return err
			}
			if m := ms.ByPeerURL(h.m.PeerURL); m != nil && m.Leader {
				to, err := ops.MoveLeader(ctx, t, ms, m, ops.DefaultChangeTimeout)
				if err != nil {
					return fmt.Errorf("hand leadership from %s over before restarting it: %w", h.name(), err)
				}
				r.note(h, "handed leadership over to %s before restarting", to.Label())
			}
		}
		if err := restartMember(ctx, h, strings.Join(r.restartReasons(h), ", ")); err != nil {
			return err
		}
		h.started = true
		if err := r.waitHealthy(ctx, running); err != nil {
			return err
		}
	}
	return nil
}

// DryRun plans the restarts.
func (rollPhase) DryRun(ctx context.Context, r *run) error {
	for _, h := range r.toRestart() {
		if err := restartMember(ctx, h, strings.Join(r.restartReasons(h), ", ")); err != nil {
			return err
		}
	}
	return nil
}

func (rollPhase) Recovery(r *run, _ error) string {
	return "the members restarted so far run the new files; fix what the message names, then run `" + r.o.Rerun + "` again to restart the rest"
}

// toRestart are the running members that must restart, in spec order.
func (r *run) toRestart() []*host {
	var out []*host
	for _, h := range r.byRole(roleRunning) {
		if !h.started && len(r.restartReasons(h)) > 0 {
			out = append(out, h)
		}
	}
	return out
}

// restartReasons says which files the member must read again. A file is
// newer than the process also when an earlier run wrote it and stopped
// before restarting the member.
func (r *run) restartReasons(h *host) []string {
	var why []string
	add := func(s string) {
		for _, w := range why {
			if w == s {
				return
			}
		}
		why = append(why, s)
	}
	if h.configChanged {
		add("its config changed")
	}
	if h.binaryChanged {
		add("new etcdkit binary")
	}
	if h.caChanged {
		add("new CA bundle")
	}
	if h.unitChanged {
		add("its unit changed")
	}
	for _, p := range h.obs.newerThanProcess() {
		switch p {
		case ConfigPath:
			add("its config changed")
		case BinaryPath:
			add("new etcdkit binary")
		default:
			add("new CA bundle")
		}
	}
	return why
}

func endpoints(hosts []*host) []string {
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = h.m.ClientURL
	}
	return out
}
