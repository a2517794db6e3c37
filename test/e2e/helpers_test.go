package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcdkit/etcdkit/internal/testutil"
)

func shortCtx(parent context.Context) context.Context {
	ctx, cancel := context.WithTimeout(parent, time.Second)
	go func() {
		<-ctx.Done()
		cancel()
	}()
	return ctx
}

// withoutVar drops NAME=... from an environment list.
func withoutVar(env []string, name string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

// waitStderr waits until a process has printed s on stderr.
func waitStderr(t *testing.T, p *testutil.Proc, s string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(p.Stderr(), s) {
		if time.Now().After(deadline) || p.Exited() {
			t.Fatalf("stderr never showed %q:\n%s", s, p.Stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
