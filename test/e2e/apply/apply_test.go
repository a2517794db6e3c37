package apply_test

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/storage/wal"

	"github.com/etcdkit/etcdkit/internal/local"
	"github.com/etcdkit/etcdkit/internal/testhosts"
	"github.com/etcdkit/etcdkit/internal/testutil"
)

// TestApply runs one operator's story on one set of hosts, each step
// building on the last: refusals that change nothing, a dry run, a
// cluster from nothing, a converged re-run, a killed member, a tuning
// change rolled out, two hosts added, one removed.
func TestApply(t *testing.T) {
	start := time.Now()
	nw := testhosts.Start(t, 3)
	h1, h2, h3 := nw.Hosts[0], nw.Hosts[1], nw.Hosts[2]
	three := []*testhosts.Host{h1, h2, h3}
	e := newEnv(t, nw)
	e.writeSpec(t, three, "")
	t.Logf("3 hosts up in %s", time.Since(start).Round(time.Millisecond))

	// Each refusal names the host and the problem, and changes nothing
	// on any host.
	t.Run("unreachable host", func(t *testing.T) {
		before := state(t, three)
		h3.Disconnect(t)
		r := e.apply(t)
		h3.Reconnect(t)
		testutil.ExpectFailure(t, r, 1, `apply failed in phase "Connect to hosts" on host3`, `host "host3"`, "unreachable",
			"nothing was changed on any host", "the full debug log is "+e.log)
		assertUnchanged(t, before, three)
	})
	t.Run("wrong host key", func(t *testing.T) {
		before := state(t, three)
		h2.ReplaceHostKey(t)
		r := e.apply(t, "--accept-new-host-keys")
		testutil.ExpectFailure(t, r, 1, `host "host2"`, "HOST KEY CHANGED", "ssh-keygen -R", "nothing was changed on any host")
		assertUnchanged(t, before, three)
		e.trustHosts(t)
	})
	t.Run("port taken", func(t *testing.T) {
		release := h1.OccupyPort(t, 2379)
		defer release()
		before := state(t, three)
		r := e.apply(t)
		testutil.ExpectFailure(t, r, 1, `apply failed in phase "Preflight checks" on host1`, `host "host1"`,
			"port 2379 ("+h1.Addr+":2379) is in use by another program", "nothing was changed on any host")
		assertUnchanged(t, before, three)
	})
	t.Run("data dir of another cluster", func(t *testing.T) {
		h2.CopyDir(t, otherClusterData(t), "/var/lib/etcd/default.etcd")
		before := state(t, three)
		data := h2.MustRun(t, "find /var/lib/etcd -type f | sort | xargs sha256sum")
		r := e.apply(t)
		testutil.ExpectFailure(t, r, 1, `host "host2"`, "data dir /var/lib/etcd/default.etcd holds another cluster",
			"move it aside", "nothing was changed on any host")
		assertUnchanged(t, before, three)
		if got := h2.MustRun(t, "find /var/lib/etcd -type f | sort | xargs sha256sum"); got != data {
			t.Fatalf("the other cluster's data changed:\n%s\n%s", data, got)
		}
		h2.MustRun(t, "rm -rf /var/lib/etcd")
	})

	t.Run("dry run changes nothing", func(t *testing.T) {
		before := state(t, three)
		r := e.apply(t, "--dry-run")
		if r.Code != 0 {
			t.Fatalf("dry run failed")
		}
		contains(t, r.Stdout, "Dry run: nothing was changed.", "this machine (local):", "create the cluster's CA in "+e.caDir)
		for _, h := range three {
			inOrder(t, r.Stdout, "Dry run", fmt.Sprintf("%s (%s):", h.Name, h.SSHAddr()),
				"create /etc/etcd/ssl/ca.pem", "create /etc/etcd/ssl/server-key.pem (0600 root:root", "create /etc/etcd/ssl/peer.pem",
				"create /etc/etcd/ssl/client-key.pem (0600 root:root", "to /usr/local/bin/etcdkit (0755 root:root",
				"create /etc/etcd/etcd.yaml", "start etcd", "record the member's cluster and member IDs")
		}
		assertUnchanged(t, before, three)
		if _, err := os.Stat(e.caDir); !os.IsNotExist(err) {
			t.Fatalf("the dry run created the CA directory: %v", err)
		}
	})

	t.Run("from nothing", func(t *testing.T) {
		r := e.apply(t)
		if r.Code != 0 {
			t.Fatal("apply failed")
		}
		contains(t, r.Stdout, "Applied ", "--etcd-servers=https://"+h1.Addr+":2379,https://"+h2.Addr+":2379,https://"+h3.Addr+":2379")
		e.health(t, three...)
		for _, h := range three {
			// Every certificate verifies, checked on the host by the
			// etcdkit apply installed, against the config it wrote.
			if r := h.Run(t, "/usr/local/bin/etcdkit pki check --config /etc/etcd/etcd.yaml"); r.Code != 0 {
				t.Fatalf("%s: pki check: exit %d\n%s\n%s", h.Name, r.Code, r.Stdout, r.Stderr)
			}
			modes := h.MustRun(t, "cd /etc/etcd/ssl && stat -c '%n %a %U:%G' ca.pem server-key.pem peer-key.pem client-key.pem server.pem /usr/local/bin/etcdkit /etc/etcd/ssl")
			want := "ca.pem 644 root:root\nserver-key.pem 600 root:root\npeer-key.pem 600 root:root\nclient-key.pem 600 root:root\nserver.pem 644 root:root\n/usr/local/bin/etcdkit 755 root:root\n/etc/etcd/ssl 700 root:root\n"
			if modes != want {
				t.Errorf("%s: modes:\n%s\nwant:\n%s", h.Name, modes, want)
			}
			if memberPID(t, h) == 0 {
				t.Errorf("%s: no member running", h.Name)
			}
		}
	})

	t.Run("re-apply changes nothing", func(t *testing.T) {
		before, pids := state(t, three), pidsOf(t, three)
		r := e.apply(t)
		if r.Code != 0 {
			t.Fatal("apply failed")
		}
		contains(t, r.Stdout, "No changes: every host already matches "+e.spec)
		assertUnchanged(t, before, three)
		if got := pidsOf(t, three); fmt.Sprint(got) != fmt.Sprint(pids) {
			t.Fatalf("members restarted: %v -> %v", pids, got)
		}
	})

	t.Run("killed member is restarted, not re-created", func(t *testing.T) {
		ctx := testutil.Ctx(t)
		cli, err := e.target(three...).Client()
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		if _, err := cli.Put(ctx, "apply-test/before-kill", "kept"); err != nil {
			t.Fatal(err)
		}
		id := e.members(t, h1, h3).ByPeerURL("https://" + h2.Addr + ":2380").ID
		h2.MustRun(t, "kill -9 $(cat /run/etcdkit/etcd.pid)")
		waitGone(t, h2)
		r := e.apply(t)
		if r.Code != 0 {
			t.Fatal("apply failed")
		}
		contains(t, r.Stdout, "host2: restart with its data", "host2: start etcd")
		for _, h := range []*testhosts.Host{h1, h3} {
			if strings.Contains(r.Stdout, h.Name+": start etcd") {
				t.Errorf("%s was started too", h.Name)
			}
		}
		if got := e.members(t, three...).ByPeerURL("https://" + h2.Addr + ":2380"); got == nil || got.ID != id || !got.Healthy {
			t.Fatalf("host2's member is %+v, want the same ID %s, healthy", got, id)
		}
		// host2 has the key written before the kill, from its own data.
		one, err := e.target(h2).Client()
		if err != nil {
			t.Fatal(err)
		}
		defer one.Close()
		testutil.Retry(t, ctx, func() error {
			resp, err := one.Get(ctx, "apply-test/before-kill")
			if err == nil && (len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "kept") {
				err = fmt.Errorf("got %v", resp.Kvs)
			}
			return err
		})
	})

	// host4 looks like a systemd machine (a test double of systemctl that
	// runs the unit's ExecStart), host5 like the others.
	h4, h5 := nw.AddFakeSystemd(t), nw.Add(t)
	five := []*testhosts.Host{h1, h2, h3, h4, h5}
	e.trustHosts(t)
	t.Run("two hosts join as learners and are promoted", func(t *testing.T) {
		e.writeSpec(t, five, "")
		before := state(t, five)
		r := e.apply(t, "--dry-run")
		if r.Code != 0 {
			t.Fatal("dry run failed")
		}
		for _, h := range []*testhosts.Host{h4, h5} {
			inOrder(t, r.Stdout, fmt.Sprintf("%s (%s):", h.Name, h.SSHAddr()), "upload", fmt.Sprintf("add member %q", h.Name), "as a learner",
				"create /etc/etcd/etcd.yaml", "start etcd", fmt.Sprintf("promote member %q", h.Name))
		}
		if !strings.Contains(r.Stdout, "create /etc/systemd/system/etcd.service") || strings.Count(r.Stdout, "etcd.service") != 1 {
			t.Fatalf("want the unit on host4 only:\n%s", r.Stdout)
		}
		assertUnchanged(t, before, five)

		r = e.apply(t)
		if r.Code != 0 {
			t.Fatal("apply failed")
		}
		// One at a time, learner first.
		inOrder(t, r.Stdout, "==> Membership changes",
			`host4: adding member "host4"`, "as a learner", "host4: enable and start etcd", `host4: promoting member "host4"`,
			`host5: adding member "host5"`, "as a learner", "host5: start etcd", `host5: promoting member "host5"`)
		ms := e.members(t, five...)
		if len(ms.Members) != 5 {
			t.Fatalf("%d members", len(ms.Members))
		}
		for _, m := range ms.Members {
			if m.Learner || !m.Started || !m.Healthy {
				t.Errorf("member %+v", m)
			}
		}
		// A snapshot before each add and each promotion.
		snaps, _ := filepath.Glob(filepath.Join(e.backups, "*.db"))
		if len(snaps) < 4 {
			t.Fatalf("%d snapshots in %s, want one per change (4)", len(snaps), e.backups)
		}
		e.health(t, five...)
		// On the systemd host: the unit installed, systemd told, the
		// member started by the unit's own ExecStart.
		contains(t, r.Stdout, "host4: create /etc/systemd/system/etcd.service", "host4: reload systemd's units", "host4: enable and start etcd")
		calls := strings.Join(h4.SystemctlCalls(t), "\n")
		inOrder(t, calls, "daemon-reload", "enable --now --no-block etcd")
		if _, ok := h4.ReadFile(t, "/run/etcdkit/etcd.pid"); ok {
			t.Fatal("the systemd host got the fallback's pid file")
		}
		verifyUnit(t, h4)
	})

	tuning := "tuning: {snapshotCount: 20000}\n"
	t.Run("tuning change rolls one member at a time", func(t *testing.T) {
		e.writeSpec(t, five, tuning)
		before := state(t, five)
		r := e.apply(t, "--dry-run")
		if r.Code != 0 {
			t.Fatal("dry run failed")
		}
		for _, h := range five {
			inOrder(t, r.Stdout, fmt.Sprintf("%s (%s):", h.Name, h.SSHAddr()), "update /etc/etcd/etcd.yaml", "restart etcd (its config changed)")
		}
		assertUnchanged(t, before, five)

		pids := pidsOf(t, five)
		r = e.apply(t)
		if r.Code != 0 {
			t.Fatal("apply failed")
		}
		i := strings.Index(r.Stdout, "==> Roll out changes")
		if i < 0 {
			t.Fatal("no roll phase")
		}
		roll := r.Stdout[i:]
		// Each restart is followed by a health wait before the next.
		var each []string
		for range five {
			each = append(each, ": restart etcd (its config changed)", "healthy:")
		}
		inOrder(t, roll, each...)
		if strings.Count(roll, "restart etcd") != 5 {
			t.Fatalf("want 5 restarts:\n%s", roll)
		}
		// The leader (unless leadership moved by itself meanwhile) goes
		// last, after handing its leadership over.
		if j := strings.Index(roll, "handed leadership over"); j >= 0 && j > strings.LastIndex(roll, ": restart etcd") {
			t.Fatalf("leadership handed over after the last restart:\n%s", roll)
		}
		for _, h := range five {
			if cfg, _ := h.ReadFile(t, "/etc/etcd/etcd.yaml"); !strings.Contains(string(cfg), "snapshot-count: 20000") {
				t.Errorf("%s: config lacks the new snapshot count:\n%s", h.Name, cfg)
			}
			if p := memberPID(t, h); p == 0 || p == pids[h.Name] {
				t.Errorf("%s: member pid %d, was %d: not restarted", h.Name, p, pids[h.Name])
			}
		}
		if calls := h4.SystemctlCalls(t); !strings.Contains(strings.Join(calls, "\n"), "restart --no-block etcd") {
			t.Errorf("host4 was not restarted through systemctl: %q", calls)
		}
		e.health(t, five...)
	})

	t.Run("removal only with --allow-remove", func(t *testing.T) {
		four := []*testhosts.Host{h1, h2, h4, h5}
		e.writeSpec(t, four, tuning)
		before := state(t, five)
		r := e.apply(t)
		testutil.ExpectFailure(t, r, 1, `member "host3"`, "is in the cluster but not in the spec", "--allow-remove", "nothing was changed on any host")
		assertUnchanged(t, before, five)

		r = e.apply(t, "--allow-remove")
		if r.Code != 0 {
			t.Fatal("apply failed")
		}
		contains(t, r.Stdout, `remove member "host3"`, "apply did not touch it")
		ms := e.members(t, four...)
		if len(ms.Members) != 4 || ms.ByName("host3") != nil {
			t.Fatalf("members after the removal: %+v", ms.Members)
		}
		e.health(t, four...)
	})
	t.Logf("TestApply took %s", time.Since(start).Round(time.Millisecond))
}

