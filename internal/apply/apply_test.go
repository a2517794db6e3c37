package apply

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/remote"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// TestReadWALIdentity: the cluster and member IDs come out of a WAL that
// etcd's own code wrote, from its first 4 KiB; anything else is an error.
func TestReadWALIdentity(t *testing.T) {
	old := wal.SegmentSizeBytes
	wal.SegmentSizeBytes = 64 << 10
	defer func() { wal.SegmentSizeBytes = old }()
	dir := filepath.Join(t.TempDir(), "wal")
	md, err := proto.Marshal(&etcdserverpb.Metadata{NodeID: proto.Uint64(0xbc2ce132f3f3fd4), ClusterID: proto.Uint64(0xa810f70541b489bd)})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wal.Create(zap.NewNop(), dir, md)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if len(files) != 1 {
		t.Fatalf("WAL files: %v", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	id, err := readWALIdentity(b[:4096])
	if err != nil {
		t.Fatal(err)
	}
	if id.ClusterID != 0xa810f70541b489bd || id.MemberID != 0xbc2ce132f3f3fd4 {
		t.Fatalf("identity %s", id)
	}
	for _, bad := range [][]byte{nil, []byte("not a wal file at all, just text\n"), bytes.Repeat([]byte{0}, 4096)} {
		if id, err := readWALIdentity(bad); err == nil {
			t.Errorf("%q read as %s", bad, id)
		}
	}
}

// fakeHost is a host as detect would have found it.
func fakeHost(name string, o *observed) *host {
	m := &spec.Member{Name: name, Host: "10.0.0." + name[len(name)-1:], PeerURL: "https://10.0.0." + name[len(name)-1:] + ":2380", ClientURL: "https://10.0.0." + name[len(name)-1:] + ":2379"}
	if o.DataDir == "" {
		o.DataDir = "/var/lib/etcd/default.etcd"
	}
	return &host{m: m, rh: remote.Host{Name: name, Address: m.Host, Port: 22}, obs: o, facts: &remote.Facts{Listening: map[int]remote.Listener{}}}
}

func liveList(clusterID string, members ...ops.Member) *ops.Membership {
	return &ops.Membership{ClusterID: clusterID, Members: members}
}

func member(id, name, peer string) ops.Member {
	return ops.Member{ID: id, Name: name, PeerURLs: []string{peer}, ClientURLs: []string{strings.Replace(peer, "2380", "2379", 1)}, Started: name != "", Healthy: true}
}

// TestDecide: what apply does with each host, from its data and the live
// member list, and what it refuses (with the fix in the message).
func TestDecide(t *testing.T) {
	ours := &walIdentity{ClusterID: 0xc1, MemberID: 0xa1}
	rec := func(name string, w *walIdentity) *memberRecord {
		return &memberRecord{Cluster: "prod", ClusterID: hexID(w.ClusterID), Member: name, MemberID: hexID(w.MemberID), PeerURL: "https://10.0.0." + name[len(name)-1:] + ":2380"}
	}
	live := liveList("c1", member("a1", "m1", "https://10.0.0.1:2380"), member("a2", "m2", "https://10.0.0.2:2380"))
	for _, tc := range []struct {
		name    string
		live    *ops.Membership
		hosts   []*host
		roles   []role
		problem string // in the first host's problems
	}{
		{name: "new cluster", hosts: []*host{fakeHost("m1", &observed{}), fakeHost("m2", &observed{Data: dataEmpty})},
			roles: []role{roleBootstrap, roleBootstrap}},
		{name: "running and restart", live: live,
			hosts: []*host{fakeHost("m1", &observed{Data: dataEtcd, WAL: ours, Running: true}), fakeHost("m2", &observed{Data: dataEtcd, WAL: &walIdentity{0xc1, 0xa2}})},
			roles: []role{roleRunning, roleRestart}},
		{name: "join", live: live, hosts: []*host{fakeHost("m3", &observed{})}, roles: []role{roleJoin}},
		{name: "join continues an unstarted add", live: liveList("c1", member("a1", "m1", "https://10.0.0.1:2380"), member("a3", "", "https://10.0.0.3:2380")),
			hosts: []*host{fakeHost("m3", &observed{})}, roles: []role{roleJoin}},
		{name: "another cluster, live", live: live, hosts: []*host{fakeHost("m1", &observed{Data: dataEtcd, WAL: &walIdentity{0xff, 0xa1}})},
			roles: []role{roleUnknown}, problem: "holds another cluster (cluster ff, member a1), not this spec's running cluster c1"},
		{name: "removed member's data", live: live, hosts: []*host{fakeHost("m3", &observed{Data: dataEtcd, WAL: &walIdentity{0xc1, 0xa9}})},
			roles: []role{roleUnknown}, problem: "holds member a9, which was removed from the cluster; move the data aside"},
		{name: "member moved", live: live, hosts: []*host{fakeHost("m3", &observed{Data: dataEtcd, WAL: &walIdentity{0xc1, 0xa2}})},
			roles: []role{roleUnknown}, problem: "but the spec gives it peer URL https://10.0.0.3:2380; apply does not move members"},
		{name: "started member with empty data dir", live: live, hosts: []*host{fakeHost("m2", &observed{})},
			roles: []role{roleUnknown}, problem: "its data dir /var/lib/etcd/default.etcd on this host is empty: its data is gone; replace it: `etcdkit member remove m2`"},
		{name: "name taken", live: liveList("c1", member("a1", "m3", "https://10.0.0.9:2380")), hosts: []*host{fakeHost("m3", &observed{})},
			roles: []role{roleUnknown}, problem: `already has a member named "m3"`},
		{name: "not an etcd data dir", live: live, hosts: []*host{fakeHost("m1", &observed{Data: dataOther, Entries: []string{"lost+found", "notes.txt"}})},
			roles: []role{roleUnknown}, problem: "holds files that are not an etcd data dir (lost+found, notes.txt)"},
		{name: "offline with records: restart, empty hosts join",
			hosts: []*host{fakeHost("m1", &observed{Data: dataEtcd, WAL: ours, Record: rec("m1", ours)}), fakeHost("m2", &observed{})},
			roles: []role{roleRestart, roleJoin}},
		{name: "offline without record: another cluster", hosts: []*host{fakeHost("m1", &observed{Data: dataEtcd, WAL: ours}), fakeHost("m2", &observed{})},
			roles: []role{roleUnknown, roleBootstrap}, problem: "holds another cluster (cluster c1, member a1): no member of this spec's cluster runs to compare it with, and apply has no record of it"},
		{name: "offline, record of another member", hosts: []*host{fakeHost("m1", &observed{Data: dataEtcd, WAL: ours, Record: rec("m2", ours)})},
			roles: []role{roleUnknown}, problem: `says it is member "m2", not "m1"`},
		{name: "offline, data replaced under the record", hosts: []*host{fakeHost("m1", &observed{Data: dataEtcd, WAL: &walIdentity{0xc2, 0xa1}, Record: rec("m1", ours)})},
			roles: []role{roleUnknown}, problem: "the data dir was replaced"},
		{name: "offline, hosts disagree", hosts: []*host{
			fakeHost("m1", &observed{Data: dataEtcd, WAL: ours, Record: rec("m1", ours)}),
			fakeHost("m2", &observed{Data: dataEtcd, WAL: &walIdentity{0xc2, 0xa2}, Record: rec("m2", &walIdentity{0xc2, 0xa2})})},
			roles: []role{roleRestart, roleRestart}, problem: "the other hosts' data dirs hold other clusters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			decide("prod", tc.hosts, tc.live)
			for i, h := range tc.hosts {
				if h.role != tc.roles[i] {
					t.Errorf("%s: role %s, want %s (problems %v)", h.name(), h.role, tc.roles[i], h.problems)
				}
			}
			got := errors.Join(tc.hosts[0].problems...)
			switch {
			case tc.problem == "" && got != nil:
				t.Fatalf("problems: %v", got)
			case tc.problem != "" && (got == nil || !strings.Contains(got.Error(), tc.problem)):
				t.Fatalf("problems %v, want %q", got, tc.problem)
			case got != nil && !strings.HasPrefix(got.Error(), `host "`+tc.hosts[0].name()+`"`):
				t.Fatalf("problem does not name its host: %v", got)
			}
		})
	}
}

// TestParseObserved reads what the observe script prints.
func TestParseObserved(t *testing.T) {
	out := strings.Join([]string{
		"@now", "1700000100",
		"@data", "dir", "member",
		"@wal",
		"@record", "eyJjbHVzdGVyIjoicHJvZCJ9",
		"@config", "bmFtZTogbTEK",
		"@proc", "pid 217 40",
		"@mtime", "1700000090 " + ConfigPath, "1700000050 " + BinaryPath,
	}, "\n")
	o, err := parseObserved(out, "/var/lib/etcd/default.etcd")
	if err != nil {
		t.Fatal(err)
	}
	if o.Data != dataOther || o.Record == nil || o.Record.Cluster != "prod" || string(o.Config) != "name: m1\n" || !o.Running || o.PID != 217 {
		t.Fatalf("%+v", o)
	}
	if !o.Started.Equal(time.Unix(1700000060, 0)) {
		t.Fatalf("started %v", o.Started)
	}
	// The config changed after the member started (an earlier run wrote
	// it and stopped); the binary did not.
	if got := o.newerThanProcess(); len(got) != 1 || got[0] != ConfigPath {
		t.Fatalf("newer than the process: %v", got)
	}
	empty, err := parseObserved("@now\n1\n@data\nmissing\n@wal\n@record\n@config\n@proc\n@mtime\n", "/d")
	if err != nil || empty.Data != dataMissing || empty.Running || empty.Config != nil {
		t.Fatalf("%+v %v", empty, err)
	}
}

// TestScriptsParse: every script apply sends is valid POSIX sh (dash).
func TestScriptsParse(t *testing.T) {
	for name, s := range map[string]string{
		"observe":         observeScript("/var/lib/etcd/default.etcd", "/etc/etcd/ssl/ca.pem", false),
		"observe systemd": observeScript("/var/lib/etcd/x y", "/etc/etcd/ssl/ca.pem", true),
		"start":           fallbackStart,
		"stop":            fallbackStop,
	} {
		for _, sh := range []string{"dash", "sh", "bash"} {
			p, err := exec.LookPath(sh)
			if err != nil {
				continue
			}
			if out, err := exec.Command(p, "-n", "-c", s).CombinedOutput(); err != nil {
				t.Errorf("%s script does not parse with %s: %v\n%s\n%s", name, sh, err, out, s)
			}
		}
	}
}

// TestPreflightChecks: clocks, ports and architectures.
func TestPreflightChecks(t *testing.T) {
	h := fakeHost("m1", &observed{})
	h.facts.ClockOffset, h.facts.ClockUncertainty = 1500*time.Millisecond, 100*time.Millisecond
	if err := clockProblem(h); err == nil || !strings.Contains(err.Error(), "its clock is 1.5s ahead of this machine's (±100ms)") {
		t.Errorf("skewed clock: %v", err)
	}
	// Within the measurement's uncertainty: not refused.
	h.facts.ClockUncertainty = 600 * time.Millisecond
	if err := clockProblem(h); err != nil {
		t.Errorf("uncertain clock refused: %v", err)
	}
	a, b := fakeHost("m1", &observed{}), fakeHost("m2", &observed{})
	a.facts.ClockOffset, b.facts.ClockOffset = 800*time.Millisecond, -800*time.Millisecond
	if err := clockSpread([]*host{a, b}); err == nil || !strings.Contains(err.Error(), "the clocks of m1 and m2 are 1.6s apart") {
		t.Errorf("spread: %v", err)
	}

	h.facts.Listening[2379] = remote.Listener{Addr: "10.0.0.1:2379", Process: "nginx", PID: 42}
	h.facts.Listening[2380] = remote.Listener{Addr: "10.0.0.1:2380"}
	errs := errors.Join(portProblems(h)...)
	if errs == nil || !strings.Contains(errs.Error(), "port 2379 (10.0.0.1:2379) is in use by nginx (pid 42)") || !strings.Contains(errs.Error(), "port 2380 (10.0.0.1:2380) is in use by another program") {
		t.Errorf("ports: %v", errs)
	}
	// The member's own listeners are fine.
	h.obs.Running, h.obs.PID = true, 42
	h.facts.Listening[2379] = remote.Listener{Addr: "10.0.0.1:2379", Process: "etcdkit", PID: 42}
	if errs := portProblems(h); len(errs) != 0 {
		t.Errorf("own ports refused: %v", errs)
	}
	h.facts.Listening[2379] = remote.Listener{Addr: "10.0.0.1:2379", Process: "etcd", PID: 43}
	if errs := errors.Join(portProblems(h)...); errs == nil || !strings.Contains(errs.Error(), "an etcd member apply did not start") {
		t.Errorf("stock etcd on the port: %v", errs)
	}

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	arch, err := binaryArch(self)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]; want != "" && arch != want {
		t.Errorf("this binary is %s, GOARCH %s", arch, runtime.GOARCH)
	}
	if !sameArch("aarch64", "arm64") || sameArch("x86_64", "aarch64") {
		t.Error("sameArch")
	}
	if _, err := binaryArch(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing binary has an architecture")
	}
}

