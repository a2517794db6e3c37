package kubeadm

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/ops/replace"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/render"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// RenderOptions say how a member's manifest is made when no other
// member's manifest serves as its template. Empty fields are kubeadm's
// defaults.
type RenderOptions struct {
	// Image is the etcd image; default: registry.k8s.io/etcd at the
	// version etcdkit embeds.
	Image string
	// PKIDir is the node's etcd certificate directory.
	PKIDir string
	// DataDir is the node's etcd data directory.
	DataDir string
}

func (o RenderOptions) withDefaults() RenderOptions {
	if o.PKIDir == "" {
		o.PKIDir = filepath.Join(PKIDir, "etcd")
	}
	if o.DataDir == "" {
		o.DataDir = DataDir
	}
	return o
}

// kubeadmSnapshotCount is the one tuning flag kubeadm sets.
const kubeadmSnapshotCount = 10000

// NewManifest is the manifest of member nm joining a running cluster:
// initial-cluster-state existing, initial-cluster from the live member
// list. With a template (another member's manifest) it is that manifest
// with the member's own settings changed, so the image, tuning flags and
// volumes stay the cluster's. Without one, it is what kubeadm writes for a
// member that joins.
func NewManifest(tmpl *Manifest, nm replace.NewMember, initialCluster string, o RenderOptions) ([]byte, error) {
	if tmpl != nil {
		return fromTemplate(tmpl, nm, initialCluster)
	}
	o = o.withDefaults()
	c := &spec.Cluster{
		PKI:     spec.PKI{Dir: o.PKIDir, Layout: string(pki.LayoutKubeadm)},
		DataDir: o.DataDir,
		Tuning:  spec.Tuning{SnapshotCount: kubeadmSnapshotCount},
		Members: []spec.Member{{Name: nm.Name, PeerURL: nm.PeerURL, ClientURL: nm.ClientURL}},
	}
	data, err := render.StaticPod(c, &c.Members[0], render.Options{
		EtcdOptions: render.EtcdOptions{State: render.StateExisting, InitialCluster: initialCluster},
		Image:       o.Image,
	})
	if err != nil {
		return nil, err
	}
	// render's header names a cluster spec; this member has none.
	body := data
	for bytes.HasPrefix(body, []byte("#")) {
		_, body, _ = bytes.Cut(body, []byte("\n"))
	}
	return append([]byte(header(nm, "as kubeadm writes it for a member that joins")), body...), nil
}

func header(nm replace.NewMember, how string) string {
	return fmt.Sprintf("# etcd static pod of member %q, made by etcdkit %s.\n"+
		"# initial-cluster-state existing: it joins the running cluster it was added to as a learner.\n"+
		"# The kubelet starts it from %s.\n", nm.Name, how, EtcdManifest)
}

// fromTemplate changes another member's manifest into nm's.
func fromTemplate(tmpl *Manifest, nm replace.NewMember, initialCluster string) ([]byte, error) {
	pod := tmpl.Pod().DeepCopy()
	ctr := &pod.Spec.Containers[tmpl.pod.Container]
	cfg := tmpl.Config
	oldClient := append(tmpl.ClientURLs(), etcdconf.SplitList(cfg.AdvertiseClientURLs)...)
	for flag, value := range map[string]string{
		"name":                        nm.Name,
		"advertise-client-urls":       nm.ClientURL,
		"initial-advertise-peer-urls": nm.PeerURL,
		"listen-client-urls":          moveURLs(cfg.ListenClientURLs, oldClient, nm.ClientURL),
		"listen-peer-urls":            moveURLs(cfg.ListenPeerURLs, tmpl.PeerURLs(), nm.PeerURL),
		"initial-cluster":             initialCluster,
		"initial-cluster-state":       string(render.StateExisting),
	} {
		setFlag(ctr, flag, value)
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[render.AdvertiseClientURLsAnnotation] = nm.ClientURL
	body, err := yaml.Marshal(pod)
	if err != nil {
		return nil, err
	}
	how := fmt.Sprintf("from member %q's manifest (image, flags and volumes as there)", tmpl.Name())
	return append([]byte(header(nm, how)), body...), nil
}

// moveURLs is a listen URL list for a member at newURL, from another
// member's: its advertised address becomes the new one, loopback and
// wildcard addresses stay (on the new port), other addresses of the old
// node go.
func moveURLs(list string, oldAdvertised []string, newURL string) string {
	nu, err := url.Parse(newURL)
	if err != nil {
		return newURL
	}
	oldHosts := map[string]bool{}
	for _, o := range oldAdvertised {
		if u, err := url.Parse(o); err == nil {
			oldHosts[u.Hostname()] = true
		}
	}
	var out []string
	add := func(s string) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, e := range etcdconf.SplitList(list) {
		u, err := url.Parse(e)
		if err != nil {
			continue
		}
		ip := net.ParseIP(u.Hostname())
		switch {
		case oldHosts[u.Hostname()]:
			add(newURL)
		case ip != nil && (ip.IsLoopback() || ip.IsUnspecified()), u.Hostname() == "localhost":
			add(u.Scheme + "://" + net.JoinHostPort(u.Hostname(), nu.Port()))
		}
	}
	add(newURL)
	return strings.Join(out, ",")
}

// setFlag sets --name=value on a container's command line, where it is
// (command or args), or else in alphabetical order among the flags, as
// kubeadm writes them.
func setFlag(c *corev1.Container, name, value string) {
	arg := "--" + name + "=" + value
	for _, list := range []*[]string{&c.Command, &c.Args} {
		for i, a := range *list {
			if a == "--"+name || strings.HasPrefix(a, "--"+name+"=") {
				(*list)[i] = arg
				return
			}
		}
	}
	list := &c.Command
	if len(c.Args) > 0 {
		list = &c.Args
	}
	at := len(*list)
	for i, a := range *list {
		other, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if strings.HasPrefix(a, "--") && other > name && (list != &c.Command || i > 0) {
			at = i
			break
		}
	}
	*list = slices.Insert(*list, at, arg)
}
