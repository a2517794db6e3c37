package lint

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/local"
	"github.com/etcdkit/etcdkit/internal/render"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// summary is "line severity rule key" for each finding, to compare with
// what a test expects.
func summary(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%d %s %s %s", f.Line, f.Severity, f.Rule, f.Key))
	}
	return out
}

func lintFile(t *testing.T, path string) (Kind, []Finding) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	kind, fs := Data(path, data)
	checkKnownRules(t, fs)
	return kind, fs
}

func expect(t *testing.T, fs []Finding, want []string) {
	t.Helper()
	got := summary(fs)
	if !slices.Equal(got, want) {
		var full []string
		for _, f := range fs {
			full = append(full, fmt.Sprintf("%s %s %s: %s (fix: %s)", f.Location(), f.Severity, f.Rule, f.Message, f.Fix))
		}
		t.Fatalf("findings:\n  %s\nwant:\n  %s\nfull:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "), strings.Join(full, "\n  "))
	}
}

func checkKnownRules(t *testing.T, fs []Finding) {
	t.Helper()
	known := map[string]bool{}
	for _, r := range Rules() {
		known[r.ID] = true
	}
	for _, f := range fs {
		if !known[f.Rule] {
			t.Fatalf("finding with a rule missing from Rules(): %+v", f)
		}
		if f.Message == "" || f.File == "" {
			t.Fatalf("finding without a message or file: %+v", f)
		}
	}
}

// TestRunbookEnvFile: the runbook's /etc/etcd/etcd.conf, with AUTO_TLS
// beside real certificate paths, an HTTP loopback listener, the v2 API
// turned on, and certificates it never creates.
func TestRunbookEnvFile(t *testing.T) {
	kind, fs := lintFile(t, "testdata/runbook/etcd.conf")
	if kind != KindEnv {
		t.Fatalf("read as %s", kind)
	}
	expect(t, fs, []string{
		"5 warning http-loopback ETCD_LISTEN_CLIENT_URLS",
		"6 error removed-setting ETCD_ENABLE_V2",
		"16 error missing-file ETCD_CERT_FILE",
		"17 error missing-file ETCD_KEY_FILE",
		"18 error missing-file ETCD_TRUSTED_CA_FILE",
		"20 error missing-file ETCD_PEER_CERT_FILE",
		"21 error missing-file ETCD_PEER_KEY_FILE",
		"22 error missing-file ETCD_PEER_TRUSTED_CA_FILE",
		"24 error auto-tls-with-certs ETCD_AUTO_TLS",
		"25 error auto-tls-with-certs ETCD_PEER_AUTO_TLS",
	})
	for _, f := range fs {
		if f.Rule == etcdconf.RuleAutoTLSWithCerts && !strings.Contains(f.Fix, "remove "+f.Key) {
			t.Fatalf("the fix does not say what to remove: %+v", f)
		}
	}
}

// TestRunbookUnit: the runbook's unit, with two [Install] sections, two
// Restart= lines, Conflicts=etcd.service inside etcd.service and a bash -c
// wrapper around etcd.
func TestRunbookUnit(t *testing.T) {
	kind, fs := lintFile(t, "testdata/runbook/etcd.service")
	if kind != KindUnit {
		t.Fatalf("read as %s", kind)
	}
	expect(t, fs, []string{
		"7 error unit-conflicts-self Conflicts=",
		"13 warning unit-notify-wrapper ExecStart=",
		"17 warning unit-duplicate-key Restart=",
		"22 warning unit-duplicate-section [Install]",
	})
}

// localCluster makes a real 3-member cluster directory: spec, CA and
// member certificates, as `etcdkit up` does.
func localCluster(t *testing.T) (local.Dir, *spec.Cluster) {
	t.Helper()
	d := local.Dir(filepath.Join(t.TempDir(), "c"))
	c, err := d.Create(local.CreateOptions{Members: 3})
	if err != nil {
		t.Fatal(err)
	}
	return d, c
}

