package replace

import (
	"context"
	"fmt"
	"strings"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/ops"
)

// checkPhase refuses a replacement that would be unsafe, before anything
// changes: the remaining members must keep quorum without the old one
// and be able to accept the new one; the old one must be down unless
// forced; the new member's name and URLs must be free.
type checkPhase struct{}

func (checkPhase) Name() string  { return "check" }
func (checkPhase) Title() string { return "check quorum and health of the remaining members" }

func (checkPhase) Needed(*run) bool { return true }

func (checkPhase) Action(r *run) string {
	voters, healthy := 0, 0
	for _, m := range r.ms.Members {
		if !m.Learner && (r.old == nil || m.ID != r.old.ID) {
			voters++
			if m.Healthy {
				healthy++
			}
		}
	}
	return fmt.Sprintf("%d of %d remaining voting members healthy", healthy, voters)
}

func (checkPhase) Run(ctx context.Context, r *run) error {
	o := r.o
	action := fmt.Sprintf("add member %q", o.New.Name)
	if o.Old != "" {
		action = fmt.Sprintf("replace member %q with %q", o.Old, o.New.Name)
	}
	for _, u := range []string{o.New.PeerURL, o.New.ClientURL} {
		if _, err := etcdconf.ParseURL(u); err != nil {
			return fmt.Errorf("new member %q: %w", o.New.Name, err)
		}
	}
	if r.st.Completed && r.new == nil {
		return fmt.Errorf("%s records this change as completed, but %q is not a member any more; delete the file to start a new one", r.statePath, o.New.Name)
	}
	if err := r.checkOld(action); err != nil {
		return err
	}
	if err := r.checkNew(action); err != nil {
		return err
	}
	if r.new != nil {
		// Past the add: what is left (start, promote) needs no more
		// checks than those phases make.
		return nil
	}
	// From here on the change is ahead: the cluster must have quorum
	// without the old member, and etcd must be able to accept the new one
	// (it wants a quorum of the grown cluster connected).
	var except uint64
	if r.old != nil {
		except = r.old.RawID()
	}
	voters, healthy, down := 0, 0, []string{}
	for _, m := range r.ms.Members {
		if m.Learner || (except != 0 && m.RawID() == except) {
			continue
		}
		voters++
		if m.Healthy {
			healthy++
		} else {
			down = append(down, m.Ref())
		}
	}
	if voters == 0 {
		return &ops.Refusal{Action: action, Reason: "the old member is the only voting member: removing it first would destroy the cluster",
			Fix: fmt.Sprintf("add the new member first (`etcdkit member add %s --peer-urls %s`, start it, `etcdkit member promote %s --wait`), then remove the old one", o.New.Name, o.New.PeerURL, o.New.Name)}
	}
	if healthy < ops.Quorum(voters+1) {
		return &ops.Refusal{
			Action: action,
			Reason: fmt.Sprintf("only %d of the %d remaining voting members are healthy (down: %s): etcd accepts the new member only when %d of the %d it will have are connected",
				healthy, voters, strings.Join(down, ", "), ops.Quorum(voters+1), voters+1),
			Fix:       fmt.Sprintf("bring %s back first; if the cluster has lost quorum for good, recover it with `etcdkit cluster recover`", strings.Join(down, " and ")),
			Unhealthy: true,
		}
	}
	// A second learner would be refused after the old member is gone
	// (etcd's max-learners is 1 by default).
	for _, m := range r.ms.Members {
		if m.Learner && (r.old == nil || m.ID != r.old.ID) {
			return &ops.Refusal{Action: action, Reason: fmt.Sprintf("%s is a learner already, and etcd allows one learner at a time by default", m.Label()),
				Fix: fmt.Sprintf("promote it (`etcdkit member promote %s --wait`) or remove it (`etcdkit member remove %s`) first", m.Ref(), m.Ref())}
		}
	}
	return nil
}

// checkOld finds the old member (or its record) and refuses to take out a
// healthy one unless forced, or one whose removal would cost quorum.
func (r *run) checkOld(action string) error {
	o := r.o
	if o.Old == "" {
		return nil
	}
	if r.old == nil {
		if r.st.Old != nil || r.new != nil {
			// Removed by an earlier run; the state or the new member
			// shows the replacement is under way.
			if r.st.Old == nil {
				r.st.Old = &MemberRecord{Name: o.Old}
			}
			return nil
		}
		return fmt.Errorf("refusing to %s: %w; nothing to replace (to only add a member use `etcdkit member add`)", action, r.ms.NotFound(o.Old))
	}
	if r.st.Old == nil {
		r.st.Old = record(r.old)
	}
	if r.old.Healthy && !o.Force {
		return &ops.Refusal{Action: action, Reason: fmt.Sprintf("%s is healthy: replacing it takes a working member out", r.old.Label()),
			Fix: "pass --force to replace it anyway (leadership is moved away from it first), or use `etcdkit member add` to only add a member"}
	}
	if err := ops.CheckRemove(r.ms, r.old, true); err != nil {
		return err
	}
	return nil
}

// checkNew refuses a new member whose name or URLs belong to a member
// that stays.
func (r *run) checkNew(action string) error {
	o := r.o
	other := func(m *ops.Member) bool {
		return m != nil && (r.old == nil || m.ID != r.old.ID) && (r.new == nil || m.ID != r.new.ID)
	}
	if n := r.ms.ByPeerURL(o.New.PeerURL); other(n) {
		return &ops.Refusal{Action: action, Reason: fmt.Sprintf("the new peer URL %s is already used by %s", o.New.PeerURL, n.Label()),
			Fix: "choose a free address for the new member (`etcdkit member list` shows the URLs in use)"}
	}
	if n := r.ms.ByClientURL(o.New.ClientURL); other(n) {
		return &ops.Refusal{Action: action, Reason: fmt.Sprintf("the new client URL %s is already used by %s", o.New.ClientURL, n.Label()),
			Fix: "choose a free address for the new member (`etcdkit member list` shows the URLs in use)"}
	}
	if n := r.ms.ByName(o.New.Name); other(n) {
		return &ops.Refusal{Action: action, Reason: fmt.Sprintf("the name %q is already used by %s", o.New.Name, n.Label()),
			Fix: "choose another name for the new member"}
	}
	if r.new != nil {
		if r.new.Started && r.new.Name != o.New.Name {
			return &ops.Refusal{Action: action, Reason: fmt.Sprintf("the new peer URL %s is already used by %s", o.New.PeerURL, r.new.Label()),
				Fix: "choose a free address for the new member"}
		}
		if r.st.NewID == "" {
			r.st.NewID = r.new.ID
		}
	}
	return nil
}
