package join

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"

	"github.com/etcdkit/etcdkit/internal/connect"
	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/fsutil"
	"github.com/etcdkit/etcdkit/internal/member"
	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/snapshot"
)

// PromoteWait is how long the endpoint waits for a member it added to
// start and catch up before it stops trying to promote it (the joiner
// promotes itself too; `etcdkit member promote NAME --wait` does later).
const PromoteWait = 30 * time.Minute

// Config is a member config's etcdkit.join block, checked.
type Config struct {
	Listen *url.URL
	// Advertise is the URL announced to `token create`: Listen, with the
	// member's client URL host when Listen binds every address.
	Advertise string
	CAPair    pki.Pair
	Layout    pki.Layout
	// Client is the member's own client identity, and ClientCA the CA
	// its client URLs are verified with.
	Client    pki.Pair
	ClientCA  string
	BackupDir string
	// Settings are copied to every joiner: what the operator set in this
	// member's config, so etcd's defaults stay defaults.
	Settings Settings
	// Validity of signed certificates: the serving member's own server
	// certificate's, so joined members renew on the same schedule.
	Validity time.Duration
}

// ParseConfig checks the etcdkit.join block of a member config. It returns
// nil when the endpoint is off. Errors name the file, the line and the key.
func ParseConfig(cfg *etcdconf.Config, file string) (*Config, error) {
	if cfg.Etcdkit == nil || cfg.Etcdkit.Join == nil {
		return nil, nil
	}
	j := cfg.Etcdkit.Join
	fail := func(key, format string, args ...any) error {
		full := "etcdkit.join." + key
		return &etcdconf.FieldError{File: file, Line: cfg.Line(full), Key: cfg.DisplayKey(full), Msg: fmt.Sprintf(format, args...)}
	}
	if j.Listen == "" {
		if j.CADir != "" || j.BackupDir != "" {
			return nil, fail("listen", "required to serve the join endpoint: its HTTPS URL, e.g. https://10.0.0.1:%d", DefaultPort)
		}
		return nil, nil
	}
	u, err := ParseListen(j.Listen)
	if err != nil {
		return nil, fail("listen", "%v", err)
	}
	c := &Config{Listen: u, Advertise: j.Listen, BackupDir: j.BackupDir, Settings: Settings{
		HeartbeatMs: cfg.HeartbeatInterval, ElectionMs: cfg.ElectionTimeout, SnapshotCount: cfg.SnapshotCount,
		QuotaBackendBytes: cfg.QuotaBackendBytes, MaxLearners: cfg.MaxLearners,
		AutoCompactionMode: cfg.AutoCompactionMode, AutoCompactionRetention: cfg.AutoCompactionRetention,
	}}
	if b := cfg.Etcdkit.Backup; b != nil && b.Schedule != "" {
		c.Settings.BackupDir, c.Settings.BackupSchedule, c.Settings.BackupKeep = b.Dir, b.Schedule, b.Keep
	}
	if ip := net.ParseIP(u.Hostname()); ip.IsUnspecified() {
		adv, err := etcdconf.URLs(cfg.AdvertiseClientURLs)
		if err != nil || len(adv) == 0 {
			return nil, fail("listen", "%q binds every address, and advertise-client-urls names no host to announce instead; listen on this member's IP", j.Listen)
		}
		c.Advertise = "https://" + net.JoinHostPort(adv[0].Hostname(), u.Port())
	}

	dir := j.CADir
	if dir == "" {
		dir = filepath.Dir(cfg.PeerTransportSecurity.TrustedCAFile)
		if cfg.PeerTransportSecurity.TrustedCAFile == "" {
			return nil, fail("listen", "the join endpoint needs the CA: set etcdkit.join.ca-dir to the directory of the CA certificate and key")
		}
	}
	if c.Layout, err = pki.DetectLayout(dir); err != nil {
		return nil, fail("ca-dir", "%v", err)
	}
	c.CAPair = c.Layout.CA(dir)
	if !fsutil.Exists(c.CAPair.Key) {
		return nil, fail("listen", "only a member holding the CA key can serve the join endpoint, and %s is not here; set etcdkit.join.ca-dir to the directory that has it, serve the endpoint from the member that holds it, or remove etcdkit.join", c.CAPair.Key)
	}
	if _, err := pki.OpenCA(c.Layout, dir); err != nil {
		return nil, fail("listen", "the join endpoint signs with the CA in %s: %v", dir, err)
	}

	cs, ps := cfg.ClientTransportSecurity, cfg.PeerTransportSecurity
	c.ClientCA = cs.TrustedCAFile
	candidates := []pki.Pair{{Cert: cs.ClientCertFile, Key: cs.ClientKeyFile}, {Cert: cs.CertFile, Key: cs.KeyFile}, {Cert: ps.CertFile, Key: ps.KeyFile}}
	for _, p := range candidates {
		if p.Cert == "" || p.Key == "" {
			continue
		}
		leaf, err := pki.LoadLeaf(p)
		if err != nil || !clientAuth(leaf.Cert) {
			continue
		}
		c.Client = p
		break
	}
	if c.Client.Cert == "" && cs.CertFile != "" {
		return nil, fail("listen", "the join endpoint reaches the cluster as a client with the member's certificates, and none of %s, %s allows client authentication; reissue the server certificate with `etcdkit pki issue server`", cs.CertFile, ps.CertFile)
	}
	if cs.CertFile != "" {
		if certs, err := pki.LoadCerts(cs.CertFile); err == nil {
			c.Validity = certs[0].NotAfter.Sub(certs[0].NotBefore)
		}
	}
	if c.BackupDir == "" && cfg.Etcdkit.Backup != nil {
		c.BackupDir = cfg.Etcdkit.Backup.Dir
	}
	if c.BackupDir == "" && cfg.DataDir != "" {
		c.BackupDir = filepath.Join(filepath.Dir(filepath.Clean(cfg.DataDir)), "backups")
	}
	return c, nil
}

