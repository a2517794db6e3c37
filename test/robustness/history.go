// Package robustness is etcdkit's fault-injection suite, in the spirit of
// etcd's own robustness tests: clients drive a real cluster of `etcdkit
// member run` processes while a scenario injects a fault or runs an
// etcdkit operation; every request is recorded with its invocation and
// return times and result, and the history is then checked for
// linearizability (porcupine, against a revision-aware model of etcd's KV
// API), for lost acknowledged writes, and against watch streams that must
// see every revision once, in order, with no gaps.
//
// Scenarios are small files that call Register; see scenario.go and
// docs/reliability.md for how to add one.
package robustness

import (
	"fmt"
	"hash/fnv"
	"sync"
	"time"
)

// Key layout. Everything a scenario writes lives under Prefix, so a watch on
// it sees every revision of the cluster: a gap in the watch is a lost
// revision, not a write elsewhere.
const (
	Prefix       = "rb/"
	keyPrefix    = Prefix + "k/"
	ledgerPrefix = Prefix + "ledger/"
	fillPrefix   = Prefix + "fill/"
)

// Kind is what a recorded request does.
type Kind uint8

const (
	// KindGet is a linearizable read of one modeled key.
	KindGet Kind = iota + 1
	// KindRange is a linearizable read of every modeled key.
	KindRange
	// KindPut writes a modeled key, with a lease or without.
	KindPut
	// KindDelete deletes a modeled key.
	KindDelete
	// KindTxn is "if mod_revision(key) == Expect then put else get".
	KindTxn
	KindLeaseGrant
	KindLeaseRevoke
	// KindKeepAlive renews a lease once. Not checked for linearizability:
	// etcd's FastLeaseKeepAlive renews a lease the leader still holds even
	// if a follower already applied its revocation; a lease that is not
	// found while never revoked is a lost write, checked separately.
	KindKeepAlive
	// KindOpaque is a put or delete of one key outside the modeled ones
	// (the ledger, NOSPACE fill): it moves the revision on by one.
	KindOpaque
)

var kindNames = map[Kind]string{
	KindGet: "get", KindRange: "range", KindPut: "put", KindDelete: "delete", KindTxn: "txn",
	KindLeaseGrant: "lease-grant", KindLeaseRevoke: "lease-revoke", KindKeepAlive: "keepalive", KindOpaque: "write",
}

func (k Kind) String() string { return kindNames[k] }

// writes reports whether a request of this kind can change the keyspace.
func (k Kind) writes() bool {
	switch k {
	case KindPut, KindDelete, KindTxn, KindLeaseRevoke, KindOpaque:
		return true
	}
	return false
}

// Request is what a client asked.
type Request struct {
	Kind Kind `json:"kind"`
	// Key is the modeled key's index, -1 for none.
	Key int `json:"key"`
	// Name is the etcd key of an opaque write.
	Name string `json:"name,omitempty"`
	// Value identifies a put's value (see valueID); unique in a history.
	Value string `json:"value,omitempty"`
	// Lease is the lease of a put, revoke or keepalive, and the lease a
	// successful grant returned.
	Lease int64 `json:"lease,omitempty"`
	// Delete marks an opaque write as a delete.
	Delete bool `json:"delete,omitempty"`
	// Expect is a txn's compared mod revision (0: the key is absent).
	Expect int64 `json:"expect,omitempty"`
}

// Status is how a request ended, as the client saw it.
type Status uint8

const (
	// StatusOK: etcd answered.
	StatusOK Status = iota + 1
	// StatusFailed: etcd refused, and nothing was applied (lease not
	// found).
	StatusFailed
	// StatusUnknown: an error or a timeout; the request may or may not
	// have been applied, now or later.
	StatusUnknown
)

func (s Status) String() string {
	return map[Status]string{StatusOK: "ok", StatusFailed: "failed", StatusUnknown: "unknown"}[s]
}

// KV is a modeled key as a read returned it.
type KV struct {
	Key   int    `json:"key"`
	Value string `json:"value"`
	Mod   int64  `json:"mod"`
	Lease int64  `json:"lease,omitempty"`
}

// Response is what etcd answered.
type Response struct {
	Status Status `json:"status"`
	Err    string `json:"err,omitempty"`
	// Rev is the response header's revision: for a write the revision it
	// created (or the current one when it changed nothing), for a read the
	// revision it read at.
	Rev       int64 `json:"rev,omitempty"`
	KVs       []KV  `json:"kvs,omitempty"`
	Succeeded bool  `json:"succeeded,omitempty"`
	Deleted   int64 `json:"deleted,omitempty"`
}

// Op is one recorded request.
type Op struct {
	Client int      `json:"client"`
	Req    Request  `json:"req"`
	Resp   Response `json:"resp"`
	// Call and Return are when the request was sent and answered, since
	// the phase began. An unknown outcome may take effect at any time
	// after Call; the checker treats its Return as the end of time.
	Call   time.Duration `json:"call"`
	Return time.Duration `json:"return"`
	// Resolved says how an unknown outcome was settled ("watch": the
	// value showed up at a revision; "not applied": it never did).
	Resolved string `json:"resolved,omitempty"`
}

func (o Op) String() string {
	return fmt.Sprintf("client %d %s -> %s [%v, %v]", o.Client, describeRequest(o.Req), describeResponse(o.Req, o.Resp), o.Call, o.Return)
}

// Recorder collects the operations of one phase. It is safe for
// concurrent use.
type Recorder struct {
	Start time.Time
	mu    sync.Mutex
	ops   []Op
}

// NewRecorder starts a history now.
func NewRecorder() *Recorder { return &Recorder{Start: time.Now()} }

// Now is the time since the history began (monotonic).
func (r *Recorder) Now() time.Duration { return time.Since(r.Start) }

// Record appends an operation.
func (r *Recorder) Record(op Op) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// Ops returns a copy of the history so far.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Op(nil), r.ops...)
}

// valueID is how a value is kept in a history: itself when short, a hash
// when long (NOSPACE fill values are hundreds of kilobytes).
func valueID(v []byte) string {
	if len(v) <= 64 {
		return string(v)
	}
	h := fnv.New64a()
	h.Write(v)
	return fmt.Sprintf("#%016x/%d", h.Sum64(), len(v))
}

// keyName is the etcd key of modeled key i.
func keyName(i int) string { return fmt.Sprintf("%s%d", keyPrefix, i) }

// keyIndex is the modeled key index of an etcd key, or -1.
func keyIndex(k string) int {
	var i int
	if _, err := fmt.Sscanf(k, keyPrefix+"%d", &i); err != nil || keyName(i) != k || i < 0 || i >= NumKeys {
		return -1
	}
	return i
}
