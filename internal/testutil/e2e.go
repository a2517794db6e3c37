package testutil

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcdkit/etcdkit/internal/local"
	"github.com/etcdkit/etcdkit/internal/ops"
)

// Helpers the e2e packages share.

// RunOK runs the etcdkit binary and fails the test unless it exits 0
// without a stack trace.
func RunOK(t testing.TB, env []string, args ...string) Result {
	t.Helper()
	r := Run(t, env, Etcdkit(t), args...)
	if r.Code != 0 {
		t.Fatalf("etcdkit %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	AssertNoStackTrace(t, r.Stderr)
	return r
}

// FreeURLs picks a free peer and client URL (https) on 127.0.0.i.
func FreeURLs(t testing.TB, i int) (peer, client string) {
	t.Helper()
	ip := fmt.Sprintf("127.0.0.%d", i)
	ports, err := local.FreePorts(ip, 2)
	if err != nil {
		t.Fatal(err)
	}
	return "https://" + net.JoinHostPort(ip, strconv.Itoa(ports[0])), "https://" + net.JoinHostPort(ip, strconv.Itoa(ports[1]))
}

// WaitFile waits until path exists, failing if p ends first.
func WaitFile(t testing.TB, p *Proc, path string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("%s never appeared\nstdout:\n%s\nstderr:\n%s", path, p.Stdout(), p.Stderr())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Finish waits for a background etcdkit command and checks it succeeded.
func Finish(t testing.TB, p *Proc) {
	t.Helper()
	if code := p.Wait(t, 4*time.Minute); code != 0 {
		t.Fatalf("%v: exit %d\nstdout:\n%s\nstderr:\n%s", p.Cmd.Args[1:], code, p.Stdout(), p.Stderr())
	}
	AssertNoStackTrace(t, p.Stderr())
}

// Members reads `etcdkit member list -o json` with the given environment
// and connection flags.
func Members(t testing.TB, env []string, args ...string) *ops.Membership {
	t.Helper()
	r := Run(t, env, Etcdkit(t), append([]string{"member", "list", "-o", "json"}, args...)...)
	var ms ops.Membership
	if err := json.Unmarshal([]byte(r.Stdout), &ms); err != nil {
		t.Fatalf("member list -o json: exit %d, %v\n%s%s", r.Code, err, r.Stdout, r.Stderr)
	}
	return &ms
}

// ExpectVoters checks the member list is exactly names, all started
// healthy voters.
func ExpectVoters(t testing.TB, ms *ops.Membership, names ...string) {
	t.Helper()
	var got []string
	for _, m := range ms.Members {
		got = append(got, m.Name)
		if !m.Started || m.Learner || !m.Healthy {
			t.Fatalf("member %s: started %v learner %v healthy %v (%s)", m.Name, m.Started, m.Learner, m.Healthy, m.Error)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, names) {
		t.Fatalf("members %v, want %v", got, names)
	}
}

// Golden compares got with the file at path, or writes it there when
// update is set (each package's -update flag).
func Golden(t testing.TB, path string, got []byte, update bool) {
	t.Helper()
	if update {
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
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from what was made (run the test with -update if the change is intended, and review the diff)\n--- got:\n%s\n--- want:\n%s", path, got, want)
	}
}
