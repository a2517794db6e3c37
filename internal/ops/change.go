package ops

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrRefused is wrapped by every membership change etcdkit refuses to
// make because it would be unsafe.
var ErrRefused = errors.New("refused")

// Refusal is a change that was not made: what, why, and what would be
// safe instead. A refusal because of the cluster's health also matches
// ErrUnhealthy.
type Refusal struct {
	// Action is what was asked: `remove member "m3"`.
	Action string
	Reason string
	// Fix is the command or step that would be safe.
	Fix       string
	Unhealthy bool
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("refusing to %s: %s; %s", r.Action, r.Reason, r.Fix)
}

// Is makes errors.Is(err, ErrRefused) and, for health refusals,
// errors.Is(err, ErrUnhealthy) true.
func (r *Refusal) Is(target error) bool {
	return target == ErrRefused || (r.Unhealthy && target == ErrUnhealthy)
}

// Backup takes the snapshot that precedes a membership change and returns
// its path. The CLI passes snapshot.Save; ops cannot import snapshot,
// which builds on ops.
type Backup func(ctx context.Context, reason string) (path string, err error)

// DefaultChangeTimeout bounds the retries of one membership RPC. etcd
// refuses a change for about 5 s after a member (re)connects (its strict
// reconfiguration check), and clientv3 never retries membership RPCs.
const DefaultChangeTimeout = time.Minute

// PollInterval is how often a wait re-reads the cluster (a member list, or
// a status and a health check per member): short enough that a step ends
// soon after etcd allows it, long enough to be no load on the cluster.
const PollInterval = 200 * time.Millisecond

// retry calls fn until it succeeds, fails with an error etcd only returns
// for a while, or limit passes; it backs off from 200 ms to 2 s.
func retry(ctx context.Context, limit time.Duration, fn func() error) error {
	if limit == 0 {
		limit = DefaultChangeTimeout
	}
	deadline := time.Now().Add(limit)
	wait := 200 * time.Millisecond
	for {
		err := fn()
		if err == nil || !Transient(err) {
			return err
		}
		if time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("%w (still refused after %v)", err, limit)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// Transient reports the errors etcd returns only for a while: an
// unhealthy cluster right after a member (re)connected, an election, a
// request that timed out or was cut off by a leader change.
func Transient(err error) bool {
	for _, e := range []error{
		rpctypes.ErrUnhealthy, rpctypes.ErrNoLeader, rpctypes.ErrNotLeader, rpctypes.ErrLeaderChanged,
		rpctypes.ErrTimeout, rpctypes.ErrTimeoutDueToLeaderFail, rpctypes.ErrTimeoutDueToConnectionLost,
		rpctypes.ErrTimeoutWaitAppliedIndex, rpctypes.ErrStopped, context.DeadlineExceeded,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code() == codes.Unavailable
	}
	if s, ok := status.FromError(err); ok {
		return s.Code() == codes.Unavailable
	}
	return false
}
