package membership

import (
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/etcdkit/etcdkit/internal/local"
	"github.com/etcdkit/etcdkit/internal/testutil"
)

// TestUpReshape: the whole flow on one machine. `etcdkit up` runs three
// members; m1 is SIGKILLed; `up replace m1` puts m4 on 127.0.0.4 in its
// place (the running `up` starts it) and the spec follows; `up add` adds
// m5 on 127.0.0.5 and `up remove m5` takes it out again; `up`, restarted,
// runs m2, m3 and m4 from the spec.
func TestUpReshape(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c")
	c := testutil.Up(t, dir)
	if err := syscall.Kill(c.MemberPIDs(t)["m1"], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitStderr(t, c.Proc, `member "m1" stopped unexpectedly`)

	r := testutil.RunOK(t, nil, "up", "replace", "m1", "--dir", dir)
	if !strings.Contains(r.Stdout, `replaced member "m1" with "m4"`) || !strings.Contains(r.Stdout, "--etcd-servers=") {
		t.Fatalf("up replace:\n%s%s", r.Stdout, r.Stderr)
	}
	ms := testutil.Members(t, nil, "--dir", dir)
	testutil.ExpectVoters(t, ms, "m2", "m3", "m4")
	if u, err := url.Parse(ms.Find("m4").ClientURLs[0]); err != nil || u.Hostname() != "127.0.0.4" {
		t.Fatalf("m4 serves on %v, want 127.0.0.4", ms.Find("m4").ClientURLs)
	}
	expectSpec(t, dir, "m2", "m3", "m4")
	r = testutil.RunOK(t, nil, "up", "replace", "m1", "--dir", dir)
	if !strings.Contains(r.Stdout, "nothing left to do") {
		t.Fatalf("up replace re-run:\n%s%s", r.Stdout, r.Stderr)
	}

	r = testutil.RunOK(t, nil, "up", "add", "--dir", dir)
	if !strings.Contains(r.Stdout, `added member "m5"`) {
		t.Fatalf("up add:\n%s%s", r.Stdout, r.Stderr)
	}
	testutil.ExpectVoters(t, testutil.Members(t, nil, "--dir", dir), "m2", "m3", "m4", "m5")
	r = testutil.RunOK(t, nil, "up", "remove", "m5", "--dir", dir)
	if !strings.Contains(r.Stdout, `removed member "m5"`) {
		t.Fatalf("up remove:\n%s%s", r.Stdout, r.Stderr)
	}
	r = testutil.RunOK(t, nil, "up", "remove", "m5", "--dir", dir)
	if !strings.Contains(r.Stdout, "already removed") {
		t.Fatalf("up remove re-run:\n%s", r.Stdout)
	}
	testutil.ExpectVoters(t, testutil.Members(t, nil, "--dir", dir), "m2", "m3", "m4")
	expectSpec(t, dir, "m2", "m3", "m4")
	waitStderr(t, c.Proc, "stopped: m5")
	for _, want := range []string{"stopped: m1", "started: m4", "started: m5"} {
		if !strings.Contains(c.Proc.Stderr(), want) {
			t.Fatalf("up did not report %q:\n%s", want, c.Proc.Stderr())
		}
	}
	if code := c.Stop(t); code != 0 {
		t.Fatalf("up exited %d", code)
	}

	c = testutil.Up(t, dir)
	for _, want := range []string{"m2 ", "m3 ", "m4 ", "127.0.0.4"} {
		if !strings.Contains(c.Proc.Stdout(), want) {
			t.Fatalf("restarted up lacks %q:\n%s", want, c.Proc.Stdout())
		}
	}
	testutil.RunOK(t, nil, "health", "--dir", dir)
	if code := c.Stop(t); code != 0 {
		t.Fatalf("up exited %d", code)
	}
}

func expectSpec(t *testing.T, dir string, names ...string) {
	t.Helper()
	c, err := local.Dir(dir).Load()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range c.Members {
		got = append(got, m.Name)
	}
	slices.Sort(got)
	if !slices.Equal(got, names) {
		t.Fatalf("spec members %v, want %v", got, names)
	}
}

// TestMembershipBadInput: each misuse gets one clear message, the right
// exit code, and writes nothing.
func TestMembershipBadInput(t *testing.T) {
	bin := testutil.Etcdkit(t)
	dir := t.TempDir()
	nowhere := []string{"--endpoints", "https://127.0.0.1:1"}
	stopped := local.Dir(filepath.Join(dir, "stopped"))
	if _, err := stopped.Create(local.CreateOptions{Members: 1}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"add without a name", []string{"member", "add"}, 2, []string{"takes the new member's name"}},
		{"add without a peer URL", append([]string{"member", "add", "m4"}, nowhere...), 2, []string{"--peer-urls takes one URL"}},
		{"add with two peer URLs", append([]string{"member", "add", "m4", "--peer-urls", "https://127.0.0.4:2380,https://127.0.0.5:2380"}, nowhere...), 2, []string{"--peer-urls takes one URL", "got 2"}},
		{"add with a bad peer URL", append([]string{"member", "add", "m4", "--peer-urls", "127.0.0.4:2380"}, nowhere...), 2, []string{"--peer-urls: invalid URL"}},
		{"add with --pki and no --out", append([]string{"member", "add", "m4", "--peer-urls", "https://127.0.0.4:2380", "--pki", dir}, nowhere...), 2, []string{"--pki needs --out"}},
		{"replace without --name", append([]string{"member", "replace", "m1"}, nowhere...), 2, []string{"--name is required"}},
		{"replace without --peer-url", append([]string{"member", "replace", "m1", "--name", "m4"}, nowhere...), 2, []string{"--peer-url is required"}},
		{"replace with a bad client URL", append([]string{"member", "replace", "m1", "--name", "m4", "--peer-url", "https://127.0.0.4:2380", "--client-url", "ftp://x:1"}, nowhere...), 2, []string{"--client-url: invalid URL", "scheme"}},
		{"update without peer URLs", []string{"member", "update", "m1"}, 2, []string{"--peer-urls is required"}},
		{"remove two", []string{"member", "remove", "m1", "m2"}, 2, []string{"takes the member's name or ID; got 2"}},
		{"list as xml", []string{"member", "list", "-o", "xml"}, 2, []string{`invalid value "xml" for flag --output`}},
		{"up replace without a cluster", []string{"up", "replace", "m1", "--dir", filepath.Join(dir, "none")}, 1, []string{"holds no cluster made by `etcdkit up`"}},
		{"up add while up is not running", []string{"up", "add", "--dir", string(stopped)}, 1, []string{"no `etcdkit up` runs on", "etcdkit up --dir"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.TreeState(t, dir)
			r := testutil.Run(t, nil, bin, tc.args...)
			testutil.ExpectFailure(t, r, tc.code, tc.want...)
			testutil.AssertTreeState(t, dir, before)
		})
	}
}
