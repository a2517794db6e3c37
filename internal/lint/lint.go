// Package lint reads the configs operators already have, etcd's YAML
// config, ETCD_* environment files, systemd units and kubeadm static pod
// manifests, and reports what is wrong in them: each finding has a stable
// rule id, a severity, the file and line, and the fix.
package lint

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
)

// Severity of a finding.
type Severity = etcdconf.Severity

const (
	Error   = etcdconf.SeverityError
	Warning = etcdconf.SeverityWarning
)

// Finding is one problem in one file.
type Finding struct {
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	File     string   `json:"file"`
	Line     int      `json:"line,omitempty"`
	// Key is the setting as the file spells it (ETCD_AUTO_TLS, Restart=,
	// --cert-file, client-transport-security.auto-tls).
	Key     string `json:"key,omitempty"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

// Location is file:line.
func (f Finding) Location() string {
	if f.Line > 0 {
		return fmt.Sprintf("%s:%d", f.File, f.Line)
	}
	return f.File
}

// Kind is what a file was read as.
type Kind string

const (
	KindEnv       Kind = "env"
	KindEtcdYAML  Kind = "etcd-yaml"
	KindUnit      Kind = "systemd-unit"
	KindStaticPod Kind = "static-pod"
)

// Report is the result of linting files.
type Report struct {
	Files    []FileKind `json:"files"`
	Findings []Finding  `json:"findings"`
}

// FileKind is a file and what it was read as.
type FileKind struct {
	File string `json:"file"`
	Kind Kind   `json:"kind"`
	// Via names the unit that referred to a file not given on the command
	// line (its EnvironmentFile= or --config).
	Via string `json:"via,omitempty"`
}

// Counts are the errors and warnings of a report.
func (r *Report) Counts() (errors, warnings int) {
	for _, f := range r.Findings {
		if f.Severity == Error {
			errors++
		} else {
			warnings++
		}
	}
	return errors, warnings
}

// Strict turns every warning into an error.
func (r *Report) Strict() {
	for i := range r.Findings {
		r.Findings[i].Severity = Error
	}
}

// Files lints each file, and the config files the units among them name
// (EnvironmentFile=, --config) when those exist and were not given.
func Files(paths []string) (*Report, error) {
	r := &Report{}
	done := map[string]bool{}
	type todo struct{ path, via string }
	queue := make([]todo, len(paths))
	for i, p := range paths {
		queue[i] = todo{path: p}
	}
	for len(queue) > 0 {
		t := queue[0]
		queue = queue[1:]
		abs, _ := filepath.Abs(t.path)
		if done[abs] {
			continue
		}
		done[abs] = true
		data, err := os.ReadFile(t.path)
		if err != nil {
			if t.via != "" {
				continue // a referenced file that is not here: nothing to lint
			}
			return nil, fmt.Errorf("read %s: %w", t.path, err)
		}
		kind, findings, refs := lintData(t.path, data)
		r.Files = append(r.Files, FileKind{File: t.path, Kind: kind, Via: t.via})
		r.Findings = append(r.Findings, findings...)
		for _, ref := range refs {
			queue = append(queue, todo{path: ref, via: t.path})
		}
	}
	return r, nil
}

// Data lints one file's content; name is its path (used in findings, for
// the unit's own name and to find certificates and data relative to it).
func Data(name string, data []byte) (Kind, []Finding) {
	kind, findings, _ := lintData(name, data)
	return kind, findings
}

var sectionRE = regexp.MustCompile(`(?m)^\s*\[(Unit|Service|Install|Socket|Timer|Path|Mount)\]\s*$`)

// Detect says what a file is, by name and content.
func Detect(name string, data []byte) Kind {
	switch {
	case strings.HasSuffix(name, ".service") || sectionRE.Match(data):
		return KindUnit
	case etcdconf.IsEnvFile(data):
		return KindEnv
	}
	var head struct {
		Kind       string `json:"kind"`
		APIVersion string `json:"apiVersion"`
	}
	if err := yaml.Unmarshal(data, &head); err == nil && head.Kind == "Pod" {
		return KindStaticPod
	}
	return KindEtcdYAML
}

func lintData(name string, data []byte) (Kind, []Finding, []string) {
	data = trimBOM(data)
	kind := Detect(name, data)
	findings, refs := lintKind(kind, name, data)
	sort.SliceStable(findings, func(i, j int) bool { return findings[i].Line < findings[j].Line })
	return kind, findings, refs
}

func lintKind(kind Kind, name string, data []byte) ([]Finding, []string) {
	switch kind {
	case KindUnit:
		return lintUnit(name, data)
	case KindStaticPod:
		return lintPod(name, data), nil
	}
	c, problems := etcdconf.ParseAll(name, data)
	findings := fromFieldErrors(problems)
	if kind == KindEnv {
		findings = append(findings, lintEnvSyntax(name, data)...)
	}
	if c != nil {
		findings = append(findings, lintConfig(name, c)...)
	}
	return findings, nil
}

func fromFieldErrors(errs []*etcdconf.FieldError) []Finding {
	var out []Finding
	for _, e := range errs {
		msg, fix := splitFix(e.Msg)
		if fix == "remove it" && e.Key != "" {
			fix = "remove " + e.Key
		}
		out = append(out, Finding{Rule: e.Rule, Severity: Error, File: e.File, Line: e.Line, Key: e.Key, Message: msg, Fix: fix})
	}
	return out
}

// splitFix separates "problem; fix" messages written for one line.
func splitFix(msg string) (string, string) {
	for _, sep := range []string{"; did you mean", "; use ", "; remove it", "; write "} {
		if i := strings.Index(msg, sep); i > 0 {
			return msg[:i], strings.TrimSpace(msg[i+2:])
		}
	}
	return msg, ""
}

func fromProblem(p etcdconf.Problem) Finding {
	return Finding{Rule: p.Rule, Severity: p.Severity, File: p.File, Line: p.Line, Key: p.Key, Message: p.Msg, Fix: p.Fix}
}

// lintEnvSyntax reports what is legal in an environment file but almost
// certainly not meant.
func lintEnvSyntax(name string, data []byte) []Finding {
	vars, _ := etcdconf.ParseEnvFile(data)
	var out []Finding
	seen := map[string]etcdconf.EnvVar{}
	for _, v := range vars {
		if prev, dup := seen[v.Name]; dup {
			out = append(out, Finding{Rule: RuleEnvDuplicate, Severity: Warning, File: name, Line: v.Line, Key: v.Name,
				Message: fmt.Sprintf("set again (first on line %d, %q); systemd and etcd use this last value, %q", prev.Line, prev.Value, v.Value),
				Fix:     "keep one assignment"})
		}
		seen[v.Name] = v
		if !v.Quoted && strings.Contains(v.Value, " #") {
			out = append(out, Finding{Rule: RuleEnvInlineComment, Severity: Warning, File: name, Line: v.Line, Key: v.Name,
				Message: fmt.Sprintf("the value is %q: systemd has no comments after a value", v.Value),
				Fix:     "put the comment on a line of its own"})
		}
	}
	return out
}

// readable reports whether a path can be read (for rules that need it).
func readable(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

func trimBOM(b []byte) []byte { return bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) }
