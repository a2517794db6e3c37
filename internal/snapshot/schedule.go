package snapshot

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"
	"go.etcd.io/etcd/api/v3/version"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/member"
)

// DefaultKeep is how many scheduled snapshots are kept when the config
// does not say (28: a week of 6-hourly snapshots).
const DefaultKeep = 28

// cronParser reads standard 5-field cron ("0 */6 * * *"), an optional
// leading seconds field, and descriptors ("@hourly", "@every 30m").
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Schedule is a parsed backup configuration.
type Schedule struct {
	Dir  string
	Spec string
	Keep int
	next cron.Schedule
}

// ParseSchedule validates the etcdkit.backup section of a member config.
// It returns nil when the section is absent or has no schedule. Errors
// name the file, the line and the key.
func ParseSchedule(cfg *etcdconf.Config, file string, source []byte) (*Schedule, error) {
	if cfg.Etcdkit == nil || cfg.Etcdkit.Backup == nil {
		return nil, nil
	}
	b := cfg.Etcdkit.Backup
	var errs []error
	fail := func(key, format string, args ...any) {
		errs = append(errs, &etcdconf.FieldError{File: file, Line: etcdconf.LineOf(source, key), Key: "etcdkit.backup." + key, Msg: fmt.Sprintf(format, args...)})
	}
	if b.Schedule == "" {
		if b.Dir != "" || b.Keep != 0 {
			fail("schedule", `required to take scheduled snapshots: a cron expression such as "0 */6 * * *" or "@every 6h"`)
		}
		return nil, errors.Join(errs...)
	}
	s := &Schedule{Dir: b.Dir, Spec: b.Schedule, Keep: b.Keep}
	next, err := cronParser.Parse(b.Schedule)
	if err != nil {
		fail("schedule", `invalid cron expression %q (%v); use 5 fields such as "0 */6 * * *", or "@every 6h"`, b.Schedule, err)
	}
	s.next = next
	if b.Dir == "" {
		fail("dir", "required with a schedule: the directory the snapshots go to, e.g. /var/backups/etcd")
	}
	switch {
	case b.Keep < 0:
		fail("keep", "%d is negative; say how many snapshots to keep, e.g. 28", b.Keep)
	case b.Keep == 0:
		s.Keep = DefaultKeep
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// Services returns the in-member services a member config asks for:
// scheduled backups when etcdkit.backup has a schedule. `member run` adds
// them to member.Options.Services.
func Services(cfg *etcdconf.Config, file string, source []byte) ([]member.Service, error) {
	s, err := ParseSchedule(cfg, file, source)
	if err != nil || s == nil {
		return nil, err
	}
	return []member.Service{s.Run}, nil
}

// Metrics of scheduled backups, served on the member's /metrics with
// etcd's own.
var (
	metricsOnce    sync.Once
	backupsTotal   = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "etcdkit", Subsystem: "backup", Name: "snapshots_total", Help: "Scheduled snapshots this member attempted as leader, by result (success or failure)."}, []string{"result"})
	pruneErrors    = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "etcdkit", Subsystem: "backup", Name: "prune_failures_total", Help: "Failed retention runs after a scheduled snapshot."})
	lastSuccess    = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "etcdkit", Subsystem: "backup", Name: "last_success_timestamp_seconds", Help: "When this member last saved a scheduled snapshot (Unix time)."})
	lastFailure    = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "etcdkit", Subsystem: "backup", Name: "last_failure_timestamp_seconds", Help: "When a scheduled snapshot last failed on this member (Unix time)."})
	lastSize       = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "etcdkit", Subsystem: "backup", Name: "last_size_bytes", Help: "Size of the last scheduled snapshot this member saved."})
	lastDurationSe = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "etcdkit", Subsystem: "backup", Name: "last_duration_seconds", Help: "How long the last scheduled snapshot this member saved took."})
)