// TestUnitVerifies: the unit apply installs on a systemd host passes
// systemd's own checker (its binary pointed at one that exists here).
func TestUnitVerifies(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (.ci/run installs the systemd package)")
	}
	c := &spec.Cluster{Name: "prod", Members: []spec.Member{{Name: "m1", Host: "10.0.0.1", PeerURL: "https://10.0.0.1:2380", ClientURL: "https://10.0.0.1:2379"}}}
	c.SetDefaults()
	files, err := Files(c, "m1", true)
	if err != nil {
		t.Fatal(err)
	}
	unit := files[UnitPath]
	if !bytes.Contains(unit, []byte("ExecStart="+BinaryPath+" member run --config "+ConfigPath+"\n")) {
		t.Fatalf("unit does not run %s:\n%s", memberCommand, unit)
	}
	self, _ := os.Executable()
	p := filepath.Join(t.TempDir(), "etcd.service")
	if err := os.WriteFile(p, bytes.ReplaceAll(unit, []byte(BinaryPath), []byte(self)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(tool, "verify", p).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s\n%s", err, out, unit)
	}
	if _, ok := files[ConfigPath]; !ok {
		t.Fatal("no config")
	}
	if plain, _ := Files(c, "m1", false); len(plain) != 1 {
		t.Fatalf("a host without systemd gets %d files", len(plain))
	}
}

// TestHostsUnique: apply refuses two members on one host before it
// connects anywhere.
func TestHostsUnique(t *testing.T) {
	c := &spec.Cluster{Name: "prod", Members: []spec.Member{
		{Name: "m1", Host: "10.0.0.1", PeerURL: "https://10.0.0.1:2380", ClientURL: "https://10.0.0.1:2379"},
		{Name: "m2", Host: "10.0.0.1", PeerURL: "https://10.0.0.1:12380", ClientURL: "https://10.0.0.1:12379"},
	}}
	c.SetDefaults()
	if _, err := newRun(Options{Spec: c, SpecPath: "cluster.yaml"}); err == nil || !strings.Contains(err.Error(), `cluster.yaml: members[1].host: 10.0.0.1 is also member "m1"'s host`) {
		t.Fatalf("error %v", err)
	}
}
