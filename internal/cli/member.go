package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/etcdkit/etcdkit/internal/connect"
	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/local"
	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/ops/replace"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/snapshot"
	"github.com/etcdkit/etcdkit/internal/spec"
)

func (a *App) memberCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "member",
		Short: "Run a member, and list or change the members of a cluster",
		Long: `Membership changes are safe by default: each is refused when it would cost the
cluster its quorum, and preceded by a verified snapshot. New members join as
learners and are promoted once caught up. 'member replace' does the whole
replacement of a failed member as resumable steps.`,
	}
	cmd.AddCommand(a.memberRunCmd(), a.memberListCmd(), a.memberAddCmd(), a.memberRemoveCmd(),
		a.memberUpdateCmd(), a.memberPromoteCmd(), a.memberReplaceCmd())
	return cmd
}

func (a *App) memberListCmd() *cobra.Command {
	var (
		cf     clientFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List members: id, name, URLs, voter or learner, started, healthy, leader, raft index and lag",
		Long: `Lists every member of the cluster with what its own status says: voter or
learner, started or not (a member added but never run has no name yet; use its
ID), healthy (a linearizable read; a learner by its status), leader, raft
index and how far its applied index lags the leader's. When no quorum answers,
the list is one member's own view, a warning says so and the exit code is 3.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			t, err := a.target(cmd, &cf)
			if err != nil {
				return err
			}
			ms, err := ops.ListMembers(cmd.Context(), t)
			if err != nil {
				return err
			}
			if err := print(a.Out, output, ms, func() *table { return membersTable(ms.Members) }); err != nil {
				return err
			}
			if ms.LocalView {
				return fmt.Errorf("%w: no quorum answered; the list is one member's own view and may be stale", ops.ErrUnhealthy)
			}
			return nil
		},
	}
	addClientFlags(cmd, &cf)
	outputFlag(cmd, &output)
	return cmd
}

func membersTable(ms []ops.Member) *table {
	tb := &table{header: []string{"ID", "NAME", "STATUS", "ROLE", "PEER URLS", "CLIENT URLS", "HEALTHY", "LEADER", "RAFT INDEX", "LAG", "ERROR"}}
	for _, m := range ms {
		status, role := "started", "voter"
		if !m.Started {
			status = "unstarted"
		}
		if m.Learner {
			role = "learner"
		}
		index, lag := "-", "-"
		if m.RaftIndex > 0 {
			index, lag = strconv.FormatUint(m.RaftIndex, 10), strconv.FormatUint(m.Lag, 10)
		}
		errMsg := m.Error
		if !m.Started {
			errMsg = ""
		}
		tb.add(m.ID, dash(m.Name), status, role, strings.Join(m.PeerURLs, ","), dash(strings.Join(m.ClientURLs, ",")),
			yesNo(m.Healthy), yesNo(m.Leader), index, lag, errMsg)
	}
	return tb
}

// changeFlags are the flags of every membership change.
type changeFlags struct {
	cf           clientFlags
	backupDir    string
	skipSnapshot bool
	timeout      time.Duration
}

func addChangeFlags(cmd *cobra.Command, f *changeFlags) {
	addClientFlags(cmd, &f.cf)
	fs := cmd.Flags()
	fs.StringVar(&f.backupDir, "backup-dir", "", "where the snapshot taken before the change goes (default: backups/ of an etcdkit up dir, the spec's backup.dir, else "+defaultBackupDir+")")
	fs.BoolVar(&f.skipSnapshot, "skip-snapshot", false, "do not take a snapshot before the change (not advised)")
	fs.DurationVar(&f.timeout, "change-timeout", ops.DefaultChangeTimeout, "how long to retry a change etcd refuses for a while (right after a member reconnects)")
	_ = cmd.MarkFlagDirname("backup-dir")
}

// defaultBackupDir is beside the runbook's data dir, /var/lib/etcd/default.etcd.
var defaultBackupDir = filepath.Join(filepath.Dir(spec.DefaultDataDir), "backups")

// backupDir picks where snapshots and progress files go.
func (f *changeFlags) backupDirFor(t *connect.Target, c *spec.Cluster) string {
	switch d, isUp := local.SourceDir(t); {
	case f.backupDir != "":
		return f.backupDir
	case f.cf.fromKubeadm:
		return kubeadmBackupDir(&f.cf)
	case isUp:
		return d.BackupDir()
	case c != nil && c.Backup != nil && c.Backup.Dir != "":
		return c.Backup.Dir
	}
	return defaultBackupDir
}

// backup is the snapshot before a change, into dir.
func (a *App) backup(f *changeFlags, t *connect.Target, dir string) ops.Backup {
	if f.skipSnapshot {
		return nil
	}
	return func(ctx context.Context, reason string) (string, error) {
		info, err := snapshot.Save(ctx, t, dir+string(filepath.Separator), snapshot.SaveOptions{Reason: reason})
		if err != nil {
			return "", fmt.Errorf("%w (choose the directory with --backup-dir, or pass --skip-snapshot)", err)
		}
		if info.Warning != "" {
			fmt.Fprintf(a.Err, "warning: %s\n", info.Warning)
		}
		return info.Path, nil
	}
}

func (a *App) say(msg string) { fmt.Fprintln(a.Err, msg) }

// joinFlags say where a new member's files go and what they name.
type joinFlags struct {
	specPath string
	pkiDir   string
	out      string
	certDir  string
	dataDir  string
}

func addJoinFlags(cmd *cobra.Command, f *joinFlags) {
	fs := cmd.Flags()
	fs.StringVar(&f.specPath, "spec", "", "cluster spec with the settings every member shares (PKI layout, tuning); default: etcd's defaults, or the etcdkit up dir's")
	fs.StringVar(&f.pkiDir, "pki", "", "directory of the CA (ca.pem and ca-key.pem, or kubeadm's ca.crt and ca.key): issue the new member's server and peer certificates")
	fs.StringVar(&f.out, "out", "", "write the new member's etcd.yaml, and with --pki its certificates in ssl/, into this directory")
	fs.StringVar(&f.certDir, "cert-dir", "", "the certificate directory the config names, on the new member's host (default: the spec's pki.dir, "+spec.DefaultPKIDir+")")
	fs.StringVar(&f.dataDir, "data-dir", "", "the data dir the config names, on the new member's host (default: the spec's dataDir, "+spec.DefaultDataDir+")")
	_ = cmd.MarkFlagDirname("pki")
	_ = cmd.MarkFlagDirname("out")
	_ = cmd.MarkFlagFilename("spec", "yaml", "yml")
}

// host resolves where a new member's files go. With an `etcdkit up` dir
// they default to its member layout (DIR/members/NAME, the dir's CA).
func (a *App) host(f *joinFlags, t *connect.Target, nm replace.NewMember) (replace.OutDir, *spec.Cluster, error) {
	var c *spec.Cluster
	d, isUp := local.SourceDir(t)
	switch {
	case f.specPath != "":
		var warnings []string
		var err error
		c, warnings, err = spec.Load(f.specPath)
		for _, w := range warnings {
			fmt.Fprintf(a.Err, "warning: %s\n", w)
		}
		if err != nil {
			return replace.OutDir{}, nil, err
		}
	case isUp:
		var err error
		if c, err = d.Load(); err != nil {
			return replace.OutDir{}, nil, err
		}
	default:
		c = &spec.Cluster{}
		c.SetDefaults()
	}
	m := spec.Member{Name: nm.Name, PeerURL: nm.PeerURL, ClientURL: nm.ClientURL}
	if existing, ok := c.Member(nm.Name); ok && f.specPath != "" {
		m.DataDir, m.PKIDir = c.MemberDataDir(existing), c.MemberPKIDir(existing)
	} else {
		m.DataDir, m.PKIDir = c.DataDir, c.PKI.Dir
	}
	if isUp && f.specPath == "" {
		m = d.MemberSpec(nm)
		if f.out == "" {
			f.out = string(d.Member(nm.Name))
		}
		if f.pkiDir == "" {
			f.pkiDir = d.PKIDir()
		}
	}
	if u, err := etcdconf.ParseURL(nm.PeerURL); err == nil {
		m.Host = u.Hostname()
	}
	if f.certDir != "" {
		m.PKIDir = f.certDir
	}
	if f.dataDir != "" {
		m.DataDir = f.dataDir
	}
	h := replace.OutDir{Cluster: c, Member: m, Out: f.out}
	if f.pkiDir != "" {
		if f.out == "" {
			return h, c, usagef("--pki needs --out: the directory to write the new member's certificates into")
		}
		layout, err := pki.ParseLayout(c.PKI.Layout)
		if err != nil {
			return h, c, err
		}
		if h.CA, err = pki.LoadCA(layout.CA(f.pkiDir)); err != nil {
			return h, c, fmt.Errorf("--pki: %w", err)
		}
	}
	return h, c, nil
}

// wrote tells the operator where the new member's files are and what to
// copy where.
func (a *App) wrote(h replace.OutDir, w *ops.Written) {
	if w.ConfigPath == "" {
		return
	}
	fmt.Fprintf(a.Err, "wrote %s\n", strings.Join(w.Files, ", "))
	if w.CertDir != "" && filepath.Clean(w.CertDir) != filepath.Clean(h.Member.PKIDir) {
		fmt.Fprintf(a.Err, "copy %s/* to %s on %s: the config names them there\n", w.CertDir, h.Member.PKIDir, h.Member.Host)
	}
}

func checkURL(flag, u string) error {
	if u == "" {
		return usagef("--%s is required", flag)
	}
	if _, err := etcdconf.ParseURL(u); err != nil {
		return usagef("--%s: %v", flag, err)
	}
	return nil
}

func (a *App) memberAddCmd() *cobra.Command {
	var (
		f          changeFlags
		jf         joinFlags
		peerURLs   []string
		clientURLs []string
		voter      bool
	)
	cmd := &cobra.Command{
		Use:   "add NAME --peer-urls URL [--client-urls URL] [--voter] [--out DIR --pki DIR]",
		Short: "Add a member (as a learner by default) and print its config",
		Long: `Adds a member as a learner (--voter adds a voting member at once, which raises
the quorum before the member has started) after a snapshot, and prints its
etcd config: initial-cluster from the live member list and
initial-cluster-state existing. --out DIR writes it to DIR/etcd.yaml; with
--pki DIR (the CA's directory) the member's server and peer certificates for
the hosts of its URLs go to DIR/ssl.

Refused when the cluster has lost quorum, when etcd would not accept the
member (a quorum of the grown cluster must be connected), and when the name or
a URL belongs to another member. Adding a member that is already there with
the same peer URL reports it and changes nothing.

Then start it on its host ('etcdkit member run --config etcd.yaml') and
promote it: 'etcdkit member promote NAME --wait'.`,
		Args: exactArgs(1, "the new member's name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if len(peerURLs) != 1 {
				return usagef("--peer-urls takes one URL (https://HOST:2380); got %d", len(peerURLs))
			}
			if err := checkURL("peer-urls", peerURLs[0]); err != nil {
				return err
			}
			if len(clientURLs) == 0 {
				u, _ := etcdconf.ParseURL(peerURLs[0])
				clientURLs = []string{u.Scheme + "://" + u.Hostname() + ":2379"}
			}
			if len(clientURLs) != 1 {
				return usagef("--client-urls takes one URL (https://HOST:2379); got %d", len(clientURLs))
			}
			if err := checkURL("client-urls", clientURLs[0]); err != nil {
				return err
			}
			t, err := a.target(cmd, &f.cf)
			if err != nil {
				return err
			}
			nm := replace.NewMember{Name: name, PeerURL: peerURLs[0], ClientURL: clientURLs[0]}
			h, c, err := a.host(&jf, t, nm)
			if err != nil {
				return err
			}
			res, err := ops.Add(cmd.Context(), t, ops.AddOptions{
				Name: name, PeerURLs: peerURLs, ClientURLs: clientURLs, Voter: voter,
				Backup: a.backup(&f, t, f.backupDirFor(t, c)), Timeout: f.timeout, Progress: a.say,
			})
			if err != nil {
				return err
			}
			w, err := h.Write(cmd.Context(), res.InitialCluster, nil)
			if err != nil {
				return fmt.Errorf("%s was added, but its files were not written (run the command again to write them): %w", res.Member.Label(), err)
			}
			role := "a learner"
			if !res.Member.Learner {
				role = "a voting member"
			}
			if res.Existing {
				fmt.Fprintf(a.Err, "member %q (id %s) is already in the cluster as %s: nothing changed\n", name, res.Member.ID, role)
			} else {
				fmt.Fprintf(a.Err, "added member %q (id %s) as %s\n", name, res.Member.ID, role)
			}
			if res.Snapshot != "" {
				fmt.Fprintf(a.Err, "snapshot before the change: %s\n", res.Snapshot)
			}
			a.wrote(h, w)
			if _, err := a.Out.Write(w.YAML); err != nil {
				return err
			}
			fmt.Fprintf(a.Err, "next: start it (%s)", h.StartHint())
			if res.Member.Learner {
				fmt.Fprintf(a.Err, ", then promote it: etcdkit member promote %s --wait", name)
			}
			fmt.Fprintln(a.Err)
			return nil
		},
	}
	addChangeFlags(cmd, &f)
	addJoinFlags(cmd, &jf)
	cmd.Flags().StringSliceVar(&peerURLs, "peer-urls", nil, "the new member's peer URL (https://HOST:2380)")
	cmd.Flags().StringSliceVar(&clientURLs, "client-urls", nil, "the new member's client URL (default https://HOST:2379, HOST from --peer-urls)")
	cmd.Flags().BoolVar(&voter, "voter", false, "add a voting member instead of a learner (raises the quorum before the member has started)")
	return cmd
}

func (a *App) memberRemoveCmd() *cobra.Command {
	var (
		f     changeFlags
		force bool
	)
	cmd := &cobra.Command{
		Use:   "remove NAME|ID",
		Short: "Remove a member, safely: never the quorum, never the last, leader moved first",
		Long: `Removes a member after a snapshot. Refused when the remaining voting members
would not have a healthy quorum, when it is the last member, and without
--force when it would leave an even number of voting members (which tolerate no
more failures than one fewer). A leader hands leadership to the most
up-to-date healthy member first, so the cluster does not stall for an election
(a write in flight at the instant of the hand-over may still time out: etcd
drops proposals during a transfer). A member that is not there is reported as
already removed.

The removed member stops by itself. Its data dir must be emptied before it can
join again.`,
		Args: exactArgs(1, "the member's name or ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := a.target(cmd, &f.cf)
			if err != nil {
				return err
			}
			res, err := ops.Remove(cmd.Context(), t, args[0], ops.RemoveOptions{
				Force: force, Backup: a.backup(&f, t, f.backupDirFor(t, nil)), Timeout: f.timeout, Progress: a.say,
			})
			if err != nil {
				return err
			}
			return a.removed(args[0], res)
		},
	}
	addChangeFlags(cmd, &f)
	cmd.Flags().BoolVar(&force, "force", false, "remove even when that leaves an even number of voting members")
	return cmd
}

// removed reports a removal.
func (a *App) removed(ref string, res *ops.RemoveResult) error {
	if res.AlreadyRemoved {
		var names []string
		for _, m := range res.Members {
			names = append(names, m.Ref())
		}
		_, err := fmt.Fprintf(a.Out, "no member %q in the cluster (members: %s): already removed, nothing to do\n", ref, strings.Join(names, ", "))
		return err
	}
	if res.Snapshot != "" {
		fmt.Fprintf(a.Err, "snapshot before the change: %s\n", res.Snapshot)
	}
	if res.LeaderMovedTo != "" {
		fmt.Fprintf(a.Out, "moved leadership to %q\n", res.LeaderMovedTo)
	}
	_, err := fmt.Fprintf(a.Out, "removed %s, id %s\n", res.Member.Label(), res.Member.ID)
	return err
}

func (a *App) memberUpdateCmd() *cobra.Command {
	var (
		f        changeFlags
		peerURLs []string
	)
	cmd := &cobra.Command{
		Use:   "update NAME|ID --peer-urls URL",
		Short: "Change a member's peer URLs",
		Long: `Changes the peer URLs the cluster dials a member on, after a snapshot. The
member must then listen there: update listen-peer-urls and
initial-advertise-peer-urls in its config and restart it, with a peer
certificate that names the new host. Refused without quorum or when another
member has the URL; a member that has the URLs already is left alone.`,
		Args: exactArgs(1, "the member's name or ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(peerURLs) == 0 {
				return usagef("--peer-urls is required")
			}
			for _, u := range peerURLs {
				if err := checkURL("peer-urls", u); err != nil {
					return err
				}
			}
			t, err := a.target(cmd, &f.cf)
			if err != nil {
				return err
			}
			res, err := ops.Update(cmd.Context(), t, args[0], ops.UpdateOptions{
				PeerURLs: peerURLs, Backup: a.backup(&f, t, f.backupDirFor(t, nil)), Timeout: f.timeout, Progress: a.say,
			})
			if err != nil {
				return err
			}
			if res.Unchanged {
				_, err = fmt.Fprintf(a.Out, "%s has these peer URLs already: nothing to do\n", res.Member.Label())
				return err
			}
			if res.Snapshot != "" {
				fmt.Fprintf(a.Err, "snapshot before the change: %s\n", res.Snapshot)
			}
			_, err = fmt.Fprintf(a.Out, "updated %s; restart it listening on %s\n", res.Member.Label(), strings.Join(peerURLs, ","))
			return err
		},
	}
	addChangeFlags(cmd, &f)
	cmd.Flags().StringSliceVar(&peerURLs, "peer-urls", nil, "the member's new peer URLs")
	return cmd
}

func (a *App) memberPromoteCmd() *cobra.Command {
	var (
		f       changeFlags
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "promote NAME|ID [--wait]",
		Short: "Promote a learner to a voting member once it has caught up",
		Long: `Promotes a learner after a snapshot. etcd accepts it once the learner has 90%
of the leader's log. Without --wait a learner that has not started, is not
healthy or has not caught up is refused, with how far it is; with --wait the
command waits (up to --timeout) for it to start and catch up, showing its
applied index against the leader's on a terminal. A voting member is reported
as already promoted.`,
		Args: exactArgs(1, "the learner's name or ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := a.target(cmd, &f.cf)
			if err != nil {
				return err
			}
			bar := a.catchUpBar(args[0])
			res, err := ops.Promote(cmd.Context(), t, args[0], ops.PromoteOptions{
				Wait: wait, Timeout: timeout, Backup: a.backup(&f, t, f.backupDirFor(t, nil)),
				Progress: a.say, CatchUp: bar.update,
			})
			bar.done()
			if err != nil {
				return err
			}
			if res.AlreadyVoter {
				_, err = fmt.Fprintf(a.Out, "%s is a voting member already: nothing to do\n", res.Member.Label())
				return err
			}
			if res.Snapshot != "" {
				fmt.Fprintf(a.Err, "snapshot before the change: %s\n", res.Snapshot)
			}
			_, err = fmt.Fprintf(a.Out, "promoted %s to a voting member\n", res.Member.Label())
			return err
		},
	}
	addChangeFlags(cmd, &f)
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the learner to start and catch up, with progress on a terminal")
	cmd.Flags().DurationVar(&timeout, "timeout", ops.DefaultPromoteWait, "how long --wait waits")
	return cmd
}

func (a *App) memberReplaceCmd() *cobra.Command {
	var (
		f        changeFlags
		jf       joinFlags
		nm       replace.NewMember
		force    bool
		dryRun   bool
		output   string
		timeouts replaceTimeouts
	)
	cmd := &cobra.Command{
		Use:   "replace OLD --name NEW --peer-url URL --client-url URL [--pki DIR] [--out DIR] [--dry-run]",
		Short: "Replace a failed member with a new one, as resumable steps",
		Long: `Replaces member OLD (name, ID or peer URL) with a new member, step by step:

  1. check quorum and health of the remaining members (and that OLD is down,
     unless --force; and that NEW's name and URLs are free)
  2. take a snapshot (into --backup-dir)
  3. remove OLD (leadership is moved away first if it leads)
  4. add NEW as a learner
  5. write NEW's config (initial-cluster from the live member list,
     initial-cluster-state existing) and, with --pki, its certificates to --out
  6. wait for NEW to start: run 'etcdkit member run --config etcd.yaml' on its
     host (or let 'etcdkit up' start it: see 'etcdkit up replace')
  7. wait for NEW to catch up, and promote it
  8. verify every member is healthy, and print kube-apiserver's new
     --etcd-servers

OLD is removed before NEW is added, as etcd advises: adding first would raise
the quorum while OLD still counts. The plan is printed first; --dry-run prints
it and changes nothing. Progress is kept in a file in --backup-dir: if the
command is interrupted at any step, running it again continues from there.`,
		Args: exactArgs(1, "the member to replace (name, ID or peer URL)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			if nm.Name == "" {
				return usagef("--name is required: the new member's name")
			}
			if err := checkURL("peer-url", nm.PeerURL); err != nil {
				return err
			}
			if err := checkURL("client-url", nm.ClientURL); err != nil {
				return err
			}
			t, err := a.target(cmd, &f.cf)
			if err != nil {
				return err
			}
			var (
				host  replace.Host
				wrote func(*ops.Written)
				c     *spec.Cluster
			)
			kh, err := a.kubeadmHost(&f.cf, &jf, nm)
			switch {
			case err != nil:
				return err
			case kh != nil:
				host, wrote = kh, a.kubeadmWrote(kh)
			default:
				h, sc, err := a.host(&jf, t, nm)
				if err != nil {
					return err
				}
				host, wrote, c = h, func(w *ops.Written) { a.wrote(h, w) }, sc
			}
			dir := f.backupDirFor(t, c)
			o := replace.Options{
				Target: t, Old: args[0], New: nm, Force: force, DryRun: dryRun,
				StateDir: dir, Backup: a.backup(&f, t, dir), Host: host,
				ChangeTimeout: f.timeout,
			}
			timeouts.apply(&o)
			if err := a.runReplace(cmd.Context(), o, output, wrote); err != nil || kh == nil || dryRun || output != formatTable {
				return err
			}
			return a.kubeadmAPIServerNote(cmd.Context(), t, &f.cf)
		},
	}
	addChangeFlags(cmd, &f)
	addJoinFlags(cmd, &jf)
	outputFlag(cmd, &output)
	fs := cmd.Flags()
	fs.StringVar(&nm.Name, "name", "", "the new member's name")
	fs.StringVar(&nm.PeerURL, "peer-url", "", "the new member's peer URL (https://HOST:2380)")
	fs.StringVar(&nm.ClientURL, "client-url", "", "the new member's client URL (https://HOST:2379)")
	fs.BoolVar(&force, "force", false, "replace OLD even though it is healthy")
	fs.BoolVar(&dryRun, "dry-run", false, "check and print the plan; change nothing")
	timeouts.flags(cmd)
	return cmd
}

// replaceTimeouts are the waits of a replacement.
type replaceTimeouts struct{ start, catchUp time.Duration }

func (r *replaceTimeouts) flags(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&r.start, "start-timeout", replace.DefaultStartTimeout, "how long to wait for the new member to start")
	cmd.Flags().DurationVar(&r.catchUp, "catch-up-timeout", replace.DefaultCatchUpTimeout, "how long to wait for the new member to catch up")
}

func (r *replaceTimeouts) apply(o *replace.Options) {
	o.StartTimeout, o.CatchUpTimeout = r.start, r.catchUp
}

// runReplace runs a replacement (or an addition, for `up add`) and
// reports it: progress on stderr, the result on stdout.
func (a *App) runReplace(ctx context.Context, o replace.Options, output string, wrote func(*ops.Written)) error {
	planOut := a.Err
	if o.DryRun && output == formatTable {
		planOut = a.Out
	}
	p := &replacePrinter{app: a, planOut: planOut, bar: a.catchUpBar(o.New.Name), wrote: wrote,
		killAfter: a.Getenv(killAfterEnv)}
	o.Observer = p
	res, err := replace.Run(ctx, o)
	p.bar.done()
	if err != nil {
		return err
	}
	if output != formatTable {
		return print(a.Out, output, res, nil)
	}
	if o.DryRun {
		_, err := fmt.Fprintln(a.Out, "dry run: nothing was changed")
		return err
	}
	what := fmt.Sprintf("added member %q", o.New.Name)
	if res.Old != nil {
		what = fmt.Sprintf("replaced member %q with %q", res.Old.Ref(), o.New.Name)
	}
	if res.AlreadyDone {
		what = "nothing left to do: " + what + " before"
	}
	fmt.Fprintf(a.Out, "%s (id %s)\n", what, res.New.ID)
	if res.Snapshot != "" {
		fmt.Fprintf(a.Out, "snapshot before the change: %s\n", res.Snapshot)
	}
	var names []string
	for _, m := range res.Members {
		n := m.Ref()
		if !m.Healthy {
			n += " (NOT HEALTHY)"
		}
		names = append(names, n)
	}
	fmt.Fprintf(a.Out, "members: %s\n", strings.Join(names, ", "))
	for _, u := range res.Unhealthy {
		fmt.Fprintf(a.Err, "warning: %s; if it is lost, replace it next\n", u)
	}
	fmt.Fprintf(a.Out, "update kube-apiserver (and any load balancer) to:\n--etcd-servers=%s\n", res.EtcdServers)
	return nil
}

// killAfterEnv is a failpoint for tests: the command kills itself with
// SIGKILL right after the named step, as a crash or an operator's kill -9
// would, so tests can prove that running it again continues.
const killAfterEnv = "ETCDKIT_TEST_KILL_AFTER_STEP"

// replacePrinter shows a replacement's plan and steps.
type replacePrinter struct {
	app       *App
	planOut   io.Writer
	steps     int
	bar       *catchUpBar
	wrote     func(*ops.Written)
	killAfter string
}

func (p *replacePrinter) Plan(steps []replace.Step) {
	p.steps = len(steps)
	fmt.Fprintln(p.planOut, "plan:")
	for i, s := range steps {
		state := ""
		if s.Done {
			state = " [done]"
		}
		fmt.Fprintf(p.planOut, "  %d. %s%s: %s\n", i+1, s.Title, state, s.Action)
	}
}

func (p *replacePrinter) Begin(s replace.Step) {
	fmt.Fprintf(p.app.Err, "==> %s\n", s.Title)
}

func (p *replacePrinter) Done(s replace.Step) {
	if p.killAfter == s.Name {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}

func (p *replacePrinter) Note(msg string) { fmt.Fprintf(p.app.Err, "    %s\n", msg) }

func (p *replacePrinter) CatchUp(c ops.CatchUp) { p.bar.update(c) }

func (p *replacePrinter) Wrote(w *ops.Written) {
	if w.ConfigPath == "" {
		fmt.Fprintln(p.app.Err, "    the new member's etcd config (save it on its host and start it with `etcdkit member run --config FILE`):")
		_, _ = p.app.Out.Write(w.YAML)
		return
	}
	p.wrote(w)
}

// catchUpBar shows a learner's applied index against the leader's, on a
// terminal only.
type catchUpBar struct {
	w     io.Writer
	name  string
	shown bool
}

func (a *App) catchUpBar(name string) *catchUpBar {
	f, ok := a.Err.(*os.File)
	if !ok || !isatty.IsTerminal(f.Fd()) {
		return &catchUpBar{}
	}
	return &catchUpBar{w: a.Err, name: name}
}

func (b *catchUpBar) update(p ops.CatchUp) {
	if b.w == nil {
		return
	}
	b.shown = true
	if !p.Started {
		fmt.Fprintf(b.w, "\r  %s: waiting for it to start\033[K", b.name)
		return
	}
	pct := uint64(100)
	if p.Leader > 0 {
		pct = min(100, p.Learner*100/p.Leader)
	}
	fmt.Fprintf(b.w, "\r  %s: applied %d of the leader's %d (%d%%)\033[K", b.name, p.Learner, p.Leader, pct)
}

func (b *catchUpBar) done() {
	if b.w != nil && b.shown {
		fmt.Fprintln(b.w)
	}
}
