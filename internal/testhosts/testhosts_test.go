package testhosts

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHosts checks what apply's tests rely on: each host is its own
// machine (address, hostname, files, processes, not systemd), hosts reach
// each other, and the failure helpers do what they say.
func TestHosts(t *testing.T) {
	start := time.Now()
	nw := Start(t, 3)
	t.Logf("started 3 hosts in %s", time.Since(start).Round(time.Millisecond))
	h1, h2, h3 := nw.Hosts[0], nw.Hosts[1], nw.Hosts[2]

	t.Run("identity", func(t *testing.T) {
		for _, h := range nw.Hosts {
			if got := strings.TrimSpace(h.MustRun(t, "hostname")); got != h.Name {
				t.Errorf("%s: hostname %q", h.Name, got)
			}
			if got := h.MustRun(t, "ip -4 -o addr show dev eth0"); !strings.Contains(got, h.Addr+"/24") {
				t.Errorf("%s: eth0 is %q, want %s", h.Name, got, h.Addr)
			}
			if got := strings.TrimSpace(h.MustRun(t, "cat /proc/1/comm")); got == "systemd" {
				t.Errorf("%s: PID 1 is systemd; apply's fallback would go untested", h.Name)
			}
			if r := h.Run(t, "test -d /run/systemd/system"); r.Code == 0 {
				t.Errorf("%s: /run/systemd/system exists", h.Name)
			}
			// A new machine's home, not the test machine's.
			if got := h.MustRun(t, "ls -A /root /home"); strings.Contains(got, ".ssh") || strings.Contains(got, ".cache") {
				t.Errorf("%s: /root or /home not fresh:\n%s", h.Name, got)
			}
			if got := h.MustRun(t, "ip route"); strings.Contains(got, "default") {
				t.Errorf("%s: has a default route, traffic could leave the bridge: %s", h.Name, got)
			}
		}
	})

	t.Run("files are per host", func(t *testing.T) {
		for _, p := range []string{"/etc/etcd/ssl/ca.pem", "/var/lib/etcd/member/x", "/usr/local/bin/etcdkit"} {
			h1.WriteFile(t, p, []byte("host1\n"), 0o600)
			h2.WriteFile(t, p, []byte("host2\n"), 0o644)
			if b, ok := h1.ReadFile(t, p); !ok || string(b) != "host1\n" {
				t.Errorf("host1 %s = %q, %v", p, b, ok)
			}
			if b, ok := h2.ReadFile(t, p); !ok || string(b) != "host2\n" {
				t.Errorf("host2 %s = %q, %v", p, b, ok)
			}
			if _, ok := h3.ReadFile(t, p); ok {
				t.Errorf("host3 sees %s written on other hosts", p)
			}
			if _, err := os.Stat(p); err == nil {
				t.Errorf("%s appeared on the real file system", p)
			}
		}
		st := h1.FileState(t)
		if v, ok := st["/etc/etcd/ssl/ca.pem"]; !ok || !strings.HasPrefix(v, "f 600 root:root 6\t") {
			t.Errorf("FileState /etc/etcd/ssl/ca.pem = %q (state %v)", v, st)
		}
		if _, ok := st["/usr/local/bin/etcdkit"]; !ok {
			t.Errorf("FileState lacks /usr/local/bin/etcdkit: %v", st)
		}
		if _, ok := st["/var/lib/etcd/member/x"]; !ok {
			t.Errorf("FileState lacks /var/lib/etcd/member/x: %v", st)
		}
		skipped := h1.FileState(t, "/var/lib/etcd/", "/usr/local/bin")
		for p := range skipped {
			if strings.HasPrefix(p, "/var/lib/etcd/") || strings.HasPrefix(p, "/usr/local/bin/") {
				t.Errorf("FileState skipping /var/lib/etcd and /usr/local/bin has %s", p)
			}
		}
		if _, ok := skipped["/etc/etcd/ssl/ca.pem"]; !ok || len(skipped) != len(st)-5 {
			t.Errorf("FileState with skips dropped other paths: %v (all: %v)", skipped, st)
		}
		for p := range h3.FileState(t) {
			if p != "/etc/hostname" && !strings.HasPrefix(p, "/root/.") {
				t.Errorf("host3 FileState has %s before any write", p)
			}
		}
		// Binary content survives the round trip.
		bin := bytes.Repeat([]byte{0, 1, 2, 0xff, '\n'}, 1000)
		h3.WriteFile(t, "/root/bin", bin, 0o600)
		if b, _ := h3.ReadFile(t, "/root/bin"); !bytes.Equal(b, bin) {
			t.Errorf("binary file changed in the round trip")
		}
	})

	t.Run("hosts reach each other", func(t *testing.T) {
		for _, to := range []*Host{h2, h3} {
			h1.MustRun(t, fmt.Sprintf("timeout 10 bash -c '</dev/tcp/%s/22'", to.Addr))
		}
		// And the test process, on the bridge's address.
		l, err := net.Listen("tcp", nw.Gateway+":0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			if c, err := l.Accept(); err == nil {
				c.Close()
			}
		}()
		h3.MustRun(t, fmt.Sprintf("timeout 10 bash -c '</dev/tcp/%s/%d'", nw.Gateway, l.Addr().(*net.TCPAddr).Port))
	})

	t.Run("disconnect", func(t *testing.T) {
		h2.Disconnect(t)
		c, err := net.DialTimeout("tcp", h2.SSHAddr(), 2*time.Second)
		if err == nil {
			c.Close()
			t.Fatalf("connected to disconnected %s", h2.Name)
		}
		h2.Reconnect(t)
	})

	t.Run("replace host key", func(t *testing.T) {
		old := h3.HostKey()
		nk := h3.ReplaceHostKey(t)
		if bytes.Equal(old.Marshal(), nk.Marshal()) {
			t.Fatal("host key did not change")
		}
		got, err := h3.presentedKey()
		if err != nil || !bytes.Equal(got.Marshal(), nk.Marshal()) {
			t.Fatalf("sshd presents %v (%v), want the new key", got, err)
		}
	})

	t.Run("occupy port", func(t *testing.T) {
		h1.OccupyPort(t, 2379)
		// 2379 = 0x094B, state 0A = LISTEN.
		if out := h1.MustRun(t, "cat /proc/net/tcp"); !strings.Contains(out, ":094B 00000000:0000 0A") {
			t.Fatalf("port 2379 not listening inside host1:\n%s", out)
		}
		if out := h2.MustRun(t, "cat /proc/net/tcp"); strings.Contains(out, ":094B 00000000:0000 0A") {
			t.Fatalf("port 2379 listening inside host2 too")
		}
		release := h1.OccupyPort(t, 2380)
		release()
		// 2380 = 0x094C.
		if out := h1.MustRun(t, "cat /proc/net/tcp"); strings.Contains(out, ":094C 00000000:0000 0A") {
			t.Fatalf("port 2380 still listening inside host1 after release:\n%s", out)
		}
	})

	t.Run("copy a directory in", func(t *testing.T) {
		local := t.TempDir()
		if err := os.MkdirAll(filepath.Join(local, "member", "wal"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(local, "member", "wal", "0.wal"), []byte("wal\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		h2.CopyDir(t, local, "/var/lib/etcd/copied")
		if got := h2.MustRun(t, "stat -c %a /var/lib/etcd/copied/member/wal /var/lib/etcd/copied/member/wal/0.wal"); got != "700\n600\n" {
			t.Fatalf("copied tree: %q", got)
		}
		if b, ok := h2.ReadFile(t, "/var/lib/etcd/copied/member/wal/0.wal"); !ok || string(b) != "wal\n" {
			t.Fatalf("copied file: %q %v", b, ok)
		}
		if _, ok := h3.ReadFile(t, "/var/lib/etcd/copied/member/wal/0.wal"); ok {
			t.Fatal("host3 sees host2's copy")
		}
	})

	t.Run("add a host", func(t *testing.T) {
		h4 := nw.Add(t)
		if h4.Name != "host4" || nw.Host("host4") != h4 {
			t.Fatalf("added %q", h4.Name)
		}
		h4.MustRun(t, fmt.Sprintf("timeout 10 bash -c '</dev/tcp/%s/22'", h1.Addr))
	})

	t.Run("fake systemd", func(t *testing.T) {
		h := nw.AddFakeSystemd(t)
		if got := strings.TrimSpace(h.MustRun(t, "cat /proc/1/comm; test -d /run/systemd/system && echo booted")); got != "systemd\nbooted" {
			t.Fatalf("PID 1 and /run/systemd/system: %q", got)
		}
		h.WriteFile(t, "/etc/systemd/system/napper.service", []byte("[Service]\nExecStart=/bin/sleep 4242\n"), 0o644)
		run := func(cmd string) string { return strings.TrimSpace(h.MustRun(t, cmd)) }
		if r := h.Run(t, "systemctl is-active --quiet napper"); r.Code != 3 {
			t.Fatalf("is-active before start: exit %d", r.Code)
		}
		run("systemctl enable --now --no-block napper")
		pid := run("systemctl show -p MainPID --value napper")
		if run("systemctl is-enabled napper") != "enabled" || pid == "0" || !strings.Contains(h.Processes(t), "sleep 4242") {
			t.Fatalf("after enable --now: pid %s\n%s", pid, h.Processes(t))
		}
		run("systemctl restart --no-block napper.service")
		if again := run("systemctl show -p MainPID --value napper"); again == pid || again == "0" {
			t.Fatalf("restart: pid %s, was %s", again, pid)
		}
		run("systemctl disable --now napper")
		if run("systemctl show -p MainPID --value napper") != "0" || strings.Contains(h.Processes(t), "sleep 4242") {
			t.Fatalf("still running after disable --now:\n%s", h.Processes(t))
		}
		if r := h.Run(t, "systemctl start missing"); r.Code != 5 || !strings.Contains(r.Stderr, "Unit missing.service not found") {
			t.Fatalf("missing unit: %+v", r)
		}
		calls := h.SystemctlCalls(t)
		if len(calls) != 9 || calls[1] != "enable --now --no-block napper" {
			t.Fatalf("calls %q", calls)
		}
		// Plain hosts are not touched by it.
		if got := strings.TrimSpace(h1.MustRun(t, "cat /proc/1/comm; command -v systemctl || true")); strings.Contains(got, "systemd\n") || strings.Contains(got, "/usr/local/sbin") {
			t.Fatalf("host1: %q", got)
		}
	})
}

// TestCleanup proves a network leaves nothing behind: processes detached
// inside a host (as `member run` started over SSH will be) die, and the
// namespaces and links are gone.
func TestCleanup(t *testing.T) {
	marker := fmt.Sprintf("etcdkit-testhosts-marker-%d", time.Now().UnixNano())
	var netns, bridge string
	t.Run("network", func(t *testing.T) {
		nw := Start(t, 2)
		netns, bridge = nw.Hosts[0].netns, nw.bridge
		for _, h := range nw.Hosts {
			// A daemon in its own session, reparented to PID 1.
			h.MustRun(t, fmt.Sprintf("setsid bash -c 'exec -a %s sleep 600' </dev/null >/dev/null 2>&1 &", marker))
		}
		// A detached child that exits is reaped, not left a zombie.
		h := nw.Hosts[0]
		h.MustRun(t, "setsid sleep 0.1 </dev/null >/dev/null 2>&1 &")
		deadline := time.Now().Add(20 * time.Second)
		for strings.Contains(h.MustRun(t, "ps -eo stat,args"), "Z ") {
			if time.Now().After(deadline) {
				t.Fatalf("zombie not reaped:\n%s", h.Processes(t))
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !strings.Contains(h.Processes(t), marker) {
			t.Fatalf("marker process not running:\n%s", h.Processes(t))
		}
	})
	if pids := findProcesses(marker); len(pids) > 0 {
		t.Errorf("processes %v survived cleanup", pids)
	}
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), netns+" ") || strings.Contains(string(out), netns+"\n") {
		t.Errorf("netns %s survived cleanup", netns)
	}
	if err := exec.Command("ip", "link", "show", bridge).Run(); err == nil {
		t.Errorf("bridge %s survived cleanup", bridge)
	}
}

// TestLeftoversRemoved simulates a crashed run: namespaces, links and a
// process of a slot nobody holds are removed when the slot is taken.
func TestLeftoversRemoved(t *testing.T) {
	requirements(t)
	const slot = maxSlots - 1
	if err := os.MkdirAll(lockDir, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(lockDir, fmt.Sprintf("slot-%d.lock", slot)), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Skipf("slot %d is in use by another run", slot)
	}
	ns := fmt.Sprintf("ekh%d-1", slot)
	veth := fmt.Sprintf("ekv%dx1", slot)
	bridge := fmt.Sprintf("ekbr%d", slot)
	mustIP(t, "netns", "add", ns)
	mustIP(t, "link", "add", bridge, "type", "bridge")
	mustIP(t, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
	marker := fmt.Sprintf("etcdkit-testhosts-leftover-%d", time.Now().UnixNano())
	cmd := exec.Command("ip", "netns", "exec", ns, "bash", "-c", fmt.Sprintf("exec -a %s sleep 600", marker))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for len(findProcesses(marker)) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}

	removeSlotLeftovers(slot)

	deadline = time.Now().Add(10 * time.Second)
	for len(findProcesses(marker)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("leftover process still running")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), ns) {
		t.Errorf("leftover netns %s not removed", ns)
	}
	for _, link := range []string{bridge, veth} {
		if err := exec.Command("ip", "link", "show", link).Run(); err == nil {
			t.Errorf("leftover link %s not removed", link)
		}
	}
}

// findProcesses lists pids whose command line contains s.
func findProcesses(s string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(s)) {
			out = append(out, e.Name())
		}
	}
	return out
}
