package remote

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestResolveHost(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "id_db-b")
	if err := os.WriteFile(key, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config")
	cfg := "Host db-*\n  User deploy\n  Port 2222\n  IdentityFile " + filepath.Join(dir, "id_%n") + "\n" +
		"Host db-a\n  HostName 10.0.0.1\n" +
		"Host missing-key\n  IdentityFile /nonexistent/key\n" +
		"Host badport\n  Port nope\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	o := &Options{SSHConfig: cfgPath}
	for _, tc := range []struct {
		in, want Host
	}{
		// The config fills what the spec leaves empty; %n is the alias.
		{Host{Name: "m1", Address: "db-a"}, Host{Name: "m1", Address: "10.0.0.1", Port: 2222, User: "deploy"}},
		{Host{Address: "db-b"}, Host{Address: "db-b", Port: 2222, User: "deploy", KeyPath: key}},
		// The spec wins over the config.
		{Host{Address: "db-a", Port: 22, User: "root", KeyPath: "/k"}, Host{Address: "10.0.0.1", Port: 22, User: "root", KeyPath: "/k"}},
		// A missing IdentityFile is ignored, as ssh does; defaults apply.
		{Host{Address: "missing-key"}, Host{Address: "missing-key", Port: 22, User: "root"}},
		{Host{Address: "10.9.9.9"}, Host{Address: "10.9.9.9", Port: 22, User: "root"}},
	} {
		got, err := o.ResolveHost(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("Resolve(%#v) = %#v, want %#v", tc.in, got, tc.want)
		}
	}
	_, err := o.ResolveHost(Host{Name: "m9", Address: "badport"})
	if err == nil || !strings.Contains(err.Error(), `host "m9" (badport:22)`) || !strings.Contains(err.Error(), cfgPath) || !strings.Contains(err.Error(), `invalid Port "nope"`) {
		t.Errorf("bad port: %v", err)
	}
	// No config at all.
	if got, err := (&Options{SSHConfig: filepath.Join(dir, "none")}).ResolveHost(Host{Address: "h"}); err != nil || got.User != "root" || got.Port != 22 {
		t.Errorf("missing config: %+v %v", got, err)
	}
}

func TestParseFacts(t *testing.T) {
	out := strings.Join([]string{
		"@os-release",
		`PRETTY_NAME="Ubuntu 24.04.1 LTS"`, "NAME=\"Ubuntu\"", "VERSION_ID=\"24.04\"", "ID=ubuntu", "ID_LIKE=debian",
		"@uname", "aarch64", "6.8.0-45-generic",
		"@hostname", "master01",
		"@pid1", "systemd",
		"@systemd", "yes",
		"@tcp",
		"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
		"   0: 0100007F:0953 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0",
		"   1: 0B00000A:094C 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0",
		"   2: 0B00000A:C350 0B00000A:094B 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0",
		"   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1",
		"@ss",
		`LISTEN 0      4096     10.0.0.11:2380      0.0.0.0:*    users:(("etcdkit",pid=4242,fd=7))`,
		`LISTEN 0      128      [::]:22      [::]:*    users:(("sshd",pid=99,fd=3))`,
		"@df",
		"/var/lib",
		"/dev/sda1         102687672 22432908  75000000      24% /",
	}, "\n") + "\n"
	f, err := parseFacts(out, []int{22, 2379, 2380, 4001})
	if err != nil {
		t.Fatal(err)
	}
	if f.OS != (OSRelease{ID: "ubuntu", IDLike: "debian", VersionID: "24.04", PrettyName: "Ubuntu 24.04.1 LTS"}) {
		t.Errorf("os %+v", f.OS)
	}
	if f.Arch != "aarch64" || f.Kernel != "6.8.0-45-generic" || f.Hostname != "master01" || f.Init != "systemd" || !f.Systemd {
		t.Errorf("facts %+v", f)
	}
	// 2379 (0x094B) is only a connection's peer, not a listener.
	if _, ok := f.Listening[2379]; ok {
		t.Errorf("2379 reported listening: %v", f.Listening)
	}
	if l := f.Listening[2380]; l.Process != "etcdkit" || l.PID != 4242 || l.Addr != "10.0.0.11:2380" {
		t.Errorf("2380: %+v", l)
	}
	if l := f.Listening[22]; l.Process != "sshd" {
		t.Errorf("22: %+v", l)
	}
	if len(f.Listening) != 2 {
		t.Errorf("listening %v (only asked-for ports count)", f.Listening)
	}
	if f.DiskPath != "/var/lib" || f.DiskFree != 75000000*1024 {
		t.Errorf("disk %s %d", f.DiskPath, f.DiskFree)
	}

	// Without ss, /proc/net/tcp still finds the listener; systemd installed
	// but not PID 1 is not systemd.
	f, err = parseFacts("@pid1\nsh\n@systemd\nyes\n@tcp\n   1: 0B00000A:094C 00000000:0000 0A 0 0 0\n", []int{2380})
	if err != nil {
		t.Fatal(err)
	}
	if l := f.Listening[2380]; l.Addr != "10.0.0.11:2380" || l.Process != "" || f.Systemd {
		t.Errorf("proc only: %+v systemd %v", f.Listening, f.Systemd)
	}
}

