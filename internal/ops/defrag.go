package ops

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/etcdkit/etcdkit/internal/connect"
)

// Defaults of DefragOptions.
const (
	DefaultDefragTimeout = 10 * time.Minute
	DefaultDefragSettle  = time.Minute
)

// DefragOptions tunes Defrag.
type DefragOptions struct {
	// Timeout bounds one member's defragmentation. etcd rewrites the whole
	// database file, which takes seconds per gigabyte; default 10 minutes.
	Timeout time.Duration
	// Settle bounds the wait for a defragmented member to serve again
	// before the next one starts; default 1 minute.
	Settle time.Duration
	// AllowUnavailable defragments a member that is the only one able to
	// serve (a one-member cluster): reads and writes stop until it ends.
	AllowUnavailable bool
	// Progress, when set, is called as each member starts (done false)
	// and ends (done true).
	Progress func(r DefragResult, done bool)
}

// DefragResult is one member's defragmentation.
type DefragResult struct {
	Endpoint string `json:"endpoint"`
	Name     string `json:"name,omitempty"`
	// Leader says the member led when it was defragmented (it goes last).
	Leader bool `json:"leader,omitempty"`
	// SizeBefore and SizeAfter are the database file's size; InUse* the
	// part of it that holds data. Defragmentation gives the difference
	// back to the file system.
	SizeBefore  int64         `json:"sizeBefore"`
	SizeAfter   int64         `json:"sizeAfter"`
	InUseBefore int64         `json:"inUseBefore"`
	InUseAfter  int64         `json:"inUseAfter"`
	Took        time.Duration `json:"took"`
	Done        bool          `json:"done"`
	Error       string        `json:"error,omitempty"`
}

// ErrDefragRefused is wrapped by Defrag's refusals (with ErrUnhealthy when
// the cluster is not healthy).
var ErrDefragRefused = errors.New("refusing to defragment")

// Defrag defragments the target's endpoints one member at a time, never two
// at once: a member being defragmented blocks its reads and writes until it
// ends. Followers go first and the leader last. Before each member the
// whole cluster must be healthy (a NOSPACE alarm is allowed: defragmenting
// is how it is cleared) and some other voting member must be able to serve
// meanwhile; after each, the member must serve again before the next
// starts. The first failure stops the run; the results say what was done.
func Defrag(ctx context.Context, t *connect.Target, o DefragOptions) ([]DefragResult, error) {
	if o.Timeout <= 0 {
		o.Timeout = DefaultDefragTimeout
	}
	if o.Settle <= 0 {
		o.Settle = DefaultDefragSettle
	}
	order, err := defragOrder(ctx, t)
	if err != nil {
		return nil, err
	}
	results := make([]DefragResult, 0, len(order))
	for _, r := range order {
		if err := checkDefragSafe(ctx, t, r, o.AllowUnavailable); err != nil {
			return results, err
		}
		if o.Progress != nil {
			o.Progress(r, false)
		}
		r, err = defragOne(ctx, t, r, o)
		results = append(results, r)
		if o.Progress != nil {
			o.Progress(r, true)
		}
		if err != nil {
			return results, err
		}
	}
	return results, nil
}

