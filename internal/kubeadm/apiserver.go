package kubeadm

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	yamlv3 "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/etcdkit/etcdkit/internal/fsutil"
	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/pki"
)

// EtcdServersFlag is kube-apiserver's list of etcd client URLs.
const EtcdServersFlag = "--etcd-servers"

// APIServer is kube-apiserver's static pod manifest.
type APIServer struct {
	// Path is the manifest's path on the node; File is where it was read.
	Path string
	File string
	Data []byte
	Mode fs.FileMode
	Pod  corev1.Pod
	// container is the index of the container that runs kube-apiserver.
	container int
}

// LoadAPIServer reads kube-apiserver's manifest at a node's path under
// root.
func LoadAPIServer(root Root, path string) (*APIServer, error) {
	if path == "" {
		path = APIServerManifest
	}
	file := root.Path(path)
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read kube-apiserver's manifest: %w", err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		return nil, err
	}
	a := &APIServer{Path: path, File: file, Data: data, Mode: fi.Mode().Perm(), container: -1}
	if err := yaml.Unmarshal(data, &a.Pod); err != nil || a.Pod.Kind != "Pod" {
		why := fmt.Sprintf("kind is %q", a.Pod.Kind)
		if err != nil {
			why = err.Error()
		}
		return nil, badManifest("%s: not a Pod manifest: %s", file, why)
	}
	for i, c := range a.Pod.Spec.Containers {
		if len(c.Command) > 0 && filepath.Base(c.Command[0]) == "kube-apiserver" {
			a.container = i
			break
		}
	}
	if a.container < 0 {
		return nil, badManifest("%s is the manifest of pod %q, whose containers run %s, not kube-apiserver", file, a.Pod.Name, programs(a.Pod.Spec.Containers))
	}
	return a, nil
}

// flag finds --name=value on the kube-apiserver container's command line:
// which list holds it ("command" or "args"; "" when absent), its index
// there, and its value.
func (a *APIServer) flag(name string) (field string, idx int, value string) {
	c := a.Pod.Spec.Containers[a.container]
	for _, l := range []struct {
		field string
		items []string
	}{{"command", c.Command}, {"args", c.Args}} {
		for i, arg := range l.items {
			if v, ok := strings.CutPrefix(arg, name+"="); ok {
				return l.field, i, v
			}
		}
	}
	return "", -1, ""
}

// EtcdServers is the --etcd-servers value, split.
func (a *APIServer) EtcdServers() []string {
	_, _, v := a.flag(EtcdServersFlag)
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// EtcdClient is the CA and client pair kube-apiserver reaches etcd with.
func (a *APIServer) EtcdClient() (ca string, client pki.Pair) {
	_, _, ca = a.flag("--etcd-cafile")
	_, _, client.Cert = a.flag("--etcd-certfile")
	_, _, client.Key = a.flag("--etcd-keyfile")
	return ca, client
}

// EtcdServers is the --etcd-servers value for a cluster: the client URLs
// of its started voting members. A learner serves no linearizable reads
// and an unstarted member nothing, so neither is listed.
func EtcdServers(ms *ops.Membership) []string {
	var out []string
	for _, m := range ms.Members {
		if m.Started && !m.Learner {
			out = append(out, m.ClientURLs...)
		}
	}
	return out
}

// Change is a rewrite of kube-apiserver's manifest.
type Change struct {
	File string   `json:"file"`
	Old  []string `json:"old"`
	New  []string `json:"new"`
	// Unchanged is set when the manifest has the new value already.
	Unchanged bool `json:"unchanged,omitempty"`
	// Reformatted is set when the line could not be edited in place and
	// the whole manifest was written out again (comments are lost).
	Reformatted bool `json:"reformatted,omitempty"`
	// Diff is a unified diff of the change.
	Diff string `json:"diff,omitempty"`
	// Backup is where Apply kept the manifest as it was.
	Backup string `json:"backup,omitempty"`

	before, after []byte
	mode          fs.FileMode
	backupDir     string
}

// After is the manifest's new content.
func (c *Change) After() []byte { return c.after }

// SetEtcdServers computes the manifest with --etcd-servers set to
// servers. Only that line changes: the manifest is edited as text, then
// parsed again and compared with the intended pod, so a manifest
// formatted in a way the edit does not understand is written out whole
// (Reformatted) rather than edited wrongly.
func (a *APIServer) SetEtcdServers(root Root, servers []string) (*Change, error) {
	if len(servers) == 0 {
		return nil, errors.New("no etcd servers: the cluster has no started voting member")
	}
	c := &Change{File: a.File, Old: a.EtcdServers(), New: servers, before: a.Data, mode: a.Mode, backupDir: root.Path(TmpDir)}
	value := EtcdServersFlag + "=" + strings.Join(servers, ",")
	field, idx, _ := a.flag(EtcdServersFlag)
	want := *a.Pod.DeepCopy()
	ctr := &want.Spec.Containers[a.container]
	list := &ctr.Command
	switch {
	case field == "args":
		list = &ctr.Args
	case field == "" && len(ctr.Args) > 0:
		// Flags are in args: the new one goes there too.
		list, field = &ctr.Args, "args"
	case field == "":
		field = "command"
	}
	n := len(*list)
	if idx >= 0 {
		if (*list)[idx] == value {
			c.Unchanged, c.after = true, a.Data
			return c, nil
		}
		(*list)[idx] = value
	} else {
		*list = append(*list, value)
	}
	after, err := editList(a.Data, a.container, field, idx, n, value)
	if err == nil {
		var got corev1.Pod
		if yaml.Unmarshal(after, &got) != nil || !reflect.DeepEqual(got, want) {
			err = errors.New("the edited manifest does not read back as intended")
		}
	}
	if err != nil {
		if after, err = yaml.Marshal(want); err != nil {
			return nil, err
		}
		c.Reformatted = true
	}
	c.after = after
	c.Diff = unifiedDiff(a.File, a.Data, after)
	return c, nil
}

// editList replaces item idx of container ctr's command or args (field)
// with value, or appends value after its last item (n items) when idx is
// -1, keeping every other byte of the file.
func editList(data []byte, ctr int, field string, idx, n int, value string) ([]byte, error) {
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 {
		return nil, errors.New("not YAML")
	}
	seq := find(doc.Content[0], "spec", "containers")
	if seq == nil || seq.Kind != yamlv3.SequenceNode || len(seq.Content) <= ctr {
		return nil, errors.New("no containers")
	}
	cmd := find(seq.Content[ctr], field)
	if cmd == nil || cmd.Kind != yamlv3.SequenceNode || cmd.Style&yamlv3.FlowStyle != 0 || len(cmd.Content) != n || n == 0 {
		return nil, errors.New("not a block sequence")
	}
	lines := strings.SplitAfter(string(data), "\n")
	at := idx
	if at < 0 {
		at = n - 1
	}
	item := cmd.Content[at]
	if item.Kind != yamlv3.ScalarNode || item.Line < 1 || item.Line > len(lines) {
		return nil, errors.New("unexpected command item")
	}
	line := lines[item.Line-1]
	col := item.Column - 1
	quote := ""
	switch item.Style {
	case 0:
	case yamlv3.DoubleQuotedStyle:
		quote = `"`
	case yamlv3.SingleQuotedStyle:
		quote = "'"
	default:
		return nil, errors.New("unexpected scalar style")
	}
	text := quote + item.Value + quote
	if col < 0 || !strings.HasPrefix(line[col:], text) {
		return nil, errors.New("the item is not written as its value")
	}
	rest := line[col+len(text):]
	if t := strings.TrimSpace(rest); t != "" && !strings.HasPrefix(t, "#") {
		return nil, errors.New("more on the item's line")
	}
	if idx >= 0 {
		lines[item.Line-1] = line[:col] + quote + value + quote + rest
	} else {
		prefix := line[:col]
		if strings.TrimSpace(prefix) != "-" {
			return nil, errors.New("unexpected item prefix")
		}
		added := prefix + quote + value + quote + "\n"
		if !strings.HasSuffix(line, "\n") {
			lines[item.Line-1] += "\n"
		}
		lines = append(lines[:item.Line], append([]string{added}, lines[item.Line:]...)...)
	}
	return []byte(strings.Join(lines, "")), nil
}

// find walks mapping keys.
func find(n *yamlv3.Node, keys ...string) *yamlv3.Node {
	for _, k := range keys {
		if n == nil || n.Kind != yamlv3.MappingNode {
			return nil
		}
		var next *yamlv3.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
				break
			}
		}
		n = next
	}
	return n
}

