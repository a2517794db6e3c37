package testtools

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// RequireEnv, set to 1, makes Require fail a test instead of skipping it
// when a tool cannot be built; .ci/run sets it, so CI never passes by
// skipping the tests of record.
const RequireEnv = "ETCDKIT_REQUIRE_TOOLS"

// Require returns the named tool's binary, building it first if needed
// (minutes, once per machine; the build's output goes to a log beside the
// cache). When it cannot be built the test is skipped with the reason, or
// fails under ETCDKIT_REQUIRE_TOOLS=1.
func Require(t testing.TB, name string) string {
	t.Helper()
	tool, ok := Lookup(name)
	if !ok {
		t.Fatalf("testtools: no tool named %q", name)
	}
	cached, err := Cached(tool)
	if err != nil {
		t.Fatalf("testtools: %v", err)
	}
	if isExecutable(cached) {
		return cached
	}
	logPath := filepath.Dir(cached) + ".log"
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		t.Fatalf("testtools: %v", err)
	}
	log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("testtools: %v", err)
	}
	defer log.Close()
	t.Logf("building %s %s (first use on this machine; `go run ./test/tools` builds every tool ahead); log: %s", tool.Name, tool.Version, logPath)
	p, err := Path(context.Background(), name, log)
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%s is required (%s=1) but cannot be built: %v (log: %s)", name, RequireEnv, err, logPath)
		}
		t.Skipf("%s cannot be built here, so this test cannot run: %v (log: %s)", name, err, logPath)
	}
	return p
}
