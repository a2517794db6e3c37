package remote

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"go.uber.org/zap"
)

// Plan records every change made to every host, in order. In dry-run mode
// Conn.Change records the change and does not make it, so the plan is what
// apply would do; otherwise it is what apply did, and an empty plan after a
// run means the hosts were already converged.
type Plan struct {
	dryRun   bool
	mu       sync.Mutex
	changes  []Change
	observer func(Change)
}

// NewPlan returns an empty plan; dryRun makes every change a record only.
func NewPlan(dryRun bool) *Plan { return &Plan{dryRun: dryRun} }

// DryRun reports whether changes are recorded instead of made.
func (p *Plan) DryRun() bool { return p != nil && p.dryRun }

// Change is one change to one host.
type Change struct {
	Host string // the host's name
	Addr string // address:port
	What string // "write /etc/etcd/etcd.conf (0644 root:root, 1.2 KiB)"
}

func (c Change) String() string { return fmt.Sprintf("%s (%s): %s", c.Host, c.Addr, c.What) }

func (p *Plan) record(c Change) {
	p.mu.Lock()
	p.changes = append(p.changes, c)
	observe := p.observer
	p.mu.Unlock()
	if observe != nil {
		observe(c)
	}
}

// Observe calls fn with every change as it is recorded (made, or in
// dry-run mode planned), so a command can show progress host by host.
// fn runs on the goroutine that made the change; it must be safe for
// concurrent use.
func (p *Plan) Observe(fn func(Change)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.observer = fn
}

// Do is Conn.Change for a change that is not made over SSH: a file on
// the operator's machine, or a membership change sent to etcd. host and
// addr label it in the plan ("this machine", "local"). In dry-run mode
// it is only recorded; otherwise do runs and, when it succeeds, the
// change is recorded.
func (p *Plan) Do(host, addr, what string, do func() error) error {
	c := Change{Host: host, Addr: addr, What: what}
	if p.DryRun() {
		p.record(c)
		return nil
	}
	if err := do(); err != nil {
		return fmt.Errorf("%s: %s: %w", host, what, err)
	}
	if p != nil {
		p.record(c)
	}
	return nil
}

// Changes is every change recorded so far, in order.
func (p *Plan) Changes() []Change {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Change(nil), p.changes...)
}

// Empty reports whether nothing changed (or would change).
func (p *Plan) Empty() bool { return len(p.Changes()) == 0 }

// Hosts lists the hosts with changes, in the order they first changed.
func (p *Plan) Hosts() []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range p.Changes() {
		if !seen[c.Host] {
			seen[c.Host] = true
			out = append(out, c.Host)
		}
	}
	return out
}

// For lists the changes to one host, in order.
func (p *Plan) For(host string) []Change {
	var out []Change
	for _, c := range p.Changes() {
		if c.Host == host {
			out = append(out, c)
		}
	}
	return out
}

// String is the plan grouped by host:
//
//	master01 (10.0.0.1:22):
//	  - write /etc/etcd/etcd.conf (0644 root:root, 1.2 KiB)
func (p *Plan) String() string {
	var b strings.Builder
	for _, h := range p.Hosts() {
		cs := p.For(h)
		fmt.Fprintf(&b, "%s (%s):\n", h, cs[0].Addr)
		for _, c := range cs {
			fmt.Fprintf(&b, "  - %s\n", c.What)
		}
	}
	return b.String()
}

// Change is the one gate every change to the host goes through: it records
// what in the plan and, unless the plan is a dry run, calls do. Reads
// (Run, ReadFile, Stat, Detect) do not go through it and run in dry-run
// mode too, because the plan is made from what they find.
func (c *Conn) Change(ctx context.Context, what string, do func(context.Context) error) error {
	ch := Change{Host: c.host.label(), Addr: c.host.Addr(), What: what}
	if c.opts.Plan.DryRun() {
		c.opts.Plan.record(ch)
		if c.opts.Log != nil {
			c.opts.Log.Debug("dry-run: would "+what, zap.String("host", ch.Host), zap.String("addr", ch.Addr))
		}
		return nil
	}
	if c.opts.Log != nil {
		c.opts.Log.Debug("change: "+what, zap.String("host", ch.Host), zap.String("addr", ch.Addr))
	}
	if err := do(ctx); err != nil {
		return c.host.hostErr(fmt.Errorf("%s: %w", what, err))
	}
	if c.opts.Plan != nil {
		c.opts.Plan.record(ch)
	}
	return nil
}

// RunChange runs a command that changes the host (`systemctl enable --now
// etcd`), through Change: in dry-run mode it is only recorded. what
// describes it for the plan; empty means the command itself.
func (c *Conn) RunChange(ctx context.Context, what, cmd string) error {
	if what == "" {
		what = "run " + cmd
	}
	return c.Change(ctx, what, func(ctx context.Context) error {
		_, err := c.run(ctx, cmd, nil, true)
		return unwrapHost(err)
	})
}

// unwrapHost strips the host from err: Change adds it once, with the
// change's description.
func unwrapHost(err error) error {
	if e, ok := err.(*Error); ok {
		return e.Err
	}
	return err
}
