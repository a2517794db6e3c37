package robustness

import (
	"context"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/testutil"
)

// TestDefragRefusals: `etcdkit defrag` never defragments the only member
// that can serve without --allow-unavailable, and never touches an
// unhealthy cluster.
func TestDefragRefusals(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	t.Run("lone member", func(t *testing.T) {
		pc := testutil.NewProcCluster(t, 1)
		pc.Start(t)
		env := pc.ClientEnv(t)
		r := testutil.Run(t, env, pc.Bin, "defrag")
		testutil.ExpectFailure(t, r, 1, `refusing to defragment member "m1"`, "only voting member", "--allow-unavailable")
		if r.Stdout != "" {
			t.Fatalf("a refusal printed results:\n%s", r.Stdout)
		}
		r = testutil.Run(t, env, pc.Bin, "defrag", "--allow-unavailable", "-o", "json")
		var rs []ops.DefragResult
		if err := json.Unmarshal([]byte(r.Stdout), &rs); r.Code != 0 || err != nil || len(rs) != 1 || !rs[0].Done || rs[0].Name != "m1" {
			t.Fatalf("defrag --allow-unavailable: exit %d, %v\n%s%s", r.Code, err, r.Stdout, r.Stderr)
		}
	})
	t.Run("member down", func(t *testing.T) {
		pc := testutil.NewProcCluster(t, 3)
		pc.Start(t)
		pc.Stop(t, "m3", syscall.SIGKILL)
		// Asked for the whole cluster, the dead member is named at once.
		r := testutil.Run(t, pc.ClientEnv(t, "m1", "m2"), pc.Bin, "defrag", "--cluster")
		testutil.ExpectFailure(t, r, 3, "refusing to defragment: the cluster is unhealthy", pc.Member(t, "m3").ClientURL+" does not answer")
		// Asked for a healthy member only, the cluster is still checked.
		r = testutil.Run(t, pc.ClientEnv(t, "m1"), pc.Bin, "defrag")
		testutil.ExpectFailure(t, r, 3, "refusing to defragment: the cluster is unhealthy", `member "m3"`, "fix or replace")
		// Bad flag values are usage errors.
		r = testutil.Run(t, pc.ClientEnv(t, "m1"), pc.Bin, "defrag", "-o", "xml")
		testutil.ExpectFailure(t, r, 2, `invalid value "xml" for flag --output`)
	})
}

// TestAlarms: list in every format; disarm refuses a CORRUPT alarm (the
// member must be replaced) and defrag refuses to run under one, until
// --force; with no alarm, disarm says so.
func TestAlarms(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	pc := testutil.NewProcCluster(t, 1)
	pc.Start(t)
	env := pc.ClientEnv(t)
	run := func(args ...string) testutil.Result { return testutil.Run(t, env, pc.Bin, args...) }

	if r := run("alarm", "list", "-o", "json"); r.Code != 0 || strings.TrimSpace(r.Stdout) != "[]" {
		t.Fatalf("alarm list -o json with no alarm: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := run("alarm", "disarm"); r.Code != 0 || !strings.Contains(r.Stdout, "no alarm is raised") {
		t.Fatalf("alarm disarm with no alarm: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	// etcd raises CORRUPT when a member's hash differs from the others';
	// raise it through the API as etcd's own functional tests do.
	cli := pc.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := cli.Status(ctx, pc.Member(t, "m1").ClientURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pb.NewMaintenanceClient(cli.ActiveConnection()).Alarm(ctx, &pb.AlarmRequest{
		Action: pb.AlarmRequest_ACTIVATE, MemberID: st.Header.MemberId, Alarm: pb.AlarmType_CORRUPT,
	}); err != nil {
		t.Fatal(err)
	}

	r := run("alarm", "list", "-o", "json")
	var as []ops.Alarm
	if err := json.Unmarshal([]byte(r.Stdout), &as); err != nil || len(as) != 1 || as[0].Alarm != "CORRUPT" || as[0].Member != "m1" {
		t.Fatalf("alarm list -o json: %v\n%s%s", err, r.Stdout, r.Stderr)
	}
	if r := run("alarm", "list"); r.Code != 0 || !strings.Contains(r.Stdout, "MEMBER") || !strings.Contains(r.Stdout, "CORRUPT") {
		t.Fatalf("alarm list: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := run("alarm", "list", "-o", "yaml"); r.Code != 0 || !strings.Contains(r.Stdout, "alarm: CORRUPT") {
		t.Fatalf("alarm list -o yaml: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	testutil.ExpectFailure(t, run("alarm", "disarm"), 1, "refusing to disarm", `member "m1"`, "CORRUPT", "etcdkit member replace m1", "--force")
	testutil.ExpectFailure(t, run("defrag", "--allow-unavailable"), 3, "refusing to defragment: the cluster is unhealthy")
	testutil.ExpectFailure(t, run("health"), 3, "CORRUPT")

	r = run("alarm", "disarm", "--force", "-o", "json")
	if err := json.Unmarshal([]byte(r.Stdout), &as); r.Code != 0 || err != nil || len(as) != 1 {
		t.Fatalf("alarm disarm --force: exit %d, %v\n%s%s", r.Code, err, r.Stdout, r.Stderr)
	}
	if r := run("health"); r.Code != 0 {
		t.Fatalf("health after disarm: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}
