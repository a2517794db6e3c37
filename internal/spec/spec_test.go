package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const good = `apiVersion: etcdkit.io/v1alpha1
kind: Cluster
name: etcd-cluster
pki:
  dir: ssl
members:
  - name: master01
    peerURL: https://192.168.100.200:2380
    clientURL: https://192.168.100.200:2379
  - name: master02
    peerURL: https://192.168.100.201:2380
    clientURL: https://192.168.100.201:2379
  - name: master03
    peerURL: https://192.168.100.202:2380
    clientURL: https://192.168.100.202:2379
tuning: {heartbeatInterval: 100ms, electionTimeout: 1s, quotaBackendBytes: 8GiB, autoCompactionRetention: 1h}
backup: {dir: backups, schedule: "0 */6 * * *", keep: 28}
`

func load(t *testing.T, src string) (*Cluster, []string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return Load(path)
}

func TestLoadDefaultsAndResolves(t *testing.T) {
	c, warnings, err := load(t, good)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("%v %v", err, warnings)
	}
	if !filepath.IsAbs(c.PKI.Dir) || !filepath.IsAbs(c.Backup.Dir) || c.DataDir != DefaultDataDir {
		t.Fatalf("paths: %q %q %q", c.PKI.Dir, c.Backup.Dir, c.DataDir)
	}
	if c.Members[1].Host != "192.168.100.201" || c.PKI.Layout != "cfssl" || c.Tuning.QuotaBackendBytes != 8<<30 || c.Tuning.ElectionTimeout.Duration != time.Second {
		t.Fatalf("defaults: %+v", c)
	}
}

// TestEveryErrorWithPathAndLine: unknown fields and wrong types, then the
// validation errors, are all reported at once with their paths and lines.
func TestEveryErrorWithPathAndLine(t *testing.T) {
	src := strings.NewReplacer(
		"    peerURL: https://192.168.100.201:2380", "    peerUrl: https://192.168.100.201:2380",
		"name: etcd-cluster", "name: etcd-cluster\nmembrs: []",
		"keep: 28", "keep: many",
	).Replace(good)
	_, _, err := load(t, src)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`cluster.yaml:4: membrs: unknown field; did you mean "members"?`,
		`cluster.yaml:12: members[1].peerUrl: unknown field; did you mean "peerURL"?`,
		`backup.keep: want a whole number, got string`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}

	src = strings.NewReplacer(
		"https://192.168.100.201:2380", "http://192.168.100.201:2380",
		"https://192.168.100.202:2379", "https://192.168.100.200:2379",
		"name: master03", "name: master01",
		"electionTimeout: 1s", "electionTimeout: 400ms",
		"quotaBackendBytes: 8GiB", "quotaBackendBytes: 200GiB",
		`schedule: "0 */6 * * *"`, `schedule: "daily"`,
		"autoCompactionRetention: 1h", "autoCompactionRetention: soon",
	).Replace(good)
	_, _, err = load(t, src)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`cluster.yaml:11: members[1].peerURL: "http://192.168.100.201:2380" must be https`,
		`cluster.yaml:13: members[2].name: "master01" is also the name of members[0]`,
		`cluster.yaml:15: members[2].clientURL: "https://192.168.100.200:2379" is also members[0].clientURL`,
		`tuning.electionTimeout: 400ms is less than 5 x heartbeatInterval`,
		`tuning.quotaBackendBytes: 200GiB is outside etcd's limits`,
		`tuning.autoCompactionRetention: "soon"`,
		`backup.schedule: invalid cron expression "daily"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestWarnings(t *testing.T) {
	src := strings.Replace(good, "  - name: master03\n    peerURL: https://192.168.100.202:2380\n    clientURL: https://192.168.100.202:2379\n", "", 1)
	src = strings.Replace(src, "quotaBackendBytes: 8GiB", "quotaBackendBytes: 16GiB", 1)
	_, warnings, err := load(t, src)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(warnings, "\n")
	for _, want := range []string{"members: 2 members tolerate no more failures than 1", "tuning.quotaBackendBytes: 16GiB is above etcd's suggested maximum"} {
		if !strings.Contains(joined, want) {
			t.Errorf("warnings lack %q:\n%s", want, joined)
		}
	}
}

func TestNotASpec(t *testing.T) {
	for src, want := range map[string]string{
		"- a\n- b\n":     "the top level must be a mapping",
		"name: [\n":      "not valid YAML",
		"members: 3\n":   "members: want a list of members",
		"members: [3]\n": "members[0]: want a mapping",
	} {
		if _, err := Parse("x.yaml", []byte(src)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", src, err, want)
		}
	}
}

// TestSSH: the cluster-wide ssh block fills what a member leaves out, a
// relative key path is relative to the spec, "~" is left for apply, and
// a bad port names its path.
func TestSSH(t *testing.T) {
	src := strings.Replace(good, "pki:\n", "ssh: {user: deploy, keyPath: keys/id_ed25519}\npki:\n", 1)
	src = strings.Replace(src, "    clientURL: https://192.168.100.201:2379\n",
		"    clientURL: https://192.168.100.201:2379\n    ssh: {port: 2222, keyPath: ~/.ssh/other}\n", 1)
	c, _, err := load(t, src)
	if err != nil {
		t.Fatal(err)
	}
	m0, m1 := c.MemberSSH(&c.Members[0]), c.MemberSSH(&c.Members[1])
	if m0.User != "deploy" || m0.Port != 0 || !filepath.IsAbs(m0.KeyPath) || !strings.HasSuffix(m0.KeyPath, "keys/id_ed25519") {
		t.Errorf("member 0: %+v", m0)
	}
	if m1.User != "deploy" || m1.Port != 2222 || m1.KeyPath != "~/.ssh/other" {
		t.Errorf("member 1: %+v", m1)
	}
	_, _, err = load(t, strings.Replace(src, "port: 2222", "port: 70000", 1))
	if err == nil || !strings.Contains(err.Error(), "members[1].ssh.port: 70000 is not a TCP port") {
		t.Fatalf("error %v", err)
	}
}
