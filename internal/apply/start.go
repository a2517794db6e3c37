package apply

import (
	"context"
)

// startPhase starts the members that should run and do not: every member
// of a new cluster at once (each waits for a quorum of the others), and
// members whose data is on their host but whose process is gone, with
// that data (not re-created). A running member is left running; the roll
// phase restarts it if a file it reads at start changed.
type startPhase struct{}

func (startPhase) Title() string { return "Start members" }

func (startPhase) ShouldRun(r *run) bool {
	for _, h := range r.hosts {
		if h.role == roleBootstrap || h.role == roleRestart || (h.role == roleRunning && h.facts.Systemd && !h.obs.Enabled) {
			return true
		}
	}
	return false
}

func (startPhase) Run(ctx context.Context, r *run) error {
	return r.eachHost(ctx, r.hosts, func(ctx context.Context, h *host) error {
		switch {
		case h.role == roleBootstrap, h.role == roleRestart:
			if h.role == roleRestart {
				r.note(h, "its member is not running: starting it again from its data (%s)", h.obs.WAL)
			}
			if err := startMember(ctx, h); err != nil {
				return err
			}
			h.started = true
		case h.role == roleRunning && h.facts.Systemd && !h.obs.Enabled:
			return enableMember(ctx, h)
		}
		return nil
	})
}
