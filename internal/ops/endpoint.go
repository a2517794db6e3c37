// Package ops holds client-side operations on a running cluster: health,
// status, membership, defragmentation, alarms. Each takes a connect.Target,
// works on real members and returns values; nothing here prints.
package ops

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdkit/etcdkit/internal/connect"
)

// ErrUnhealthy is wrapped by errors of commands that found the cluster, or
// one of the asked endpoints, unhealthy.
var ErrUnhealthy = errors.New("unhealthy")

// forEach runs fn for every endpoint at once and keeps the results in
// endpoint order.
func forEach[T any](endpoints []string, fn func(ep string) T) []T {
	out := make([]T, len(endpoints))
	var wg sync.WaitGroup
	for i, ep := range endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = fn(ep)
		}()
	}
	wg.Wait()
	return out
}

// ClusterEndpoints asks the cluster for every member's client URLs, for
// commands run with --cluster (as etcdctl's). Members that have not started
// yet have none and are left out.
func ClusterEndpoints(ctx context.Context, t *connect.Target) ([]string, error) {
	cli, err := t.Client()
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	ctx, cancel := t.Ctx(ctx)
	defer cancel()
	resp, err := cli.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list members through %v: %w", t.Endpoints, explain(err))
	}
	var eps []string
	for _, m := range resp.Members {
		eps = append(eps, m.ClientURLs...)
	}
	return eps, nil
}

// explain turns the errors users most often see into ones that say why.
func explain(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w (no answer in time: the member is down, unreachable, or the cluster has no leader)", err)
	case errors.Is(err, rpctypes.ErrNoLeader), errors.Is(err, rpctypes.ErrGRPCNoLeader):
		return fmt.Errorf("%w (the cluster has lost quorum)", err)
	}
	return err
}

// singleClient opens a client that talks to one endpoint only, so a result
// belongs to that member and not to whichever one the balancer picked.
func singleClient(t *connect.Target, ep string) (*clientv3.Client, error) {
	return t.Client(ep)
}

// reachable dials an endpoint's TCP port first. gRPC retries a refused
// connection until the request times out and then reports only "context
// deadline exceeded"; a plain dial says "connection refused" at once.
func reachable(ctx context.Context, t *connect.Target, ep string) error {
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" || u.Scheme == "unix" || u.Scheme == "unixs" {
		return nil
	}
	d := net.Dialer{Timeout: t.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return fmt.Errorf("cannot connect: %w", err)
	}
	conn.Close()
	return nil
}
