package ops

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdkit/etcdkit/internal/connect"
)

// EndpointHealth is the health of one endpoint.
type EndpointHealth struct {
	Endpoint string        `json:"endpoint"`
	Name     string        `json:"name,omitempty"`
	Healthy  bool          `json:"healthy"`
	Learner  bool          `json:"learner,omitempty"`
	Took     time.Duration `json:"took"`
	Error    string        `json:"error,omitempty"`
	// id names the member once the member list is in.
	id uint64
}

// Health checks every endpoint of the target the way `etcdctl endpoint
// health` does: a linearizable read must succeed (it needs a leader and a
// quorum) and no alarm may be raised. A learner cannot serve linearizable
// reads, so it is healthy when it answers Status without errors. Members
// are named from one member list, asked alongside the checks, so a check
// costs what etcdctl's costs: one read and one alarm list per endpoint.
func Health(ctx context.Context, t *connect.Target) []EndpointHealth {
	names := make(chan map[uint64]string, 1)
	go func() { names <- memberNames(ctx, t) }()
	hs := forEach(t.Endpoints, func(ep string) EndpointHealth {
		return endpointHealth(ctx, t, ep)
	})
	byID := <-names
	for i := range hs {
		hs[i].Name = byID[hs[i].id]
	}
	return hs
}

// memberNames maps member IDs to names through any endpoint that answers;
// an empty map when none does (the checks say why).
func memberNames(ctx context.Context, t *connect.Target) map[uint64]string {
	out := map[uint64]string{}
	cli, err := t.Client()
	if err != nil {
		return out
	}
	defer cli.Close()
	cctx, cancel := t.Ctx(ctx)
	defer cancel()
	ml, err := cli.MemberList(cctx, clientv3.WithSerializable())
	if err != nil {
		return out
	}
	for _, m := range ml.Members {
		out[m.ID] = m.Name
	}
	return out
}

// Unhealthy joins the failures of a health result, each prefixed with its
// endpoint, or returns nil when all are healthy.
func Unhealthy(hs []EndpointHealth) error {
	var errs []error
	for _, h := range hs {
		if !h.Healthy {
			who := h.Endpoint
			if h.Name != "" {
				who = fmt.Sprintf("member %q (%s)", h.Name, h.Endpoint)
			}
			errs = append(errs, fmt.Errorf("%s: %w: %s", who, ErrUnhealthy, h.Error))
		}
	}
	return errors.Join(errs...)
}

func endpointHealth(ctx context.Context, t *connect.Target, ep string) (h EndpointHealth) {
	h.Endpoint = ep
	start := time.Now()
	defer func() { h.Took = time.Since(start).Round(time.Microsecond) }()
	if err := reachable(ctx, t, ep); err != nil {
		h.Error = err.Error()
		return h
	}
	cli, err := singleClient(t, ep)
	if err != nil {
		h.Error = err.Error()
		return h
	}
	defer cli.Close()
	cctx, cancel := t.Ctx(ctx)
	defer cancel()

	// Permission denied still proves consensus works: etcdctl counts it
	// healthy too.
	resp, err := cli.Get(cctx, "health")
	switch {
	case err == nil:
		h.id = resp.Header.MemberId
	case errors.Is(err, rpctypes.ErrPermissionDenied):
		if st, serr := cli.Status(cctx, ep); serr == nil {
			h.id = st.Header.MemberId
		}
	case strings.Contains(err.Error(), "not supported for learner"):
		// A learner answers Status only (AlarmList is "not supported for
		// learner" too); alarms are cluster-wide and the voters report
		// them.
		st, serr := cli.Status(cctx, ep)
		if serr != nil {
			h.Error = explain(serr).Error()
			return h
		}
		h.id, h.Learner = st.Header.MemberId, st.IsLearner
		if len(st.Errors) > 0 {
			h.Error = strings.Join(st.Errors, "; ")
			return h
		}
		h.Healthy = true
		return h
	default:
		h.Error = explain(err).Error()
		// Status needs no leader: it still says which member this is.
		if st, serr := cli.Status(cctx, ep); serr == nil {
			h.id = st.Header.MemberId
		}
		return h
	}
	alarms, err := cli.AlarmList(cctx)
	if err != nil {
		h.Error = explain(err).Error()
		return h
	}
	// Any alarm makes the cluster refuse writes (NOSPACE) or distrust its
	// data (CORRUPT), wherever it was raised.
	var active []string
	for _, a := range alarms.Alarms {
		active = append(active, fmt.Sprintf("%s on member %x", a.Alarm, a.MemberID))
	}
	if len(active) > 0 {
		h.Error = "active alarm(s): " + strings.Join(active, ", ")
		return h
	}
	h.Healthy = true
	return h
}

// WaitHealthy polls until every endpoint is healthy or ctx ends, and returns
// the last result.
func WaitHealthy(ctx context.Context, t *connect.Target, every time.Duration) ([]EndpointHealth, error) {
	for {
		hs := Health(ctx, t)
		err := Unhealthy(hs)
		if err == nil {
			return hs, nil
		}
		select {
		case <-ctx.Done():
			return hs, fmt.Errorf("%w; last check: %w", ctx.Err(), err)
		case <-time.After(every):
		}
	}
}
