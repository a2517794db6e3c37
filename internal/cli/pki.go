package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/pki/discover"
	"github.com/etcdkit/etcdkit/internal/render"
	"github.com/etcdkit/etcdkit/internal/spec"
)

func (a *App) pkiCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pki",
		Short: "The certificate authority and leaf certificates: init, issue, check, renew, rotate-ca",
		Long: `Creates and maintains the certificates of an etcd cluster, in cfssl's file names
(ca.pem, server.pem, peer.pem, client.pem and -key.pem) or kubeadm's (ca.crt,
server.crt, peer.crt, healthcheck-client.crt, ../apiserver-etcd-client.crt).
cfssl's JSON files (ca-config.json, CSR JSON) are accepted as they are.

A running member reads its certificate and key on every TLS handshake, so
renewed certificates need no restart; it reads its trusted CA file only at
start, which rotate-ca works around with a cross-signed certificate. See
docs/pki.md.`,
	}
	cmd.AddCommand(a.pkiInitCmd(), a.pkiIssueCmd(), a.pkiCheckCmd(), a.pkiRenewCmd(), a.pkiRotateCmd())
	return cmd
}

// pkiLocation are the flags that say where a cluster's certificates are.
type pkiLocation struct {
	dir, spec, config, member, layout string
}

func addLocationFlags(cmd *cobra.Command, l *pkiLocation, dirHelp string) {
	fs := cmd.Flags()
	fs.StringVar(&l.dir, "dir", "", dirHelp)
	fs.StringVar(&l.spec, "spec", "", "cluster spec: check every member's certificates against its URLs (member directories must be reachable here)")
	fs.StringVar(&l.config, "config", "", "a member's etcd config: its certificate files and the URLs they must cover")
	fs.StringVar(&l.member, "member", "", "with --spec: only this member's certificates (on a host that has only its own)")
	fs.StringVar(&l.layout, "layout", "", "file names of a plain directory: cfssl or kubeadm (default: detected)")
	_ = cmd.MarkFlagDirname("dir")
	_ = cmd.MarkFlagFilename("spec", "yaml", "yml")
	_ = cmd.MarkFlagFilename("config", "yaml", "yml", "conf", "env")
	layoutCompletion(cmd)
}

func layoutCompletion(cmd *cobra.Command) {
	_ = cmd.RegisterFlagCompletionFunc("layout", cobra.FixedCompletions(
		[]string{string(pki.LayoutCfssl), string(pki.LayoutKubeadm)}, cobra.ShellCompDirectiveNoFileComp))
}

func (l *pkiLocation) inventory() (*pki.Inventory, error) {
	var layout pki.Layout
	if l.layout != "" {
		var err error
		if layout, err = pki.ParseLayout(l.layout); err != nil {
			return nil, usageError{fmt.Errorf("invalid value %q for flag --layout; options are cfssl, kubeadm", l.layout)}
		}
	}
	if l.member != "" && l.spec == "" {
		return nil, usagef("--member needs --spec")
	}
	inv, err := discover.Find(discover.Options{Dir: l.dir, Spec: l.spec, Config: l.config, Layout: layout, Member: l.member})
	if err != nil {
		return nil, usageError{err}
	}
	return inv, nil
}

func parseKeyAlg(s string) (pki.KeyAlgorithm, error) {
	if s == "" {
		return "", nil
	}
	alg, err := pki.ParseKeyAlgorithm(s)
	if err != nil {
		return "", usagef("invalid value %q for flag --key-algorithm; %s", s, strings.SplitN(err.Error(), "; ", 2)[1])
	}
	return alg, nil
}

func keyAlgCompletion(cmd *cobra.Command) {
	var names []string
	for _, a := range pki.KeyAlgorithms {
		names = append(names, string(a))
	}
	_ = cmd.RegisterFlagCompletionFunc("key-algorithm", cobra.FixedCompletions(names, cobra.ShellCompDirectiveNoFileComp))
}

func day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

