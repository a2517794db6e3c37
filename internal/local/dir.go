// Package local is `etcdkit up`: a secure multi-member cluster on one
// machine, member i on 127.0.0.i, each member a separate `etcdkit member
// run` process. The directory it keeps is laid out like a set of hosts, so
// everything learnt on it carries over to real ones:
//
//	DIR/cluster.yaml                  the cluster spec
//	DIR/pki/{ca,client}{,-key}.pem    the CA and the operator's client pair
//	DIR/members/NAME/etcd.yaml        the member's etcd config
//	DIR/members/NAME/ssl/             ca.pem, server.pem, peer.pem and keys
//	DIR/members/NAME/data/            the member's data dir
//	DIR/members/NAME/member.log       the member's log
package local

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/etcdkit/etcdkit/internal/connect"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// DefaultDir is where `up` keeps its cluster unless --dir says otherwise.
const DefaultDir = "etcdkit-local"

// Dir is an `up` directory.
type Dir string

func (d Dir) path(elem ...string) string {
	return filepath.Join(append([]string{string(d)}, elem...)...)
}

// Spec is the cluster spec file.
func (d Dir) Spec() string { return d.path("cluster.yaml") }

// PKIDir holds the CA and the operator's client certificate.
func (d Dir) PKIDir() string { return d.path("pki") }

// CA is the CA pair.
func (d Dir) CA() pki.Pair { return pki.LayoutCfssl.CA(d.PKIDir()) }

// Client is the operator's client pair, the one etcdctl is pointed at.
func (d Dir) Client() pki.Pair { return pki.LayoutCfssl.Leaf(d.PKIDir(), pki.RoleClient) }

// Member is the directory of one member.
func (d Dir) Member(name string) MemberDir { return MemberDir(d.path("members", name)) }

// lockFile is held by the running `up` so two never share a directory.
func (d Dir) lockFile() string { return d.path(".up.lock") }

// MemberDir is one member's directory, laid out like a host.
type MemberDir string

func (m MemberDir) Config() string { return filepath.Join(string(m), "etcd.yaml") }
func (m MemberDir) PKIDir() string { return filepath.Join(string(m), "ssl") }
func (m MemberDir) Data() string   { return filepath.Join(string(m), "data") }
func (m MemberDir) Log() string    { return filepath.Join(string(m), "member.log") }
func (m MemberDir) PIDFile() string {
	return filepath.Join(string(m), "member.pid")
}

// Exists reports whether d holds a complete `up` cluster.
func (d Dir) Exists() bool {
	_, err := os.Stat(d.Spec())
	return err == nil
}

// Load reads the cluster spec of an `up` directory.
func (d Dir) Load() (*spec.Cluster, error) {
	c, _, err := spec.Load(d.Spec())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s holds no cluster made by `etcdkit up` (no %s)", d, filepath.Base(d.Spec()))
		}
		return nil, err
	}
	return c, nil
}

// Settings are the connection settings of the cluster in d.
func (d Dir) Settings() (connect.Settings, error) {
	c, err := d.Load()
	if err != nil {
		return connect.Settings{}, err
	}
	client := d.Client()
	return connect.Settings{
		Endpoints: c.ClientURLs(),
		CACert:    d.CA().Cert,
		Cert:      client.Cert,
		Key:       client.Key,
	}, nil
}

// Source is a discovery source for client commands. With explicit (the
// user passed --dir) a missing cluster is an error; otherwise the default
// directory is used only when it exists.
func Source(dir string, explicit bool) connect.Source {
	return connect.Source{
		Name: sourcePrefix + dir,
		Find: func() (connect.Settings, bool, error) {
			d := Dir(dir)
			if !explicit && !d.Exists() {
				return connect.Settings{}, false, nil
			}
			s, err := d.Settings()
			if err != nil {
				return s, false, err
			}
			return s, true, nil
		},
	}
}

const sourcePrefix = "etcdkit up dir "

// SourceDir is the `up` directory a target's settings came from, if any.
func SourceDir(t *connect.Target) (Dir, bool) {
	for _, s := range t.Source {
		if dir, ok := strings.CutPrefix(s, sourcePrefix); ok {
			if abs, err := filepath.Abs(dir); err == nil {
				return Dir(abs), true
			}
			return Dir(dir), true
		}
	}
	return "", false
}

// ownEntries are the names `up` creates in its directory; anything else
// means the directory is someone else's and must not be touched.
func isOwnEntry(name string) bool {
	switch name {
	case "cluster.yaml", "pki", "members", ".up.lock", "backups":
		return true
	}
	return strings.HasPrefix(name, ".staging-")
}
