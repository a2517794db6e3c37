// Package config tests `etcdkit config render|lint` and `member run` from
// rendered files with the built binary: rendered YAML and env files start
// real members (etcdkit and the stock etcd server) that form one cluster,
// systemd's notify protocol over a real unixgram socket, and lint of the
// runbook's files.
package config

import (
	"context"
	"encoding/json"
	"errors"
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

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/lint"
	"github.com/etcdkit/etcdkit/internal/testutil"
)

var (
	stockOnce sync.Once
	stockPath string
	stockErr  error
)

// stockEtcd builds the stock etcd server (etcdmain.Main) once.
func stockEtcd(t *testing.T) string {
	t.Helper()
	stockOnce.Do(func() {
		dir, err := os.MkdirTemp("", "stock-etcd-")
		if err != nil {
			stockErr = err
			return
		}
		stockPath = filepath.Join(dir, "etcd")
		cmd := exec.Command("go", "build", "-o", stockPath, "./bench/cmd/stock-etcd")
		cmd.Dir = testutil.ModuleRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			stockErr = errors.New(string(out))
		}
	})
	if stockErr != nil {
		t.Fatalf("build stock etcd: %v", stockErr)
	}
	return stockPath
}

// notifySocket is a unixgram socket playing systemd's part of sd_notify.
type notifySocket struct {
	path string
	conn *net.UnixConn
	msgs chan string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &notifySocket{path: path, conn: conn, msgs: make(chan string, 64)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				close(n.msgs)
				return
			}
			n.msgs <- string(buf[:k])
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return n
}

// next waits for the next datagram.
func (n *notifySocket) next(t *testing.T, p *testutil.Proc) string {
	t.Helper()
	select {
	case m := <-n.msgs:
		return m
	case <-time.After(2 * time.Minute):
		t.Fatalf("no notification; member log:\n%s", p.Stderr())
	}
	return ""
}

// pending returns what has arrived without waiting.
func (n *notifySocket) pending() []string {
	var out []string
	for {
		select {
		case m := <-n.msgs:
			out = append(out, m)
		default:
			return out
		}
	}
}