func (a *App) pkiInitCmd() *cobra.Command {
	var (
		dir, layout, keyAlg, cn, csrFile string
		orgs                             []string
		validity                         time.Duration
	)
	cmd := &cobra.Command{
		Use:   "init --dir DIR",
		Short: "Create the CA (refuses to replace an existing one)",
		Long: `Creates a CA certificate and key in --dir, named for the layout (cfssl: ca.pem,
ca-key.pem; kubeadm: ca.crt, ca.key). The key is written 0600 in a 0700
directory. An existing CA is never replaced: that would orphan every
certificate it signed; use rotate-ca.

--csr takes cfssl's CA request JSON (as 'cfssl gencert -initca ca-csr.json'):
CN, names, key and ca.expiry; flags given explicitly win.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usagef("--dir is required: where the CA goes (e.g. /etc/etcd/ssl)")
			}
			l, err := pki.ParseLayout(layout)
			if err != nil {
				return usagef("invalid value %q for flag --layout; options are cfssl, kubeadm", layout)
			}
			req := pki.CARequest{CommonName: cn, Organization: orgs, Validity: validity}
			if req.KeyAlgorithm, err = parseKeyAlg(keyAlg); err != nil {
				return err
			}
			if csrFile != "" {
				csr, err := pki.LoadCfsslCSR(csrFile)
				if err != nil {
					return usageError{err}
				}
				if !cmd.Flags().Changed("cn") {
					req.CommonName = csr.CommonName
				}
				subject := csr.Subject
				if cmd.Flags().Changed("org") {
					subject.Organization = orgs
				}
				req.Subject = &subject
				if !cmd.Flags().Changed("key-algorithm") {
					req.KeyAlgorithm = csr.KeyAlgorithm
				}
				if !cmd.Flags().Changed("ca-validity") && csr.CAValidity > 0 {
					req.Validity = csr.CAValidity
				}
			}
			if req.Validity <= 0 {
				return usagef("invalid value %v for flag --ca-validity; give a positive duration such as 87600h", validity)
			}
			ca, p, err := pki.InitCA(pki.InitOptions{Dir: dir, Layout: l, CARequest: req})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.Out, "created CA %q (%s, valid until %s)\n  %s\n  %s (private, 0600)\n", ca.Cert.Subject.CommonName,
				pki.AlgorithmOf(ca.Cert.PublicKey), day(ca.Cert.NotAfter), p.Cert, p.Key)
			fmt.Fprintf(a.Out, "next: etcdkit pki issue server NAME --dir %s --hosts IP,DNS-NAME (and peer, client)\n", dir)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&dir, "dir", "", "directory for the CA (created 0700)")
	fs.StringVar(&layout, "layout", string(pki.LayoutCfssl), "file names: cfssl (ca.pem, ca-key.pem) or kubeadm (ca.crt, ca.key)")
	fs.StringVar(&keyAlg, "key-algorithm", string(pki.DefaultKeyAlgorithm), "key algorithm: "+algNames())
	fs.DurationVar(&validity, "ca-validity", pki.DefaultCAValidity, "how long the CA is valid")
	fs.StringVar(&cn, "cn", "etcd-ca", "the CA's common name")
	fs.StringSliceVar(&orgs, "org", nil, "the CA's organization(s)")
	fs.StringVar(&csrFile, "csr", "", "cfssl CA request JSON (ca-csr.json)")
	_ = cmd.MarkFlagDirname("dir")
	_ = cmd.MarkFlagFilename("csr", "json")
	layoutCompletion(cmd)
	keyAlgCompletion(cmd)
	return cmd
}

func algNames() string {
	var names []string
	for _, a := range pki.KeyAlgorithms {
		names = append(names, string(a))
	}
	return strings.Join(names, ", ")
}

func (a *App) pkiIssueCmd() *cobra.Command {
	var (
		dir, out, layout, keyAlg, specFile string
		cfsslConfig, profile               string
		hosts, orgs                        []string
		validity                           time.Duration
		force                              bool
	)
	cmd := &cobra.Command{
		Use:   "issue (server|peer|client NAME | CSR.json --cfssl-config FILE --profile P) --dir DIR",
		Short: "Issue a server, peer or client certificate from the CA in --dir",
		Long: `Issues a leaf certificate signed by the CA in --dir and writes it, with a new
0600 key, under the layout's name in --out (default --dir), copying the CA
certificate there when it has none so the directory is ready for its host.

  server  serves clients on a member's client URLs (serverAuth, clientAuth)
  peer    members' connections to each other (serverAuth, clientAuth)
  client  etcdctl, kube-apiserver, health checks (clientAuth)

NAME is the member name (the common name) for server and peer, the client
name for client. Server and peer certificates need the hosts clients dial:
--hosts, or --spec with a member called NAME. localhost and 127.0.0.1 are
added; the kubeadm layout follows kubeadm's rules (node name, localhost,
advertise address, 127.0.0.1, ::1). In the kubeadm layout, client
apiserver-etcd-client goes one directory up, as kubeadm puts it.

With --cfssl-config, cfssl's files are used as they are: the profile's
usages and expiry, and the CSR's CN, hosts, key and names, giving the
certificate 'cfssl gencert -profile P' would. Unlike cfssl, a profile that
is not in the config is an error, not a silent fall back to the default.

An existing certificate is replaced only with --force (kept as .bak-*).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" {
				return usagef("--dir is required: the directory of the CA that signs")
			}
			var l pki.Layout
			if layout != "" {
				var err error
				if l, err = pki.ParseLayout(layout); err != nil {
					return usagef("invalid value %q for flag --layout; options are cfssl, kubeadm", layout)
				}
			} else {
				var err error
				if l, err = pki.DetectLayout(dir); err != nil {
					return usageError{err}
				}
			}
			req, err := a.issueRequest(cmd, args, l, issueFlags{specFile, cfsslConfig, profile, hosts, orgs, keyAlg, validity})
			if err != nil {
				return err
			}
			res, err := pki.IssueInto(pki.IssueOptions{CADir: dir, Layout: l, OutDir: out, Request: *req, Force: force})
			if err != nil {
				return err
			}
			c := res.Leaf.Cert
			fmt.Fprintf(a.Out, "issued %s certificate %q, valid until %s\n", req.Role, c.Subject.CommonName, day(c.NotAfter))
			if hs := pki.HostsOf(c); len(hs) > 0 {
				fmt.Fprintf(a.Out, "  hosts: %s\n", strings.Join(hs, ", "))
			}
			fmt.Fprintf(a.Out, "  %s\n", res.Pair.Cert)
			if res.Leaf.Key != nil {
				fmt.Fprintf(a.Out, "  %s (private, 0600)\n", res.Pair.Key)
			}
			if res.TrustCopied != "" {
				fmt.Fprintf(a.Out, "  %s (the CA certificate, for this directory's host)\n", res.TrustCopied)
			}
			for _, b := range res.Backups {
				fmt.Fprintf(a.Out, "  kept the previous file as %s\n", b)
			}
			if len(res.Leaf.Chain) > 0 {
				fmt.Fprintln(a.Out, "  a CA rotation is under way: the certificate carries the new CA cross-signed by the old one")
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&dir, "dir", "", "directory of the signing CA")
	fs.StringVar(&out, "out", "", "directory to write the certificate to (default --dir)")
	fs.StringVar(&layout, "layout", "", "file names: cfssl or kubeadm (default: detected from the CA's)")
	fs.StringSliceVar(&hosts, "hosts", nil, "IP addresses and DNS names the certificate is valid for (server, peer)")
	fs.DurationVar(&validity, "validity", pki.DefaultLeafValidity, "how long the certificate is valid (never beyond the CA)")
	fs.StringSliceVar(&orgs, "org", nil, "organization(s) of the subject")
	fs.StringVar(&keyAlg, "key-algorithm", "", "key algorithm (default: the CA's): "+algNames())
	fs.StringVar(&specFile, "spec", "", "cluster spec: take the hosts of member NAME from it")
	fs.StringVar(&cfsslConfig, "cfssl-config", "", "cfssl signing config (ca-config.json); the argument is then a cfssl CSR JSON")
	fs.StringVar(&profile, "profile", "", "with --cfssl-config: the signing profile")
	fs.BoolVar(&force, "force", false, "replace an existing certificate (the old files are kept as .bak-*)")
	_ = cmd.MarkFlagDirname("dir")
	_ = cmd.MarkFlagDirname("out")
	_ = cmd.MarkFlagFilename("spec", "yaml", "yml")
	_ = cmd.MarkFlagFilename("cfssl-config", "json")
	layoutCompletion(cmd)
	keyAlgCompletion(cmd)
	cmd.ValidArgsFunction = func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) == 0 {
			return []string{"server", "peer", "client"}, cobra.ShellCompDirectiveNoFileComp
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return cmd
}

