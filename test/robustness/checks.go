package robustness

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// PhaseData is what one phase of a scenario produced: the history between
// two points where the whole keyspace was read (the phase's start and end
// revisions), and what every watcher saw in between.
type PhaseData struct {
	Index int
	// Start is when the phase's clock began (Op.Call is relative to it).
	Start    time.Time
	Init     State
	StartRev int64
	EndRev   int64
	Ops      []Op
	// Watches maps a watcher's name to its events; "all" follows every
	// member through the balancer, the others one member each.
	Watches map[string][]Event
	// WatchEnds are the watchers of members that left the cluster during
	// the phase (replaced) or were not running at its end, with the
	// revision each had reached: each is checked up to there (the member
	// not running is a problem of its own).
	WatchEnds     map[string]int64 `json:",omitempty"`
	Reconnects    int
	WatchProblems []string
}

// watched is every put a watcher saw, by value: where it happened and when
// it was first seen.
type watched struct {
	rev int64
	at  time.Duration
	key string
}

func putsByValue(events []Event) (map[string]watched, []string) {
	out := map[string]watched{}
	var problems []string
	for _, e := range events {
		if e.Delete {
			continue
		}
		if w, dup := out[e.Value]; dup {
			problems = append(problems, fmt.Sprintf("value %q was written twice, at revisions %d and %d: a request was applied more than once", e.Value, w.rev, e.Rev))
			continue
		}
		out[e.Value] = watched{rev: e.Rev, at: e.At, key: e.Key}
	}
	return out, problems
}

// Resolve prepares a history for the linearizability check. Every write
// in the phase shows up in the watch (the watch check proves it), so a
// write whose outcome was unknown can mostly be settled from it:
//
//   - a put (or txn) whose unique value appears was applied at that
//     revision; one whose value never appears was not applied;
//   - a delete in doubt matters only if it deleted something, which left a
//     DELETE event no acknowledged request accounts for: with no such event
//     it changed nothing and is dropped; with one that only it can explain,
//     it is settled as applied there; otherwise it stays in doubt.
//
// A refused write must not appear. Reads, keepalives and lease grants
// whose outcome is unknown say nothing and are dropped; revocations in
// doubt stay in doubt (the model tries both outcomes). Few requests left in
// doubt keep porcupine's search small.
func Resolve(ops []Op, events []Event) (out []Op, resolved, notApplied int, problems []string) {
	seen, problems := putsByValue(events)
	deletes := unclaimedDeletes(ops, events)
	for i, op := range ops {
		switch op.Req.Kind {
		case KindKeepAlive:
			continue
		case KindGet, KindRange, KindLeaseGrant:
			if op.Resp.Status != StatusOK {
				continue
			}
		case KindPut, KindTxn, KindOpaque:
			if op.Req.Kind == KindOpaque && op.Req.Delete {
				if op.Resp.Status == StatusFailed {
					continue
				}
				break
			}
			w, inWatch := seen[op.Req.Value]
			switch op.Resp.Status {
			case StatusFailed:
				if inWatch {
					problems = append(problems, fmt.Sprintf("%v: etcd refused it, yet it was applied at revision %d", op, w.rev))
				}
				continue
			case StatusUnknown:
				if !inWatch {
					notApplied++
					continue
				}
				op.Resp = Response{Status: StatusOK, Rev: w.rev, Succeeded: op.Req.Kind == KindTxn}
				op.Return = max(op.Call, w.at)
				op.Resolved = "watch"
				resolved++
			}
		case KindDelete:
			if op.Resp.Status != StatusUnknown {
				break
			}
			switch e, n := deletes.settle(i); {
			case n == 0:
				notApplied++
				continue
			case e != nil:
				op.Resp = Response{Status: StatusOK, Rev: e.Rev, Deleted: 1}
				op.Return = max(op.Call, e.At)
				op.Resolved = "watch"
				resolved++
			}
		case KindLeaseRevoke:
			if op.Resp.Status == StatusFailed && op.Resp.Err != errLeaseNotFound {
				continue
			}
		}
		out = append(out, op)
	}
	return out, resolved, notApplied, problems
}

