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
	"github.com/etcdkit/etcdkit/internal/etcdconf"
)

// AddOptions describes a member to add.
type AddOptions struct {
	Name     string
	PeerURLs []string
	// ClientURLs are checked against the other members' (a clash would
	// send clients to the wrong member); etcd itself learns them when the
	// member starts.
	ClientURLs []string
	// Voter adds a voting member at once instead of a learner. A voter
	// that has not started yet counts against the quorum at once.
	Voter bool
	// Backup, when set, takes a snapshot before the change.
	Backup Backup
	// Timeout bounds the retries of the RPC; default DefaultChangeTimeout.
	Timeout  time.Duration
	Progress func(msg string)
}

// AddResult is what Add did.
type AddResult struct {
	Member *Member `json:"member"`
	// Existing is set when the member was already there (same name or
	// not started yet, same peer URL): a re-run.
	Existing bool `json:"existing,omitempty"`
	// InitialCluster is the new member's initial-cluster value, from the
	// live member list.
	InitialCluster string   `json:"initialCluster"`
	Snapshot       string   `json:"snapshot,omitempty"`
	Members        []Member `json:"members"`
}

// Add adds a member, as a learner unless o.Voter. It refuses when the
// cluster has lost quorum, when etcd's own check would refuse for good
// (a quorum of the grown cluster must be connected), and when the name,
// a peer URL or a client URL belongs to another member. A member with the
// same peer URL that has the same name, or has not started, is reported
// as existing: re-running an add is safe.
func Add(ctx context.Context, t *connect.Target, o AddOptions) (*AddResult, error) {
	say := o.Progress
	if say == nil {
		say = func(string) {}
	}
	ms, err := ListMembers(ctx, t)
	if err != nil {
		return nil, err
	}
	existing, err := CheckAdd(ms, o)
	if err != nil {
		return nil, err
	}
	if existing != nil {
		return &AddResult{Member: existing, Existing: true, InitialCluster: InitialCluster(ms, existing, o.Name), Members: ms.Members}, nil
	}
	res := &AddResult{}
	if o.Backup != nil {
		say("taking a snapshot before the change")
		if res.Snapshot, err = o.Backup(ctx, "before member add "+o.Name); err != nil {
			return nil, fmt.Errorf("snapshot before adding member %q (nothing was changed): %w", o.Name, err)
		}
	}
	role := "learner"
	if o.Voter {
		role = "voting member"
	}
	say(fmt.Sprintf("adding member %q (%s) as a %s", o.Name, strings.Join(o.PeerURLs, ","), role))
	m, ms, err := AddMember(ctx, t, ms, o.PeerURLs, o.Voter, o.Timeout)
	if err != nil {
		return nil, fmt.Errorf("add member %q (%s): %w", o.Name, strings.Join(o.PeerURLs, ","), err)
	}
	res.Member, res.Members = m, ms.Members
	res.InitialCluster = InitialCluster(ms, m, o.Name)
	return res, nil
}

