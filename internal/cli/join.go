package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/etcdkit/etcdkit/internal/connect"
	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/join"
	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/render"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// memberPlace is where a member's files go on its host, and its URLs: the
// flags init and join share.
type memberPlace struct {
	name, peerURL, clientURL string
	dataDir, certDir, config string
	layout, keyAlg           string
}

func addMemberPlaceFlags(cmd *cobra.Command, p *memberPlace) {
	fs := cmd.Flags()
	fs.StringVar(&p.name, "name", "", "the member's name (default: this host's name)")
	fs.StringVar(&p.peerURL, "peer-url", "", "the member's peer URL, https://IP:2380, that the other members dial")
	fs.StringVar(&p.clientURL, "client-url", "", "the member's client URL (default https://HOST:2379, HOST from --peer-url)")
	fs.StringVar(&p.dataDir, "data-dir", "", "the member's data dir (default "+spec.DefaultDataDir+")")
	fs.StringVar(&p.certDir, "cert-dir", "", "where the member's certificates and keys go (default "+spec.DefaultPKIDir+")")
	fs.StringVar(&p.config, "config", render.DefaultYAMLPath, "where the member's etcd config goes: `etcdkit member run --config` reads it")
	fs.StringVar(&p.layout, "layout", "", "certificate file names: cfssl (ca.pem, server.pem, ...) or kubeadm (ca.crt, server.crt, ...)")
	fs.StringVar(&p.keyAlg, "key-algorithm", "", "algorithm of the keys made here: "+algNames())
	_ = cmd.MarkFlagDirname("data-dir")
	_ = cmd.MarkFlagDirname("cert-dir")
	_ = cmd.MarkFlagFilename("config", "yaml", "yml")
	layoutCompletion(cmd)
	keyAlgCompletion(cmd)
}

// resolve checks the URLs and fills the defaults of the name and the
// client URL.
func (p *memberPlace) resolve() error {
	if err := checkURL("peer-url", p.peerURL); err != nil {
		return err
	}
	if p.clientURL == "" {
		u, _ := etcdconf.ParseURL(p.peerURL)
		p.clientURL = u.Scheme + "://" + u.Hostname() + ":2379"
	}
	if err := checkURL("client-url", p.clientURL); err != nil {
		return err
	}
	if p.name == "" {
		h, err := os.Hostname()
		if err != nil {
			return usagef("--name is required: this host's name is unknown (%v)", err)
		}
		p.name, _, _ = strings.Cut(h, ".")
	}
	if err := join.CheckName(p.name); err != nil {
		return usagef("--name: %v", err)
	}
	if p.layout != "" {
		if _, err := pki.ParseLayout(p.layout); err != nil {
			return usagef("invalid value %q for flag --layout; options are cfssl, kubeadm", p.layout)
		}
	}
	if _, err := parseKeyAlg(p.keyAlg); err != nil {
		return err
	}
	return nil
}