func TestProcIP(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F":                         "127.0.0.1",
		"00000000":                         "*",
		"0B00000A":                         "10.0.0.11",
		"00000000000000000000000001000000": "::1",
		"0000000000000000FFFF00000B00000A": "10.0.0.11",
	} {
		if got := procIP(in); got != want {
			t.Errorf("procIP(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestParseStat(t *testing.T) {
	fi, sum, err := parseStat("/etc/etcd/ssl/k.pem", "8180 227 0 0 1700000000 root root\nabc123  -\n")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode != 0o600 || fi.Size != 227 || !fi.ownedBy("root:root") || fi.ownedBy("root:etcd") || sum != "abc123" {
		t.Errorf("%+v %q", fi, sum)
	}
	fi, _, err = parseStat("/d", "41ed 4096 1000 1000 1700000000 UNKNOWN UNKNOWN\n")
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode.Perm() != 0o755 || fi.Owner != "1000" || !fi.ownedBy("1000:1000") {
		t.Errorf("%+v", fi)
	}
	if _, _, err := parseStat("/x", "garbage"); err == nil {
		t.Error("garbage accepted")
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/etc/etcd/ssl":   "/etc/etcd/ssl",
		"":                "''",
		"a b":             "'a b'",
		"it's":            `'it'\''s'`,
		"$(rm -rf /)":     "'$(rm -rf /)'",
		"root:root":       "root:root",
		"x;y":             "'x;y'",
		"--no-such-flag*": "'--no-such-flag*'",
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestPIDSniffer(t *testing.T) {
	var out strings.Builder
	p := &pidSniffer{w: &out}
	for _, chunk := range []string{"etcdkit-", "pid 4321\nfirst line\n", "second\n"} {
		if _, err := p.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if p.pid() != 4321 || out.String() != "first line\nsecond\n" {
		t.Errorf("pid %d, passed on %q", p.pid(), out.String())
	}
	// Output without the marker is passed on whole.
	out.Reset()
	p = &pidSniffer{w: &out}
	_, _ = p.Write([]byte("sh: 1: exec: nope: not found\n"))
	if p.pid() != 0 || out.String() != "sh: 1: exec: nope: not found\n" {
		t.Errorf("pid %d, passed on %q", p.pid(), out.String())
	}
}

// TestDryRunGate: in dry-run mode Change records and never calls do (the
// connection here has no SSH client at all).
func TestDryRunGate(t *testing.T) {
	plan := NewPlan(true)
	c := &Conn{host: Host{Name: "master02", Address: "10.0.0.2", Port: 22}, opts: &Options{Plan: plan}}
	called := false
	do := func(context.Context) error { called = true; return nil }
	if err := c.Change(context.Background(), "write /etc/etcd/etcd.conf", do); err != nil || called {
		t.Fatalf("dry run: err %v, called %v", err, called)
	}
	if err := c.RunChange(context.Background(), "", "systemctl enable --now etcd"); err != nil {
		t.Fatal(err)
	}
	want := "master02 (10.0.0.2:22):\n  - write /etc/etcd/etcd.conf\n  - run systemctl enable --now etcd\n"
	if plan.String() != want {
		t.Errorf("plan:\n%s\nwant:\n%s", plan, want)
	}

	// Wet: do runs, is recorded on success, and its failure names the host
	// and the change.
	plan = NewPlan(false)
	c.opts.Plan = plan
	if err := c.Change(context.Background(), "a", do); err != nil || !called || len(plan.Changes()) != 1 {
		t.Fatalf("wet: %v %v %v", err, called, plan.Changes())
	}
	err := c.Change(context.Background(), "restart etcd", func(context.Context) error { return fs.ErrPermission })
	if !errors.Is(err, fs.ErrPermission) || err.Error() != `host "master02" (10.0.0.2:22): restart etcd: permission denied` {
		t.Errorf("failure: %v", err)
	}
	if len(plan.Changes()) != 1 {
		t.Errorf("failed change recorded: %v", plan.Changes())
	}
}

func TestErrorMessages(t *testing.T) {
	h := Host{Name: "master02", Address: "10.0.0.2", Port: 2222}
	err := h.hostErr(h.errorf("inner: %w", fs.ErrNotExist))
	if err.Error() != `host "master02" (10.0.0.2:2222): inner: file does not exist` {
		t.Errorf("double wrapped: %v", err)
	}
	u := &UnknownHostKeyError{Addr: "10.0.0.2:2222", KeyType: "ssh-ed25519", Fingerprint: "SHA256:abc", KnownHosts: "/root/.ssh/known_hosts", AcceptHint: "re-run with --accept-new-host-keys"}
	for _, want := range []string{"SHA256:abc", "ssh_host_ed25519_key.pub", "trust it on first use (re-run with --accept-new-host-keys)", "ssh-keyscan -p 2222 10.0.0.2 >> /root/.ssh/known_hosts"} {
		if !strings.Contains(u.Error(), want) {
			t.Errorf("%q lacks %q", u.Error(), want)
		}
	}
	if !errors.Is(h.hostErr(u), ErrUnknownHostKey) || errors.Is(u, ErrHostKeyChanged) {
		t.Error("unknown key error identity")
	}
	c := &HostKeyChangedError{Addr: "10.0.0.2:2222", KeyType: "ssh-ed25519", Fingerprint: "SHA256:new",
		Known: []KnownKey{{File: "/root/.ssh/known_hosts", Line: 7, KeyType: "ssh-ed25519", Fingerprint: "SHA256:old"}}}
	for _, want := range []string{"SHA256:new", "SHA256:old (/root/.ssh/known_hosts:7)", "ssh-keygen -R [10.0.0.2]:2222 -f /root/.ssh/known_hosts"} {
		if !strings.Contains(c.Error(), want) {
			t.Errorf("%q lacks %q", c.Error(), want)
		}
	}
}

// TestKnownAlgorithms: the handshake asks for the key type known_hosts
// holds, so a host with several keys is not mistaken for a changed one.
func TestKnownAlgorithms(t *testing.T) {
	dir := t.TempDir()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize("10.0.0.2:2222")}, pub) + "\n"
	if err := os.WriteFile(file, []byte("# comment\n"+line), 0o600); err != nil {
		t.Fatal(err)
	}
	k := &hostKeys{files: []string{file, filepath.Join(dir, "missing")}}
	if got := k.knownAlgorithms("10.0.0.2:2222"); len(got) != 1 || got[0] != ssh.KeyAlgoECDSA256 {
		t.Errorf("known host: %v", got)
	}
	if got := k.knownAlgorithms("10.0.0.2:22"); got != nil {
		t.Errorf("unknown host (other port): %v", got)
	}
	// The key itself verifies; another key for the same host is a change.
	if err := k.check("10.0.0.2:2222", &net.TCPAddr{}, pub); err != nil {
		t.Errorf("known key: %v", err)
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	otherPub, _ := ssh.NewPublicKey(other)
	err = k.check("10.0.0.2:2222", &net.TCPAddr{}, otherPub)
	var changed *HostKeyChangedError
	if !errors.As(err, &changed) || changed.Known[0].Line != 2 || changed.Known[0].File != file {
		t.Errorf("other key: %v", err)
	}
}

// TestPlanDo: a change not made over SSH goes through the same gate: in a
// dry run it is recorded and not made; otherwise made, then recorded,
// and a failure is not recorded. The observer hears each recorded one.
func TestPlanDo(t *testing.T) {
	for _, dry := range []bool{true, false} {
		p := NewPlan(dry)
		var heard []string
		p.Observe(func(c Change) { heard = append(heard, c.String()) })
		made := 0
		if err := p.Do("this machine", "local", "create the CA", func() error { made++; return nil }); err != nil {
			t.Fatal(err)
		}
		err := p.Do("m1", "10.0.0.1", "remove member m1", func() error { made++; return errors.New("refused") })
		switch {
		case dry && (err != nil || made != 0 || len(p.Changes()) != 2):
			t.Fatalf("dry run: err %v, made %d, changes %v", err, made, p.Changes())
		case !dry && (err == nil || !strings.Contains(err.Error(), "m1: remove member m1: refused") || made != 2 || len(p.Changes()) != 1):
			t.Fatalf("real run: err %v, made %d, changes %v", err, made, p.Changes())
		}
		if len(heard) != len(p.Changes()) || heard[0] != "this machine (local): create the CA" {
			t.Fatalf("observer heard %v", heard)
		}
	}
}
