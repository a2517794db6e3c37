// Command etcdkit-bench runs etcdkit's benchmarks side by side with stock
// etcd, etcdctl, etcdutl and a cfssl runbook, and prints Markdown ready
// for BENCHMARKS.md on stdout (progress goes to stderr):
//
//	go run ./bench/cmd/etcdkit-bench all > results.md
//	go run ./bench/cmd/etcdkit-bench up|load|replace|snapshot|scaling|overhead [flags]
//
// Each benchmark prints its own exact rerun command. `-h` after a
// benchmark's name lists its flags.
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/etcdkit/etcdkit/bench"
)

// benchmark is one subcommand: its flags and what it runs.
type benchmark struct {
	summary string
	flags   func(fs *flag.FlagSet) func(b *bench.Binaries, r bench.Report, rerun string) error
}

var benchmarks = map[string]benchmark{
	"up": {"time to a healthy cluster from nothing: etcdkit up vs a cfssl + stock etcd runbook", func(fs *flag.FlagSet) func(*bench.Binaries, bench.Report, string) error {
		o := bench.UpOptions{}
		fs.IntVar(&o.Runs, "runs", 5, "measurements of each side")
		fs.IntVar(&o.Members, "members", 3, "cluster size")
		return func(b *bench.Binaries, r bench.Report, rerun string) error {
			o.Rerun = rerun
			return bench.UpBench(b, o, r)
		}
	}},
	"load": {"throughput and p99 latency with etcd's benchmark tool, plus etcdctl check perf", func(fs *flag.FlagSet) func(*bench.Binaries, bench.Report, string) error {
		o := bench.LoadOptions{}
		clients := fs.String("clients", "1,10,100", "client counts, comma-separated")
		workloads := fs.String("workloads", "put,range,txn-mixed", "etcd benchmark workloads, comma-separated")
		fs.IntVar(&o.Runs, "runs", 5, "runs of each workload and client count per side")
		fs.IntVar(&o.Total, "total", 10000, "requests per run")
		fs.IntVar(&o.CheckPerfRuns, "check-perf-runs", 2, "runs of `etcdctl check perf` per side (60 s each); 0 skips it")
		fs.StringVar(&o.ProfileDir, "pprof", "", "directory for CPU profiles of each side's leader during put (enables pprof on both sides)")
		fs.BoolVar(&o.Calibrate, "calibrate", false, "stock etcd on both sides (A/A): the harness's own bias and noise")
		return func(b *bench.Binaries, r bench.Report, rerun string) error {
			var err error
			if o.Clients, err = ints(*clients); err != nil {
				return err
			}
			o.Workloads = strings.Split(*workloads, ",")
			o.Rerun = rerun
			return bench.LoadBench(b, o, r)
		}
	}},
	"replace": {"member replacement: time to all voters healthy, writer's longest gap and failed writes", func(fs *flag.FlagSet) func(*bench.Binaries, bench.Report, string) error {
		o := bench.ReplaceOptions{}
		fs.IntVar(&o.Runs, "runs", 5, "replacements per side")
		return func(b *bench.Binaries, r bench.Report, rerun string) error {
			o.Rerun = rerun
			return bench.ReplaceBench(b, o, r)
		}
	}},
	"snapshot": {"snapshot save/restore throughput vs etcdctl/etcdutl, whole-cluster restore vs one member", func(fs *flag.FlagSet) func(*bench.Binaries, bench.Report, string) error {
		o := bench.SnapshotOptions{}
		size := fs.String("size", "256MiB", "database size to fill to (the target is 1GiB)")
		fs.IntVar(&o.Runs, "runs", 5, "measurements of each side")
		return func(b *bench.Binaries, r bench.Report, rerun string) error {
			var err error
			if o.Size, err = bench.ParseSize(*size); err != nil {
				return err
			}
			o.Rerun = rerun
			return bench.SnapshotBench(b, o, r)
		}
	}},
	"scaling": {"save, restore and learner catch-up time against database size, with an SVG plot", func(fs *flag.FlagSet) func(*bench.Binaries, bench.Report, string) error {
		o := bench.ScalingOptions{}
		sizes := fs.String("sizes", "100MB,500MB,1GiB", "database sizes, comma-separated, ascending")
		fs.IntVar(&o.Runs, "runs", 3, "measurements of each side at each size")
		fs.StringVar(&o.SVG, "svg", "bench/scaling.svg", "where to write the plot")
		return func(b *bench.Binaries, r bench.Report, rerun string) error {
			for _, s := range strings.Split(*sizes, ",") {
				n, err := bench.ParseSize(s)
				if err != nil {
					return err
				}
				o.Sizes = append(o.Sizes, n)
			}
			o.Rerun = rerun
			return bench.ScalingBench(b, o, r)
		}
	}},
	"overhead": {"etcdkit health/status vs etcdctl endpoint health/status --cluster wall time", func(fs *flag.FlagSet) func(*bench.Binaries, bench.Report, string) error {
		o := bench.OverheadOptions{}
		fs.IntVar(&o.Runs, "runs", 20, "invocations of each command")
		return func(b *bench.Binaries, r bench.Report, rerun string) error {
			o.Rerun = rerun
			return bench.OverheadBench(b, o, r)
		}
	}},
}

