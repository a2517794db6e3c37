package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/etcdkit/etcdkit/internal/connect"
	"github.com/etcdkit/etcdkit/internal/kubeadm"
	"github.com/etcdkit/etcdkit/internal/lint"
	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/ops/replace"
	"github.com/etcdkit/etcdkit/internal/pki"
)

func (a *App) kubeadmCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kubeadm",
		Short: "Stacked etcd on a kubeadm control plane: inspect, prepare-member, apiserver-endpoints, config",
		Long: `kubeadm runs etcd as a static pod from /etc/kubernetes/manifests/etcd.yaml,
with certificates in /etc/kubernetes/pki/etcd. Every client command (health,
status, member, snapshot...) finds that manifest when no endpoint or TLS flag
is given, and connects to the member with the health-check client certificate
(--kubeadm-manifest names another manifest; --kubeadm-root reads a copy of a
node's tree). These commands work on the manifests themselves. See
docs/kubeadm.md.`,
	}
	cmd.AddCommand(a.kubeadmInspectCmd(), a.kubeadmConfigCmd(), a.kubeadmPrepareCmd(), a.kubeadmAPIServerCmd())
	return cmd
}

// manifestError makes a bad or missing manifest a usage error (exit 2).
func manifestError(err error) error {
	if errors.Is(err, kubeadm.ErrBadManifest) || errors.Is(err, kubeadm.ErrNoManifest) {
		return usageError{err}
	}
	return err
}

func (a *App) kubeadmInspectCmd() *cobra.Command {
	var (
		kf     kubeadmFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "inspect",
		Short: "The member this node runs: URLs, flags, data dir, certificate expiry, lint findings",
		Long: `Reads this node's etcd manifest and reports the member it runs (name, image,
client and peer URLs, initial cluster), its etcd command line, its data dir,
every etcd certificate of the node as 'etcdkit pki check' sees it (CA, server
and peer against the member's URLs, healthcheck-client, apiserver-etcd-client:
chain, key, usages, expiry) and what 'etcdkit config lint' finds in the
manifest, plus kube-apiserver's --etcd-servers when its manifest is beside.
Only files are read, so it works while etcd is down. Exit code 1 when there
is an error finding.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			root, manifest, _ := kf.location()
			in, err := kubeadm.Inspect(root, manifest, time.Now())
			if err != nil {
				return manifestError(err)
			}
			if output != formatTable {
				if err := print(a.Out, output, in, nil); err != nil {
					return err
				}
			} else {
				a.printInspection(in)
			}
			if n := in.Errors(); n > 0 {
				return fmt.Errorf("%s in %s; see the findings above", plural(n, "error"), in.File)
			}
			return nil
		},
	}
	kf.add(cmd)
	outputFlag(cmd, &output)
	return cmd
}

func (a *App) printInspection(in *kubeadm.Inspection) {
	m := in.Member
	fmt.Fprintf(a.Out, "member %s (%s)\n", m.Name, in.File)
	tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
	row := func(k string, v ...string) {
		if s := strings.Join(v, ","); s != "" {
			fmt.Fprintf(tw, "  %s\t%s\n", k, s)
		}
	}
	row("image", m.Image)
	row("client URLs", m.ClientURLs...)
	row("listen clients", m.ListenClientURLs...)
	row("peer URLs", m.PeerURLs...)
	row("listen peers", m.ListenPeerURLs...)
	row("metrics", m.MetricsURLs...)
	row("initial cluster", strings.Join(m.InitialCluster, ",")+" (state "+m.InitialClusterState+")")
	d := in.DataDir
	switch {
	case d.HasData:
		row("data dir", fmt.Sprintf("%s (database %s)", d.Path, humanBytes(d.DBSize)))
	case d.Exists:
		row("data dir", d.Path+" (no member data yet)")
	default:
		row("data dir", d.Path+" (missing)")
	}
	if api := in.APIServer; api != nil {
		row("kube-apiserver", kubeadm.EtcdServersFlag+"="+strings.Join(api.EtcdServers, ",")+" ("+api.File+")")
	}
	tw.Flush()
	fmt.Fprintln(a.Out, "\nflags:")
	for _, f := range in.Flags {
		fmt.Fprintf(a.Out, "  %s\n", f)
	}
	fmt.Fprintln(a.Out, "\ncertificates:")
	if in.PKI != nil {
		printCheck(a.Out, in.PKI)
	} else {
		fmt.Fprintln(a.Out, "  none found: the manifest names no --trusted-ca-file")
	}
	fmt.Fprintln(a.Out, "\nmanifest:")
	if len(in.Findings) == 0 {
		fmt.Fprintf(a.Out, "no problems found in %s\n", in.File)
		return
	}
	a.printFindings(&lint.Report{Files: []lint.FileKind{{File: in.File, Kind: lint.KindStaticPod}}, Findings: in.Findings}, false)
}

func (a *App) kubeadmConfigCmd() *cobra.Command {
	var kf kubeadmFlags
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the member's etcd config (etcd's YAML format), read from the manifest's command line",
		Long: `Prints the etcd config the manifest's etcd command line amounts to, in etcd's
YAML config format, so commands that take a member's config work on a kubeadm
member: 'etcdkit member run --config', 'etcdkit pki check --config',
'etcdkit cluster recover --config'. With --kubeadm-root, the paths in it are
under the root.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			root, manifest, _ := kf.location()
			m, err := kubeadm.Load(root, manifest)
			if err != nil {
				return manifestError(err)
			}
			for _, p := range m.Problems {
				fmt.Fprintf(a.Err, "warning: %v (left out)\n", p)
			}
			data, err := m.Rooted().Marshal()
			if err != nil {
				return err
			}
			fmt.Fprintf(a.Out, "# etcd config of member %q, read from %s by etcdkit.\n", m.Name(), m.File)
			_, err = a.Out.Write(data)
			return err
		},
	}
	kf.add(cmd)
	return cmd
}

