package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/etcdkit/etcdkit/internal/connect"
	"github.com/etcdkit/etcdkit/internal/local"
	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/ops/replace"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/spec"
)

func (a *App) upCmd() *cobra.Command {
	var (
		dir     string
		members int
		fresh   bool
		keyAlg  string
		restore string
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a secure local etcd cluster (member i on 127.0.0.i) in the foreground",
		Long: `Brings up a local etcd cluster with TLS and client-certificate authentication on
client and peer URLs. On first run it creates a CA, certificates, a cluster spec
and one config per member in --dir; later runs restart the same cluster with its
data (--fresh starts over). Each member is a separate 'etcdkit member run'
process; Ctrl-C stops them all.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			alg, err := pki.ParseKeyAlgorithm(keyAlg)
			if err != nil {
				return usageError{err}
			}
			if cmd.Flags().Changed("members") && (members < 1 || members > local.MaxMembers) {
				return usagef("invalid value %d for flag --members; use 1 to %d", members, local.MaxMembers)
			}
			if !cmd.Flags().Changed("members") {
				members = 0
			}
			exe, err := a.Executable()
			if err != nil {
				return fmt.Errorf("find the etcdkit binary to run members with: %w", err)
			}
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			if restore != "" {
				if err := a.upRestore(local.Dir(abs), restore, fresh, members, alg); err != nil {
					return err
				}
				fresh = false // done by the restore, which must not be undone
			}
			return local.Up(cmd.Context(), local.UpOptions{
				Dir: local.Dir(abs), Members: members, Fresh: fresh, KeyAlgorithm: alg, Exe: exe,
			}, &upPrinter{app: a, ctx: cmd.Context(), dir: abs})
		},
	}
	cmd.Flags().StringVar(&dir, "dir", local.DefaultDir, "directory for the cluster's PKI, configs and data")
	cmd.Flags().IntVar(&members, "members", local.DefaultMembers, "number of members of a new cluster")
	cmd.Flags().BoolVar(&fresh, "fresh", false, "delete the cluster in --dir, data included, and start a new one")
	cmd.Flags().StringVar(&restore, "restore", "", "bring the cluster back from this snapshot first (existing data is moved aside)")
	cmd.Flags().StringVar(&keyAlg, "key-algorithm", string(pki.DefaultKeyAlgorithm), "key algorithm of a new cluster's certificates")
	_ = cmd.MarkFlagDirname("dir")
	cmd.AddCommand(a.upAddCmd(), a.upRemoveCmd(), a.upReplaceCmd())
	return cmd
}

// upRunning is the local cluster in dir, which a running `up` must
// supervise: it starts the members the spec gains.
func (a *App) upRunning(dir string) (local.Dir, *spec.Cluster, *connect.Target, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", nil, nil, err
	}
	d := local.Dir(abs)
	c, err := d.Load()
	if err != nil {
		return d, nil, nil, err
	}
	if _, running := d.Running(); !running {
		return d, nil, nil, fmt.Errorf("no `etcdkit up` runs on %s: start it first (`etcdkit up --dir %s`, in another terminal); it starts and stops the members as the cluster changes", d, dir)
	}
	s, err := d.Settings()
	if err != nil {
		return d, nil, nil, err
	}
	t, err := connect.Resolve(s, connect.Settings{})
	return d, c, t, err
}

// upBackup snapshots the local cluster into its backups/ directory.
func (a *App) upBackup(d local.Dir, t *connect.Target) ops.Backup {
	return a.backup(&changeFlags{}, t, d.BackupDir())
}

// upNewMember is the member an `up add` or `up replace` brings in: the
// one an interrupted run chose, else mN on the next 127.0.0.N (named
// name when given).
func upNewMember(d local.Dir, c *spec.Cluster, old, name string) (spec.Member, error) {
	if st, _, err := replace.Lookup(d.BackupDir(), old); err != nil {
		return spec.Member{}, err
	} else if st != nil && (name == "" || name == st.New.Name) && (old != "" || !st.Completed) {
		return d.MemberSpec(st.New), nil
	}
	m, err := d.NextMember(c)
	if err != nil || name == "" {
		return m, err
	}
	return d.MemberSpec(replace.NewMember{Name: name, PeerURL: m.PeerURL, ClientURL: m.ClientURL}), nil
}

func (a *App) upAddCmd() *cobra.Command {
	var (
		dir      string
		timeouts replaceTimeouts
	)
	cmd := &cobra.Command{
		Use:   "add [NAME]",
		Short: "Add a member to the running local cluster, on the next 127.0.0.x",
		Long: `Adds member mN on 127.0.0.N (N one past the highest used) to the cluster a
running 'etcdkit up' supervises: snapshot, add as a learner, write its
directory like the others', add it to the spec (the running 'up' starts it),
wait for it to catch up and promote it. Interrupted, running it again
continues.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("%s takes at most one argument, the new member's name; got %d", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			d, c, t, err := a.upRunning(dir)
			if err != nil {
				return err
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			m, err := upNewMember(d, c, "", name)
			if err != nil {
				return err
			}
			o := replace.Options{
				Target: t, New: replace.NewMember{Name: m.Name, PeerURL: m.PeerURL, ClientURL: m.ClientURL},
				StateDir: d.BackupDir(), Backup: a.upBackup(d, t), Host: d.Host(m),
			}
			timeouts.apply(&o)
			return a.runReplace(cmd.Context(), o, formatTable, func(*ops.Written) {})
		},
	}
	cmd.Flags().StringVar(&dir, "dir", local.DefaultDir, "the directory of the running local cluster")
	timeouts.flags(cmd)
	_ = cmd.MarkFlagDirname("dir")
	return cmd
}

func (a *App) upRemoveCmd() *cobra.Command {
	var (
		dir   string
		force bool
	)
	cmd := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a member from the running local cluster",
		Long: `Removes a member with the safety of 'etcdkit member remove' (snapshot first,
quorum kept, leader moved away first, --force for an even number of voters),
then drops it from the spec; the running 'up' stops it. Its directory is kept
for its log.`,
		Args: exactArgs(1, "the member's name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, _, t, err := a.upRunning(dir)
			if err != nil {
				return err
			}
			res, err := ops.Remove(cmd.Context(), t, args[0], ops.RemoveOptions{
				Force: force, Backup: a.upBackup(d, t), Progress: a.say,
			})
			if err != nil {
				return err
			}
			if err := d.RemoveMember(args[0]); err != nil {
				return fmt.Errorf("the member left the cluster, but the spec was not updated (run the command again): %w", err)
			}
			return a.removed(args[0], res)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", local.DefaultDir, "the directory of the running local cluster")
	cmd.Flags().BoolVar(&force, "force", false, "remove even when that leaves an even number of voting members")
	_ = cmd.MarkFlagDirname("dir")
	return cmd
}

func (a *App) upReplaceCmd() *cobra.Command {
	var (
		dir      string
		name     string
		force    bool
		dryRun   bool
		timeouts replaceTimeouts
	)
	cmd := &cobra.Command{
		Use:   "replace OLD [--name NEW]",
		Short: "Replace a member of the running local cluster with a new one on the next 127.0.0.x",
		Long: `The whole of 'etcdkit member replace' on the local cluster: check, snapshot,
remove OLD, add the new member (mN on the next 127.0.0.N unless --name) as a
learner, write its directory, put it in the spec in OLD's place (the running
'up' starts it), promote it once caught up, verify. --dry-run prints the
plan. Interrupted, running it again continues with the same new member.`,
		Args: exactArgs(1, "the member to replace"),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, c, t, err := a.upRunning(dir)
			if err != nil {
				return err
			}
			m, err := upNewMember(d, c, args[0], name)
			if err != nil {
				return err
			}
			o := replace.Options{
				Target: t, Old: args[0], New: replace.NewMember{Name: m.Name, PeerURL: m.PeerURL, ClientURL: m.ClientURL},
				Force: force, DryRun: dryRun, StateDir: d.BackupDir(), Backup: a.upBackup(d, t), Host: d.Host(m),
			}
			timeouts.apply(&o)
			return a.runReplace(cmd.Context(), o, formatTable, func(*ops.Written) {})
		},
	}
	cmd.Flags().StringVar(&dir, "dir", local.DefaultDir, "the directory of the running local cluster")
	cmd.Flags().StringVar(&name, "name", "", "the new member's name (default mN, N its address's last number)")
	cmd.Flags().BoolVar(&force, "force", false, "replace OLD even though it is healthy")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "check and print the plan; change nothing")
	timeouts.flags(cmd)
	_ = cmd.MarkFlagDirname("dir")
	return cmd
}

