package robustness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TrafficOptions shapes the load.
type TrafficOptions struct {
	// Clients is how many concurrent KV clients run (each sequential, as
	// a linearizability history needs).
	Clients int
	// Rate is each client's requests per second (jittered).
	Rate float64
	// LedgerRate is the ledger writer's puts per second.
	LedgerRate float64
	// Timeout bounds one request; a request that times out has an
	// unknown outcome.
	Timeout time.Duration
	// LeaseTTL is long enough that no lease expires during a scenario:
	// the model does not know about expiry.
	LeaseTTL int64
}

// DefaultTraffic is a moderate load that a 2-core machine sustains next to
// three members, and that keeps histories small enough to check quickly.
var DefaultTraffic = TrafficOptions{Clients: 4, Rate: 40, LedgerRate: 25, Timeout: 2 * time.Second, LeaseTTL: 900}

// Traffic runs the clients of one phase.
type Traffic struct {
	rec     *Recorder
	opts    TrafficOptions
	stop    chan struct{}
	wg      sync.WaitGroup
	writes  atomic.Int64
	oks     atomic.Int64
	phase   int
	mu      sync.RWMutex
	clients []*clientv3.Client // KV clients, then the ledger's
}

// Dialer opens a client to every member.
type Dialer func() (*clientv3.Client, error)

// StartTraffic starts the clients and the ledger writer. Each client's
// choices come from its own generator seeded from seed, so a seed replays
// the same request mix.
func StartTraffic(dial Dialer, rec *Recorder, seed int64, phase int, o TrafficOptions) (*Traffic, error) {
	tr := &Traffic{rec: rec, opts: o, stop: make(chan struct{}), phase: phase}
	for i := 0; i <= o.Clients; i++ {
		cli, err := dial()
		if err != nil {
			tr.closeClients()
			return nil, err
		}
		tr.clients = append(tr.clients, cli)
	}
	for i := 0; i < o.Clients; i++ {
		c := &kvClient{tr: tr, id: i,
			rnd: rand.New(rand.NewPCG(uint64(seed), uint64(phase*1000+i))), lastMod: map[int]int64{}}
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			c.run()
		}()
	}
	tr.wg.Add(1)
	go func() {
		defer tr.wg.Done()
		tr.ledger(o.Clients)
	}()
	return tr, nil
}

// Writes is how many writes were acknowledged so far.
func (tr *Traffic) Writes() int64 { return tr.writes.Load() }

// OKs is how many requests of any kind were answered so far.
func (tr *Traffic) OKs() int64 { return tr.oks.Load() }

// Stop ends the traffic: every client finishes its request, revokes the
// lease it holds (so none outlives the phase and expires, unmodeled,
// later) and stops.
func (tr *Traffic) Stop() {
	close(tr.stop)
	tr.wg.Wait()
	tr.closeClients()
}

func (tr *Traffic) closeClients() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, c := range tr.clients {
		c.Close()
	}
}

// client is client i's connection; each request takes it afresh, so
// Redial takes effect at the next request.
func (tr *Traffic) client(i int) *clientv3.Client {
	tr.mu.RLock()
	defer tr.mu.RUnlock()
	return tr.clients[i]
}

// Redial gives every client a new connection from dial (new
// certificates, new endpoints). Requests in flight finish on the old
// connections, which close once they have timed out.
func (tr *Traffic) Redial(dial Dialer) error {
	fresh := make([]*clientv3.Client, 0, len(tr.clients))
	for range tr.clients {
		cli, err := dial()
		if err != nil {
			for _, c := range fresh {
				c.Close()
			}
			return err
		}
		fresh = append(fresh, cli)
	}
	tr.mu.Lock()
	old := tr.clients
	tr.clients = fresh
	tr.mu.Unlock()
	time.AfterFunc(tr.opts.Timeout+time.Second, func() {
		for _, c := range old {
			c.Close()
		}
	})
	return nil
}

func (tr *Traffic) stopping() bool {
	select {
	case <-tr.stop:
		return true
	default:
		return false
	}
}

// pause waits about 1/rate, jittered, or until Stop.
func (tr *Traffic) pause(rnd *rand.Rand, rate float64) bool {
	d := time.Duration(float64(time.Second) / rate * (0.5 + rnd.Float64()))
	select {
	case <-tr.stop:
		return false
	case <-time.After(d):
		return true
	}
}

// do runs one request under the request timeout and records it.
func (tr *Traffic) do(client int, req Request, fn func(ctx context.Context, req *Request) (Response, error)) Response {
	ctx, cancel := context.WithTimeout(context.Background(), tr.opts.Timeout)
	defer cancel()
	call := tr.rec.Now()
	resp, err := fn(ctx, &req)
	ret := tr.rec.Now()
	if err != nil {
		resp = Response{Status: classify(req.Kind, err), Err: errText(err)}
	} else {
		resp.Status = StatusOK
	}
	if resp.Status == StatusOK {
		tr.oks.Add(1)
		if req.Kind.writes() {
			tr.writes.Add(1)
		}
	}
	tr.rec.Record(Op{Client: client, Req: req, Resp: resp, Call: call, Return: ret})
	return resp
}

