// Package testhosts simulates the machines `etcdkit apply` manages, for
// tests: each host is a network namespace with its own address on a
// private bridge, its own mount, PID and UTS namespaces, and a real OpenSSH
// server on port 22 with a per-test host key that authorizes a per-test
// client key.
//
// Layout of one Network (slot N, a free /24 picked at start):
//
//	test process (root netns) -- bridge ekbrN 10.77.N.1/24
//	    +-- veth -- netns ekhN-1: eth0 10.77.N.11, sshd, PID 1 = a reaping shell
//	    +-- veth -- netns ekhN-2: eth0 10.77.N.12 ...
//
// The hosts have no default route, so their traffic stays on the bridge.
// Inside a host, /etc, /var, /usr/local, /opt and /srv are overlays on a
// tmpfs that lives only as long as the host, so /etc/etcd, /var/lib/etcd
// and /usr/local/bin/etcdkit differ per host and nothing is written to the
// real file system; /root (with /etc/skel's files) and /home start empty,
// as on a new machine. /run is a fresh tmpfs and PID 1 is not
// systemd, so apply takes its documented non-systemd path; a host made by
// AddFakeSystemd looks like a systemd machine instead, with test doubles
// of systemctl and journalctl.
//
// Cleanup kills each host's PID 1, which takes every process in the host
// with it (sshd, anything started over SSH, detached daemons), then deletes
// the namespaces and the bridge. A crashed earlier run's leftovers are
// removed when its slot is reused; slots are held with flock, so parallel
// test binaries never share one.
package testhosts

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Network is a set of simulated hosts on one bridge.
type Network struct {
	// Hosts in the order they were added.
	Hosts []*Host
	// Subnet is the hosts' /24, e.g. 10.77.3.0/24.
	Subnet string
	// Gateway is the test process's address on the bridge (10.77.N.1).
	Gateway string
	// ClientKey is an unencrypted ed25519 private key every host
	// authorizes for root; ClientSigner is the same key.
	ClientKey    string
	ClientSigner ssh.Signer
	// KnownHosts is a known_hosts file with every host's current key.
	// Tests of host key checking write their own (WriteKnownHosts).
	KnownHosts string

	t      testing.TB
	slot   int
	dir    string
	bridge string
	lock   *os.File
	mu     sync.Mutex
}

const (
	lockDir  = "/run/etcdkit-testhosts"
	maxSlots = 64
	// firstHost is the last octet of host 1's address.
	firstHost = 11
)

// Start brings up n hosts (host1..hostN) and registers their cleanup. It
// skips the test, saying why, when not root or when a tool is missing; under
// CI (CI set), where .ci/run installs the tools, it fails instead, so a
// missing install step cannot pass as a skip.
func Start(t testing.TB, n int) *Network {
	t.Helper()
	requirements(t)
	nw := &Network{t: t, dir: t.TempDir()}
	if err := nw.acquireSlot(); err != nil {
		t.Fatalf("testhosts: %v", err)
	}
	t.Cleanup(nw.cleanup)
	nw.Subnet = fmt.Sprintf("10.77.%d.0/24", nw.slot)
	nw.Gateway = fmt.Sprintf("10.77.%d.1", nw.slot)
	nw.bridge = fmt.Sprintf("ekbr%d", nw.slot)
	for _, args := range [][]string{
		{"link", "add", nw.bridge, "type", "bridge"},
		{"addr", "add", nw.Gateway + "/24", "dev", nw.bridge},
		{"link", "set", nw.bridge, "up"},
	} {
		mustIP(t, args...)
	}
	nw.makeClientKey()
	nw.KnownHosts = filepath.Join(nw.dir, "known_hosts")
	for range n {
		nw.Add(t)
	}
	return nw
}

func requirements(t testing.TB) {
	t.Helper()
	fail := t.Skipf
	if os.Getenv("CI") != "" {
		fail = t.Fatalf
	}
	if os.Geteuid() != 0 {
		fail("testhosts: simulated hosts need root (network, mount and PID namespaces); running as uid %d", os.Geteuid())
		return
	}
	for _, tool := range []string{"ip", "nsenter", "bash", "mount", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			fail("testhosts: %s not found in PATH", tool)
			return
		}
	}
	if _, err := os.Stat(sshdPath); err != nil {
		fail("testhosts: %s not found: install Debian's openssh-server (.ci/run does)", sshdPath)
		return
	}
	if out, err := exec.Command("ip", "netns", "list").CombinedOutput(); err != nil {
		fail("testhosts: network namespaces unavailable: %v %s", err, out)
	}
}

