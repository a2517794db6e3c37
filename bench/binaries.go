// Package bench measures etcdkit side by side with the stock etcd server
// and tools in the same run. Results, the machine and the command to rerun
// them are in BENCHMARKS.md. Nothing here asserts timing.
package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Binaries are the programs a benchmark runs.
type Binaries struct {
	Etcdkit   string
	StockEtcd string
	// Benchmark is etcd's own load generator (bench/cmd/etcd-benchmark).
	Benchmark string
	Etcdctl   string
	Etcdutl   string
	Cfssl     string
	Cfssljson string
}

// moduleRoot is the directory holding go.mod.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), ".."))
}

// Build compiles etcdkit, the stock etcd server and etcd's benchmark tool
// into dir and finds the stock etcdctl, etcdutl, cfssl and cfssljson
// declared as Go tools.
func Build(dir string) (*Binaries, error) {
	b := &Binaries{
		Etcdkit:   filepath.Join(dir, "etcdkit"),
		StockEtcd: filepath.Join(dir, "stock-etcd"),
		Benchmark: filepath.Join(dir, "etcd-benchmark"),
	}
	root := moduleRoot()
	for _, job := range []struct{ out, pkg string }{
		{b.Etcdkit, "./cmd/etcdkit"},
		{b.StockEtcd, "./bench/cmd/stock-etcd"},
		{b.Benchmark, "./bench/cmd/etcd-benchmark"},
	} {
		cmd := exec.Command("go", "build", "-o", job.out, job.pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %w\n%s", job.pkg, err, out)
		}
	}
	for _, tool := range []struct {
		name string
		dst  *string
	}{{"etcdctl", &b.Etcdctl}, {"etcdutl", &b.Etcdutl}, {"cfssl", &b.Cfssl}, {"cfssljson", &b.Cfssljson}} {
		cmd := exec.Command("go", "tool", "-n", tool.name)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("go tool -n %s: %w", tool.name, err)
		}
		*tool.dst = strings.TrimSpace(string(out))
	}
	return b, nil
}

// Machine describes where a benchmark ran.
func Machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %d GiB RAM", (kb+512*1024)/(1024*1024))
		}
	}
	return fmt.Sprintf("%s, %d cores%s, %s/%s, %s, temp dirs on %s", model, runtime.NumCPU(), mem, runtime.GOOS, runtime.GOARCH, runtime.Version(), tempFS())
}

// tempFS names the file system the benchmarks' data dirs live on: fsync
// latency bounds every write benchmark.
func tempFS() string {
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return "unknown file system"
	}
	tmp, best := os.TempDir(), ""
	fs := "unknown file system"
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 {
			continue
		}
		if strings.HasPrefix(tmp, f[1]) && len(f[1]) >= len(best) {
			best, fs = f[1], fmt.Sprintf("%s (%s, %s)", f[1], f[2], f[0])
		}
	}
	return fs
}

// LoadAvg is the 1-minute load average: other work on the machine during
// a benchmark shows here.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Fields(string(b))[0]
}
