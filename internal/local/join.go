package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"syscall"

	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/ops/replace"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/render"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// maxAddress is the last 127.0.0.x a member can get.
const maxAddress = 254

// Running reports whether an `etcdkit up` runs on d (it holds the lock),
// and its pid.
func (d Dir) Running() (pid string, running bool) {
	f, err := os.Open(d.lockFile())
	if err != nil {
		return "", false
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		b, _ := os.ReadFile(d.lockFile())
		return string(b), true
	}
	if err == nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	}
	return "", false
}

// BackupDir is where membership changes on the local cluster keep their
// snapshots and progress files.
func (d Dir) BackupDir() string { return d.path("backups") }

var memberDirName = regexp.MustCompile(`^m(\d+)`)

// NextMember places a new member mN on 127.0.0.N with free ports, N one
// past the highest number a member of the spec or a member directory
// (kept after a removal) has used, so no address or directory is reused.
func (d Dir) NextMember(c *spec.Cluster) (spec.Member, error) {
	highest := 0
	seen := func(name string) {
		if m := memberDirName.FindStringSubmatch(name); m != nil {
			if n, err := strconv.Atoi(m[1]); err == nil {
				highest = max(highest, n)
			}
		}
	}
	for _, m := range c.Members {
		seen(m.Name)
	}
	entries, _ := os.ReadDir(d.path("members"))
	for _, e := range entries {
		seen(e.Name())
	}
	if highest+1 > maxAddress {
		return spec.Member{}, fmt.Errorf("%s has used every address up to 127.0.0.%d; start over with `etcdkit up --fresh`", d, maxAddress)
	}
	return newMember(d, highest+1)
}

// MemberSpec turns a replacement's new member back into the spec entry of
// the local cluster (a re-run continues with the URLs it chose).
func (d Dir) MemberSpec(n replace.NewMember) spec.Member {
	md := d.Member(n.Name)
	m := spec.Member{Name: n.Name, PeerURL: n.PeerURL, ClientURL: n.ClientURL, DataDir: md.Data(), PKIDir: md.PKIDir()}
	if h := pki.HostsForURLs(n.PeerURL); len(h) > 0 {
		m.Host = h[0]
	}
	return m
}

// Host is the replace.Host of a new member of the local cluster: its
// directory is written like every other member's, and it is added to the
// spec (the member it replaces dropped), which the running `up` notices
// and starts it.
func (d Dir) Host(m spec.Member) replace.Host { return joinHost{d: d, m: m} }

type joinHost struct {
	d Dir
	m spec.Member
}

func (h joinHost) Write(_ context.Context, initialCluster string, old *replace.MemberRecord) (*ops.Written, error) {
	c, err := h.d.Load()
	if err != nil {
		return nil, err
	}
	ca, err := pki.LoadCA(h.d.CA())
	if err != nil {
		return nil, fmt.Errorf("the CA of %s: %w", h.d, err)
	}
	w, err := ops.MemberFiles{
		Cluster: c, Member: &h.m, CA: ca,
		Etcd: render.EtcdOptions{State: render.StateExisting, InitialCluster: initialCluster},
	}.Write(string(h.d.Member(h.m.Name)))
	if err != nil {
		return nil, err
	}
	var members []spec.Member
	for _, m := range c.Members {
		if m.Name != h.m.Name && (old == nil || m.Name != old.Name) {
			members = append(members, m)
		}
	}
	c.Members = append(members, h.m)
	return w, c.Write(h.d.Spec())
}

func (h joinHost) StartHint() string {
	return fmt.Sprintf("the `etcdkit up` running on %s starts it", h.d)
}

// RemoveMember drops a member from the spec once it has left the cluster;
// the running `up` stops its process. Its directory is kept: its log
// tells what happened, and the name is not reused.
func (d Dir) RemoveMember(name string) error {
	c, err := d.Load()
	if err != nil {
		return err
	}
	var members []spec.Member
	for _, m := range c.Members {
		if m.Name != name {
			members = append(members, m)
		}
	}
	if len(members) == len(c.Members) {
		return nil
	}
	c.Members = members
	return c.Write(d.Spec())
}