// deleteClaims pairs DELETE events no acknowledged request accounts for
// with the requests in doubt that could have caused them.
type deleteClaims struct {
	byOp    map[int][]*Event // op index -> events it could explain
	byEvent map[*Event][]int // event -> ops that could explain it
}

func unclaimedDeletes(ops []Op, events []Event) deleteClaims {
	claimed := map[int64]bool{}
	for _, op := range ops {
		if op.Resp.Status != StatusOK {
			continue
		}
		switch {
		case op.Req.Kind == KindDelete && op.Resp.Deleted > 0,
			op.Req.Kind == KindLeaseRevoke,
			op.Req.Kind == KindOpaque && op.Req.Delete:
			claimed[op.Resp.Rev] = true
		}
	}
	c := deleteClaims{byOp: map[int][]*Event{}, byEvent: map[*Event][]int{}}
	for ei := range events {
		e := &events[ei]
		if !e.Delete || claimed[e.Rev] || keyIndex(e.Key) < 0 {
			continue
		}
		for i, op := range ops {
			if op.Resp.Status != StatusUnknown || op.Call > e.At {
				continue
			}
			if (op.Req.Kind == KindDelete && keyName(op.Req.Key) == e.Key) || op.Req.Kind == KindLeaseRevoke {
				c.byOp[i] = append(c.byOp[i], e)
				c.byEvent[e] = append(c.byEvent[e], i)
			}
		}
	}
	return c
}

// settle says how many events op i could explain, and the event when it
// is the only one and op i the only request that could explain it.
func (c deleteClaims) settle(i int) (*Event, int) {
	evs := c.byOp[i]
	if len(evs) == 1 && len(c.byEvent[evs[0]]) == 1 {
		return evs[0], 1
	}
	return nil, len(evs)
}

// LinearizationResult is porcupine's verdict.
type LinearizationResult struct {
	Result porcupine.CheckResult
	Info   porcupine.LinearizationInfo
	Model  porcupine.Model
}

// CheckLinearizable runs porcupine over a resolved history. An operation
// whose outcome is still unknown may take effect until the end of time.
func CheckLinearizable(init State, ops []Op, timeout time.Duration) LinearizationResult {
	var end time.Duration
	clients := 0
	for _, op := range ops {
		end = max(end, op.Return, op.Call)
		clients = max(clients, op.Client+1)
	}
	history := make([]porcupine.Operation, 0, len(ops))
	extra := 0
	for _, op := range ops {
		ret, client := op.Return, op.Client
		if op.Resp.Status == StatusUnknown {
			// A request in doubt no longer blocks its client; drawing it
			// on a lane of its own keeps the visualization readable.
			ret, client = end+1, clients+extra
			extra++
		}
		history = append(history, porcupine.Operation{
			ClientId: client, Input: op.Req, Output: op.Resp, Call: int64(op.Call), Return: int64(ret),
		})
	}
	m := NewModel(init)
	res, info := porcupine.CheckOperationsVerbose(m, history, timeout)
	return LinearizationResult{Result: res, Info: info, Model: m}
}

// CheckWatches checks what the watchers saw: each saw every revision of
// the phase exactly once, in order, with no gap (the prefix is the only
// thing written, so every revision is an event); all saw the same events;
// and every event is explained by a recorded request.
func CheckWatches(p *PhaseData) []string {
	var problems []string
	names := make([]string, 0, len(p.Watches))
	for n := range p.Watches {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		end, left := p.WatchEnds[n]
		if !left {
			end = p.EndRev
		}
		problems = append(problems, checkOneWatch(n, p.Watches[n], p.StartRev, end)...)
	}
	ref := p.Watches["all"]
	for _, n := range names {
		evs := p.Watches[n]
		if n == "all" {
			continue
		}
		for i := 0; i < min(len(evs), len(ref)); i++ {
			if !evs[i].same(ref[i]) {
				problems = append(problems, fmt.Sprintf("watcher %s disagrees with watcher all at event %d: %v vs %v", n, i, evs[i], ref[i]))
				break
			}
		}
	}
	problems = append(problems, unexplained(ref, p.Ops)...)
	return problems
}

