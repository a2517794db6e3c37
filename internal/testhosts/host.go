package testhosts

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/etcdkit/etcdkit/internal/testutil"
)

const sshdPath = "/usr/sbin/sshd"

// overlaid are the directories each host sees its own copy of: writes go
// to a per-host tmpfs, reads fall through to the real file system.
var overlaid = []string{"/etc", "/var", "/usr/local", "/opt", "/srv"}

// fresh are the directories each host gets empty (on its tmpfs), as on a
// new machine: the test machine's own home directories (its ~/.ssh, a
// slow ~/.bashrc) must not leak into the hosts.
var fresh = []string{"/root", "/home"}

// Host is one simulated machine.
type Host struct {
	// Name is the host's name (host1, host2, ...), also its hostname.
	Name string
	// Addr is its IP address; sshd listens on Addr:Port.
	Addr string
	Port int

	nw    *Network
	netns string
	veth  string
	dir   string // on the real file system: sshd config, keys, console log

	// fakeSystemd: PID 1 is named systemd and systemctl is a test double.
	fakeSystemd bool

	mu        sync.Mutex
	hostKey   ssh.PublicKey
	init      *exec.Cmd
	initDone  chan struct{}
	listeners []net.Listener
}

// SSHAddr is Addr:Port.
func (h *Host) SSHAddr() string { return net.JoinHostPort(h.Addr, strconv.Itoa(h.Port)) }

// HostKey is the key sshd currently presents.
func (h *Host) HostKey() ssh.PublicKey {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hostKey
}

func (h *Host) hostKeyPath() string { return filepath.Join(h.dir, "ssh_host_ed25519_key") }