// classify decides whether an error proves the request was not applied.
// Only "lease not found" does, and not for a revoke: clientv3 retries
// LeaseRevoke on a lost connection (it is "repeatable"), so a revoke whose
// first attempt was applied and whose answer was lost comes back "lease
// not found" from the retry. Any other error (a timeout, a lost
// connection, no leader) leaves the outcome unknown, and so does NOSPACE:
// etcd applies the put that crosses the quota and still answers NOSPACE
// (quotaApplierV3), so the error does not mean the write was refused.
func classify(kind Kind, err error) Status {
	notFound := errors.Is(err, rpctypes.ErrLeaseNotFound) || errors.Is(err, rpctypes.ErrGRPCLeaseNotFound)
	if notFound && kind != KindLeaseRevoke {
		return StatusFailed
	}
	return StatusUnknown
}

func errText(err error) string {
	if errors.Is(err, rpctypes.ErrLeaseNotFound) || errors.Is(err, rpctypes.ErrGRPCLeaseNotFound) {
		return errLeaseNotFound
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return err.Error()
}

// ledger appends distinct keys, never overwritten or deleted, so every
// acknowledged one must be found on every member at the end.
func (tr *Traffic) ledger(id int) {
	rnd := rand.New(rand.NewPCG(uint64(id), uint64(tr.phase)))
	for n := 0; tr.pause(rnd, tr.opts.LedgerRate); n++ {
		name := fmt.Sprintf("%sp%d-%06d", ledgerPrefix, tr.phase, n)
		req := Request{Kind: KindOpaque, Key: -1, Name: name, Value: name}
		tr.do(id, req, func(ctx context.Context, _ *Request) (Response, error) {
			r, err := tr.client(id).Put(ctx, name, name)
			if err != nil {
				return Response{}, err
			}
			return Response{Rev: r.Header.Revision}, nil
		})
	}
}

// kvClient is one sequential client of the modeled keys.
type kvClient struct {
	tr      *Traffic
	id      int
	rnd     *rand.Rand
	seq     int
	lease   int64
	lastMod map[int]int64
	revoked map[int64]bool
}

func (c *kvClient) run() {
	c.revoked = map[int64]bool{}
	for c.tr.pause(c.rnd, c.tr.opts.Rate) {
		c.one()
	}
	if c.lease != 0 {
		c.revoke(true)
	}
}

func (c *kvClient) value() string {
	c.seq++
	return fmt.Sprintf("c%d-p%d-%d", c.id, c.tr.phase, c.seq)
}

// one picks and runs a request: reads 30%, puts 22%, txns 20%, deletes
// 8%, lease work 20%.
func (c *kvClient) one() {
	key := c.rnd.IntN(NumKeys)
	switch p := c.rnd.IntN(100); {
	case p < 25:
		c.get(key)
	case p < 30:
		c.rangeAll()
	case p < 52:
		c.put(key, 0)
	case p < 72:
		c.txn(key)
	case p < 80:
		c.delete(key)
	default:
		c.leaseWork(key)
	}
}

func (c *kvClient) leaseWork(key int) {
	if c.lease == 0 {
		c.grant()
		return
	}
	switch p := c.rnd.IntN(10); {
	case p < 5:
		c.put(key, c.lease)
	case p < 8:
		c.keepAlive()
	default:
		c.revoke(false)
	}
}

func kvsOf(resp *clientv3.GetResponse) []KV {
	var out []KV
	for _, kv := range resp.Kvs {
		if i := keyIndex(string(kv.Key)); i >= 0 {
			out = append(out, KV{Key: i, Value: valueID(kv.Value), Mod: kv.ModRevision, Lease: kv.Lease})
		}
	}
	return out
}

func (c *kvClient) note(kvs []KV, keys ...int) {
	for _, k := range keys {
		c.lastMod[k] = 0
	}
	for _, kv := range kvs {
		c.lastMod[kv.Key] = kv.Mod
	}
}

func (c *kvClient) get(key int) {
	resp := c.tr.do(c.id, Request{Kind: KindGet, Key: key}, func(ctx context.Context, _ *Request) (Response, error) {
		r, err := c.tr.client(c.id).Get(ctx, keyName(key))
		if err != nil {
			return Response{}, err
		}
		return Response{Rev: r.Header.Revision, KVs: kvsOf(r)}, nil
	})
	if resp.Status == StatusOK {
		c.note(resp.KVs, key)
	}
}

func (c *kvClient) rangeAll() {
	resp := c.tr.do(c.id, Request{Kind: KindRange, Key: -1}, func(ctx context.Context, _ *Request) (Response, error) {
		r, err := c.tr.client(c.id).Get(ctx, keyPrefix, clientv3.WithPrefix())
		if err != nil {
			return Response{}, err
		}
		return Response{Rev: r.Header.Revision, KVs: kvsOf(r)}, nil
	})
	if resp.Status == StatusOK {
		all := make([]int, NumKeys)
		for i := range all {
			all[i] = i
		}
		c.note(resp.KVs, all...)
	}
}

func (c *kvClient) put(key int, lease int64) {
	v := c.value()
	resp := c.tr.do(c.id, Request{Kind: KindPut, Key: key, Value: v, Lease: lease}, func(ctx context.Context, _ *Request) (Response, error) {
		var opts []clientv3.OpOption
		if lease != 0 {
			opts = append(opts, clientv3.WithLease(clientv3.LeaseID(lease)))
		}
		r, err := c.tr.client(c.id).Put(ctx, keyName(key), v, opts...)
		if err != nil {
			return Response{}, err
		}
		return Response{Rev: r.Header.Revision}, nil
	})
	if resp.Status == StatusOK {
		c.lastMod[key] = resp.Rev
	}
	if resp.Status == StatusFailed && lease != 0 {
		// The lease is gone though this client never revoked it; the
		// lost-lease check reports it. Stop using it.
		c.lease = 0
	}
}

func (c *kvClient) delete(key int) {
	resp := c.tr.do(c.id, Request{Kind: KindDelete, Key: key}, func(ctx context.Context, _ *Request) (Response, error) {
		r, err := c.tr.client(c.id).Delete(ctx, keyName(key))
		if err != nil {
			return Response{}, err
		}
		return Response{Rev: r.Header.Revision, Deleted: r.Deleted}, nil
	})
	if resp.Status == StatusOK {
		c.lastMod[key] = 0
	}
}

// txn compares against the mod revision this client saw last, which is
// right often enough for both branches to run.
func (c *kvClient) txn(key int) {
	v := c.value()
	expect := c.lastMod[key]
	resp := c.tr.do(c.id, Request{Kind: KindTxn, Key: key, Value: v, Expect: expect}, func(ctx context.Context, _ *Request) (Response, error) {
		r, err := c.tr.client(c.id).Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(keyName(key)), "=", expect)).
			Then(clientv3.OpPut(keyName(key), v)).
			Else(clientv3.OpGet(keyName(key))).
			Commit()
		if err != nil {
			return Response{}, err
		}
		out := Response{Rev: r.Header.Revision, Succeeded: r.Succeeded}
		if !r.Succeeded && len(r.Responses) > 0 {
			if rr := r.Responses[0].GetResponseRange(); rr != nil {
				out.KVs = kvsOf((*clientv3.GetResponse)(rr))
			}
		}
		return out, nil
	})
	if resp.Status != StatusOK {
		return
	}
	if resp.Succeeded {
		c.lastMod[key] = resp.Rev
	} else {
		c.note(resp.KVs, key)
	}
}

