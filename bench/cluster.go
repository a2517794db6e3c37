package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdkit/etcdkit/internal/connect"
	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/fsutil"
	"github.com/etcdkit/etcdkit/internal/local"
	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/render"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// Server is the program a member runs: the two sides of every server
// benchmark.
type Server string

const (
	// ServerEtcdkit is `etcdkit member run --config FILE`.
	ServerEtcdkit Server = "etcdkit"
	// ServerStock is the stock etcd 3.7 server, `etcd --config-file FILE`.
	ServerStock Server = "stock"
)

// Label names the server in tables.
func (s Server) Label() string {
	if s == ServerStock {
		return "stock etcd 3.7"
	}
	return "etcdkit member run"
}

// ClusterOptions configures NewCluster.
type ClusterOptions struct {
	Members int
	// Tweak changes every member's config before it first starts (the same
	// for both servers: they read the same file).
	Tweak func(*etcdconf.Config)
}

// Cluster is a local TLS cluster made by local.Dir.Create (member i on
// 127.0.0.i, client certificates required on client and peer URLs) whose
// members run as separate processes of one Server.
type Cluster struct {
	Server Server
	Dir    local.Dir
	Spec   *spec.Cluster
	bin    *Binaries
	root   string
	procs  map[string]*exec.Cmd
}

// NewCluster creates, but does not start, a cluster in a new temporary
// directory.
func NewCluster(b *Binaries, server Server, o ClusterOptions) (*Cluster, error) {
	if o.Members == 0 {
		o.Members = 3
	}
	root, err := os.MkdirTemp("", "etcdkit-bench-"+string(server)+"-")
	if err != nil {
		return nil, err
	}
	d := local.Dir(filepath.Join(root, "c"))
	sp, err := d.Create(local.CreateOptions{Members: o.Members})
	if err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	c := &Cluster{Server: server, Dir: d, Spec: sp, bin: b, root: root, procs: map[string]*exec.Cmd{}}
	if o.Tweak != nil {
		for _, m := range sp.Members {
			if err := c.tweak(m.Name, o.Tweak); err != nil {
				c.Close()
				return nil, err
			}
		}
	}
	return c, nil
}

