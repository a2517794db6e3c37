package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
)

// LoadOptions configures LoadBench.
type LoadOptions struct {
	Runs      int
	Clients   []int
	Total     int
	Workloads []string
	// CheckPerfRuns is how many times each side runs `etcdctl check perf`
	// (60 s each); 0 skips it.
	CheckPerfRuns int
	// ProfileDir, when set, enables pprof on both sides' members and saves
	// a CPU profile of each side's leader during one put run there.
	ProfileDir string
	// Calibrate runs stock etcd on both sides (an A/A run): the ratios it
	// reports are the harness's own bias and noise, the yardstick for the
	// etcdkit/stock ratios of a real run on the same machine.
	Calibrate bool
	// Rerun is the command line that reproduces this run.
	Rerun string
}

// loadKey identifies one cell of the table.
type loadKey struct {
	workload string
	clients  int
	server   Server
}

type loadCell struct {
	rps, p99 Values
	errors   int
}

// LoadBench measures throughput and latency of a 3-member TLS cluster of
// `etcdkit member run` processes against one of stock etcd processes from
// the same configs, both running at once, with etcd's own benchmark tool;
// runs alternate between the sides.
func LoadBench(b *Binaries, o LoadOptions, r Report) error {
	load := LoadAvg()
	var tweak func(*etcdconf.Config)
	if o.ProfileDir != "" {
		tweak = func(c *etcdconf.Config) {
			if c.Extra == nil {
				c.Extra = map[string]any{}
			}
			c.Extra["enable-pprof"] = true
		}
	}
	clusters := map[Server]*Cluster{}
	for _, s := range []Server{ServerEtcdkit, ServerStock} {
		runs := s
		if o.Calibrate {
			runs = ServerStock
		}
		c, err := StartCluster(b, runs, ClusterOptions{Members: 3, Tweak: tweak})
		if err != nil {
			return err
		}
		defer c.Close()
		if err := PrepareLoad(c); err != nil {
			return err
		}
		clusters[s] = c
	}
	cells := map[loadKey]*loadCell{}
	for i := 0; i < o.Runs; i++ {
		for _, wl := range o.Workloads {
			for _, n := range o.Clients {
				w := Workload{Name: wl, Clients: n, Total: o.Total}
				for _, s := range Interleave(i, ServerEtcdkit, ServerStock) {
					res, err := RunLoad(b, clusters[s], w)
					if err != nil {
						return fmt.Errorf("%s, run %d: %w", s.Label(), i+1, err)
					}
					k := loadKey{wl, n, s}
					if cells[k] == nil {
						cells[k] = &loadCell{}
					}
					cells[k].rps.Add(res.RPS)
					cells[k].p99.Add(msf(res.P99))
					cells[k].errors += res.Errors
					r.Logf("load run %d/%d %s clients=%d %s: %.0f req/s, p99 %.1f ms", i+1, o.Runs, wl, n, s, res.RPS, msf(res.P99))
				}
			}
		}
	}

	kitName, stockName := "etcdkit", "stock"
	if o.Calibrate {
		kitName, stockName = "stock A", "stock B"
		r.Header("Throughput and latency, calibration: stock etcd on both sides", o.Rerun, load)
		r.Printf("An A/A run: the harness below with stock etcd in both clusters, side A where a real run has etcdkit. Every ratio away from 1 here is the harness's own (which cluster started first, which runs first, the other cluster idling beside it) and the machine's noise.\n\n")
	} else {
		r.Header("Throughput and latency, 3-member TLS cluster", o.Rerun, load)
	}
	r.Printf("etcd's own benchmark tool (`go.etcd.io/etcd/v3/tools/benchmark` v3.7.1, `bench/cmd/etcd-benchmark`) against two 3-member clusters running at once on 127.0.0.1-3, TLS with client certificates on client and peer URLs: one of `etcdkit member run` processes, one of stock etcd 3.7 processes (`bench/cmd/stock-etcd`) reading the same rendered YAML with `--config-file`. %d runs of each workload and client count, sides alternating; %d requests per run; 8-byte keys, 256-byte values, linearizable reads; `txn-mixed` is 1:1 read/write with range limit 100 over 1000 keys. Cells are min / **median** / max; ratios are etcdkit/stock of medians.\n\n", o.Runs, o.Total)
	var rows [][]string
	var missed []string
	for _, wl := range o.Workloads {
		for _, n := range o.Clients {
			kit, stock := cells[loadKey{wl, n, ServerEtcdkit}], cells[loadKey{wl, n, ServerStock}]
			tr, lr := VRatio(kit.rps, stock.rps), VRatio(kit.p99, stock.p99)
			rows = append(rows, []string{wl, fmt.Sprint(n),
				kit.rps.Spread("%.0f"), stock.rps.Spread("%.0f"), Verdict(tr, 0.97, true),
				kit.p99.Spread("%.1f"), stock.p99.Spread("%.1f"), Verdict(lr, 1.03, false),
				fmt.Sprintf("%d / %d", kit.errors, stock.errors)})
			if tr < 0.97 {
				missed = append(missed, fmt.Sprintf("%s with %d clients: throughput ratio %.2f", wl, n, tr))
			}
			if lr > 1.03 {
				missed = append(missed, fmt.Sprintf("%s with %d clients: p99 ratio %.2f", wl, n, lr))
			}
		}
	}
	r.Table([]string{"workload", "clients", kitName + " req/s", stockName + " req/s", "throughput ratio (target >= 0.97)",
		kitName + " p99 ms", stockName + " p99 ms", "p99 ratio (target <= 1.03)", "errors " + kitName + " / " + stockName}, rows)
	if len(missed) == 0 {
		r.Printf("Every cell met both targets in this run.\n\n")
	} else {
		r.Printf("Cells outside a target in this run: %s.\n\n", strings.Join(missed, "; "))
	}
	tp, lat := pooledRatios(cells, o)
	r.Printf("All workloads and client counts pooled, each "+kitName+" run against the "+stockName+" run beside it (geometric mean of the paired ratios, 95%% bootstrap interval): throughput ratio %s, target >= 0.97 %s; p99 ratio %s, target <= 1.03 %s. \"Met\" means the whole interval is on the target's side, \"not decided\" that it straddles the target.\n\n",
		tp, tp.Verdict(0.97, true), lat, lat.Verdict(1.03, false))

	if o.CheckPerfRuns > 0 && !o.Calibrate {
		if err := checkPerfSection(b, clusters, o.CheckPerfRuns, r); err != nil {
			return err
		}
	}
	if o.ProfileDir != "" && !o.Calibrate {
		if err := profileSection(b, clusters, cells, o, r); err != nil {
			return err
		}
	}
	return nil
}

