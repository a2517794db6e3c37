package bench

import (
	"fmt"
	"strings"
	"time"
)

// OverheadOptions configures OverheadBench.
type OverheadOptions struct {
	Runs  int
	Rerun string
}

// toolPair is an etcdkit command and the stock etcdctl command it stands
// in for.
type toolPair struct {
	etcdkit, stock []string
}

var overheadPairs = []toolPair{
	// Process start alone: both binaries print their version and exit,
	// which separates start-up cost from the work of the commands below.
	{[]string{"version"}, []string{"version"}},
	{[]string{"health", "--cluster"}, []string{"endpoint", "health", "--cluster"}},
	{[]string{"status", "--cluster"}, []string{"endpoint", "status", "--cluster"}},
}

// OverheadBench measures the wall time of etcdkit's health and status
// commands against etcdctl's on one running 3-member cluster, each a fresh
// process as an operator or a monitoring script runs them, alternating.
func OverheadBench(b *Binaries, o OverheadOptions, r Report) error {
	load := LoadAvg()
	c, err := StartCluster(b, ServerEtcdkit, ClusterOptions{Members: 3})
	if err != nil {
		return err
	}
	defer c.Close()
	env, err := c.Env()
	if err != nil {
		return err
	}
	type result struct{ kit, stock Sample }
	results := make([]result, len(overheadPairs))
	for i := 0; i < o.Runs; i++ {
		for p, pair := range overheadPairs {
			for _, etcdkit := range Interleave(i, true, false) {
				exe, args, dst := b.Etcdctl, pair.stock, &results[p].stock
				if etcdkit {
					exe, args, dst = b.Etcdkit, pair.etcdkit, &results[p].kit
				}
				start := time.Now()
				if _, err := runTool(exe, env, args...); err != nil {
					return err
				}
				dst.Runs = append(dst.Runs, time.Since(start))
			}
		}
	}
	r.Header("Tool overhead: health and status", o.Rerun, load)
	r.Printf("Wall time of one command, a fresh process each time (as an operator or a monitoring script runs it), against a healthy 3-member TLS cluster of etcdkit members; connection settings from `ETCDCTL_*` for both; `version` is process start-up alone. %d runs each, alternating. `etcdkit health` also reads each member's serving certificate for its expiry; `etcdkit status` also lists alarms and certificate expiry.\n\n", o.Runs)
	var rows [][]string
	for p, pair := range overheadPairs {
		res := results[p]
		for _, s := range []struct {
			cmd string
			v   Sample
		}{{"etcdkit " + strings.Join(pair.etcdkit, " "), res.kit}, {"etcdctl " + strings.Join(pair.stock, " "), res.stock}} {
			rows = append(rows, []string{"`" + s.cmd + "`", fmt.Sprint(len(s.v.Runs)), ms1(s.v.Min()), "**" + ms1(s.v.Median()) + "**", ms1(s.v.Max()), ""})
		}
		rows[len(rows)-1][5] = fmt.Sprintf("etcdkit/etcdctl %.2f", Ratio(res.kit, res.stock))
	}
	r.Table([]string{"command", "runs", "min", "median", "max", "ratio (medians)"}, rows)
	return nil
}

func ms1(d time.Duration) string { return fmt.Sprintf("%.1f ms", msf(d)) }