type issueFlags struct {
	spec, cfsslConfig, profile string
	hosts, orgs                []string
	keyAlg                     string
	validity                   time.Duration
}

// issueRequest turns the arguments of `pki issue` into a leaf request.
func (a *App) issueRequest(cmd *cobra.Command, args []string, l pki.Layout, f issueFlags) (*pki.LeafRequest, error) {
	alg, err := parseKeyAlg(f.keyAlg)
	if err != nil {
		return nil, err
	}
	if f.validity <= 0 {
		return nil, usagef("invalid value %v for flag --validity; give a positive duration such as 43800h", f.validity)
	}
	if f.cfsslConfig != "" {
		return cfsslRequest(cmd, args, f, alg)
	}
	if f.profile != "" {
		return nil, usagef("--profile needs --cfssl-config")
	}
	if len(args) != 2 {
		return nil, usagef("%s takes a role (server, peer or client) and a name, e.g. `pki issue server master01 --dir DIR --hosts 192.168.100.200`; got %d argument(s)", cmd.CommandPath(), len(args))
	}
	role, err := pki.ParseRole(args[0])
	if err != nil {
		return nil, usageError{err}
	}
	name := args[1]
	req := &pki.LeafRequest{Role: role, CommonName: name, Organization: f.orgs, KeyAlgorithm: alg, Validity: f.validity}
	hosts := f.hosts
	if f.spec != "" && role != pki.RoleClient {
		c, _, err := spec.Load(f.spec)
		if err != nil {
			return nil, err
		}
		m, ok := c.Member(name)
		if !ok {
			var names []string
			for _, mm := range c.Members {
				names = append(names, mm.Name)
			}
			return nil, usagef("%s has no member %q (it has %s)", f.spec, name, strings.Join(names, ", "))
		}
		hosts = append(render.MemberHosts(m), hosts...)
	}
	if role != pki.RoleClient && len(hosts) == 0 {
		return nil, usagef("a %s certificate needs the hosts clients dial: give --hosts IP,DNS-NAME (e.g. --hosts 192.168.100.200,master01), or --spec FILE with a member %q", role, name)
	}
	if role == pki.RoleClient && len(hosts) > 0 {
		return nil, usagef("--hosts is for server and peer certificates; a client certificate is identified by its name")
	}
	req.Hosts = pki.DefaultHosts(l, role, name, hosts)
	if l == pki.LayoutKubeadm && role == pki.RoleClient {
		switch {
		case pki.IsAPIServerClientName(name):
			req.CommonName = pki.KubeadmAPIServerClientCN
		case name == "healthcheck-client" || name == pki.KubeadmHealthcheckClientCN:
			req.CommonName = pki.KubeadmHealthcheckClientCN
		}
		isKubeadmClient := req.CommonName == pki.KubeadmAPIServerClientCN || req.CommonName == pki.KubeadmHealthcheckClientCN
		if isKubeadmClient && len(req.Organization) == 0 {
			req.Organization = []string{pki.KubeadmMastersGroup}
		}
	}
	return req, nil
}

