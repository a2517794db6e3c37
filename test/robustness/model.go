package robustness

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"
)

// Model sizes. States are fixed-size arrays so they compare with == and
// hash cheaply: porcupine compares states constantly.
const (
	// NumKeys is how many keys the traffic reads and writes.
	NumKeys = 8
	// MaxLeases bounds the leases alive at once: one per client, plus one
	// whose revocation is in doubt.
	MaxLeases = 32
)

// errLeaseNotFound is how the model and the recorder spell etcd's answer
// to a revoke of a lease that does not exist.
const errLeaseNotFound = "lease not found"

type keyState struct {
	Value string
	Mod   int64 // 0: the key does not exist
	Lease int64
}

// State is the model's view of etcd: the revision, every modeled key with
// its value, mod revision and lease, and the live leases. It is what etcd
// guarantees and no more: revisions grow by one per write that changes
// something, reads see the latest write, a txn compares mod revisions, a
// revoked lease takes its keys with it.
type State struct {
	Rev    int64
	Keys   [NumKeys]keyState
	Leases [MaxLeases]int64 // sorted, zeros last
}

func (s State) hasLease(id int64) bool {
	for _, l := range s.Leases {
		if l == id {
			return id != 0
		}
		if l == 0 {
			return false
		}
	}
	return false
}

func (s State) withLease(id int64) (State, bool) {
	if s.hasLease(id) {
		return s, true
	}
	ls := make([]int64, 0, MaxLeases)
	for _, l := range s.Leases {
		if l != 0 {
			ls = append(ls, l)
		}
	}
	if len(ls) == MaxLeases {
		return s, false
	}
	ls = append(ls, id)
	slices.Sort(ls)
	s.Leases = [MaxLeases]int64{}
	copy(s.Leases[:], ls)
	return s, true
}

func (s State) withoutLease(id int64) State {
	ls := make([]int64, 0, MaxLeases)
	for _, l := range s.Leases {
		if l != 0 && l != id {
			ls = append(ls, l)
		}
	}
	s.Leases = [MaxLeases]int64{}
	copy(s.Leases[:], ls)
	return s
}

func (s State) kvs(keys ...int) []KV {
	var out []KV
	for _, k := range keys {
		if ks := s.Keys[k]; ks.Mod != 0 {
			out = append(out, KV{Key: k, Value: ks.Value, Mod: ks.Mod, Lease: ks.Lease})
		}
	}
	return out
}

// apply is etcd's behaviour: the state after req and what etcd answers.
func (s State) apply(req Request) (State, Response) {
	ok := Response{Status: StatusOK}
	switch req.Kind {
	case KindGet:
		ok.Rev, ok.KVs = s.Rev, s.kvs(req.Key)
	case KindRange:
		all := make([]int, NumKeys)
		for i := range all {
			all[i] = i
		}
		ok.Rev, ok.KVs = s.Rev, s.kvs(all...)
	case KindPut:
		if req.Lease != 0 && !s.hasLease(req.Lease) {
			return s, Response{Status: StatusFailed, Err: errLeaseNotFound}
		}
		s.Rev++
		s.Keys[req.Key] = keyState{Value: req.Value, Mod: s.Rev, Lease: req.Lease}
		ok.Rev = s.Rev
	case KindDelete:
		if s.Keys[req.Key].Mod != 0 {
			s.Rev++
			s.Keys[req.Key] = keyState{}
			ok.Deleted = 1
		}
		ok.Rev = s.Rev
	case KindTxn:
		if s.Keys[req.Key].Mod == req.Expect {
			s.Rev++
			s.Keys[req.Key] = keyState{Value: req.Value, Mod: s.Rev}
			ok.Succeeded = true
		} else {
			ok.KVs = s.kvs(req.Key)
		}
		ok.Rev = s.Rev
	case KindLeaseGrant:
		next, fits := s.withLease(req.Lease)
		if !fits {
			// More live leases than the model holds: no state can
			// explain the history, and the report says why.
			return s, Response{Status: StatusFailed, Err: "model: too many live leases"}
		}
		s = next
		ok.Rev = s.Rev
	case KindLeaseRevoke:
		if !s.hasLease(req.Lease) {
			return s, Response{Status: StatusFailed, Err: errLeaseNotFound}
		}
		deleted := false
		for i := range s.Keys {
			if s.Keys[i].Mod != 0 && s.Keys[i].Lease == req.Lease {
				s.Keys[i] = keyState{}
				deleted = true
			}
		}
		if deleted {
			s.Rev++
		}
		s = s.withoutLease(req.Lease)
		ok.Rev = s.Rev
	case KindOpaque:
		s.Rev++
		ok.Rev = s.Rev
	default:
		panic(fmt.Sprintf("model: request kind %v is not modeled", req.Kind))
	}
	return s, ok
}

