package robustness

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdkit/etcdkit/internal/testutil"
)

// Environment variables that steer the suite.
const (
	// EnvMode is "quick" (the default, inside `go test ./...`), "full"
	// (every scenario, every size, >= 3 seeds) or "off".
	EnvMode = "ETCDKIT_ROBUSTNESS"
	// EnvSeeds overrides the seeds: "1,2,3".
	EnvSeeds = "ETCDKIT_ROBUSTNESS_SEEDS"
	// EnvResults names a JSON-lines file each run's Result is appended to
	// (the report command reads it).
	EnvResults = "ETCDKIT_ROBUSTNESS_RESULTS"
	// EnvArtifacts is where a failing run leaves its history; default a
	// directory under the system's temp dir.
	EnvArtifacts = "ETCDKIT_ROBUSTNESS_ARTIFACTS"
)

// Mode is how much the suite runs.
type Mode struct {
	Name  string
	Seeds []int64
	// Scale multiplies the traffic a scenario waits for.
	Scale int
	// CheckTimeout bounds porcupine on one history.
	CheckTimeout time.Duration
	// AllSizes runs every cluster size a scenario lists, not only the
	// smallest; AllScenarios runs those not marked Quick.
	AllSizes, AllScenarios bool
}

// ModeFromEnv reads EnvMode and EnvSeeds.
func ModeFromEnv() (Mode, error) {
	m := Mode{Name: "quick", Seeds: []int64{1}, Scale: 1, CheckTimeout: time.Minute}
	switch v := os.Getenv(EnvMode); v {
	case "", "quick":
	case "full":
		m = Mode{Name: "full", Seeds: []int64{1, 2, 3}, Scale: 3, CheckTimeout: 5 * time.Minute, AllSizes: true, AllScenarios: true}
	case "off":
		m.Name = "off"
	default:
		return m, fmt.Errorf("%s=%q: use quick, full or off", EnvMode, v)
	}
	if v := os.Getenv(EnvSeeds); v != "" {
		m.Seeds = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil {
				return m, fmt.Errorf("%s=%q: want seeds like 1,2,3", EnvSeeds, v)
			}
			m.Seeds = append(m.Seeds, n)
		}
	}
	return m, nil
}

// Env is what a scenario's Run works with.
type Env struct {
	T       testing.TB
	Ctx     context.Context
	Cluster *Cluster
	// Rand is seeded from the run's seed: use it for every choice a
	// scenario makes (which follower, how long), so a seed replays.
	Rand *rand.Rand
	Seed int64
	Mode Mode

	scenario Scenario
	result   *Result
	phase    *phase
	done     []*PhaseData
	faults   []fault
	// compacted is the highest revision the scenario compacted.
	compacted int64
}

type fault struct {
	what  string
	start time.Time
}

type phase struct {
	data     PhaseData
	rec      *Recorder
	traffic  *Traffic
	watchers []*Watcher
	clients  []*clientv3.Client
}

// WaitWrites waits until the traffic has had n more writes acknowledged
// (n times the mode's scale), failing after two minutes.
func (e *Env) WaitWrites(n int) {
	e.T.Helper()
	e.waitCount("writes acknowledged", n, e.phase.traffic.Writes)
}

// WaitOps waits for n more answered requests of any kind: progress while
// writes are refused (NOSPACE).
func (e *Env) WaitOps(n int) {
	e.T.Helper()
	e.waitCount("requests answered", n, e.phase.traffic.OKs)
}