func cfsslRequest(cmd *cobra.Command, args []string, f issueFlags, alg pki.KeyAlgorithm) (*pki.LeafRequest, error) {
	if len(args) != 1 {
		return nil, usagef("with --cfssl-config, %s takes one cfssl CSR JSON file (e.g. master01-csr.json); got %d argument(s)", cmd.CommandPath(), len(args))
	}
	if len(f.hosts) > 0 || f.spec != "" {
		return nil, usagef("with --cfssl-config the hosts come from the CSR JSON's \"hosts\"; drop --hosts and --spec")
	}
	conf, err := pki.LoadCfsslConfig(f.cfsslConfig)
	if err != nil {
		return nil, usageError{err}
	}
	prof, err := conf.Profile(f.profile)
	if err != nil {
		return nil, usageError{err}
	}
	role, err := prof.Role()
	if err != nil {
		return nil, usageError{fmt.Errorf("%s: %w", f.cfsslConfig, err)}
	}
	csr, err := pki.LoadCfsslCSR(args[0])
	if err != nil {
		return nil, usageError{err}
	}
	req := &pki.LeafRequest{Role: role, CommonName: csr.CommonName, Subject: &csr.Subject, Hosts: csr.Hosts, KeyAlgorithm: csr.KeyAlgorithm, Profile: &prof.Profile, Validity: prof.Validity}
	if cmd.Flags().Changed("key-algorithm") {
		req.KeyAlgorithm = alg
	}
	if cmd.Flags().Changed("validity") || req.Validity == 0 {
		req.Validity = f.validity
	}
	if len(f.orgs) > 0 {
		req.Subject.Organization = f.orgs
	}
	if role != pki.RoleClient && len(req.Hosts) == 0 {
		return nil, usagef("%s: hosts: a %s certificate needs the IPs and DNS names clients dial; without them Go clients (etcdctl, kube-apiserver) reject it", args[0], role)
	}
	return req, nil
}