func (a *App) kubeadmPrepareCmd() *cobra.Command {
	var (
		f                    changeFlags
		name, address, image string
		pkiDir, dataDir      string
		template             string
		clientPort, peerPort int
		validity, timeout    time.Duration
		wait                 bool
	)
	cmd := &cobra.Command{
		Use:   "prepare-member --name NAME --advertise-address IP --endpoints URL [--wait]",
		Short: "On a new control-plane node: issue its etcd certificates, add it as a learner, write its etcd manifest",
		Long: `Makes this node an etcd member of a running kubeadm cluster, the way kubeadm's
join does, with etcdkit's safety checks:

  1. with the etcd CA of the cluster in --pki/etcd (ca.crt and ca.key, copied
     from a control-plane node), issue the node's server and peer certificates
     with kubeadm's SAN rules (node name, localhost, the advertise address,
     127.0.0.1, ::1) and its healthcheck-client certificate; fitting ones the
     node has already are kept;
  2. take a snapshot and add the member as a learner (refused when the
     cluster has lost quorum, or the name or URLs are another member's);
  3. write /etc/kubernetes/manifests/etcd.yaml with
     initial-cluster-state=existing and initial-cluster from the live member
     list, after the certificates: the kubelet starts etcd once it appears;
  4. with --wait, wait for the learner to catch up and promote it.

--endpoints names a member of the cluster (this node has no manifest yet).
--template takes another control-plane node's etcd.yaml, so the image,
tuning flags and volumes are the cluster's; otherwise the manifest is the one
kubeadm writes. Running it again after success changes nothing.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nm, err := prepareMember(name, address, clientPort, peerPort)
			if err != nil {
				return err
			}
			root, manifest, _ := f.cf.kubeadm.location()
			etcdPKI := pkiDir + "/etcd"
			var tmpl *kubeadm.Manifest
			if template != "" {
				if tmpl, err = kubeadm.Load("", template); err != nil {
					return manifestError(fmt.Errorf("--template: %w", err))
				}
			}
			existing, err := kubeadm.Load(root, manifest)
			switch {
			case errors.Is(err, kubeadm.ErrNoManifest):
				existing = nil
			case err != nil:
				return manifestError(err)
			case existing.Name() != nm.Name || !slices.Contains(existing.PeerURLs(), nm.PeerURL):
				return usagef("%s already runs member %q (%s): this node is an etcd member already; to make it another one, remove that member (etcdkit member remove %s) and move the manifest away first",
					existing.File, existing.Name(), strings.Join(existing.PeerURLs(), ","), existing.Name())
			}
			// The CA key is needed only for what the node lacks.
			ca, caErr := pki.OpenCA(pki.LayoutKubeadm, root.Path(etcdPKI))
			node := kubeadm.Node{Root: root, PKIDir: etcdPKI, Manifest: manifest, CA: ca, Validity: validity}
			files, err := node.Plan(nm)
			if errors.Is(err, kubeadm.ErrNoCA) && caErr != nil {
				return usagef("%v; %v; copy the cluster's etcd CA (ca.crt and ca.key of %s) from a control-plane node into %s first, as kubeadm join --control-plane --certificate-key does",
					err, caErr, etcdPKI, root.Path(etcdPKI))
			}
			if err != nil {
				return usageError{err}
			}
			t, cleanup, err := a.joinTarget(&f.cf, files)
			if err != nil {
				return err
			}
			defer cleanup()
			backupDir := f.backupDir
			if backupDir == "" {
				backupDir = kubeadmBackupDir(&f.cf)
			}
			res, err := ops.Add(cmd.Context(), t, ops.AddOptions{
				Name: nm.Name, PeerURLs: []string{nm.PeerURL}, ClientURLs: []string{nm.ClientURL},
				Backup: a.backup(&f, t, backupDir), Timeout: f.timeout, Progress: a.say,
			})
			if err != nil {
				return err
			}
			if res.Existing {
				fmt.Fprintf(a.Err, "member %q (id %s) is in the cluster already\n", nm.Name, res.Member.ID)
			} else {
				fmt.Fprintf(a.Err, "added member %q (id %s) as a learner\n", nm.Name, res.Member.ID)
			}
			if res.Snapshot != "" {
				fmt.Fprintf(a.Err, "snapshot before the change: %s\n", res.Snapshot)
			}
			if existing != nil {
				fmt.Fprintf(a.Out, "%s runs member %q already: nothing written\n", existing.File, nm.Name)
			} else {
				data, err := kubeadm.NewManifest(tmpl, nm, res.InitialCluster, kubeadm.RenderOptions{Image: image, PKIDir: etcdPKI, DataDir: dataDir})
				if err != nil {
					return err
				}
				w, err := files.Write(data)
				if err != nil {
					return fmt.Errorf("%s was added, but its files were not written (run the command again to write them): %w", res.Member.Label(), err)
				}
				for _, k := range files.Kept() {
					fmt.Fprintf(a.Err, "kept %s: it fits\n", k)
				}
				for _, f := range w.Files {
					fmt.Fprintf(a.Out, "wrote %s\n", f)
				}
			}
			if !wait {
				if res.Member.Learner {
					fmt.Fprintf(a.Out, "next: the kubelet starts etcd from %s; then promote it: etcdkit member promote %s --wait\n", manifest, nm.Name)
				}
				return nil
			}
			bar := a.catchUpBar(nm.Name)
			// By ID: a member that has not started has no name yet.
			pres, err := ops.Promote(cmd.Context(), t, res.Member.ID, ops.PromoteOptions{Wait: true, Timeout: timeout, Progress: a.say, CatchUp: bar.update})
			bar.done()
			if err != nil {
				return err
			}
			if !pres.AlreadyVoter {
				fmt.Fprintf(a.Out, "promoted %s to a voting member\n", pres.Member.Label())
			}
			fmt.Fprintf(a.Out, "next: point kube-apiserver at every member: etcdkit kubeadm apiserver-endpoints --apply (on each control-plane node)\n")
			return nil
		},
	}
	addChangeFlags(cmd, &f)
	fs := cmd.Flags()
	fs.StringVar(&name, "name", "", "the member's name: the node name, as kubeadm names members")
	fs.StringVar(&address, "advertise-address", "", "the node's IP address the other members and the API servers reach it at")
	fs.IntVar(&clientPort, "client-port", 2379, "etcd's client port")
	fs.IntVar(&peerPort, "peer-port", 2380, "etcd's peer port")
	fs.StringVar(&pkiDir, "pki", kubeadm.PKIDir, "kubeadm's certificate directory on this node; the etcd CA is in its etcd/")
	fs.StringVar(&dataDir, "data-dir", kubeadm.DataDir, "etcd's data dir on this node")
	fs.StringVar(&image, "image", "", "the etcd image (default registry.k8s.io/etcd at etcdkit's etcd version); --template's wins")
	fs.StringVar(&template, "template", "", "another control-plane node's etcd.yaml to make this one from (its image, flags and volumes)")
	fs.DurationVar(&validity, "validity", kubeadm.DefaultValidity, "how long new certificates are valid (kubeadm's: a year)")
	fs.BoolVar(&wait, "wait", false, "wait for the learner to start and catch up, and promote it")
	fs.DurationVar(&timeout, "timeout", ops.DefaultPromoteWait, "how long --wait waits")
	_ = cmd.MarkFlagDirname("pki")
	_ = cmd.MarkFlagFilename("template", "yaml", "yml")
	return cmd
}

// prepareMember checks prepare-member's flags.
func prepareMember(name, address string, clientPort, peerPort int) (replace.NewMember, error) {
	if name == "" {
		return replace.NewMember{}, usagef("--name is required: the member's name (the node name, as kubeadm names members)")
	}
	ip := net.ParseIP(address)
	if ip == nil {
		return replace.NewMember{}, usagef("invalid value %q for flag --advertise-address: want this node's IP address", address)
	}
	for _, p := range []struct {
		flag string
		v    int
	}{{"client-port", clientPort}, {"peer-port", peerPort}} {
		if p.v < 1 || p.v > 65535 {
			return replace.NewMember{}, usagef("invalid value %d for flag --%s: want a port, 1-65535", p.v, p.flag)
		}
	}
	if clientPort == peerPort {
		return replace.NewMember{}, usagef("--client-port and --peer-port are both %d; they must differ", clientPort)
	}
	host := ip.String()
	return replace.NewMember{
		Name:      name,
		PeerURL:   "https://" + net.JoinHostPort(host, strconv.Itoa(peerPort)),
		ClientURL: "https://" + net.JoinHostPort(host, strconv.Itoa(clientPort)),
	}, nil
}

// joinTarget connects a node that is not a member yet: --endpoints (or
// ETCDCTL_ENDPOINTS) name a member of the cluster, and its client pair is
// the node's health-check client (issued ahead when the node has none).
func (a *App) joinTarget(cf *clientFlags, files *kubeadm.Files) (*connect.Target, func(), error) {
	flags, env := cf.settings(), connect.Env(a.Getenv)
	if len(flags.Endpoints) == 0 && len(env.Endpoints) == 0 {
		return nil, nil, usagef("--endpoints is required: the client URL of a member of the cluster this node joins (it has no etcd manifest of its own yet)")
	}
	cleanup := func() {}
	src := connect.Source{Name: "this node's etcd CA and healthcheck-client", Find: func() (connect.Settings, bool, error) {
		ca, client, done, err := files.Client()
		if err != nil {
			return connect.Settings{}, false, err
		}
		cleanup = done
		return connect.Settings{CACert: ca, Cert: client.Cert, Key: client.Key}, true, nil
	}}
	t, err := connect.Resolve(flags, env, src)
	if err != nil {
		cleanup()
		return nil, nil, usageError{err}
	}
	if cf.verbose {
		fmt.Fprintf(a.Err, "using endpoints %s from %s\n", strings.Join(t.Endpoints, ","), strings.Join(t.Source, ", then "))
	}
	return t, cleanup, nil
}

func (a *App) kubeadmAPIServerCmd() *cobra.Command {
	var (
		cf       clientFlags
		apply    bool
		manifest string
		output   string
	)
	cmd := &cobra.Command{
		Use:   "apiserver-endpoints [--apply]",
		Short: "Point kube-apiserver's --etcd-servers at every voting member (diff, or --apply)",
		Long: `Computes kube-apiserver's --etcd-servers from the live member list (the client
URLs of every started voting member: a learner serves no linearizable reads)
and shows the change to this node's /etc/kubernetes/manifests/kube-apiserver.yaml
as a diff. kubeadm's stacked setup lists only the local member, so an API
server stops when its node's etcd does; with every member listed it fails over.

--apply rewrites the manifest atomically, changing that one line, after keeping
the old one in /etc/kubernetes/tmp (never beside it: the kubelet would run a
copy); the kubelet then restarts kube-apiserver. Run it on each control-plane
node, one at a time. Refused when no quorum answers the member list. Note that
'kubeadm upgrade' writes the manifest anew, with the local member only.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			t, err := a.target(cmd, &cf)
			if err != nil {
				return err
			}
			root, _, _ := cf.kubeadm.location()
			if manifest == "" {
				manifest = cf.kubeadm.sibling("kube-apiserver.yaml")
			}
			api, err := kubeadm.LoadAPIServer(root, manifest)
			if err != nil {
				return manifestError(err)
			}
			ms, err := ops.ListMembers(cmd.Context(), t)
			if err != nil {
				return err
			}
			if ms.LocalView {
				return fmt.Errorf("%w: no quorum answered the member list; refusing to write --etcd-servers from one member's possibly stale view", ops.ErrUnhealthy)
			}
			ch, err := api.SetEtcdServers(root, kubeadm.EtcdServers(ms))
			if err != nil {
				return err
			}
			if apply {
				if err := ch.Apply(time.Now()); err != nil {
					return err
				}
			}
			if output != formatTable {
				return print(a.Out, output, ch, nil)
			}
			a.printChange(a.Out, ch, apply)
			if !apply && !ch.Unchanged {
				fmt.Fprintln(a.Out, "not written: run again with --apply to write it")
			}
			for _, m := range ms.Members {
				if m.Started && !m.Learner && !m.Healthy {
					fmt.Fprintf(a.Err, "warning: %s is listed but not healthy (%s)\n", m.Label(), m.Error)
				}
			}
			return nil
		},
	}
	addClientFlags(cmd, &cf)
	outputFlag(cmd, &output)
	cmd.Flags().BoolVar(&apply, "apply", false, "rewrite the manifest (the kubelet restarts kube-apiserver)")
	cmd.Flags().StringVar(&manifest, "apiserver-manifest", "", "kube-apiserver's manifest (default: kube-apiserver.yaml beside etcd's)")
	_ = cmd.MarkFlagFilename("apiserver-manifest", "yaml", "yml")
	return cmd
}

