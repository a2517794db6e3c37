package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/local"
	"github.com/etcdkit/etcdkit/internal/render"
	"github.com/etcdkit/etcdkit/internal/snapshot"
	"github.com/etcdkit/etcdkit/internal/testutil"
)

// TestSnapshotRestoreCluster: 10k keys saved by `snapshot save`, every
// data dir destroyed, `cluster restore` into the 3 members: they form one
// cluster with every key and value, at a revision past the snapshot's.
// Along the way: etcdkit's file passes the stock `etcdutl snapshot status`,
// the stock `etcdctl snapshot save` file restores with `up --restore`, and
// damaged snapshots are refused without touching any data dir.
func TestSnapshotRestoreCluster(t *testing.T) {
	bin := testutil.Etcdkit(t)
	dir := filepath.Join(t.TempDir(), "cluster")
	snaps := filepath.Join(t.TempDir(), "snaps")
	c := testutil.Up(t, dir)
	ctx := testutil.Ctx(t)
	const n = 10000
	putKeys(t, ctx, c.Client(t), n)

	// etcdkit's snapshot, named by time in a directory.
	r := testutil.Run(t, nil, bin, "snapshot", "save", "--dir", dir, snaps+"/", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("snapshot save: exit %d\n%s", r.Code, r.Stderr)
	}
	var info snapshot.Info
	if err := json.Unmarshal([]byte(r.Stdout), &info); err != nil {
		t.Fatalf("snapshot save -o json: %v\n%s", err, r.Stdout)
	}
	if info.TotalKeys != n || info.Revision < n/100 || !info.Verified || info.Member == "" || filepath.Dir(info.Path) != snaps {
		t.Fatalf("snapshot info: %+v", info)
	}
	side, err := snapshot.ReadSidecar(info.Path)
	if err != nil || side.SHA256 != info.SHA256 || side.Revision != info.Revision {
		t.Fatalf("sidecar: %+v, %v", side, err)
	}
	if data, err := os.ReadFile(info.Path); err != nil || fmt.Sprintf("%x", sha256.Sum256(data)) != info.SHA256 {
		t.Fatalf("sha256 in the sidecar is not the file's (%v)", err)
	}
	if fi, err := os.Stat(info.Path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot mode: %v %v", fi.Mode(), err)
	}
	if parts, _ := filepath.Glob(filepath.Join(snaps, "*.part")); len(parts) > 0 {
		t.Fatalf("left behind: %v", parts)
	}

	// The stock etcdutl reads etcdkit's file and agrees on what it holds.
	r = testutil.Run(t, nil, testutil.Tool(t, "etcdutl"), "snapshot", "status", info.Path, "-w", "json")
	if r.Code != 0 {
		t.Fatalf("etcdutl snapshot status: %s%s", r.Stdout, r.Stderr)
	}
	var es struct {
		Revision int64 `json:"revision"`
		TotalKey int   `json:"totalKey"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &es); err != nil || es.Revision != info.Revision || es.TotalKey != n {
		t.Fatalf("etcdutl status %s (%v), etcdkit %+v", r.Stdout, err, info)
	}

	// The stock etcdctl's snapshot, from one endpoint.
	eps := c.Target(t).Endpoints
	etcdctlFile := filepath.Join(snaps, "etcdctl.db")
	r = testutil.Run(t, withoutVar(c.Env, "ETCDCTL_ENDPOINTS"), testutil.Tool(t, "etcdctl"), "--endpoints", eps[2], "snapshot", "save", etcdctlFile)
	if r.Code != 0 {
		t.Fatalf("etcdctl snapshot save: %s%s", r.Stdout, r.Stderr)
	}
	r = testutil.Run(t, nil, bin, "snapshot", "list", snaps, "-o", "json")
	var entries []snapshot.Entry
	if err := json.Unmarshal([]byte(r.Stdout), &entries); err != nil || len(entries) != 2 {
		t.Fatalf("snapshot list: %v\n%s%s", err, r.Stdout, r.Stderr)
	}
	if code := c.Stop(t); code != 0 {
		t.Fatalf("up exited %d", code)
	}

	d := local.Dir(dir)
	cl, err := d.Load()
	if err != nil {
		t.Fatal(err)
	}
	specPath := d.Spec()

	// Damaged snapshots and non-empty data dirs are refused, and nothing
	// in the cluster directory changes.
	before := testutil.TreeState(t, dir)
	good, err := os.ReadFile(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(snaps, "truncated.db")
	testutil.WriteBytes(t, truncated, good[:len(good)/2])
	corrupted := filepath.Join(snaps, "corrupted.db")
	flipped := slices.Clone(good)
	flipped[len(flipped)/3] ^= 0x55
	testutil.WriteBytes(t, corrupted, flipped)
	for _, bad := range []string{truncated, corrupted} {
		r = testutil.Run(t, nil, bin, "cluster", "restore", bad, "--spec", specPath, "--all-local", "--move-aside")
		testutil.ExpectFailure(t, r, 1, bad, "not a valid etcd snapshot")
		testutil.AssertTreeState(t, dir, before)
	}
	r = testutil.Run(t, nil, bin, "cluster", "restore", info.Path, "--spec", specPath, "--all-local")
	testutil.ExpectFailure(t, r, 1, `member "m1": data dir`, `member "m3": data dir`, "is not empty", "--move-aside")
	testutil.AssertTreeState(t, dir, before)

	// Disaster: every data dir is gone.
	for i := range cl.Members {
		if err := os.RemoveAll(cl.MemberDataDir(&cl.Members[i])); err != nil {
			t.Fatal(err)
		}
	}
	r = testutil.Run(t, nil, bin, "cluster", "restore", info.Path, "--spec", specPath, "--all-local")
	if r.Code != 0 {
		t.Fatalf("cluster restore: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if !strings.Contains(r.Stdout, "cluster token etcdkit-local-restored-"+info.DatabaseSHA256[:12]) {
		t.Fatalf("cluster restore output lacks the token:\n%s", r.Stdout)
	}
	c = testutil.Up(t, dir)
	rev := checkRestored(t, c, n, info.Revision)
	if rev < info.Revision+snapshot.DefaultRevisionBump {
		t.Fatalf("revision %d after restore, want >= %d + the bump", rev, info.Revision)
	}
	// Marked compacted: a watcher from before the restore must re-list.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	wr := <-c.Client(t).Watch(wctx, "key-", clientv3.WithPrefix(), clientv3.WithRev(info.Revision))
	cancel()
	if wr.CompactRevision == 0 {
		t.Fatalf("a watch from revision %d was not told it is compacted: %+v", info.Revision, wr)
	}
	if code := c.Stop(t); code != 0 {
		t.Fatalf("up exited %d", code)
	}

	// `up --restore` with etcdctl's snapshot: the running data is moved
	// aside, never deleted.
	c = testutil.Up(t, dir, "--restore", etcdctlFile)
	checkRestored(t, c, n, info.Revision)
	for _, m := range cl.Members {
		aside, _ := filepath.Glob(cl.MemberDataDir(&m) + ".before-restore-*")
		if len(aside) != 1 {
			t.Fatalf("member %s: moved-aside data dirs %v", m.Name, aside)
		}
	}
	if !strings.Contains(c.Proc.Stderr(), "previous data moved to") {
		t.Fatalf("up --restore did not say where the data went:\n%s", c.Proc.Stderr())
	}
}

// checkRestored checks a restored cluster: 3 voting members of one cluster,
// every key with its value, writable; it returns the current revision.
func checkRestored(t *testing.T, c *testutil.UpCluster, n int, snapRev int64) int64 {
	t.Helper()
	ctx := testutil.Ctx(t)
	cli := c.Client(t)
	ml, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ml.Members) != 3 {
		t.Fatalf("%d members after restore", len(ml.Members))
	}
	clusters := map[uint64]bool{}
	for _, ep := range c.Target(t).Endpoints {
		st, err := cli.Status(ctx, ep)
		if err != nil {
			t.Fatal(err)
		}
		clusters[st.Header.ClusterId] = true
	}
	if len(clusters) != 1 {
		t.Fatalf("restored members are in %d clusters", len(clusters))
	}
	resp, err := cli.Get(ctx, "key-", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != n {
		t.Fatalf("%d keys after restore, want %d", len(resp.Kvs), n)
	}
	for i, kv := range resp.Kvs {
		if string(kv.Key) != keyName(i) || string(kv.Value) != valueOf(i) {
			t.Fatalf("key %d: %s=%s", i, kv.Key, kv.Value)
		}
	}
	if resp.Header.Revision < snapRev {
		t.Fatalf("revision %d is below the snapshot's %d", resp.Header.Revision, snapRev)
	}
	if _, err := cli.Put(ctx, "after-restore", "ok"); err != nil {
		t.Fatalf("write after restore: %v", err)
	}
	return resp.Header.Revision
}

func keyName(i int) string { return fmt.Sprintf("key-%05d", i) }
func valueOf(i int) string {
	return fmt.Sprintf("value-%05d-%x", i, sha256.Sum256([]byte{byte(i), byte(i >> 8)}))[:32]
}

// putKeys writes n keys in transactions of 100.
func putKeys(t *testing.T, ctx context.Context, cli *clientv3.Client, n int) {
	t.Helper()
	for i := 0; i < n; i += 100 {
		var ops []clientv3.Op
		for j := i; j < min(n, i+100); j++ {
			ops = append(ops, clientv3.OpPut(keyName(j), valueOf(j)))
		}
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestClusterRecover: quorum loss. Three members with m1 leading and a
// writer running; SIGKILL m2 and m3 and delete their data. `cluster
// recover` makes m1 a one-member cluster; m2 and m3 come back as learners
// with empty data dirs and are promoted; every write that was acknowledged
// is there, on every member.
func TestClusterRecover(t *testing.T) {
	pc := testutil.NewProcCluster(t, 3)
	pc.Start(t, "m1", "m2", "m3")
	ctx := testutil.Ctx(t)
	m1Config := pc.Dir.Member("m1").Config()
	recoverCmd := []string{"cluster", "recover", "--member", "m1", "--config", m1Config}
	backups := filepath.Dir(pc.Spec.Members[0].DataDir)
	listBackups := func() []string {
		out, _ := filepath.Glob(filepath.Join(backups, "data.pre-recover-*"))
		return out
	}

	// Refused while m1 runs, and while a quorum (m2, m3) answers.
	r := testutil.Run(t, nil, pc.Bin, recoverCmd...)
	testutil.ExpectFailure(t, r, 1, `member "m1" is still running`, "stop it first")
	pc.Stop(t, "m1", syscall.SIGTERM)
	r = testutil.Run(t, nil, pc.Bin, recoverCmd...)
	testutil.ExpectFailure(t, r, 1, "refusing to recover: quorum is reachable", "2 of the other 2 voting members answer", `start "m1" normally`)
	if b := listBackups(); len(b) > 0 {
		t.Fatalf("a refused recovery copied data: %v", b)
	}
	pc.Start(t, "m1")

	// m1 leads, so it holds every acknowledged write when the others die.
	cli := pc.Client(t)
	pc.MoveLeader(t, ctx, "m1")
	w := testutil.StartWriter(ctx, pc.Client(t, "m1"))
	w.WaitFor(t, 300)
	for _, n := range []string{"m2", "m3"} {
		pc.Stop(t, n, syscall.SIGKILL)
		m, _ := pc.Spec.Member(n)
		if err := os.RemoveAll(pc.Spec.MemberDataDir(m)); err != nil {
			t.Fatal(err)
		}
	}
	acked, _ := w.Stop()
	if len(acked) < 300 {
		t.Fatalf("only %d writes acknowledged", len(acked))
	}
	pc.Stop(t, "m1", syscall.SIGTERM)
	configBefore, err := os.ReadFile(m1Config)
	if err != nil {
		t.Fatal(err)
	}

	r = testutil.Run(t, nil, pc.Bin, recoverCmd...)
	if r.Code != 0 {
		t.Fatalf("cluster recover: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, want := range []string{
		`member "m1" is now a one-member cluster`,
		"etcdkit member add m2 --peer-urls " + pc.Spec.Members[1].PeerURL,
		"etcdkit member add m3 --peer-urls " + pc.Spec.Members[2].PeerURL,
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Fatalf("recover output lacks %q:\n%s", want, r.Stdout)
		}
	}
	// The data as it was, and a verified snapshot of the result, are kept.
	if b := listBackups(); len(b) != 1 || !fileExistsE2E(filepath.Join(b[0], "member", "snap", "db")) {
		t.Fatalf("copy of the data dir before recovery: %v", b)
	}
	snaps, _ := filepath.Glob(filepath.Join(backups, "etcd-snapshot-*.db"))
	if len(snaps) != 1 {
		t.Fatalf("snapshot after recovery: %v", snaps)
	}
	if r := testutil.Run(t, nil, pc.Bin, "snapshot", "verify", snaps[0]); r.Code != 0 {
		t.Fatalf("the recovery snapshot does not verify: %s", r.Stderr)
	}
	// force-new-cluster was used for that one start only: never written.
	if after, _ := os.ReadFile(m1Config); string(after) != string(configBefore) {
		t.Fatalf("the config changed:\n%s", after)
	}

	// m1 starts as usual, alone.
	pc.Start(t, "m1")
	cli = pc.Client(t, "m1")
	if ml, err := cli.MemberList(ctx); err != nil || len(ml.Members) != 1 {
		t.Fatalf("member list after recovery: %v %v", ml, err)
	}
	testutil.CheckAcked(t, ctx, cli, acked)

	// Bring m2 and m3 back, one at a time, as learners first.
	initial := []string{"m1=" + pc.Spec.Members[0].PeerURL}
	for _, n := range []string{"m2", "m3"} {
		m, _ := pc.Spec.Member(n)
		initial = append(initial, n+"="+m.PeerURL)
		var id uint64
		testutil.Retry(t, ctx, func() error {
			resp, err := cli.MemberAddAsLearner(ctx, []string{m.PeerURL})
			if err == nil {
				id = resp.Member.ID
			}
			return err
		})
		cfg, err := render.EtcdConfig(pc.Spec, m, render.EtcdOptions{State: render.StateExisting, InitialCluster: strings.Join(initial, ",")})
		if err != nil {
			t.Fatal(err)
		}
		pc.WriteConfig(t, n, cfg)
		pc.Start(t, n)
		testutil.Retry(t, ctx, func() error { _, err := cli.MemberPromote(ctx, id); return err })
	}
	ml, err := cli.MemberList(ctx)
	if err != nil || len(ml.Members) != 3 {
		t.Fatalf("member list: %v %v", ml, err)
	}
	for _, m := range ml.Members {
		if m.IsLearner {
			t.Fatalf("%s is still a learner", m.Name)
		}
	}
	for _, n := range []string{"m1", "m2", "m3"} {
		// A member applies its own promotion a moment after the leader
		// commits it; until then it refuses linearizable reads as a learner.
		cli := pc.Client(t, n)
		testutil.Retry(t, ctx, func() error { _, err := cli.Get(ctx, "w-", clientv3.WithCountOnly()); return err })
		testutil.CheckAcked(t, ctx, cli, acked)
	}
}

func fileExistsE2E(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestScheduledBackups: three members with a 1-second schedule, each
// with its own backup dir. Every tick one member (the leader) takes the
// snapshot, never two; retention keeps exactly 3; `snapshot prune`
// trims further and --dry-run deletes nothing.
func TestScheduledBackups(t *testing.T) {
	const keep = 3
	pc := testutil.NewProcCluster(t, 3)
	backupRoot := filepath.Join(t.TempDir(), "backups")
	dirOf := func(name string) string { return filepath.Join(backupRoot, name) }
	for _, m := range pc.Spec.Members {
		cfg := pc.Config(t, m.Name)
		cfg.Etcdkit = &etcdconf.Extensions{Backup: &etcdconf.Backup{Dir: dirOf(m.Name), Schedule: "@every 1s", Keep: keep}}
		pc.WriteConfig(t, m.Name, cfg)
	}
	pc.Start(t, "m1", "m2", "m3")
	ctx := testutil.Ctx(t)
	putKeys(t, ctx, pc.Client(t), 100)

	seen := map[string]map[string]bool{} // tick file -> members
	most := 0
	deadline := time.Now().Add(45 * time.Second)
	for {
		counts := map[string]int{}
		for _, m := range pc.Spec.Members {
			files, _ := filepath.Glob(filepath.Join(dirOf(m.Name), "etcd-snapshot-*.db"))
			counts[m.Name] = len(files)
			most = max(most, len(files))
			for _, f := range files {
				b := filepath.Base(f)
				if seen[b] == nil {
					seen[b] = map[string]bool{}
				}
				seen[b][m.Name] = true
			}
		}
		full := ""
		for name, n := range counts {
			if n == keep {
				full = name
			}
		}
		if len(seen) >= keep+3 && full != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 45s: %d ticks seen, counts %v", len(seen), counts)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for tick, members := range seen {
		if len(members) > 1 {
			t.Fatalf("tick %s was saved by %d members: %v", tick, len(members), members)
		}
	}
	// Between a save and its prune there is one more for an instant.
	if most > keep+1 {
		t.Fatalf("a backup dir held %d snapshots, keep is %d", most, keep)
	}
	for _, n := range []string{"m1", "m2", "m3"} {
		pc.Stop(t, n, syscall.SIGTERM)
	}

	// Every snapshot verifies and records its member. Stopping the leader
	// hands leadership over, so another dir may have a snapshot or two
	// now; the leader's dir is the fullest.
	var leaderDir string
	most = 0
	for _, m := range pc.Spec.Members {
		files, _ := filepath.Glob(filepath.Join(dirOf(m.Name), "*.db"))
		if len(files) > most {
			leaderDir, most = dirOf(m.Name), len(files)
		}
		for _, f := range files {
			side, err := snapshot.ReadSidecar(f)
			if err != nil || side.Member != m.Name || side.Reason != "scheduled" || side.TotalKeys != 100 {
				t.Fatalf("%s: sidecar %+v %v", f, side, err)
			}
			if r := testutil.Run(t, nil, pc.Bin, "snapshot", "verify", f); r.Code != 0 {
				t.Fatalf("verify %s: %s", f, r.Stderr)
			}
		}
	}
	before, _ := filepath.Glob(filepath.Join(leaderDir, "*.db"))
	r := testutil.Run(t, nil, pc.Bin, "snapshot", "prune", leaderDir, "--keep", "1", "--dry-run")
	if after, _ := filepath.Glob(filepath.Join(leaderDir, "*.db")); r.Code != 0 || len(after) != len(before) {
		t.Fatalf("dry run: exit %d, %d -> %d files\n%s", r.Code, len(before), len(after), r.Stderr)
	}
	r = testutil.Run(t, nil, pc.Bin, "snapshot", "prune", leaderDir, "--keep", "2")
	after, _ := filepath.Glob(filepath.Join(leaderDir, "*.db"))
	slices.Sort(before)
	if r.Code != 0 || !slices.Equal(after, before[len(before)-2:]) {
		t.Fatalf("prune --keep 2: exit %d, left %v of %v\n%s", r.Code, after, before, r.Stderr)
	}
	if sides, _ := filepath.Glob(filepath.Join(leaderDir, "*.json")); len(sides) != 2 {
		t.Fatalf("sidecars left: %v", sides)
	}
}

// TestSnapshotBadInput: each misuse gets one clear message and the right
// exit code, and writes nothing.
func TestSnapshotBadInput(t *testing.T) {
	bin := testutil.Etcdkit(t)
	dir := t.TempDir()
	existing := filepath.Join(dir, "exists.db")
	testutil.WriteBytes(t, existing, []byte("keep me"))
	short := filepath.Join(dir, "short.db")
	testutil.WriteBytes(t, short, make([]byte, 5000))

	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"save over an existing file", []string{"snapshot", "save", existing, "--endpoints", "https://127.0.0.1:1"}, 1, []string{existing + " already exists"}},
		{"prune without retention", []string{"snapshot", "prune", dir}, 2, []string{"--keep N"}},
		{"prune negative", []string{"snapshot", "prune", dir, "--keep", "-1"}, 2, []string{"must not be negative"}},
		{"verify a truncated file", []string{"snapshot", "verify", short}, 1, []string{short, "no embedded sha256", "truncated"}},
		{"status of a missing file", []string{"snapshot", "status", filepath.Join(dir, "nope.db")}, 1, []string{"nope.db: no such file"}},
		{"restore without spec", []string{"cluster", "restore", existing, "--all-local"}, 2, []string{"--spec is required"}},
		{"restore without members", []string{"cluster", "restore", existing, "--spec", "x.yaml"}, 2, []string{"--member NAME", "--all-local"}},
		{"restore with both", []string{"cluster", "restore", existing, "--spec", "x.yaml", "--member", "m1", "--all-local"}, 2, []string{"--member NAME", "--all-local"}},
		{"recover without member", []string{"cluster", "recover", "--config", "x.yaml"}, 2, []string{"--member is required"}},
		{"recover without config", []string{"cluster", "recover", "--member", "m1"}, 2, []string{"--config is required"}},
		{"bad output", []string{"snapshot", "list", dir, "-o", "xml"}, 2, []string{`invalid value "xml" for flag --output`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.TreeState(t, dir)
			r := testutil.Run(t, nil, bin, tc.args...)
			testutil.ExpectFailure(t, r, tc.code, tc.want...)
			testutil.AssertTreeState(t, dir, before)
		})
	}

	t.Run("restore of a member not in the spec", func(t *testing.T) {
		d := local.Dir(filepath.Join(t.TempDir(), "c"))
		if _, err := d.Create(local.CreateOptions{Members: 1}); err != nil {
			t.Fatal(err)
		}
		r := testutil.Run(t, nil, bin, "cluster", "restore", existing, "--spec", d.Spec(), "--member", "m9")
		testutil.ExpectFailure(t, r, 1, `member "m9" is not in the cluster spec`)
	})

	t.Run("bad backup schedule stops member run before it starts", func(t *testing.T) {
		d := local.Dir(filepath.Join(t.TempDir(), "c"))
		if _, err := d.Create(local.CreateOptions{Members: 1}); err != nil {
			t.Fatal(err)
		}
		path := d.Member("m1").Config()
		cfg, err := etcdconf.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Etcdkit = &etcdconf.Extensions{Backup: &etcdconf.Backup{Dir: t.TempDir(), Schedule: "every hour"}}
		b, err := cfg.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		testutil.WriteBytes(t, path, b)
		r := testutil.Run(t, nil, bin, "member", "run", "--config", path)
		testutil.ExpectFailure(t, r, 2, path, "etcdkit.backup.schedule: invalid cron expression")
		expectNoDataDir(t, cfg)
	})
}
