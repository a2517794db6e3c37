package ops

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/etcdkit/etcdkit/internal/connect"
)

// DefaultPromoteWait bounds `promote --wait`: the learner must start and
// catch up within it.
const DefaultPromoteWait = 10 * time.Minute

// PromoteOptions tunes Promote.
type PromoteOptions struct {
	// Wait waits for the learner to start and catch up, up to Timeout,
	// instead of refusing when it has not.
	Wait bool
	// Timeout bounds the wait; default DefaultPromoteWait.
	Timeout time.Duration
	// Backup, when set, takes a snapshot before the change.
	Backup   Backup
	Progress func(msg string)
	// CatchUp, when set, hears the learner's progress while Wait waits.
	CatchUp func(CatchUp)
}

// CatchUp is how far a learner is behind the leader.
type CatchUp struct {
	Started bool `json:"started"`
	// Learner and Leader are their applied indexes.
	Learner uint64 `json:"learner"`
	Leader  uint64 `json:"leader"`
}

// PromoteResult is what Promote did.
type PromoteResult struct {
	Member *Member `json:"member"`
	// AlreadyVoter is set when the member was a voter already: a re-run.
	AlreadyVoter bool     `json:"alreadyVoter,omitempty"`
	Snapshot     string   `json:"snapshot,omitempty"`
	Members      []Member `json:"members,omitempty"`
}

// Promote makes a learner a voting member once it has caught up with the
// leader (etcd wants 90% of the leader's log). It refuses a learner that
// has not started or is unhealthy, and a promotion the cluster's quorum
// could not absorb. A voter is reported as already promoted.
func Promote(ctx context.Context, t *connect.Target, ref string, o PromoteOptions) (*PromoteResult, error) {
	say := o.Progress
	if say == nil {
		say = func(string) {}
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultPromoteWait
	}
	deadline := time.Now().Add(o.Timeout)
	ms, err := ListMembers(ctx, t)
	if err != nil {
		return nil, err
	}
	m := ms.Find(ref)
	if m == nil {
		return nil, ms.NotFound(ref)
	}
	if !m.Learner {
		return &PromoteResult{Member: m, AlreadyVoter: true, Members: ms.Members}, nil
	}
	action := fmt.Sprintf("promote %s", m.Label())
	if !m.Healthy && o.Wait {
		say(fmt.Sprintf("waiting for %s to start and answer", m.Label()))
		if ms, m, err = waitLearner(ctx, t, m.id, deadline, o.CatchUp); err != nil {
			return nil, fmt.Errorf("%s: %w", action, err)
		}
		if !m.Learner {
			return &PromoteResult{Member: m, AlreadyVoter: true, Members: ms.Members}, nil
		}
	}
	if err := CheckPromote(ms, m); err != nil {
		return nil, err
	}
	res := &PromoteResult{Member: m}
	if o.Backup != nil {
		say("taking a snapshot before the change")
		if res.Snapshot, err = o.Backup(ctx, "before member promote "+m.Ref()); err != nil {
			return nil, fmt.Errorf("snapshot before promoting %s (nothing was changed): %w", m.Label(), err)
		}
	}
	say(fmt.Sprintf("promoting %s", m.Label()))
	if err := promote(ctx, t, ms, m, o.Wait, deadline, o.CatchUp); err != nil {
		return nil, err
	}
	if after, err := MemberList(ctx, votersTarget(t, ms, 0)); err == nil {
		res.Members = after.Members
		res.Member = after.Find(m.ID)
	}
	return res, nil
}

