package join

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// endpointPrefix holds one key per serving join endpoint, on a lease its
// member keeps alive: `token create` reads them to print the join command
// with the URL and the CA hash, and a stopped member's key goes away.
const (
	endpointPrefix = KeyPrefix + "endpoints/"
	endpointTTL    = 30 // seconds
)

// Advertised is a join endpoint as its member announces it.
type Advertised struct {
	Member string `json:"member"`
	URL    string `json:"url"`
	// CAHash pins the CA that signs: sha256:<hex of its public key>.
	CAHash string `json:"caHash"`
}

// ListEndpoints reads the join endpoints members announce, by URL.
func ListEndpoints(ctx context.Context, cli *clientv3.Client) ([]Advertised, error) {
	resp, err := cli.Get(ctx, endpointPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read the join endpoints: %w", err)
	}
	out := []Advertised{}
	for _, kv := range resp.Kvs {
		var a Advertised
		if err := json.Unmarshal(kv.Value, &a); err == nil {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b Advertised) int { return strings.Compare(a.URL, b.URL) })
	return out, nil
}

// announce keeps the endpoint's key in etcd until ctx ends, putting it
// back after a lease is lost (a quorum loss, a long pause), and updating it
// when what current says changes (a CA rotation changes the hash). It
// calls announced once, the first time the key is written.
func announce(ctx context.Context, cli *clientv3.Client, memberID string, current func() Advertised, lg *zap.Logger, announced func(Advertised)) {
	key := endpointPrefix + memberID
	first, failing := true, false
	for ctx.Err() == nil {
		a := current()
		val, _ := json.Marshal(a)
		lease, err := cli.Grant(ctx, endpointTTL)
		if err == nil {
			_, err = cli.Put(ctx, key, string(val), clientv3.WithLease(lease.ID))
		}
		if err != nil {
			// Once per outage, not every retry: a cluster without quorum
			// refuses for as long as it lasts.
			if ctx.Err() == nil && !failing {
				lg.Warn("cannot announce the join endpoint in etcd; retrying every 5s", zap.Error(err))
			}
			failing = true
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
			continue
		}
		failing = false
		if first {
			first = false
			announced(a)
		}
		keepAnnounced(ctx, cli, key, lease.ID, val, current, lg)
		if ctx.Err() != nil {
			// A clean stop takes the key away at once.
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, _ = cli.Revoke(rctx, lease.ID)
			cancel()
			return
		}
		lg.Warn("the join endpoint's lease in etcd was lost; announcing it again")
	}
}

// keepAnnounced keeps the lease alive until it is lost or ctx ends, and
// rewrites the key when the announcement changes.
func keepAnnounced(ctx context.Context, cli *clientv3.Client, key string, lease clientv3.LeaseID, val []byte, current func() Advertised, lg *zap.Logger) {
	ka, err := cli.KeepAlive(ctx, lease)
	if err != nil {
		return
	}
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case _, ok := <-ka:
			if !ok {
				return
			}
		case <-tick.C:
			a := current()
			now, _ := json.Marshal(a)
			if bytes.Equal(now, val) {
				continue
			}
			if _, err := cli.Put(ctx, key, string(now), clientv3.WithLease(lease)); err == nil {
				val = now
				lg.Info("join endpoint announced again", zap.String("url", a.URL), zap.String("ca-hash", a.CAHash))
			}
		}
	}
}
