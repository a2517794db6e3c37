package ops

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/etcdkit/etcdkit/internal/connect"
	"github.com/etcdkit/etcdkit/internal/etcdconf"
)

// UpdateOptions are a member's new peer URLs.
type UpdateOptions struct {
	PeerURLs []string
	// Backup, when set, takes a snapshot before the change.
	Backup   Backup
	Timeout  time.Duration
	Progress func(msg string)
}

// UpdateResult is what Update did.
type UpdateResult struct {
	Member *Member `json:"member"`
	// Unchanged is set when the member had those peer URLs already.
	Unchanged bool     `json:"unchanged,omitempty"`
	Snapshot  string   `json:"snapshot,omitempty"`
	Members   []Member `json:"members,omitempty"`
}

// Update changes a member's advertised peer URLs. The member itself must
// then listen on them (listen-peer-urls) and its peer certificate must
// name their hosts; the other members dial the new URLs at once.
func Update(ctx context.Context, t *connect.Target, ref string, o UpdateOptions) (*UpdateResult, error) {
	say := o.Progress
	if say == nil {
		say = func(string) {}
	}
	for _, u := range o.PeerURLs {
		if _, err := etcdconf.ParseURL(u); err != nil {
			return nil, fmt.Errorf("--peer-urls: %w", err)
		}
	}
	ms, err := ListMembers(ctx, t)
	if err != nil {
		return nil, err
	}
	m := ms.Find(ref)
	if m == nil {
		return nil, ms.NotFound(ref)
	}
	if sameSet(m.PeerURLs, o.PeerURLs) {
		return &UpdateResult{Member: m, Unchanged: true, Members: ms.Members}, nil
	}
	action := fmt.Sprintf("update %s", m.Label())
	for _, u := range o.PeerURLs {
		if e := ms.ByPeerURL(u); e != nil && e.id != m.id {
			return nil, &Refusal{Action: action, Reason: fmt.Sprintf("peer URL %s is already used by %s", u, e.Label()), Fix: "choose another URL"}
		}
	}
	if err := ms.checkQuorum(action); err != nil {
		return nil, err
	}
	res := &UpdateResult{Member: m}
	if o.Backup != nil {
		say("taking a snapshot before the change")
		if res.Snapshot, err = o.Backup(ctx, "before member update "+m.Ref()); err != nil {
			return nil, fmt.Errorf("snapshot before updating %s (nothing was changed): %w", m.Label(), err)
		}
	}
	say(fmt.Sprintf("setting the peer URLs of %s to %s", m.Label(), strings.Join(o.PeerURLs, ",")))
	vt := votersTarget(t, ms, 0)
	cli, err := vt.Client()
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	err = retry(ctx, o.Timeout, func() error {
		cctx, cancel := t.Ctx(ctx)
		defer cancel()
		_, err := cli.MemberUpdate(cctx, m.id, o.PeerURLs)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", action, explainChange(err))
	}
	if after, err := MemberList(ctx, vt); err == nil {
		res.Members = after.Members
		res.Member = after.Find(m.ID)
	}
	return res, nil
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