// upPrinter tells the operator what `up` is doing.
type upPrinter struct {
	app *App
	ctx context.Context
	dir string
}

func (p *upPrinter) Prepared(c *spec.Cluster, created bool) {
	verb := "starting"
	if created {
		verb = "created"
	}
	fmt.Fprintf(p.app.Err, "%s %d-member cluster %q in %s\n", verb, len(c.Members), c.Name, p.dir)
}

func (p *upPrinter) Ready(c *spec.Cluster, t *connect.Target, took time.Duration) {
	ss := ops.Status(p.ctx, t)
	hs := ops.Health(p.ctx, t)
	_ = print(p.app.Out, formatTable, nil, func() *table {
		tb := &table{header: []string{"NAME", "CLIENT URL", "LEADER", "HEALTHY"}}
		for i, m := range c.Members {
			tb.add(m.Name, m.ClientURL, yesNo(ss[i].IsLeader), yesNo(hs[i].Healthy))
		}
		return tb
	})
	fmt.Fprintf(p.app.Out, "\ncluster healthy in %v. To use the stock etcdctl:\n\n", took.Round(time.Millisecond))
	fmt.Fprintf(p.app.Out, "export ETCDCTL_ENDPOINTS=%s\n", strings.Join(t.Endpoints, ","))
	fmt.Fprintf(p.app.Out, "export ETCDCTL_CACERT=%s\n", t.CACert)
	fmt.Fprintf(p.app.Out, "export ETCDCTL_CERT=%s\n", t.Cert)
	fmt.Fprintf(p.app.Out, "export ETCDCTL_KEY=%s\n\n", t.Key)
	if isatty.IsTerminal(1) {
		fmt.Fprintf(p.app.Out, "Press Ctrl-C to stop the cluster; run `etcdkit up --dir %s` to start it again.\n", p.dir)
	}
}

func (p *upPrinter) Exited(e local.Exit) {
	if e.Removed {
		fmt.Fprintf(p.app.Err, "member %q was removed from the cluster and stopped; its log is %s\n", e.Name, e.Log)
		return
	}
	why := "exited"
	if e.Err != nil {
		why = e.Err.Error()
	}
	fmt.Fprintf(p.app.Err, "member %q stopped unexpectedly (%s); its log is %s:\n", e.Name, why, e.Log)
	for _, l := range e.LogTail {
		fmt.Fprintf(p.app.Err, "  %s\n", l)
	}
}

func (p *upPrinter) Reshaped(started, stopped []string, err error) {
	if len(stopped) > 0 {
		fmt.Fprintf(p.app.Err, "members no longer in the spec, stopped: %s\n", strings.Join(stopped, ", "))
	}
	if len(started) > 0 {
		fmt.Fprintf(p.app.Err, "members new in the spec, started: %s\n", strings.Join(started, ", "))
	}
	if err != nil {
		fmt.Fprintf(p.app.Err, "reshaping the cluster: %v\n", err)
	}
}

func (p *upPrinter) Stopping() {
	fmt.Fprintln(p.app.Err, "stopping members")
}
