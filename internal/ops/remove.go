package ops

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/etcdkit/etcdkit/internal/connect"
)

// RemoveOptions tunes Remove.
type RemoveOptions struct {
	// Force removes a voting member even when that leaves an even number
	// of voters, which tolerate no more failures than one fewer.
	Force bool
	// Backup, when set, takes a snapshot before the change.
	Backup Backup
	// Timeout bounds the retries of each RPC; default DefaultChangeTimeout.
	Timeout time.Duration
	// Progress, when set, hears each step as it starts.
	Progress func(msg string)
}

// RemoveResult is what Remove did.
type RemoveResult struct {
	// Member is the member as it was before the removal.
	Member *Member `json:"member,omitempty"`
	// AlreadyRemoved is set when no member had that name, ID or peer URL:
	// a re-run after a removal that succeeded.
	AlreadyRemoved bool `json:"alreadyRemoved,omitempty"`
	// LeaderMovedTo names the member that leads now, when the removed
	// member led.
	LeaderMovedTo string `json:"leaderMovedTo,omitempty"`
	Snapshot      string `json:"snapshot,omitempty"`
	// Members is the member list after the change.
	Members []Member `json:"members,omitempty"`
}

// Remove takes a member out of the cluster, safely: it refuses when the
// cluster would lose its quorum, when the member is the last voter, and
// (without Force) when it would leave an even number of voters. A leader
// hands leadership to the most up-to-date healthy voter first, so the
// cluster never stalls waiting for an election: removed outright, its
// followers would notice only after an election timeout (seconds without
// writes). etcd drops proposals that reach the leader during the hand-over
// itself, so a write in flight at that instant can still time out
// (Unavailable, which clients retry). A member that is not there counts
// as removed.
func Remove(ctx context.Context, t *connect.Target, ref string, o RemoveOptions) (*RemoveResult, error) {
	say := o.Progress
	if say == nil {
		say = func(string) {}
	}
	ms, err := ListMembers(ctx, t)
	if err != nil {
		return nil, err
	}
	m := ms.Find(ref)
	if m == nil {
		// Without a quorum the list may be stale: do not call it done.
		if err := ms.checkQuorum(fmt.Sprintf("remove member %q", ref)); err != nil {
			return nil, err
		}
		// A member that never started has no name: the one asked for may
		// be it, so "already removed" would be a guess.
		for _, u := range ms.Members {
			if !u.Started {
				return nil, fmt.Errorf("%w; it may be %s, which has no name until it starts: remove it by its ID (`etcdkit member remove %s`)",
					ms.NotFound(ref), u.Label(), u.ID)
			}
		}
		return &RemoveResult{AlreadyRemoved: true, Members: ms.Members}, nil
	}
	res := &RemoveResult{Member: m}
	if err := CheckRemove(ms, m, o.Force); err != nil {
		return nil, err
	}
	if o.Backup != nil {
		say("taking a snapshot before the change")
		if res.Snapshot, err = o.Backup(ctx, "before member remove "+m.Ref()); err != nil {
			return nil, fmt.Errorf("snapshot before removing %s (nothing was changed): %w", m.Label(), err)
		}
	}
	if m.Leader {
		say(fmt.Sprintf("%s leads: moving leadership away first", m.Label()))
		to, err := MoveLeader(ctx, t, ms, m, o.Timeout)
		if err != nil {
			return nil, fmt.Errorf("move leadership away from %s before removing it (nothing was removed): %w", m.Label(), err)
		}
		res.LeaderMovedTo = to.Ref()
	}
	say(fmt.Sprintf("removing %s", m.Label()))
	if err := RemoveMember(ctx, t, ms, m, o.Timeout); err != nil {
		return nil, err
	}
	if after, err := MemberList(ctx, votersTarget(t, ms, m.id)); err == nil {
		res.Members = after.Members
	}
	return res, nil
}

