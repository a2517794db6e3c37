package replace

import (
	"slices"
	"testing"
)

// TestFailpointInert: the test-only failpoint changes a replacement only
// when its variable names it.
func TestFailpointInert(t *testing.T) {
	r := &run{o: Options{Old: "m1"}}
	steps := func() []string {
		var out []string
		for _, p := range r.phases() {
			out = append(out, p.Name())
		}
		return out
	}
	normal := []string{"check", "snapshot", "remove", "add", "config", "start", "promote", "verify"}
	for _, v := range []string{"", "replace-something-else", FailpointSkipCatchUp + "x"} {
		t.Setenv(FailpointEnv, v)
		if got := steps(); !slices.Equal(got, normal) {
			t.Fatalf("%s=%q: steps %v, want %v", FailpointEnv, v, got, normal)
		}
	}
	t.Setenv(FailpointEnv, FailpointSkipCatchUp)
	want := []string{"check", "snapshot", "remove", "add", "promote-at-once", "config", "start", "promote", "verify"}
	if got := steps(); !slices.Equal(got, want) {
		t.Fatalf("%s=%s: steps %v, want %v", FailpointEnv, FailpointSkipCatchUp, got, want)
	}
}
