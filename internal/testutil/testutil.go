// Package testutil starts real processes for tests: the etcdkit binary
// built from this checkout, the Go tools declared in go.mod (etcdctl,
// etcdutl, cfssl, cfssljson), and local clusters. Every process a test
// starts is killed when the test ends.
package testutil

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ModuleRoot is the directory holding go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the module root")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
	buildOut  []byte
)

// Etcdkit builds cmd/etcdkit once per test binary and returns its path.
func Etcdkit(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "etcdkit-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "etcdkit")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/etcdkit")
		cmd.Dir = ModuleRoot(t)
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("build etcdkit: %v\n%s", buildErr, buildOut)
	}
	return buildPath
}

var (
	toolMu    sync.Mutex
	toolPaths = map[string]string{}
)

// Tool returns the path of a Go tool declared with `go get -tool` (etcdctl,
// etcdutl, cfssl, cfssljson), building it on first use.
func Tool(t testing.TB, name string) string {
	t.Helper()
	toolMu.Lock()
	defer toolMu.Unlock()
	if p, ok := toolPaths[name]; ok {
		return p
	}
	cmd := exec.Command("go", "tool", "-n", name)
	cmd.Dir = ModuleRoot(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go tool -n %s: %v\n%s", name, err, out)
	}
	p := strings.TrimSpace(string(out))
	toolPaths[name] = p
	return p
}

// Result is a finished command.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run runs a command to completion with extra environment variables.
func Run(t testing.TB, env []string, name string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run %s %v: %v", name, args, err)
		}
		r.Code = ee.ExitCode()
	}
	return r
}

// Proc is a background process with captured output.
type Proc struct {
	Cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

// Start starts a background process; it is killed (with its process group)
// when the test ends.
func Start(t testing.TB, env []string, name string, args ...string) *Proc {
	t.Helper()
	p := &Proc{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.Cmd = exec.Command(name, args...)
	p.Cmd.Env = append(os.Environ(), env...)
	p.Cmd.Stdout, p.Cmd.Stderr = p.stdout, p.stderr
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.Exited() {
			_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		// Members started by this process are in their own groups; their
		// parent-death signal stops them, wait for that.
		time.Sleep(10 * time.Millisecond)
	})
	return p
}

// Stdout is what the process has printed so far.
func (p *Proc) Stdout() string { return p.stdout.String() }

// Stderr is what the process has printed on stderr so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends a signal to the process.
func (p *Proc) Signal(sig syscall.Signal) error { return p.Cmd.Process.Signal(sig) }

// Wait waits for the process to end, up to limit, and returns its exit
// code (-1 when killed by a signal).
func (p *Proc) Wait(t testing.TB, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(limit):
		t.Fatalf("process %v did not end within %v\nstdout:\n%s\nstderr:\n%s", p.Cmd.Args, limit, p.Stdout(), p.Stderr())
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// WaitOutput waits until stdout contains s, failing if the process ends
// first or limit passes.
func (p *Proc) WaitOutput(t testing.TB, s string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !strings.Contains(p.Stdout(), s) {
		if p.Exited() {
			t.Fatalf("process %v ended before printing %q\nstdout:\n%s\nstderr:\n%s", p.Cmd.Args, s, p.Stdout(), p.Stderr())
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %v did not print %q within %v\nstdout:\n%s\nstderr:\n%s", p.Cmd.Args, s, limit, p.Stdout(), p.Stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// AssertNoStackTrace fails when output looks like a Go panic.
func AssertNoStackTrace(t testing.TB, output string) {
	t.Helper()
	for _, marker := range []string{"goroutine ", "panic:", ".go:"} {
		if marker == ".go:" {
			// etcd's JSON log lines carry "caller":"x.go:12"; only flag a
			// frame line, which starts with a tab.
			for _, l := range strings.Split(output, "\n") {
				if strings.HasPrefix(l, "\t") && strings.Contains(l, ".go:") {
					t.Fatalf("output has a Go stack trace:\n%s", output)
				}
			}
			continue
		}
		if strings.Contains(output, marker) {
			t.Fatalf("output has a Go stack trace (%q):\n%s", marker, output)
		}
	}
}