// TestCleanRenderedSet: everything render makes for a member with real
// certificates lints clean, as does the config `up` writes.
func TestCleanRenderedSet(t *testing.T) {
	d, c := localCluster(t)
	out := t.TempDir()
	var paths []string
	for _, m := range c.Members {
		for _, f := range []render.Format{render.FormatYAML, render.FormatEnv, render.FormatSystemd, render.FormatStaticPod} {
			file, err := render.Render(c, &m, f, render.Options{ConfigPath: filepath.Join(out, m.Name+"-etcd.yaml")})
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(out, m.Name+"-"+filepath.Base(file.Name))
			if f == render.FormatStaticPod {
				p = filepath.Join(out, m.Name+"-pod.yaml")
			}
			if err := os.WriteFile(p, file.Data, 0o644); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, p)
		}
		paths = append(paths, d.Member(m.Name).Config())
	}
	r, err := Files(paths)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Findings) > 0 {
		t.Fatalf("a clean rendered set has findings:\n%s", strings.Join(summary(r.Findings), "\n"))
	}
	kinds := map[Kind]int{}
	for _, f := range r.Files {
		kinds[f.Kind]++
	}
	if kinds[KindEtcdYAML] != 6 || kinds[KindEnv] != 3 || kinds[KindUnit] != 3 || kinds[KindStaticPod] != 3 {
		t.Fatalf("files read as %v", kinds)
	}
}

// TestCertSANMismatch: an advertised address the certificate does not
// cover, including behind a 0.0.0.0 listener.
func TestCertSANMismatch(t *testing.T) {
	d, _ := localCluster(t)
	path := d.Member("m1").Config()
	cfg, err := etcdconf.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := etcdconf.ParseURL(cfg.AdvertiseClientURLs)
	cfg.ListenClientURLs = "https://0.0.0.0:" + u.Port()
	cfg.AdvertiseClientURLs = "https://127.0.0.99:" + u.Port()
	bad := writeConfig(t, cfg)
	_, fs := lintFile(t, bad)
	expect(t, fs, []string{"1 error cert-san-mismatch advertise-client-urls"})
	if !strings.Contains(fs[0].Message, "listening on 0.0.0.0") || !strings.Contains(fs[0].Message, "127.0.0.99") || !strings.Contains(fs[0].Fix, "SANs") {
		t.Fatalf("message: %+v", fs[0])
	}
}

// TestStateNewWithData: a member that has joined but still says new.
func TestStateNewWithData(t *testing.T) {
	d, _ := localCluster(t)
	cfg, err := etcdconf.Load(d.Member("m2").Config())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "member", "snap"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, fs := lintFile(t, d.Member("m2").Config())
	if got := summary(fs); len(got) != 1 || !strings.Contains(got[0], "warning state-new-with-data initial-cluster-state") {
		t.Fatalf("findings: %v", got)
	}
}

