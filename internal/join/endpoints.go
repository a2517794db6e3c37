package join

import (
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
// back after a lease is lost (a quorum loss, a long pause). It calls
// announced once, the first time the key is written.
func announce(ctx context.Context, cli *clientv3.Client, memberID string, a Advertised, lg *zap.Logger, announced func()) {
	key := endpointPrefix + memberID
	val, _ := json.Marshal(a)
	first, failing := true, false
	for ctx.Err() == nil {
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
			announced()
		}
		ka, err := cli.KeepAlive(ctx, lease.ID)
		if err == nil {
			for range ka {
			}
		}
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
