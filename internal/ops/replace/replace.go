// Package replace replaces a failed etcd member with a new one as an
// ordered list of small, idempotent phases: check, snapshot, remove the
// old member, add the new one as a learner, write its config, wait for it
// to start, promote it, verify. Each phase judges from the live cluster
// (and a small state file) whether it still has work, so a run that was
// interrupted anywhere continues where it stopped when started again.
//
// The old member is removed before the new one is added, as etcd's
// documentation advises: adding first would raise the quorum while the
// old member still counts and cannot vote.
package replace

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/etcdkit/etcdkit/internal/connect"
	"github.com/etcdkit/etcdkit/internal/ops"
)

// Defaults for Options' timeouts.
const (
	DefaultStartTimeout   = 10 * time.Minute
	DefaultCatchUpTimeout = 10 * time.Minute
	DefaultVerifyTimeout  = 2 * time.Minute
)

// NewMember is the member that takes the old one's place.
type NewMember struct {
	Name      string `json:"name"`
	PeerURL   string `json:"peerURL"`
	ClientURL string `json:"clientURL"`
}

// Options configures Run.
type Options struct {
	Target *connect.Target
	// Old names the member to replace: name, ID or peer URL. Empty only
	// adds New (`etcdkit up add`), with the same phases.
	Old string
	New NewMember
	// Force replaces a member that is still healthy.
	Force bool
	// DryRun checks and prints the plan, and changes nothing.
	DryRun bool
	// StateDir keeps the progress file (the backup directory).
	StateDir string
	// Backup takes the snapshot before the change; nil skips it.
	Backup ops.Backup
	// Host writes the new member's files and gets it started.
	Host Host
	// Observer hears the plan and each step; nil hears nothing.
	Observer Observer

	StartTimeout   time.Duration
	CatchUpTimeout time.Duration
	VerifyTimeout  time.Duration
	// ChangeTimeout bounds the retries of each membership RPC.
	ChangeTimeout time.Duration
}

// Host is where the new member runs: an operator's host that gets files
// from an output directory, or a local `etcdkit up` cluster.
type Host interface {
	// Write writes the new member's config (and certificates) with its
	// initial cluster. old is the member that left, nil when only adding.
	Write(ctx context.Context, initialCluster string, old *MemberRecord) (*ops.Written, error)
	// StartHint says how the new member gets started, for the operator.
	StartHint() string
}

// Observer hears what Run does; the CLI prints it.
type Observer interface {
	// Plan is the list of steps, those already done marked.
	Plan(steps []Step)
	// Begin and Done frame each step that runs.
	Begin(s Step)
	Done(s Step)
	// Note is a detail of the step that runs.
	Note(msg string)
	// CatchUp is the new member's progress while it catches up.
	CatchUp(p ops.CatchUp)
	// Wrote is called with the new member's files.
	Wrote(w *ops.Written)
}

// Step is one phase as the plan shows it.
type Step struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	// Done is set for a step that has no work left (a re-run).
	Done bool `json:"done"`
	// Action is what the step would do, for --dry-run.
	Action string `json:"action,omitempty"`
}

// Result is the outcome of a replacement.
type Result struct {
	Old *MemberRecord `json:"old,omitempty"`
	New *ops.Member   `json:"new,omitempty"`
	// Snapshot is the snapshot taken before the change.
	Snapshot string `json:"snapshot,omitempty"`
	// EtcdServers is kube-apiserver's --etcd-servers value after the
	// change: every member's client URLs.
	EtcdServers string       `json:"etcdServers,omitempty"`
	Members     []ops.Member `json:"members,omitempty"`
	// Unhealthy names the members that were not healthy at the end
	// (another failed member, to be replaced next), with why.
	Unhealthy []string `json:"unhealthy,omitempty"`
	// AlreadyDone is set when nothing was left to do.
	AlreadyDone bool   `json:"alreadyDone,omitempty"`
	Plan        []Step `json:"plan"`
	State       string `json:"state,omitempty"`
}

// ErrStateMismatch is returned when a replacement in progress for the new
// member was started with other arguments.
var ErrStateMismatch = errors.New("another replacement is in progress")