// Apply writes the new manifest atomically (the kubelet sees the old file
// or the new one, never a part), after keeping the old one in kubeadm's
// tmp directory: never beside it, where the kubelet would run it too. It
// refuses when the file changed since it was read.
func (c *Change) Apply(now time.Time) error {
	if c.Unchanged {
		return nil
	}
	cur, err := os.ReadFile(c.File)
	if err != nil {
		return err
	}
	if !bytes.Equal(cur, c.before) {
		return fmt.Errorf("%s changed while etcdkit was working (kubeadm, or another edit); nothing was written: run the command again", c.File)
	}
	c.Backup = filepath.Join(c.backupDir, "etcdkit-"+pki.Stamp(now), filepath.Base(c.File))
	if err := fsutil.WriteFile(c.Backup, c.before, fsutil.PrivateFile); err != nil {
		return fmt.Errorf("keep a copy of %s: %w (nothing was changed)", c.File, err)
	}
	if err := fsutil.WriteFile(c.File, c.after, c.mode); err != nil {
		return err
	}
	return nil
}

// unifiedDiff is a one-hunk unified diff between two versions of a file:
// from the first line that differs to the last, with three lines of
// context.
func unifiedDiff(name string, a, b []byte) string {
	x, y := splitLines(a), splitLines(b)
	p := 0
	for p < len(x) && p < len(y) && x[p] == y[p] {
		p++
	}
	s := 0
	for s < len(x)-p && s < len(y)-p && x[len(x)-1-s] == y[len(y)-1-s] {
		s++
	}
	if p == len(x) && p == len(y) {
		return ""
	}
	const ctx = 3
	start := max(p-ctx, 0)
	endX, endY := min(len(x)-s+ctx, len(x)), min(len(y)-s+ctx, len(y))
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n@@ -%d,%d +%d,%d @@\n", name, name, start+1, endX-start, start+1, endY-start)
	line := func(prefix, l string) {
		out.WriteString(prefix + strings.TrimSuffix(l, "\n") + "\n")
	}
	for _, l := range x[start:p] {
		line(" ", l)
	}
	for _, l := range x[p : len(x)-s] {
		line("-", l)
	}
	for _, l := range y[p : len(y)-s] {
		line("+", l)
	}
	for _, l := range x[len(x)-s : endX] {
		line(" ", l)
	}
	return out.String()
}

// splitLines splits after each newline, without the empty string after a
// final one.
func splitLines(b []byte) []string {
	l := strings.SplitAfter(string(b), "\n")
	if len(l) > 0 && l[len(l)-1] == "" {
		l = l[:len(l)-1]
	}
	return l
}