func (a *App) initCmd() *cobra.Command {
	var (
		p                          memberPlace
		specPath, memberName       string
		clusterName, joinListen    string
		noJoin, start, insecureRun bool
	)
	cmd := &cobra.Command{
		Use:   "init (--name NAME --peer-url URL | --spec cluster.yaml --member NAME) [--start]",
		Short: "Set up the first member of a cluster that other hosts join with a token",
		Long: `Writes the first member of a new cluster on this host: the CA when --cert-dir
has none (an existing one is used), the member's server, peer and client
certificates, and its etcd config as a one-member cluster with the join
endpoint enabled (etcdkit.join.listen, https://HOST:2382 by default). Files
are written all or none; an existing config, data or certificate is never
replaced. Nothing starts unless --start (then it runs in the foreground, as
'etcdkit member run').

With --spec the shared settings (PKI dir, layout, key algorithm and validity,
tuning, backups) and the member's URLs come from the cluster spec; the other
members of the spec join later with 'etcdkit join'.

Next: start it, create a token ('etcdkit token create'), and run the join
command it prints on each new host.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, m, err := a.initSpec(cmd, &p, specPath, memberName, clusterName)
			if err != nil {
				return err
			}
			listen := ""
			if !noJoin {
				listen = joinListen
				if listen == "" {
					listen = join.DefaultJoinListen(m.ClientURL)
				}
				if _, err := join.ParseListen(listen); err != nil {
					return usagef("--join-listen: %v", err)
				}
			}
			res, err := join.Init(join.InitOptions{Cluster: c, Member: *m, ConfigPath: p.config, JoinListen: listen})
			if err != nil {
				return err
			}
			a.initialised(res, m, listen, specPath)
			if !start {
				return nil
			}
			fmt.Fprintf(a.Err, "starting member %q in the foreground (Ctrl-C stops it)\n", m.Name)
			return a.runMember(cmd.Context(), res.ConfigPath, insecureRun, nil)
		},
	}
	addMemberPlaceFlags(cmd, &p)
	fs := cmd.Flags()
	fs.StringVar(&specPath, "spec", "", "cluster spec with the shared settings and this member's URLs")
	fs.StringVar(&memberName, "member", "", "with --spec: the spec member this host is")
	fs.StringVar(&clusterName, "cluster-name", "", "the cluster's name, its initial-cluster-token (default: the spec's, else "+spec.DefaultName+")")
	fs.StringVar(&joinListen, "join-listen", "", fmt.Sprintf("the join endpoint's URL (default https://HOST:%d, HOST from the client URL)", join.DefaultPort))
	fs.BoolVar(&noJoin, "no-join", false, "leave the join endpoint off")
	fs.BoolVar(&start, "start", false, "start the member in the foreground once its files are written")
	_ = cmd.MarkFlagFilename("spec", "yaml", "yml")
	return cmd
}

// initSpec builds the cluster settings and this host's member from
// --spec or from flags.
func (a *App) initSpec(cmd *cobra.Command, p *memberPlace, specPath, memberName, clusterName string) (*spec.Cluster, *spec.Member, error) {
	var c *spec.Cluster
	var m spec.Member
	if specPath != "" {
		if memberName == "" {
			return nil, nil, usagef("--spec needs --member: the spec member this host is")
		}
		if err := specFlagsClash(cmd); err != nil {
			return nil, nil, err
		}
		var warnings []string
		var err error
		c, warnings, err = spec.Load(specPath)
		for _, w := range warnings {
			fmt.Fprintf(a.Err, "warning: %s\n", w)
		}
		if err != nil {
			return nil, nil, err
		}
		sm, ok := c.Member(memberName)
		if !ok {
			return nil, nil, usagef("%s has no member %q; members are %s", specPath, memberName, strings.Join(memberNames(c), ", "))
		}
		m = *sm
		m.DataDir, m.PKIDir = c.MemberDataDir(sm), c.MemberPKIDir(sm)
		// Only this member is in the new cluster; the others join.
		c.Members = []spec.Member{m}
	} else {
		if memberName != "" {
			return nil, nil, usagef("--member needs --spec; without a spec give --name")
		}
		if err := p.resolve(); err != nil {
			return nil, nil, err
		}
		c = &spec.Cluster{Name: clusterName}
		m = spec.Member{Name: p.name, PeerURL: p.peerURL, ClientURL: p.clientURL}
		c.Members = []spec.Member{m}
	}
	if clusterName != "" {
		c.Name = clusterName
	}
	if cmd.Flags().Changed("layout") {
		c.PKI.Layout = p.layout
	}
	if cmd.Flags().Changed("key-algorithm") {
		c.PKI.KeyAlgorithm = p.keyAlg
	}
	c.SetDefaults()
	if p.dataDir != "" {
		m.DataDir = p.dataDir
	}
	if p.certDir != "" {
		m.PKIDir = p.certDir
	}
	if m.DataDir == "" {
		m.DataDir = c.DataDir
	}
	if m.PKIDir == "" {
		m.PKIDir = c.PKI.Dir
	}
	m.Host = ""
	c.Members = []spec.Member{m}
	c.SetDefaults()
	if _, err := c.Validate(specPath); err != nil {
		return nil, nil, err
	}
	return c, &c.Members[0], nil
}

// initialised says what init wrote and what comes next.
func (a *App) initialised(res *join.InitResult, m *spec.Member, listen, specPath string) {
	ca := "using the existing CA"
	if res.CACreated {
		ca = "created the CA"
	}
	fmt.Fprintf(a.Out, "initialised member %q; %s %s (%s)\n", m.Name, ca, res.CA.Cert, res.CAHash)
	for _, f := range res.Files {
		fmt.Fprintf(a.Out, "  wrote %s\n", f)
	}
	fmt.Fprintf(a.Out, "\nnext:\n  1. start it:  etcdkit member run --config %s\n", res.ConfigPath)
	if listen == "" {
		fmt.Fprintf(a.Out, "  (the join endpoint is off: add members with `etcdkit member add`)\n")
		return
	}
	client := fmt.Sprintf("--endpoints %s --cacert %s --cert %s --key %s", m.ClientURL, res.CA.Cert, res.Client.Cert, res.Client.Key)
	fmt.Fprintf(a.Out, "  2. create a join token (on this host):  etcdkit token create %s\n", client)
	who := "--name NAME --peer-url https://HOST:2380"
	if specPath != "" {
		who = "--spec " + specPath + " --member NAME"
	}
	fmt.Fprintf(a.Out, "  3. on each new host, the join command it prints:\n       etcdkit join %s --token TOKEN --ca-hash %s %s\n", listen, res.CAHash, who)
}

// withTokens connects to the cluster and hands fn its token store, with a
// context bounded by the command timeout.
func (a *App) withTokens(cmd *cobra.Command, cf *clientFlags, fn func(ctx context.Context, t *connect.Target, s *join.Store) error) error {
	t, err := a.target(cmd, cf)
	if err != nil {
		return err
	}
	cli, err := t.Client()
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := t.Ctx(cmd.Context())
	defer cancel()
	return fn(ctx, t, &join.Store{Client: cli})
}

func (a *App) tokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke join tokens",
		Long: `A join token lets one new host (or --uses hosts) join the cluster through the
join endpoint, until it expires. It has the form etk1.<id>.<secret>; etcd
keeps only its hash, its expiry and its use count, under /etcdkit/join/.
The secret is shown once, by 'token create'.`,
	}
	cmd.AddCommand(a.tokenCreateCmd(), a.tokenListCmd(), a.tokenRevokeCmd())
	return cmd
}

// tokenCreated is what `token create` prints.
type tokenCreated struct {
	Token       string            `json:"token"`
	ID          string            `json:"id"`
	CAHash      string            `json:"caHash,omitempty"`
	Expires     time.Time         `json:"expires"`
	Uses        int               `json:"uses"`
	Endpoints   []join.Advertised `json:"endpoints"`
	JoinCommand string            `json:"joinCommand,omitempty"`
}

func (a *App) tokenCreateCmd() *cobra.Command {
	var (
		cf          clientFlags
		ttl         time.Duration
		uses        int
		description string
		output      string
	)
	cmd := &cobra.Command{
		Use:   "create [--ttl 1h] [--uses 1] [--description TEXT]",
		Short: "Create a join token and print the join command with the CA hash",
		Long: `Creates a join token, stores its hash in etcd, and prints the token, the CA
hash (sha256 of the CA's public key, as kubeadm pins it) and the join command
for each join endpoint the members announce. The token is shown only now.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			if ttl <= 0 {
				return usagef("invalid value %v for flag --ttl; a join token must expire: give a positive duration such as 1h", ttl)
			}
			if uses < 1 {
				return usagef("invalid value %d for flag --uses; give 1 or more", uses)
			}
			return a.withTokens(cmd, &cf, func(ctx context.Context, t *connect.Target, s *join.Store) error {
				tok, rec, err := s.Create(ctx, join.CreateOptions{TTL: ttl, Uses: uses, Description: description})
				if err != nil {
					return err
				}
				out := tokenCreated{Token: tok.String(), ID: tok.ID, Expires: rec.Expires, Uses: rec.Uses}
				if out.Endpoints, err = join.ListEndpoints(ctx, s.Client); err != nil {
					return err
				}
				out.CAHash = a.tokenCAHash(t, out.Endpoints)
				if len(out.Endpoints) > 0 && out.CAHash != "" {
					out.JoinCommand = fmt.Sprintf("etcdkit join %s --token %s --ca-hash %s --name NAME --peer-url https://HOST:2380", out.Endpoints[0].URL, out.Token, out.CAHash)
				}
				return a.printCreated(output, out)
			})
		},
	}
	addClientFlags(cmd, &cf)
	outputFlag(cmd, &output)
	fs := cmd.Flags()
	fs.DurationVar(&ttl, "ttl", time.Hour, "how long the token is valid")
	fs.IntVar(&uses, "uses", 1, "how many hosts may join with it")
	fs.StringVar(&description, "description", "", "what the token is for, shown by `token list`")
	return cmd
}

