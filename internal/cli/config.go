package cli

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/etcdkit/etcdkit/internal/fsutil"
	"github.com/etcdkit/etcdkit/internal/lint"
	"github.com/etcdkit/etcdkit/internal/render"
	"github.com/etcdkit/etcdkit/internal/spec"
)

func (a *App) configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Render a member's files from the cluster spec; lint the configs you already have",
		Long: `render writes every file a member needs from the cluster spec: etcd's YAML
config, the ETCD_* environment file, the systemd unit, a kubeadm static pod,
and the kube-apiserver and kubeadm settings that point at the cluster.

lint reads etcd YAML configs, ETCD_* environment files, systemd units and
kubeadm static pod manifests and reports what is wrong, each finding with a
rule id, file:line and the fix.`,
	}
	cmd.AddCommand(a.configRenderCmd(), a.configLintCmd())
	return cmd
}

func (a *App) configRenderCmd() *cobra.Command {
	var (
		specPath, memberName, formats, outDir, state, engine string
		opts                                                 render.Options
	)
	names := make([]string, 0, len(render.Formats()))
	for _, f := range render.Formats() {
		names = append(names, string(f))
	}
	cmd := &cobra.Command{
		Use:   "render --spec cluster.yaml --member NAME [--format FORMAT[,FORMAT...]|all] [--out DIR]",
		Short: "Render a member's etcd config, env file, systemd unit, static pod, or the API server's etcd settings",
		Long: `Renders files for one member of the cluster spec. Formats:

  yaml        etcd's config file (etcd --config-file, etcdkit member run --config)  etcd.yaml
  env         the same settings as ETCD_* variables for a unit's EnvironmentFile=     etcd.conf
  systemd     a Type=notify unit running etcdkit member run (--engine stock: etcd)   etcd.service
  static-pod  a kubeadm-style static pod running stock etcd                          manifests/etcd.yaml
  apiserver   kube-apiserver's --etcd-servers/--etcd-cafile/--etcd-certfile/...      kube-apiserver-etcd.flags
  kubeadm     kubeadm ClusterConfiguration etcd.external                             kubeadm-etcd-external.yaml

One format goes to stdout; with --out DIR each file is written (atomically)
under DIR with the name above, so --out /etc/kubernetes puts the static pod in
/etc/kubernetes/manifests. A member joining a running cluster needs
--state existing (and --initial-cluster with the live members, when the spec
lists more than will be running).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if specPath == "" {
				return usagef("--spec is required: the cluster spec (cluster.yaml)")
			}
			var fs []render.Format
			for _, f := range strings.Split(formats, ",") {
				if f = strings.TrimSpace(f); f == "all" {
					fs = append(fs, render.Formats()...)
					continue
				}
				pf, err := render.ParseFormat(f)
				if err != nil {
					return usagef("invalid value %q for flag --format; options are %s, all", f, strings.Join(names, ", "))
				}
				fs = append(fs, pf)
			}
			if len(fs) > 1 && outDir == "" {
				return usagef("--out DIR is required to render more than one format")
			}
			switch render.ClusterState(state) {
			case render.StateNew, render.StateExisting:
				opts.State = render.ClusterState(state)
			default:
				return usagef("invalid value %q for flag --state; options are new, existing", state)
			}
			e, err := render.ParseEngine(engine)
			if err != nil {
				return usagef("invalid value %q for flag --engine; options are etcdkit, stock", engine)
			}
			opts.Engine = e
			c, warnings, err := spec.Load(specPath)
			for _, w := range warnings {
				fmt.Fprintf(a.Err, "warning: %s\n", w)
			}
			if err != nil {
				return err
			}
			var m *spec.Member
			if memberName != "" {
				var ok bool
				if m, ok = c.Member(memberName); !ok {
					return usagef("%s has no member %q; members are %s", specPath, memberName, strings.Join(memberNames(c), ", "))
				}
			} else if needsMember(fs) {
				return usagef("--member is required for %s: one of %s", formats, strings.Join(memberNames(c), ", "))
			}
			opts.Source = specPath
			// Render everything before writing anything.
			var files []render.File
			for _, f := range fs {
				file, err := render.Render(c, m, f, opts)
				if err != nil {
					return err
				}
				files = append(files, file)
			}
			if outDir == "" {
				_, err := a.Out.Write(files[0].Data)
				return err
			}
			for _, f := range files {
				p := filepath.Join(outDir, f.Name)
				if err := fsutil.MkdirAll(filepath.Dir(p)); err != nil {
					return err
				}
				if err := fsutil.WriteFile(p, f.Data, fsutil.PublicFile); err != nil {
					return fmt.Errorf("write %s: %w", p, err)
				}
				fmt.Fprintf(a.Out, "wrote %s (%s)\n", p, f.Format)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&specPath, "spec", "", "the cluster spec")
	fl.StringVar(&memberName, "member", "", "the member to render for")
	fl.StringVar(&formats, "format", string(render.FormatYAML), "what to render: "+strings.Join(names, ", ")+", or all (comma-separated)")
	fl.StringVar(&outDir, "out", "", "write the files under this directory instead of stdout")
	fl.StringVar(&state, "state", string(render.StateNew), "initial-cluster-state: new (bootstrap with every spec member) or existing (join a running cluster)")
	fl.StringVar(&opts.InitialCluster, "initial-cluster", "", "initial-cluster for a joining member (name=peer-url,...; default: every spec member)")
	fl.StringVar(&engine, "engine", string(render.EngineEtcdkit), "what the systemd unit runs: etcdkit (member run) or stock (etcd with the env file)")
	fl.StringVar(&opts.Binary, "bin", "", "the binary the unit runs (default "+render.DefaultEtcdkitBinary+", or "+render.DefaultStockBinary+" with --engine stock)")
	fl.StringVar(&opts.ConfigPath, "config-path", "", "where the config is on the member's host, for the unit (default "+render.DefaultYAMLPath+", or "+render.DefaultEnvPath+" with --engine stock)")
	fl.StringVar(&opts.Image, "image", "", "the static pod's etcd image (default "+render.DefaultImage()+")")
	_ = cmd.MarkFlagFilename("spec", "yaml", "yml")
	_ = cmd.MarkFlagDirname("out")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions(append(names, "all"), cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("state", cobra.FixedCompletions([]string{"new", "existing"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("engine", cobra.FixedCompletions([]string{"etcdkit", "stock"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func needsMember(fs []render.Format) bool {
	for _, f := range fs {
		if f != render.FormatAPIServer && f != render.FormatKubeadm {
			return true
		}
	}
	return false
}

func memberNames(c *spec.Cluster) []string {
	var out []string
	for _, m := range c.Members {
		out = append(out, m.Name)
	}
	return out
}

// errLintFindings is lint's failure: the report has errors (or warnings
// with --strict). It exits 1, as linters do; unreadable files exit 2.
var errLintFindings = errors.New("lint found problems")

func (a *App) configLintCmd() *cobra.Command {
	var (
		output    string
		strict    bool
		listRules bool
		verbose   bool
	)
	cmd := &cobra.Command{
		Use:   "lint FILE...",
		Short: "Find mistakes in etcd configs, ETCD_* env files, systemd units and static pod manifests",
		Long: `Reads each file (kind detected by content: an ETCD_* environment file, etcd's
YAML config, a systemd unit, a kubeadm static pod manifest) and reports every
finding with a stable rule id, severity, file:line and the fix. A unit's
EnvironmentFile= and --config files are linted too when they exist.

Certificate and key files the configs name are checked on this host, and
certificates are compared with the addresses they must serve, so lint a
member's files on that member. Exit code 1 when there are errors (or, with
--strict, warnings); 2 when a file cannot be read. --rules lists the rules.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			if listRules {
				rules := lint.Rules()
				return print(a.Out, output, rules, func() *table {
					t := &table{header: []string{"RULE", "SEVERITY", "APPLIES TO", "WHAT"}}
					for _, r := range rules {
						t.add(r.ID, string(r.Severity), r.Applies, r.What)
					}
					return t
				})
			}
			if len(args) == 0 {
				return usagef("%s takes one or more files", cmd.CommandPath())
			}
			r, err := lint.Files(args)
			if err != nil {
				return usageError{err}
			}
			if strict {
				r.Strict()
			}
			if output != formatTable {
				if err := print(a.Out, output, r, nil); err != nil {
					return err
				}
			} else {
				a.printFindings(r, verbose)
			}
			if errs, warns := r.Counts(); errs > 0 {
				return fmt.Errorf("%w: %s, %s in %d file(s)", errLintFindings, plural(errs, "error"), plural(warns, "warning"), len(r.Files))
			}
			return nil
		},
	}
	outputFlag(cmd, &output)
	cmd.Flags().BoolVar(&strict, "strict", false, "treat warnings as errors")
	cmd.Flags().BoolVar(&listRules, "rules", false, "list the rules and exit")
	cmd.Flags().BoolVar(&verbose, "verbose", false, "also list the files that have no findings, and what each was read as")
	return cmd
}

// printFindings writes findings the way compilers do, so editors can jump
// to them: FILE:LINE: severity [rule] KEY: problem, then the fix.
func (a *App) printFindings(r *lint.Report, verbose bool) {
	for _, f := range r.Findings {
		key := ""
		if f.Key != "" {
			key = f.Key + ": "
		}
		fmt.Fprintf(a.Out, "%s: %s [%s] %s%s\n", f.Location(), f.Severity, f.Rule, key, f.Message)
		if f.Fix != "" {
			fmt.Fprintf(a.Out, "    fix: %s\n", f.Fix)
		}
	}
	if verbose {
		for _, f := range r.Files {
			via := ""
			if f.Via != "" {
				via = ", named by " + f.Via
			}
			fmt.Fprintf(a.Out, "read %s as %s%s\n", f.File, f.Kind, via)
		}
	}
	if errs, warns := r.Counts(); errs == 0 && warns == 0 {
		fmt.Fprintf(a.Out, "no problems found in %d file(s)\n", len(r.Files))
	} else if errs == 0 {
		fmt.Fprintf(a.Out, "%s in %d file(s)\n", plural(warns, "warning"), len(r.Files))
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