func (c *kvClient) grant() {
	var id int64
	resp := c.tr.do(c.id, Request{Kind: KindLeaseGrant, Key: -1}, func(ctx context.Context, req *Request) (Response, error) {
		r, err := c.tr.client(c.id).Grant(ctx, c.tr.opts.LeaseTTL)
		if err != nil {
			return Response{}, err
		}
		id = int64(r.ID)
		req.Lease = id
		return Response{Rev: r.Revision}, nil
	})
	if resp.Status == StatusOK {
		c.lease = id
	}
}

// keepAlive renews the lease once.
func (c *kvClient) keepAlive() {
	id := c.lease
	resp := c.tr.do(c.id, Request{Kind: KindKeepAlive, Key: -1, Lease: id}, func(ctx context.Context, _ *Request) (Response, error) {
		r, err := c.tr.client(c.id).KeepAliveOnce(ctx, clientv3.LeaseID(id))
		if err != nil {
			return Response{}, err
		}
		if r.TTL <= 0 {
			return Response{}, rpctypes.ErrLeaseNotFound
		}
		return Response{Rev: r.Revision}, nil
	})
	if resp.Status == StatusFailed {
		c.lease = 0
	}
}

// revoke revokes the lease, retrying an unknown outcome until etcd says
// either way, so no lease whose keys are in doubt is left to expire.
// final retries even after Stop (the phase's last request).
func (c *kvClient) revoke(final bool) {
	id := c.lease
	for attempt := 0; attempt < 30; attempt++ {
		resp := c.tr.do(c.id, Request{Kind: KindLeaseRevoke, Key: -1, Lease: id}, func(ctx context.Context, _ *Request) (Response, error) {
			r, err := c.tr.client(c.id).Revoke(ctx, clientv3.LeaseID(id))
			if err != nil {
				return Response{}, err
			}
			return Response{Rev: r.Header.Revision}, nil
		})
		if resp.Status != StatusUnknown {
			break
		}
		if !final && c.tr.stopping() {
			final = true
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.revoked[id] = true
	c.lease = 0
}
