package ops

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdkit/etcdkit/internal/connect"
)

// Member is one member of a cluster as the member list and the member
// itself describe it.
type Member struct {
	// ID is the member ID in hex, as etcdctl prints it.
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs"`
	Learner    bool     `json:"learner"`
	// Started is false for a member that was added but has never run: it
	// has no name and no client URLs yet.
	Started bool `json:"started"`
	// Healthy is Health's verdict on the member's first client URL.
	Healthy bool `json:"healthy"`
	Leader  bool `json:"leader"`
	// RaftIndex and AppliedIndex are what the member reports in Status.
	RaftIndex    uint64 `json:"raftIndex"`
	AppliedIndex uint64 `json:"raftAppliedIndex"`
	// Lag is how many entries the member has applied fewer than the
	// leader.
	Lag   uint64 `json:"lag"`
	Error string `json:"error,omitempty"`

	id uint64
}

// Membership is a cluster's member list with each member's health.
type Membership struct {
	ClusterID string `json:"clusterID"`
	// Leader is the leader's ID, empty when no member knows one.
	Leader string `json:"leader,omitempty"`
	// LocalView is set when no quorum answered the member list and it
	// came from one member's own copy (a serializable read).
	LocalView bool     `json:"localView,omitempty"`
	Members   []Member `json:"members"`
}

// Label names a member in messages: `member "m1" (https://...:2380)`, or
// its ID for one that never started.
func (m *Member) Label() string {
	url := strings.Join(m.PeerURLs, ",")
	if m.Name != "" {
		return fmt.Sprintf("member %q (%s)", m.Name, url)
	}
	return fmt.Sprintf("unstarted member %s (%s)", m.ID, url)
}

// Ref is what a command line names the member by: its name, or its ID
// when it has none yet.
func (m *Member) Ref() string {
	if m.Name != "" {
		return m.Name
	}
	return m.ID
}

// RawID is the numeric member ID the membership RPCs take.
func (m *Member) RawID() uint64 { return m.id }

// ListMembers asks the cluster for its members and probes each started
// one for status and health, all at once.
func ListMembers(ctx context.Context, t *connect.Target) (*Membership, error) {
	ms, err := MemberList(ctx, t)
	if err != nil {
		return nil, err
	}
	ms.probe(ctx, t)
	return ms, nil
}

