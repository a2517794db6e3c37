package snapshot_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/local"
	"github.com/etcdkit/etcdkit/internal/member"
	"github.com/etcdkit/etcdkit/internal/snapshot"
)

func TestParseSchedule(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    etcdconf.Backup
		want []string // empty: valid
	}{
		{"standard cron", etcdconf.Backup{Dir: "/b", Schedule: "0 */6 * * *", Keep: 28}, nil},
		{"every", etcdconf.Backup{Dir: "/b", Schedule: "@every 1s"}, nil},
		{"with seconds", etcdconf.Backup{Dir: "/b", Schedule: "*/10 * * * * *"}, nil},
		{"bad cron", etcdconf.Backup{Dir: "/b", Schedule: "every six hours"}, []string{"etcd.yaml:4: etcdkit.backup.schedule: invalid cron expression", `"0 */6 * * *"`}},
		{"no dir", etcdconf.Backup{Schedule: "@hourly"}, []string{"etcdkit.backup.dir: required with a schedule"}},
		{"negative keep", etcdconf.Backup{Dir: "/b", Schedule: "@hourly", Keep: -1}, []string{"etcdkit.backup.keep: -1 is negative"}},
		{"dir without schedule", etcdconf.Backup{Dir: "/b"}, []string{"etcdkit.backup.schedule: required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := []byte("name: m1\netcdkit:\n  backup:\n    schedule: x\n    dir: /b\n")
			cfg := &etcdconf.Config{Name: "m1", Etcdkit: &etcdconf.Extensions{Backup: &tc.b}}
			s, err := snapshot.ParseSchedule(cfg, "etcd.yaml", src)
			if len(tc.want) == 0 {
				if err != nil || s == nil {
					t.Fatalf("ParseSchedule: %v", err)
				}
				if tc.b.Keep == 0 && s.Keep != snapshot.DefaultKeep {
					t.Fatalf("keep %d, want the default %d", s.Keep, snapshot.DefaultKeep)
				}
				return
			}
			if err == nil {
				t.Fatal("ParseSchedule accepted it")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if s, err := snapshot.ParseSchedule(&etcdconf.Config{}, "", nil); s != nil || err != nil {
		t.Fatalf("no backup section: %v %v", s, err)
	}
}

// TestScheduleFailureKeepsMemberRunning: a backup dir that cannot be
// created makes every scheduled snapshot fail; the member logs it, counts
// it in etcdkit_backup_snapshots_total{result="failure"} and keeps serving.
func TestScheduleFailureKeepsMemberRunning(t *testing.T) {
	d := local.Dir(filepath.Join(t.TempDir(), "c"))
	if _, err := d.Create(local.CreateOptions{Members: 1}); err != nil {
		t.Fatal(err)
	}
	cfgPath := d.Member("m1").Config()
	cfg, err := etcdconf.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	blocker := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Etcdkit = &etcdconf.Extensions{Backup: &etcdconf.Backup{Dir: filepath.Join(blocker, "backups"), Schedule: "@every 1s", Keep: 2}}
	cfg.LogOutputs = []string{filepath.Join(t.TempDir(), "member.log")}
	svcs, err := snapshot.Services(cfg, cfgPath, nil)
	if err != nil || len(svcs) != 1 {
		t.Fatalf("Services: %v %v", svcs, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ready := make(chan *embed.Etcd, 1)
	done := make(chan error, 1)
	go func() {
		done <- member.Run(ctx, member.Options{
			Config: cfg, ConfigPath: cfgPath, Services: svcs,
			Notify: func(string) error { return nil },
			Ready:  func(e *embed.Etcd) { ready <- e },
		})
	}()
	var e *embed.Etcd
	select {
	case e = <-ready:
	case err := <-done:
		t.Fatalf("member stopped: %v", err)
	}
	for failures(t) < 2 {
		select {
		case err := <-done:
			t.Fatalf("the member stopped after a failed backup: %v", err)
		case <-ctx.Done():
			t.Fatal("no failed backup was counted")
		case <-time.After(100 * time.Millisecond):
		}
	}
	// Still serving: a linearizable write and read.
	cli := v3client.New(e.Server)
	defer cli.Close()
	if _, err := cli.Put(ctx, "still", "serving"); err != nil {
		t.Fatalf("put after failed backups: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("member stopped: %v", err)
	default:
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("clean stop: %v", err)
	}
}

func failures(t *testing.T) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "etcdkit_backup_snapshots_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == "failure" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