// pooledRatios pairs every etcdkit run with the stock run of the same
// workload, client count and round (the two ran one after the other), over
// every cell: one throughput and one p99 PairedRatio for the whole table.
func pooledRatios(cells map[loadKey]*loadCell, o LoadOptions) (throughput, p99 PairedRatio) {
	var kitRPS, stockRPS, kitP99, stockP99 []float64
	for _, wl := range o.Workloads {
		for _, n := range o.Clients {
			kit, stock := cells[loadKey{wl, n, ServerEtcdkit}], cells[loadKey{wl, n, ServerStock}]
			kitRPS, stockRPS = append(kitRPS, kit.rps.Runs...), append(stockRPS, stock.rps.Runs...)
			kitP99, stockP99 = append(kitP99, kit.p99.Runs...), append(stockP99, stock.p99.Runs...)
		}
	}
	return NewPairedRatio(kitRPS, stockRPS), NewPairedRatio(kitP99, stockP99)
}

func checkPerfSection(b *Binaries, clusters map[Server]*Cluster, runs int, r Report) error {
	res := map[Server]*struct {
		slowest, stddev, tput Values
		pass                  int
	}{}
	for _, s := range []Server{ServerEtcdkit, ServerStock} {
		res[s] = &struct {
			slowest, stddev, tput Values
			pass                  int
		}{}
	}
	for i := 0; i < runs; i++ {
		for _, s := range Interleave(i, ServerEtcdkit, ServerStock) {
			r.Logf("etcdctl check perf run %d/%d on %s (60 s)", i+1, runs, s)
			cp, err := RunCheckPerf(b, clusters[s])
			if err != nil {
				return fmt.Errorf("%s: %w", s.Label(), err)
			}
			x := res[s]
			x.tput.Add(cp.Throughput)
			x.slowest.Add(msf(cp.Slowest))
			x.stddev.Add(msf(cp.Stddev))
			if cp.Pass {
				x.pass++
			}
		}
	}
	r.Printf("Cross-check with the stock `etcdctl check perf --load s` (60 s of writes at 150/s from 50 clients; it passes at >= 90%% of that rate, slowest <= 500 ms, stddev <= 100 ms), %d run(s) per side, same clusters:\n\n", runs)
	var rows [][]string
	for _, s := range []Server{ServerEtcdkit, ServerStock} {
		x := res[s]
		rows = append(rows, []string{s.Label(), fmt.Sprintf("%d of %d", x.pass, runs), x.tput.Spread("%.0f"), x.slowest.Spread("%.1f"), x.stddev.Spread("%.1f")})
	}
	r.Table([]string{"server", "PASS", "writes/s", "slowest ms", "stddev ms"}, rows)
	return nil
}

// profileSection takes a 10 s CPU profile of each side's leader while the
// put workload with the most clients runs, sized from the measured rate so
// it outlasts the profile.
func profileSection(b *Binaries, clusters map[Server]*Cluster, cells map[loadKey]*loadCell, o LoadOptions, r Report) error {
	if err := os.MkdirAll(o.ProfileDir, 0o755); err != nil {
		return err
	}
	const secs = 10
	n := o.Clients[len(o.Clients)-1]
	r.Printf("CPU profiles of each side's leader, %d s during `put` with %d clients (`go tool pprof -top BINARY FILE`, cumulative):\n\n", secs, n)
	for _, s := range []Server{ServerEtcdkit, ServerStock} {
		w := Workload{Name: "put", Clients: n, Total: o.Total}
		if c := cells[loadKey{"put", n, s}]; c != nil {
			w.Total = max(w.Total, int(c.rps.Median()*secs*1.5))
		}
		path := filepath.Join(o.ProfileDir, fmt.Sprintf("cpu-%s-put-%d.pprof", s, n))
		errc := make(chan error, 1)
		go func() { errc <- fetchProfile(clusters[s], secs, path) }()
		if _, err := RunLoad(b, clusters[s], w); err != nil {
			return err
		}
		if err := <-errc; err != nil {
			return fmt.Errorf("%s: profile: %w", s.Label(), err)
		}
		exe := b.Etcdkit
		if s == ServerStock {
			exe = b.StockEtcd
		}
		top, _ := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=25", exe, path).CombinedOutput()
		r.Printf("%s, `%s`:\n\n```\n%s```\n\n", s.Label(), path, top)
	}
	return nil
}

func fetchProfile(c *Cluster, secs int, path string) error {
	leader, err := c.Leader()
	if err != nil {
		return err
	}
	m, _ := c.Spec.Member(leader)
	t, err := c.Target(leader)
	if err != nil {
		return err
	}
	tlsCfg, err := t.TLS()
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+30)*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", m.ClientURL, secs), nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", req.URL, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}
