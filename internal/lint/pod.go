package lint

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
)

// EtcdPod is a static pod manifest with its etcd container's command line
// read as etcd's flags. internal/kubeadm reads manifests through it, so a
// manifest means the same to `config lint` and to every kubeadm command.
type EtcdPod struct {
	Pod corev1.Pod
	// Container is the index of the container that runs etcd, -1 when
	// none does.
	Container int
	// Args are the etcd container's flags, each with its manifest line.
	Args []etcdconf.Arg
	// Lines maps the manifest's YAML paths to lines (etcdconf.YAMLLines).
	Lines map[string]int
	// Syntax are the arguments that are no flags at all.
	Syntax []Finding
}

// ReadPod parses a Pod manifest and finds the container whose command
// starts with etcd. Only a file that is not a Pod is an error; a Pod
// without etcd has Container -1.
func ReadPod(name string, data []byte) (*EtcdPod, error) {
	data = trimBOM(data)
	var pod corev1.Pod
	if err := yaml.Unmarshal(data, &pod); err != nil {
		return nil, fmt.Errorf("not a Pod manifest: %w", err)
	}
	if pod.Kind != "Pod" {
		kind := pod.Kind
		if kind == "" {
			kind = "missing"
		}
		return nil, fmt.Errorf("not a Pod manifest: kind is %s, not Pod", kind)
	}
	p := &EtcdPod{Pod: pod, Container: -1, Lines: etcdconf.YAMLLines(data)}
	for i, ctr := range pod.Spec.Containers {
		argv := append(append([]string{}, ctr.Command...), ctr.Args...)
		if len(argv) == 0 || filepath.Base(argv[0]) != "etcd" {
			continue
		}
		p.Container = i
		for j, a := range argv[1:] {
			line := p.Lines[p.ArgPath(j)]
			flag, value, ok := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if !strings.HasPrefix(a, "-") {
				p.Syntax = append(p.Syntax, Finding{Rule: "syntax", Severity: Error, File: name, Line: line, Key: a, Message: "etcd takes no positional arguments", Fix: "write --flag=value"})
				continue
			}
			if !ok {
				value = "true" // a bare boolean flag
			}
			p.Args = append(p.Args, etcdconf.Arg{Flag: flag, Value: value, Line: line})
		}
		break
	}
	return p, nil
}

// ArgPath is the YAML path of the etcd container's argument i (counted
// after the program name): an item of command, or of args after it.
func (p *EtcdPod) ArgPath(i int) string {
	ctr := p.Pod.Spec.Containers[p.Container]
	field, idx := "command", i+1
	if i+1 >= len(ctr.Command) {
		field, idx = "args", i+1-len(ctr.Command)
	}
	return fmt.Sprintf("spec.containers[%d].%s[%d]", p.Container, field, idx)
}

// Config reads the etcd command line as etcd would; problems are what
// etcd would refuse (unknown or removed flags, bad values).
func (p *EtcdPod) Config(name string) (*etcdconf.Config, []*etcdconf.FieldError) {
	return etcdconf.FromArgs(name, p.Args)
}

// Pod lints a static pod manifest: the etcd container's command line is
// checked as etcd would read it. adjust, when set, changes the config
// before the checks that read files (a copied tree's paths under its root).
func Pod(name string, data []byte, adjust func(*etcdconf.Config)) []Finding {
	p, err := ReadPod(name, data)
	if err != nil {
		return []Finding{{Rule: "syntax", Severity: Error, File: name, Message: err.Error()}}
	}
	if p.Container < 0 {
		return []Finding{{Rule: RulePodNoEtcd, Severity: Error, File: name, Line: p.Lines["spec.containers"],
			Message: "no container runs etcd (a command starting with etcd)", Fix: "lint the etcd manifest, /etc/kubernetes/manifests/etcd.yaml"}}
	}
	out := append([]Finding{}, p.Syntax...)
	c, problems := p.Config(name)
	out = append(out, fromFieldErrors(problems)...)
	if adjust != nil {
		adjust(c)
	}
	out = append(out, lintConfig(name, c)...)
	// A missing flag is reported at the command line it is missing from.
	for j := range out {
		if out[j].Line == 0 {
			out[j].Line = p.Lines[fmt.Sprintf("spec.containers[%d].command", p.Container)]
		}
		out[j].Fix = envToFlags(out[j].Fix)
	}
	return out
}

var envVarRE = regexp.MustCompile(`\bETCD_[A-Z0-9_]+=`)

// envToFlags writes the ETCD_* variables a fix names as the flags a
// command line takes: ETCD_FEATURE_GATES=X is --feature-gates=X.
func envToFlags(fix string) string {
	return envVarRE.ReplaceAllStringFunc(fix, func(v string) string {
		if f, ok := etcdconf.EnvFlag(strings.TrimSuffix(v, "=")); ok {
			return "--" + f + "="
		}
		return v
	})
}
