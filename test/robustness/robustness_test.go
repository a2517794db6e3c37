package robustness

import (
	"fmt"
	"os"
	"testing"
)

// TestScenarios runs every registered scenario: in the quick mode (the
// default, inside `go test ./...`) those marked Quick, against their
// smallest cluster, with one seed; with ETCDKIT_ROBUSTNESS=full every
// scenario, every size, three seeds.
func TestScenarios(t *testing.T) {
	mode := suiteMode(t)
	for _, s := range Scenarios() {
		if !s.Quick && !mode.AllScenarios {
			continue
		}
		sizes := s.Sizes
		if !mode.AllSizes {
			sizes = sizes[:1]
		}
		for _, n := range sizes {
			for _, seed := range mode.Seeds {
				t.Run(fmt.Sprintf("%s/%d-members/seed-%d", s.Name, n, seed), func(t *testing.T) {
					runAndRecord(t, s, n, seed, mode)
				})
			}
		}
	}
}

// runAndRecord runs a scenario, appends its result to the results file
// (even when the harness gave up part-way) and fails on any violation.
func runAndRecord(t *testing.T, s Scenario, n int, seed int64, mode Mode) {
	res := Result{Scenario: s.Name, Summary: s.Summary, Members: n, Seed: seed, Mode: mode.Name,
		Linearizable: "aborted", Problems: []string{"the run was aborted; see the test log"}}
	defer func() {
		if path := os.Getenv(EnvResults); path != "" {
			if err := AppendResult(path, res); err != nil {
				t.Errorf("record the result: %v", err)
			}
		}
	}()
	res = RunScenario(t, s, n, seed, mode)
	if res.Skipped != "" {
		t.Skip(res.Skipped)
	}
	t.Logf("%s: %d requests (%d ok, %d failed, %d unknown; %d settled applied, %d not applied), linearizable %s, lost %d, watch events %d (reconnects %d), recovery %v",
		s.Name, res.Attempted, res.Succeeded, res.Failed, res.Unknown, res.Resolved, res.NotApplied, res.Linearizable, res.LostWrites, res.WatchEvents, res.WatchReconnects, res.Recovery)
	if !res.OK() {
		t.Errorf("%s, %d members, seed %d: violations: %s", s.Name, n, seed, summarize(res.Problems, 10))
	}
}

// TestRedial: moving every client and watcher to new connections in the
// middle of a history (what certificate rotation needs) loses nothing and
// keeps the history checkable.
func TestRedial(t *testing.T) {
	mode := suiteMode(t)
	mode.Scale = 1
	res := RunScenario(t, Scenario{Name: "redial", Summary: "test of Env.Redial", Run: func(e *Env) {
		e.WaitWrites(100)
		e.Redial()
		e.WaitWrites(100)
	}}, 3, 1, mode)
	if !res.OK() || res.WatchReconnects < 4 {
		t.Fatalf("after a redial: %+v", res)
	}
}

// suiteMode is the mode from the environment; it skips the test when the
// suite is off (or under -short).
func suiteMode(t *testing.T) Mode {
	t.Helper()
	mode, err := ModeFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if mode.Name == "off" || testing.Short() {
		t.Skipf("%s=off or -short", EnvMode)
	}
	return mode
}
