package render

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

func loadSpec(t *testing.T, name string) *spec.Cluster {
	t.Helper()
	c, warnings, err := spec.Load(filepath.Join("testdata", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) > 0 {
		t.Fatalf("warnings: %v", warnings)
	}
	return c
}

func member(t *testing.T, c *spec.Cluster, name string) *spec.Member {
	t.Helper()
	m, ok := c.Member(name)
	if !ok {
		t.Fatalf("no member %q", name)
	}
	return m
}

// golden compares got with testdata/golden/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/render -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run go test ./internal/render -update if the change is intended)\n--- got:\n%s\n--- want:\n%s", name, got, want)
	}
}

// TestGolden renders every format for the runbook's external cluster and
// a kubeadm stacked cluster, a stock-etcd unit and a joining member's pod.
func TestGolden(t *testing.T) {
	stacked := loadSpec(t, "stacked")
	cases := []struct {
		spec, member, variant string
		formats               []Format
		opts                  Options
	}{
		{spec: "runbook", member: "master01", formats: Formats()},
		{spec: "runbook", member: "master01", variant: "stock", formats: []Format{FormatSystemd}, opts: Options{Engine: EngineStock}},
		{spec: "stacked", member: "cp1", formats: Formats()},
		{spec: "stacked", member: "cp3", variant: "join", formats: []Format{FormatYAML, FormatStaticPod},
			opts: Options{EtcdOptions: EtcdOptions{State: StateExisting, InitialCluster: stacked.InitialCluster()}}},
	}
	for _, tc := range cases {
		c := loadSpec(t, tc.spec)
		m := member(t, c, tc.member)
		for _, f := range tc.formats {
			name := tc.spec + "-" + tc.member
			if tc.variant != "" {
				name += "-" + tc.variant
			}
			name += "." + string(f)
			t.Run(name, func(t *testing.T) {
				o := tc.opts
				o.Source = tc.spec + ".yaml"
				file, err := Render(c, m, f, o)
				if err != nil {
					t.Fatal(err)
				}
				golden(t, name, file.Data)
			})
		}
	}
}

// TestEnvSaysWhatYAMLSays: the env file and the YAML of a member parse to
// the same config, through etcd's own variable names.
func TestEnvSaysWhatYAMLSays(t *testing.T) {
	for _, tc := range []struct{ spec, member string }{{"runbook", "master02"}, {"stacked", "cp3"}} {
		c := loadSpec(t, tc.spec)
		m := member(t, c, tc.member)
		fromYAML := renderParse(t, c, m, FormatYAML)
		fromEnv := renderParse(t, c, m, FormatEnv)
		if !fromEnv.IsEnv() {
			t.Fatal("the env file was not read as an environment file")
		}
		if a, b := marshal(t, fromYAML), marshal(t, fromEnv); a != b {
			t.Fatalf("%s/%s: env and YAML differ\nYAML:\n%s\nenv:\n%s", tc.spec, tc.member, a, b)
		}
	}
}