// CheckPromote says whether promoting the learner m is safe now.
func CheckPromote(ms *Membership, m *Member) error {
	action := fmt.Sprintf("promote %s", m.Label())
	if !m.Started {
		return &Refusal{Action: action,
			Reason: "it has not started: a learner that never ran has no data, and as a voter it would raise the quorum without being able to vote",
			Fix:    fmt.Sprintf("start it from its config (`etcdkit member run --config FILE` on its host), then run `etcdkit member promote %s --wait`", m.Ref())}
	}
	if !m.Healthy {
		return &Refusal{Action: action, Reason: fmt.Sprintf("it is not healthy (%s)", m.Error),
			Fix: fmt.Sprintf("check its log and that it runs, then `etcdkit member promote %s --wait`", m.Ref()), Unhealthy: true}
	}
	if err := ms.checkQuorum(action); err != nil {
		return err
	}
	voters, healthy := ms.votes(0)
	if healthy+1 < Quorum(voters+1) {
		return &Refusal{Action: action,
			Reason: fmt.Sprintf("with it %d voting members would need %d for quorum, and only %d of them are healthy", voters+1, Quorum(voters+1), healthy+1),
			Fix:    "bring the failed members back, or remove the lost ones, first", Unhealthy: true}
	}
	return nil
}

// promote sends the promotion, retrying transient refusals; with wait it
// also retries "learner not ready" until the deadline, reporting
// progress.
func promote(ctx context.Context, t *connect.Target, ms *Membership, m *Member, wait bool, deadline time.Time, report func(CatchUp)) error {
	cli, err := votersTarget(t, ms, m.id).Client()
	if err != nil {
		return err
	}
	defer cli.Close()
	for {
		cctx, cancel := t.Ctx(ctx)
		_, err := cli.MemberPromote(cctx, m.id)
		cancel()
		switch {
		case err == nil, errors.Is(err, rpctypes.ErrMemberNotLearner):
			// Not a learner any more: an earlier attempt went through.
			return nil
		case errors.Is(err, rpctypes.ErrMemberLearnerNotReady) && !wait:
			p := catchUp(ctx, t, ms, m.id)
			return &Refusal{Action: fmt.Sprintf("promote %s", m.Label()),
				Reason: fmt.Sprintf("it has not caught up with the leader yet (applied %d of %d)", p.Learner, p.Leader),
				Fix:    fmt.Sprintf("wait for it: `etcdkit member promote %s --wait`", m.Ref())}
		case errors.Is(err, rpctypes.ErrMemberLearnerNotReady), Transient(err):
		default:
			return fmt.Errorf("promote %s: %w", m.Label(), explainChange(err))
		}
		if report != nil {
			report(catchUp(ctx, t, ms, m.id))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("promote %s: still refused at the deadline: %w", m.Label(), explainChange(err))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(PollInterval):
		}
	}
}

// waitLearner waits until the member has started and answers as healthy,
// and returns the member list then.
func waitLearner(ctx context.Context, t *connect.Target, id uint64, deadline time.Time, report func(CatchUp)) (*Membership, *Member, error) {
	for {
		ms, err := ListMembers(ctx, t)
		var m *Member
		if err == nil {
			if m = ms.Find(fmt.Sprintf("%x", id)); m == nil {
				return nil, nil, fmt.Errorf("member %x was removed while waiting for it", id)
			}
			if m.Healthy {
				return ms, m, nil
			}
			if !m.Started {
				Nudge(ctx, t)
			}
			if report != nil {
				report(catchUp(ctx, t, ms, id))
			}
		}
		if time.Now().After(deadline) {
			why := "not started"
			switch {
			case err != nil:
				why = err.Error()
			case m.Started:
				why = "started but not healthy: " + m.Error
			}
			return nil, nil, fmt.Errorf("the learner did not start and become healthy in time (%s)", why)
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(PollInterval):
		}
	}
}

// catchUp reads the learner's and the leader's applied index.
func catchUp(ctx context.Context, t *connect.Target, ms *Membership, id uint64) CatchUp {
	var p CatchUp
	applied := func(m *Member) uint64 {
		if m == nil || len(m.ClientURLs) == 0 {
			return 0
		}
		cli, err := t.Client(m.ClientURLs[0])
		if err != nil {
			return 0
		}
		defer cli.Close()
		cctx, cancel := t.Ctx(ctx)
		defer cancel()
		st, err := cli.Status(cctx, m.ClientURLs[0])
		if err != nil {
			return 0
		}
		return st.RaftAppliedIndex
	}
	m := ms.Find(fmt.Sprintf("%x", id))
	if m == nil {
		return p
	}
	p.Started = m.Started
	p.Learner = applied(m)
	p.Leader = applied(ms.LeaderMember())
	return p
}