// matches compares what the model expects with what etcd answered.
func matches(want, got Response) bool {
	if want.Status != got.Status || want.Err != got.Err {
		return false
	}
	if want.Status != StatusOK {
		return true
	}
	return want.Rev == got.Rev && want.Succeeded == got.Succeeded && want.Deleted == got.Deleted &&
		slices.Equal(want.KVs, got.KVs)
}

// step is the non-deterministic step: an answered request must match, an
// unknown one may or may not have happened.
func step(s State, req Request, resp Response) []State {
	next, want := s.apply(req)
	if resp.Status == StatusUnknown {
		if next == s {
			return []State{s}
		}
		return []State{s, next}
	}
	if matches(want, resp) {
		return []State{next}
	}
	return nil
}

func hashState(s State) uint64 {
	h := fnv.New64a()
	fmt.Fprint(h, s.Rev)
	for _, k := range s.Keys {
		fmt.Fprint(h, "|", k.Value, ",", k.Mod, ",", k.Lease)
	}
	for _, l := range s.Leases {
		if l == 0 {
			break
		}
		fmt.Fprint(h, ";", l)
	}
	return h.Sum64()
}

// NewModel is the porcupine model of etcd's KV API starting from init.
func NewModel(init State) porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Init: func() []any { return []any{init} },
		Step: func(state, input, output any) []any {
			var out []any
			for _, s := range step(state.(State), input.(Request), output.(Response)) {
				out = append(out, s)
			}
			return out
		},
		Equal: func(a, b any) bool { return a.(State) == b.(State) },
		Hash:  func(s any) uint64 { return hashState(s.(State)) },
		DescribeOperation: func(input, output any) string {
			return describeRequest(input.(Request)) + " -> " + describeResponse(input.(Request), output.(Response))
		},
		DescribeState: func(state any) string { return describeState(state.(State)) },
	}
	return nm.ToModel()
}

func describeRequest(r Request) string {
	switch r.Kind {
	case KindGet:
		return fmt.Sprintf("get(k%d)", r.Key)
	case KindRange:
		return "range(k*)"
	case KindPut:
		if r.Lease != 0 {
			return fmt.Sprintf("put(k%d, %q, lease %x)", r.Key, r.Value, r.Lease)
		}
		return fmt.Sprintf("put(k%d, %q)", r.Key, r.Value)
	case KindDelete:
		return fmt.Sprintf("delete(k%d)", r.Key)
	case KindTxn:
		return fmt.Sprintf("if mod(k%d)==%d then put(k%d, %q) else get(k%d)", r.Key, r.Expect, r.Key, r.Value, r.Key)
	case KindLeaseGrant:
		return fmt.Sprintf("grant() = %x", r.Lease)
	case KindLeaseRevoke:
		return fmt.Sprintf("revoke(%x)", r.Lease)
	case KindKeepAlive:
		return fmt.Sprintf("keepalive(%x)", r.Lease)
	case KindOpaque:
		if r.Delete {
			return fmt.Sprintf("delete(%s)", r.Name)
		}
		return fmt.Sprintf("put(%s)", r.Name)
	}
	return fmt.Sprintf("kind %d", r.Kind)
}

func describeResponse(req Request, r Response) string {
	switch r.Status {
	case StatusUnknown:
		return "unknown (" + r.Err + ")"
	case StatusFailed:
		return "failed (" + r.Err + ")"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "rev %d", r.Rev)
	switch req.Kind {
	case KindGet, KindRange, KindTxn:
		if req.Kind == KindTxn {
			fmt.Fprintf(&b, " succeeded=%v", r.Succeeded)
			if r.Succeeded {
				break
			}
		}
		var kvs []string
		for _, kv := range r.KVs {
			kvs = append(kvs, fmt.Sprintf("k%d=%q@%d", kv.Key, kv.Value, kv.Mod))
		}
		fmt.Fprintf(&b, " [%s]", strings.Join(kvs, " "))
	case KindDelete:
		fmt.Fprintf(&b, " deleted=%d", r.Deleted)
	}
	return b.String()
}

func describeState(s State) string {
	var kvs []string
	for i, k := range s.Keys {
		if k.Mod != 0 {
			kvs = append(kvs, fmt.Sprintf("k%d=%q@%d", i, k.Value, k.Mod))
		}
	}
	var ls []string
	for _, l := range s.Leases {
		if l != 0 {
			ls = append(ls, fmt.Sprintf("%x", l))
		}
	}
	return fmt.Sprintf("rev %d {%s} leases [%s]", s.Rev, strings.Join(kvs, " "), strings.Join(ls, " "))
}