// TestStaticPodFlagsSayWhatYAMLSays: the pod's etcd command line, read
// back as flags, is the member's YAML config plus kubeadm's additions.
func TestStaticPodFlagsSayWhatYAMLSays(t *testing.T) {
	c := loadSpec(t, "stacked")
	m := member(t, c, "cp2")
	file, err := Render(c, m, FormatStaticPod, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(file.Data, &pod); err != nil {
		t.Fatalf("the manifest is not a valid Pod: %v", err)
	}
	if got := pod.Annotations[AdvertiseClientURLsAnnotation]; got != m.ClientURL {
		t.Fatalf("annotation %q, want %q", got, m.ClientURL)
	}
	if !pod.Spec.HostNetwork || pod.Spec.PriorityClassName != "system-node-critical" {
		t.Fatalf("want hostNetwork and system-node-critical: %+v", pod.Spec)
	}
	ctr := pod.Spec.Containers[0]
	for _, p := range []*corev1.Probe{ctr.LivenessProbe, ctr.ReadinessProbe, ctr.StartupProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Port.IntValue() != MetricsPort {
			t.Fatalf("probe not on the metrics port: %+v", p)
		}
	}
	// Turn --flag=value into ETCD_FLAG=value and read it as etcd would.
	var env strings.Builder
	for _, arg := range ctr.Command[1:] {
		name, value, ok := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
		if !ok {
			t.Fatalf("argument %q is not --flag=value", arg)
		}
		switch name {
		case "listen-metrics-urls", "feature-gates", "watch-progress-notify-interval":
			continue // kubeadm's additions
		}
		fmt.Fprintf(&env, "%s=%s\n", etcdconf.EnvName(name), etcdconf.QuoteEnvValue(value))
	}
	fromFlags, err := etcdconf.Parse("pod", []byte(env.String()))
	if err != nil {
		t.Fatal(err)
	}
	want := renderParse(t, c, m, FormatYAML)
	want.Etcdkit = nil
	if a, b := marshal(t, want), marshal(t, fromFlags); a != b {
		t.Fatalf("pod flags and YAML differ\nYAML:\n%s\nflags:\n%s", a, b)
	}
	for _, v := range []string{"etcd-data", "etcd-certs"} {
		found := false
		for _, vol := range pod.Spec.Volumes {
			found = found || (vol.Name == v && vol.HostPath != nil)
		}
		if !found {
			t.Fatalf("no hostPath volume %s", v)
		}
	}
}

// TestSystemdAnalyzeVerify: both units pass systemd's own checker.
func TestSystemdAnalyzeVerify(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (.ci/run installs the systemd package)")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := loadSpec(t, "runbook")
	m := member(t, c, "master01")
	for _, engine := range []Engine{EngineEtcdkit, EngineStock} {
		// verify checks that ExecStart's binary exists: point it at one.
		file, err := Render(c, m, FormatSystemd, Options{Engine: engine, Binary: self})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		unit := filepath.Join(dir, "etcd.service")
		if err := os.WriteFile(unit, file.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(tool, "verify", unit).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Fatalf("systemd-analyze verify (%s engine): %v\n%s\n%s", engine, err, out, file.Data)
		}
	}
}

// TestSystemdAnalyzeCatchesABadUnit proves the verify test can fail.
func TestSystemdAnalyzeCatchesABadUnit(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (.ci/run installs the systemd package)")
	}
	unit := filepath.Join(t.TempDir(), "etcd.service")
	bad := "[Service]\nType=notify\nExecStart=/nonexistent/etcd\nRestart=sometimes\n"
	if err := os.WriteFile(unit, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "verify", unit).CombinedOutput()
	if err == nil && len(bytes.TrimSpace(out)) == 0 {
		t.Fatal("systemd-analyze verify accepted a unit with a missing binary and an invalid Restart=")
	}
}

func TestRenderRefuses(t *testing.T) {
	c := loadSpec(t, "runbook")
	m := member(t, c, "master01")
	if _, err := Render(c, m, FormatSystemd, Options{Binary: "etcdkit"}); err == nil || !strings.Contains(err.Error(), "absolute path") {
		t.Fatalf("relative binary: %v", err)
	}
	if _, err := Render(c, nil, FormatYAML, Options{}); err == nil || !strings.Contains(err.Error(), "per member") {
		t.Fatalf("no member: %v", err)
	}
	if _, err := ParseFormat("ini"); err == nil || !strings.Contains(err.Error(), "options are yaml, env, systemd, static-pod, apiserver, kubeadm") {
		t.Fatalf("bad format: %v", err)
	}
}

func renderParse(t *testing.T, c *spec.Cluster, m *spec.Member, f Format) *etcdconf.Config {
	t.Helper()
	file, err := Render(c, m, f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := etcdconf.Parse(string(f), file.Data)
	if err != nil {
		t.Fatalf("%s does not parse: %v\n%s", f, err, file.Data)
	}
	return cfg
}

func marshal(t *testing.T, c *etcdconf.Config) string {
	t.Helper()
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
