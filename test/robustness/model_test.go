package robustness

import (
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// h builds histories for the checker's own tests: times are milliseconds.
type h []Op

func (x h) add(client, call, ret int, req Request, resp Response) h {
	if resp.Status == 0 {
		resp.Status = StatusOK
	}
	return append(x, Op{Client: client, Req: req, Resp: resp, Call: time.Duration(call) * time.Millisecond, Return: time.Duration(ret) * time.Millisecond})
}

func put(k int, v string) Request { return Request{Kind: KindPut, Key: k, Value: v} }
func get(k int) Request           { return Request{Kind: KindGet, Key: k} }
func del(k int) Request           { return Request{Kind: KindDelete, Key: k} }
func txn(k int, expect int64, v string) Request {
	return Request{Kind: KindTxn, Key: k, Expect: expect, Value: v}
}
func rev(r int64) Response { return Response{Rev: r} }
func read(r int64, kvs ...KV) Response {
	return Response{Rev: r, KVs: kvs}
}
func unknown() Response { return Response{Status: StatusUnknown, Err: "timeout"} }

var start = State{Rev: 1}

func linearizable(t *testing.T, init State, ops h) bool {
	t.Helper()
	res := CheckLinearizable(init, ops, 10*time.Second)
	if res.Result == porcupine.Unknown {
		t.Fatal("porcupine timed out")
	}
	return res.Result == porcupine.Ok
}

func TestModelAcceptsEtcdBehaviour(t *testing.T) {
	for name, ops := range map[string]h{
		"put then get": h{}.
			add(0, 0, 1, put(0, "a"), rev(2)).
			add(0, 2, 3, get(0), read(2, KV{Key: 0, Value: "a", Mod: 2})),
		"concurrent puts in either order": h{}.
			add(0, 0, 10, put(0, "a"), rev(3)).
			add(1, 0, 10, put(0, "b"), rev(2)).
			add(2, 11, 12, get(0), read(3, KV{Key: 0, Value: "a", Mod: 3})),
		"a read concurrent with a put may miss it": h{}.
			add(0, 0, 10, put(0, "a"), rev(2)).
			add(1, 1, 5, get(0), read(1)),
		"delete, and delete of nothing": h{}.
			add(0, 0, 1, put(1, "a"), rev(2)).
			add(0, 2, 3, del(1), Response{Rev: 3, Deleted: 1}).
			add(0, 4, 5, del(1), Response{Rev: 3}),
		"txn takes the branch its compare implies": h{}.
			add(0, 0, 1, put(2, "a"), rev(2)).
			add(0, 2, 3, txn(2, 2, "b"), Response{Rev: 3, Succeeded: true}).
			add(0, 4, 5, txn(2, 2, "c"), Response{Rev: 3, KVs: []KV{{Key: 2, Value: "b", Mod: 3}}}),
		"revoke takes the lease's keys": h{}.
			add(0, 0, 1, Request{Kind: KindLeaseGrant, Key: -1, Lease: 7}, rev(1)).
			add(0, 2, 3, Request{Kind: KindPut, Key: 0, Value: "a", Lease: 7}, rev(2)).
			add(0, 4, 5, Request{Kind: KindLeaseRevoke, Key: -1, Lease: 7}, rev(3)).
			add(0, 6, 7, get(0), read(3)).
			add(0, 8, 9, Request{Kind: KindLeaseRevoke, Key: -1, Lease: 7}, Response{Status: StatusFailed, Err: errLeaseNotFound}),
		"an unknown put may have happened": h{}.
			add(0, 0, 1, put(0, "a"), unknown()).
			add(1, 5, 6, get(0), read(2, KV{Key: 0, Value: "a", Mod: 2})),
		"an unknown put may not have happened": h{}.
			add(0, 0, 1, put(0, "a"), unknown()).
			add(1, 5, 6, get(0), read(1)),
		"an unknown put may happen late": h{}.
			add(0, 0, 1, put(0, "a"), unknown()).
			add(1, 5, 6, get(0), read(1)).
			add(1, 7, 8, get(0), read(2, KV{Key: 0, Value: "a", Mod: 2})),
		"opaque writes move the revision": h{}.
			add(0, 0, 1, Request{Kind: KindOpaque, Key: -1, Name: "rb/ledger/1", Value: "x"}, rev(2)).
			add(0, 2, 3, put(0, "a"), rev(3)),
	} {
		t.Run(name, func(t *testing.T) {
			if !linearizable(t, start, ops) {
				t.Fatal("rejected a history etcd may produce")
			}
		})
	}
}

// TestModelCatchesViolations: the checker fails the histories a broken
// etcd (or a broken etcdkit operation) would produce.
func TestModelCatchesViolations(t *testing.T) {
	for name, ops := range map[string]h{
		"stale read after an acknowledged put": h{}.
			add(0, 0, 1, put(0, "a"), rev(2)).
			add(0, 2, 3, put(0, "b"), rev(3)).
			add(1, 4, 5, get(0), read(2, KV{Key: 0, Value: "a", Mod: 2})),
		"acknowledged put lost": h{}.
			add(0, 0, 1, put(0, "a"), rev(2)).
			add(1, 4, 5, get(0), read(2)),
		"revision skipped": h{}.
			add(0, 0, 1, put(0, "a"), rev(2)).
			add(0, 2, 3, put(0, "b"), rev(4)),
		"two writes at one revision": h{}.
			add(0, 0, 1, put(0, "a"), rev(2)).
			add(1, 0, 1, put(1, "b"), rev(2)),
		"value nobody wrote": h{}.
			add(0, 0, 1, get(0), read(2, KV{Key: 0, Value: "ghost", Mod: 2})),
		"txn took the wrong branch": h{}.
			add(0, 0, 1, put(2, "a"), rev(2)).
			add(0, 2, 3, txn(2, 2, "b"), Response{Rev: 2, KVs: []KV{{Key: 2, Value: "a", Mod: 2}}}),
		"revoke left its key": h{}.
			add(0, 0, 1, Request{Kind: KindLeaseGrant, Key: -1, Lease: 7}, rev(1)).
			add(0, 2, 3, Request{Kind: KindPut, Key: 0, Value: "a", Lease: 7}, rev(2)).
			add(0, 4, 5, Request{Kind: KindLeaseRevoke, Key: -1, Lease: 7}, rev(3)).
			add(0, 6, 7, get(0), read(3, KV{Key: 0, Value: "a", Mod: 2, Lease: 7})),
		"read went back in time": h{}.
			add(0, 0, 1, put(0, "a"), rev(2)).
			add(1, 2, 3, get(0), read(2, KV{Key: 0, Value: "a", Mod: 2})).
			add(1, 4, 5, get(0), read(1)),
	} {
		t.Run(name, func(t *testing.T) {
			if linearizable(t, start, ops) {
				t.Fatal("accepted a history etcd must never produce")
			}
		})
	}
}

func TestResolve(t *testing.T) {
	ops := h{}.
		add(0, 0, 1, put(0, "seen"), unknown()).
		add(1, 0, 1, put(1, "never"), unknown()).
		add(2, 0, 1, Request{Kind: KindPut, Key: 2, Value: "refused", Lease: 5}, Response{Status: StatusFailed, Err: errLeaseNotFound}).
		add(3, 0, 1, get(0), unknown()).
		add(3, 2, 3, del(4), unknown()). // deleted nothing: no event
		add(4, 2, 3, del(3), unknown()). // the only one that can explain k3's delete
		add(5, 2, 3, del(5), unknown()). // two deletes of k5 in doubt, one event:
		add(6, 2, 3, del(5), unknown())  // both stay in doubt
	events := []Event{
		{Rev: 2, Key: keyName(0), Value: "seen", At: 5 * time.Millisecond},
		{Rev: 3, Key: keyName(3), Delete: true, At: 6 * time.Millisecond},
		{Rev: 4, Key: keyName(5), Delete: true, At: 7 * time.Millisecond},
	}
	out, resolved, notApplied, problems := Resolve(ops, events)
	if resolved != 2 || notApplied != 2 || len(problems) != 0 {
		t.Fatalf("resolved %d, not applied %d, problems %v", resolved, notApplied, problems)
	}
	if len(out) != 4 {
		t.Fatalf("resolved history: %v", out)
	}
	if p := out[0]; p.Resp.Rev != 2 || p.Resp.Status != StatusOK || p.Return != 5*time.Millisecond {
		t.Fatalf("put in doubt: %v", p)
	}
	if d := out[1]; d.Req.Key != 3 || d.Resp.Status != StatusOK || d.Resp.Rev != 3 || d.Resp.Deleted != 1 {
		t.Fatalf("delete in doubt: %v", d)
	}
	if out[2].Resp.Status != StatusUnknown || out[3].Resp.Status != StatusUnknown {
		t.Fatalf("ambiguous deletes were settled: %v", out[2:])
	}
	// A refused write that shows up anyway is a violation.
	_, _, _, problems = Resolve(ops, append(events, Event{Rev: 5, Key: keyName(2), Value: "refused"}))
	if len(problems) != 1 || !strings.Contains(problems[0], "refused") {
		t.Fatalf("problems: %v", problems)
	}
	// A value applied twice is a violation.
	_, _, _, problems = Resolve(ops, append(events, Event{Rev: 5, Key: keyName(0), Value: "seen"}))
	if len(problems) != 1 || !strings.Contains(problems[0], "twice") {
		t.Fatalf("problems: %v", problems)
	}
}

func TestCheckWatches(t *testing.T) {
	ops := h{}.
		add(0, 0, 1, put(0, "a"), rev(2)).
		add(0, 2, 3, put(1, "b"), rev(3)).
		add(0, 4, 5, del(0), Response{Rev: 4, Deleted: 1})
	good := []Event{{Rev: 2, Key: keyName(0), Value: "a"}, {Rev: 3, Key: keyName(1), Value: "b"}, {Rev: 4, Key: keyName(0), Delete: true}}
	phase := func(w map[string][]Event) *PhaseData {
		return &PhaseData{StartRev: 1, EndRev: 4, Ops: ops, Watches: w}
	}
	if p := CheckWatches(phase(map[string][]Event{"all": good, "m1": good})); len(p) != 0 {
		t.Fatalf("good watches: %v", p)
	}
	// The watcher of a member that left (replaced) is checked up to the
	// revision it had reached, and no further.
	left := phase(map[string][]Event{"all": good, "m1": good[:1]})
	left.WatchEnds = map[string]int64{"m1": 2}
	if p := CheckWatches(left); len(p) != 0 {
		t.Fatalf("a watcher that ended with its member: %v", p)
	}
	left.Watches["m1"] = nil
	if p := CheckWatches(left); !strings.Contains(strings.Join(p, "\n"), "watcher m1: 1 of revisions 2..2 never arrived") {
		t.Fatalf("a gap before the watcher's end passed: %v", p)
	}
	for name, tc := range map[string]struct {
		watches map[string][]Event
		want    string
	}{
		"gap":          {map[string][]Event{"all": {good[0], good[2]}}, "never arrived"},
		"duplicate":    {map[string][]Event{"all": {good[0], good[1], good[1], good[2]}}, "twice"},
		"out of order": {map[string][]Event{"all": {good[1], good[0], good[2]}}, "out of order"},
		"disagreement": {map[string][]Event{"all": good, "m2": {good[0], {Rev: 3, Key: keyName(1), Value: "x"}, good[2]}}, "disagrees"},
		"unexplained":  {map[string][]Event{"all": {good[0], good[1], {Rev: 4, Key: keyName(5), Value: "rogue"}}}, "no recorded request"},
	} {
		t.Run(name, func(t *testing.T) {
			p := CheckWatches(phase(tc.watches))
			if !strings.Contains(strings.Join(p, "\n"), tc.want) {
				t.Fatalf("want a problem with %q, got %v", tc.want, p)
			}
		})
	}
}

func TestLostWrites(t *testing.T) {
	ops := h{}.
		add(0, 0, 1, put(0, "a"), rev(2)).
		add(0, 2, 3, Request{Kind: KindOpaque, Key: -1, Name: ledgerPrefix + "1", Value: ledgerPrefix + "1"}, rev(3)).
		add(0, 4, 5, del(0), Response{Rev: 4, Deleted: 1})
	all := []Event{{Rev: 2, Key: keyName(0), Value: "a"}, {Rev: 3, Key: ledgerPrefix + "1", Value: ledgerPrefix + "1"}, {Rev: 4, Key: keyName(0), Delete: true}}
	acked := AckedWrites(ops)
	if len(acked) != 3 {
		t.Fatalf("acked: %v", acked)
	}
	if lost := LostWrites(acked, all, 1); len(lost) != 0 {
		t.Fatalf("lost: %v", lost)
	}
	if lost := LostWrites(acked, all[1:], 1); len(lost) != 1 || !strings.Contains(lost[0], `"a"`) {
		t.Fatalf("lost: %v", lost)
	}
	// Compacted history is not held against the cluster.
	if lost := LostWrites(acked, all[1:], 2); len(lost) != 0 {
		t.Fatalf("lost below the compaction: %v", lost)
	}
	leases := h{}.
		add(0, 0, 1, Request{Kind: KindKeepAlive, Key: -1, Lease: 9}, Response{Status: StatusFailed, Err: errLeaseNotFound}).
		add(1, 0, 1, Request{Kind: KindLeaseRevoke, Key: -1, Lease: 8}, unknown()).
		add(1, 2, 3, Request{Kind: KindKeepAlive, Key: -1, Lease: 8}, Response{Status: StatusFailed, Err: errLeaseNotFound})
	if lost := LostLeases(leases); len(lost) != 1 || !strings.Contains(lost[0], "lease 9") {
		t.Fatalf("lost leases: %v", lost)
	}
}

func TestRegistry(t *testing.T) {
	names := map[string]bool{}
	for _, s := range Scenarios() {
		names[s.Name] = true
		if len(s.Sizes) == 0 || s.Sizes[0] < 3 {
			t.Errorf("scenario %s: sizes %v", s.Name, s.Sizes)
		}
	}
	for _, want := range []string{"kill-leader", "kill-follower", "pause-leader", "partition-leader", "partition-follower", "snapshot-save", "defrag", "cluster-restore", "nospace", "nospace-small-disk", "pki-renew", "pki-rotate-ca"} {
		if !names[want] {
			t.Errorf("scenario %s is not registered", want)
		}
	}
	if why := NeedsCommand("member", "no-such-command")(t); !strings.Contains(why, "etcdkit member no-such-command` does not exist") {
		t.Errorf("NeedsCommand of a missing command: %q", why)
	}
	if why := NeedsCommand("snapshot", "save")(t); why != "" {
		t.Errorf("NeedsCommand of snapshot save: %q", why)
	}
	for _, bad := range []Scenario{{Name: "Bad Name", Summary: "x", Run: func(*Env) {}}, {Name: "kill-leader", Summary: "x", Run: func(*Env) {}}, {Name: "no-run", Summary: "x"}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", bad.Name)
				}
			}()
			Register(bad)
		}()
	}
}
