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
	why := "exited"
	if e.Err != nil {
		why = e.Err.Error()
	}
	fmt.Fprintf(p.app.Err, "member %q stopped unexpectedly (%s); its log is %s:\n", e.Name, why, e.Log)
	for _, l := range e.LogTail {
		fmt.Fprintf(p.app.Err, "  %s\n", l)
	}
}

func (p *upPrinter) Stopping() {
	fmt.Fprintln(p.app.Err, "stopping members")
}