func (a *App) pkiCheckCmd() *cobra.Command {
	var (
		loc    pkiLocation
		output string
		strict bool
		within time.Duration
	)
	cmd := &cobra.Command{
		Use:   "check [--dir DIR] [--spec FILE | --config FILE]",
		Short: "Check every certificate: chain, key, usages, expiry, hosts, key permissions",
		Long: `Checks, for every certificate: that it chains to the CA its user trusts (and
says so when the Kubernetes CA signed it instead of the etcd CA), that its
key matches and is not readable by others, that its key usages fit its role
(a client certificate used as a server certificate, a peer certificate
without clientAuth), that it is valid now (error) and for another 30 days
(warning), and that it covers every host its member advertises and listens
on (a wildcard listen address such as 0.0.0.0 is covered by the advertised
ones). Trust files holding two CAs during a rotation are understood.

Where: --config (a member's etcd config), --spec (a cluster spec), --dir (an
'etcdkit up' directory, or a PKI directory), or else ./etcdkit-local,
/etc/etcd/ssl, /etc/kubernetes/pki/etcd. Each finding names the file, what is
wrong and the command that fixes it. Exit code 1 when there is an error
(with --strict, also a warning).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			inv, err := loc.inventory()
			if err != nil {
				return err
			}
			r := pki.Check(inv, pki.CheckOptions{ExpiryWarning: within})
			switch output {
			case formatTable:
				printCheck(a.Out, r)
			default:
				if err := print(a.Out, output, r, nil); err != nil {
					return err
				}
			}
			errs, warns := r.Count(pki.SeverityError), r.Count(pki.SeverityWarning)
			if errs > 0 || (strict && warns > 0) {
				return fmt.Errorf("%s in the certificates of %s; see the findings above", plural(errs, "error")+" and "+plural(warns, "warning"), r.Source)
			}
			return nil
		},
	}
	addLocationFlags(cmd, &loc, "an 'etcdkit up' directory, or a PKI directory (its CA and leaf files)")
	outputFlag(cmd, &output)
	cmd.Flags().BoolVar(&strict, "strict", false, "treat warnings as errors")
	cmd.Flags().DurationVar(&within, "warn-within", pki.DefaultExpiryWarning, "warn about certificates that expire within this time")
	return cmd
}

// printCheck writes the table form: the certificates, then each finding
// with its fix.
func printCheck(w io.Writer, r *pki.Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROLE\tEXPIRES\tSTATUS\tFILE")
	for _, c := range r.Certificates {
		exp := ""
		if !c.NotAfter.IsZero() {
			exp = day(c.NotAfter)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.ID, c.Role, exp, c.Status, c.File)
	}
	tw.Flush()
	if len(r.Findings) == 0 {
		fmt.Fprintf(w, "\nno problems found in %s\n", r.Source)
		return
	}
	fmt.Fprintln(w)
	for _, f := range r.Findings {
		fmt.Fprintf(w, "%s: %s: %s\n", strings.ToUpper(string(f.Severity)), f.File, f.Problem)
		if f.Fix != "" {
			fmt.Fprintf(w, "  fix: %s\n", f.Fix)
		}
	}
}

func (a *App) pkiRenewCmd() *cobra.Command {
	var (
		loc      pkiLocation
		all      bool
		newKey   bool
		validity time.Duration
		output   string
	)
	cmd := &cobra.Command{
		Use:   "renew [NAME...|--all] --dir DIR",
		Short: "Re-issue certificates with the same subject, hosts and key and a new validity",
		Long: `Re-issues leaf certificates from the CA with the same subject, hosts, usages
and key, and a new validity (--validity, default each one's own), keeping the
old files as *.bak-<time>. All files are written or none.

NAME is a certificate's ID as 'pki check' lists it (server, m1/peer, client),
a member name (all of its certificates) or a role (every such certificate).

A running member needs no restart: etcd reads its certificate and key files
on every TLS handshake, so clients connecting after the renewal see the new
certificate. Keys are kept by default (as 'kubeadm certs renew' does);
--new-key replaces them too.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			if cmd.Flags().Changed("validity") && validity <= 0 {
				return usagef("invalid value %v for flag --validity; give a positive duration such as 43800h", validity)
			}
			if all && len(args) > 0 {
				return usagef("give certificate names or --all, not both")
			}
			inv, err := loc.inventory()
			if err != nil {
				return err
			}
			if !all && len(args) == 0 {
				return usagef("name the certificates to renew, or give --all; see `etcdkit pki check %s`", strings.Join(inv.Args, " "))
			}
			if len(args) > 0 {
				if _, err := inv.Select(args); err != nil {
					return usageError{err}
				}
			}
			rs, err := pki.Renew(inv, pki.RenewOptions{Names: args, All: all, Validity: validity, NewKey: newKey})
			if err != nil {
				return err
			}
			return print(a.Out, output, rs, func() *table {
				tb := &table{header: []string{"ID", "WAS VALID UNTIL", "NOW VALID UNTIL", "FILE", "OLD FILES KEPT AS"}}
				for _, r := range rs {
					tb.add(r.ID, day(r.OldNotAfter), day(r.NotAfter), r.File, strings.Join(r.Backups, ", "))
				}
				return tb
			})
		},
	}
	addLocationFlags(cmd, &loc, "an 'etcdkit up' directory, or the PKI directory with the CA key")
	outputFlag(cmd, &output)
	cmd.Flags().BoolVar(&all, "all", false, "renew every certificate")
	cmd.Flags().BoolVar(&newKey, "new-key", false, "replace the keys too")
	cmd.Flags().DurationVar(&validity, "validity", 0, "validity of the new certificates (default: each one's previous validity)")
	return cmd
}

