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
	Etcdctl   string
	Etcdutl   string
}

// moduleRoot is the directory holding go.mod.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), ".."))
}

// Build compiles etcdkit and the stock etcd server into dir and finds the
// stock etcdctl and etcdutl declared as Go tools.
func Build(dir string) (*Binaries, error) {
	b := &Binaries{Etcdkit: filepath.Join(dir, "etcdkit"), StockEtcd: filepath.Join(dir, "stock-etcd")}
	root := moduleRoot()
	for _, job := range []struct{ out, pkg string }{{b.Etcdkit, "./cmd/etcdkit"}, {b.StockEtcd, "./bench/cmd/stock-etcd"}} {
		cmd := exec.Command("go", "build", "-o", job.out, job.pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %w\n%s", job.pkg, err, out)
		}
	}
	for _, tool := range []struct {
		name string
		dst  *string
	}{{"etcdctl", &b.Etcdctl}, {"etcdutl", &b.Etcdutl}} {
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
	return fmt.Sprintf("%s, %d cores, %s/%s, %s", model, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
}
