package render

import (
	"fmt"
	"path/filepath"
	"strings"

	etcdversion "go.etcd.io/etcd/api/v3/version"

	"github.com/etcdkit/etcdkit/internal/spec"
)

// Format is one kind of file Render makes.
type Format string

const (
	// FormatYAML is etcd's own config file (etcd --config-file, etcdkit
	// member run --config).
	FormatYAML Format = "yaml"
	// FormatEnv is the ETCD_* environment file a unit's EnvironmentFile=
	// reads; it says what the YAML says.
	FormatEnv Format = "env"
	// FormatSystemd is the member's systemd unit.
	FormatSystemd Format = "systemd"
	// FormatStaticPod is a kubeadm-style /etc/kubernetes/manifests/etcd.yaml.
	FormatStaticPod Format = "static-pod"
	// FormatAPIServer is kube-apiserver's --etcd-* flags for the cluster.
	FormatAPIServer Format = "apiserver"
	// FormatKubeadm is kubeadm's ClusterConfiguration etcd.external block.
	FormatKubeadm Format = "kubeadm"
)

// Formats lists every format, in the order `--format all` renders them.
func Formats() []Format {
	return []Format{FormatYAML, FormatEnv, FormatSystemd, FormatStaticPod, FormatAPIServer, FormatKubeadm}
}

// ParseFormat validates a format name.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats() {
		if string(f) == s {
			return f, nil
		}
	}
	names := make([]string, len(Formats()))
	for i, f := range Formats() {
		names[i] = string(f)
	}
	return "", fmt.Errorf("invalid format %q; options are %s, all", s, strings.Join(names, ", "))
}

// FileName is where a format's file goes under an output directory; the
// static pod mirrors /etc/kubernetes, so `--out /etc/kubernetes` puts it
// where the kubelet reads it.
func (f Format) FileName() string {
	switch f {
	case FormatYAML:
		return "etcd.yaml"
	case FormatEnv:
		return "etcd.conf"
	case FormatSystemd:
		return "etcd.service"
	case FormatStaticPod:
		return filepath.Join("manifests", "etcd.yaml")
	case FormatAPIServer:
		return "kube-apiserver-etcd.flags"
	case FormatKubeadm:
		return "kubeadm-etcd-external.yaml"
	}
	return string(f)
}

// Engine is what runs a member under systemd.
type Engine string

const (
	// EngineEtcdkit runs `etcdkit member run` (embedded etcd).
	EngineEtcdkit Engine = "etcdkit"
	// EngineStock runs the stock etcd binary from the env file.
	EngineStock Engine = "stock"
)

// ParseEngine validates an engine name.
func ParseEngine(s string) (Engine, error) {
	switch Engine(s) {
	case "", EngineEtcdkit:
		return EngineEtcdkit, nil
	case EngineStock:
		return EngineStock, nil
	}
	return "", fmt.Errorf("invalid engine %q; options are etcdkit, stock", s)
}

// Defaults for paths on a member's host.
const (
	DefaultEtcdkitBinary = "/usr/local/bin/etcdkit"
	DefaultStockBinary   = "/usr/local/bin/etcd"
	DefaultYAMLPath      = "/etc/etcd/etcd.yaml"
	DefaultEnvPath       = "/etc/etcd/etcd.conf"
)

// Options tunes Render.
type Options struct {
	EtcdOptions
	// Engine runs the member under systemd: etcdkit (default) or stock.
	Engine Engine
	// Binary is the program the unit runs; defaults by engine.
	Binary string
	// ConfigPath is where the member's config lives on its host (what the
	// unit reads); defaults to /etc/etcd/etcd.yaml for etcdkit and
	// /etc/etcd/etcd.conf for stock.
	ConfigPath string
	// Image is the static pod's etcd image; defaults to
	// registry.k8s.io/etcd at the embedded etcd's version.
	Image string
	// Source names the spec in header comments.
	Source string
}

