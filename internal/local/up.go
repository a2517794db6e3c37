package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/etcdkit/etcdkit/internal/connect"
	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// DefaultMembers is the size of a new local cluster.
const DefaultMembers = 3

// UpOptions configures Up.
type UpOptions struct {
	Dir Dir
	// Members is the size of a new cluster; 0 means DefaultMembers, or the
	// existing cluster's size.
	Members int
	// Fresh deletes an existing cluster in Dir, data included, first.
	Fresh        bool
	KeyAlgorithm pki.KeyAlgorithm
	// Exe is the etcdkit binary members run with.
	Exe string
	// ReadyTimeout bounds the wait for a healthy cluster.
	ReadyTimeout time.Duration
	// StopGrace is how long a member may take to stop before it is killed.
	StopGrace time.Duration
}

// Observer receives what happens during Up; the CLI prints it.
type Observer interface {
	// Prepared is called with the cluster about to start; created says
	// whether it was made now or loaded from the directory.
	Prepared(c *spec.Cluster, created bool)
	// Ready is called once every member is healthy.
	Ready(c *spec.Cluster, t *connect.Target, took time.Duration)
	// Exited is called for every member process that ends unasked.
	Exited(e Exit)
	// Reshaped is called when the spec changed under a running `up`
	// (`etcdkit up add|remove|replace`): the members it started and
	// stopped.
	Reshaped(started, stopped []string, err error)
	// Stopping is called when a stop was requested.
	Stopping()
}

// Up brings the local cluster in o.Dir up and keeps it running until ctx
// ends, then stops every member gracefully.
func Up(ctx context.Context, o UpOptions, obs Observer) error {
	start := time.Now()
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 60 * time.Second
	}
	if o.StopGrace == 0 {
		o.StopGrace = 30 * time.Second
	}
	// Refuse someone else's directory before writing anything into it, even
	// the lock file.
	if err := o.Dir.checkOwned(); err != nil {
		return err
	}
	unlock, err := o.Dir.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	if o.Fresh {
		if err := o.Dir.Reset(); err != nil {
			return err
		}
	}
	c, created, err := o.prepare()
	if err != nil {
		return err
	}
	obs.Prepared(c, created)

	settings, err := o.Dir.Settings()
	if err != nil {
		return err
	}
	target, err := connect.Resolve(settings, connect.Settings{})
	if err != nil {
		return err
	}
	sup := NewSupervisor(o.Dir, o.Exe)
	defer func() { sup.StopAll(leaders(target), o.StopGrace) }()
	if err := sup.StartAll(c); err != nil {
		return err
	}

	if err := waitReady(ctx, sup, target, o.ReadyTimeout, obs); err != nil {
		return err
	}
	if ctx.Err() != nil {
		obs.Stopping()
		return nil
	}
	obs.Ready(c, target, time.Since(start))

	// The spec is the desired set of members: membership commands on the
	// local cluster edit it, and `up` starts the members it gains and
	// stops those it loses. A member that dies stays down (it is
	// reported), as a real host's would.
	w := specWatch{d: o.Dir}
	w.changed()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			obs.Stopping()
			return nil
		case e := <-sup.Exits():
			if !e.Expected {
				obs.Exited(e)
			}
		case <-tick.C:
			if !w.changed() {
				continue
			}
			nc, err := o.Dir.Load()
			if err != nil {
				obs.Reshaped(nil, nil, err)
				continue
			}
			started, stopped, err := reshape(sup, c, nc, o.StopGrace)
			obs.Reshaped(started, stopped, err)
			c = nc
			target.Endpoints = c.ClientURLs()
		}
	}
}

// reshape starts the members next has and prev had not, and stops those
// prev had and next has not.
func reshape(sup *Supervisor, prev, next *spec.Cluster, grace time.Duration) (started, stopped []string, err error) {
	var errs []error
	for _, m := range prev.Members {
		if _, ok := next.Member(m.Name); !ok {
			sup.Stop(m.Name, grace)
			stopped = append(stopped, m.Name)
		}
	}
	for _, m := range next.Members {
		if _, ok := prev.Member(m.Name); !ok {
			if err := sup.Start(m.Name); err != nil {
				errs = append(errs, err)
				continue
			}
			started = append(started, m.Name)
		}
	}
	return started, stopped, errors.Join(errs...)
}

// specWatch notices changes of the spec file by content.
type specWatch struct {
	d    Dir
	last []byte
}

func (w *specWatch) changed() bool {
	b, err := os.ReadFile(w.d.Spec())
	if err != nil || bytes.Equal(b, w.last) {
		return false
	}
	first := w.last == nil
	w.last = b
	return !first
}

// prepare loads the cluster in the directory or creates one.
func (o UpOptions) prepare() (*spec.Cluster, bool, error) {
	if o.Dir.Exists() {
		c, err := o.Dir.Load()
		if err != nil {
			return nil, false, err
		}
		if o.Members != 0 && o.Members != len(c.Members) {
			return nil, false, fmt.Errorf("%s holds a %d-member cluster; run `etcdkit up --fresh --members %d` to start over with %d (its data is deleted)", o.Dir, len(c.Members), o.Members, o.Members)
		}
		return c, false, nil
	}
	n := o.Members
	if n == 0 {
		n = DefaultMembers
	}
	c, err := o.Dir.Create(CreateOptions{Members: n, KeyAlgorithm: o.KeyAlgorithm})
	return c, true, err
}

// waitReady waits until every member is healthy. A member that exits
// before then fails the start with its log, since a cluster that cannot
// start will not heal by waiting.
func waitReady(ctx context.Context, sup *Supervisor, t *connect.Target, timeout time.Duration, obs Observer) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Poll with short requests: a member still starting refuses or stalls
	// connections, and one slow probe must not hold up the next.
	probe := *t
	probe.CommandTimeout = time.Second
	t = &probe
	for {
		hs := ops.Health(ctx, t)
		err := ops.Unhealthy(hs)
		if err == nil {
			return nil
		}
		select {
		case e := <-sup.Exits():
			obs.Exited(e)
			return fmt.Errorf("member %q exited while the cluster was starting: %v; see %s", e.Name, e.Err, e.Log)
		case <-ctx.Done():
			if ctx.Err() == context.Canceled {
				return nil
			}
			return fmt.Errorf("the cluster was not healthy after %v: %w", timeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// leaders names the member that leads, so it can stop last.
func leaders(t *connect.Target) []string {
	probe := *t
	probe.CommandTimeout = time.Second
	var out []string
	for _, st := range ops.Status(context.Background(), &probe) {
		if st.IsLeader && st.Name != "" {
			out = append(out, st.Name)
		}
	}
	return out
}
