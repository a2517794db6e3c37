package robustness

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReport(t *testing.T) {
	good := Result{Scenario: "kill-leader", Summary: "kill it", Members: 3, Seed: 1, Attempted: 100, Succeeded: 90, Failed: 2, Unknown: 8,
		Resolved: 3, NotApplied: 5, Linearizable: "yes", WatchOK: true, Healthy: true, HashKVAgree: true,
		Recovery: []Recovery{{Fault: "SIGKILL m1", Took: Seconds(1500 * time.Millisecond)}}}
	good2 := good
	good2.Seed = 2
	restore := Result{Scenario: "cluster-restore", Summary: "restore", Members: 3, Seed: 1, Linearizable: "yes", WatchOK: true, Healthy: true, HashKVAgree: true, RolledBack: 7}
	bad := Result{Scenario: "partition-leader", Summary: "cut it off", Members: 5, Seed: 3, Linearizable: "no", LostWrites: 1, WatchOK: true, Healthy: true, HashKVAgree: true,
		Problems: []string{"phase 0: history is not linearizable"}, Artifacts: "/tmp/x"}
	skipped := Result{Scenario: "nospace-small-disk", Summary: "small disk", Members: 3, Seed: 1, Skipped: "needs root"}

	path := filepath.Join(t.TempDir(), "results.jsonl")
	for _, r := range []Result{good, good2, restore, bad, skipped} {
		if err := AppendResult(path, r); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := ReadResults(path)
	if err != nil || len(rs) != 5 || time.Duration(rs[0].Recovery[0].Took) != 1500*time.Millisecond {
		t.Fatalf("read back: %v %+v", err, rs)
	}
	md := string(Markdown(rs, ReportInfo{Command: "go run ./test/robustness/cmd/report", Mode: "full", Date: time.Unix(0, 0), Machine: "test"}))
	for _, want := range []string{
		"| kill-leader | 3 | 1, 2 | 200 | 180 | 4 | 16 (16) | yes | 0 | ok | yes | 1.50s |",
		"| cluster-restore | 3 | 1 |", "0 (7 rolled back by the restore, as expected)",
		"| partition-leader | 5 | 3 |", "| no | 1 |",
		"- partition-leader, 5 members, seed 3: linearizable no, lost 1; phase 0: history is not linearizable (history: /tmp/x)",
		"- nospace-small-disk, 3 members, seed 1: needs root",
		"- **kill-leader**: kill it",
		"## Adding a scenario",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if !good.OK() || bad.OK() || !skipped.OK() {
		t.Fatal("Result.OK")
	}
}