// Run replaces o.Old with o.New, or with o.DryRun only says how.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Observer == nil {
		o.Observer = quiet{}
	}
	o.setDefaults()
	r := &run{o: o}
	st, path, err := findState(o.StateDir, o.Old, o.New.Name)
	if err != nil {
		return nil, err
	}
	r.statePath = path
	if st != nil {
		if err := st.matches(o); err != nil {
			return nil, fmt.Errorf("%w: %s records %v; re-run with the same arguments to continue it, or delete the file to start over", ErrStateMismatch, path, err)
		}
		r.st = st
	} else {
		r.st = &State{New: o.New, Started: time.Now().UTC()}
	}
	if err := r.refresh(ctx); err != nil {
		return nil, err
	}
	phases := r.phases()
	// The check runs first, read-only, and for a dry run too: a plan
	// that would be refused says so, and the plan is made from what the
	// check found.
	if err := phases[0].Run(ctx, r); err != nil {
		return nil, err
	}
	res := &Result{State: r.statePath, AlreadyDone: true}
	for i, p := range phases {
		needed := p.Needed(r)
		res.Plan = append(res.Plan, Step{Name: p.Name(), Title: p.Title(), Done: !needed, Action: p.Action(r)})
		if needed && i > 0 && i < len(phases)-1 {
			res.AlreadyDone = false
		}
	}
	o.Observer.Plan(res.Plan)
	if o.DryRun {
		res.Old, res.New, res.Snapshot = r.st.Old, r.new, r.st.Snapshot
		return res, nil
	}
	if err := r.save(); err != nil {
		return nil, err
	}
	for i, p := range phases[1:] {
		step := res.Plan[i+1]
		if !p.Needed(r) {
			continue
		}
		o.Observer.Begin(step)
		if err := p.Run(ctx, r); err != nil {
			return nil, fmt.Errorf("%s: %w%s", p.Title(), err, r.resumeHint())
		}
		r.st.markDone(p.Name())
		if err := r.save(); err != nil {
			return nil, err
		}
		if err := r.refresh(ctx); err != nil {
			return nil, fmt.Errorf("after %s: %w%s", p.Title(), err, r.resumeHint())
		}
		o.Observer.Done(step)
	}
	res.Old, res.New, res.Snapshot = r.st.Old, r.new, r.st.Snapshot
	res.Members, res.EtcdServers, res.Unhealthy = r.ms.Members, r.etcdServers, r.unhealthy
	return res, nil
}

func (o *Options) setDefaults() {
	if o.StartTimeout == 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	if o.CatchUpTimeout == 0 {
		o.CatchUpTimeout = DefaultCatchUpTimeout
	}
	if o.VerifyTimeout == 0 {
		o.VerifyTimeout = DefaultVerifyTimeout
	}
}

// phase is one step of a replacement. Needed judges from the live
// cluster and the state whether work is left, so a re-run skips what is
// done; Action says what Run would do, for the plan.
type phase interface {
	Name() string
	Title() string
	Needed(r *run) bool
	Action(r *run) string
	Run(ctx context.Context, r *run) error
}

// run is one replacement in progress.
type run struct {
	o         Options
	st        *State
	statePath string
	// ms is the member list as of the last refresh; old and new are the
	// two members in it (nil when not, or no longer, there).
	ms          *ops.Membership
	old, new    *ops.Member
	etcdServers string
	unhealthy   []string
}

func (r *run) phases() []phase {
	ps := []phase{checkPhase{}, snapshotPhase{}}
	if r.o.Old != "" {
		ps = append(ps, removePhase{})
	}
	ps = append(ps, addPhase{})
	if failpoint(FailpointSkipCatchUp) {
		ps = append(ps, hastyPromotePhase{})
	}
	return append(ps, configPhase{}, startPhase{}, promotePhase{}, verifyPhase{})
}

// refresh reads the member list and finds the two members in it: the old
// one by the ID recorded when the run began, the new one by its peer URL
// (its only identity until it starts).
func (r *run) refresh(ctx context.Context) error {
	ms, err := ops.ListMembers(ctx, r.o.Target)
	if err != nil {
		return err
	}
	r.ms = ms
	r.old, r.new = nil, nil
	if r.st.Old != nil {
		r.old = ms.Find(r.st.Old.ID)
	} else if r.o.Old != "" {
		r.old = ms.Find(r.o.Old)
	}
	if n := ms.ByPeerURL(r.o.New.PeerURL); n != nil && (r.old == nil || n.ID != r.old.ID) {
		r.new = n
	}
	return nil
}

// resumeHint tells the operator that running again continues.
func (r *run) resumeHint() string {
	return "\nrun the same command again to continue from here (progress is kept in " + r.statePath + ")"
}

func (r *run) say(format string, args ...any) { r.o.Observer.Note(fmt.Sprintf(format, args...)) }

// quiet is the Observer of a caller that wants no progress.
type quiet struct{}

func (quiet) Plan([]Step)         {}
func (quiet) Begin(Step)          {}
func (quiet) Done(Step)           {}
func (quiet) Note(string)         {}
func (quiet) CatchUp(ops.CatchUp) {}
func (quiet) Wrote(*ops.Written)  {}