func registerMetrics() {
	metricsOnce.Do(func() {
		for _, c := range []prometheus.Collector{backupsTotal, pruneErrors, lastSuccess, lastFailure, lastSize, lastDurationSe} {
			if err := prometheus.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					panic(err) // a programming error: two metrics with one name
				}
			}
		}
		backupsTotal.WithLabelValues("success")
		backupsTotal.WithLabelValues("failure")
	})
}

// Run is the member.Service: at every tick of the schedule, the member
// that is the leader at that moment saves a snapshot of its own data (so
// a cluster takes one per tick, not one per member), then applies the
// retention. Failures are logged and counted; they never stop the member.
func (s *Schedule) Run(ctx context.Context, e *embed.Etcd, lg *zap.Logger) {
	registerMetrics()
	lg = lg.Named("backup")
	cli := v3client.New(e.Server)
	defer cli.Close()
	lg.Info("scheduled backups enabled", zap.String("dir", s.Dir), zap.String("schedule", s.Spec), zap.Int("keep", s.Keep))
	for {
		tick := s.next.Next(time.Now())
		timer := time.NewTimer(time.Until(tick))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		if !confirmLeader(ctx, e, cli) {
			continue
		}
		s.take(ctx, e, cli, tick, lg)
	}
}

func (s *Schedule) take(ctx context.Context, e *embed.Etcd, cli *clientv3.Client, tick time.Time, lg *zap.Logger) {
	start := time.Now()
	info, err := saveFrom(ctx, cli, sourceOf(e), s.Dir+string(filepath.Separator), SaveOptions{Reason: "scheduled", Time: tick})
	if err != nil {
		if ctx.Err() != nil {
			return // the member is stopping
		}
		backupsTotal.WithLabelValues("failure").Inc()
		lastFailure.SetToCurrentTime()
		lg.Warn("scheduled snapshot failed; the member keeps running", zap.String("dir", s.Dir), zap.Error(err))
		return
	}
	took := time.Since(start)
	backupsTotal.WithLabelValues("success").Inc()
	lastSuccess.SetToCurrentTime()
	lastSize.Set(float64(info.Size))
	lastDurationSe.Set(took.Seconds())
	lg.Info("saved scheduled snapshot", zap.String("path", info.Path), zap.Int64("revision", info.Revision),
		zap.Int("keys", info.TotalKeys), zap.Int64("size", info.Size), zap.Duration("took", took))
	res, err := Prune(s.Dir, PruneOptions{Keep: s.Keep})
	if err != nil {
		pruneErrors.Inc()
		lg.Warn("pruning old snapshots failed", zap.String("dir", s.Dir), zap.Error(err))
	}
	if res != nil {
		for _, d := range res.Deleted {
			lg.Info("pruned snapshot", zap.String("path", d.Path), zap.Int("keep", s.Keep))
		}
	}
}

// confirmLeader reports whether this member leads, confirmed by the
// cluster: a leader cut off from its peers still believes it leads until
// it notices, and must not snapshot the same tick as the new leader. A
// linearizable read needs a quorum to acknowledge the leader's term.
func confirmLeader(ctx context.Context, e *embed.Etcd, cli *clientv3.Client) bool {
	if e.Server.Leader() != e.Server.MemberID() {
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := cli.Get(cctx, "etcdkit/backup/leader-check", clientv3.WithCountOnly()); err != nil {
		return false
	}
	return e.Server.Leader() == e.Server.MemberID()
}

// sourceOf describes the member itself as a snapshot source.
func sourceOf(e *embed.Etcd) Source {
	src := Source{
		Name:     e.Config().Name,
		MemberID: e.Server.MemberID().String(),
		Version:  version.Version,
		DBSize:   e.Server.Backend().Size(),
	}
	if urls := e.Config().AdvertiseClientUrls; len(urls) > 0 {
		src.Endpoint = urls[0].String()
	}
	return src
}