// defragOrder reads every endpoint's status and puts the leader last. An
// endpoint that does not answer stops everything before anything starts.
func defragOrder(ctx context.Context, t *connect.Target) ([]DefragResult, error) {
	var order, leaders []DefragResult
	var errs []error
	for _, s := range Status(ctx, t) {
		if s.Error != "" {
			errs = append(errs, fmt.Errorf("%s does not answer: %s", s.Endpoint, s.Error))
			continue
		}
		r := DefragResult{Endpoint: s.Endpoint, Name: s.Name, Leader: s.IsLeader, SizeBefore: s.DBSize, InUseBefore: s.DBSizeInUse}
		if s.IsLeader {
			leaders = append(leaders, r)
		} else {
			order = append(order, r)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: the cluster is %w; fix or replace the failed member first:\n%w", ErrDefragRefused, ErrUnhealthy, errors.Join(errs...))
	}
	return append(order, leaders...), nil
}

// checkDefragSafe refuses unless every voting member of the cluster serves
// linearizable reads, no alarm but NOSPACE is raised, and a voting member
// other than r's can serve while r is blocked.
func checkDefragSafe(ctx context.Context, t *connect.Target, r DefragResult, allowUnavailable bool) error {
	cli, err := t.Client()
	if err != nil {
		return err
	}
	defer cli.Close()
	cctx, cancel := t.Ctx(ctx)
	ml, err := cli.MemberList(cctx)
	cancel()
	if err != nil {
		return fmt.Errorf("%w: the cluster is %w: cannot list members: %w", ErrDefragRefused, ErrUnhealthy, explain(err))
	}
	var problems []error
	others := 0
	for _, m := range ml.Members {
		if m.IsLearner {
			continue
		}
		if len(m.ClientURLs) == 0 {
			problems = append(problems, fmt.Errorf("member %q has not started (no client URL)", m.Name))
			continue
		}
		ep := m.ClientURLs[0]
		if err := serves(ctx, t, ep); err != nil {
			problems = append(problems, fmt.Errorf("member %q (%s): %w", m.Name, ep, err))
			continue
		}
		if !slices.Contains(m.ClientURLs, r.Endpoint) {
			others++
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: the cluster is %w; fix or replace the failed member first (etcdkit health says more):\n%w", ErrDefragRefused, ErrUnhealthy, errors.Join(problems...))
	}
	raised, err := alarms(ctx, t, cli)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDefragRefused, err)
	}
	var bad []Alarm
	for _, a := range raised {
		if a.Alarm != AlarmNoSpace {
			bad = append(bad, a)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: the cluster is %w: alarm(s) raised: %s; a corrupted member must be replaced (etcdkit member replace NAME), not defragmented", ErrDefragRefused, ErrUnhealthy, describeAlarms(bad))
	}
	if others == 0 && !allowUnavailable {
		return fmt.Errorf("%w %s: it is the only voting member that can serve, so every read and write would stop until it finishes; pass --allow-unavailable to accept that", ErrDefragRefused, r.who())
	}
	return nil
}

// serves checks that an endpoint answers a linearizable read: it is up,
// has a leader and has caught up with it.
func serves(ctx context.Context, t *connect.Target, ep string) error {
	if err := reachable(ctx, t, ep); err != nil {
		return err
	}
	cli, err := singleClient(t, ep)
	if err != nil {
		return err
	}
	defer cli.Close()
	cctx, cancel := t.Ctx(ctx)
	defer cancel()
	st, err := cli.Status(cctx, ep)
	if err != nil {
		return explain(err)
	}
	// etcd lists raised alarms as status errors ("memberID:... alarm:
	// NOSPACE"); NOSPACE is what defragmenting cures, so it does not count.
	var errs []string
	for _, e := range st.Errors {
		if !strings.Contains(e, "alarm:"+AlarmNoSpace) {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	// Permission denied still proves consensus works, as in Health.
	if _, err := cli.Get(cctx, "health"); err != nil && !errors.Is(err, rpctypes.ErrPermissionDenied) {
		return explain(err)
	}
	return nil
}

func defragOne(ctx context.Context, t *connect.Target, r DefragResult, o DefragOptions) (DefragResult, error) {
	cli, err := singleClient(t, r.Endpoint)
	if err != nil {
		return r, err
	}
	defer cli.Close()
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, o.Timeout)
	_, err = cli.Defragment(dctx, r.Endpoint)
	cancel()
	r.Took = time.Since(start).Round(time.Millisecond)
	if err != nil {
		r.Error = explain(err).Error()
		return r, fmt.Errorf("defragment %s: %w", r.who(), explain(err))
	}
	// The member answers again only once it has applied what the cluster
	// committed meanwhile; wait for that before touching the next one.
	sctx, cancel := context.WithTimeout(ctx, o.Settle)
	defer cancel()
	for {
		err = serves(sctx, t, r.Endpoint)
		if err == nil {
			break
		}
		select {
		case <-sctx.Done():
			r.Error = err.Error()
			return r, fmt.Errorf("%s was defragmented but does not serve again after %v: %w; check it before defragmenting others", r.who(), o.Settle, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	r.Done = true
	cctx, cancel := t.Ctx(ctx)
	defer cancel()
	if st, err := cli.Status(cctx, r.Endpoint); err == nil {
		r.SizeAfter, r.InUseAfter = st.DbSize, st.DbSizeInUse
	}
	return r, nil
}

func (r DefragResult) who() string {
	if r.Name != "" {
		return fmt.Sprintf("member %q (%s)", r.Name, r.Endpoint)
	}
	return r.Endpoint
}
