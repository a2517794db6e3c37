package e2e

import (
	"context"
	"strconv"
	"strings"
	"time"
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
