package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/etcdkit/etcdkit/internal/apply"
	"github.com/etcdkit/etcdkit/internal/remote"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// applyFlags are apply's flags; the names the messages print come from
// the flags themselves.
type applyFlags struct {
	file, caDir, backupDir, binary, logFile string
	dryRun, acceptNewHostKeys, allowRemove  bool
	concurrency                             int
	timeout, connectTimeout                 time.Duration
}

func (a *App) applyCmd() *cobra.Command {
	var f applyFlags
	cmd := &cobra.Command{
		Use:   "apply -f cluster.yaml [--dry-run] [--allow-remove]",
		Short: "Converge the hosts of a cluster spec over SSH: certificates, etcdkit, config, members, membership",
		Long: `Connects to every member's host over SSH (members[].host and ssh, then
~/.ssh/config and the SSH agent; host keys checked against known_hosts) and
makes it what the spec says, in titled phases: detect each host, read the
cluster, preflight checks, certificates (issued on this machine from the CA in
the spec's pki.dir, or --ca-dir; each host gets the CA bundle, its own server
and peer pairs and the client pair), the etcdkit binary, the member's config
(and unit, where systemd is PID 1), start, wait for health, membership changes
(new hosts join as learners and are promoted, one at a time, each after a
snapshot; members not in the spec are removed only with --allow-remove), a
rolling restart for changed settings, verify.

Nothing changes on any host before every host has been reached and has passed
the preflight checks (ports free or the member's own, data dir empty or this
member's, clocks within 1s, enough disk). Running it again changes nothing
and says so. --dry-run prints, host by host, every change it would make.

Where systemd is not PID 1 the member runs detached with a pid file; nothing
restarts it after a crash or reboot but running apply again. This machine
must reach the members' client URLs for health checks and membership
changes. A full debug log is kept (--log-file). See docs/apply.md.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, closeLog, err := a.applyOptions(cmd, &f)
			if err != nil {
				return err
			}
			defer closeLog()
			p := newApplyPrinter(a.Out, f.dryRun)
			o.Observer = p
			res, err := apply.Run(cmd.Context(), *o)
			if err != nil {
				return applyError(err, f.logFile)
			}
			p.summary(res, f.file, f.logFile)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&f.file, "filename", "f", "", "the cluster spec")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print every change per host and make none")
	fs.BoolVar(&f.acceptNewHostKeys, "accept-new-host-keys", false, "trust hosts not in known_hosts on first use and record their keys (a changed key is always refused)")
	fs.BoolVar(&f.allowRemove, "allow-remove", false, "remove members that are in the cluster but not in the spec")
	fs.IntVar(&f.concurrency, "concurrency", apply.DefaultConcurrency, "hosts worked on at once (membership changes and restarts are always one at a time)")
	fs.StringVar(&f.caDir, "ca-dir", "", "where the CA is on this machine (default: the spec's pki.dir); created when missing")
	fs.StringVar(&f.backupDir, "backup-dir", "", "where the snapshot taken before each membership change goes on this machine (default: the spec's backup.dir, else "+defaultBackupDir+")")
	fs.StringVar(&f.binary, "binary", "", "the etcdkit binary to install on the hosts (default: this one)")
	fs.StringVar(&f.logFile, "log-file", "", "the debug log (default: etcdkit/apply-NAME.log in the user cache directory)")
	fs.DurationVar(&f.timeout, "timeout", apply.DefaultTimeout, "how long to wait for members to be healthy, and for each join")
	fs.DurationVar(&f.connectTimeout, "connect-timeout", 15*time.Second, "how long to wait for each host's SSH connection and handshake")
	_ = cmd.MarkFlagFilename("filename", "yaml", "yml")
	_ = cmd.MarkFlagDirname("ca-dir")
	_ = cmd.MarkFlagDirname("backup-dir")
	return cmd
}

// applyOptions turns flags into apply.Options: the spec read and
// validated, defaults resolved, the debug log opened.
func (a *App) applyOptions(cmd *cobra.Command, f *applyFlags) (*apply.Options, func(), error) {
	if f.file == "" {
		return nil, nil, usagef("-f is required: the cluster spec, e.g. `etcdkit apply -f cluster.yaml` (see docs/apply.md)")
	}
	if f.concurrency < 1 {
		return nil, nil, usagef("invalid value %d for flag --concurrency; give 1 or more", f.concurrency)
	}
	if f.timeout <= 0 || f.connectTimeout <= 0 {
		return nil, nil, usagef("--timeout and --connect-timeout must be positive durations, e.g. 5m and 15s")
	}
	c, warnings, err := spec.Load(f.file)
	if err != nil {
		return nil, nil, err
	}
	for _, w := range warnings {
		fmt.Fprintf(a.Err, "warning: %s\n", w)
	}
	if err := apply.CheckSpec(c, f.file); err != nil {
		return nil, nil, err
	}
	if f.caDir == "" {
		f.caDir = c.PKI.Dir
	}
	if f.backupDir == "" {
		f.backupDir = defaultBackupDir
		if c.Backup != nil && c.Backup.Dir != "" {
			f.backupDir = c.Backup.Dir
		}
	}
	if f.binary == "" {
		if f.binary, err = a.Executable(); err != nil {
			return nil, nil, fmt.Errorf("find this etcdkit binary to install: %w; pass --binary", err)
		}
	}
	if f.logFile == "" {
		f.logFile = defaultApplyLog(c.Name)
	}
	for _, p := range []*string{&f.caDir, &f.backupDir, &f.binary, &f.logFile} {
		if abs, err := filepath.Abs(*p); err == nil {
			*p = abs
		}
	}
	log, closeLog, err := remote.NewDebugLog(f.logFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (choose another file with --log-file)", err)
	}
	log.Info("etcdkit apply", zap.Strings("args", os.Args), zap.String("spec", f.file), zap.Bool("dryRun", f.dryRun))
	o := &apply.Options{
		Spec: c, SpecPath: f.file, CADir: f.caDir, BackupDir: f.backupDir, Binary: f.binary,
		DryRun: f.dryRun, Concurrency: f.concurrency, AllowRemove: f.allowRemove, Timeout: f.timeout, Log: log,
		Remote: remote.Options{
			AcceptNewHostKeys:     f.acceptNewHostKeys,
			AcceptNewHostKeysHint: "--accept-new-host-keys",
			ConnectTimeout:        f.connectTimeout,
		},
		Rerun: rerun(cmd),
	}
	return o, func() { _ = closeLog() }, nil
}

// defaultApplyLog is the debug log's place when --log-file is not given.
func defaultApplyLog(cluster string) string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "etcdkit-apply-" + cluster + ".log"
	}
	return filepath.Join(dir, "etcdkit", "apply-"+cluster+".log")
}

// rerun is this command line without --dry-run: what a recovery hint says
// to run again.
func rerun(cmd *cobra.Command) string {
	words := []string{cmd.CommandPath()}
	if fl := cmd.Flags().Lookup("filename"); fl != nil {
		words = append(words, "-f", remote.Quote(fl.Value.String()))
	}
	cmd.Flags().Visit(func(fl *pflag.Flag) {
		switch {
		case fl.Name == "dry-run", fl.Name == "filename":
		case fl.Value.Type() == "bool":
			words = append(words, "--"+fl.Name)
		default:
			words = append(words, "--"+fl.Name, remote.Quote(fl.Value.String()))
		}
	})
	return strings.Join(words, " ")
}

// applyError adds where it failed, the recovery and the debug log to a
// failed run.
func applyError(err error, logFile string) error {
	var pe *apply.PhaseError
	if !errors.As(err, &pe) {
		return err
	}
	where := fmt.Sprintf("apply failed in phase %q", pe.Phase)
	if len(pe.Hosts) > 0 {
		where += " on " + strings.Join(pe.Hosts, ", ")
	}
	changed := "nothing was changed on any host"
	if pe.Changed {
		changed = "some hosts were changed before the failure (see above)"
	}
	return fmt.Errorf("%s:\n%w\n%s\nto recover: %s\nthe full debug log is %s", where, pe.Err, changed, pe.Recovery, logFile)
}

// applyPrinter shows a run as it goes: each phase, then one line per
// note or change, prefixed with the host. In a dry run the changes are
// printed together at the end, host by host.
type applyPrinter struct {
	mu     sync.Mutex
	w      io.Writer
	dryRun bool
}

func newApplyPrinter(w io.Writer, dryRun bool) *applyPrinter {
	return &applyPrinter{w: w, dryRun: dryRun}
}

func (p *applyPrinter) Phase(title string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "==> %s\n", title)
}

func (p *applyPrinter) Note(host, msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if host == "" {
		fmt.Fprintf(p.w, "    %s\n", msg)
		return
	}
	fmt.Fprintf(p.w, "    %s: %s\n", host, msg)
}

func (p *applyPrinter) Change(c remote.Change) {
	if p.dryRun {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "    %s: %s\n", c.Host, c.What)
}

func (p *applyPrinter) summary(res *apply.Result, file, logFile string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	plan := res.Plan
	n, hosts, local := len(plan.Changes()), 0, false
	for _, h := range plan.Hosts() {
		if h == apply.LocalHost {
			local = true
		} else {
			hosts++
		}
	}
	where := plural(hosts, "host")
	if local {
		where += " and this machine"
	}
	fmt.Fprintln(p.w)
	switch {
	case !res.Changed():
		fmt.Fprintf(p.w, "No changes: every host already matches %s.\n", file)
	case res.DryRun:
		fmt.Fprintf(p.w, "Dry run: nothing was changed. Apply would make %s on %s:\n", plural(n, "change"), where)
		printPlan(p.w, plan, append([]string{apply.LocalHost}, res.Hosts...))
	default:
		fmt.Fprintf(p.w, "Applied %s on %s.\n", plural(n, "change"), where)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(p.w, "warning: %s\n", w)
	}
	if !res.DryRun {
		fmt.Fprintf(p.w, "\nkube-apiserver flags (every API server host has the client certificate):\n")
		for _, l := range strings.Split(strings.TrimSpace(res.APIServerFlags), "\n") {
			fmt.Fprintf(p.w, "  %s\n", l)
		}
		fmt.Fprintf(p.w, "\nCheck it from here:\n  etcdkit health --endpoints %s --cacert %s --cert %s --key %s\n",
			res.EtcdServers, res.ClientCA, res.Client.Cert, res.Client.Key)
	}
	fmt.Fprintf(p.w, "The debug log is %s\n", logFile)
}

// printPlan writes the plan host by host: this machine, then the spec's
// hosts in its order, then any other (a member removed from the cluster).
func printPlan(w io.Writer, plan *remote.Plan, order []string) {
	for _, h := range plan.Hosts() {
		if !slices.Contains(order, h) {
			order = append(order, h)
		}
	}
	for _, h := range order {
		cs := plan.For(h)
		if len(cs) == 0 {
			continue
		}
		fmt.Fprintf(w, "  %s (%s):\n", h, cs[0].Addr)
		for _, c := range cs {
			fmt.Fprintf(w, "    - %s\n", c.What)
		}
	}
}
