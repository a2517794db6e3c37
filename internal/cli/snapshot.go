package cli

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/etcdkit/etcdkit/internal/snapshot"
)

func (a *App) snapshotCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Save, check, list and prune snapshots (etcd's format, etcdctl-compatible)",
		Long: `Snapshots are etcd's own format: the database followed by its sha256, the
same files 'etcdctl snapshot save' writes and 'etcdutl snapshot restore' reads.
etcdkit adds a sidecar FILE.json with the member, revision, key count, size
and sha256. Restore a snapshot with 'etcdkit cluster restore'.`,
	}
	cmd.AddCommand(a.snapshotSaveCmd(), a.snapshotStatusCmd(), a.snapshotVerifyCmd(),
		a.snapshotListCmd(), a.snapshotPruneCmd(), a.restoreCmd("restore"))
	return cmd
}

func (a *App) snapshotSaveCmd() *cobra.Command {
	var (
		cf     clientFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "save FILE|DIR",
		Short: "Stream a snapshot from the most up-to-date healthy member",
		Long: `Streams a snapshot from the most up-to-date healthy member of the endpoints
(the one that applied the most, the leader on a tie) into FILE.part, fsyncs
it, verifies the embedded sha256 and the database, and renames it to FILE.
Given a directory, the file is named etcd-snapshot-TIME.db. A sidecar
FILE.json records the member, revision, key count, size and sha256.
An existing FILE is never overwritten. Progress is shown on a terminal only.`,
		Args: exactArgs(1, "one file or directory"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			t, err := a.target(cmd, &cf)
			if err != nil {
				return err
			}
			bar := a.progress("snapshot")
			info, err := snapshot.Save(cmd.Context(), t, args[0], snapshot.SaveOptions{
				Reason:   "manual",
				Source:   func(s snapshot.Source) { bar.start(s) },
				Progress: bar.update,
			})
			bar.done()
			if err != nil {
				return err
			}
			if info.Warning != "" {
				fmt.Fprintf(a.Err, "warning: %s\n", info.Warning)
			}
			if output != formatTable {
				return print(a.Out, output, info, nil)
			}
			who := info.Endpoint
			if info.Member != "" {
				who = fmt.Sprintf("member %q (%s)", info.Member, info.Endpoint)
			}
			fmt.Fprintf(a.Out, "saved %s: revision %d, %d keys, %s, sha256 %s, from %s\n",
				info.Path, info.Revision, info.TotalKeys, humanBytes(info.Size), info.SHA256, who)
			return nil
		},
	}
	addClientFlags(cmd, &cf)
	outputFlag(cmd, &output)
	return cmd
}

