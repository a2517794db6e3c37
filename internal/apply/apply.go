// Package apply converges the hosts of a cluster spec to it over SSH, as
// an ordered list of small, titled, idempotent phases (one file each):
// connect, detect, read the cluster, preflight, certificates, binary,
// config, start, health, membership, roll, verify. Every change to a host
// goes through remote.Conn.Change (or remote.Plan.Do for changes made
// elsewhere), so a dry run records the plan instead of acting, and a run
// that changes nothing leaves an empty plan. The first four phases only
// read: every refusal (an unreachable host, a wrong host key, a port taken
// by another program, a data dir of another cluster) comes before any host
// is changed.
package apply

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/remote"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// Defaults for Options.
const (
	DefaultConcurrency = 10
	// DefaultTimeout bounds each wait for health, and each join.
	DefaultTimeout = 5 * time.Minute
)

// Options configures Run.
type Options struct {
	Spec *spec.Cluster
	// SpecPath names the spec in messages and rendered files.
	SpecPath string
	// CADir holds the CA on this machine (the spec's pki.dir unless the
	// operator says otherwise); a missing CA is created there.
	CADir string
	// BackupDir receives the snapshot taken before each membership change.
	BackupDir string
	// Binary is the etcdkit executable installed on every host.
	Binary string
	// DryRun records every change in the plan and makes none.
	DryRun bool
	// Concurrency is how many hosts a phase works on at once; membership
	// changes and restarts are always one at a time.
	Concurrency int
	// AllowRemove lets apply remove members that are in the cluster but
	// not in the spec.
	AllowRemove bool
	// Remote holds the SSH settings (known hosts, agent, timeouts); Run
	// sets its Plan and Log.
	Remote remote.Options
	// Log is the debug log; nil logs nothing.
	Log *zap.Logger
	// Observer hears phases, notes and changes; nil hears nothing.
	Observer Observer
	// Timeout bounds each wait for health and each join.
	Timeout time.Duration
	// Rerun is the command that runs this apply again, for recovery hints.
	Rerun string
}

// Observer hears what Run does, host by host, as it happens.
type Observer interface {
	// Phase starts a phase.
	Phase(title string)
	// Note is something found or decided about a host ("" for the whole
	// cluster or this machine).
	Note(host, msg string)
	// Change is a change made to a host (or, in a dry run, planned).
	Change(c remote.Change)
}

// Result is what a run did (or, in a dry run, would do).
type Result struct {
	// Plan holds every change, host by host, in order.
	Plan   *remote.Plan
	DryRun bool
	// EtcdServers is kube-apiserver's --etcd-servers value.
	EtcdServers string
	// APIServerFlags are kube-apiserver's --etcd-* flags for the cluster.
	APIServerFlags string
	// Members is the member list at the end.
	Members []ops.Member
	// Hosts are the spec's members' hosts by name, in the spec's order.
	Hosts []string
	// Client is the client certificate on this machine, with the CA, for
	// `etcdkit health --cacert ... --cert ... --key ...`.
	Client   pki.Pair
	ClientCA string
	// Warnings are things the operator should act on that did not stop
	// the run.
	Warnings []string
}

// Changed reports whether any host (or this machine) was changed.
func (r *Result) Changed() bool { return !r.Plan.Empty() }

// PhaseError is a failed run: which phase, on which hosts, whether any
// host had been changed before, and how to go on.
type PhaseError struct {
	Phase string
	Hosts []string
	Err   error
	// Changed is set when a host had been changed before the failure.
	Changed bool
	// Recovery says what to do: the fix and the command to run next.
	Recovery string
}

func (e *PhaseError) Error() string { return fmt.Sprintf("%s: %v", e.Phase, e.Err) }
func (e *PhaseError) Unwrap() error { return e.Err }

// phase is one step of apply. Optional interfaces add to it: shouldRunner
// skips it, dryRunner replaces Run in a dry run, recoverer names the
// recovery of a failure.
type phase interface {
	Title() string
	Run(ctx context.Context, r *run) error
}

type shouldRunner interface{ ShouldRun(r *run) bool }

type dryRunner interface {
	DryRun(ctx context.Context, r *run) error
}

type recoverer interface {
	Recovery(r *run, err error) string
}

// phases is apply's order. The first four only read.
func phases() []phase {
	return []phase{
		connectPhase{}, detectPhase{}, clusterPhase{}, preflightPhase{},
		pkiPhase{}, binaryPhase{}, configPhase{}, startPhase{}, healthPhase{},
		membersPhase{}, rollPhase{}, verifyPhase{},
	}
}

// Run converges the spec's hosts to it, or with DryRun says how.
func Run(ctx context.Context, o Options) (*Result, error) {
	r, err := newRun(o)
	if err != nil {
		return nil, err
	}
	defer r.cleanup()
	for _, p := range phases() {
		if s, ok := p.(shouldRunner); ok && !s.ShouldRun(r) {
			r.log.Debug("phase skipped", zap.String("phase", p.Title()))
			continue
		}
		r.obs.Phase(p.Title())
		r.log.Info("phase", zap.String("phase", p.Title()))
		run := p.Run
		if d, ok := p.(dryRunner); ok && r.o.DryRun {
			run = d.DryRun
		}
		began := time.Now()
		if err := run(ctx, r); err != nil {
			r.log.Error("phase failed", zap.String("phase", p.Title()), zap.Duration("took", time.Since(began)), zap.Error(err))
			return r.result(), r.phaseError(p, err)
		}
		r.log.Info("phase done", zap.String("phase", p.Title()), zap.Duration("took", time.Since(began)))
	}
	return r.result(), nil
}

func (r *run) phaseError(p phase, err error) error {
	e := &PhaseError{Phase: p.Title(), Hosts: hostsOf(err), Err: err, Changed: r.hostsChanged()}
	if rc, ok := p.(recoverer); ok {
		e.Recovery = rc.Recovery(r, err)
	}
	if e.Recovery == "" {
		e.Recovery = "fix the problem above, then run `" + r.o.Rerun + "` again: apply continues where it stopped"
	}
	return e
}

// hostsChanged reports whether a host (not this machine) was changed.
func (r *run) hostsChanged() bool {
	if r.o.DryRun {
		return false
	}
	for _, c := range r.plan.Changes() {
		if c.Host != LocalHost {
			return true
		}
	}
	return false
}

// hostsOf names the hosts a (joined) error is about, in order.
func hostsOf(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		var he *remote.Error
		if errors.As(err, &he) && !slices.Contains(out, he.Name) {
			out = append(out, he.Name)
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	return out
}

func (r *run) result() *Result {
	res := &Result{Plan: r.plan, DryRun: r.o.DryRun, Warnings: r.warnings,
		EtcdServers: strings.Join(r.c.ClientURLs(), ","), Client: r.clientPair(), ClientCA: r.layout.CA(r.o.CADir).Cert}
	res.APIServerFlags = r.apiServerFlags()
	for _, h := range r.hosts {
		res.Hosts = append(res.Hosts, h.name())
	}
	if r.final != nil {
		res.Members = r.final.Members
	}
	return res
}

// LocalHost labels changes to the operator's machine in the plan.
const LocalHost = "this machine"

func (r *run) cleanup() {
	for _, h := range r.hosts {
		if h.conn != nil {
			h.conn.Close()
		}
	}
	if r.tmp != "" {
		os.RemoveAll(r.tmp)
	}
}
