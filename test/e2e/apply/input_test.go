package apply_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcdkit/etcdkit/internal/testhosts"
	"github.com/etcdkit/etcdkit/internal/testutil"
)

// TestApplyBadInput: bad flags and specs get one clear message (file,
// field, fix) and exit 2; nothing is written on this machine but the
// debug log.
func TestApplyBadInput(t *testing.T) {
	bin := testutil.Etcdkit(t)
	dir := t.TempDir()
	n := 0
	spec := func(body string) string {
		n++
		p := filepath.Join(dir, fmt.Sprintf("cluster%d.yaml", n))
		if err := os.WriteFile(p, []byte("apiVersion: etcdkit.io/v1alpha1\nkind: Cluster\nname: c\nmembers:\n"+body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	one := "  - {name: m1, host: 10.0.0.1, peerURL: 'https://10.0.0.1:2380', clientURL: 'https://10.0.0.1:2379'}\n"
	caDir := filepath.Join(dir, "pki")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"no spec", []string{"apply"}, []string{"-f is required: the cluster spec"}},
		{"bad concurrency", []string{"apply", "-f", spec(one), "--concurrency", "0"}, []string{"invalid value 0 for flag --concurrency"}},
		{"unknown field", []string{"apply", "-f", spec(one + "  - {name: m2, hots: 10.0.0.2}\n")},
			[]string{"cluster2.yaml:6: members[1].hots: unknown field; did you mean \"host\"?"}},
		{"bad ssh port", []string{"apply", "-f", spec(one + "ssh: {port: 70000}\n")}, []string{"cluster3.yaml:6: ssh.port: 70000 is not a TCP port"}},
		{"two members on one host", []string{"apply", "-f", spec(one + "  - {name: m2, host: 10.0.0.1, peerURL: 'https://10.0.0.1:12380', clientURL: 'https://10.0.0.1:12379'}\n")},
			[]string{"members[1].host: 10.0.0.1 is also member \"m1\"'s host; apply installs one member per host"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(tc.args, "--ca-dir", caDir, "--log-file", filepath.Join(dir, "apply.log"))
			r := testutil.Run(t, []string{"HOME=" + dir}, bin, args...)
			testutil.ExpectFailure(t, r, 2, tc.want...)
			if strings.Contains(r.Stderr, "debug log") {
				t.Errorf("a bad input names the debug log:\n%s", r.Stderr)
			}
			if _, err := os.Stat(caDir); !os.IsNotExist(err) {
				t.Fatalf("%s was created", caDir)
			}
		})
	}
}

// TestApplyUnreachableWithoutRoot: with nothing listening on a host's SSH
// port, apply names the host and changes nothing, not even the CA here.
func TestApplyUnreachableWithoutRoot(t *testing.T) {
	bin := testutil.Etcdkit(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "cluster.yaml")
	body := "apiVersion: etcdkit.io/v1alpha1\nkind: Cluster\nname: c\nssh: {port: 1, keyPath: " + testhosts.NewClientKey(t) + "}\nmembers:\n" +
		"  - {name: m1, host: 127.0.0.1, peerURL: 'https://127.0.0.1:2380', clientURL: 'https://127.0.0.1:2379'}\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	caDir, log := filepath.Join(dir, "pki"), filepath.Join(dir, "logs", "apply.log")
	r := testutil.Run(t, []string{"HOME=" + dir, "SSH_AUTH_SOCK="}, bin, "apply", "-f", p, "--ca-dir", caDir, "--log-file", log)
	testutil.ExpectFailure(t, r, 1, `apply failed in phase "Connect to hosts" on m1`, `host "m1" (127.0.0.1:1): unreachable`,
		"connection refused", "nothing was changed on any host", "the full debug log is "+log)
	if _, err := os.Stat(caDir); !os.IsNotExist(err) {
		t.Fatalf("%s was created", caDir)
	}
	b, err := os.ReadFile(log)
	if err != nil || !strings.Contains(string(b), "connect as root failed") {
		t.Fatalf("debug log %v:\n%s", err, b)
	}
	if fi, _ := os.Stat(log); fi.Mode().Perm() != 0o600 {
		t.Fatalf("debug log mode %v", fi.Mode())
	}
}
