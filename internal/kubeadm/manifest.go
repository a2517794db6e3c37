package kubeadm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/lint"
	"github.com/etcdkit/etcdkit/internal/render"
)

// Errors of Load, for errors.Is.
var (
	// ErrNoManifest: the manifest file does not exist.
	ErrNoManifest = errors.New("no etcd manifest")
	// ErrBadManifest: the file is there but is not a usable etcd manifest.
	ErrBadManifest = errors.New("not a usable etcd manifest")
)

// badManifest is an ErrBadManifest whose message is only its own.
func badManifest(format string, args ...any) error {
	return bad{fmt.Errorf(format, args...)}
}

type bad struct{ error }

func (bad) Is(target error) bool { return target == ErrBadManifest }
func (b bad) Unwrap() error      { return b.error }

// Manifest is a kubeadm etcd static pod manifest as a node has it: the pod,
// and its etcd container's command line read as etcd reads it (the same
// reading `etcdkit config lint` does).
type Manifest struct {
	// Path is the manifest's path on the node; File is where it was read
	// (Path under Root).
	Path string
	File string
	Root Root
	Data []byte
	// Config is the etcd command line as a config, with the node's paths.
	Config *etcdconf.Config
	// Problems are what etcd would refuse on that command line (removed
	// or unknown flags, bad values); `kubeadm inspect` reports them.
	Problems []*etcdconf.FieldError

	pod *lint.EtcdPod
}

// Load reads the etcd manifest at a node's path under root.
func Load(root Root, path string) (*Manifest, error) {
	file := root.Path(path)
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist", ErrNoManifest, file)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return Parse(root, path, data)
}

// Parse reads a manifest's content; path is its path on the node.
func Parse(root Root, path string, data []byte) (*Manifest, error) {
	file := root.Path(path)
	p, err := lint.ReadPod(file, data)
	if err != nil {
		return nil, badManifest("%s: %v; fix the YAML, or restore the file (kubeadm keeps the manifests it replaced in %s)", file, err, TmpDir)
	}
	if p.Container < 0 {
		return nil, badManifest("%s is the manifest of pod %q, whose containers run %s, not etcd; point --kubeadm-manifest at etcd's manifest (%s)", file, p.Pod.Name, programs(p.Pod.Spec.Containers), EtcdManifest)
	}
	m := &Manifest{Path: path, File: file, Root: root, Data: data, pod: p}
	m.Config, m.Problems = p.Config(file)
	return m, nil
}

// programs names what each container runs, for messages.
func programs(cs []corev1.Container) string {
	var out []string
	for _, c := range cs {
		argv := append(append([]string{}, c.Command...), c.Args...)
		if len(argv) > 0 {
			out = append(out, filepath.Base(argv[0]))
		} else {
			out = append(out, "its image's entrypoint ("+c.Image+")")
		}
	}
	if len(out) == 0 {
		return "nothing (no containers)"
	}
	return strings.Join(out, ", ")
}

// Pod is the manifest's pod.
func (m *Manifest) Pod() *corev1.Pod { return &m.pod.Pod }

// Container is the container that runs etcd.
func (m *Manifest) Container() *corev1.Container { return &m.pod.Pod.Spec.Containers[m.pod.Container] }

// Name is the member's name.
func (m *Manifest) Name() string { return m.Config.Name }

// Image is the etcd image the pod runs.
func (m *Manifest) Image() string { return m.Container().Image }

// Annotation is the client URLs kubeadm's annotation names, which kubeadm
// itself uses to reach the member.
func (m *Manifest) Annotation() []string {
	return etcdconf.SplitList(m.Pod().Annotations[render.AdvertiseClientURLsAnnotation])
}

// ClientURLs are where the member serves clients: kubeadm's annotation,
// else --advertise-client-urls.
func (m *Manifest) ClientURLs() []string {
	if a := m.Annotation(); len(a) > 0 {
		return a
	}
	return etcdconf.SplitList(m.Config.AdvertiseClientURLs)
}