// MemberList reads the member list only, without probing the members:
// linearizably when a quorum
// answers, else from any member's own view so a cluster that lost quorum
// can still be inspected.
func MemberList(ctx context.Context, t *connect.Target) (*Membership, error) {
	cli, err := t.Client()
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	// A member that has lost its leader answers "no leader" at once to a
	// request that requires one, instead of waiting out the timeout.
	cctx, cancel := t.Ctx(ctx)
	resp, err := cli.MemberList(clientv3.WithRequireLeader(cctx))
	cancel()
	local := false
	if err != nil {
		lerr := err
		cctx, cancel := t.Ctx(ctx)
		resp, err = cli.MemberList(cctx, clientv3.WithSerializable())
		cancel()
		if err != nil {
			return nil, fmt.Errorf("list members through %v: %w", t.Endpoints, explain(lerr))
		}
		local = true
	}
	ms := &Membership{ClusterID: fmt.Sprintf("%x", resp.Header.ClusterId), LocalView: local}
	for _, m := range resp.Members {
		ms.Members = append(ms.Members, Member{
			ID: fmt.Sprintf("%x", m.ID), id: m.ID, Name: m.Name,
			PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs,
			Learner: m.IsLearner, Started: m.Name != "",
		})
	}
	// Started members by name, then unstarted ones, so listings are stable.
	slices.SortStableFunc(ms.Members, func(a, b Member) int {
		if c := cmp.Compare(boolInt(!a.Started), boolInt(!b.Started)); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return ms, nil
}

// probe fills status and health of every started member.
func (ms *Membership) probe(ctx context.Context, t *connect.Target) {
	type result struct {
		st EndpointStatus
		h  EndpointHealth
	}
	var eps []string
	for _, m := range ms.Members {
		if len(m.ClientURLs) > 0 {
			eps = append(eps, m.ClientURLs[0])
		}
	}
	res := forEach(eps, func(ep string) result {
		return result{st: endpointStatus(ctx, t, ep), h: endpointHealth(ctx, t, ep)}
	})
	byEP := map[string]result{}
	leaders := map[string]int{}
	for i, ep := range eps {
		byEP[ep] = res[i]
		if l := res[i].st.Leader; l != "" && res[i].st.Error == "" {
			leaders[l]++
		}
	}
	// The leader most members agree on; a partitioned member may still
	// believe in an old one.
	for id, n := range leaders {
		if ms.Leader == "" || n > leaders[ms.Leader] {
			ms.Leader = id
		}
	}
	var leaderApplied uint64
	for i := range ms.Members {
		m := &ms.Members[i]
		if !m.Started {
			m.Error = "not started"
			continue
		}
		if len(m.ClientURLs) == 0 {
			m.Error = "no client URLs"
			continue
		}
		r := byEP[m.ClientURLs[0]]
		m.Healthy = r.h.Healthy
		m.Error = r.h.Error
		if r.st.Error == "" {
			m.RaftIndex, m.AppliedIndex = r.st.RaftIndex, r.st.RaftAppliedIndex
		}
		m.Leader = m.ID == ms.Leader
		if m.Leader {
			leaderApplied = m.AppliedIndex
		}
	}
	for i := range ms.Members {
		m := &ms.Members[i]
		if m.Healthy && leaderApplied > m.AppliedIndex {
			m.Lag = leaderApplied - m.AppliedIndex
		}
	}
}

// Find resolves a member by name, hex ID or peer URL.
func (ms *Membership) Find(ref string) *Member {
	if m := ms.ByName(ref); m != nil {
		return m
	}
	if id, err := strconv.ParseUint(ref, 16, 64); err == nil {
		for i := range ms.Members {
			if mid, err := strconv.ParseUint(ms.Members[i].ID, 16, 64); err == nil && mid == id {
				return &ms.Members[i]
			}
		}
	}
	return ms.ByPeerURL(ref)
}

// ByName is the started member of that name.
func (ms *Membership) ByName(name string) *Member {
	for i := range ms.Members {
		if name != "" && ms.Members[i].Name == name {
			return &ms.Members[i]
		}
	}
	return nil
}

// ByPeerURL is the member that has this peer URL.
func (ms *Membership) ByPeerURL(u string) *Member {
	for i := range ms.Members {
		if slices.Contains(ms.Members[i].PeerURLs, u) {
			return &ms.Members[i]
		}
	}
	return nil
}

// ByClientURL is the member that has this client URL.
func (ms *Membership) ByClientURL(u string) *Member {
	for i := range ms.Members {
		if slices.Contains(ms.Members[i].ClientURLs, u) {
			return &ms.Members[i]
		}
	}
	return nil
}

// LeaderMember is the current leader, or nil.
func (ms *Membership) LeaderMember() *Member {
	for i := range ms.Members {
		if ms.Members[i].Leader {
			return &ms.Members[i]
		}
	}
	return nil
}

// NotFound is the error for a reference that names no member; it lists
// what there is, unstarted members with their IDs (they have no name).
func (ms *Membership) NotFound(ref string) error {
	var have []string
	for _, m := range ms.Members {
		if m.Started {
			have = append(have, m.Name)
		} else {
			have = append(have, fmt.Sprintf("unstarted %s (%s)", m.ID, strings.Join(m.PeerURLs, ",")))
		}
	}
	return fmt.Errorf("%w: no member named %q (by name, ID or peer URL); the members are: %s",
		ErrMemberNotFound, ref, strings.Join(have, ", "))
}

// ErrMemberNotFound is wrapped by NotFound.
var ErrMemberNotFound = errors.New("member not found")

// ClientURLs is every member's client URLs, the value of kube-apiserver's
// --etcd-servers.
func (ms *Membership) ClientURLs() []string {
	var out []string
	for _, m := range ms.Members {
		out = append(out, m.ClientURLs...)
	}
	return out
}

// Quorum is the number of votes a cluster of n voting members needs.
func Quorum(n int) int { return n/2 + 1 }

// votes counts voting members and healthy voting members, leaving out
// the member with the given ID (0 leaves out none).
func (ms *Membership) votes(except uint64) (voters, healthy int) {
	for _, m := range ms.Members {
		if m.Learner || m.id == except {
			continue
		}
		voters++
		if m.Healthy {
			healthy++
		}
	}
	return voters, healthy
}

// unhealthyVoters names the voting members that failed their check.
func (ms *Membership) unhealthyVoters(except uint64) []string {
	var out []string
	for _, m := range ms.Members {
		if !m.Learner && !m.Healthy && m.id != except {
			out = append(out, m.Ref())
		}
	}
	return out
}

// checkQuorum refuses a change to a cluster that has lost its quorum.
func (ms *Membership) checkQuorum(action string) error {
	voters, healthy := ms.votes(0)
	if healthy >= Quorum(voters) {
		return nil
	}
	return &Refusal{
		Action:    action,
		Reason:    fmt.Sprintf("the cluster has lost quorum: %d of %d voting members are healthy (not healthy: %s) and %d are needed", healthy, voters, strings.Join(ms.unhealthyVoters(0), ", "), Quorum(voters)),
		Fix:       "a cluster without quorum accepts no membership change; start the failed members again, or if they are gone for good, recover from a survivor with `etcdkit cluster recover`",
		Unhealthy: true,
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
