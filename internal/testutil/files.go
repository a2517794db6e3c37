package testutil

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// WriteBytes writes a file for a test (mode 0600).
func WriteBytes(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TreeState is every path under dir with its kind and size, and the sha256
// of each member database, so a test can prove a failed command changed
// nothing. Logs and lock files are left out: they change on their own.
func TreeState(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, ".log") || strings.HasSuffix(p, ".lock") {
			return nil
		}
		v := fmt.Sprint(fi.IsDir(), fi.Size())
		if filepath.Base(p) == "db" {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v = fmt.Sprintf("%x", sha256.Sum256(b))
		}
		out[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// AssertTreeState fails when dir differs from a TreeState taken before.
func AssertTreeState(t testing.TB, dir string, want map[string]string) {
	t.Helper()
	got := TreeState(t, dir)
	for p, v := range want {
		if got[p] != v {
			t.Fatalf("%s changed (%q, was %q)", p, got[p], v)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Fatalf("%s appeared", p)
		}
	}
}

// ExpectFailure checks a failed command: the exit code, exactly one
// "Error: " line containing every want, and no Go stack trace.
func ExpectFailure(t testing.TB, r Result, code int, want ...string) {
	t.Helper()
	if r.Code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.Code, code, r.Stdout, r.Stderr)
	}
	errLines := 0
	for _, l := range strings.Split(r.Stderr, "\n") {
		if strings.HasPrefix(l, "Error: ") {
			errLines++
		}
	}
	if errLines != 1 {
		t.Fatalf("want exactly one Error: line, got %d\nstderr:\n%s", errLines, r.Stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.Stderr, w) {
			t.Fatalf("stderr lacks %q:\n%s", w, r.Stderr)
		}
	}
	AssertNoStackTrace(t, r.Stderr)
}