func (h *Host) start(t testing.TB) {
	t.Helper()
	if err := os.MkdirAll(h.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	h.newHostKey(t)
	if err := os.WriteFile(filepath.Join(h.dir, "authorized_keys"),
		ssh.MarshalAuthorizedKey(h.nw.ClientSigner.PublicKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.dir, "sshd_config"), []byte(h.sshdConfig()), 0o600); err != nil {
		t.Fatal(err)
	}

	mustIP(t, "netns", "add", h.netns)
	mustIP(t, "link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.netns)
	mustIP(t, "link", "set", h.veth, "master", h.nw.bridge, "up")
	mustIP(t, "-n", h.netns, "addr", "add", h.Addr+"/24", "dev", "eth0")
	mustIP(t, "-n", h.netns, "link", "set", "eth0", "up")
	mustIP(t, "-n", h.netns, "link", "set", "lo", "up")

	console, err := os.OpenFile(filepath.Join(h.dir, "console.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer console.Close()
	// The child starts in new mount, PID and UTS namespaces (it is PID 1
	// there); `ip netns exec` moves it into the host's network namespace.
	initPath := filepath.Join(h.dir, "init.sh")
	if err := os.WriteFile(initPath, []byte(h.initScript()), 0o700); err != nil {
		t.Fatal(err)
	}
	h.init = exec.Command("ip", "netns", "exec", h.netns, "bash", initPath)
	h.init.Stdout, h.init.Stderr = console, console
	h.init.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS,
		// If the test binary dies, so does the host.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := h.init.Start(); err != nil {
		t.Fatalf("testhosts: start %s: %v", h.Name, err)
	}
	h.initDone = make(chan struct{})
	go func() {
		_ = h.init.Wait()
		close(h.initDone)
	}()
	if err := waitSSH(h.SSHAddr(), 30*time.Second); err != nil {
		t.Fatalf("testhosts: %s: %v\nconsole:\n%s", h.Name, err, h.console())
	}
}

// initScript is PID 1 of the host: it makes the private file system, starts
// sshd and then reaps orphans forever (a daemon started over SSH and
// detached is re-parented to it; without reaping it would linger as a
// zombie that `kill -0` still finds).
func (h *Host) initScript() string {
	var b strings.Builder
	b.WriteString("set -e\n")
	b.WriteString("mount --make-rprivate /\n")
	b.WriteString("mount -t proc proc /proc\n")
	b.WriteString("mount -t tmpfs -o mode=0755 tmpfs /run\n")
	b.WriteString("mkdir -p /run/sshd /run/.host/upper /run/.host/work\n")
	for _, d := range overlaid {
		name := strings.ReplaceAll(strings.TrimPrefix(d, "/"), "/", "_")
		fmt.Fprintf(&b, "mkdir -p /run/.host/upper/%[1]s /run/.host/work/%[1]s\n", name)
		fmt.Fprintf(&b, "mount -t overlay overlay -o lowerdir=%[2]s,upperdir=/run/.host/upper/%[1]s,workdir=/run/.host/work/%[1]s %[2]s\n", name, d)
	}
	for _, d := range fresh {
		name := strings.TrimPrefix(d, "/")
		fmt.Fprintf(&b, "mkdir -p /run/.host/upper/%[1]s && mount --bind /run/.host/upper/%[1]s %[2]s\n", name, d)
	}
	b.WriteString("chmod 0700 /root && cp -a /etc/skel/. /root/ 2>/dev/null || true\n")
	if h.fakeSystemd {
		b.WriteString(fakeSystemdInit)
	}
	fmt.Fprintf(&b, "hostname %s\n", h.Name)
	b.WriteString("echo " + h.Name + " > /etc/hostname\n")
	fmt.Fprintf(&b, "%s -D -e -f %s &\n", sshdPath, filepath.Join(h.dir, "sshd_config"))
	b.WriteString("set +e\n")
	b.WriteString("while :; do sleep 3600 & wait $!; done\n")
	return b.String()
}

func (h *Host) sshdConfig() string {
	return strings.Join([]string{
		"ListenAddress " + h.SSHAddr(),
		"HostKey " + h.hostKeyPath(),
		"PidFile /run/sshd.pid",
		// root's key lives outside the host; users made by AddUser have
		// their own ~/.ssh/authorized_keys.
		"AuthorizedKeysFile " + filepath.Join(h.dir, "authorized_keys") + " .ssh/authorized_keys",
		"PermitRootLogin prohibit-password",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		// The key files live in the test's temp dir, under world-writable /tmp.
		"StrictModes no",
		"UseDNS no",
		"PrintMotd no",
		"MaxStartups 100",
		"MaxSessions 100",
		"LogLevel VERBOSE",
		"Subsystem sftp internal-sftp",
		"",
	}, "\n")
}

// newHostKey writes a fresh ed25519 host key for sshd to load.
func (h *Host) newHostKey(t testing.TB) {
	t.Helper()
	signer := writeKeyPair(t, h.hostKeyPath(), "")
	h.mu.Lock()
	h.hostKey = signer.PublicKey()
	h.mu.Unlock()
}

// ReplaceHostKey gives the host a new host key, as a reinstall would (or a
// machine in the middle), and waits until sshd presents it. Known-hosts
// files written before no longer match. It returns the new key.
func (h *Host) ReplaceHostKey(t testing.TB) ssh.PublicKey {
	t.Helper()
	h.newHostKey(t)
	// No SIGHUP: sshd re-executes itself for every connection and the child
	// reads the host keys then, so the next connection presents the new key.
	// A SIGHUP would close the listener for a moment and a test's next dial
	// could meet "connection refused".
	want := h.HostKey()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := h.presentedKey()
		if err == nil && bytes.Equal(got.Marshal(), want.Marshal()) {
			return want
		}
		if time.Now().After(deadline) {
			t.Fatalf("testhosts: %s still presents its old host key after SIGHUP (last error %v)\nconsole:\n%s", h.Name, err, h.console())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// presentedKey runs an SSH handshake far enough to see the host key.
func (h *Host) presentedKey() (ssh.PublicKey, error) {
	var got ssh.PublicKey
	cfg := &ssh.ClientConfig{
		User: "root",
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			got = key
			return fmt.Errorf("seen")
		},
		Timeout: 5 * time.Second,
	}
	c, err := ssh.Dial("tcp", h.SSHAddr(), cfg)
	if c != nil {
		c.Close()
	}
	if got != nil {
		return got, nil
	}
	return nil, err
}

// Run runs a shell script as root inside the host (its mount, PID and
// network namespaces) without SSH, so it works while the host is
// disconnected.
func (h *Host) Run(t testing.TB, script string) testutil.Result {
	t.Helper()
	return h.run(t, script, nil)
}

func (h *Host) run(t testing.TB, script string, stdin []byte) testutil.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", "--target", strconv.Itoa(h.init.Process.Pid),
		"--mount", "--net", "--pid", "--uts", "--", "bash", "-c", script)
	cmd.Dir = "/"
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := testutil.Result{Stdout: stdout.String(), Stderr: stderr.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("testhosts: %s: run %q: %v", h.Name, script, err)
		}
		r.Code = ee.ExitCode()
	}
	return r
}

// MustRun is Run that fails the test on a non-zero exit and returns stdout.
func (h *Host) MustRun(t testing.TB, script string) string {
	t.Helper()
	r := h.Run(t, script)
	if r.Code != 0 {
		t.Fatalf("testhosts: %s: %q exited %d\nstdout:\n%s\nstderr:\n%s", h.Name, script, r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// ReadFile returns a file's content as the host sees it, and false when it
// does not exist.
func (h *Host) ReadFile(t testing.TB, path string) ([]byte, bool) {
	t.Helper()
	r := h.Run(t, fmt.Sprintf("if [ ! -e %[1]s ]; then exit 96; fi; exec cat -- %[1]s", shellQuote(path)))
	switch r.Code {
	case 0:
		return []byte(r.Stdout), true
	case 96:
		return nil, false
	}
	t.Fatalf("testhosts: %s: read %s: exit %d: %s", h.Name, path, r.Code, r.Stderr)
	return nil, false
}

// WriteFile writes a file inside the host (creating parent directories),
// as a test's setup, not through SSH.
func (h *Host) WriteFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	script := fmt.Sprintf("mkdir -p -- \"$(dirname -- %[1]s)\" && cat > %[1]s && chmod %04[2]o %[1]s", shellQuote(path), mode.Perm())
	if r := h.run(t, script, data); r.Code != 0 {
		t.Fatalf("testhosts: %s: write %s: exit %d: %s", h.Name, path, r.Code, r.Stderr)
	}
}

// Disconnect takes the host off the network: connections to it time out
// (the host is unreachable) until Reconnect. Its processes keep running.
func (h *Host) Disconnect(t testing.TB) {
	t.Helper()
	mustIP(t, "link", "set", h.veth, "down")
}

// Reconnect puts a disconnected host back on the network.
func (h *Host) Reconnect(t testing.TB) {
	t.Helper()
	mustIP(t, "link", "set", h.veth, "up")
	if err := waitSSH(h.SSHAddr(), 30*time.Second); err != nil {
		t.Fatalf("testhosts: %s: %v", h.Name, err)
	}
}

// OccupyPort listens on the host's address and port inside the host until
// the test ends, or until the returned function is called, as another
// program holding etcd's port would. The listener belongs to the test
// process, so the host's ss shows the port in use with no process name.
func (h *Host) OccupyPort(t testing.TB, port int) (release func()) {
	t.Helper()
	l, err := h.listen(fmt.Sprintf("%s:%d", h.Addr, port))
	if err != nil {
		t.Fatalf("testhosts: %s: occupy port %d: %v", h.Name, port, err)
	}
	h.mu.Lock()
	h.listeners = append(h.listeners, l)
	h.mu.Unlock()
	return func() { l.Close() }
}

// CopyDir copies a local directory tree into the host at dir (created if
// missing), keeping modes, as restoring another machine's files would.
func (h *Host) CopyDir(t testing.TB, local, dir string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(local, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == local {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(local, p)
		hdr.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		t.Fatalf("testhosts: %s: pack %s: %v", h.Name, local, err)
	}
	script := fmt.Sprintf("mkdir -p -- %[1]s && tar -x -C %[1]s -f -", shellQuote(dir))
	if r := h.run(t, script, buf.Bytes()); r.Code != 0 {
		t.Fatalf("testhosts: %s: unpack into %s: exit %d: %s", h.Name, dir, r.Code, r.Stderr)
	}
}

// listen opens a TCP listener in the host's network namespace: one OS
// thread switches into it for the socket call and back. A socket keeps the
// namespace it was made in.
func (h *Host) listen(addr string) (net.Listener, error) {
	type result struct {
		l   net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is not unlocked unless it got back into its own
		// namespace, so Go retires it rather than reuse it elsewhere.
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- result{err: err}
			runtime.UnlockOSThread()
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + h.netns)
		if err != nil {
			ch <- result{err: err}
			runtime.UnlockOSThread()
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: err}
			runtime.UnlockOSThread()
			return
		}
		l, err := net.Listen("tcp", addr)
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{l, err}
	}()
	r := <-ch
	return r.l, r.err
}

// AddUser creates a login user on this host only, authorized with the
// network's client key, and with passwordless sudo when sudo is set (as
// an operator's "deploy" account would have). It skips the test when the
// host has no sudo and sudo was asked for.
func (h *Host) AddUser(t testing.TB, name string, sudo bool) {
	t.Helper()
	if sudo {
		if r := h.Run(t, "command -v sudo"); r.Code != 0 {
			t.Skip("testhosts: sudo is not installed (.ci/run installs it)")
		}
	}
	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(h.nw.ClientSigner.PublicKey())))
	// -p "*": no password, but not locked (sshd refuses locked accounts).
	script := fmt.Sprintf("set -e; useradd -m -s /bin/bash -p %[3]s %[1]s; install -d -m 0700 -o %[1]s -g %[1]s ~%[1]s/.ssh; "+
		"echo %[2]s > ~%[1]s/.ssh/authorized_keys; chown %[1]s: ~%[1]s/.ssh/authorized_keys; chmod 0600 ~%[1]s/.ssh/authorized_keys",
		name, shellQuote(pub), shellQuote("*"))
	if sudo {
		script += fmt.Sprintf("; mkdir -p /etc/sudoers.d; echo '%[1]s ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/%[1]s; chmod 0440 /etc/sudoers.d/%[1]s", name)
	}
	h.MustRun(t, script)
}