func clientAuth(c *x509.Certificate) bool {
	return len(c.ExtKeyUsage) == 0 || slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth) || slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny)
}

// Services returns the join endpoint as a member.Service when the config
// enables it. It binds the port now, so a port in use stops `member run`
// before etcd starts rather than leaving a member without its endpoint.
func Services(cfg *etcdconf.Config, file string) ([]member.Service, error) {
	c, err := ParseConfig(cfg, file)
	if err != nil || c == nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", c.Listen.Host)
	if err != nil {
		return nil, &etcdconf.FieldError{File: file, Line: cfg.Line("etcdkit.join.listen"), Key: cfg.DisplayKey("etcdkit.join.listen"),
			Msg: fmt.Sprintf("cannot listen on %s: %v (find the process with `ss -ltnp`, or choose another port)", c.Listen.Host, err)}
	}
	return []member.Service{c.Service(ln)}, nil
}

// Service serves the endpoint on ln once the member is ready, announces
// it in etcd, and stops both when ctx ends.
func (c *Config) Service(ln net.Listener) member.Service {
	return func(ctx context.Context, e *embed.Etcd, lg *zap.Logger) {
		defer ln.Close()
		lg = lg.Named("join")
		ep, cli := c.endpoint(ctx, e, lg)
		defer cli.Close()
		ec := e.Config()
		var hosts []string
		for _, u := range append(append([]url.URL{}, ec.AdvertiseClientUrls...), ec.AdvertisePeerUrls...) {
			hosts = append(hosts, u.String())
		}
		certs := &certSource{pair: c.CAPair, hosts: pki.HostsForURLs(append(hosts, c.Advertise, c.Listen.String())...), lg: lg}
		if _, err := certs.current(); err != nil {
			lg.Error("the join endpoint cannot start; the member keeps running without it", zap.Error(err))
			return
		}
		srv := &http.Server{
			Handler:           ep.Handler(),
			TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.get},
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			ErrorLog:          stdLog(lg),
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
				lg.Error("the join endpoint stopped", zap.Error(err))
			}
		}()
		current := func() Advertised {
			a := Advertised{Member: ec.Name, URL: c.Advertise}
			if sc, err := certs.current(); err == nil {
				a.CAHash, _ = pki.PublicKeyPin(sc.ca.PublicKey)
			}
			return a
		}
		go announce(ctx, cli, fmt.Sprintf("%x", uint64(e.Server.MemberID())), current, lg, func(a Advertised) {
			lg.Info("join endpoint is serving", zap.String("url", a.URL), zap.String("ca-hash", a.CAHash))
		})
		select {
		case <-ctx.Done():
		case <-done:
		}
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
}