func (e *Env) waitCount(what string, n int, count func() int64) {
	e.T.Helper()
	target := count() + int64(n*e.Mode.Scale)
	deadline := time.Now().Add(2 * time.Minute)
	for count() < target {
		if time.Now().After(deadline) {
			e.T.Fatalf("traffic stalled: %d of %d %s within 2 minutes", count(), target, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Fault marks the start of a fault; the report measures the time from
// here to the first acknowledged write sent after it. Call the returned
// function when the fault is healed (it only logs).
func (e *Env) Fault(what string) (healed func()) {
	start := time.Now()
	e.faults = append(e.faults, fault{what: what, start: start})
	e.T.Logf("fault: %s", what)
	return func() { e.T.Logf("healed after %v: %s", time.Since(start).Round(time.Millisecond), what) }
}

// Note adds a line to the report.
func (e *Env) Note(format string, args ...any) {
	e.result.Notes = append(e.result.Notes, fmt.Sprintf(format, args...))
}

// Problem records a violation without stopping the run.
func (e *Env) Problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	e.T.Logf("problem: %s", msg)
	e.result.Problems = append(e.result.Problems, msg)
}

// Etcdkit runs an etcdkit command against the cluster and fails the run
// unless it exits 0.
func (e *Env) Etcdkit(args ...string) testutil.Result {
	e.T.Helper()
	r := e.Cluster.Etcdkit(args...)
	if r.Code != 0 {
		e.T.Fatalf("etcdkit %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r
}

// Recorder is the current phase's history, for scenarios (and tests of
// the checker) that record requests of their own.
func (e *Env) Recorder() *Recorder { return e.phase.rec }

// scenarioClient is the client id of requests a scenario makes itself.
const scenarioClient = 100

// Put writes a key under Prefix (not a modeled key) and records it.
func (e *Env) Put(name string, value []byte) Response {
	req := Request{Kind: KindOpaque, Key: -1, Name: name, Value: valueID(value)}
	return e.record(req, func(ctx context.Context) (Response, error) {
		r, err := e.Cluster.Admin().Put(ctx, name, string(value))
		if err != nil {
			return Response{}, err
		}
		return Response{Rev: r.Header.Revision}, nil
	})
}

// Delete deletes one key under Prefix (not a modeled key) and records it.
func (e *Env) Delete(name string) Response {
	req := Request{Kind: KindOpaque, Key: -1, Name: name, Delete: true}
	return e.record(req, func(ctx context.Context) (Response, error) {
		r, err := e.Cluster.Admin().Delete(ctx, name)
		if err != nil {
			return Response{}, err
		}
		if r.Deleted != 1 {
			return Response{}, fmt.Errorf("deleted %d keys, want 1", r.Deleted)
		}
		return Response{Rev: r.Header.Revision}, nil
	})
}

func (e *Env) record(req Request, fn func(ctx context.Context) (Response, error)) Response {
	ctx, cancel := context.WithTimeout(e.Ctx, 10*time.Second)
	defer cancel()
	rec := e.phase.rec
	call := rec.Now()
	resp, err := fn(ctx)
	ret := rec.Now()
	if err != nil {
		resp = Response{Status: classify(req.Kind, err), Err: errText(err)}
	} else {
		resp.Status = StatusOK
	}
	rec.Record(Op{Client: scenarioClient, Req: req, Resp: resp, Call: call, Return: ret})
	return resp
}

// Redial gives the traffic, every watcher and the scenario's own client
// new connections built from the cluster's files as they are now, without
// ending the history: for
// scenarios that replace certificates (pki renew, rotate-ca) or move
// members. Requests in flight finish on the old connections.
func (e *Env) Redial() {
	e.T.Helper()
	p := e.phase
	e.Cluster.redialAdmin()
	if err := p.traffic.Redial(e.Cluster.Dial); err != nil {
		e.T.Fatalf("redial the traffic: %v", err)
	}
	for i, w := range p.watchers {
		var members []string
		if w.Name != "all" {
			members = []string{w.Name}
		}
		cli, err := e.Cluster.Target(e.T, members...).Client()
		if err != nil {
			e.T.Fatalf("redial watcher %s: %v", w.Name, err)
		}
		old := w.Swap(cli)
		p.clients[i] = cli
		time.AfterFunc(5*time.Second, func() { old.Close() })
	}
}

// Compacted tells the checks the scenario compacted up to rev: history
// below it can no longer be replayed.
func (e *Env) Compacted(rev int64) { e.compacted = max(e.compacted, rev) }

// Phases are the phases finished so far.
func (e *Env) Phases() []*PhaseData { return e.done }

// LostWrites adds acknowledged writes a scenario found missing.
func (e *Env) LostWrites(details ...string) {
	e.result.LostWrites += len(details)
	for _, d := range details {
		e.Problem("lost acknowledged write: %s", d)
	}
}

// RolledBack counts acknowledged writes a restore took back by design.
func (e *Env) RolledBack(n int) { e.result.RolledBack += n }

// NewPhase ends the history (checking it) and starts a new one after
// between has run with no traffic: for operations that change the data
// behind the clients' backs, such as a restore.
func (e *Env) NewPhase(between func()) {
	e.T.Helper()
	e.endPhase()
	between()
	e.beginPhase()
}

// retry calls fn until it succeeds, for up to two minutes.
func (e *Env) retry(what string, fn func(ctx context.Context) error) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(e.Ctx, 5*time.Second)
		err := fn(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || e.Ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// beginPhase reads the modeled keys (the model's initial state), starts a
// watcher on every member and one through all of them from the next
// revision, and starts the traffic.
func (e *Env) beginPhase() {
	e.T.Helper()
	cli := e.Cluster.Admin()
	// Leases left by an earlier phase (a restore brings them back) would
	// expire during this one and delete keys behind the model's back.
	if err := e.retry("revoke leftover leases", func(ctx context.Context) error {
		ls, err := cli.Leases(ctx)
		if err != nil {
			return err
		}
		for _, l := range ls.Leases {
			if _, err := cli.Revoke(ctx, l.ID); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		e.T.Fatal(err)
	}
	var init State
	if err := e.retry("read the initial state", func(ctx context.Context) error {
		r, err := cli.Get(ctx, keyPrefix, clientv3.WithPrefix())
		if err != nil {
			return err
		}
		init = State{Rev: r.Header.Revision}
		for _, kv := range kvsOf(r) {
			init.Keys[kv.Key] = keyState{Value: kv.Value, Mod: kv.Mod, Lease: kv.Lease}
		}
		return nil
	}); err != nil {
		e.T.Fatal(err)
	}
	p := &phase{rec: NewRecorder()}
	p.data = PhaseData{Index: len(e.done), Start: p.rec.Start, Init: init, StartRev: init.Rev, Watches: map[string][]Event{}}
	names := append([]string{"all"}, e.Cluster.Names()...)
	for _, n := range names {
		var members []string
		if n != "all" {
			members = []string{n}
		}
		wc, err := e.Cluster.Target(e.T, members...).Client()
		if err != nil {
			e.T.Fatal(err)
		}
		p.clients = append(p.clients, wc)
		p.watchers = append(p.watchers, StartWatcher(wc, n, init.Rev+1, p.rec))
	}
	tr, err := StartTraffic(e.Cluster.Dial, p.rec, e.Seed, len(e.done), DefaultTraffic)
	if err != nil {
		e.T.Fatal(err)
	}
	p.traffic = tr
	e.phase = p
	e.T.Cleanup(func() { e.stopPhase(p) })
}

// stopPhase stops a phase's traffic and watchers (once).
func (e *Env) stopPhase(p *phase) {
	if p.traffic != nil {
		p.traffic.Stop()
		p.traffic = nil
	}
	for _, w := range p.watchers {
		events, reconnects, problems := w.Stop()
		p.data.Watches[w.Name] = events
		p.data.Reconnects += reconnects
		p.data.WatchProblems = append(p.data.WatchProblems, problems...)
	}
	p.watchers = nil
	for _, c := range p.clients {
		c.Close()
	}
	p.clients = nil
}

// endPhase stops the traffic, waits for every watcher to reach the last
// revision, and checks the phase's history.
func (e *Env) endPhase() {
	e.T.Helper()
	p := e.phase
	p.traffic.Stop()
	p.traffic = nil
	cli := e.Cluster.Admin()
	if err := e.retry("read the final revision", func(ctx context.Context) error {
		r, err := cli.Get(ctx, keyPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return err
		}
		p.data.EndRev = r.Header.Revision
		return nil
	}); err != nil {
		e.T.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(e.Ctx, 2*time.Minute)
	for _, w := range p.watchers {
		if w.Name != "all" && !e.Cluster.Running(w.Name) {
			// Its events are checked up to where it got.
			if p.data.WatchEnds == nil {
				p.data.WatchEnds = map[string]int64{}
			}
			p.data.WatchEnds[w.Name] = w.Last()
			e.result.WatchOK = false
			e.Problem("watch: watcher %s stopped at revision %d: member %s is not running", w.Name, w.Last(), w.Name)
			continue
		}
		if err := w.WaitFor(wctx, p.data.EndRev); err != nil {
			e.result.WatchOK = false
			e.Problem("watch: %v", err)
		}
	}
	cancel()
	e.stopPhase(p)
	p.data.Ops = p.rec.Ops()
	e.checkPhase(&p.data)
	e.done = append(e.done, &p.data)
	e.phase = nil
}

// checkPhase runs the linearizability, watch and lost-write checks.
func (e *Env) checkPhase(d *PhaseData) {
	e.T.Helper()
	r := e.result
	r.Phases++
	for _, op := range d.Ops {
		r.Attempted++
		switch op.Resp.Status {
		case StatusOK:
			r.Succeeded++
		case StatusFailed:
			r.Failed++
		case StatusUnknown:
			r.Unknown++
		}
	}
	r.WatchReconnects += d.Reconnects
	r.WatchEvents += len(d.Watches["all"])
	watchProblems := append(append([]string(nil), d.WatchProblems...), CheckWatches(d)...)
	history, resolved, notApplied, rproblems := Resolve(d.Ops, d.Watches["all"])
	r.Resolved += resolved
	r.NotApplied += notApplied
	r.Checked += len(history)
	for _, p := range append(watchProblems, rproblems...) {
		e.Problem("phase %d: %s", d.Index, p)
	}
	if len(watchProblems) > 0 {
		r.WatchOK = false
	}

	began := time.Now()
	lin := CheckLinearizable(d.Init, history, e.Mode.CheckTimeout)
	verdict := map[porcupine.CheckResult]string{porcupine.Ok: "yes", porcupine.Illegal: "no", porcupine.Unknown: "timeout"}[lin.Result]
	e.T.Logf("phase %d: %d requests, %d checked for linearizability in %v: %s", d.Index, len(d.Ops), len(history), time.Since(began).Round(time.Millisecond), verdict)
	if r.Linearizable == "" || r.Linearizable == "yes" {
		r.Linearizable = verdict
	}
	if lin.Result != porcupine.Ok {
		why := ""
		if lin.Result == porcupine.Illegal {
			why = lin.Explain(d.Init, history)
			e.T.Logf("phase %d is not linearizable: %s", d.Index, why)
		}
		e.Problem("phase %d: history is not linearizable (porcupine: %s)", d.Index, verdict)
		e.saveArtifacts(d, &lin, why)
	}

	e.LostWrites(LostLeases(d.Ops)...)
	e.LostWrites(e.lostOnMembers(d)...)
}

// lostOnMembers replays the phase's revisions through every member and
// reads the ledger from each: every acknowledged write must be there.
func (e *Env) lostOnMembers(d *PhaseData) []string {
	if err := e.Cluster.HashKV(e.Ctx, d.EndRev); err != nil {
		e.Problem("phase %d: %v", d.Index, err)
	}
	acked := AckedWrites(d.Ops)
	var ledger []string
	for _, a := range acked {
		if strings.HasPrefix(a.want.Key, ledgerPrefix) && !a.want.Delete {
			ledger = append(ledger, a.want.Key)
		}
	}
	lost := map[string]bool{}
	from := max(d.StartRev, e.compacted) + 1
	for _, n := range e.Cluster.Names() {
		if !e.Cluster.Running(n) {
			e.Problem("phase %d: member %s is not running: its copy of the data cannot be checked", d.Index, n)
			continue
		}
		cli, err := e.Cluster.Target(e.T, n).Client()
		if err != nil {
			e.T.Fatal(err)
		}
		var replay []Event
		err = e.retry("replay the history through "+n, func(ctx context.Context) error {
			rctx, cancel := context.WithTimeout(e.Ctx, time.Minute)
			defer cancel()
			var err error
			replay, err = Replay(rctx, cli, from, d.EndRev)
			return err
		})
		if err != nil {
			e.Problem("phase %d: member %s: %v", d.Index, n, err)
		}
		for _, l := range LostWrites(acked, replay, from-1) {
			lost[l] = true
		}
		have := map[string]bool{}
		err = e.retry("read the ledger on "+n, func(ctx context.Context) error {
			r, err := cli.Get(ctx, ledgerPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithSerializable())
			if err != nil {
				return err
			}
			for _, kv := range r.Kvs {
				have[string(kv.Key)] = true
			}
			return nil
		})
		if err != nil {
			e.Problem("phase %d: member %s: %v", d.Index, n, err)
		}
		for _, k := range ledger {
			if !have[k] {
				lost[fmt.Sprintf("ledger key %s is missing on member %s", k, n)] = true
			}
		}
		cli.Close()
	}
	out := make([]string, 0, len(lost))
	for l := range lost {
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}

// saveArtifacts keeps a failing phase's history and porcupine's
// visualization.
func (e *Env) saveArtifacts(d *PhaseData, lin *LinearizationResult, why string) {
	dir := e.result.Artifacts
	if dir == "" {
		base := os.Getenv(EnvArtifacts)
		if base == "" {
			base = filepath.Join(os.TempDir(), "etcdkit-robustness")
		}
		dir = filepath.Join(base, fmt.Sprintf("%s-%dm-seed%d-%s", e.result.Scenario, e.result.Members, e.Seed, time.Now().Format("20060102T150405")))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			e.T.Logf("cannot keep the history: %v", err)
			return
		}
		e.result.Artifacts = dir
	}
	b, err := json.MarshalIndent(d, "", " ")
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, fmt.Sprintf("phase%d-history.json", d.Index)), b, 0o644)
	}
	if err == nil && why != "" {
		err = os.WriteFile(filepath.Join(dir, fmt.Sprintf("phase%d-why.txt", d.Index)), []byte(why), 0o644)
	}
	if err == nil && lin != nil {
		err = porcupine.VisualizePath(lin.Model, lin.Info, filepath.Join(dir, fmt.Sprintf("phase%d-linearization.html", d.Index)))
	}
	if err != nil {
		e.T.Logf("cannot keep the history: %v", err)
	}
	e.T.Logf("history kept in %s", dir)
}

// recoveries measures each fault: from its start to the first
// acknowledged put sent after it. Deletes do not count: etcd accepts them
// even under NOSPACE.
func (e *Env) recoveries() []Recovery {
	var out []Recovery
	for _, f := range e.faults {
		var best time.Duration = -1
		for _, d := range e.done {
			for _, op := range d.Ops {
				k := op.Req.Kind
				if op.Resp.Status != StatusOK || op.Resolved != "" || !(k == KindPut || k == KindTxn || (k == KindOpaque && !op.Req.Delete)) {
					continue
				}
				if d.Start.Add(op.Call).Before(f.start) {
					continue
				}
				if took := d.Start.Add(op.Return).Sub(f.start); best < 0 || took < best {
					best = took
				}
			}
		}
		if best < 0 {
			e.Problem("no write was acknowledged after fault %q", f.what)
			continue
		}
		out = append(out, Recovery{Fault: f.what, Took: Seconds(best)})
	}
	return out
}

// RunScenario runs one scenario against one cluster size with one seed,
// checks everything, and returns the result. It fails t only for errors of
// the harness; violations are in the result (TestScenarios fails on them,
// tests of the checker expect them).
func RunScenario(t *testing.T, s Scenario, members int, seed int64, mode Mode) Result {
	t.Helper()
	res := Result{Scenario: s.Name, Summary: s.Summary, Members: members, Seed: seed, Mode: mode.Name,
		Started: time.Now(), WatchOK: true}
	if s.Skip != nil {
		if why := s.Skip(t); why != "" {
			res.Skipped = why
			return res
		}
	}
	opts := ClusterOptions{Members: members}
	if s.Cluster != nil {
		s.Cluster(&opts)
	}
	c := NewCluster(t, opts)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e := &Env{T: t, Ctx: ctx, Cluster: c, Rand: rand.New(rand.NewPCG(uint64(seed), 0x5eed)), Seed: seed, Mode: mode,
		scenario: s, result: &res}
	e.beginPhase()
	s.Run(e)
	e.endPhase()
	e.verifyEnd()
	res.Recovery = e.recoveries()
	res.Duration = Seconds(time.Since(res.Started))
	return res
}

// verifyEnd checks the cluster as an operator would, with etcdkit's own
// commands: every member healthy, no alarm raised; and every member's
// keyspace identical.
func (e *Env) verifyEnd() {
	e.T.Helper()
	r := e.result
	r.Healthy = true
	health := func(context.Context) error {
		res := e.Cluster.Etcdkit("health", "--cluster", "-o", "json")
		if res.Code != 0 {
			return fmt.Errorf("exit %d: %s", res.Code, strings.TrimSpace(res.Stderr))
		}
		return nil
	}
	var err error
	if merr := e.checkMembers(); merr != nil {
		// The cluster is not the one meant: health is asked once, not
		// waited for.
		r.Healthy = false
		e.Problem("%v", merr)
		if err = health(e.Ctx); err != nil {
			err = fmt.Errorf("etcdkit health --cluster: %w", err)
		}
	} else {
		err = e.retry("etcdkit health --cluster", health)
	}
	if err != nil {
		r.Healthy = false
		e.Problem("%v", err)
	}
	if res := e.Cluster.Etcdkit("alarm", "list", "-o", "json"); res.Code != 0 || strings.TrimSpace(res.Stdout) != "[]" {
		r.Healthy = false
		e.Problem("etcdkit alarm list: exit %d: %s%s", res.Code, res.Stdout, res.Stderr)
	}
	last := e.done[len(e.done)-1]
	r.HashKVAgree = true
	if err := e.Cluster.HashKV(e.Ctx, last.EndRev); err != nil {
		r.HashKVAgree = false
		e.Problem("%v", err)
	}
}
