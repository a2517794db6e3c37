// Package testtools builds the real programs that etcdkit's tests drive but
// that cannot share etcdkit's go.mod: kube-apiserver and kubeadm (from
// k8s.io/kubernetes), SeaweedFS's weed (an S3 server), stock etcd servers
// of other minor versions. Each is built in its own module directory, once,
// and cached by name, version and Go version, so only the first run pays.
//
// `go run ./test/tools` builds every tool ahead of the tests (.ci/run does);
// a test that finds a tool missing builds it then, under a lock shared by
// every test binary, so parallel packages never build the same tool twice.
package testtools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
)

// Tool is one program built from source.
type Tool struct {
	// Name is the binary's name and the name tests ask for.
	Name string
	// Version is part of the cache key: a new version builds anew.
	Version string
	// Build writes the binary to out. scratch is an empty writable
	// directory removed afterwards; log receives the build's output.
	Build func(ctx context.Context, scratch, out string, log io.Writer) error
}

var (
	mu       sync.Mutex
	registry = map[string]Tool{}
)

// Register adds a tool; each tool's file in this package registers itself.
func Register(t Tool) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[t.Name]; dup {
		panic("testtools: " + t.Name + " registered twice")
	}
	registry[t.Name] = t
}

// Names lists the registered tools, sorted.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Lookup is the registered tool of that name.
func Lookup(name string) (Tool, bool) {
	mu.Lock()
	defer mu.Unlock()
	t, ok := registry[name]
	return t, ok
}

// CacheDir is where built tools are kept: $ETCDKIT_TOOLS_CACHE, else
// etcdkit/tools under the user's cache directory (~/.cache on Linux).
func CacheDir() (string, error) {
	if d := os.Getenv("ETCDKIT_TOOLS_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "etcdkit", "tools"), nil
}

// Cached is where the tool's binary is, or would be once built.
func Cached(t Tool) (string, error) {
	dir, err := CacheDir()
	if err != nil {
		return "", err
	}
	key := fmt.Sprintf("%s-%s-%s", t.Name, t.Version, runtime.Version())
	return filepath.Join(dir, key, t.Name), nil
}

// Path returns the tool's binary, building it first when it is not cached.
func Path(ctx context.Context, name string, log io.Writer) (string, error) {
	t, ok := Lookup(name)
	if !ok {
		return "", fmt.Errorf("testtools: no tool named %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	out, err := Cached(t)
	if err != nil {
		return "", err
	}
	if isExecutable(out) {
		return out, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	unlock, err := lock(filepath.Dir(out) + ".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExecutable(out) { // another process built it while we waited
		return out, nil
	}
	scratch, err := os.MkdirTemp(filepath.Dir(filepath.Dir(out)), t.Name+"-build-")
	if err != nil {
		return "", err
	}
	defer func() { _ = makeWritable(scratch); _ = os.RemoveAll(scratch) }()
	tmp := filepath.Join(scratch, "bin", t.Name)
	if err := os.MkdirAll(filepath.Dir(tmp), 0o755); err != nil {
		return "", err
	}
	if err := t.Build(ctx, scratch, tmp, log); err != nil {
		return "", fmt.Errorf("build %s %s: %w", t.Name, t.Version, err)
	}
	if !isExecutable(tmp) {
		return "", fmt.Errorf("build %s %s: no binary at %s", t.Name, t.Version, tmp)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	return out, nil
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// lock takes an exclusive flock on path, waiting for it.
func lock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// GoCommand is `go args...` in dir with GOWORK off and extra environment.
func GoCommand(ctx context.Context, dir string, log io.Writer, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "GOWORK=off"), env...)
	cmd.Stdout, cmd.Stderr = log, log
	return cmd
}

// DownloadModule copies module@version's source from the module cache into
// a writable directory under scratch and returns it. The module cache's
// copy is read-only, and a module with replace directives cannot be built
// by `go install module@version`, so such tools are built from a copy.
func DownloadModule(ctx context.Context, scratch, module, version string, log io.Writer) (string, error) {
	var out strings.Builder
	cmd := GoCommand(ctx, scratch, log, nil, "mod", "download", "-json", module+"@"+version)
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %w", module, version, err)
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal([]byte(out.String()), &info); err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %w", module, version, err)
	}
	if info.Error != "" || info.Dir == "" {
		return "", fmt.Errorf("go mod download %s@%s: %s", module, version, info.Error)
	}
	dst := filepath.Join(scratch, "src")
	if err := CopyTree(info.Dir, dst); err != nil {
		return "", err
	}
	return dst, nil
}

// CopyTree copies a directory tree of regular files and directories,
// making every copy writable by its owner.
func CopyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			return copyFile(p, target, info.Mode().Perm()|0o200)
		default: // module zips hold no links or devices
			return nil
		}
	})
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func makeWritable(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			return os.Chmod(p, 0o755)
		}
		return nil
	})
}

// ErrUnavailable marks a tool that cannot be built on this machine.
var ErrUnavailable = errors.New("tool unavailable")