// rotatePhases are rotate-ca's arguments in order.
var rotatePhases = []string{"status", "trust", "reissue", "finish", "abort"}

func (a *App) pkiRotateCmd() *cobra.Command {
	var (
		loc              pkiLocation
		output, keyAlg   string
		cn               string
		validity         time.Duration
		dropCrossSigned  bool
		noProbe          bool
		probeTimeoutFlag time.Duration
	)
	cmd := &cobra.Command{
		Use:   "rotate-ca [status|trust|reissue|finish|abort] --dir DIR",
		Short: "Replace the CA in phases that never break a running cluster",
		Long: `Replaces the CA in three phases, each a separate invocation, none of which
needs a member restart:

  trust    a new CA is created and cross-signed by the old one; every trust
           file (the CA directory's and each member's) holds old + new.
  reissue  every leaf is re-issued by the new CA with the same subject, hosts
           and key, followed by the cross-signed certificate; the new CA signs
           from now on. Members serve the new leaves from their next TLS
           handshake. Members started before 'trust' trust only the old CA
           (etcd reads its trusted CA file only at start) and verify the new
           leaves through the cross-signed certificate.
  finish   the old CA leaves every trust file.

A member keeps the trust pool it started with until its next restart. To
end with no trace of the old CA, restart each member once after 'trust'
(one at a time, whenever convenient before the old CA expires) and run
'finish --drop-cross-signed', which removes the cross-signed certificate
from every leaf and refuses while a member still trusts only the old CA.
'abort' undoes 'trust' before 'reissue'.

'status' (the default) shows the phase, the next command, every file and,
live, what each member serves and whether it trusts the new CA (it is asked
with a client certificate from the new CA alone) and whether it needs a
restart. The members' directories come from --dir (an 'etcdkit up'
directory: the members' ssl directories), --spec (each member's pkiDir,
which must be reachable here) or --config.`,
		ValidArgs: rotatePhases,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			phase := "status"
			switch len(args) {
			case 0:
			case 1:
				phase = args[0]
				if !slices.Contains(rotatePhases, phase) {
					return usagef("invalid phase %q; options are %s", phase, strings.Join(rotatePhases, ", "))
				}
			default:
				return usagef("%s takes one phase (%s); got %d arguments", cmd.CommandPath(), strings.Join(rotatePhases, ", "), len(args))
			}
			if dropCrossSigned && phase != "finish" {
				return usagef("--drop-cross-signed goes with finish")
			}
			alg, err := parseKeyAlg(keyAlg)
			if err != nil {
				return err
			}
			inv, err := loc.inventory()
			if err != nil {
				return err
			}
			probe := func(inv *pki.Inventory, ca *pki.CA) []pki.MemberProbe {
				return pki.ProbeMembers(cmd.Context(), inv, ca, probeTimeoutFlag)
			}
			o := pki.RotateOptions{CommonName: cn, KeyAlgorithm: alg, Validity: validity, DropCrossSigned: dropCrossSigned, Probe: probe}
			var res *pki.RotateResult
			switch phase {
			case "trust":
				res, err = pki.RotateTrust(inv, o)
			case "reissue":
				res, err = pki.RotateReissue(inv, o)
			case "finish":
				res, err = pki.RotateFinish(inv, o)
			case "abort":
				res, err = pki.RotateAbort(inv, o)
			}
			if err != nil {
				return err
			}
			if res != nil && output == formatTable {
				fmt.Fprintf(a.Out, "%s: %d files changed", phase, len(res.Changed))
				if n := len(slices.DeleteFunc(slices.Clone(res.Backups), func(s string) bool { return s == "" })); n > 0 {
					fmt.Fprintf(a.Out, ", %d previous files kept as .bak-*", n)
				}
				fmt.Fprintln(a.Out)
				for _, n := range res.Notes {
					fmt.Fprintf(a.Out, "note: %s\n", n)
				}
				fmt.Fprintln(a.Out)
			}
			st, err := pki.Status(cmd.Context(), inv, !noProbe, probeTimeoutFlag)
			if err != nil {
				return err
			}
			if output != formatTable {
				return print(a.Out, output, st, nil)
			}
			printRotation(a.Out, st)
			return nil
		},
	}
	addLocationFlags(cmd, &loc, "an 'etcdkit up' directory, or the PKI directory with the CA key")
	outputFlag(cmd, &output)
	cmd.Flags().StringVar(&cn, "cn", "", "trust: the new CA's common name (default: the old one's with today's date)")
	cmd.Flags().StringVar(&keyAlg, "key-algorithm", "", "trust: the new CA's key algorithm (default: the old one's)")
	cmd.Flags().DurationVar(&validity, "ca-validity", pki.DefaultCAValidity, "trust: how long the new CA is valid")
	cmd.Flags().BoolVar(&dropCrossSigned, "drop-cross-signed", false, "finish: also remove the cross-signed certificate from every leaf (every member must trust the new CA)")
	cmd.Flags().BoolVar(&noProbe, "no-probe", false, "do not ask the members what they serve and trust")
	cmd.Flags().DurationVar(&probeTimeoutFlag, "probe-timeout", 5*time.Second, "how long to wait for each member's answer")
	keyAlgCompletion(cmd)
	return cmd
}

