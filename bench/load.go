package bench

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Workload is one run of etcd's benchmark tool.
type Workload struct {
	// Name is the tool's subcommand: put, range or txn-mixed.
	Name    string
	Clients int
	Total   int
}

// Conns is the number of gRPC connections for the client count: one per
// client up to 10, then one per 10 clients (etcd's performance docs use
// 100 connections for 1000 clients).
func (w Workload) Conns() int {
	if w.Clients <= 10 {
		return w.Clients
	}
	return (w.Clients + 9) / 10
}

// RangeKey is the key the range workload reads; Prepare writes it.
const RangeKey = "bench-range-key"

// Args are the benchmark tool's arguments, apart from endpoints and TLS.
// The workloads follow etcd's documented performance runs: 8-byte keys,
// 256-byte values, linearizable reads.
func (w Workload) Args() []string {
	common := []string{"--clients", strconv.Itoa(w.Clients), "--conns", strconv.Itoa(w.Conns()), "--precise"}
	total := strconv.Itoa(w.Total)
	switch w.Name {
	case "put":
		return append([]string{"put", "--key-size", "8", "--val-size", "256", "--sequential-keys",
			"--key-space-size", "100000", "--total", total}, common...)
	case "range":
		return append([]string{"range", RangeKey, "--consistency", "l", "--total", total}, common...)
	case "txn-mixed":
		return append([]string{"txn-mixed", "", "--key-size", "8", "--val-size", "256",
			"--key-space-size", "1000", "--rw-ratio", "1", "--limit", "100", "--total", total}, common...)
	}
	return nil
}

// LoadResult is what one run of the tool reports.
type LoadResult struct {
	RPS float64
	// P50 and P99 are latency percentiles.
	P50, P99 time.Duration
	Errors   int
}

var (
	rpsRe = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	pctRe = regexp.MustCompile(`(?m)^\s*([0-9.]+)% in ([0-9.]+) secs`)
	errRe = regexp.MustCompile(`(?m)^\s*\[(\d+)\]\s`)
)

// RunLoad runs one workload of etcd's benchmark tool against c and parses
// its report.
func RunLoad(b *Binaries, c *Cluster, w Workload) (LoadResult, error) {
	t, err := c.Target()
	if err != nil {
		return LoadResult{}, err
	}
	args := append(w.Args(), "--endpoints", strings.Join(t.Endpoints, ","),
		"--cacert", t.CACert, "--cert", t.Cert, "--key", t.Key, "--dial-timeout", "5s")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.Benchmark, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return LoadResult{}, fmt.Errorf("etcd benchmark %s: %w\n%s%s", strings.Join(args, " "), err, out.String(), tailString(errOut.String(), 2000))
	}
	return ParseLoad(out.String())
}

// ParseLoad reads the report etcd's benchmark tool prints
// (go.etcd.io/etcd/pkg/v3/report).
func ParseLoad(out string) (LoadResult, error) {
	var r LoadResult
	m := rpsRe.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in the benchmark's report:\n%s", tailString(out, 2000))
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	for _, p := range pctRe.FindAllStringSubmatch(out, -1) {
		secs, _ := strconv.ParseFloat(p[2], 64)
		d := time.Duration(secs * float64(time.Second))
		switch p[1] {
		case "50":
			r.P50 = d
		case "99":
			r.P99 = d
		}
	}
	if i := strings.Index(out, "Error distribution:"); i >= 0 {
		for _, e := range errRe.FindAllStringSubmatch(out[i:], -1) {
			n, _ := strconv.Atoi(e[1])
			r.Errors += n
		}
	}
	return r, nil
}

// PrepareLoad writes the key the range workload reads (256 bytes, as
// put's values).
func PrepareLoad(c *Cluster) error {
	cli, err := c.Client()
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = cli.Put(ctx, RangeKey, strings.Repeat("v", 256))
	return err
}

// CheckPerf is what the stock `etcdctl check perf` reports.
type CheckPerf struct {
	Pass       bool
	Throughput float64 // writes/s
	Slowest    time.Duration
	Stddev     time.Duration
}

var (
	cpThroughputRe = regexp.MustCompile(`Throughput (?:is|too low:) (\d+) writes/s`)
	cpSlowestRe    = regexp.MustCompile(`Slowest request took (?:too long: )?([0-9.]+)s`)
	cpStddevRe     = regexp.MustCompile(`Stddev (?:is|too high:) ([0-9.]+)s`)
)

// RunCheckPerf runs `etcdctl check perf --load s` (a fixed 60 s of 150
// writes/s from 50 clients) against c. A FAIL verdict is a result, not an
// error.
func RunCheckPerf(b *Binaries, c *Cluster) (CheckPerf, error) {
	env, err := c.Env()
	if err != nil {
		return CheckPerf{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.Etcdctl, "check", "perf", "--load", "s")
	cmd.Env = append(cmd.Environ(), env...)
	out, _ := cmd.CombinedOutput()
	return ParseCheckPerf(string(out))
}

// ParseCheckPerf reads etcdctl check perf's verdict lines.
func ParseCheckPerf(out string) (CheckPerf, error) {
	var r CheckPerf
	m := cpThroughputRe.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("etcdctl check perf printed no throughput:\n%s", tailString(out, 2000))
	}
	r.Throughput, _ = strconv.ParseFloat(m[1], 64)
	if m := cpSlowestRe.FindStringSubmatch(out); m != nil {
		s, _ := strconv.ParseFloat(m[1], 64)
		r.Slowest = time.Duration(s * float64(time.Second))
	}
	if m := cpStddevRe.FindStringSubmatch(out); m != nil {
		s, _ := strconv.ParseFloat(m[1], 64)
		r.Stddev = time.Duration(s * float64(time.Second))
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	r.Pass = strings.TrimSpace(lines[len(lines)-1]) == "PASS"
	return r, nil
}

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