// endpoint builds the Endpoint of a running member.
func (c *Config) endpoint(ctx context.Context, e *embed.Etcd, lg *zap.Logger) (*Endpoint, *clientv3.Client) {
	ec := e.Config()
	var eps []string
	for _, u := range ec.AdvertiseClientUrls {
		eps = append(eps, u.String())
	}
	t := &connect.Target{Settings: connect.Settings{
		Endpoints: eps, CACert: c.ClientCA, Cert: c.Client.Cert, Key: c.Client.Key,
		DialTimeout: connect.DefaultDialTimeout, CommandTimeout: connect.DefaultCommandTimeout,
	}, Source: []string{"the member's own config"}}
	cli := v3client.New(e.Server)
	maxLearners := ec.MaxLearners
	if maxLearners == 0 {
		maxLearners = 1
	}
	ep := &Endpoint{
		CAPair: c.CAPair, Layout: c.Layout, Target: t, Store: &Store{Client: cli},
		ClusterName: ec.InitialClusterToken, MaxLearners: maxLearners, Validity: c.Validity, Log: lg,
		Settings: c.Settings,
	}
	if c.BackupDir != "" {
		dir := c.BackupDir
		ep.Backup = func(ctx context.Context, reason string) (string, error) {
			info, err := snapshot.Save(ctx, t, dir+string(filepath.Separator), snapshot.SaveOptions{Reason: reason})
			if err != nil {
				return "", err
			}
			return info.Path, nil
		}
	}
	ep.Promote = promoter(ctx, t, lg)
	return ep, cli
}

// promoter promotes each member the endpoint added once it has started and
// caught up, so a join with --no-start completes when the operator starts
// the member. One wait per member.
func promoter(ctx context.Context, t *connect.Target, lg *zap.Logger) func(string) {
	var mu sync.Mutex
	waiting := map[string]bool{}
	return func(id string) {
		mu.Lock()
		defer mu.Unlock()
		if waiting[id] {
			return
		}
		waiting[id] = true
		go func() {
			defer func() {
				mu.Lock()
				delete(waiting, id)
				mu.Unlock()
			}()
			res, err := ops.Promote(ctx, t, id, ops.PromoteOptions{Wait: true, Timeout: PromoteWait})
			switch {
			case ctx.Err() != nil:
			case err != nil:
				lg.Warn("could not promote the joined member; promote it with `etcdkit member promote ID --wait`", zap.String("member-id", id), zap.Error(err))
			case !res.AlreadyVoter:
				lg.Info("promoted the joined member to a voting member", zap.String("member-id", id), zap.String("name", res.Member.Name))
			}
		}()
	}
}

// certSource hands out the endpoint's serving certificate, issuing a new
// one when the CA on disk changed (a rotation) or the current one nears
// its end.
type certSource struct {
	pair  pki.Pair
	hosts []string
	lg    *zap.Logger

	mu      sync.Mutex
	cur     *servedCert
	tlsCert *tls.Certificate
	checked time.Time
}

const (
	servingValidity = 7 * 24 * time.Hour
	servingRenew    = 2 * 24 * time.Hour
	caRecheck       = time.Minute
)

func (s *certSource) current() (*servedCert, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil && time.Since(s.checked) < caRecheck && time.Until(s.cur.leaf.Cert.NotAfter) > servingRenew {
		return s.cur, nil
	}
	s.checked = time.Now()
	ca, err := pki.LoadCA(s.pair)
	if err != nil {
		if s.cur != nil {
			s.lg.Warn("cannot read the CA; serving the current certificate", zap.Error(err))
			return s.cur, nil
		}
		return nil, err
	}
	if s.cur != nil && bytes.Equal(ca.Cert.Raw, s.cur.ca.Raw) && time.Until(s.cur.leaf.Cert.NotAfter) > servingRenew {
		return s.cur, nil
	}
	sc, err := servingCert(ca, s.hosts, servingValidity)
	if err != nil {
		return nil, err
	}
	s.cur = sc
	s.tlsCert = &tls.Certificate{Certificate: sc.chain, PrivateKey: sc.leaf.Key, Leaf: sc.leaf.Cert}
	return sc, nil
}

func (s *certSource) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if _, err := s.current(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tlsCert, nil
}

// stdLog routes net/http's own messages (TLS handshake failures, panics)
// to the member's log as warnings.
func stdLog(lg *zap.Logger) *log.Logger {
	l, err := zap.NewStdLogAt(lg, zap.WarnLevel)
	if err != nil {
		return zap.NewStdLog(lg)
	}
	return l
}