// printRotation writes the status view of a rotation.
func printRotation(w io.Writer, st *pki.RotationStatus) {
	fmt.Fprintf(w, "CA rotation in %s: %s\n", st.CADir, pki.PhaseTitle(st.Phase, st.Complete))
	if !st.Started.IsZero() && !st.Complete {
		fmt.Fprintf(w, "started %s\n", st.Started.UTC().Format(time.RFC3339))
	}
	if st.OldCA != nil {
		label := "old CA"
		if st.Phase == pki.PhaseNone || st.Complete {
			label = "current CA"
		}
		fmt.Fprintf(w, "%s: %q, valid until %s, sha256 %s\n", label, st.OldCA.Subject, day(st.OldCA.NotAfter), short(st.OldCA.Fingerprint))
	}
	if st.NewCA != nil {
		fmt.Fprintf(w, "new CA: %q, valid until %s, sha256 %s\n", st.NewCA.Subject, day(st.NewCA.NotAfter), short(st.NewCA.Fingerprint))
	}
	if !st.CrossSignedUntil.IsZero() {
		fmt.Fprintf(w, "cross-signed certificate (new CA signed by the old): valid until %s\n", day(st.CrossSignedUntil))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(st.Trust) > 0 {
		fmt.Fprintln(tw, "\nTRUST FILE\tHOLDS")
		for _, t := range st.Trust {
			fmt.Fprintf(tw, "%s\t%s\n", t.File, strings.Join(t.Holds, ", "))
		}
	}
	if len(st.Leaves) > 0 {
		fmt.Fprintln(tw, "\nLEAF\tISSUED BY\tCROSS-SIGNED\tFILE")
		for _, l := range st.Leaves {
			fmt.Fprintf(tw, "%s\t%s CA\t%s\t%s\n", l.ID, l.IssuedBy, yesNo(l.CrossSigned), l.File)
		}
	}
	if len(st.Members) > 0 {
		fmt.Fprintln(tw, "\nMEMBER\tLISTENER\tURL\tSERVES\tTRUSTS NEW CA\tRESTART NEEDED")
		for _, m := range st.Members {
			serves, trusts, restart := "?", "?", "?"
			if m.ServedIssuer != "" {
				serves = "old CA's leaf"
				if m.ServesNewLeaf {
					serves = "new CA's leaf"
					if m.ServesCrossSigned {
						serves += " + cross-signed"
					}
				}
			}
			if m.Error == "" {
				trusts = yesNo(m.TrustsNewCA)
				restart = restartNeeded(st, m)
			} else {
				trusts = "unknown: " + m.Error
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.Listener, m.URL, serves, trusts, restart)
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, r := range st.Restart {
		fmt.Fprintf(w, "restart: %s\n", r)
	}
	fmt.Fprintf(w, "next: %s\n", st.Next)
}

// restartNeeded says whether a member needs a restart, and for what.
func restartNeeded(st *pki.RotationStatus, m pki.MemberProbe) string {
	if m.TrustsNewCA {
		return "no"
	}
	if st.Phase == pki.PhaseFinish {
		return "yes, before " + day(st.CrossSignedUntil) + " (for --drop-cross-signed)"
	}
	return "not for the next phase"
}

func short(fp string) string {
	if len(fp) > 16 {
		return fp[:16] + "…"
	}
	return fp
}