// printChange shows a kube-apiserver manifest change.
func (a *App) printChange(w io.Writer, ch *kubeadm.Change, applied bool) {
	flag := kubeadm.EtcdServersFlag + "=" + strings.Join(ch.New, ",")
	if ch.Unchanged {
		fmt.Fprintf(w, "%s has %s already: nothing to change\n", ch.File, flag)
		return
	}
	fmt.Fprint(w, ch.Diff)
	if ch.Reformatted {
		fmt.Fprintf(a.Err, "warning: the line could not be edited in place; the whole manifest is written out again (comments are not kept)\n")
	}
	if applied {
		fmt.Fprintf(w, "wrote %s (the kubelet restarts kube-apiserver); the old manifest is kept as %s\n", ch.File, ch.Backup)
	}
}

// kubeadmHost is member replace's host in a kubeadm tree: when the
// connection came from this node's kubeadm manifest (and no --spec says
// otherwise), the new node's manifest is made from this node's and written,
// with its certificates from the etcd CA this node keeps, under --out: the
// new node's /. Everything is checked before the replacement changes
// anything.
func (a *App) kubeadmHost(cf *clientFlags, jf *joinFlags, nm replace.NewMember) (*kubeadm.Host, error) {
	if !cf.fromKubeadm || jf.specPath != "" {
		return nil, nil
	}
	root, manifest, _ := cf.kubeadm.location()
	tmpl, err := kubeadm.Load(root, manifest)
	if err != nil {
		return nil, manifestError(err)
	}
	if jf.certDir != "" || jf.dataDir != "" {
		return nil, usagef("--cert-dir and --data-dir do not apply in a kubeadm tree: the new member's manifest names the directories this node's does (%s, %s)", tmpl.PKIDir(), tmpl.Config.DataDir)
	}
	if jf.out == "" {
		return nil, usagef("--out DIR is required in a kubeadm tree: the new node's files go under DIR as under its / (DIR%s and its certificates in DIR%s), to be copied onto it", kubeadm.EtcdManifest, tmpl.PKIDir())
	}
	caDir := jf.pkiDir
	if caDir == "" {
		caDir = root.Path(tmpl.PKIDir())
	}
	ca, err := pki.OpenCA(pki.LayoutKubeadm, caDir)
	if err != nil {
		return nil, usagef("the new node's certificates need the etcd CA: %v; give --pki DIR, a directory with the etcd CA (ca.crt, ca.key)", err)
	}
	h := kubeadm.NewHost(tmpl, nm, kubeadm.Root(jf.out), ca)
	if _, err := h.Node.Plan(nm); err != nil {
		return nil, usageError{err}
	}
	return &h, nil
}

