package ops

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdkit/etcdkit/internal/connect"
)

// Alarm names as etcd spells them.
const (
	AlarmNoSpace = "NOSPACE"
	AlarmCorrupt = "CORRUPT"
)

// Alarm is one raised alarm. Alarms are cluster-wide: a NOSPACE raised by
// one member makes every member refuse writes.
type Alarm struct {
	MemberID string `json:"memberID"`
	Member   string `json:"member,omitempty"`
	Alarm    string `json:"alarm"`
}

func (a Alarm) who() string {
	if a.Member != "" {
		return fmt.Sprintf("member %q (%s)", a.Member, a.MemberID)
	}
	return "member " + a.MemberID
}

// Nudge commits one harmless raft entry through t: etcd serves an alarm
// list through raft. A member that joined from the leader's snapshot has
// every proposal refused as "too many requests" until it applies an entry
// newer than that snapshot (etcd 3.7 does not count the snapshot as applied
// when it limits proposals, in processInternalRaftRequestOnce), and its
// first proposal publishes its name: in a cluster nobody writes to, it
// would never start. Waits for a new member nudge each time they poll.
func Nudge(ctx context.Context, t *connect.Target) { _, _ = Alarms(ctx, t) }

// Alarms lists the raised alarms, each with the name of the member that
// raised it.
func Alarms(ctx context.Context, t *connect.Target) ([]Alarm, error) {
	cli, err := t.Client()
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	return alarms(ctx, t, cli)
}

func alarms(ctx context.Context, t *connect.Target, cli *clientv3.Client) ([]Alarm, error) {
	cctx, cancel := t.Ctx(ctx)
	defer cancel()
	resp, err := cli.AlarmList(cctx)
	if err != nil {
		return nil, fmt.Errorf("list alarms through %v: %w", t.Endpoints, explain(err))
	}
	names := map[uint64]string{}
	if ml, err := cli.MemberList(cctx); err == nil {
		for _, m := range ml.Members {
			names[m.ID] = m.Name
		}
	}
	out := []Alarm{}
	for _, a := range resp.Alarms {
		if a.Alarm == pb.AlarmType_NONE {
			continue
		}
		out = append(out, Alarm{MemberID: fmt.Sprintf("%x", a.MemberID), Member: names[a.MemberID], Alarm: a.Alarm.String()})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Alarm != out[j].Alarm {
			return out[i].Alarm < out[j].Alarm
		}
		return out[i].MemberID < out[j].MemberID
	})
	return out, nil
}

// DisarmOptions tunes Disarm.
type DisarmOptions struct {
	// Force disarms CORRUPT alarms too, and NOSPACE alarms while a
	// member's database is still at its quota.
	Force bool
}

// ErrDisarmRefused is wrapped by Disarm's refusals.
var ErrDisarmRefused = errors.New("refusing to disarm")

// Disarm clears raised alarms. A NOSPACE alarm is cleared only when every
// member's database is below its quota again: otherwise the next write
// raises it at once, and the operator believes the cluster recovered when
// it has not. A CORRUPT alarm means a member's data differs from the
// others'; it is cleared only with Force, as the member must be replaced.
// It returns the alarms it cleared.
func Disarm(ctx context.Context, t *connect.Target, o DisarmOptions) ([]Alarm, error) {
	cli, err := t.Client()
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	raised, err := alarms(ctx, t, cli)
	if err != nil {
		return nil, err
	}
	if len(raised) == 0 {
		return raised, nil
	}
	if !o.Force {
		var problems []error
		for _, a := range raised {
			if a.Alarm == AlarmCorrupt {
				problems = append(problems, fmt.Errorf("%s raised CORRUPT: its data differs from the other members'; replace it (etcdkit member replace %s) rather than clear the alarm, or pass --force", a.who(), nameOr(a.Member, "NAME")))
			}
		}
		if hasAlarm(raised, AlarmNoSpace) {
			problems = append(problems, overQuota(ctx, t, cli)...)
		}
		if len(problems) > 0 {
			return nil, fmt.Errorf("%w: %w", ErrDisarmRefused, errors.Join(problems...))
		}
	}
	var cleared []Alarm
	for _, a := range raised {
		var id uint64
		if _, err := fmt.Sscanf(a.MemberID, "%x", &id); err != nil {
			return cleared, fmt.Errorf("alarm of %s: %w", a.who(), err)
		}
		cctx, cancel := t.Ctx(ctx)
		_, err := cli.AlarmDisarm(cctx, &clientv3.AlarmMember{MemberID: id, Alarm: pb.AlarmType(pb.AlarmType_value[a.Alarm])})
		cancel()
		if err != nil {
			return cleared, fmt.Errorf("disarm %s of %s: %w", a.Alarm, a.who(), explain(err))
		}
		cleared = append(cleared, a)
	}
	return cleared, nil
}

// quotaHeadroom is how far below its quota a database still counts as
// full: etcd raises NOSPACE when the database's size plus the cost of the
// next request would pass the quota, so a member can stop writes while its
// database is a request or two short of it. 5% of the quota, at least
// 1 MiB.
func quotaHeadroom(quota int64) int64 {
	return max(quota/20, 1<<20)
}

// overQuota names every member whose database is still at (or within
// quotaHeadroom of) its quota, and every member it could not ask.
func overQuota(ctx context.Context, t *connect.Target, cli *clientv3.Client) []error {
	cctx, cancel := t.Ctx(ctx)
	defer cancel()
	ml, err := cli.MemberList(cctx)
	if err != nil {
		return []error{fmt.Errorf("cannot list members to check their database sizes: %w", explain(err))}
	}
	var problems []error
	for _, m := range ml.Members {
		if len(m.ClientURLs) == 0 {
			continue
		}
		ep := m.ClientURLs[0]
		st, err := cli.Status(cctx, ep)
		if err != nil {
			problems = append(problems, fmt.Errorf("member %q (%s): cannot read its database size: %w; pass --force to disarm without checking", m.Name, ep, explain(err)))
			continue
		}
		if st.DbSizeQuota > 0 && st.DbSize >= st.DbSizeQuota-quotaHeadroom(st.DbSizeQuota) {
			problems = append(problems, fmt.Errorf("member %q (%s): its database is %d bytes, at its quota of %d: clearing NOSPACE now is undone by the next write; compact (etcdctl compact REVISION) and defragment (etcdkit defrag --cluster) first", m.Name, ep, st.DbSize, st.DbSizeQuota))
		}
	}
	return problems
}

func hasAlarm(as []Alarm, name string) bool {
	for _, a := range as {
		if a.Alarm == name {
			return true
		}
	}
	return false
}

func nameOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// describeAlarms is "NOSPACE on member "m1" (8e9e05c52164694d)", ...
func describeAlarms(as []Alarm) string {
	var parts []string
	for _, a := range as {
		parts = append(parts, a.Alarm+" on "+a.who())
	}
	return strings.Join(parts, ", ")
}
