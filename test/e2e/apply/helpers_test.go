// Package apply_test drives `etcdkit apply` against simulated hosts
// (internal/testhosts): real sshd, per-host network, mount and PID
// namespaces, no systemd, so apply's detached fallback runs the members.
package apply_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcdkit/etcdkit/internal/connect"
	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/testhosts"
	"github.com/etcdkit/etcdkit/internal/testutil"
)

// env is one operator's machine: a home with known_hosts for the hosts,
// a CA directory, a backup directory and a debug log, all temporary.
type env struct {
	nw      *testhosts.Network
	bin     string
	home    string
	caDir   string
	backups string
	log     string
	spec    string
}

func newEnv(t *testing.T, nw *testhosts.Network) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{nw: nw, bin: testutil.Etcdkit(t), home: filepath.Join(dir, "home"), caDir: filepath.Join(dir, "pki"),
		backups: filepath.Join(dir, "backups"), log: filepath.Join(dir, "apply.log"), spec: filepath.Join(dir, "cluster.yaml")}
	if err := os.MkdirAll(filepath.Join(e.home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	e.trustHosts(t)
	return e
}

// trustHosts writes known_hosts with every host's current key.
func (e *env) trustHosts(t *testing.T) {
	t.Helper()
	e.nw.WriteKnownHosts(t, filepath.Join(e.home, ".ssh", "known_hosts"))
}

// writeSpec writes a spec with the given hosts as members; extra is
// appended at the top level (tuning: ...).
func (e *env) writeSpec(t *testing.T, hosts []*testhosts.Host, extra string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: etcdkit.io/v1alpha1\nkind: Cluster\nname: apply-test\nssh:\n  keyPath: %s\nmembers:\n", e.nw.ClientKey)
	for _, h := range hosts {
		fmt.Fprintf(&b, "  - name: %s\n    host: %s\n    peerURL: https://%s:2380\n    clientURL: https://%s:2379\n", h.Name, h.Addr, h.Addr, h.Addr)
	}
	b.WriteString(extra)
	if err := os.WriteFile(e.spec, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// apply runs `etcdkit apply -f SPEC` as the operator, with this
// machine's paths kept in the test's temp dir.
func (e *env) apply(t *testing.T, args ...string) testutil.Result {
	t.Helper()
	all := append([]string{"apply", "-f", e.spec, "--ca-dir", e.caDir, "--backup-dir", e.backups, "--log-file", e.log, "--connect-timeout", "5s", "--timeout", "2m"}, args...)
	r := testutil.Run(t, []string{"HOME=" + e.home, "SSH_AUTH_SOCK="}, e.bin, all...)
	t.Logf("etcdkit %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	// APPLY_TIMINGS=1 also logs the phases' durations from the debug log,
	// to see where a slow run spent its time.
	if os.Getenv("APPLY_TIMINGS") != "" {
		b, _ := os.ReadFile(e.log)
		var lines []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "phase done") || strings.Contains(l, "phase failed") {
				lines = append(lines, l)
			}
		}
		t.Logf("phases:\n%s", strings.Join(lines[max(0, len(lines)-12):], "\n"))
	}
	testutil.AssertNoStackTrace(t, r.Stdout+r.Stderr)
	return r
}

// target reaches the hosts' members with the client certificate apply
// keeps beside the CA.
func (e *env) target(hosts ...*testhosts.Host) *connect.Target {
	var eps []string
	for _, h := range hosts {
		eps = append(eps, "https://"+h.Addr+":2379")
	}
	return &connect.Target{Settings: connect.Settings{Endpoints: eps,
		CACert: filepath.Join(e.caDir, "ca.pem"), Cert: filepath.Join(e.caDir, "client.pem"), Key: filepath.Join(e.caDir, "client-key.pem"),
		DialTimeout: 5 * time.Second, CommandTimeout: 15 * time.Second}}
}

// members is the member list with health, as etcdkit sees it.
func (e *env) members(t *testing.T, hosts ...*testhosts.Host) *ops.Membership {
	t.Helper()
	ms, err := ops.ListMembers(testutil.Ctx(t), e.target(hosts...))
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// health runs `etcdkit health` from this machine against the hosts.
func (e *env) health(t *testing.T, hosts ...*testhosts.Host) {
	t.Helper()
	tg := e.target(hosts...)
	r := testutil.Run(t, nil, e.bin, "health", "--endpoints", strings.Join(tg.Endpoints, ","),
		"--cacert", tg.CACert, "--cert", tg.Cert, "--key", tg.Key)
	if r.Code != 0 {
		t.Fatalf("etcdkit health: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
}

// volatile are the paths a running member changes by itself: its data
// and its log. The rest of a host's files change only when apply does.
var volatile = []string{"/var/lib/etcd/", "/var/log/etcdkit/"}

// state is every host's files but the volatile ones.
func state(t *testing.T, hosts []*testhosts.Host) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, h := range hosts {
		out[h.Name] = h.FileState(t, volatile...)
	}
	return out
}

// assertUnchanged fails when any host's files differ from before.
func assertUnchanged(t *testing.T, before map[string]map[string]string, hosts []*testhosts.Host) {
	t.Helper()
	after := state(t, hosts)
	for _, h := range hosts {
		b, a := before[h.Name], after[h.Name]
		for p, v := range a {
			if b[p] != v {
				t.Errorf("%s: %s changed: %q -> %q", h.Name, p, b[p], v)
			}
		}
		for p := range b {
			if _, ok := a[p]; !ok {
				t.Errorf("%s: %s disappeared", h.Name, p)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// memberPID is the pid of the host's member, 0 when it does not run: the
// fallback's pid file, or the (fake) systemd unit's main pid.
func memberPID(t *testing.T, h *testhosts.Host) int {
	t.Helper()
	r := h.Run(t, `if [ -d /run/systemd/system ]; then systemctl show -p MainPID --value etcd; exit; fi
p=$(cat /run/etcdkit/etcd.pid 2>/dev/null) && kill -0 "$p" 2>/dev/null && ! grep -q '^State:.*Z' /proc/$p/status && echo "$p"`)
	pid, _ := strconv.Atoi(strings.TrimSpace(r.Stdout))
	return pid
}

// inOrder fails unless every part appears in s, each after the previous.
func inOrder(t *testing.T, s string, parts ...string) {
	t.Helper()
	at := 0
	for _, p := range parts {
		i := strings.Index(s[at:], p)
		if i < 0 {
			t.Fatalf("output lacks %q after position %d:\n%s", p, at, s)
		}
		at += i + len(p)
	}
}

func contains(t *testing.T, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Fatalf("output lacks %q:\n%s", p, s)
		}
	}
}