func (a *App) printCreated(output string, out tokenCreated) error {
	if output != formatTable {
		return print(a.Out, output, out, nil)
	}
	fmt.Fprintf(a.Out, "token:    %s\n", out.Token)
	if out.CAHash != "" {
		fmt.Fprintf(a.Out, "ca-hash:  %s\n", out.CAHash)
	}
	fmt.Fprintf(a.Out, "expires:  %s (%d use(s))\n", out.Expires.Local().Format(time.RFC3339), out.Uses)
	for _, e := range out.Endpoints {
		fmt.Fprintf(a.Out, "endpoint: %s (member %q)\n", e.URL, e.Member)
	}
	if out.JoinCommand != "" {
		fmt.Fprintf(a.Out, "\non each new host:\n  %s\n", out.JoinCommand)
	}
	return nil
}

// tokenCAHash is the CA hash to print: the one the join endpoints
// announce, checked against the CA this command trusts; without
// endpoints, the pin of that CA.
func (a *App) tokenCAHash(t *connect.Target, eps []join.Advertised) string {
	var trusted []string
	if t.CACert != "" {
		if certs, err := pki.LoadCerts(t.CACert); err == nil {
			for _, c := range certs {
				if p, err := pki.PublicKeyPin(c.PublicKey); err == nil && c.IsCA {
					trusted = append(trusted, p)
				}
			}
		}
	}
	if len(eps) == 0 {
		fmt.Fprintf(a.Err, "warning: no member serves the join endpoint; enable it in the config of a member that holds the CA key (etcdkit:\n  join: {listen: https://IP:%d}) and restart it\n", join.DefaultPort)
		if len(trusted) == 1 {
			return trusted[0]
		}
		return ""
	}
	pin := eps[0].CAHash
	for _, e := range eps[1:] {
		if e.CAHash != pin {
			fmt.Fprintf(a.Err, "warning: join endpoints announce different CAs (%s at %s, %s at %s); a CA rotation may be under way\n", pin, eps[0].URL, e.CAHash, e.URL)
		}
	}
	if len(trusted) > 0 && !slices.Contains(trusted, pin) {
		fmt.Fprintf(a.Err, "warning: the join endpoint announces CA %s, which is not in %s that this command trusts; check it before handing it out\n", pin, t.CACert)
	}
	return pin
}