// order is how `all` runs them: quick ones first.
var order = []string{"up", "overhead", "replace", "load", "snapshot", "scaling"}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: etcdkit-bench BENCHMARK [flags] > section.md\n\nbenchmarks:")
	names := append([]string{}, order...)
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-9s %s\n", n, benchmarks[n].summary)
	}
	fmt.Fprintln(os.Stderr, "  all       every benchmark in turn; -runs N overrides each one's default, -size the snapshot database (default 1GiB)")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		os.Exit(2)
	}
	name := os.Args[1]
	r := bench.Report{Out: os.Stdout, Log: os.Stderr}
	if name == "all" {
		os.Exit(runAll(r, os.Args[2:]))
	}
	bm, ok := benchmarks[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown benchmark %q\n", name)
		usage()
		os.Exit(2)
	}
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	run := bm.flags(fs)
	_ = fs.Parse(os.Args[2:])
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "%s takes no arguments; got %q\n", name, fs.Args())
		os.Exit(2)
	}
	b, cleanup, err := build(r)
	if err != nil {
		fail(err)
	}
	defer cleanup()
	if err := run(b, r, rerunCommand(name, fs)); err != nil {
		cleanup()
		fail(err)
	}
}

// runAll runs every benchmark with its defaults, -runs overriding each
// one's count when given.
func runAll(r bench.Report, args []string) int {
	fs := flag.NewFlagSet("all", flag.ExitOnError)
	runs := fs.Int("runs", 0, "measurements per side for every benchmark (0: each one's default)")
	size := fs.String("size", "1GiB", "database size of the snapshot benchmark (the issue's target is 1GiB)")
	_ = fs.Parse(args)
	b, cleanup, err := build(r)
	if err != nil {
		fail(err)
	}
	defer cleanup()
	failed := 0
	for _, name := range order {
		bfs := flag.NewFlagSet(name, flag.ExitOnError)
		run := benchmarks[name].flags(bfs)
		if *runs > 0 {
			_ = bfs.Set("runs", strconv.Itoa(*runs))
		}
		if name == "snapshot" {
			_ = bfs.Set("size", *size)
		}
		r.Logf("=== %s", name)
		if err := run(b, r, rerunCommand(name, bfs)); err != nil {
			fmt.Fprintf(os.Stderr, "Error: %s: %v\n", name, err)
			r.Printf("## %s\n\nFailed: %v\n\n", name, err)
			failed++
		}
	}
	if failed > 0 {
		return 1
	}
	return 0
}

// rerunCommand is the command line that reproduces a benchmark with the
// flag values it ran with, and TMPDIR when set: the file system under the
// data dirs decides every write benchmark.
func rerunCommand(name string, fs *flag.FlagSet) string {
	parts := []string{"go run ./bench/cmd/etcdkit-bench", name}
	if tmp := os.Getenv("TMPDIR"); tmp != "" {
		parts = append([]string{"TMPDIR=" + tmp}, parts...)
	}
	fs.VisitAll(func(f *flag.Flag) {
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			// "-name false" would set it and leave "false" behind.
			if f.Value.String() == "true" {
				parts = append(parts, "-"+f.Name)
			}
			return
		}
		if f.Value.String() != "" {
			parts = append(parts, "-"+f.Name, f.Value.String())
		}
	})
	return strings.Join(parts, " ")
}

func build(r bench.Report) (*bench.Binaries, func(), error) {
	dir, err := os.MkdirTemp("", "etcdkit-bench-bin-")
	if err != nil {
		return nil, nil, err
	}
	r.Logf("building etcdkit, stock etcd and etcd's benchmark tool")
	b, err := bench.Build(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return b, func() { os.RemoveAll(dir) }, nil
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("invalid count %q: use positive integers separated by commas", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "Error:", err)
	os.Exit(1)
}