func hasLine(msg, line string) bool {
	for _, l := range strings.Split(msg, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

// envOf reads an environment file into KEY=VALUE pairs, as a unit's
// EnvironmentFile= hands them to its process.
func envOf(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	vars, errs := etcdconf.ParseEnvFile(data)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var out []string
	for _, v := range vars {
		out = append(out, v.Name+"="+v.Value)
	}
	return out
}

// TestRenderedFilesFormACluster renders every member's YAML and env file
// from `up`'s spec and starts m1 with `etcdkit member run` from its env
// file, m2 with stock etcd --config-file from its YAML and m3 with stock
// etcd from its env file's variables: they form one cluster. m1 talks
// sd_notify to a real unixgram socket: no READY=1 while it lacks a quorum,
// READY=1 once it serves, STOPPING=1 on SIGTERM. It then restarts from its
// YAML, on the data it has.
func TestRenderedFilesFormACluster(t *testing.T) {
	pc := testutil.NewProcCluster(t, 3)
	bin, stock := pc.Bin, stockEtcd(t)
	out := t.TempDir()
	for _, m := range pc.Names() {
		r := testutil.Run(t, nil, bin, "config", "render", "--spec", pc.Dir.Spec(), "--member", m, "--format", "yaml,env", "--out", filepath.Join(out, m))
		if r.Code != 0 {
			t.Fatalf("render %s: %d\n%s", m, r.Code, r.Stderr)
		}
	}
	file := func(m, name string) string { return filepath.Join(out, m, name) }

	sock := listenNotify(t)
	m1 := testutil.Start(t, []string{"NOTIFY_SOCKET=" + sock.path}, bin, "member", "run", "--config", file("m1", "etcd.conf"))
	// The first datagram comes once etcd has started and waits for peers.
	if msg := sock.next(t, m1); !strings.HasPrefix(msg, "STATUS=starting") {
		t.Fatalf("first notification %q", msg)
	}
	// Alone of three it cannot have a quorum: READY=1 must not have come.
	for _, msg := range sock.pending() {
		if hasLine(msg, "READY=1") {
			t.Fatalf("READY=1 from a member without a quorum: %q", msg)
		}
	}
	m2 := testutil.Start(t, nil, stock, "--config-file", file("m2", "etcd.yaml"))
	m3 := testutil.Start(t, envOf(t, file("m3", "etcd.conf")), stock)

	msg := sock.next(t, m1)
	if !hasLine(msg, "READY=1") || !strings.Contains(msg, "STATUS=serving clients on "+pc.Member(t, "m1").ClientURL) {
		t.Fatalf("second notification %q", msg)
	}
	// READY=1 means m1 serves: a linearizable read through m1 alone works
	// now, without retrying.
	ctx := testutil.Ctx(t)
	cli1 := pc.Client(t, "m1")
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	if _, err := cli1.Get(rctx, "any"); err != nil {
		t.Fatalf("m1 said READY=1 but a read through it failed: %v", err)
	}
	cancel()
	if _, err := cli1.Put(ctx, "from-m1", "v"); err != nil {
		t.Fatal(err)
	}
	ml, err := cli1.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ml.Members) != 3 {
		t.Fatalf("%d members", len(ml.Members))
	}
	for _, name := range []string{"m2", "m3"} {
		cli := pc.Client(t, name)
		testutil.Retry(t, ctx, func() error {
			resp, err := cli.Get(ctx, "from-m1")
			if err != nil {
				return err
			}
			if len(resp.Kvs) != 1 {
				return errors.New("not replicated yet")
			}
			return nil
		})
	}

	if err := m1.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if msg := sock.next(t, m1); !hasLine(msg, "STOPPING=1") {
		t.Fatalf("on SIGTERM: %q", msg)
	}
	if code := m1.Wait(t, time.Minute); code != 0 {
		t.Fatalf("m1 exited %d:\n%s", code, m1.Stderr())
	}

	// m1 again, now from the rendered YAML, on its data: it rejoins.
	m1 = testutil.Start(t, nil, bin, "member", "run", "--config", file("m1", "etcd.yaml"))
	testutil.WaitReady(t, m1)
	cli := pc.Client(t, "m1")
	testutil.Retry(t, ctx, func() error {
		_, err := cli.Put(ctx, "after-restart", "v")
		return err
	})
	for _, p := range []*testutil.Proc{m1, m2, m3} {
		if p.Exited() {
			t.Fatalf("a member exited:\n%s", p.Stderr())
		}
	}
}

// TestMemberRunRefusesABadEnvFile: the runbook's env file mistakes stop
// `member run` with one message naming each variable and line, and no
// data dir is created.
func TestMemberRunRefusesABadEnvFile(t *testing.T) {
	pc := testutil.NewProcCluster(t, 1)
	out := t.TempDir()
	r := testutil.Run(t, nil, pc.Bin, "config", "render", "--spec", pc.Dir.Spec(), "--member", "m1", "--format", "env")
	if r.Code != 0 {
		t.Fatal(r.Stderr)
	}
	bad := r.Stdout + "ETCD_AUTO_TLS=\"true\"\nETCD_ENABLE_V2=\"true\"\nETCD_LISTEN_PEER_URL=\"https://127.0.0.1:2380\"\n"
	path := filepath.Join(out, "etcd.conf")
	testutil.WriteBytes(t, path, []byte(bad))
	lines := strings.Count(r.Stdout, "\n")
	before := testutil.TreeState(t, string(pc.Dir))
	res := testutil.Run(t, nil, pc.Bin, "member", "run", "--config", path)
	testutil.ExpectFailure(t, res, 2,
		path+":"+strconv.Itoa(lines+2)+": ETCD_ENABLE_V2: the v2 API was removed in etcd 3.6",
		path+":"+strconv.Itoa(lines+3)+`: ETCD_LISTEN_PEER_URL: etcd does not read this variable; did you mean "ETCD_LISTEN_PEER_URLS"?`)
	testutil.AssertTreeState(t, string(pc.Dir), before)

	// Without the unknown ones, the AUTO_TLS mistake is refused the same way.
	bad = r.Stdout + "ETCD_AUTO_TLS=\"true\"\n"
	testutil.WriteBytes(t, path, []byte(bad))
	res = testutil.Run(t, nil, pc.Bin, "member", "run", "--config", path)
	testutil.ExpectFailure(t, res, 2, path+":"+strconv.Itoa(lines+1)+": ETCD_AUTO_TLS: auto-tls is set together with ETCD_CERT_FILE", "remove ETCD_AUTO_TLS")
	testutil.AssertTreeState(t, string(pc.Dir), before)
}

// TestRenderBadInput: a bad spec or member name is one clear error, and
// nothing is written.
func TestRenderBadInput(t *testing.T) {
	bin := testutil.Etcdkit(t)
	dir := t.TempDir()
	specPath := filepath.Join(dir, "cluster.yaml")
	testutil.WriteBytes(t, specPath, []byte(`apiVersion: etcdkit.io/v1alpha1
kind: Cluster
name: prod
members:
  - name: a
    peerUrl: https://10.0.0.1:2380
    clientURL: https://10.0.0.1:2379
  - name: b
    peerURL: http://10.0.0.2:2380
    clientURL: https://10.0.0.1:2379
tuning:
  heartbeatInterval: 100ms
  electionTimeout: 300ms
backup:
  dir: /backups
  schedule: "every day"
`))
	outDir := filepath.Join(dir, "out")
	before := testutil.TreeState(t, dir)
	r := testutil.Run(t, nil, bin, "config", "render", "--spec", specPath, "--member", "a", "--format", "all", "--out", outDir)
	testutil.ExpectFailure(t, r, 2, specPath+`:6: members[0].peerUrl: unknown field; did you mean "peerURL"?`)
	testutil.AssertTreeState(t, dir, before)

	// Fixed field name: now every validation error, each with its line.
	fixed := strings.Replace(mustRead(t, specPath), "peerUrl", "peerURL", 1)
	testutil.WriteBytes(t, specPath, []byte(fixed))
	before = testutil.TreeState(t, dir)
	r = testutil.Run(t, nil, bin, "config", "render", "--spec", specPath, "--member", "a", "--format", "all", "--out", outDir)
	testutil.ExpectFailure(t, r, 2,
		specPath+`:9: members[1].peerURL: "http://10.0.0.2:2380" must be https`,
		specPath+`:10: members[1].clientURL: "https://10.0.0.1:2379" is also members[0].clientURL`,
		specPath+`:13: tuning.electionTimeout: 300ms is less than 5 x heartbeatInterval`,
		specPath+`:16: backup.schedule: invalid cron expression "every day"`,
		"members: 2 members tolerate no more failures than 1")
	testutil.AssertTreeState(t, dir, before)

	pc := testutil.NewProcCluster(t, 1)
	before = testutil.TreeState(t, dir)
	r = testutil.Run(t, nil, bin, "config", "render", "--spec", pc.Dir.Spec(), "--member", "nobody", "--format", "all", "--out", outDir)
	testutil.ExpectFailure(t, r, 2, `has no member "nobody"; members are m1`)
	r = testutil.Run(t, nil, bin, "config", "render", "--spec", pc.Dir.Spec(), "--member", "m1", "--format", "ini")
	testutil.ExpectFailure(t, r, 2, `invalid value "ini" for flag --format; options are yaml, env, systemd, static-pod, apiserver, kubeadm, all`)
	r = testutil.Run(t, nil, bin, "config", "render", "--spec", pc.Dir.Spec(), "--member", "m1", "--format", "yaml,env")
	testutil.ExpectFailure(t, r, 2, "--out DIR is required")
	testutil.AssertTreeState(t, dir, before)

	// And a good render writes every file, the pod where the kubelet looks.
	r = testutil.Run(t, nil, bin, "config", "render", "--spec", pc.Dir.Spec(), "--member", "m1", "--format", "all", "--out", outDir)
	if r.Code != 0 {
		t.Fatal(r.Stderr)
	}
	for _, f := range []string{"etcd.yaml", "etcd.conf", "etcd.service", "manifests/etcd.yaml", "kube-apiserver-etcd.flags", "kubeadm-etcd-external.yaml"} {
		if _, err := os.Stat(filepath.Join(outDir, f)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLintCLI: the runbook's files fail with the expected rules (and JSON
// a script can read); a clean rendered set passes; --strict fails on
// warnings; an unreadable file is a usage error.
func TestLintCLI(t *testing.T) {
	bin := testutil.Etcdkit(t)
	fixtures := filepath.Join(testutil.ModuleRoot(t), "internal", "lint", "testdata", "runbook")
	r := testutil.Run(t, nil, bin, "config", "lint", "-o", "json", filepath.Join(fixtures, "etcd.service"), filepath.Join(fixtures, "etcd.conf"))
	testutil.ExpectFailure(t, r, 1, "lint found problems: 10 errors, 4 warnings in 2 file(s)")
	var rep lint.Report
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("%v\n%s", err, r.Stdout)
	}
	rules := map[string]int{}
	for _, f := range rep.Findings {
		rules[f.Rule]++
		if f.Line == 0 || f.Fix == "" {
			t.Fatalf("finding without a line or fix: %+v", f)
		}
	}
	for rule, n := range map[string]int{"unit-conflicts-self": 1, "unit-duplicate-key": 1, "unit-duplicate-section": 1,
		"unit-notify-wrapper": 1, "auto-tls-with-certs": 2, "missing-file": 6, "removed-setting": 1, "http-loopback": 1} {
		if rules[rule] != n {
			t.Fatalf("%d %s findings, want %d: %v", rules[rule], rule, n, rules)
		}
	}

	pc := testutil.NewProcCluster(t, 3)
	out := t.TempDir()
	r = testutil.Run(t, nil, bin, "config", "render", "--spec", pc.Dir.Spec(), "--member", "m2", "--format", "yaml,env,systemd,static-pod",
		"--out", out, "--config-path", filepath.Join(out, "etcd.yaml"))
	if r.Code != 0 {
		t.Fatal(r.Stderr)
	}
	r = testutil.Run(t, nil, bin, "config", "lint", "--strict", filepath.Join(out, "etcd.service"), filepath.Join(out, "etcd.conf"), filepath.Join(out, "manifests", "etcd.yaml"))
	if r.Code != 0 || !strings.Contains(r.Stdout, "no problems found in 4 file(s)") {
		t.Fatalf("clean set: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}

	warnOnly := filepath.Join(out, "warn.service")
	testutil.WriteBytes(t, warnOnly, []byte("[Service]\nType=simple\nExecStart=/usr/local/bin/etcd\nRestart=on-failure\n"))
	if r = testutil.Run(t, nil, bin, "config", "lint", warnOnly); r.Code != 0 || !strings.Contains(r.Stdout, "1 warning in 1 file(s)") {
		t.Fatalf("warnings alone: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r = testutil.Run(t, nil, bin, "config", "lint", "--strict", warnOnly)
	testutil.ExpectFailure(t, r, 1, "1 error, 0 warnings")

	r = testutil.Run(t, nil, bin, "config", "lint", filepath.Join(out, "nope.conf"))
	testutil.ExpectFailure(t, r, 2, "nope.conf: no such file or directory")
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
