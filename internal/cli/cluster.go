package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/local"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/snapshot"
	"github.com/etcdkit/etcdkit/internal/spec"
)

func (a *App) clusterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Whole-cluster disaster recovery: restore from a snapshot, recover from quorum loss",
	}
	cmd.AddCommand(a.restoreCmd("restore"), a.recoverCmd())
	return cmd
}

// restoreCmd is `cluster restore`, also reachable as `snapshot restore`.
func (a *App) restoreCmd(use string) *cobra.Command {
	var (
		specPath  string
		members   []string
		allLocal  bool
		o         snapshot.RestoreOptions
		output    string
		noBump    bool
		bumpFlag  = "bump-revision"
		tokenFlag = "initial-cluster-token"
	)
	cmd := &cobra.Command{
		Use:   use + " FILE --spec cluster.yaml (--member NAME | --all-local)",
		Short: "Restore a snapshot into the data dirs of a cluster's members",
		Long: `Restores a snapshot (etcdkit's or etcdctl's) into the data dir of each member
of the cluster spec that lives on this machine: --member NAME for one (run the
same command on every host), --all-local when every member's data dir is here.
Each member gets the full initial cluster of the spec and a new cluster token
derived from the database's sha256 (embedded in the snapshot), the same on
every host, so restored members form one new cluster and never mix with the
old one.

Every data dir is checked before any is touched, and each member is restored
into a staging dir while the snapshot is verified; a bad snapshot leaves
nothing behind. A non-empty data dir is refused unless --move-aside, which
renames it to DATADIR.before-restore-TIME (nothing is ever deleted). Members must be
stopped. By default the revision is bumped by 1,000,000,000 and marked
compacted (etcd's advice for Kubernetes and other watchers: no client sees the
revision go back; watchers re-list); --bump-revision 0 does neither.

Then start the members as usual; they form one cluster.`,
		Args: exactArgs(1, "one snapshot file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			if specPath == "" {
				return usagef("--spec is required: the cluster spec that names every member, its peer URL and data dir")
			}
			if (len(members) > 0) == allLocal {
				return usagef("name the members whose data dirs are on this machine: --member NAME (repeat it), or --all-local")
			}
			if noBump {
				o.RevisionBump = 0
			}
			c, warnings, err := spec.Load(specPath)
			for _, w := range warnings {
				fmt.Fprintf(a.Err, "warning: %s\n", w)
			}
			if err != nil {
				return err
			}
			if allLocal {
				for _, m := range c.Members {
					members = append(members, m.Name)
				}
			}
			o.Snapshot, o.Cluster, o.Members = args[0], c, members
			res, err := snapshot.Restore(o)
			if err != nil {
				return err
			}
			if output != formatTable {
				return print(a.Out, output, res, nil)
			}
			fmt.Fprintf(a.Out, "restored %s (revision %d, %d keys) with cluster token %s\n",
				args[0], res.Snapshot.Revision, res.Snapshot.TotalKeys, res.Token)
			if o.RevisionBump > 0 {
				fmt.Fprintf(a.Out, "revision bumped to %d and marked compacted\n", res.Revision)
			}
			fmt.Fprintln(a.Out)
			_ = print(a.Out, formatTable, nil, func() *table {
				tb := &table{header: []string{"MEMBER", "DATA DIR", "PREVIOUS DATA MOVED TO"}}
				for _, m := range res.Members {
					tb.add(m.Name, m.DataDir, dash(m.MovedAside))
				}
				return tb
			})
			fmt.Fprintf(a.Out, "\nNext: start the restored members as usual (systemctl start etcd, or etcdkit member run --config ...).\n")
			if !allLocal && len(res.Members) < len(c.Members) {
				fmt.Fprintf(a.Out, "On each other member's host restore the same file the same way:\n  etcdkit cluster restore %s --spec %s --member NAME", args[0], specPath)
				if cmd.Flags().Changed(bumpFlag) || noBump {
					fmt.Fprintf(a.Out, " --%s %d", bumpFlag, o.RevisionBump)
				}
				if cmd.Flags().Changed(tokenFlag) {
					fmt.Fprintf(a.Out, " --%s %s", tokenFlag, o.Token)
				}
				fmt.Fprintln(a.Out)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&specPath, "spec", "", "the cluster spec (cluster.yaml)")
	fs.StringSliceVar(&members, "member", nil, "restore this member's data dir (repeatable)")
	fs.BoolVar(&allLocal, "all-local", false, "restore every member of the spec: all data dirs are on this machine")
	fs.BoolVar(&o.MoveAside, "move-aside", false, "rename non-empty data dirs to DATADIR.before-restore-TIME instead of refusing")
	fs.Uint64Var(&o.RevisionBump, bumpFlag, snapshot.DefaultRevisionBump, "move the revision forward by this much and mark it compacted; 0 does neither")
	fs.BoolVar(&noBump, "no-bump-revision", false, "same as --bump-revision 0")
	fs.StringVar(&o.Token, tokenFlag, "", "the new cluster's token (default: the spec's name and the snapshot's sha256)")
	fs.BoolVar(&o.SkipHashCheck, "skip-hash-check", false, "accept a db file copied from a data dir (no embedded sha256)")
	outputFlag(cmd, &output)
	_ = cmd.MarkFlagFilename("spec", "yaml", "yml")
	return cmd
}

func (a *App) recoverCmd() *cobra.Command {
	var (
		name, configPath, backupDir string
		insecureHTTP                bool
		output                      string
	)
	cmd := &cobra.Command{
		Use:   "recover --member NAME --config FILE",
		Short: "Quorum loss: make the surviving member a one-member cluster with its data",
		Long: `For when most members are gone for good and the cluster has no quorum. Run
it on the surviving member's host, with the member stopped:

  1. it refuses while enough other members answer on their peer URLs that the
     cluster has a quorum (start the member normally then: it heals by itself);
  2. it copies the member's data dir to DATADIR.pre-recover-TIME;
  3. it starts the member once, in this process, with etcd's force-new-cluster
     (never written to a config: every start with it would shrink the cluster
     to one member again), checks it is a one-member cluster with a leader and
     its data, snapshots it, and stops it;
  4. it prints the commands that add the lost members back.

The copy, the snapshot and the etcd log of that start go to --backup-dir
(default: etcdkit.backup.dir of the config, else beside the data dir).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			if name == "" {
				return usagef("--member is required: the name of the surviving member")
			}
			if configPath == "" {
				return usagef("--config is required: the surviving member's etcd config (the file `etcdkit member run` reads)")
			}
			src, err := os.ReadFile(configPath)
			if err != nil {
				return usagef("read config: %w", err)
			}
			cfg, err := etcdconf.Parse(configPath, src)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.Err, "recovering member %q from %s (this starts it once as a one-member cluster)\n", name, cfg.DataDir)
			res, err := snapshot.Recover(cmd.Context(), snapshot.RecoverOptions{
				Member: name, Config: cfg, ConfigPath: configPath, Source: src,
				AllowInsecureHTTP: insecureHTTP, BackupDir: backupDir,
			})
			if err != nil {
				if errors.Is(err, snapshot.ErrQuorumReachable) {
					return fmt.Errorf("refusing to recover: %w", err)
				}
				return err
			}
			if output != formatTable {
				return print(a.Out, output, res, nil)
			}
			a.printRecovered(res, configPath)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&name, "member", "", "the surviving member's name")
	fs.StringVar(&configPath, "config", "", "the surviving member's etcd config file")
	fs.StringVar(&backupDir, "backup-dir", "", "where the data dir copy, the snapshot and the log go")
	fs.BoolVar(&insecureHTTP, "insecure-http", false, "allow plain-HTTP URLs on loopback addresses (as member run)")
	outputFlag(cmd, &output)
	_ = cmd.MarkFlagFilename("config", "yaml", "yml", "conf")
	return cmd
}

func (a *App) printRecovered(res *snapshot.RecoverResult, configPath string) {
	w := a.Out
	fmt.Fprintf(w, "member %q is now a one-member cluster with its data: revision %d, %d keys.\n", res.Survivor.Name, res.Revision, res.Keys)
	fmt.Fprintf(w, "  data dir as it was before:   %s\n", res.Copy)
	fmt.Fprintf(w, "  snapshot of recovered data: %s\n", res.Snapshot.Path)
	fmt.Fprintf(w, "  etcd log of the recovery:   %s\n\n", res.Log)
	fmt.Fprintf(w, "Next:\n  1. Start %s as usual (systemctl start etcd, or):\n       etcdkit member run --config %s\n", res.Survivor.Name, configPath)
	if len(res.Removed) == 0 {
		return
	}
	eps := strings.Join(res.Survivor.ClientURLs, ",")
	fmt.Fprintf(w, "  2. Add the lost members back, one at a time. Each starts with an EMPTY data dir\n")
	fmt.Fprintf(w, "     (move its old one aside) and the config 'member add' prints (initial-cluster-state: existing):\n")
	for i, m := range res.Removed {
		fmt.Fprintf(w, "       etcdkit member add %s --peer-urls %s --endpoints %s\n", m.Name, strings.Join(m.PeerURLs, ","), eps)
		fmt.Fprintf(w, "       # start %s, then:\n", m.Name)
		fmt.Fprintf(w, "       etcdkit member promote %s --wait --endpoints %s\n", m.Name, eps)
		if i < len(res.Removed)-1 {
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintf(w, "  3. Check: etcdkit health --endpoints %s\n", eps)
}

// upRestore is `up --restore FILE`: the local cluster's data replaced by a
// snapshot before `up` starts it.
func (a *App) upRestore(d local.Dir, file string, fresh bool, members int, alg pki.KeyAlgorithm) error {
	res, err := d.Restore(local.RestoreOptions{
		Snapshot: file, Fresh: fresh, RevisionBump: snapshot.DefaultRevisionBump,
		Create: local.CreateOptions{Members: members, KeyAlgorithm: alg},
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(a.Err, "restored %s (revision %d, %d keys; revision now %d, marked compacted) into %d member(s)\n",
		file, res.Snapshot.Revision, res.Snapshot.TotalKeys, res.Revision, len(res.Members))
	for _, m := range res.Members {
		if m.MovedAside != "" {
			fmt.Fprintf(a.Err, "  member %q: previous data moved to %s\n", m.Name, m.MovedAside)
		}
	}
	return nil
}