// kubeadmWrote tells where the new node's files are.
func (a *App) kubeadmWrote(h *kubeadm.Host) func(*ops.Written) {
	return func(w *ops.Written) {
		fmt.Fprintf(a.Err, "wrote %s\n", strings.Join(w.Files, ", "))
		fmt.Fprintf(a.Err, "%s\n", h.StartHint())
	}
}

// kubeadmAPIServerNote shows, after a replacement in a kubeadm tree, the
// change to this node's kube-apiserver manifest that lists the members as
// they are now, and how to make it on every control-plane node.
func (a *App) kubeadmAPIServerNote(ctx context.Context, t *connect.Target, cf *clientFlags) error {
	root, _, _ := cf.kubeadm.location()
	api, err := kubeadm.LoadAPIServer(root, cf.kubeadm.sibling("kube-apiserver.yaml"))
	if err != nil {
		fmt.Fprintf(a.Err, "kube-apiserver: %v\n", err)
		return nil
	}
	ms, err := ops.ListMembers(ctx, t)
	if err != nil {
		return err
	}
	ch, err := api.SetEtcdServers(root, kubeadm.EtcdServers(ms))
	if err != nil {
		return err
	}
	fmt.Fprintln(a.Out, "kube-apiserver on this node:")
	a.printChange(a.Out, ch, false)
	fmt.Fprintln(a.Out, "make the change on each control-plane node (one at a time): etcdkit kubeadm apiserver-endpoints --apply")
	return nil
}

// kubeadmBackupDir is where snapshots before a change go on a kubeadm
// node: beside its data dir, /var/lib/etcd, which a restore replaces.
func kubeadmBackupDir(cf *clientFlags) string {
	root, _, _ := cf.kubeadm.location()
	return root.Path(kubeadm.BackupDir)
}