func (o Options) withDefaults() Options {
	if o.Engine == "" {
		o.Engine = EngineEtcdkit
	}
	if o.Binary == "" {
		o.Binary = DefaultEtcdkitBinary
		if o.Engine == EngineStock {
			o.Binary = DefaultStockBinary
		}
	}
	if o.ConfigPath == "" {
		o.ConfigPath = DefaultYAMLPath
		if o.Engine == EngineStock {
			o.ConfigPath = DefaultEnvPath
		}
	}
	if o.Image == "" {
		o.Image = DefaultImage()
	}
	if o.State == "" {
		o.State = StateNew
	}
	return o
}

// DefaultImage is the etcd image of the version etcdkit embeds, as
// kubeadm names them.
func DefaultImage() string { return "registry.k8s.io/etcd:" + etcdversion.Version + "-0" }

// File is one rendered file.
type File struct {
	Format Format `json:"format"`
	// Name is the file's path relative to an output directory.
	Name string `json:"name"`
	Data []byte `json:"-"`
}

// Render makes one file for member m of c. apiserver and kubeadm describe
// the whole cluster; m may be nil for them.
func Render(c *spec.Cluster, m *spec.Member, f Format, o Options) (File, error) {
	o = o.withDefaults()
	var data []byte
	var err error
	switch f {
	case FormatAPIServer:
		data, err = APIServerFlags(c, o)
	case FormatKubeadm:
		data, err = KubeadmExternal(c, o)
	default:
		if m == nil {
			return File{}, fmt.Errorf("format %s is per member: name one", f)
		}
		switch f {
		case FormatYAML:
			data, err = etcdYAML(c, m, o)
		case FormatEnv:
			data, err = etcdEnv(c, m, o)
		case FormatSystemd:
			data, err = SystemdUnit(c, m, o)
		case FormatStaticPod:
			data, err = StaticPod(c, m, o)
		default:
			_, err = ParseFormat(string(f))
		}
	}
	if err != nil {
		return File{}, fmt.Errorf("render %s for member %s: %w", f, memberName(m), err)
	}
	return File{Format: f, Name: f.FileName(), Data: data}, nil
}

func memberName(m *spec.Member) string {
	if m == nil {
		return "(cluster)"
	}
	return fmt.Sprintf("%q", m.Name)
}

// header is the comment every rendered file starts with.
func header(c *spec.Cluster, m *spec.Member, what string, o Options) []string {
	from := ""
	if o.Source != "" {
		from = " from " + filepath.Base(o.Source)
	}
	if m == nil {
		return []string{fmt.Sprintf("%s for etcd cluster %q, rendered by etcdkit%s.", what, c.Name, from)}
	}
	return []string{fmt.Sprintf("%s of member %q of etcd cluster %q, rendered by etcdkit%s.", what, m.Name, c.Name, from)}
}

func comment(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(strings.TrimRight("# "+l, " ") + "\n")
	}
	return b.String()
}

func etcdYAML(c *spec.Cluster, m *spec.Member, o Options) ([]byte, error) {
	cfg, err := EtcdConfig(c, m, o.EtcdOptions)
	if err != nil {
		return nil, err
	}
	body, err := cfg.Marshal()
	if err != nil {
		return nil, err
	}
	h := append(header(c, m, "etcd config", o),
		"Read by `etcdkit member run --config FILE` and by `etcd --config-file FILE`",
		"(etcd ignores the etcdkit: section).")
	return append([]byte(comment(h)), body...), nil
}

func etcdEnv(c *spec.Cluster, m *spec.Member, o Options) ([]byte, error) {
	cfg, err := EtcdConfig(c, m, o.EtcdOptions)
	if err != nil {
		return nil, err
	}
	h := append(header(c, m, "etcd environment file", o),
		"Read by a unit's EnvironmentFile= (etcd reads ETCD_* variables) and by",
		"`etcdkit member run --config FILE`; it says what the YAML config says.")
	return cfg.MarshalEnv(h...)
}
