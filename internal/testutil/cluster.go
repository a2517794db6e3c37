package testutil

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdkit/etcdkit/internal/connect"
	"github.com/etcdkit/etcdkit/internal/local"
)

// UpCluster is a cluster run by a real `etcdkit up` process.
type UpCluster struct {
	Dir  local.Dir
	Proc *Proc
	// Env holds the ETCDCTL_* lines `up` printed, as KEY=VALUE.
	Env []string
}

// Up starts `etcdkit up --dir DIR` with extra args and waits until it
// prints the etcdctl environment, which it does once the cluster is healthy.
func Up(t testing.TB, dir string, args ...string) *UpCluster {
	t.Helper()
	bin := Etcdkit(t)
	p := Start(t, nil, bin, append([]string{"up", "--dir", dir}, args...)...)
	p.WaitOutput(t, "export ETCDCTL_KEY=", 2*time.Minute)
	c := &UpCluster{Dir: local.Dir(dir), Proc: p}
	sc := bufio.NewScanner(strings.NewReader(p.Stdout()))
	for sc.Scan() {
		if kv, ok := strings.CutPrefix(sc.Text(), "export "); ok {
			c.Env = append(c.Env, kv)
		}
	}
	return c
}

// Target is how a client reaches the cluster.
func (c *UpCluster) Target(t testing.TB) *connect.Target {
	t.Helper()
	s, err := c.Dir.Settings()
	if err != nil {
		t.Fatal(err)
	}
	tg, err := connect.Resolve(s, connect.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// Client opens a client to the given endpoints (all when none).
func (c *UpCluster) Client(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := c.Target(t).Client(endpoints...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Stop sends SIGINT to `up` and returns its exit code.
func (c *UpCluster) Stop(t testing.TB) int {
	t.Helper()
	if err := c.Proc.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	return c.Proc.Wait(t, 2*time.Minute)
}

// MemberPIDs reads the pid files of running members.
func (c *UpCluster) MemberPIDs(t testing.TB) map[string]int {
	t.Helper()
	out := map[string]int{}
	files, _ := filepath.Glob(filepath.Join(string(c.Dir), "members", "*", "member.pid"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			out[filepath.Base(filepath.Dir(f))] = pid
		}
	}
	return out
}

// Ctx is a test-bounded context.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}