func (a *App) tokenListCmd() *cobra.Command {
	var (
		cf     clientFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List join tokens: id, status, expiry, uses, the members that used them",
		Long: `Lists the join tokens in etcd, newest first. Secrets are never stored, so
never shown; expired and used-up tokens are listed for a day after expiry.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			return a.withTokens(cmd, &cf, func(ctx context.Context, _ *connect.Target, s *join.Store) error {
				list, err := s.List(ctx)
				if err != nil {
					return err
				}
				return print(a.Out, output, list, func() *table {
					tb := &table{header: []string{"ID", "STATUS", "EXPIRES", "USES", "USED BY", "DESCRIPTION"}}
					for _, i := range list {
						tb.add(i.ID, i.Status, i.Expires.Local().Format(time.RFC3339), fmt.Sprintf("%d/%d", i.Used, i.Uses),
							dash(strings.Join(i.UsedBy, ",")), i.Description)
					}
					return tb
				})
			})
		},
	}
	addClientFlags(cmd, &cf)
	outputFlag(cmd, &output)
	return cmd
}

func (a *App) tokenRevokeCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "revoke ID|TOKEN",
		Short: "Revoke a join token: no host can join with it any more",
		Args:  exactArgs(1, "the token or its id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if strings.HasPrefix(id, join.TokenPrefix+".") {
				tok, err := join.ParseToken(id)
				if err != nil {
					return usageError{err}
				}
				id = tok.ID
			} else if err := join.CheckTokenID(id); err != nil {
				return usageError{err}
			}
			return a.withTokens(cmd, &cf, func(ctx context.Context, _ *connect.Target, s *join.Store) error {
				info, err := s.Revoke(ctx, id)
				if errors.Is(err, join.ErrTokenNotFound) {
					return fmt.Errorf("%w; `etcdkit token list` shows the tokens there are (an expired token is deleted a day after it expires)", err)
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(a.Out, "revoked token %s (%s, %d of %d uses)\n", info.ID, info.Status, info.Used, info.Uses)
				return nil
			})
		},
	}
	addClientFlags(cmd, &cf)
	return cmd
}

// specFlagsClash refuses flags that say what --spec says.
func specFlagsClash(cmd *cobra.Command) error {
	for _, f := range []string{"name", "peer-url", "client-url"} {
		if cmd.Flags().Changed(f) {
			return usagef("--%s contradicts --spec, which gives the member's name and URLs; drop --%s", f, f)
		}
	}
	return nil
}

// fromSpec takes a member's name, URLs, directories and PKI settings from
// the cluster spec, where flags did not give them.
func (a *App) fromSpec(cmd *cobra.Command, p *memberPlace, specPath, memberName string) error {
	if memberName == "" {
		return usagef("--spec needs --member: the spec member this host is")
	}
	if err := specFlagsClash(cmd); err != nil {
		return err
	}
	c, warnings, err := spec.Load(specPath)
	for _, w := range warnings {
		fmt.Fprintf(a.Err, "warning: %s\n", w)
	}
	if err != nil {
		return err
	}
	m, ok := c.Member(memberName)
	if !ok {
		return usagef("%s has no member %q; members are %s", specPath, memberName, strings.Join(memberNames(c), ", "))
	}
	p.name, p.peerURL, p.clientURL = m.Name, m.PeerURL, m.ClientURL
	p.dataDir = orDefault(p.dataDir, c.MemberDataDir(m))
	p.certDir = orDefault(p.certDir, c.MemberPKIDir(m))
	p.layout = orDefault(p.layout, c.PKI.Layout)
	p.keyAlg = orDefault(p.keyAlg, c.PKI.KeyAlgorithm)
	return nil
}

func (a *App) joinCmd() *cobra.Command {
	var (
		p                    memberPlace
		specPath, memberName string
		token                string
		caHash               string
		insecure             bool
		noStart              bool
		wait                 time.Duration
	)
	cmd := &cobra.Command{
		Use:   "join URL --token TOKEN --ca-hash sha256:HEX (--name NAME --peer-url URL | --spec cluster.yaml --member NAME)",
		Short: "Join this host to a cluster through its join endpoint: keys made here, certificates signed there",
		Long: `Joins this host to a running cluster with a token from 'etcdkit token create'.

It first connects to the join endpoint (URL, https://HOST:2382) and checks its
certificate against --ca-hash, the sha256 pin of the cluster CA's public key,
before sending anything: a wrong hash or an impostor is refused with nothing
sent. It then makes this member's private keys here and sends only
certificate requests; the endpoint checks the token and that the requests
name only this member's URLs, adds the member as a learner, and returns the
signed certificates, the CA bundle and the live initial-cluster. The files are
written all or none (--config, --cert-dir, with keys 0600); nothing is
written when the join is refused.

The member then starts in the foreground, as 'etcdkit member run' (later
starts: 'etcdkit member run --config FILE'), and is promoted to a voting
member once it has caught up. --no-start only writes the files and prints the
command; the endpoint promotes the member once it runs.

Refused: a wrong, expired, revoked or used-up token; a CA hash the endpoint
does not match; a data dir or certificates already there; a cluster that has
lost quorum (exit 3). While another member is joining (etcd takes one learner
at a time) the join waits, up to --wait.`,
		Args: exactArgs(1, "the join endpoint's URL (https://HOST:2382)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if token == "" {
				return usagef("--token is required: the token `etcdkit token create` printed")
			}
			if caHash == "" && !insecure {
				return usagef("--ca-hash is required: without it this host cannot tell the cluster's join endpoint from an impostor, and would send its token to whoever answers; pass the sha256:... that `etcdkit token create` printed, or --insecure-skip-ca-verification to trust whatever answers (only on a network you control)")
			}
			if caHash != "" && insecure {
				return usagef("--ca-hash and --insecure-skip-ca-verification contradict each other; drop --insecure-skip-ca-verification")
			}
			if _, err := join.ParseToken(token); err != nil {
				return usagef("--token: %v", err)
			}
			if caHash != "" {
				if _, err := join.ParsePin(caHash); err != nil {
					return usagef("--ca-hash: %v", err)
				}
			}
			if specPath != "" {
				if err := a.fromSpec(cmd, &p, specPath, memberName); err != nil {
					return err
				}
			} else if memberName != "" {
				return usagef("--member needs --spec; without a spec give --name")
			}
			if err := p.resolve(); err != nil {
				return err
			}
			alg, _ := parseKeyAlg(p.keyAlg)
			paths := join.Paths{Config: p.config, DataDir: orDefault(p.dataDir, spec.DefaultDataDir), CertDir: orDefault(p.certDir, spec.DefaultPKIDir)}
			if insecure {
				fmt.Fprintln(a.Err, "warning: --insecure-skip-ca-verification: trusting whatever CA the endpoint presents")
			}
			res, err := join.Join(cmd.Context(), join.Options{
				URL: args[0], Token: token, CAHash: caHash, InsecureSkipCAVerification: insecure,
				Name: p.name, PeerURL: p.peerURL, ClientURL: p.clientURL, Paths: paths,
				Layout: pki.Layout(p.layout), KeyAlgorithm: alg, Wait: wait, Progress: a.say,
			})
			if err != nil {
				return err
			}
			a.joined(res, p.name)
			if noStart {
				fmt.Fprintf(a.Out, "next: etcdkit member run --config %s\n", res.ConfigPath)
				fmt.Fprintf(a.Err, "the join endpoint promotes the member once it runs and has caught up (or: etcdkit member promote %s --wait)\n", p.name)
				return nil
			}
			fmt.Fprintf(a.Err, "starting member %q in the foreground (Ctrl-C stops it; later starts: etcdkit member run --config %s)\n", p.name, res.ConfigPath)
			err = a.runMember(cmd.Context(), res.ConfigPath, false, func(*embed.Etcd) {
				go a.promoteJoined(cmd.Context(), res, p.name, p.clientURL)
			})
			if err != nil {
				return fmt.Errorf("%w\nthe member is in the cluster as a learner and its files are written: once the cause is fixed, start it with `etcdkit member run --config %s`", err, res.ConfigPath)
			}
			return nil
		},
	}
	addMemberPlaceFlags(cmd, &p)
	fs := cmd.Flags()
	fs.StringVar(&token, "token", "", "the join token (etk1.<id>.<secret>) from `etcdkit token create`")
	fs.StringVar(&caHash, "ca-hash", "", "sha256:<hex> pin of the cluster CA's public key, from `etcdkit token create`")
	fs.BoolVar(&insecure, "insecure-skip-ca-verification", false, "join without --ca-hash, trusting whatever CA the endpoint presents (unsafe)")
	fs.BoolVar(&noStart, "no-start", false, "write the files and print the command that starts the member, instead of starting it")
	fs.DurationVar(&wait, "wait", join.DefaultWait, "how long to wait while other members are joining")
	fs.StringVar(&specPath, "spec", "", "cluster spec: the member's name, URLs, directories and PKI layout come from it")
	fs.StringVar(&memberName, "member", "", "with --spec: the spec member this host is")
	_ = cmd.MarkFlagFilename("spec", "yaml", "yml")
	return cmd
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// joined says what the join wrote.
func (a *App) joined(res *join.Result, name string) {
	r := res.Response
	how := "added as a learner"
	if r.Existing {
		how = "already in the member list (an earlier join): its certificates were signed again"
	}
	fmt.Fprintf(a.Err, "member %q (id %s) %s to cluster %q (%s); CA %s\n", name, r.MemberID, how, r.ClusterName, r.ClusterID, res.CAHash)
	fmt.Fprintf(a.Err, "wrote %s\n", strings.Join(res.Files, ", "))
}

// promoteJoined promotes the member this process runs once it has caught
// up (the endpoint does too; whichever is first wins), and says so.
func (a *App) promoteJoined(ctx context.Context, res *join.Result, name, clientURL string) {
	t := &connect.Target{Settings: connect.Settings{
		Endpoints: append(slices.Clone(res.Response.ClientURLs), clientURL),
		CACert:    res.CACert, Cert: res.Client.Cert, Key: res.Client.Key,
		DialTimeout: connect.DefaultDialTimeout, CommandTimeout: connect.DefaultCommandTimeout,
	}}
	a.say(fmt.Sprintf("waiting for member %q to catch up with the leader, to promote it", name))
	_, err := ops.Promote(ctx, t, name, ops.PromoteOptions{Wait: true})
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		fmt.Fprintf(a.Err, "warning: member %q runs as a learner and was not promoted: %v; promote it with `etcdkit member promote %s --wait`\n", name, err, name)
		return
	}
	fmt.Fprintf(a.Out, "member %q joined the cluster as a voting member (config %s)\n", name, filepath.Clean(res.ConfigPath))
}
