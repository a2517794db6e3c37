package ops

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

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
}

// Health checks every endpoint of the target the way `etcdctl endpoint
// health` does: a linearizable read must succeed (it needs a leader and a
// quorum) and no alarm may be raised. A learner cannot serve linearizable
// reads, so it is healthy when it answers Status without errors.
func Health(ctx context.Context, t *connect.Target) []EndpointHealth {
	return forEach(t.Endpoints, func(ep string) EndpointHealth {
		return endpointHealth(ctx, t, ep)
	})
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

	st, err := cli.Status(cctx, ep)
	if err != nil {
		h.Error = explain(err).Error()
		return h
	}
	h.Learner = st.IsLearner
	if ml, err := cli.MemberList(cctx); err == nil {
		for _, m := range ml.Members {
			if m.ID == st.Header.MemberId {
				h.Name = m.Name
			}
		}
	}
	if len(st.Errors) > 0 {
		h.Error = strings.Join(st.Errors, "; ")
		return h
	}
	if !st.IsLearner {
		// Permission denied still proves consensus works: etcdctl counts it
		// healthy too.
		if _, err := cli.Get(cctx, "health"); err != nil && !errors.Is(err, rpctypes.ErrPermissionDenied) {
			h.Error = explain(err).Error()
			return h
		}
	}
	if st.IsLearner {
		// A learner answers Status only (AlarmList is "not supported for
		// learner"); alarms are cluster-wide and the voters report them.
		h.Healthy = true
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
