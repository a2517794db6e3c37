package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/etcdkit/etcdkit/internal/ops"
)

// healthPhase waits until every member that should run answers as
// healthy, then records on each host which cluster and member its data
// dir belongs to (RecordPath), so a later run can tell it from another
// cluster's data even with every member down.
type healthPhase struct{}

func (healthPhase) Title() string { return "Wait for health" }

func (healthPhase) ShouldRun(r *run) bool {
	return len(r.byRole(roleBootstrap, roleRunning, roleRestart)) > 0
}

func (healthPhase) Run(ctx context.Context, r *run) error {
	hosts := r.byRole(roleBootstrap, roleRunning, roleRestart)
	if err := r.waitHealthy(ctx, hosts); err != nil {
		return err
	}
	return r.record(ctx, hosts)
}

// DryRun plans the records a real run would write.
func (healthPhase) DryRun(ctx context.Context, r *run) error {
	for _, h := range r.byRole(roleBootstrap, roleRunning, roleRestart) {
		if h.obs.Record == nil {
			if err := h.conn.Change(ctx, "record the member's cluster and member IDs in "+RecordPath, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

func (healthPhase) Recovery(r *run, _ error) string {
	return "the members' logs (above, and on each host) say why; fix that, then run `" + r.o.Rerun + "` again: running members are left as they are"
}

// waitHealthy waits until the hosts' members answer as healthy, up to the
// timeout; on failure it names each unhealthy member with the end of its
// log.
func (r *run) waitHealthy(ctx context.Context, hosts []*host) error {
	if err := r.ownCredentials(); err != nil {
		return err
	}
	var eps []string
	for _, h := range hosts {
		eps = append(eps, h.m.ClientURL)
	}
	r.note(nil, "waiting up to %s for %s to be healthy", r.o.Timeout, strings.Join(names(hosts), ", "))
	wctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	hs, err := ops.WaitHealthy(wctx, r.target(eps), time.Second)
	if err == nil {
		r.note(nil, "healthy: %s", strings.Join(names(hosts), ", "))
		return nil
	}
	var errs []error
	for i, eh := range hs {
		if eh.Healthy {
			continue
		}
		h := hosts[i]
		msg := fmt.Sprintf("member not healthy after %s: %s", r.o.Timeout, eh.Error)
		if tail := logTail(ctx, h); tail != "" {
			msg += "\nthe end of its log:\n" + tail
		}
		errs = append(errs, h.errorf("%s", msg))
	}
	if len(errs) == 0 {
		return err
	}
	return errors.Join(errs...)
}

// record writes each host's member record once its member is known.
func (r *run) record(ctx context.Context, hosts []*host) error {
	ms, err := ops.MemberList(ctx, r.specTarget())
	if err != nil {
		return err
	}
	return r.eachHost(ctx, hosts, func(ctx context.Context, h *host) error {
		m := ms.ByPeerURL(h.m.PeerURL)
		if m == nil {
			return fmt.Errorf("no member has peer URL %s after it started", h.m.PeerURL)
		}
		rec := memberRecord{Cluster: r.c.Name, ClusterID: ms.ClusterID, Member: h.m.Name, MemberID: m.ID, PeerURL: h.m.PeerURL}
		_, err := h.conn.WriteFile(ctx, RecordPath, rec.encode(), publicFile)
		return err
	})
}

func names(hosts []*host) []string {
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = h.name()
	}
	return out
}
