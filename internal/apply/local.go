package apply

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/etcdkit/etcdkit/internal/connect"
	"github.com/etcdkit/etcdkit/internal/fsutil"
	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/render"
	"github.com/etcdkit/etcdkit/internal/snapshot"
)

// What apply keeps on the operator's machine, beside the CA: the client
// certificate kube-apiserver and operators use (also installed on every
// host), in the layout's name for it.
const (
	cfsslClientCN = "etcd-client"
	// ownClientValidity bounds the certificate apply itself connects with;
	// it lives in a temp dir for one run.
	ownClientValidity = 24 * time.Hour
	// renewWithin re-issues a certificate that expires this soon.
	renewWithin = pki.DefaultExpiryWarning
)

// credentials are the files of this run's own client certificate.
type credentials struct{ ca, cert, key string }

// loadCA loads the CA from CADir when it is there. In a dry run without
// one, a throwaway CA stands in so the plan can show what would be
// written; it is never saved.
func (r *run) loadCA() error {
	p := r.layout.CA(r.o.CADir)
	if fsutil.Exists(p.Cert) || fsutil.Exists(p.Key) {
		ca, err := pki.OpenCA(r.layout, r.o.CADir)
		if err != nil {
			return fmt.Errorf("the CA on this machine: %w", err)
		}
		r.ca, r.caExists = ca, true
		return nil
	}
	if r.o.DryRun {
		ca, err := pki.NewCA(r.caRequest())
		if err != nil {
			return err
		}
		r.ca = ca
	}
	return nil
}

func (r *run) caRequest() pki.CARequest {
	alg, _ := pki.ParseKeyAlgorithm(r.c.PKI.KeyAlgorithm)
	return pki.CARequest{CommonName: r.c.Name + "-ca", KeyAlgorithm: alg}
}

// ensureCA creates the CA in CADir when there is none (a change to this
// machine, in the plan).
func (r *run) ensureCA() error {
	if r.caExists {
		return nil
	}
	p := r.layout.CA(r.o.CADir)
	return r.plan.Do(LocalHost, "local", fmt.Sprintf("create the cluster's CA in %s (%s, %s)", r.o.CADir, filepath.Base(p.Cert), filepath.Base(p.Key)), func() error {
		ca, _, err := pki.InitCA(pki.InitOptions{Dir: r.o.CADir, Layout: r.layout, CARequest: r.caRequest()})
		if err != nil {
			return err
		}
		r.ca, r.caExists = ca, true
		return nil
	})
}

// clientPair is the client certificate kept beside the CA: cfssl's
// client.pem, or kubeadm's apiserver-etcd-client (one directory up).
func (r *run) clientPair() pki.Pair {
	return r.layout.ClientPair(r.o.CADir, r.clientName())
}

func (r *run) clientName() string {
	if r.layout == pki.LayoutKubeadm {
		return pki.KubeadmAPIServerClientCN
	}
	return cfsslClientCN
}

func (r *run) clientRequest(cn string, validity time.Duration) pki.LeafRequest {
	alg, _ := pki.ParseKeyAlgorithm(r.c.PKI.KeyAlgorithm)
	req := pki.LeafRequest{Role: pki.RoleClient, CommonName: cn, KeyAlgorithm: alg, Validity: validity}
	if r.layout == pki.LayoutKubeadm {
		req.Organization = []string{pki.KubeadmMastersGroup}
	}
	return req
}

// ensureClient makes sure the client pair beside the CA exists and is
// good (issued by this CA, a client certificate, not expiring soon), and
// returns it.
func (r *run) ensureClient() (*pki.Leaf, error) {
	p := r.clientPair()
	if fsutil.Exists(p.Cert) && r.caExists {
		leaf, err := pki.LoadLeaf(p)
		if err == nil {
			why := certProblem(r.ca, leaf.Cert, leaf.Chain, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
			if why == "" {
				return leaf, nil
			}
			err = fmt.Errorf("%s", why)
		}
		r.note(nil, "client certificate %s: %v: issuing a new one", p.Cert, err)
	}
	leaf, err := r.ca.Issue(r.clientRequest(r.clientName(), r.c.PKI.Validity.Duration))
	if err != nil {
		return nil, err
	}
	err = r.plan.Do(LocalHost, "local", fmt.Sprintf("write the client certificate %s and key %s", p.Cert, p.Key), func() error {
		if err := fsutil.MkdirAll(filepath.Dir(p.Cert)); err != nil {
			return err
		}
		return pki.WriteLeaf(p, leaf)
	})
	return leaf, err
}

// ownCredentials writes a short-lived client certificate for this run's
// own connections to etcd into a private temp dir.
func (r *run) ownCredentials() error {
	if r.creds != nil {
		return nil
	}
	dir, err := os.MkdirTemp("", "etcdkit-apply-")
	if err != nil {
		return err
	}
	r.tmp = dir
	leaf, err := r.ca.Issue(r.clientRequest("etcdkit-apply", ownClientValidity))
	if err != nil {
		return err
	}
	c := &credentials{ca: filepath.Join(dir, "ca.pem"), cert: filepath.Join(dir, "client.pem"), key: filepath.Join(dir, "client-key.pem")}
	if err := pki.WriteBundle(c.ca, r.ca.Bundle...); err != nil {
		return err
	}
	if err := pki.WriteLeaf(pki.Pair{Cert: c.cert, Key: c.key}, leaf); err != nil {
		return err
	}
	r.creds = c
	return nil
}

// target reaches the given client URLs with this run's credentials, with
// timeouts that allow for a loaded machine.
func (r *run) target(endpoints []string) *connect.Target {
	return &connect.Target{Settings: connect.Settings{
		Endpoints: slices.Clone(endpoints), CACert: r.creds.ca, Cert: r.creds.cert, Key: r.creds.key,
		DialTimeout: 5 * time.Second, CommandTimeout: 15 * time.Second,
	}}
}

// specTarget reaches every spec member's client URL.
func (r *run) specTarget() *connect.Target { return r.target(r.c.ClientURLs()) }

// backup is the snapshot before a membership change, into BackupDir on
// this machine.
func (r *run) backup(t *connect.Target) ops.Backup {
	return func(ctx context.Context, reason string) (string, error) {
		if err := fsutil.MkdirAll(r.o.BackupDir); err != nil {
			return "", fmt.Errorf("backup directory: %w (choose another with --backup-dir)", err)
		}
		info, err := snapshot.Save(ctx, t, r.o.BackupDir+string(filepath.Separator), snapshot.SaveOptions{Reason: reason})
		if err != nil {
			return "", err
		}
		if info.Warning != "" {
			r.warn("%s", info.Warning)
		}
		r.note(nil, "snapshot %s (%s)", info.Path, reason)
		return info.Path, nil
	}
}

// apiServerFlags renders kube-apiserver's --etcd-* flags, comments dropped.
func (r *run) apiServerFlags() string {
	f, err := render.Render(r.c, nil, render.FormatAPIServer, render.Options{Source: r.o.SpecPath})
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, l := range strings.Split(string(f.Data), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