// CheckRemove says whether removing m from ms is safe.
func CheckRemove(ms *Membership, m *Member, force bool) error {
	action := fmt.Sprintf("remove %s", m.Label())
	if len(ms.Members) == 1 {
		return &Refusal{Action: action, Reason: "it is the last member: removing it would destroy the cluster",
			Fix: "to stop it, stop its process (`systemctl stop etcd`); to delete the cluster, delete its data dir"}
	}
	if m.Learner {
		// A learner has no vote: the quorum does not change.
		return nil
	}
	if err := ms.checkQuorum(action); err != nil {
		return err
	}
	voters, healthy := ms.votes(m.id)
	if voters == 0 {
		return &Refusal{Action: action, Reason: "it is the last voting member: only learners would be left, and they cannot elect a leader",
			Fix: "promote a learner first (`etcdkit member promote NAME --wait`)"}
	}
	if healthy < Quorum(voters) {
		down := ms.unhealthyVoters(m.id)
		return &Refusal{
			Action: action,
			Reason: fmt.Sprintf("without it only %d of the %d remaining voting members would be healthy (down: %s), and %d are needed for quorum",
				healthy, voters, strings.Join(down, ", "), Quorum(voters)),
			Fix: fmt.Sprintf("bring %s back first (`etcdkit member list` shows why it is down), or if it is lost for good, replace it first: `etcdkit member replace %s --name NEW --peer-url URL --client-url URL`",
				strings.Join(down, " and "), down[0]),
			Unhealthy: true,
		}
	}
	if voters%2 == 0 && !force {
		return &Refusal{
			Action: action,
			Reason: fmt.Sprintf("it would leave %d voting members, %s", voters, evenTolerance(voters)),
			Fix: fmt.Sprintf("replace it instead (`etcdkit member replace %s --name NEW --peer-url URL --client-url URL`), or add a member first; pass --force to remove it anyway",
				m.Ref()),
		}
	}
	return nil
}

// evenTolerance explains why an even number of voters is a poor size.
func evenTolerance(n int) string {
	if n == 2 {
		return "which tolerate no failure: losing either one stops the cluster"
	}
	return fmt.Sprintf("which tolerate %d failure(s), no more than %d would, with a larger quorum (%d)", (n-1)/2, n-1, Quorum(n))
}

// RemoveMember sends the removal of m, without Remove's checks, through
// the other members, retrying what etcd refuses for a while. "Not found"
// after a retry means an earlier attempt that timed out went through.
func RemoveMember(ctx context.Context, t *connect.Target, ms *Membership, m *Member, limit time.Duration) error {
	cli, err := votersTarget(t, ms, m.id).Client()
	if err != nil {
		return err
	}
	defer cli.Close()
	err = retry(ctx, limit, func() error {
		cctx, cancel := t.Ctx(ctx)
		defer cancel()
		_, err := cli.MemberRemove(cctx, m.id)
		return err
	})
	if errors.Is(err, rpctypes.ErrMemberNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", m.Label(), explainChange(err))
	}
	return nil
}

// votersTarget is the target narrowed to the client URLs of the started
// voting members but except (0 for none): learners refuse membership
// RPCs, and a removal must reach a member that stays.
func votersTarget(t *connect.Target, ms *Membership, except uint64) *connect.Target {
	var eps []string
	for _, o := range ms.Members {
		if o.id != except && len(o.ClientURLs) > 0 && !o.Learner {
			eps = append(eps, o.ClientURLs[0])
		}
	}
	if len(eps) == 0 {
		return t
	}
	n := *t
	n.Endpoints = eps
	return &n
}

// MoveLeader hands leadership from the leader to the healthy voter that
// has applied the most, and returns it. The request must reach the
// leader itself.
func MoveLeader(ctx context.Context, t *connect.Target, ms *Membership, from *Member, limit time.Duration) (*Member, error) {
	var to *Member
	for i := range ms.Members {
		c := &ms.Members[i]
		if c.id == from.id || c.Learner || !c.Healthy {
			continue
		}
		if to == nil || c.AppliedIndex > to.AppliedIndex {
			to = c
		}
	}
	if to == nil {
		return nil, errors.New("no other healthy voting member can lead")
	}
	if len(from.ClientURLs) == 0 {
		return nil, fmt.Errorf("%s has no client URL to send the transfer to", from.Label())
	}
	cli, err := t.Client(from.ClientURLs[0])
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	err = retry(ctx, limit, func() error {
		// The transfer waits for the transferee to catch up and win an
		// election: allow it more than one request's time.
		cctx, cancel := context.WithTimeout(ctx, 2*t.CommandTimeout)
		defer cancel()
		_, err := cli.MoveLeader(cctx, to.id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("move leadership to %s: %w", to.Label(), explain(err))
	}
	return to, nil
}

// explainChange adds what an operator needs to the errors membership
// RPCs return.
func explainChange(err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrTooManyLearners):
		return fmt.Errorf("%w (etcd allows one learner at a time by default: promote the learner there is with `etcdkit member promote NAME --wait`, or remove it, first)", err)
	case errors.Is(err, rpctypes.ErrMemberLearnerNotReady):
		return fmt.Errorf("%w (the learner has less than 90%% of the leader's log; wait with `etcdkit member promote NAME --wait`)", err)
	case errors.Is(err, rpctypes.ErrMemberNotEnoughStarted):
		return fmt.Errorf("%w (too few members have started for the change to keep quorum: start them first)", err)
	case errors.Is(err, rpctypes.ErrUnhealthy):
		return fmt.Errorf("%w (the member that answered has not been connected to a quorum for 5 s: a member is down or just restarted)", err)
	}
	return explain(err)
}