// StartCluster is NewCluster and Start: a running, healthy cluster, or an
// error and nothing left behind.
func StartCluster(b *Binaries, server Server, o ClusterOptions) (*Cluster, error) {
	c, err := NewCluster(b, server, o)
	if err != nil {
		return nil, err
	}
	if err := c.Start(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) tweak(name string, f func(*etcdconf.Config)) error {
	path := c.Dir.Member(name).Config()
	cfg, err := etcdconf.Load(path)
	if err != nil {
		return err
	}
	f(cfg)
	data, err := cfg.Marshal()
	if err != nil {
		return err
	}
	return fsutil.WriteFile(path, data, fsutil.PublicFile)
}

// Names lists the members of the spec.
func (c *Cluster) Names() []string {
	var out []string
	for _, m := range c.Spec.Members {
		out = append(out, m.Name)
	}
	return out
}

// Start starts the named members (all when none) and waits until every
// started member is healthy.
func (c *Cluster) Start(names ...string) error {
	if len(names) == 0 {
		names = c.Names()
	}
	for _, n := range names {
		if err := c.StartConfig(n, c.Dir.Member(n).Config()); err != nil {
			return err
		}
	}
	return c.WaitHealthy(2*time.Minute, names...)
}

// StartConfig starts one member process from a config file, logging to
// member.log beside the config. It does not wait.
func (c *Cluster) StartConfig(name, config string) error {
	return c.StartConfigAs(c.Server, name, config)
}

// StartConfigAs is StartConfig with another server than the cluster's (a
// stock learner joining etcdkit members, or the other way round).
func (c *Cluster) StartConfigAs(server Server, name, config string) error {
	args := []string{"member", "run", "--config", config}
	exe := c.bin.Etcdkit
	if server == ServerStock {
		exe, args = c.bin.StockEtcd, []string{"--config-file", config}
	}
	logf, err := os.OpenFile(filepath.Join(filepath.Dir(config), "member.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, fsutil.PrivateFile)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("member %q: start %s: %w", name, exe, err)
	}
	c.procs[name] = cmd
	return nil
}

// Kill stops a member with sig (SIGKILL for a crash) and waits for it.
func (c *Cluster) Kill(name string, sig syscall.Signal) {
	cmd, ok := c.procs[name]
	if !ok {
		return
	}
	delete(c.procs, name)
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	if sig == syscall.SIGKILL {
		_ = cmd.Wait()
		return
	}
	stop(cmd)
}

// Close stops every member and deletes the cluster's directory.
func (c *Cluster) Close() {
	for n, cmd := range c.procs {
		stop(cmd)
		delete(c.procs, n)
	}
	os.RemoveAll(c.root)
}

// Log is a member's log file (for error messages).
func (c *Cluster) Log(name string) string { return c.Dir.Member(name).Log() }

// Target connects to the named members (all of the spec when none).
func (c *Cluster) Target(names ...string) (*connect.Target, error) {
	s, err := c.Dir.Settings()
	if err != nil {
		return nil, err
	}
	if len(names) > 0 {
		s.Endpoints = nil
		for _, n := range names {
			m, ok := c.Spec.Member(n)
			if !ok {
				return nil, fmt.Errorf("no member %q", n)
			}
			s.Endpoints = append(s.Endpoints, m.ClientURL)
		}
	}
	s.DialTimeout, s.CommandTimeout = 2*time.Second, 5*time.Second
	return connect.Resolve(s, connect.Settings{})
}

// Client opens a client to the named members (all when none).
func (c *Cluster) Client(names ...string) (*clientv3.Client, error) {
	t, err := c.Target(names...)
	if err != nil {
		return nil, err
	}
	return t.Client()
}

// Env is the ETCDCTL_* environment for etcdctl and etcdkit's client
// commands, pointed at the named members (all when none).
func (c *Cluster) Env(names ...string) ([]string, error) {
	t, err := c.Target(names...)
	if err != nil {
		return nil, err
	}
	return []string{
		"ETCDCTL_ENDPOINTS=" + strings.Join(t.Endpoints, ","),
		"ETCDCTL_CACERT=" + t.CACert,
		"ETCDCTL_CERT=" + t.Cert,
		"ETCDCTL_KEY=" + t.Key,
	}, nil
}

// TLSFlags are the --cacert/--cert/--key flags of etcdctl and etcdkit.
func (c *Cluster) TLSFlags() []string {
	client := c.Dir.Client()
	return []string{"--cacert", c.Dir.CA().Cert, "--cert", client.Cert, "--key", client.Key}
}

// WaitHealthy waits until the named members (all when none) are healthy.
func (c *Cluster) WaitHealthy(limit time.Duration, names ...string) error {
	t, err := c.Target(names...)
	if err != nil {
		return err
	}
	t.CommandTimeout = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	if _, err := ops.WaitHealthy(ctx, t, 20*time.Millisecond); err != nil {
		return fmt.Errorf("%s cluster not healthy (logs in %s): %w", c.Server, filepath.Dir(string(c.Dir.Member(c.Names()[0]))), err)
	}
	return nil
}

// Leader is the name of the member that leads now.
func (c *Cluster) Leader() (string, error) {
	t, err := c.Target()
	if err != nil {
		return "", err
	}
	for _, st := range ops.Status(context.Background(), t) {
		if st.IsLeader {
			return st.Name, nil
		}
	}
	return "", fmt.Errorf("%s cluster has no leader", c.Server)
}

// NewMember prepares a member that is not in the spec yet: name on
// 127.0.0.ip with free ports, its server and peer certificates issued by
// the cluster's CA, and a config that joins the running cluster whose
// members are others plus itself. It returns the member and its config.
func (c *Cluster) NewMember(name string, ip int, others []string) (*spec.Member, string, error) {
	m, err := c.PlanMember(name, ip)
	if err != nil {
		return nil, "", err
	}
	if err := c.IssueMemberCerts(m); err != nil {
		return nil, "", err
	}
	config, err := c.WriteJoinConfig(m, others)
	return m, config, err
}

// PlanMember places a new member on 127.0.0.ip with free ports, its files
// in the cluster directory like the others'.
func (c *Cluster) PlanMember(name string, ip int) (*spec.Member, error) {
	host := fmt.Sprintf("127.0.0.%d", ip)
	ports, err := local.FreePorts(host, 2)
	if err != nil {
		return nil, err
	}
	md := c.Dir.Member(name)
	return &spec.Member{
		Name: name, Host: host,
		ClientURL: "https://" + net.JoinHostPort(host, strconv.Itoa(ports[0])),
		PeerURL:   "https://" + net.JoinHostPort(host, strconv.Itoa(ports[1])),
		DataDir:   md.Data(), PKIDir: md.PKIDir(),
	}, nil
}

// IssueMemberCerts issues a member's server and peer certificates with the
// cluster's CA (etcdkit's PKI, outside any measured time).
func (c *Cluster) IssueMemberCerts(m *spec.Member) error {
	ca, err := pki.LoadCA(c.Dir.CA())
	if err != nil {
		return err
	}
	if err := pki.WriteBundle(pki.LayoutCfssl.CA(m.PKIDir).Cert, ca.Bundle...); err != nil {
		return err
	}
	for _, role := range []pki.Role{pki.RoleServer, pki.RolePeer} {
		leaf, err := ca.Issue(pki.LeafRequest{Role: role, CommonName: m.Name, Hosts: render.MemberHosts(m)})
		if err != nil {
			return err
		}
		if err := pki.WriteLeaf(pki.LayoutCfssl.Leaf(m.PKIDir, role), leaf); err != nil {
			return err
		}
	}
	return nil
}

// WriteJoinConfig writes the config of a member joining the running
// cluster (initial-cluster-state existing), whose initial cluster is others
// plus itself, and returns its path.
func (c *Cluster) WriteJoinConfig(m *spec.Member, others []string) (string, error) {
	var initial []string
	for _, n := range others {
		o, ok := c.Spec.Member(n)
		if !ok {
			return "", fmt.Errorf("no member %q", n)
		}
		initial = append(initial, o.Name+"="+o.PeerURL)
	}
	initial = append(initial, m.Name+"="+m.PeerURL)
	cfg, err := render.EtcdConfig(c.Spec, m, render.EtcdOptions{State: render.StateExisting, InitialCluster: strings.Join(initial, ",")})
	if err != nil {
		return "", err
	}
	data, err := cfg.Marshal()
	if err != nil {
		return "", err
	}
	path := c.Dir.Member(m.Name).Config()
	if err := fsutil.MkdirAll(filepath.Dir(path)); err != nil {
		return "", err
	}
	return path, fsutil.WriteFile(path, data, fsutil.PublicFile)
}