func (a *App) snapshotStatusCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status FILE",
		Short: "Show a snapshot file's revision, key count, size and hashes",
		Long: `Reads a snapshot file like 'etcdutl snapshot status': revision, total keys,
database hash and storage version, plus its size, sha256 and whether it
carries an embedded hash (a db file copied from a data dir does not). A
corrupted file is an error. The sidecar, when there is one, adds where and
when the snapshot was taken.`,
		Args: exactArgs(1, "one snapshot file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			st, err := snapshot.Status(args[0])
			if err != nil {
				return err
			}
			side, _ := snapshot.ReadSidecar(args[0])
			v := struct {
				*snapshot.FileStatus
				Sidecar *snapshot.Info `json:"sidecar,omitempty"`
			}{st, side}
			return print(a.Out, output, v, func() *table {
				tb := &table{header: []string{"HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE", "VERSION", "EMBEDDED SHA256", "TAKEN"}}
				taken := "-"
				if side != nil {
					taken = side.Created.Format(time.RFC3339)
					if side.Member != "" {
						taken += " from " + side.Member
					}
				}
				embedded := "ok"
				if !st.HasHash {
					embedded = "none (db file copy)"
				}
				tb.add(fmt.Sprintf("%x", st.Hash), strconv.FormatInt(st.Revision, 10), strconv.Itoa(st.TotalKeys),
					humanBytes(st.Size), dash(st.StorageVersion), embedded, taken)
				return tb
			})
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

func (a *App) snapshotVerifyCmd() *cobra.Command {
	var skipHash bool
	cmd := &cobra.Command{
		Use:   "verify FILE",
		Short: "Check a snapshot completely before you rely on it",
		Long: `Checks that the embedded sha256 matches the database, that the database
passes bbolt's consistency check, and that the file is the one its sidecar
describes. Exits 0 when the snapshot is good, 1 otherwise.`,
		Args: exactArgs(1, "one snapshot file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := snapshot.Verify(args[0], snapshot.VerifyOptions{SkipHashCheck: skipHash})
			if err != nil {
				return err
			}
			note := ""
			if !st.HasHash {
				note = " (no embedded hash: checked as a db file copy)"
			}
			fmt.Fprintf(a.Out, "%s: OK, revision %d, %d keys, %s, sha256 %s%s\n",
				args[0], st.Revision, st.TotalKeys, humanBytes(st.Size), st.SHA256, note)
			return nil
		},
	}
	cmd.Flags().BoolVar(&skipHash, "skip-hash-check", false, "accept a db file copied from a data dir (no embedded sha256)")
	return cmd
}

func (a *App) snapshotListCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "list DIR",
		Short: "List the snapshots in a directory, newest first",
		Long: `Lists the *.db files in DIR, newest first. Snapshots etcdkit saved are
described by their sidecar; other files (etcdctl's, copies) by size and
modification time, and 'prune' never touches them.`,
		Args: exactArgs(1, "one directory"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			entries, err := snapshot.List(args[0])
			if err != nil {
				return err
			}
			if entries == nil {
				entries = []snapshot.Entry{}
			}
			return print(a.Out, output, entries, func() *table { return snapshotTable(entries, nil) })
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

func (a *App) snapshotPruneCmd() *cobra.Command {
	var (
		o      snapshot.PruneOptions
		output string
	)
	cmd := &cobra.Command{
		Use:   "prune DIR --keep N [--keep-daily N] [--dry-run]",
		Short: "Delete old snapshots beyond a retention; never the newest verified one",
		Long: `Deletes the snapshots etcdkit saved in DIR (those with a sidecar) except the
--keep newest and, with --keep-daily, the newest of each of the last N days
(UTC). The newest snapshot that passes verification is always kept, even when
newer ones are damaged. Files without a sidecar are never deleted.
--dry-run prints what would be deleted and deletes nothing.`,
		Args: exactArgs(1, "one directory"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			if o.Keep < 0 || o.KeepDaily < 0 {
				return usagef("--keep and --keep-daily must not be negative")
			}
			if o.Keep+o.KeepDaily == 0 {
				return usagef("say what to keep: --keep N (N >= 1), and optionally --keep-daily N")
			}
			res, err := snapshot.Prune(args[0], o)
			if res != nil {
				perr := print(a.Out, output, res, func() *table {
					var rows []snapshot.Entry
					why := map[string]string{}
					for _, k := range res.Kept {
						rows = append(rows, k.Entry)
						why[k.Path] = "keep: " + strings.Join(k.Why, ", ")
					}
					verb := "delete"
					if !res.DryRun {
						verb = "deleted"
					}
					for _, d := range res.Deleted {
						rows = append(rows, d)
						why[d.Path] = verb
					}
					return snapshotTable(rows, why)
				})
				if err == nil {
					err = perr
				}
				if output == formatTable && res.DryRun {
					fmt.Fprintf(a.Err, "dry run: %d snapshot(s) would be deleted, nothing was\n", len(res.Deleted))
				}
			}
			return err
		},
	}
	cmd.Flags().IntVar(&o.Keep, "keep", 0, "keep this many of the newest snapshots")
	cmd.Flags().IntVar(&o.KeepDaily, "keep-daily", 0, "also keep the newest snapshot of each of the last N days (UTC)")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "print what would be deleted; delete nothing")
	outputFlag(cmd, &output)
	return cmd
}

// snapshotTable lists snapshots; action, when given, adds a column.
func snapshotTable(entries []snapshot.Entry, action map[string]string) *table {
	tb := &table{header: []string{"FILE", "TAKEN", "MEMBER", "REVISION", "KEYS", "SIZE"}}
	if action != nil {
		tb.header = append(tb.header, "ACTION")
	}
	for _, e := range entries {
		rev, keys, member := "-", "-", "-"
		if e.Managed {
			rev, keys, member = strconv.FormatInt(e.Revision, 10), strconv.Itoa(e.TotalKeys), dash(e.Member)
		}
		row := []string{e.Path, e.Created.Local().Format(time.DateTime), member, rev, keys, humanBytes(e.Size)}
		if action != nil {
			row = append(row, action[e.Path])
		}
		tb.add(row...)
	}
	return tb
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// progressBar shows bytes and rate of a long transfer on a terminal, and
// nothing when stderr is not one (scripts, logs).
type progressBar struct {
	w     io.Writer
	label string
	total int64
	began time.Time
	last  time.Time
	shown bool
}

func (a *App) progress(label string) *progressBar {
	f, ok := a.Err.(*os.File)
	if !ok || !isatty.IsTerminal(f.Fd()) {
		return &progressBar{}
	}
	return &progressBar{w: a.Err, label: label}
}

func (p *progressBar) start(s snapshot.Source) {
	p.total, p.began = s.DBSize, time.Now()
	if p.w != nil {
		name := s.Endpoint
		if s.Name != "" {
			name = s.Name + " (" + s.Endpoint + ")"
		}
		fmt.Fprintf(p.w, "%s from member %s\n", p.label, name)
	}
}

func (p *progressBar) update(n int64) {
	if p.w == nil || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last, p.shown = time.Now(), true
	rate := float64(n) / max(time.Since(p.began).Seconds(), 0.001)
	of := ""
	if p.total > 0 {
		of = fmt.Sprintf(" of ~%s (%d%%)", humanBytes(p.total), min(100, n*100/p.total))
	}
	fmt.Fprintf(p.w, "\r  %s%s  %s/s\033[K", humanBytes(n), of, humanBytes(int64(rate)))
}

func (p *progressBar) done() {
	if p.w != nil && p.shown {
		fmt.Fprintln(p.w)
	}
}
