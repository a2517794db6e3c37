package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/etcdkit/etcdkit/internal/fsutil"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// CatchUp measures how long a new learner takes to catch up with the
// cluster: it is added with MemberAddAsLearner, started on an empty data
// dir as server (etcdkit member run or stock etcd) from the same config,
// and timed from its start until the leader accepts its promotion (etcd
// promotes a learner once it has 90% of the leader's log, which for a new
// member means it received and applied the leader's snapshot). It is then
// stopped and removed, so the next run starts from the same cluster.
//
// Promotion, not the learner's own Status, marks the end: a learner serves
// clients only after it has published its name through raft, and in etcd
// 3.7 that first proposal is often dropped while the snapshot is in flight
// and retried after the 7 s request timeout, which would swamp the
// transfer being measured.
func CatchUp(c *Cluster, server Server, m *spec.Member) (time.Duration, error) {
	voters := c.Names()
	cli, err := c.Client(voters...)
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	var id uint64
	add := func(ctx context.Context) error {
		resp, err := cli.MemberAddAsLearner(ctx, []string{m.PeerURL})
		if err == nil {
			id = resp.Member.ID
		}
		return err
	}
	err = retryUnhealthy(add)
	// etcd derives a new member's ID from its peer URLs and the current
	// second, so re-adding the peer URL of the member removed by the
	// previous run within the same second gets the removed ID, refused as
	// "member not found" (ErrIDRemoved); the next second gets a new ID.
	for i := 0; i < 30 && errors.Is(err, rpctypes.ErrMemberNotFound); i++ {
		time.Sleep(100 * time.Millisecond)
		err = retryUnhealthy(add)
	}
	if err != nil {
		return 0, fmt.Errorf("add learner %s: %w", m.Name, err)
	}
	defer func() {
		c.Kill(m.Name, syscall.SIGTERM)
		_ = retryUnhealthy(func(ctx context.Context) error {
			_, err := cli.MemberRemove(ctx, id)
			return err
		})
		os.RemoveAll(m.DataDir)
	}()
	if err := os.RemoveAll(m.DataDir); err != nil {
		return 0, err
	}
	config, err := c.WriteJoinConfig(m, voters)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if err := c.StartConfigAs(server, m.Name, config); err != nil {
		return 0, err
	}
	deadline := start.Add(10 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := cli.MemberPromote(ctx, id)
		cancel()
		if err == nil {
			return time.Since(start), nil
		}
		if !errors.Is(err, rpctypes.ErrMemberLearnerNotReady) && !isUnhealthy(err) {
			return 0, fmt.Errorf("promote learner %s (%s, log %s): %w", m.Name, server, c.Log(m.Name), err)
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("learner %s (%s) did not catch up in 10 minutes (log %s): %w", m.Name, server, c.Log(m.Name), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// retryUnhealthy retries a membership call while etcd refuses it as
// "unhealthy cluster" (for about 5 s after a member connects).
func retryUnhealthy(fn func(ctx context.Context) error) error {
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := fn(ctx)
		cancel()
		if err == nil || !isUnhealthy(err) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// isUnhealthy is etcd's "unhealthy cluster" refusal of a membership change
// right after a member (re)connects; it passes within seconds.
func isUnhealthy(err error) bool {
	return errors.Is(err, rpctypes.ErrUnhealthy) || (err != nil && strings.Contains(err.Error(), "unhealthy cluster"))
}

// ScalingOptions configures ScalingBench.
type ScalingOptions struct {
	Sizes []int64
	Runs  int
	// SVG is where the plot goes.
	SVG   string
	Rerun string
}

// scalingRow is one database size.
type scalingRow struct {
	snap                 *snapshotCells
	catchKit, catchStock Sample
}

// ScalingBench grows one 3-member etcdkit cluster through o.Sizes and, at
// each, measures snapshot save and restore with both sides' tools and the
// catch-up of a new learner running etcdkit or stock etcd.
func ScalingBench(b *Binaries, o ScalingOptions, r Report) error {
	load := LoadAvg()
	c, err := StartCluster(b, ServerEtcdkit, ClusterOptions{Members: 3})
	if err != nil {
		return err
	}
	defer c.Close()
	s, err := NewSnapshotter(b, c)
	if err != nil {
		return err
	}
	m4, err := c.PlanMember("m4", 4)
	if err != nil {
		return err
	}
	if err := c.IssueMemberCerts(m4); err != nil {
		return err
	}
	var rows []scalingRow
	for _, size := range o.Sizes {
		r.Logf("filling the database to %s", HumanSize(size))
		if _, err := Fill(c, size); err != nil {
			return err
		}
		cells, err := measureSnapshots(s, o.Runs, r)
		if err != nil {
			return err
		}
		row := scalingRow{snap: cells}
		for i := 0; i < o.Runs; i++ {
			for _, server := range Interleave(i, ServerEtcdkit, ServerStock) {
				d, err := CatchUp(c, server, m4)
				if err != nil {
					return err
				}
				dst := &row.catchKit
				if server == ServerStock {
					dst = &row.catchStock
				}
				dst.Runs = append(dst.Runs, d)
				r.Logf("catch-up run %d/%d at %s, %s learner: %v", i+1, o.Runs, HumanSize(cells.db), server, d.Round(time.Millisecond))
			}
		}
		rows = append(rows, row)
	}
	r.Header("Scaling with database size", o.Rerun, load)
	r.Printf("One 3-member TLS cluster of etcdkit members grown through each size (96 KiB values); at each size the save and restore commands of the snapshot section and the catch-up of a new learner (added with MemberAddAsLearner, started on an empty data dir as `etcdkit member run` or as stock etcd from the same config, timed from its start until the leader accepts its promotion, i.e. it has the leader's data). Seconds, **median** (min-max) of %d runs after an untimed warm-up round of the save and restore commands; sides alternating; the plot shows medians.\n\n", o.Runs)
	header := []string{"database", "etcdkit save", "etcdctl save", "etcdkit restore (1)", "etcdutl restore (1)", "etcdkit restore (3, --all-local)", "catch-up, etcdkit learner", "catch-up, stock learner"}
	var table [][]string
	for _, row := range rows {
		sc := row.snap
		cell := func(s Sample) string {
			return fmt.Sprintf("**%.2f** (%.2f-%.2f)", s.Median().Seconds(), s.Min().Seconds(), s.Max().Seconds())
		}
		table = append(table, []string{HumanSize(sc.db), cell(sc.saveKit), cell(sc.saveCtl), cell(sc.restoreKit), cell(sc.restoreUtl), cell(sc.all), cell(row.catchKit), cell(row.catchStock)})
	}
	r.Table(header, table)
	if o.SVG != "" {
		if err := fsutil.WriteFile(o.SVG, scalingSVG(header[1:], rows), fsutil.PublicFile); err != nil {
			return err
		}
		r.Printf("![time against database size](%s)\n\n", o.SVG)
	}
	return nil
}

// scalingSVG plots each column's median seconds against the database size.
func scalingSVG(names []string, rows []scalingRow) []byte {
	var series []Series
	for i, name := range names {
		s := Series{Name: name}
		for _, row := range rows {
			sc := row.snap
			d := []Sample{sc.saveKit, sc.saveCtl, sc.restoreKit, sc.restoreUtl, sc.all, row.catchKit, row.catchStock}[i]
			s.X = append(s.X, float64(sc.db)/(1<<20))
			s.Y = append(s.Y, d.Median().Seconds())
		}
		series = append(series, s)
	}
	return LinePlot("Time against database size (medians)", "database size, MiB", "seconds", series)
}