// acquireSlot takes the first free slot (a flock'd file), and removes what
// a crashed run that held it left behind.
func (nw *Network) acquireSlot() error {
	if err := os.MkdirAll(lockDir, 0o700); err != nil {
		return err
	}
	for slot := range maxSlots {
		f, err := os.OpenFile(filepath.Join(lockDir, fmt.Sprintf("slot-%d.lock", slot)), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		nw.slot, nw.lock = slot, f
		removeSlotLeftovers(slot)
		return nil
	}
	return fmt.Errorf("all %d slots in %s are in use", maxSlots, lockDir)
}

// removeSlotLeftovers deletes namespaces, links and processes named for
// slot. Only a run holding the slot's lock calls it, so whatever has these
// names belongs to a run that is gone.
func removeSlotLeftovers(slot int) {
	prefix := fmt.Sprintf("ekh%d-", slot)
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, prefix) {
			killNetnsPids(name)
			_ = exec.Command("ip", "netns", "del", name).Run()
		}
	}
	_ = exec.Command("ip", "link", "del", fmt.Sprintf("ekbr%d", slot)).Run()
	links, _ := exec.Command("ip", "-o", "link", "show").Output()
	vprefix := fmt.Sprintf("ekv%dx", slot)
	for _, line := range strings.Split(string(links), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if strings.HasPrefix(name, vprefix) {
			_ = exec.Command("ip", "link", "del", name).Run()
		}
	}
}

// killNetnsPids SIGKILLs every process in the named network namespace.
func killNetnsPids(ns string) {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func (nw *Network) cleanup() {
	nw.mu.Lock()
	hosts := append([]*Host(nil), nw.Hosts...)
	nw.mu.Unlock()
	if nw.t.Failed() {
		for _, h := range hosts {
			h.logDiagnostics(nw.t)
		}
	}
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.destroy()
		}()
	}
	wg.Wait()
	if nw.bridge != "" {
		_ = exec.Command("ip", "link", "del", nw.bridge).Run()
	}
	if nw.lock != nil {
		nw.lock.Close() // releases the flock
	}
}

func (nw *Network) makeClientKey() {
	nw.ClientKey = filepath.Join(nw.dir, "id_ed25519")
	nw.ClientSigner = writeKeyPair(nw.t, nw.ClientKey, "etcdkit-test-client")
}

// NewClientKey writes a fresh ed25519 key pair (path, path.pub) that no
// host authorizes, for tests of refused authentication, and returns the
// private key's path.
func NewClientKey(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "id_ed25519")
	writeKeyPair(t, p, "etcdkit-test-client")
	return p
}

// writeKeyPair writes a fresh ed25519 private key to path (atomically, so
// a reloading sshd never reads half a key) and its public half to
// path.pub, and returns the signer.
func writeKeyPair(t testing.TB, path, comment string) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".new", pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644); err != nil {
		t.Fatal(err)
	}
	return signer
}

// Add starts one more host (the next name and address) and returns it.
func (nw *Network) Add(t testing.TB) *Host {
	t.Helper()
	return nw.add(t, false)
}

// AddFakeSystemd starts one more host that looks like a systemd machine to
// apply: PID 1 is named systemd, /run/systemd/system exists, and
// systemctl and journalctl are test doubles (see fakeSystemctl) that run a
// unit's ExecStart detached. It is not systemd: it proves which commands
// apply sends and that the unit it installs starts a working member.
func (nw *Network) AddFakeSystemd(t testing.TB) *Host {
	t.Helper()
	return nw.add(t, true)
}

func (nw *Network) add(t testing.TB, fakeSystemd bool) *Host {
	t.Helper()
	nw.mu.Lock()
	i := len(nw.Hosts) + 1
	h := &Host{
		Name:  fmt.Sprintf("host%d", i),
		Addr:  fmt.Sprintf("10.77.%d.%d", nw.slot, firstHost+i-1),
		Port:  22,
		nw:    nw,
		netns: fmt.Sprintf("ekh%d-%d", nw.slot, i),
		veth:  fmt.Sprintf("ekv%dx%d", nw.slot, i),
		dir:   filepath.Join(nw.dir, fmt.Sprintf("host%d", i)),

		fakeSystemd: fakeSystemd,
	}
	nw.Hosts = append(nw.Hosts, h)
	nw.mu.Unlock()
	h.start(t)
	nw.writeKnownHosts(t, nw.KnownHosts, nw.hosts()...)
	return h
}

func (nw *Network) hosts() []*Host {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return append([]*Host(nil), nw.Hosts...)
}

// Host returns the host of that name.
func (nw *Network) Host(name string) *Host {
	for _, h := range nw.hosts() {
		if h.Name == name {
			return h
		}
	}
	nw.t.Fatalf("testhosts: no host %q", name)
	return nil
}

// WriteKnownHosts writes a known_hosts file holding the current keys of
// hosts (every host when none are given).
func (nw *Network) WriteKnownHosts(t testing.TB, path string, hosts ...*Host) {
	t.Helper()
	if len(hosts) == 0 {
		hosts = nw.hosts()
	}
	nw.writeKnownHosts(t, path, hosts...)
}

func (nw *Network) writeKnownHosts(t testing.TB, path string, hosts ...*Host) {
	t.Helper()
	var b bytes.Buffer
	for _, h := range hosts {
		b.WriteString(knownhosts.Line([]string{knownhosts.Normalize(h.SSHAddr())}, h.HostKey()) + "\n")
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustIP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("testhosts: ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// waitSSH waits until addr answers with an SSH banner.
func waitSSH(addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 8)
			n, _ := c.Read(buf)
			c.Close()
			if n >= 4 && string(buf[:4]) == "SSH-" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no SSH banner from %s within %s (last error: %v)", addr, limit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
