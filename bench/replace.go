package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdkit/etcdkit/internal/connect"
	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/render"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// ErrNotAvailable marks a benchmark of a command this build lacks.
var ErrNotAvailable = errors.New("not available yet")

// ReplaceAvailable reports whether the etcdkit binary has `member replace`
// with the contract's flags (issue 5), and why not.
func ReplaceAvailable(b *Binaries) error {
	out, _ := exec.Command(b.Etcdkit, "member", "replace", "--help").CombinedOutput()
	for _, flag := range []string{"--name", "--peer-url", "--client-url", "--pki", "--out"} {
		if !strings.Contains(string(out), flag) {
			return fmt.Errorf("%w: this etcdkit has no `member replace ... %s` (issue 5)", ErrNotAvailable, flag)
		}
	}
	return nil
}

// ReplaceResult is one replacement of a SIGKILLed member.
type ReplaceResult struct {
	// Took is from the replacement's start to every voter healthy.
	Took   time.Duration
	Writer Window
}

// replaceScenario is the runbook scenario of issue 5: members m1..m3, a
// steady writer through m2 and m3, m1 killed with SIGKILL, then m1
// replaced by m4 on 127.0.0.4 while the writer goes on.
type replaceScenario struct {
	c      *Cluster
	w      *Writer
	m4     *spec.Member
	keep   []string
	closer func()
}

func newReplaceScenario(b *Binaries, server Server) (*replaceScenario, error) {
	born := time.Now()
	c, err := StartCluster(b, server, ClusterOptions{Members: 3})
	if err != nil {
		return nil, err
	}
	sc := &replaceScenario{c: c, keep: []string{"m2", "m3"}}
	sc.closer = c.Close
	cli, err := c.Client(sc.keep...)
	if err != nil {
		sc.close()
		return nil, err
	}
	sc.w = StartWriter(cli)
	sc.closer = func() { sc.w.Stop(); cli.Close(); c.Close() }
	if err := sc.w.WaitAcked(50, time.Minute); err != nil {
		sc.close()
		return nil, err
	}
	// A real cluster has run for a while when a member fails. etcd accepts
	// a member add only once the member receiving it has been connected to
	// a quorum for 5 s (its HealthInterval); in a cluster seconds old that
	// rule, not the replacement, would dominate both sides' times.
	if young := healthInterval + time.Second - time.Since(born); young > 0 {
		time.Sleep(young)
	}
	c.Kill("m1", syscall.SIGKILL)
	// Start measuring only once the two survivors serve the writer again
	// (an election follows when m1 led).
	if err := sc.w.WaitAcked(20, time.Minute); err != nil {
		sc.close()
		return nil, err
	}
	if sc.m4, err = c.PlanMember("m4", 4); err != nil {
		sc.close()
		return nil, err
	}
	return sc, nil
}

// healthInterval is etcd's etcdserver.HealthInterval.
const healthInterval = 5 * time.Second

func (sc *replaceScenario) close() { sc.closer() }

// finish waits until m2, m3 and m4 are the only members, all voters and
// healthy, and measures the writer since start.
func (sc *replaceScenario) finish(start time.Time) (ReplaceResult, error) {
	sc.c.Spec.Members = append(sc.c.Spec.Members, *sc.m4)
	voters := append(slices.Clone(sc.keep), "m4")
	if err := waitVoters(sc.c, voters, 2*time.Minute); err != nil {
		return ReplaceResult{}, err
	}
	end := time.Now()
	return ReplaceResult{Took: end.Sub(start), Writer: sc.w.Window(start, end)}, nil
}

