package cli

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/etcdkit/etcdkit/internal/connect"
	"github.com/etcdkit/etcdkit/internal/kubeadm"
	"github.com/etcdkit/etcdkit/internal/local"
)

// clientFlags are the connection flags of every command that talks to a
// cluster, spelled as etcdctl spells them, plus the legacy v2 spellings.
type clientFlags struct {
	endpoints          []string
	cacert, cert, key  string
	insecureSkipVerify bool
	dialTimeout        time.Duration
	commandTimeout     time.Duration
	dir                string
	verbose            bool
	kubeadm            kubeadmFlags
	// fromKubeadm is set by target when the kubeadm manifest was used.
	fromKubeadm bool
}

// settings are what the connection flags say.
func (f *clientFlags) settings() connect.Settings {
	return connect.Settings{
		Endpoints: f.endpoints, CACert: f.cacert, Cert: f.cert, Key: f.key,
		InsecureSkipVerify: f.insecureSkipVerify, DialTimeout: f.dialTimeout, CommandTimeout: f.commandTimeout,
	}
}

// kubeadmFlags point at a kubeadm node's etcd manifest.
type kubeadmFlags struct{ manifest, root string }

func (k *kubeadmFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&k.manifest, "kubeadm-manifest", "", "a kubeadm control plane's etcd static pod manifest (default "+kubeadm.EtcdManifest+")")
	fs.StringVar(&k.root, "kubeadm-root", "", "read the kubeadm manifest, and every file it names, under this directory (a copy of a node's /)")
	_ = cmd.MarkFlagFilename("kubeadm-manifest", "yaml", "yml")
	_ = cmd.MarkFlagDirname("kubeadm-root")
}

// location is the manifest the flags name, and whether they were given.
func (k *kubeadmFlags) location() (root kubeadm.Root, manifest string, explicit bool) {
	manifest = k.manifest
	if manifest == "" {
		manifest = kubeadm.EtcdManifest
	}
	return kubeadm.Root(k.root), manifest, k.manifest != "" || k.root != ""
}

// sibling is another manifest in the etcd manifest's directory.
func (k *kubeadmFlags) sibling(name string) string {
	_, manifest, _ := k.location()
	return filepath.Join(filepath.Dir(manifest), name)
}

func addClientFlags(cmd *cobra.Command, f *clientFlags) {
	fs := cmd.Flags()
	fs.StringSliceVar(&f.endpoints, "endpoints", nil, "gRPC endpoints (env ETCDCTL_ENDPOINTS)")
	fs.StringVar(&f.cacert, "cacert", "", "verify certificates of TLS-enabled secure servers using this CA bundle (env ETCDCTL_CACERT)")
	fs.StringVar(&f.cert, "cert", "", "identify secure client using this TLS certificate file (env ETCDCTL_CERT)")
	fs.StringVar(&f.key, "key", "", "identify secure client using this TLS key file (env ETCDCTL_KEY)")
	// etcdctl v2's names, still in many runbooks.
	fs.StringVar(&f.cacert, "ca-file", "", "same as --cacert")
	fs.StringVar(&f.cert, "cert-file", "", "same as --cert")
	fs.StringVar(&f.key, "key-file", "", "same as --key")
	fs.BoolVar(&f.insecureSkipVerify, "insecure-skip-tls-verify", false, "skip server certificate verification (unsafe)")
	fs.DurationVar(&f.dialTimeout, "dial-timeout", 0, "dial timeout for client connections (default 2s)")
	fs.DurationVar(&f.commandTimeout, "command-timeout", 0, "timeout for each request (default 5s)")
	fs.StringVar(&f.dir, "dir", "", "the directory of a cluster made by 'etcdkit up' (default ./"+local.DefaultDir+" when it exists)")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "say where the endpoints and certificates came from")
	for _, legacy := range []string{"ca-file", "cert-file", "key-file"} {
		_ = fs.MarkHidden(legacy)
	}
	_ = cmd.MarkFlagFilename("cacert")
	_ = cmd.MarkFlagFilename("cert")
	_ = cmd.MarkFlagFilename("key")
	_ = cmd.MarkFlagDirname("dir")
	f.kubeadm.add(cmd)
}

// target resolves the connection: flags, then ETCDCTL_* variables, then
// the first discovery source that finds something, in the order
// docs/connecting.md documents: --dir or the kubeadm flags when given (only
// that source), otherwise ./etcdkit-local, /etc/etcd/etcd.conf,
// /etc/etcd/ssl, then kubeadm's /etc/kubernetes/manifests/etcd.yaml.
func (a *App) target(cmd *cobra.Command, f *clientFlags) (*connect.Target, error) {
	flags := f.settings()
	root, manifest, fromKubeadm := f.kubeadm.location()
	kubeadmSource := kubeadm.Source(root, manifest, fromKubeadm)
	var sources []connect.Source
	switch {
	case f.dir != "" && fromKubeadm:
		return nil, usagef("give --dir (an etcdkit up cluster) or --kubeadm-manifest/--kubeadm-root (a kubeadm node), not both")
	case f.dir != "":
		sources = append(sources, local.Source(f.dir, true))
	case fromKubeadm:
		sources = append(sources, kubeadmSource)
	default:
		sources = append(sources, local.Source(local.DefaultDir, false), connect.EtcdConf(connect.DefaultEtcdConf),
			connect.SSLDir(connect.DefaultSSLDir), kubeadmSource)
	}
	t, err := connect.Resolve(flags, connect.Env(a.Getenv), sources...)
	if err != nil {
		return nil, usageError{err}
	}
	f.fromKubeadm = slices.Contains(t.Source, kubeadmSource.Name)
	if f.verbose {
		fmt.Fprintf(a.Err, "using endpoints %s from %s\n", strings.Join(t.Endpoints, ","), strings.Join(t.Source, ", then "))
		for _, kv := range [][2]string{{"cacert", t.CACert}, {"cert", t.Cert}, {"key", t.Key}} {
			if kv[1] != "" {
				fmt.Fprintf(a.Err, "  %-6s %s\n", kv[0], kv[1])
			}
		}
	}
	return t, nil
}
