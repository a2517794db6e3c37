package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/etcdkit/etcdkit/internal/connect"
	"github.com/etcdkit/etcdkit/internal/local"
)

// UpEtcdkit measures `etcdkit up` in a new directory: from starting the
// command to the first acknowledged write, certificates and configs
// included.
func UpEtcdkit(b *Binaries, members int) (time.Duration, error) {
	dir, err := os.MkdirTemp("", "bench-up-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	d := local.Dir(filepath.Join(dir, "c"))
	cmd := exec.Command(b.Etcdkit, "up", "--dir", string(d), "--members", fmt.Sprint(members))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer stop(cmd)
	// The spec appears once `up` has made the PKI and configs; only then
	// are the endpoints known.
	var settings connect.Settings
	for {
		if settings, err = d.Settings(); err == nil {
			break
		}
		if time.Since(start) > time.Minute {
			return 0, fmt.Errorf("etcdkit up made no cluster in a minute: %w", err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := firstWrite(settings, start); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// UpStock measures N stock etcd servers started together, as systemd
// starts them on N hosts, from the same configs (etcd's --config-file reads
// etcdkit's rendered YAML) and certificates, made before the clock starts.
func UpStock(b *Binaries, members int) (time.Duration, error) {
	return upStock(b, members, false)
}

// UpRunbook measures the scripted runbook: the certificates made with the
// stock cfssl and cfssljson from cfssl JSON (a CA, a server and a peer
// certificate per member, a client certificate) inside the measured time,
// then N stock etcd servers started together from configs written
// beforehand (the runbook's hand-written etcd.conf).
func UpRunbook(b *Binaries, members int) (time.Duration, error) {
	return upStock(b, members, true)
}

func upStock(b *Binaries, members int, cfssl bool) (time.Duration, error) {
	dir, err := os.MkdirTemp("", "bench-stock-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	d := local.Dir(filepath.Join(dir, "c"))
	c, err := d.Create(local.CreateOptions{Members: members})
	if err != nil {
		return 0, err
	}
	settings, err := d.Settings()
	if err != nil {
		return 0, err
	}
	work := filepath.Join(dir, "cfssl")
	if cfssl {
		if err := removePKI(d, c); err != nil {
			return 0, err
		}
		if err := os.Mkdir(work, 0o700); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	if cfssl {
		if err := RunbookPKI(b, d, c, work); err != nil {
			return 0, err
		}
	}
	for _, m := range c.Members {
		cmd := exec.Command(b.StockEtcd, "--config-file", d.Member(m.Name).Config())
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		defer stop(cmd)
	}
	if err := firstWrite(settings, start); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// UpOptions configures UpBench.
type UpOptions struct {
	Runs, Members int
	Rerun         string
}

// UpBench measures the time from nothing to the first acknowledged write
// on each side, runs rotating between the sides.
func UpBench(b *Binaries, o UpOptions, r Report) error {
	load := LoadAvg()
	type side struct {
		s   *Sample
		run func(*Binaries, int) (time.Duration, error)
	}
	kit := &Sample{Name: fmt.Sprintf("`etcdkit up`, %d members (CA, certificates, spec and configs included)", o.Members)}
	book := &Sample{Name: fmt.Sprintf("runbook: cfssl CA and %d certificates from cfssl JSON, then %d stock etcd 3.7 processes", 2*o.Members+1, o.Members)}
	stock := &Sample{Name: fmt.Sprintf("stock etcd 3.7, %d processes, certificates made beforehand (lower bound, not timed)", o.Members)}
	sides := []side{{kit, UpEtcdkit}, {book, UpRunbook}, {stock, UpStock}}
	for i := 0; i < o.Runs; i++ {
		for _, sd := range Interleave(i, sides...) {
			d, err := sd.run(b, o.Members)
			if err != nil {
				return fmt.Errorf("%s, run %d: %w", sd.s.Name, i+1, err)
			}
			sd.s.Runs = append(sd.s.Runs, d)
			r.Logf("up run %d/%d: %s: %v", i+1, o.Runs, sd.s.Name, d.Round(time.Millisecond))
		}
	}
	r.Header("Time to a healthy cluster from nothing (`etcdkit up`)", o.Rerun, load)
	r.Printf("From starting the command to the first acknowledged write, %d members on 127.0.0.1-%d, TLS with client-certificate authentication on client and peer URLs; %d runs per side, sides rotating.\n\n", o.Members, o.Members, o.Runs)
	r.Printf("| time from start to first acknowledged write | runs | min | median | max |\n|---|---|---|---|---|\n")
	for _, s := range []*Sample{kit, book, stock} {
		r.Printf("%s\n", s.Row())
	}
	rb := Ratio(*kit, *book)
	r.Printf("\nRatio etcdkit/runbook (medians): %s (target: faster than the runbook); etcdkit/stock with certificates made beforehand: %.2f. Target well under 1 s for etcdkit: %s (median %s).\n\n",
		Verdict(rb, 1, false), Ratio(*kit, *stock), metOrMissed(kit.Median() < time.Second), ms(kit.Median()))
	return nil
}

// firstWrite puts a key through any endpoint until one put is acknowledged.
func firstWrite(s connect.Settings, start time.Time) error {
	t, err := connect.Resolve(s, connect.Settings{})
	if err != nil {
		return err
	}
	tlsCfg, err := t.TLS()
	if err != nil {
		return err
	}
	// The client exists before any member listens, so its first dials
	// fail; gRPC then waits its default reconnect backoff (1 s, +-20%)
	// before dialling again, which would time the harness instead of the
	// cluster. Retry dials every 10-50 ms, as an operator's polling would.
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: t.Endpoints, TLS: tlsCfg, DialTimeout: time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 50 * time.Millisecond},
			MinConnectTimeout: time.Second,
		})},
	})
	if err != nil {
		return err
	}
	defer cli.Close()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		_, err := cli.Put(ctx, "bench/first-write", "x")
		cancel()
		if err == nil {
			return nil
		}
		if time.Since(start) > time.Minute {
			return fmt.Errorf("no write acknowledged in a minute: %w", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stop ends a process group gracefully, then by force.
func stop(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

var errNoRuns = errors.New("no runs")

// Measure runs f n times.
func Measure(name string, n int, f func() (time.Duration, error)) (Sample, error) {
	s := Sample{Name: name}
	for i := 0; i < n; i++ {
		d, err := f()
		if err != nil {
			return s, fmt.Errorf("%s, run %d: %w", name, i+1, err)
		}
		s.Runs = append(s.Runs, d)
	}
	if len(s.Runs) == 0 {
		return s, errNoRuns
	}
	return s, nil
}