// TestTyposAndRemovedSettings: unknown variables and keys come with a
// did-you-mean; removed ones say what replaced them.
func TestTyposAndRemovedSettings(t *testing.T) {
	dir := t.TempDir()
	env := filepath.Join(dir, "etcd.conf")
	write(t, env, `ETCD_NAME=m1
ETCD_LISTEN_PEER_URL="https://10.0.0.1:2380"
ETCD_CA_FILE=/etc/etcd/ssl/ca.pem
ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL=5s
ETCD_NAME=m2
ETCD_DATA_DIR=/var/lib/etcd # the data
ETCD_HEARTBEAT_INTERVAL=often
`)
	_, fs := lintFile(t, env)
	byRule := map[string]Finding{}
	for _, f := range fs {
		byRule[f.Rule+" "+f.Key] = f
	}
	for key, want := range map[string]string{
		"unknown-key ETCD_LISTEN_PEER_URL":                                 `did you mean "ETCD_LISTEN_PEER_URLS"`,
		"removed-setting ETCD_CA_FILE":                                     "ETCD_TRUSTED_CA_FILE",
		"removed-setting ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL": "ETCD_WATCH_PROGRESS_NOTIFY_INTERVAL",
		"env-duplicate ETCD_NAME":                                          `first on line 1, "m1"`,
		"env-inline-comment ETCD_DATA_DIR":                                 `"/var/lib/etcd # the data"`,
		"invalid-value ETCD_HEARTBEAT_INTERVAL":                            "want a whole number",
	} {
		f, ok := byRule[key]
		if !ok {
			t.Fatalf("no %s finding in %v", key, summary(fs))
		}
		if !strings.Contains(f.Message+" "+f.Fix, want) {
			t.Fatalf("%s: %q lacks %q", key, f.Message+" / "+f.Fix, want)
		}
	}

	yml := filepath.Join(dir, "etcd.yaml")
	write(t, yml, "name: m1\nclient-transport-security:\n  client-cert-auht: true\nlisten-peer-url: https://10.0.0.1:2380\n")
	_, fs = lintFile(t, yml)
	got := strings.Join(summary(fs), "\n")
	for _, want := range []string{"3 error unknown-key client-transport-security.client-cert-auht", "4 error unknown-key listen-peer-url"} {
		if !strings.Contains(got, want) {
			t.Fatalf("no %q in:\n%s", want, got)
		}
	}
}

// TestNotifyWrapper: ExecStart forms that lose READY=1, and ones that keep
// it.
func TestNotifyWrapper(t *testing.T) {
	for _, tc := range []struct {
		exec, access string
		want         Severity
	}{
		{`/usr/local/bin/etcd`, "", ""},
		{`/usr/local/bin/etcdkit member run --config /etc/etcd/etcd.yaml`, "", ""},
		{`/bin/sh -c "exec /usr/local/bin/etcd"`, "", ""},
		{`/bin/bash -c "ulimit -n 65536; exec /usr/local/bin/etcd"`, "", ""},
		{`/bin/bash -c "/usr/local/bin/etcd 2>&1 | tee /var/log/etcd.log"`, "", Error},
		{`/bin/sh -c "/usr/local/bin/etcd &"`, "", Error},
		{`/bin/sh -c "/usr/local/bin/etcd >>/var/log/etcd.log 2>&1"`, "", Warning},
		{`/bin/sh -c "/usr/local/bin/etcd | tee x"`, "all", ""},
		{`/usr/bin/sudo -u etcd /usr/local/bin/etcd`, "", Error},
		{`/usr/bin/env -i PATH=/usr/bin /usr/local/bin/etcd`, "", Error},
		{`/usr/bin/env GOMAXPROCS=2 /usr/local/bin/etcd`, "", ""},
		{`/usr/bin/docker run --net=host quay.io/coreos/etcd`, "", Error},
		{`/usr/bin/setsid /usr/local/bin/etcd`, "", Error},
	} {
		unit := "[Service]\nType=notify\nExecStart=" + tc.exec + "\nRestart=on-failure\n"
		if tc.access != "" {
			unit += "NotifyAccess=" + tc.access + "\n"
		}
		_, fs := Data("etcd.service", []byte(unit))
		var got Severity
		for _, f := range fs {
			if f.Rule == RuleUnitNotifyWrapper {
				got = f.Severity
			}
		}
		if got != tc.want {
			t.Errorf("%s (NotifyAccess=%s): got %q, want %q: %v", tc.exec, tc.access, got, tc.want, summary(fs))
		}
	}
}

// TestUnitRules: the other unit checks, and the override idiom they must
// not flag.
func TestUnitRules(t *testing.T) {
	_, fs := Data("etcd.service", []byte("[Unit]\nDescription=x\n[Service]\nType=simple\nExecStart=/usr/local/bin/etcd\nExecStart=/usr/local/bin/etcd --name x\n"))
	expect(t, fs, []string{
		"3 warning unit-no-restart Restart=",
		"4 warning unit-not-notify Type=",
		"6 error unit-multiple-execstart ExecStart=",
	})
	// A drop-in's reset (ExecStart= then ExecStart=...) is one command.
	_, fs = Data("override.conf", []byte("[Service]\nType=notify\nExecStart=\nExecStart=/usr/local/bin/etcd\nRestart=on-failure\n"))
	expect(t, fs, nil)
	// Lines systemd ignores.
	_, fs = Data("etcd.service", []byte("Restart=always\n[Service]\nType=notify\nExecStart=/usr/local/bin/etcd\nRestart=on-failure\nthis is not a setting\n"))
	expect(t, fs, []string{"1 error unit-syntax ", "6 error unit-syntax "})
}