// verifyUnit checks the unit apply installed on a systemd host with
// systemd-analyze, on the host, where the binary it starts is installed.
func verifyUnit(t *testing.T, h *testhosts.Host) {
	t.Helper()
	if r := h.Run(t, "command -v systemd-analyze"); r.Code != 0 {
		t.Log("systemd-analyze is not installed (.ci/run installs the systemd package): unit not verified")
		return
	}
	if r := h.Run(t, "systemd-analyze verify /etc/systemd/system/etcd.service"); r.Code != 0 || strings.TrimSpace(r.Stdout+r.Stderr) != "" {
		unit, _ := h.ReadFile(t, "/etc/systemd/system/etcd.service")
		t.Fatalf("systemd-analyze verify: exit %d\n%s%s\n%s", r.Code, r.Stdout, r.Stderr, unit)
	}
}

func pidsOf(t *testing.T, hosts []*testhosts.Host) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, h := range hosts {
		out[h.Name] = memberPID(t, h)
	}
	return out
}

// waitGone waits until the host's member process is gone.
func waitGone(t *testing.T, h *testhosts.Host) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for memberPID(t, h) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s: member still running", h.Name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// otherClusterData is the data dir of another, single-member cluster,
// made by a real etcd server in this process.
func otherClusterData(t *testing.T) string {
	t.Helper()
	// Small WAL segments: the data dir is copied onto a host.
	old := wal.SegmentSizeBytes
	wal.SegmentSizeBytes = 1 << 20
	defer func() { wal.SegmentSizeBytes = old }()
	cfg := embed.NewConfig()
	cfg.Name = "stranger"
	cfg.Dir = filepath.Join(t.TempDir(), "data")
	cfg.LogLevel = "error"
	ports, err := local.FreePorts("127.0.0.1", 2)
	if err != nil {
		t.Fatal(err)
	}
	peer := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(ports[0])}
	client := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(ports[1])}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.InitialClusterToken = "another-cluster"
	srv, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.Server.ReadyNotify():
	case <-time.After(time.Minute):
		srv.Close()
		t.Fatal("the other cluster did not start")
	}
	srv.Close()
	return cfg.Dir
}
