package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/etcdkit/etcdkit/internal/local"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/render"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// The runbook's cfssl JSON, as etcd's own "generate certificates with
// cfssl" guide writes it: one CA config with server, peer and client
// profiles, and one CSR per certificate.
var cfsslCAConfig = map[string]any{
	"signing": map[string]any{
		"default": map[string]any{"expiry": "43800h"},
		"profiles": map[string]any{
			"server": map[string]any{"expiry": "43800h", "usages": []string{"signing", "key encipherment", "server auth", "client auth"}},
			"peer":   map[string]any{"expiry": "43800h", "usages": []string{"signing", "key encipherment", "server auth", "client auth"}},
			"client": map[string]any{"expiry": "43800h", "usages": []string{"signing", "key encipherment", "client auth"}},
		},
	},
}

func cfsslCSR(cn string, hosts []string) map[string]any {
	csr := map[string]any{"CN": cn, "key": map[string]any{"algo": "ecdsa", "size": 256}}
	if hosts != nil {
		csr["hosts"] = hosts
	}
	return csr
}

// Cfssl runs the runbook's certificate steps with the stock cfssl and
// cfssljson in a work directory.
type Cfssl struct {
	b   *Binaries
	dir string
}

// NewCfssl writes the CA config into dir (the runbook's JSON files).
func NewCfssl(b *Binaries, dir string) (*Cfssl, error) {
	c := &Cfssl{b: b, dir: dir}
	return c, c.writeJSON("ca-config.json", cfsslCAConfig)
}

func (c *Cfssl) writeJSON(name string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.dir, name), data, 0o644)
}

// InitCA is `cfssl gencert -initca ca-csr.json | cfssljson -bare ca`.
func (c *Cfssl) InitCA() error {
	if err := c.writeJSON("ca-csr.json", cfsslCSR("etcd CA", nil)); err != nil {
		return err
	}
	return c.pipe("ca", "gencert", "-initca", "ca-csr.json")
}

// Issue is `cfssl gencert -ca ... -profile PROFILE NAME.json | cfssljson
// -bare NAME`, leaving NAME.pem and NAME-key.pem in the work dir.
func (c *Cfssl) Issue(name, profile, cn string, hosts []string) error {
	if err := c.writeJSON(name+".json", cfsslCSR(cn, hosts)); err != nil {
		return err
	}
	return c.pipe(name, "gencert", "-ca=ca.pem", "-ca-key=ca-key.pem", "-config=ca-config.json", "-profile="+profile, name+".json")
}

func (c *Cfssl) pipe(bare string, args ...string) error {
	gen := exec.Command(c.b.Cfssl, args...)
	gen.Dir = c.dir
	var certs, errOut bytes.Buffer
	gen.Stdout, gen.Stderr = &certs, &errOut
	if err := gen.Run(); err != nil {
		return fmt.Errorf("cfssl %v: %w\n%s", args, err, errOut.String())
	}
	js := exec.Command(c.b.Cfssljson, "-bare", bare)
	js.Dir = c.dir
	js.Stdin = &certs
	if out, err := js.CombinedOutput(); err != nil {
		return fmt.Errorf("cfssljson -bare %s: %w\n%s", bare, err, out)
	}
	return nil
}

// Install copies NAME.pem and NAME-key.pem to a pair's paths (the
// runbook's scp/rsync of keys to each host).
func (c *Cfssl) Install(name string, p pki.Pair) error {
	for src, dst := range map[string]string{name + ".pem": p.Cert, name + "-key.pem": p.Key} {
		data, err := os.ReadFile(filepath.Join(c.dir, src))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// RunbookPKI makes every certificate an `up` directory's configs name, the
// runbook's way: a cfssl CA, a server and a peer certificate per member for
// its addresses, one client certificate, each copied where the configs
// expect it.
func RunbookPKI(b *Binaries, d local.Dir, c *spec.Cluster, work string) error {
	cf, err := NewCfssl(b, work)
	if err != nil {
		return err
	}
	if err := cf.InitCA(); err != nil {
		return err
	}
	caOnly := func(dst string) error { return copyFile(filepath.Join(work, "ca.pem"), dst, 0o644) }
	if err := caOnly(d.CA().Cert); err != nil {
		return err
	}
	if err := cf.Issue("client", "client", "etcd-admin", nil); err != nil {
		return err
	}
	if err := cf.Install("client", d.Client()); err != nil {
		return err
	}
	for i := range c.Members {
		m := &c.Members[i]
		ssl := c.MemberPKIDir(m)
		if err := caOnly(pki.LayoutCfssl.CA(ssl).Cert); err != nil {
			return err
		}
		for _, role := range []pki.Role{pki.RoleServer, pki.RolePeer} {
			name := m.Name + "-" + string(role)
			if err := cf.Issue(name, string(role), m.Name, render.MemberHosts(m)); err != nil {
				return err
			}
			if err := cf.Install(name, pki.LayoutCfssl.Leaf(ssl, role)); err != nil {
				return err
			}
		}
	}
	return nil
}

// copyFile copies a small file (a certificate or key) with mode.
func copyFile(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, mode)
}

// removePKI deletes every certificate and key of an `up` directory, so the
// runbook makes them anew.
func removePKI(d local.Dir, c *spec.Cluster) error {
	dirs := []string{d.PKIDir()}
	for i := range c.Members {
		dirs = append(dirs, c.MemberPKIDir(&c.Members[i]))
	}
	for _, dir := range dirs {
		files, _ := filepath.Glob(filepath.Join(dir, "*.pem"))
		for _, f := range files {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	return nil
}