// TestStaticPodManifest: a kubeadm manifest's command line is read as
// etcd reads it.
func TestStaticPodManifest(t *testing.T) {
	_, c := localCluster(t)
	file, err := render.Render(c, &c.Members[0], render.FormatStaticPod, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(file.Data), "--client-cert-auth=true", "--client-cert-auht=true", 1)
	bad = strings.Replace(bad, "- --name=m1", "- --name=m1\n    - --auto-tls=true", 1)
	p := filepath.Join(t.TempDir(), "etcd.yaml")
	write(t, p, bad)
	kind, fs := lintFile(t, p)
	if kind != KindStaticPod {
		t.Fatalf("read as %s", kind)
	}
	got := strings.Join(summary(fs), "\n")
	for _, want := range []string{"error unknown-key --client-cert-auht", "error auto-tls-with-certs --auto-tls", "warning cert-auth-off --client-cert-auth"} {
		if !strings.Contains(got, want) {
			t.Fatalf("no %q in:\n%s", want, got)
		}
	}
	for _, f := range fs {
		if f.Line == 0 {
			t.Fatalf("finding without a line: %+v", f)
		}
	}
	_, fs = Data("pod.yaml", []byte("apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: x\n    command: [sleep]\n"))
	expect(t, fs, []string{"4 error pod-no-etcd "})
}

// TestFilesFollowsTheUnit: linting a unit lints the env file it reads.
func TestFilesFollowsTheUnit(t *testing.T) {
	dir := t.TempDir()
	env := filepath.Join(dir, "etcd.conf")
	data, err := os.ReadFile("testdata/runbook/etcd.conf")
	if err != nil {
		t.Fatal(err)
	}
	write(t, env, string(data))
	unit := filepath.Join(dir, "etcd.service")
	write(t, unit, "[Service]\nType=notify\nEnvironmentFile=-"+env+"\nExecStart=/usr/local/bin/etcd\nRestart=on-failure\n")
	r, err := Files([]string{unit})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Files) != 2 || r.Files[1].File != env || r.Files[1].Via != unit || r.Files[1].Kind != KindEnv {
		t.Fatalf("files: %+v", r.Files)
	}
	if errs, _ := r.Counts(); errs != 9 {
		t.Fatalf("%d errors, want the env file's 9", errs)
	}
	if _, err := Files([]string{filepath.Join(dir, "nope")}); err == nil {
		t.Fatal("a missing file given on the command line is not an error")
	}
}

// TestRulesDocumented: every rule id is in docs/config.md.
func TestRulesDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "config.md"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range Rules() {
		if seen[r.ID] {
			t.Fatalf("rule %s listed twice", r.ID)
		}
		seen[r.ID] = true
		if !strings.Contains(string(doc), "`"+r.ID+"`") {
			t.Errorf("docs/config.md does not document rule `%s`", r.ID)
		}
	}
}

func writeConfig(t *testing.T, cfg *etcdconf.Config) string {
	t.Helper()
	b, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// Put advertise-client-urls first so the test knows its line.
	lines := strings.Split(string(b), "\n")
	sortFirst := func(prefix string) {
		for i, l := range lines {
			if strings.HasPrefix(l, prefix) {
				lines = append([]string{l}, append(lines[:i:i], lines[i+1:]...)...)
				return
			}
		}
	}
	sortFirst("advertise-client-urls:")
	p := filepath.Join(t.TempDir(), "etcd.yaml")
	write(t, p, strings.Join(lines, "\n"))
	return p
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
