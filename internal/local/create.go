package local

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/etcdkit/etcdkit/internal/fsutil"
	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/render"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// MaxMembers bounds `up`: each member gets its own 127.0.0.x address.
const MaxMembers = 9

// CreateOptions configures a new local cluster.
type CreateOptions struct {
	Members      int
	KeyAlgorithm pki.KeyAlgorithm
	// Now is the certificate clock (tests make expired certificates).
	Now func() time.Time
}

// Create makes a new local cluster in d: PKI, spec and one config per
// member. Everything is built in a staging directory and moved into place
// with the spec last, so an interrupted create leaves no cluster that looks
// complete.
func (d Dir) Create(o CreateOptions) (*spec.Cluster, error) {
	if o.Members < 1 || o.Members > MaxMembers {
		return nil, fmt.Errorf("invalid value %d for flag --members; use 1 to %d (member i runs on 127.0.0.i)", o.Members, MaxMembers)
	}
	if d.Exists() {
		return nil, fmt.Errorf("%s already holds a cluster", d)
	}
	if err := d.checkOwned(); err != nil {
		return nil, err
	}
	if err := d.removeLeftovers(); err != nil {
		return nil, err
	}
	if err := fsutil.MkdirAll(string(d)); err != nil {
		return nil, err
	}
	staging, err := os.MkdirTemp(string(d), ".staging-")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", d, err)
	}
	defer os.RemoveAll(staging)
	stage := Dir(staging)

	c := &spec.Cluster{Name: "etcdkit-local"}
	c.PKI.Dir = d.PKIDir()
	c.PKI.KeyAlgorithm = string(o.KeyAlgorithm)
	c.DataDir = d.path("members", "default", "data")
	for i := 1; i <= o.Members; i++ {
		m, err := newMember(d, i)
		if err != nil {
			return nil, err
		}
		c.Members = append(c.Members, m)
	}
	c.SetDefaults()
	if _, err := c.Validate(d.Spec()); err != nil {
		return nil, err
	}

	ca, err := pki.NewCA(pki.CARequest{CommonName: "etcdkit-local CA", KeyAlgorithm: o.KeyAlgorithm, Now: o.Now})
	if err != nil {
		return nil, err
	}
	if err := pki.WriteCA(stage.CA(), ca); err != nil {
		return nil, err
	}
	client, err := ca.Issue(pki.LeafRequest{Role: pki.RoleClient, CommonName: "etcdkit-admin", KeyAlgorithm: o.KeyAlgorithm})
	if err != nil {
		return nil, err
	}
	if err := pki.WriteLeaf(stage.Client(), client); err != nil {
		return nil, err
	}
	for i := range c.Members {
		if err := d.writeMember(stage, c, &c.Members[i], ca, render.StateNew); err != nil {
			return nil, err
		}
	}
	if err := c.Write(stage.Spec()); err != nil {
		return nil, err
	}
	for _, name := range []string{"pki", "members", "cluster.yaml"} {
		if err := os.Rename(filepath.Join(staging, name), d.path(name)); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	return c, fsutil.SyncDir(string(d))
}

// writeMember issues a member's certificates and writes its config into
// the staging dir, with paths that point at the final directory.
func (d Dir) writeMember(stage Dir, c *spec.Cluster, m *spec.Member, ca *pki.CA, state render.ClusterState) error {
	_, err := ops.MemberFiles{Cluster: c, Member: m, CA: ca, Etcd: render.EtcdOptions{State: state}}.Write(string(stage.Member(m.Name)))
	return err
}

// newMember places member i on 127.0.0.i with free ports. Ports are chosen
// once, here, and kept in the spec, so a restarted cluster keeps its URLs.
func newMember(d Dir, i int) (spec.Member, error) {
	ip := fmt.Sprintf("127.0.0.%d", i)
	ports, err := FreePorts(ip, 2)
	if err != nil {
		return spec.Member{}, err
	}
	name := fmt.Sprintf("m%d", i)
	md := d.Member(name)
	return spec.Member{
		Name:      name,
		Host:      ip,
		ClientURL: "https://" + net.JoinHostPort(ip, strconv.Itoa(ports[0])),
		PeerURL:   "https://" + net.JoinHostPort(ip, strconv.Itoa(ports[1])),
		DataDir:   md.Data(),
		PKIDir:    md.PKIDir(),
	}, nil
}

// FreePorts asks the kernel for n distinct free TCP ports on ip.
func FreePorts(ip string, n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return nil, fmt.Errorf("find a free port on %s: %w", ip, err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// checkOwned refuses a directory that holds anything `up` did not make.
func (d Dir) checkOwned() error {
	entries, err := os.ReadDir(string(d))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !isOwnEntry(e.Name()) {
			return fmt.Errorf("%s is not empty and was not made by `etcdkit up` (it has %q); choose another --dir", d, e.Name())
		}
	}
	return nil
}

// Reset deletes a local cluster, data included (`up --fresh`). It only
// touches what `up` made; the spec goes first so a crash part-way leaves a
// directory that is recreated rather than half-loaded.
func (d Dir) Reset() error {
	if err := d.checkOwned(); err != nil {
		return err
	}
	if err := os.Remove(d.Spec()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, name := range []string{"members", "pki"} {
		if err := os.RemoveAll(d.path(name)); err != nil {
			return err
		}
	}
	return nil
}

// removeLeftovers clears what an interrupted create left (no spec was
// written, so nothing ever ran), refusing if any member has data.
func (d Dir) removeLeftovers() error {
	datas, _ := filepath.Glob(d.path("members", "*", "data"))
	if len(datas) > 0 {
		return fmt.Errorf("%s has member data (%s) but no %s; restore the spec, or start over with --fresh", d, datas[0], filepath.Base(d.Spec()))
	}
	for _, name := range []string{"members", "pki"} {
		if err := os.RemoveAll(d.path(name)); err != nil {
			return err
		}
	}
	return nil
}
