package bench

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs every benchmark once with tiny parameters so they keep
// compiling and working against real members and the real stock tools. It
// checks that each prints its Markdown section, never how fast anything
// was. `etcdctl check perf` is left out: it always runs for 60 s.
func TestSmoke(t *testing.T) {
	b, err := Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	svg := filepath.Join(t.TempDir(), "scaling.svg")
	for _, tc := range []struct {
		name string
		run  func(Report) error
		want []string
	}{
		{"up", func(r Report) error { return UpBench(b, UpOptions{Runs: 1, Members: 3, Rerun: "x"}, r) },
			[]string{"## Time to a healthy cluster", "runbook: cfssl CA", "Ratio etcdkit/runbook"}},
		{"overhead", func(r Report) error { return OverheadBench(b, OverheadOptions{Runs: 1, Rerun: "x"}, r) },
			[]string{"`etcdkit health --cluster`", "`etcdctl endpoint status --cluster`"}},
		{"load", func(r Report) error {
			return LoadBench(b, LoadOptions{Runs: 1, Clients: []int{2}, Total: 40, Workloads: []string{"put", "range", "txn-mixed"}, Rerun: "x"}, r)
		}, []string{"| put | 2 |", "| range | 2 |", "| txn-mixed | 2 |"}},
		{"replace", func(r Report) error { return ReplaceBench(b, ReplaceOptions{Runs: 1, Rerun: "x"}, r) },
			[]string{"runbook: etcdctl member remove/add", "| 1 |"}},
		{"snapshot", func(r Report) error { return SnapshotBench(b, SnapshotOptions{Runs: 1, Size: 2 << 20, Rerun: "x"}, r) },
			[]string{"`etcdutl snapshot restore` (one member)", "Whole-cluster restore"}},
		{"scaling", func(r Report) error {
			return ScalingBench(b, ScalingOptions{Runs: 1, Sizes: []int64{1 << 20, 2 << 20}, SVG: svg, Rerun: "x"}, r)
		}, []string{"catch-up, stock learner", "scaling.svg"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := tc.run(Report{Out: &out}); err != nil {
				t.Fatal(err)
			}
			for _, w := range append(tc.want, "Rerun:", "Machine:") {
				if !strings.Contains(out.String(), w) {
					t.Fatalf("the report lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
	data, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("<svg")) || bytes.Count(data, []byte("<polyline")) != 7 {
		t.Fatalf("the plot lacks its 7 lines:\n%s", data)
	}
}

// TestReplaceNotAvailable: the replace harness says why it skips the
// etcdkit side rather than failing, while the binary lacks the command.
func TestReplaceNotAvailable(t *testing.T) {
	b := &Binaries{Etcdkit: "/bin/true"}
	if err := ReplaceAvailable(b); !errors.Is(err, ErrNotAvailable) {
		t.Fatalf("want ErrNotAvailable, got %v", err)
	}
	if _, err := ReplaceEtcdkit(b); !errors.Is(err, ErrNotAvailable) {
		t.Fatalf("want ErrNotAvailable, got %v", err)
	}
}

func TestParseLoad(t *testing.T) {
	// As go.etcd.io/etcd/pkg/v3/report prints it with --precise.
	out := `bench with linearizable range

Summary:
  Total:	2.0100 secs.
  Slowest:	0.0410 secs.
  Fastest:	0.0010 secs.
  Average:	0.0050 secs.
  Stddev:	0.0030 secs.
  Requests/sec:	4975.1243

Response time histogram:
  0.0010 [1]	|

Latency distribution:
  10% in 0.0020 secs.
  50% in 0.0045 secs.
  99% in 0.0300 secs.
  99.9% in 0.0400 secs.

Error distribution:
  [3]	context deadline exceeded
  [2]	etcdserver: too many requests
`
	r, err := ParseLoad(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.RPS != 4975.1243 || r.P50 != 4500*time.Microsecond || r.P99 != 30*time.Millisecond || r.Errors != 5 {
		t.Fatalf("parsed %+v", r)
	}
	if _, err := ParseLoad("dial error: connection refused"); err == nil {
		t.Fatal("a report without Requests/sec parsed")
	}
}

func TestParseCheckPerf(t *testing.T) {
	// As etcdctl check perf prints its verdict.
	pass := "PASS: Throughput is 151 writes/s\nPASS: Slowest request took 0.042000s\nPASS: Stddev is 0.003000s\nPASS\n"
	r, err := ParseCheckPerf(pass)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Pass || r.Throughput != 151 || r.Slowest != 42*time.Millisecond || r.Stddev != 3*time.Millisecond {
		t.Fatalf("parsed %+v", r)
	}
	fail := "FAIL: Throughput too low: 120 writes/s\nSlowest request took too long: 0.600000s\nPASS: Stddev is 0.090000s\nFAIL\n"
	if r, err = ParseCheckPerf(fail); err != nil || r.Pass || r.Throughput != 120 || r.Slowest != 600*time.Millisecond {
		t.Fatalf("parsed %+v, %v", r, err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"100MB": 100e6, "1GiB": 1 << 30, "512MiB": 512 << 20, "1.5G": 3 << 29, "4096": 4096} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "big", "-1MB", "0"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

func TestWriterWindow(t *testing.T) {
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	w := &Writer{acks: []time.Time{at(-5), at(10), at(20), at(700), at(710)}, fails: []time.Time{at(300), at(900)}}
	got := w.Window(at(0), at(800))
	if got.Acked != 4 || got.Failed != 1 || got.LongestGap != 680*time.Millisecond {
		t.Fatalf("window %+v", got)
	}
	// No acknowledgement at all: the whole window is the gap.
	if got := w.Window(at(720), at(790)); got.LongestGap != 70*time.Millisecond || got.Acked != 0 {
		t.Fatalf("window %+v", got)
	}
}

func TestInterleave(t *testing.T) {
	for i, want := range []string{"abc", "bca", "cab", "abc"} {
		if got := strings.Join(Interleave(i, "a", "b", "c"), ""); got != want {
			t.Errorf("run %d: %s, want %s", i, got, want)
		}
	}
}

// TestFindConfig: the replace harness finds the new member's etcd YAML
// wherever under --out the command writes it, and ignores other members'
// configs and files that are not configs.
func TestFindConfig(t *testing.T) {
	out := t.TempDir()
	write := func(rel, content string) string {
		p := filepath.Join(out, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if got := findConfig(out, "m4"); got != "" {
		t.Fatalf("found %s in an empty dir", got)
	}
	write("ssl/server.pem", "not yaml")
	write("m2/etcd.yaml", "name: m2\ndata-dir: /var/lib/etcd\n")
	want := write("m4/etcd.yaml", "name: m4\ndata-dir: /var/lib/etcd\ninitial-cluster-state: existing\n")
	if got := findConfig(out, "m4"); got != want {
		t.Fatalf("found %q, want %q", got, want)
	}
}