// FileState is every file and directory the host has written, deleted or
// changed (its overlays' upper layers) with type, mode, owner, size and a
// content hash, keyed by the path the host sees. Two equal states mean
// nothing on the host's disk changed in between; use it to prove dry-run
// and refused runs leave hosts alone. Paths under a skip prefix (a
// running member's data dir and log, which change by themselves) are
// left out without being read.
func (h *Host) FileState(t testing.TB, skip ...string) map[string]string {
	t.Helper()
	var script strings.Builder
	script.WriteString("set -e\n")
	for _, d := range append(append([]string(nil), overlaid...), fresh...) {
		name := strings.ReplaceAll(strings.TrimPrefix(d, "/"), "/", "_")
		var prune strings.Builder
		for _, s := range skip {
			if rel, ok := strings.CutPrefix(strings.TrimSuffix(s, "/"), d+"/"); ok {
				fmt.Fprintf(&prune, "-path %s -prune -o ", shellQuote("./"+rel))
			}
		}
		fmt.Fprintf(&script, "cd /run/.host/upper/%s && find . -mindepth 1 %s-printf '%s%%P\\t%%y %%m %%u:%%g %%s\\t' -exec sh -c 'if [ -f \"$1\" ]; then sha256sum < \"$1\" | cut -c1-16; else echo -; fi' _ {} \\;\n", name, prune.String(), d+"/")
	}
	out := h.MustRun(t, script.String())
	state := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if p, v, ok := strings.Cut(line, "\t"); ok {
			state[p] = v
		}
	}
	return state
}