// CheckAdd says whether adding o to ms is safe; it returns the member
// when it is already there.
func CheckAdd(ms *Membership, o AddOptions) (*Member, error) {
	action := fmt.Sprintf("add member %q", o.Name)
	for _, u := range o.PeerURLs {
		if _, err := etcdconf.ParseURL(u); err != nil {
			return nil, fmt.Errorf("--peer-urls: %w", err)
		}
		e := ms.ByPeerURL(u)
		if e == nil {
			continue
		}
		if e.Name == o.Name || !e.Started {
			if !slices.Equal(e.PeerURLs, o.PeerURLs) {
				return nil, &Refusal{Action: action, Reason: fmt.Sprintf("%s already has peer URL %s, with other peer URLs than asked", e.Label(), u),
					Fix: fmt.Sprintf("change them with `etcdkit member update %s --peer-urls %s`", e.Ref(), strings.Join(o.PeerURLs, ","))}
			}
			return e, nil
		}
		return nil, &Refusal{Action: action, Reason: fmt.Sprintf("peer URL %s is already used by %s", u, e.Label()),
			Fix: fmt.Sprintf("choose another URL, or if %s is gone, replace it: `etcdkit member replace %s --name %s --peer-url %s --client-url URL`", e.Ref(), e.Ref(), o.Name, u)}
	}
	for _, u := range o.ClientURLs {
		if e := ms.ByClientURL(u); e != nil && e.Name != o.Name {
			return nil, &Refusal{Action: action, Reason: fmt.Sprintf("client URL %s is already used by %s", u, e.Label()),
				Fix: "choose another client URL"}
		}
	}
	if e := ms.ByName(o.Name); e != nil {
		return nil, &Refusal{Action: action, Reason: fmt.Sprintf("a member named %q already exists with peer URLs %s", o.Name, strings.Join(e.PeerURLs, ",")),
			Fix: fmt.Sprintf("to move it, `etcdkit member update %s --peer-urls URL`; to replace it, `etcdkit member replace %s --name NEW --peer-url URL --client-url URL`; or choose another name", o.Name, o.Name)}
	}
	if err := ms.checkQuorum(action); err != nil {
		return nil, err
	}
	// etcd accepts an add only when the member that receives it has been
	// connected for 5 s to a quorum of the cluster as it will be (the new
	// member counted, learner or not). With members down that may never
	// happen: say so now instead of retrying into a timeout. etcd always
	// lets a one-member cluster grow (isConnectedToQuorumAfterAdding...).
	voters, healthy := ms.votes(0)
	if voters > 1 && healthy < Quorum(voters+1) {
		down := ms.unhealthyVoters(0)
		return nil, &Refusal{
			Action: action,
			Reason: fmt.Sprintf("only %d of %d voting members are healthy (down: %s); etcd adds a member only when %d of the %d it will have are connected",
				healthy, voters, strings.Join(down, ", "), Quorum(voters+1), voters+1),
			Fix: fmt.Sprintf("bring %s back first, or replace a lost member (its removal comes first): `etcdkit member replace %s --name %s --peer-url %s --client-url URL`",
				strings.Join(down, " and "), down[0], o.Name, strings.Join(o.PeerURLs, ",")),
			Unhealthy: true,
		}
	}
	return nil, nil
}

// AddMember adds a member, without Add's checks, through the voting
// members of ms, and returns it with the member list after the change.
// Membership RPCs are not retried by clientv3: etcd's transient
// refusals are retried here, and a "peer URL exists" after a retry is an
// earlier attempt that went through.
func AddMember(ctx context.Context, t *connect.Target, ms *Membership, peerURLs []string, voter bool, limit time.Duration) (*Member, *Membership, error) {
	t = votersTarget(t, ms, 0)
	cli, err := t.Client()
	if err != nil {
		return nil, nil, err
	}
	defer cli.Close()
	err = retry(ctx, limit, func() error {
		cctx, cancel := t.Ctx(ctx)
		defer cancel()
		add := cli.MemberAddAsLearner
		if voter {
			add = cli.MemberAdd
		}
		_, err := add(cctx, peerURLs)
		return err
	})
	if err != nil && !errors.Is(err, rpctypes.ErrPeerURLExist) {
		return nil, nil, explainChange(err)
	}
	err = retry(ctx, limit, func() error {
		var err error
		if ms, err = MemberList(ctx, t); err == nil && ms.LocalView {
			return rpctypes.ErrNoLeader
		}
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("the add was sent; reading the member list back: %w", err)
	}
	m := ms.ByPeerURL(peerURLs[0])
	if m == nil {
		return nil, nil, fmt.Errorf("the add was accepted, but no member has peer URL %s", peerURLs[0])
	}
	return m, ms, nil
}

// InitialCluster is a joining member's initial-cluster: every member's
// name and peer URLs, the new member under its new name. A member that
// has not started has no name yet; etcd matches peers by URL, so its ID
// stands in.
func InitialCluster(ms *Membership, joining *Member, name string) string {
	var parts []string
	for _, m := range ms.Members {
		n := m.Name
		switch {
		case m.id == joining.id:
			n = name
		case n == "":
			n = m.ID
		}
		for _, u := range m.PeerURLs {
			parts = append(parts, n+"="+u)
		}
	}
	return strings.Join(parts, ",")
}