// PeerURLs are the member's advertised peer URLs.
func (m *Manifest) PeerURLs() []string { return etcdconf.SplitList(m.Config.InitialAdvertisePeerURLs) }

// CommandLine is the etcd container's command and arguments.
func (m *Manifest) CommandLine() []string {
	c := m.Container()
	return append(append([]string{}, c.Command...), c.Args...)
}

// Rooted is the config with every path under the root: the files as this
// process reads them.
func (m *Manifest) Rooted() *etcdconf.Config {
	c := *m.Config
	m.Root.Config(&c)
	return &c
}

// at is where a config key is set, for messages: "file:line: --flag".
func (m *Manifest) at(key string) string {
	loc := m.File
	if l := m.Config.Line(key); l > 0 {
		loc = fmt.Sprintf("%s:%d", loc, l)
	}
	return loc + ": " + m.Config.DisplayKey(key)
}

// Findings lints the manifest with `etcdkit config lint`'s rules, reading
// the files it names under the root.
func (m *Manifest) Findings() []lint.Finding {
	findings := lint.Pod(m.File, m.Data, m.Root.Config)
	ann, adv := m.Annotation(), etcdconf.SplitList(m.Config.AdvertiseClientURLs)
	if len(ann) > 0 && strings.Join(ann, ",") != strings.Join(adv, ",") {
		findings = append(findings, lint.Finding{Rule: RuleAnnotation, Severity: lint.Warning, File: m.File,
			Line: m.pod.Lines["metadata.annotations"], Key: render.AdvertiseClientURLsAnnotation,
			Message: fmt.Sprintf("kubeadm reaches this member at %s, but etcd advertises %s", strings.Join(ann, ","), strings.Join(adv, ",")),
			Fix:     "make the annotation and --advertise-client-urls the same URL"})
	}
	if len(ann) == 0 {
		findings = append(findings, lint.Finding{Rule: RuleAnnotation, Severity: lint.Warning, File: m.File,
			Line: m.pod.Lines["metadata"], Key: render.AdvertiseClientURLsAnnotation,
			Message: "kubeadm finds a member's client URL in this annotation, and it is missing: kubeadm upgrade and join cannot reach the member",
			Fix:     "add the annotation with the --advertise-client-urls value"})
	}
	if v, ok := imageVersion(m.Image()); ok && (v[0] < 3 || v[0] == 3 && v[1] < 7) {
		// etcd 3.7 removed these; the etcd this pod runs still reads them.
		for i, f := range findings {
			if f.Severity == lint.Error && strings.HasPrefix(f.Key, "--experimental-") {
				findings[i].Severity = lint.Warning
				findings[i].Message = fmt.Sprintf("this pod's etcd %d.%d reads it, but etcd 3.7 removed it and refuses to start with it", v[0], v[1])
				if fix := findings[i].Fix; fix != "" {
					if flag, ok := strings.CutPrefix(fix, "did you mean "); ok {
						fix = "use " + strings.TrimSuffix(flag, "?")
					}
					findings[i].Fix = "before moving to etcd 3.7: " + fix
				}
			}
		}
	}
	sort.SliceStable(findings, func(i, j int) bool { return findings[i].Line < findings[j].Line })
	return findings
}

// RuleAnnotation is the rule id of findings about kubeadm's annotation.
const RuleAnnotation = "kubeadm-annotation"

// imageVersion reads major and minor from an etcd image's tag
// (registry.k8s.io/etcd:3.5.12-0).
func imageVersion(image string) ([2]int, bool) {
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return [2]int{}, false
	}
	parts := strings.SplitN(strings.TrimPrefix(image[i+1:], "v"), ".", 3)
	if len(parts) < 2 {
		return [2]int{}, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	return [2]int{major, minor}, err1 == nil && err2 == nil
}