// Processes is the host's process list (ps), for assertions and failure
// messages.
func (h *Host) Processes(t testing.TB) string {
	t.Helper()
	return h.MustRun(t, "ps -eo pid,ppid,stat,args")
}

func (h *Host) console() string {
	b, _ := os.ReadFile(filepath.Join(h.dir, "console.log"))
	return string(b)
}

// logDiagnostics puts what a failed test needs into its log: sshd's log and
// the processes running.
func (h *Host) logDiagnostics(t testing.TB) {
	c := h.console()
	if len(c) > 8000 {
		c = c[len(c)-8000:]
	}
	ps := ""
	if h.alive() {
		out, _ := exec.Command("nsenter", "--target", strconv.Itoa(h.init.Process.Pid),
			"--mount", "--pid", "--", "ps", "-eo", "pid,ppid,stat,args").CombinedOutput()
		ps = string(out)
	}
	t.Logf("testhosts: %s (%s) console:\n%s\nprocesses:\n%s", h.Name, h.Addr, c, ps)
}

func (h *Host) alive() bool {
	if h.init == nil || h.initDone == nil {
		return false
	}
	select {
	case <-h.initDone:
		return false
	default:
		return true
	}
}

// destroy kills the host's PID 1, which takes every process in the host
// with it, and deletes its network namespace and veth pair.
func (h *Host) destroy() {
	h.mu.Lock()
	for _, l := range h.listeners {
		l.Close()
	}
	h.listeners = nil
	h.mu.Unlock()
	if h.alive() {
		_ = h.init.Process.Kill()
		select {
		case <-h.initDone:
		case <-time.After(30 * time.Second):
		}
	}
	// Anything that joined only the network namespace.
	killNetnsPids(h.netns)
	_ = exec.Command("ip", "netns", "del", h.netns).Run()
	_ = exec.Command("ip", "link", "del", h.veth).Run()
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
