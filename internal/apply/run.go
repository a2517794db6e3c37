package apply

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"

	"go.uber.org/zap"

	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/remote"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// run is one apply in progress: the spec, the hosts and what the phases
// found and decided so far.
type run struct {
	o      Options
	c      *spec.Cluster
	plan   *remote.Plan
	log    *zap.Logger
	obs    Observer
	ropts  *remote.Options
	layout pki.Layout
	hosts  []*host

	// ca signs; in a dry run without a CA it is a throwaway one, so the
	// plan can show the files it would write. caExists says whether
	// CADir holds it.
	ca       *pki.CA
	caExists bool
	// tmp holds this run's own short-lived client certificate.
	tmp   string
	creds *credentials
	// live is the member list when some member answered; extra are its
	// members that the spec does not have.
	live  *ops.Membership
	extra []ops.Member
	// problems are refusals about the whole cluster, for preflight.
	problems []error
	// final is the member list verify saw.
	final    *ops.Membership
	warnings []string
}

// host is one member's host: how to reach it, what is there, and what
// this run decided and did.
type host struct {
	m     *spec.Member
	rh    remote.Host
	conn  *remote.Conn
	facts *remote.Facts
	obs   *observed
	role  role
	// live is this member in the live member list, nil when not there.
	live *ops.Member
	// problems are refusals found before any change; preflight reports
	// them with every other host's.
	problems []error
	// What this run changed, to decide restarts.
	configChanged, unitChanged, binaryChanged, caChanged bool
	// started is set once this run started the member.
	started bool
}

func (h *host) name() string { return h.m.Name }

// errorf is an error about this host, named as remote names hosts.
func (h *host) errorf(format string, args ...any) error {
	return &remote.Error{Name: h.m.Name, Addr: h.rh.Addr(), Err: fmt.Errorf(format, args...)}
}

func (h *host) clientPort() int { return urlPort(h.m.ClientURL) }
func (h *host) peerPort() int   { return urlPort(h.m.PeerURL) }

func urlPort(raw string) int {
	u, err := url.Parse(raw)
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(u.Port())
	return p
}

func newRun(o Options) (*run, error) {
	if o.Spec == nil {
		return nil, errors.New("apply: no cluster spec")
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Rerun == "" {
		o.Rerun = "etcdkit apply -f " + o.SpecPath
	}
	layout, err := pki.ParseLayout(o.Spec.PKI.Layout)
	if err != nil {
		return nil, err
	}
	r := &run{o: o, c: o.Spec, plan: remote.NewPlan(o.DryRun), log: o.Log, obs: o.Observer, layout: layout}
	if r.log == nil {
		r.log = zap.NewNop()
	}
	if r.obs == nil {
		r.obs = quiet{}
	}
	r.plan.Observe(r.obs.Change)
	ro := o.Remote
	ro.Plan, ro.Log = r.plan, r.log
	r.ropts = &ro
	if err := CheckSpec(o.Spec, o.SpecPath); err != nil {
		return nil, err
	}
	for i := range o.Spec.Members {
		m := &o.Spec.Members[i]
		s := o.Spec.MemberSSH(m)
		r.hosts = append(r.hosts, &host{m: m, rh: remote.Host{Name: m.Name, Address: m.Host, Port: s.Port, User: s.User, KeyPath: s.KeyPath}})
	}
	return r, nil
}

// CheckSpec refuses what apply cannot do with a valid spec: a member
// without a host, and two members on one host (apply installs one member
// per host, at fixed paths: /etc/etcd/etcd.yaml, the etcd unit).
func CheckSpec(c *spec.Cluster, file string) error {
	seen := map[string]string{}
	for i, m := range c.Members {
		path := fmt.Sprintf("members[%d].host", i)
		if m.Host == "" {
			return &spec.FieldError{File: file, Path: path, Msg: fmt.Sprintf("member %q has no host to connect to: set it (an address or an ~/.ssh/config alias)", m.Name)}
		}
		if other, dup := seen[m.Host]; dup {
			return &spec.FieldError{File: file, Path: path, Msg: fmt.Sprintf("%s is also member %q's host; apply installs one member per host (at %s, one unit): give each member its own host", m.Host, other, ConfigPath)}
		}
		seen[m.Host] = m.Name
	}
	return nil
}

// note tells the observer and the debug log something about a host.
func (r *run) note(h *host, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	name := ""
	if h != nil {
		name = h.name()
	}
	r.obs.Note(name, msg)
	r.log.Info(msg, zap.String("host", name))
}

func (r *run) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.warnings = append(r.warnings, msg)
	r.obs.Note("", "warning: "+msg)
	r.log.Warn(msg)
}

// eachHost runs fn for every host, Concurrency at a time, and joins the
// failures in host order. Errors from remote already name their host;
// others are named here.
func (r *run) eachHost(ctx context.Context, hosts []*host, fn func(ctx context.Context, h *host) error) error {
	errs := make([]error, len(hosts))
	sem := make(chan struct{}, r.o.Concurrency)
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			err := fn(ctx, h)
			var he *remote.Error
			if err != nil && !errors.As(err, &he) {
				err = &remote.Error{Name: h.name(), Addr: h.rh.Addr(), Err: err}
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// byRole lists the hosts with one of the roles, in spec order.
func (r *run) byRole(roles ...role) []*host {
	var out []*host
	for _, h := range r.hosts {
		for _, ro := range roles {
			if h.role == ro {
				out = append(out, h)
				break
			}
		}
	}
	return out
}

// addrHost is the host part of a URL, for labels.
func addrHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	if h, _, err := net.SplitHostPort(u.Host); err == nil {
		return h
	}
	return u.Host
}

type quiet struct{}

func (quiet) Phase(string)         {}
func (quiet) Note(string, string)  {}
func (quiet) Change(remote.Change) {}