func checkOneWatch(name string, evs []Event, startRev, endRev int64) []string {
	var problems []string
	fail := func(format string, args ...any) {
		if len(problems) < 5 {
			problems = append(problems, fmt.Sprintf("watcher %s: ", name)+fmt.Sprintf(format, args...))
		}
	}
	revs := map[int64]bool{}
	for i, e := range evs {
		if e.Rev <= startRev || e.Rev > endRev {
			fail("event %v is outside the phase's revisions (%d, %d]", e, startRev, endRev)
		}
		if i > 0 {
			prev := evs[i-1]
			switch {
			case e.Rev < prev.Rev:
				fail("event %v came after %v: out of order", e, prev)
			case e.Rev == prev.Rev && e.Key == prev.Key:
				fail("event %v delivered twice", e)
			}
		}
		revs[e.Rev] = true
	}
	var missing []int64
	for r := startRev + 1; r <= endRev; r++ {
		if !revs[r] {
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 {
		fail("%d of revisions %d..%d never arrived (first: %v)", len(missing), startRev+1, endRev, missing[:min(5, len(missing))])
	}
	return problems
}

// unexplained finds events no recorded request accounts for: a write
// behind the clients' backs, or a delete nobody asked for.
func unexplained(evs []Event, ops []Op) []string {
	puts := map[string]bool{}
	deletes := map[string]bool{} // key -> some delete of it was recorded (any outcome)
	revoke := false
	for _, op := range ops {
		switch op.Req.Kind {
		case KindPut, KindTxn:
			puts[op.Req.Value] = true
		case KindOpaque:
			if op.Req.Delete {
				deletes[op.Req.Name] = true
			} else {
				puts[op.Req.Value] = true
			}
		case KindDelete:
			deletes[keyName(op.Req.Key)] = true
		case KindLeaseRevoke:
			revoke = true
		}
	}
	var problems []string
	for _, e := range evs {
		ok := puts[e.Value]
		if e.Delete {
			ok = deletes[e.Key] || (revoke && keyIndex(e.Key) >= 0)
		}
		if !ok && len(problems) < 5 {
			problems = append(problems, fmt.Sprintf("event %v was written by no recorded request", e))
		}
	}
	return problems
}

// ackedWrite is a write etcd acknowledged and where it must be found.
type ackedWrite struct {
	op   Op
	want Event
}

// AckedWrites lists every write etcd acknowledged (not those settled from
// the watch: the client never heard of those) with the event it must have
// left in the history.
func AckedWrites(ops []Op) []ackedWrite {
	var out []ackedWrite
	for _, op := range ops {
		if op.Resp.Status != StatusOK || op.Resolved != "" {
			continue
		}
		e := Event{Rev: op.Resp.Rev}
		switch op.Req.Kind {
		case KindPut:
			e.Key, e.Value, e.Lease = keyName(op.Req.Key), op.Req.Value, op.Req.Lease
		case KindTxn:
			if !op.Resp.Succeeded {
				continue
			}
			e.Key, e.Value = keyName(op.Req.Key), op.Req.Value
		case KindDelete:
			if op.Resp.Deleted == 0 {
				continue
			}
			e.Key, e.Delete = keyName(op.Req.Key), true
		case KindOpaque:
			e.Key, e.Delete = op.Req.Name, op.Req.Delete
			if !e.Delete {
				e.Value = op.Req.Value
			}
		default:
			continue
		}
		out = append(out, ackedWrite{op: op, want: e})
	}
	return out
}

// LostWrites finds acknowledged writes missing from a member's history
// (a replay of the phase's revisions after the faults healed). Writes at
// or below compacted cannot be replayed and are left to the ledger check.
func LostWrites(acked []ackedWrite, replay []Event, compacted int64) []string {
	have := map[int64][]Event{}
	for _, e := range replay {
		have[e.Rev] = append(have[e.Rev], e)
	}
	var lost []string
	for _, a := range acked {
		if a.want.Rev <= compacted {
			continue
		}
		if !slices.ContainsFunc(have[a.want.Rev], a.want.same) {
			lost = append(lost, fmt.Sprintf("%v (acknowledged at revision %d)", a.op, a.want.Rev))
		}
	}
	return lost
}

// LostLeases finds leases etcd said do not exist though their client
// never revoked them.
func LostLeases(ops []Op) []string {
	revokeStarted := map[int64]time.Duration{}
	for _, op := range ops {
		if op.Req.Kind == KindLeaseRevoke {
			if t, ok := revokeStarted[op.Req.Lease]; !ok || op.Call < t {
				revokeStarted[op.Req.Lease] = op.Call
			}
		}
	}
	var lost []string
	for _, op := range ops {
		if op.Resp.Status != StatusFailed || op.Resp.Err != errLeaseNotFound || op.Req.Lease == 0 {
			continue
		}
		if op.Req.Kind != KindKeepAlive && op.Req.Kind != KindPut {
			continue
		}
		if t, ok := revokeStarted[op.Req.Lease]; ok && t <= op.Call {
			continue
		}
		lost = append(lost, fmt.Sprintf("lease %x: %v, though it was granted and never revoked", op.Req.Lease, op))
	}
	return lost
}

// StateAt replays events from init up to rev: the modeled keys as etcd
// must hold them at that revision.
func StateAt(init State, evs []Event, rev int64) State {
	s := init
	for _, e := range evs {
		if e.Rev > rev {
			break
		}
		s.Rev = e.Rev
		i := keyIndex(e.Key)
		if i < 0 {
			continue
		}
		if e.Delete {
			s.Keys[i] = keyState{}
		} else {
			s.Keys[i] = keyState{Value: e.Value, Mod: e.Rev, Lease: e.Lease}
		}
	}
	return s
}

func summarize(problems []string, n int) string {
	if len(problems) <= n {
		return strings.Join(problems, "; ")
	}
	return strings.Join(problems[:n], "; ") + fmt.Sprintf("; and %d more", len(problems)-n)
}

// Explain describes why porcupine rejected a history: the longest prefix it
// could linearize, the state the model reached, and the requests none of
// which could come next.
func (l LinearizationResult) Explain(init State, ops []Op) string {
	parts := l.Info.PartialLinearizationsOperations()
	if len(parts) == 0 {
		return ""
	}
	var longest []porcupine.Operation
	for _, p := range parts[0] {
		if len(p) > len(longest) {
			longest = p
		}
	}
	var b strings.Builder
	s := init
	fmt.Fprintf(&b, "the longest linearizable prefix has %d of %d requests; it ends with:\n", len(longest), len(ops))
	for i, op := range longest {
		next := step(s, op.Input.(Request), op.Output.(Response))
		if len(next) > 0 {
			s = next[0]
		}
		if i >= len(longest)-10 {
			fmt.Fprintf(&b, "  %s -> %s\n", describeRequest(op.Input.(Request)), describeResponse(op.Input.(Request), op.Output.(Response)))
		}
	}
	fmt.Fprintf(&b, "the model's state after it (one of the possible ones): %s\n", describeState(s))
	placed := map[[2]int64]bool{}
	for _, op := range longest {
		placed[[2]int64{op.Call, int64(op.ClientId)}] = true
	}
	var rest []Op
	for _, op := range ops {
		if op.Resp.Status != StatusUnknown && !placed[[2]int64{int64(op.Call), int64(op.Client)}] {
			rest = append(rest, op)
		}
	}
	sort.Slice(rest, func(i, j int) bool { return rest[i].Call < rest[j].Call })
	b.WriteString("none of these could come next:\n")
	for i := 0; i < len(rest) && i < 5; i++ {
		fmt.Fprintf(&b, "  %v\n", rest[i])
	}
	return b.String()
}
