package remote_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/etcdkit/etcdkit/internal/remote"
	"github.com/etcdkit/etcdkit/internal/testhosts"
)

// env is one network of simulated hosts shared by the subtests below, and
// options that trust exactly its hosts and nothing from the operator's own
// ~/.ssh.
type env struct {
	nw  *testhosts.Network
	dir string
}

func (e *env) opts(t *testing.T) *remote.Options {
	t.Helper()
	return &remote.Options{
		KnownHosts:       e.nw.KnownHosts,
		SystemKnownHosts: "-",
		SSHConfig:        "-",
		AgentSocket:      "-",
		SSHDir:           t.TempDir(),
		ConnectTimeout:   20 * time.Second,
	}
}

func (e *env) host(h *testhosts.Host) remote.Host {
	return remote.Host{Name: h.Name, Address: h.Addr, Port: h.Port, User: "root", KeyPath: e.nw.ClientKey}
}

func (e *env) connect(t *testing.T, h *testhosts.Host, o *remote.Options) *remote.Conn {
	t.Helper()
	c, err := remote.Connect(ctx(t), e.host(h), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// wantErr checks err wraps target and its message has every part.
func wantErr(t *testing.T, err error, target error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", target)
	}
	if target != nil && !errors.Is(err, target) {
		t.Fatalf("error %q does not wrap %v", err, target)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

func TestRemote(t *testing.T) {
	start := time.Now()
	nw := testhosts.Start(t, 3)
	t.Logf("3 simulated hosts up in %s", time.Since(start).Round(time.Millisecond))
	e := &env{nw: nw, dir: t.TempDir()}
	h1, h2, h3 := nw.Hosts[0], nw.Hosts[1], nw.Hosts[2]
	prefix := func(h *testhosts.Host) string { return fmt.Sprintf("host %q (%s)", h.Name, h.SSHAddr()) }

	t.Run("run", func(t *testing.T) {
		c := e.connect(t, h1, e.opts(t))
		res, err := c.Run(ctx(t), "echo out; echo err >&2; hostname")
		if err != nil {
			t.Fatal(err)
		}
		if res.Stdout != "out\nhost1\n" || res.Stderr != "err\n" || res.ExitCode != 0 {
			t.Fatalf("got %+v", res)
		}
		res, err = c.Run(ctx(t), "echo partial; echo 'no such thing' >&2; exit 7")
		var ee *remote.ExitError
		if !errors.As(err, &ee) || ee.Code != 7 || res.ExitCode != 7 || res.Stdout != "partial\n" {
			t.Fatalf("got %+v, %v", res, err)
		}
		wantErr(t, err, nil, prefix(h1), "exited 7", "no such thing")
		in, err := c.RunInput(ctx(t), "wc -c", strings.NewReader("12345"))
		if err != nil || strings.TrimSpace(in.Stdout) != "5" {
			t.Fatalf("stdin: %+v %v", in, err)
		}
	})

	t.Run("cancel kills the remote command", func(t *testing.T) {
		c := e.connect(t, h1, e.opts(t))
		cctx, cancel := context.WithCancel(ctx(t))
		done := make(chan error, 1)
		go func() {
			// A child in the background too: the whole group goes.
			_, err := c.Run(cctx, "sleep 313 & sleep 314")
			done <- err
		}()
		waitFor(t, func() bool {
			ps := h1.Processes(t)
			return strings.Contains(ps, "sleep 313") && strings.Contains(ps, "sleep 314")
		})
		cancel()
		err := <-done
		wantErr(t, err, context.Canceled, prefix(h1))
		waitFor(t, func() bool {
			ps := h1.Processes(t)
			return !strings.Contains(ps, "sleep 313") && !strings.Contains(ps, "sleep 314")
		})
		// The connection still works.
		if _, err := c.Run(ctx(t), "true"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("atomic write with modes", func(t *testing.T) {
		c := e.connect(t, h2, e.opts(t))
		const key = "/etc/etcd/ssl/server-key.pem"
		secret := []byte("-----BEGIN PRIVATE KEY-----\nSECRET-KEY-MATERIAL\n")
		changed, err := c.WriteFile(ctx(t), key, secret, remote.File{})
		if err != nil || !changed {
			t.Fatalf("write: %v, changed %v", err, changed)
		}
		if got := h2.MustRun(t, "stat -c '%a %U:%G' /etc/etcd/ssl /etc/etcd/ssl/server-key.pem"); got != "700 root:root\n600 root:root\n" {
			t.Fatalf("modes:\n%s", got)
		}
		if b, _ := h2.ReadFile(t, key); !bytes.Equal(b, secret) {
			t.Fatalf("content %q", b)
		}
		// Same again: nothing to do.
		if changed, err := c.WriteFile(ctx(t), key, secret, remote.File{}); err != nil || changed {
			t.Fatalf("rewrite: %v, changed %v", err, changed)
		}
		// Only the mode differs: fixed in place.
		h2.MustRun(t, "chmod 0644 "+key)
		if changed, err := c.WriteFile(ctx(t), key, secret, remote.File{Mode: 0o600}); err != nil || !changed {
			t.Fatalf("fix mode: %v, changed %v", err, changed)
		}
		if got := h2.MustRun(t, "stat -c %a "+key); got != "600\n" {
			t.Fatalf("mode %s", got)
		}
		// A public file with its own mode and owner.
		if _, err := c.WriteFile(ctx(t), "/etc/etcd/etcd.conf", []byte("ETCD_NAME=host2\n"), remote.File{Mode: 0o644, Owner: "nobody", Group: "nogroup"}); err != nil {
			t.Fatal(err)
		}
		if got := h2.MustRun(t, "stat -c '%a %U:%G' /etc/etcd/etcd.conf"); got != "644 nobody:nogroup\n" {
			t.Fatalf("conf: %s", got)
		}
		// A failure (unknown owner) leaves the old file and no temp file.
		_, err = c.WriteFile(ctx(t), key, []byte("new"), remote.File{Owner: "no-such-user"})
		wantErr(t, err, nil, prefix(h2), key, "no-such-user")
		if b, _ := h2.ReadFile(t, key); !bytes.Equal(b, secret) {
			t.Fatalf("failed write changed the file: %q", b)
		}
		if got := h2.MustRun(t, "ls -A /etc/etcd/ssl"); got != "server-key.pem\n" {
			t.Fatalf("left behind: %q", got)
		}
		if _, err := c.WriteFile(ctx(t), "relative/path", nil, remote.File{}); err == nil {
			t.Fatal("relative path accepted")
		}

		// Directories, and a mode fixed on an existing one.
		if changed, err := c.MkdirAll(ctx(t), "/var/lib/etcd/default.etcd", remote.File{}); err != nil || !changed {
			t.Fatalf("mkdir: %v %v", err, changed)
		}
		if changed, err := c.MkdirAll(ctx(t), "/var/lib/etcd/default.etcd", remote.File{}); err != nil || changed {
			t.Fatalf("mkdir again: %v %v", err, changed)
		}
		if got := h2.MustRun(t, "stat -c %a /var/lib/etcd /var/lib/etcd/default.etcd"); got != "700\n700\n" {
			t.Fatalf("dir modes:\n%s", got)
		}
		h2.MustRun(t, "chmod 755 /var/lib/etcd/default.etcd")
		if changed, err := c.MkdirAll(ctx(t), "/var/lib/etcd/default.etcd", remote.File{}); err != nil || !changed {
			t.Fatalf("mkdir fix: %v %v", err, changed)
		}
		if _, err := c.MkdirAll(ctx(t), key, remote.File{}); err == nil {
			t.Fatal("mkdir over a file accepted")
		}

		if changed, err := c.Remove(ctx(t), "/etc/etcd/etcd.conf"); err != nil || !changed {
			t.Fatalf("remove: %v %v", err, changed)
		}
		if changed, err := c.Remove(ctx(t), "/etc/etcd/etcd.conf"); err != nil || changed {
			t.Fatalf("remove again: %v %v", err, changed)
		}
	})

	t.Run("read stat exists", func(t *testing.T) {
		c := e.connect(t, h3, e.opts(t))
		h3.WriteFile(t, "/etc/etcd/ca.pem", []byte("CA\x00\xff"), 0o640)
		b, err := c.ReadFile(ctx(t), "/etc/etcd/ca.pem")
		if err != nil || string(b) != "CA\x00\xff" {
			t.Fatalf("read %q %v", b, err)
		}
		_, err = c.ReadFile(ctx(t), "/etc/etcd/missing.pem")
		wantErr(t, err, fs.ErrNotExist, prefix(h3), "/etc/etcd/missing.pem")
		fi, err := c.Stat(ctx(t), "/etc/etcd/ca.pem")
		if err != nil || fi.Mode != 0o640 || fi.Size != 4 || fi.Owner != "root" || fi.UID != 0 || fi.IsDir() {
			t.Fatalf("stat %+v %v", fi, err)
		}
		if fi, err := c.Stat(ctx(t), "/etc/etcd"); err != nil || !fi.IsDir() {
			t.Fatalf("stat dir %+v %v", fi, err)
		}
		for p, want := range map[string]bool{"/etc/etcd/ca.pem": true, "/etc/etcd/nope": false, "/nope/nope": false} {
			if ok, err := c.Exists(ctx(t), p); err != nil || ok != want {
				t.Errorf("Exists(%s) = %v, %v", p, ok, err)
			}
		}
	})

	t.Run("upload skips when the same", func(t *testing.T) {
		c := e.connect(t, h3, e.opts(t))
		local := filepath.Join(t.TempDir(), "etcdkit")
		data := make([]byte, 24<<20)
		if _, err := rand.Read(data); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(local, data, 0o755); err != nil {
			t.Fatal(err)
		}
		const dst = "/usr/local/bin/etcdkit"
		start := time.Now()
		changed, err := c.Upload(ctx(t), local, dst, remote.File{Mode: 0o755})
		if err != nil || !changed {
			t.Fatalf("upload: %v %v", err, changed)
		}
		took := time.Since(start)
		t.Logf("uploaded 24 MiB in %s (%.0f MiB/s)", took.Round(time.Millisecond), 24/took.Seconds())
		sum, _, _ := remote.FileSHA256(local)
		if got := h3.MustRun(t, "sha256sum < "+dst+" | cut -d' ' -f1; stat -c %a "+dst); got != sum+"\n755\n" {
			t.Fatalf("remote: %s", got)
		}
		if remoteSum, err := c.SHA256(ctx(t), dst); err != nil || remoteSum != sum {
			t.Fatalf("SHA256 = %s, %v", remoteSum, err)
		}
		plan := remote.NewPlan(false)
		o := e.opts(t)
		o.Plan = plan
		c2 := e.connect(t, h3, o)
		if changed, err := c2.Upload(ctx(t), local, dst, remote.File{Mode: 0o755}); err != nil || changed {
			t.Fatalf("second upload: %v %v", err, changed)
		}
		if !plan.Empty() {
			t.Fatalf("plan after a skipped upload:\n%s", plan)
		}
		// A different file on the host is replaced.
		h3.WriteFile(t, dst, []byte("old version"), 0o755)
		if changed, err := c2.Upload(ctx(t), local, dst, remote.File{Mode: 0o755}); err != nil || !changed {
			t.Fatalf("re-upload: %v %v", err, changed)
		}
		if got := h3.MustRun(t, "sha256sum < "+dst+" | cut -d' ' -f1"); got != sum+"\n" {
			t.Fatalf("remote sum %s", got)
		}
		if cs := plan.Changes(); len(cs) != 1 || !strings.Contains(cs[0].What, "upload "+local) || cs[0].Host != "host3" {
			t.Fatalf("plan %+v", cs)
		}
		_, err = c2.Upload(ctx(t), filepath.Join(t.TempDir(), "missing"), dst, remote.File{})
		wantErr(t, err, fs.ErrNotExist, prefix(h3))
	})

	t.Run("dry run records and changes nothing", func(t *testing.T) {
		o := e.opts(t)
		o.Plan = remote.NewPlan(true)
		c := e.connect(t, h1, o)
		before := h1.FileState(t)
		local := filepath.Join(t.TempDir(), "bin")
		if err := os.WriteFile(local, []byte("binary"), 0o755); err != nil {
			t.Fatal(err)
		}
		steps := []func() error{
			func() error { _, err := c.MkdirAll(ctx(t), "/etc/etcd/ssl", remote.File{}); return err },
			func() error {
				_, err := c.WriteFile(ctx(t), "/etc/etcd/ssl/peer-key.pem", []byte("k"), remote.File{})
				return err
			},
			func() error {
				_, err := c.Upload(ctx(t), local, "/usr/local/bin/etcdkit", remote.File{Mode: 0o755})
				return err
			},
			func() error { return c.RunChange(ctx(t), "start etcd", "touch /root/started") },
		}
		for i, s := range steps {
			if err := s(); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
		}
		after := h1.FileState(t)
		if !maps.Equal(before, after) {
			t.Fatalf("dry run changed the host:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		plan := o.Plan
		if !plan.DryRun() || len(plan.Changes()) != 4 || len(plan.For("host1")) != 4 {
			t.Fatalf("plan:\n%s", plan)
		}
		s := plan.String()
		for _, want := range []string{
			fmt.Sprintf("host1 (%s):", h1.SSHAddr()),
			"  - create directory /etc/etcd/ssl (0700 root:root)",
			"  - create /etc/etcd/ssl/peer-key.pem (0600 root:root, 1 B)",
			"  - upload " + local,
			"  - start etcd",
		} {
			if !strings.Contains(s, want) {
				t.Errorf("plan lacks %q:\n%s", want, s)
			}
		}
		// Reads still run in dry-run mode: the plan is made from them.
		if ok, err := c.Exists(ctx(t), "/etc/hostname"); err != nil || !ok {
			t.Fatalf("exists in dry run: %v %v", ok, err)
		}
	})

	t.Run("detect", func(t *testing.T) {
		h2.OccupyPort(t, 2379)
		c := e.connect(t, h2, e.opts(t))
		f, err := c.Detect(ctx(t), remote.DetectOptions{Ports: []int{22, 2379, 2380}, DataDir: "/var/lib/etcd/new/default.etcd"})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("facts: %+v", f)
		if f.OS.ID != "debian" || f.OS.PrettyName == "" || f.Arch == "" || f.Hostname != "host2" {
			t.Errorf("os/arch/hostname: %+v", f)
		}
		if f.Systemd || f.Init == "systemd" || f.Init == "" {
			t.Errorf("init %q systemd %v: simulated hosts do not run systemd", f.Init, f.Systemd)
		}
		if l, ok := f.Listening[22]; !ok || l.Process != "sshd" {
			t.Errorf("port 22: %+v", f.Listening)
		}
		if l, ok := f.Listening[2379]; !ok || !strings.HasPrefix(l.Addr, h2.Addr) || l.Process != "" {
			t.Errorf("port 2379 (occupied from outside the host's PIDs): %+v", l)
		}
		if _, ok := f.Listening[2380]; ok {
			t.Errorf("port 2380 reported in use: %+v", f.Listening)
		}
		if f.DiskPath != "/var/lib/etcd" || f.DiskFree == 0 {
			t.Errorf("disk: %s %d", f.DiskPath, f.DiskFree)
		}
		// Same machine, same clock: the offset is within the measurement's
		// own uncertainty plus apply's 1 s limit.
		if d := f.ClockOffset.Abs(); d > f.ClockUncertainty+time.Second {
			t.Errorf("clock offset %s ± %s", f.ClockOffset, f.ClockUncertainty)
		}
	})

	t.Run("unknown host key refused", func(t *testing.T) {
		o := e.opts(t)
		o.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
		o.AcceptNewHostKeysHint = "--accept-new-host-keys"
		_, err := remote.Connect(ctx(t), e.host(h1), o)
		wantErr(t, err, remote.ErrUnknownHostKey, prefix(h1), ssh.FingerprintSHA256(h1.HostKey()),
			"ssh-ed25519", o.KnownHosts, "(--accept-new-host-keys)")
		if _, statErr := os.Stat(o.KnownHosts); !errors.Is(statErr, fs.ErrNotExist) {
			t.Fatalf("refusal wrote %s", o.KnownHosts)
		}
	})

	t.Run("accept new host keys", func(t *testing.T) {
		o := e.opts(t)
		o.KnownHosts = filepath.Join(t.TempDir(), "ssh", "known_hosts")
		o.AcceptNewHostKeys = true
		// Three hosts trusted at once: no line is lost.
		var wg sync.WaitGroup
		errs := make([]error, 3)
		conns := make([]*remote.Conn, 3)
		for i, h := range nw.Hosts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				conns[i], errs[i] = remote.Connect(ctx(t), e.host(h), o)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
			if !conns[i].AcceptedNewHostKey() {
				t.Errorf("%s: AcceptedNewHostKey false", conns[i])
			}
			conns[i].Close()
		}
		b, err := os.ReadFile(o.KnownHosts)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(b), "\n"); n != 3 {
			t.Fatalf("known_hosts has %d lines:\n%s", n, b)
		}
		if fi, _ := os.Stat(o.KnownHosts); fi.Mode().Perm() != 0o600 {
			t.Errorf("known_hosts mode %o", fi.Mode().Perm())
		}
		// Now known: verified, not accepted again, even without the flag.
		o.AcceptNewHostKeys = false
		c := e.connect(t, h1, o)
		if c.AcceptedNewHostKey() {
			t.Error("known host accepted again")
		}
		if b2, _ := os.ReadFile(o.KnownHosts); !bytes.Equal(b, b2) {
			t.Error("known_hosts rewritten for a known host")
		}
	})

	t.Run("unreachable host", func(t *testing.T) {
		o := e.opts(t)
		o.ConnectTimeout = 3 * time.Second
		h2.Disconnect(t)
		defer h2.Reconnect(t)
		_, err := remote.Connect(ctx(t), e.host(h2), o)
		wantErr(t, err, remote.ErrUnreachable, prefix(h2)+": unreachable")
		// Nothing listening: refused, also unreachable.
		closed := e.host(h1)
		closed.Port = 2222
		_, err = remote.Connect(ctx(t), closed, o)
		wantErr(t, err, remote.ErrUnreachable, fmt.Sprintf("host %q (%s:2222): unreachable", h1.Name, h1.Addr), "refused")
	})

	t.Run("wrong key refused", func(t *testing.T) {
		other := testhosts.NewClientKey(t)
		h := e.host(h1)
		h.KeyPath = other
		_, err := remote.Connect(ctx(t), h, e.opts(t))
		wantErr(t, err, remote.ErrAuth, prefix(h1), `as user "root"`, other)
		h.KeyPath = filepath.Join(t.TempDir(), "nope")
		_, err = remote.Connect(ctx(t), h, e.opts(t))
		wantErr(t, err, fs.ErrNotExist, prefix(h1), h.KeyPath)
	})

	t.Run("agent", func(t *testing.T) {
		sock := startAgent(t, nw.ClientKey)
		o := e.opts(t)
		o.AgentSocket = sock
		h := e.host(h1)
		h.KeyPath = "" // only the agent has the key
		c, err := remote.Connect(ctx(t), h, o)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Run(ctx(t), "true"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ssh config", func(t *testing.T) {
		o := e.opts(t)
		o.SSHConfig = filepath.Join(t.TempDir(), "config")
		cfg := fmt.Sprintf("Host db-*\n  User root\n  IdentityFile %s\nHost db-one\n  HostName %s\n  Port %d\n", nw.ClientKey, h3.Addr, h3.Port)
		if err := os.WriteFile(o.SSHConfig, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := remote.Connect(ctx(t), remote.Host{Name: "master03", Address: "db-one"}, o)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got := c.Host(); got.Address != h3.Addr || got.KeyPath != nw.ClientKey || got.User != "root" {
			t.Fatalf("resolved %+v", got)
		}
		if res, err := c.Run(ctx(t), "hostname"); err != nil || res.Stdout != "host3\n" {
			t.Fatalf("%+v %v", res, err)
		}
	})

	t.Run("non-root user with sudo", func(t *testing.T) {
		h1.AddUser(t, "ops", true)
		h1.AddUser(t, "plain", false)
		h := e.host(h1)
		h.User = "ops"
		c, err := remote.Connect(ctx(t), h, e.opts(t))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.WriteFile(ctx(t), "/etc/etcd/sudo.pem", []byte("x"), remote.File{}); err != nil {
			t.Fatal(err)
		}
		if got := h1.MustRun(t, "stat -c '%a %U' /etc/etcd/sudo.pem"); got != "600 root\n" {
			t.Fatalf("via sudo: %s", got)
		}
		h.User = "plain"
		_, err = remote.Connect(ctx(t), h, e.opts(t))
		wantErr(t, err, remote.ErrNoPrivilege, prefix(h1), `"plain"`, "sudo")
	})

	// Last: it changes host3's key for good.
	t.Run("changed host key refused", func(t *testing.T) {
		o := e.opts(t)
		o.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
		nw.WriteKnownHosts(t, o.KnownHosts, h3)
		old := ssh.FingerprintSHA256(h3.HostKey())
		e.connect(t, h3, o).Close()
		newKey := h3.ReplaceHostKey(t)
		before, _ := os.ReadFile(o.KnownHosts)
		for _, accept := range []bool{false, true} {
			o.AcceptNewHostKeys = accept // trust on first use never overrides a changed key
			_, err := remote.Connect(ctx(t), e.host(h3), o)
			wantErr(t, err, remote.ErrHostKeyChanged, prefix(h3), "HOST KEY CHANGED", "man in the middle",
				old, ssh.FingerprintSHA256(newKey), "ssh-keygen -R "+h3.Addr)
			if errors.Is(err, remote.ErrUnknownHostKey) {
				t.Error("a changed key is reported as unknown")
			}
		}
		if after, _ := os.ReadFile(o.KnownHosts); !bytes.Equal(before, after) {
			t.Fatal("known_hosts changed")
		}
	})

	t.Run("debug log", func(t *testing.T) {
		logPath := filepath.Join(t.TempDir(), "logs", "apply.log")
		log, closeLog, err := remote.NewDebugLog(logPath)
		if err != nil {
			t.Fatal(err)
		}
		o := e.opts(t)
		o.Log = log
		c := e.connect(t, h1, o)
		if _, err := c.WriteFile(ctx(t), "/etc/etcd/log-test-key.pem", []byte("SECRET-KEY-MATERIAL"), remote.File{}); err != nil {
			t.Fatal(err)
		}
		_, _ = c.Run(ctx(t), "echo failing >&2; exit 3")
		c.Close()
		if err := closeLog(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for _, want := range []string{"host1", h1.Addr, "connected as root", "exit 3", "failing", "/etc/etcd/log-test-key.pem", "change: create /etc/etcd/log-test-key.pem"} {
			if !strings.Contains(s, want) {
				t.Errorf("log lacks %q:\n%s", want, s)
			}
		}
		if strings.Contains(s, "SECRET-KEY-MATERIAL") {
			t.Error("log holds file content")
		}
		if fi, _ := os.Stat(logPath); fi.Mode().Perm() != 0o600 {
			t.Errorf("log mode %o", fi.Mode().Perm())
		}
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startAgent serves an in-process SSH agent holding the key and returns
// its socket.
func startAgent(t *testing.T, keyPath string) string {
	t.Helper()
	raw, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ssh.ParseRawPrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	ring := agent.NewKeyring()
	if err := ring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = agent.ServeAgent(ring, c)
			}()
		}
	}()
	return sock
}