// waitVoters waits until the member list is exactly names, all voters,
// and each is healthy.
func waitVoters(c *Cluster, names []string, limit time.Duration) error {
	t, err := c.Target(names...)
	if err != nil {
		return err
	}
	t.CommandTimeout = time.Second
	cli, err := t.Client()
	if err != nil {
		return err
	}
	defer cli.Close()
	deadline := time.Now().Add(limit)
	for {
		err := votersHealthy(t, cli, names)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("members %v not all healthy voters after %v: %w", names, limit, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func votersHealthy(t *connect.Target, cli *clientv3.Client, names []string) error {
	ctx, cancel := t.Ctx(context.Background())
	defer cancel()
	ml, err := cli.MemberList(ctx)
	if err != nil {
		return err
	}
	var have []string
	for _, m := range ml.Members {
		if m.IsLearner {
			return fmt.Errorf("member %q is still a learner", m.Name)
		}
		have = append(have, m.Name)
	}
	slices.Sort(have)
	want := slices.Sorted(slices.Values(names))
	if !slices.Equal(have, want) {
		return fmt.Errorf("members are %v", have)
	}
	return ops.Unhealthy(ops.Health(context.Background(), t))
}

// ReplaceEtcdkit measures `etcdkit member replace m1 --name m4 ...` on a
// cluster of `etcdkit member run` processes. The harness plays the
// operator: it starts m4 from the config the command writes under --out.
func ReplaceEtcdkit(b *Binaries) (ReplaceResult, error) {
	if err := ReplaceAvailable(b); err != nil {
		return ReplaceResult{}, err
	}
	sc, err := newReplaceScenario(b, ServerEtcdkit)
	if err != nil {
		return ReplaceResult{}, err
	}
	defer sc.close()
	c := sc.c
	out := filepath.Join(filepath.Dir(string(c.Dir)), "replace-out")
	t, err := c.Target(sc.keep...)
	if err != nil {
		return ReplaceResult{}, err
	}
	args := []string{"member", "replace", "m1", "--name", "m4", "--peer-url", sc.m4.PeerURL, "--client-url", sc.m4.ClientURL,
		"--pki", c.Dir.PKIDir(), "--out", out, "--endpoints", strings.Join(t.Endpoints, ","),
		// Its snapshot and progress file stay in this run's directory, never in
		// the host's /var/lib/etcd/backups.
		"--backup-dir", filepath.Join(filepath.Dir(string(c.Dir)), "backups"),
		// m4's "host" is this machine: its config names the files written
		// into --out, not /etc/etcd/ssl and /var/lib/etcd.
		"--cert-dir", filepath.Join(out, "ssl"), "--data-dir", filepath.Join(out, "data")}
	args = append(args, c.TLSFlags()...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.Etcdkit, args...)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return ReplaceResult{}, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	started := false
	for {
		select {
		case err := <-done:
			if err != nil {
				return ReplaceResult{}, fmt.Errorf("etcdkit %s: %w\n%s", strings.Join(args, " "), err, output.String())
			}
			if !started {
				return ReplaceResult{}, fmt.Errorf("etcdkit member replace ended without writing m4's etcd YAML config under %s:\n%s", out, output.String())
			}
			return sc.finish(start)
		case <-time.After(10 * time.Millisecond):
		}
		if started {
			continue
		}
		if config := findConfig(out, "m4"); config != "" {
			if err := c.StartConfig("m4", config); err != nil {
				return ReplaceResult{}, err
			}
			started = true
		}
	}
}

// findConfig finds an etcd YAML config for member name under dir.
func findConfig(dir, name string) string {
	var found string
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || found != "" {
			return nil
		}
		switch filepath.Ext(path) {
		case ".yaml", ".yml", ".conf":
		default:
			return nil
		}
		if cfg, err := etcdconf.Load(path); err == nil && cfg.Name == name && cfg.DataDir != "" {
			found = path
		}
		return nil
	})
	return found
}

// ReplaceRunbook measures the runbook's replacement on stock etcd with the
// stock tools: `etcdctl member list` to find m1's ID, `etcdctl member
// remove`, `etcdctl member add m4`, m4's server and peer certificates made
// with cfssl from the cluster's CA, its config written with
// initial-cluster-state existing, and stock etcd started on it.
func ReplaceRunbook(b *Binaries) (ReplaceResult, error) {
	sc, err := newReplaceScenario(b, ServerStock)
	if err != nil {
		return ReplaceResult{}, err
	}
	defer sc.close()
	c := sc.c
	env, err := c.Env(sc.keep...)
	if err != nil {
		return ReplaceResult{}, err
	}
	// The runbook's cfssl files exist from the cluster's setup.
	work := filepath.Join(filepath.Dir(string(c.Dir)), "cfssl")
	if err := os.Mkdir(work, 0o700); err != nil {
		return ReplaceResult{}, err
	}
	cf, err := NewCfssl(b, work)
	if err != nil {
		return ReplaceResult{}, err
	}
	for src, dst := range map[string]string{c.Dir.CA().Cert: "ca.pem", c.Dir.CA().Key: "ca-key.pem"} {
		if err := copyFile(src, filepath.Join(work, dst), 0o600); err != nil {
			return ReplaceResult{}, err
		}
	}

	start := time.Now()
	list, err := runTool(b.Etcdctl, env, "member", "list", "-w", "json")
	if err != nil {
		return ReplaceResult{}, err
	}
	id, err := memberID(list, "m1")
	if err != nil {
		return ReplaceResult{}, err
	}
	if _, err := runTool(b.Etcdctl, env, "member", "remove", id); err != nil {
		return ReplaceResult{}, err
	}
	if err := retryTool(b.Etcdctl, env, "member", "add", "m4", "--peer-urls", sc.m4.PeerURL); err != nil {
		return ReplaceResult{}, err
	}
	for _, role := range []pki.Role{pki.RoleServer, pki.RolePeer} {
		name := "m4-" + string(role)
		if err := cf.Issue(name, string(role), "m4", render.MemberHosts(sc.m4)); err != nil {
			return ReplaceResult{}, err
		}
		if err := cf.Install(name, pki.LayoutCfssl.Leaf(sc.m4.PKIDir, role)); err != nil {
			return ReplaceResult{}, err
		}
	}
	if err := copyFile(c.Dir.CA().Cert, pki.LayoutCfssl.CA(sc.m4.PKIDir).Cert, 0o644); err != nil {
		return ReplaceResult{}, err
	}
	config, err := c.WriteJoinConfig(sc.m4, sc.keep)
	if err != nil {
		return ReplaceResult{}, err
	}
	if err := c.StartConfig("m4", config); err != nil {
		return ReplaceResult{}, err
	}
	return sc.finish(start)
}

// memberID finds a member's hex ID in `etcdctl member list -w json`.
func memberID(listJSON, name string) (string, error) {
	var l struct {
		Members []struct {
			ID   uint64 `json:"ID"`
			Name string `json:"name"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(listJSON), &l); err != nil {
		return "", fmt.Errorf("etcdctl member list -w json: %w", err)
	}
	for _, m := range l.Members {
		if m.Name == name {
			return fmt.Sprintf("%x", m.ID), nil
		}
	}
	return "", fmt.Errorf("no member %q in etcdctl member list", name)
}

// runTool runs a stock tool to completion.
func runTool(exe string, env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s%s", filepath.Base(exe), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// retryTool retries what etcd refuses for a while, as an operator does:
// `member add` gets "unhealthy cluster" for about 5 s after a member
// (re)connects.
func retryTool(exe string, env []string, args ...string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := runTool(exe, env, args...)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ReplaceOptions configures ReplaceBench.
type ReplaceOptions struct {
	Runs  int
	Rerun string
}

// ReplaceBench replaces a SIGKILLed member Runs times on each side, sides
// alternating: `etcdkit member replace` on etcdkit members, and the
// runbook with etcdctl and cfssl on stock etcd. Until `member replace`
// exists the etcdkit side is reported as not available and the runbook is
// measured alone.
func ReplaceBench(b *Binaries, o ReplaceOptions, r Report) error {
	load := LoadAvg()
	type side struct {
		name  string
		run   func(*Binaries) (ReplaceResult, error)
		took  Values
		gap   Values
		fails Values
		skip  error
	}
	kit := &side{name: "`etcdkit member replace m1 --name m4 ...` (etcdkit members)", run: ReplaceEtcdkit}
	book := &side{name: "runbook: etcdctl member remove/add, cfssl certificates, stock etcd started with state existing", run: ReplaceRunbook}
	kit.skip = ReplaceAvailable(b)
	for i := 0; i < o.Runs; i++ {
		for _, s := range Interleave(i, kit, book) {
			if s.skip != nil {
				continue
			}
			res, err := s.run(b)
			if err != nil {
				return fmt.Errorf("%s, run %d: %w", s.name, i+1, err)
			}
			s.took.Add(msf(res.Took))
			s.gap.Add(msf(res.Writer.LongestGap))
			s.fails.Add(float64(res.Writer.Failed))
			r.Logf("replace run %d/%d %s: %v, longest gap %v, %d failed writes", i+1, o.Runs, s.name, res.Took.Round(time.Millisecond), res.Writer.LongestGap.Round(time.Millisecond), res.Writer.Failed)
		}
	}
	r.Header("Member replacement", o.Rerun, load)
	r.Printf("Issue 5's runbook scenario: members m1..m3 on 127.0.0.1-3 (TLS, client certificates), a steady writer (sequential puts of distinct keys through m2 and m3, clientv3's own retries, 2 s timeout per put); m1 is killed with SIGKILL and, once the writer is served again, replaced by m4 on 127.0.0.4. Measured from the start of the replacement to m2, m3 and m4 being the only members, all voters and healthy; the writer's longest gap between acknowledged writes and its failed writes are counted over the same window. The harness plays the operator who starts m4's process. %d runs per side, sides alternating; cells are min / **median** / max.\n\n", o.Runs)
	var rows [][]string
	for _, s := range []*side{kit, book} {
		if s.skip != nil {
			rows = append(rows, []string{s.name, "0", "skipped: not available yet", "", ""})
			continue
		}
		rows = append(rows, []string{s.name, fmt.Sprint(len(s.took.Runs)), s.took.Spread("%.0f"), s.gap.Spread("%.0f"), s.fails.Spread("%.0f")})
	}
	r.Table([]string{"side", "runs", "time to all voters healthy, ms", "writer's longest gap, ms", "failed writes"}, rows)
	if kit.skip != nil {
		r.Printf("etcdkit side: **%v**; the harness runs it as soon as the binary has the command.\n\n", kit.skip)
		return nil
	}
	r.Printf("Ratio etcdkit/runbook, time to all voters healthy (medians): %.2f. Targets for etcdkit: zero failed writes (%s, max %0.f), longest gap under one election timeout, 1000 ms (%s, median %.0f ms).\n\n",
		VRatio(kit.took, book.took), metOrMissed(kit.fails.Max() == 0), kit.fails.Max(), metOrMissed(kit.gap.Max() < 1000), kit.gap.Median())
	return nil
}
