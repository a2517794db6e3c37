// Package kubeadm tests stacked etcd on kubeadm control planes end to end:
// each node is a directory holding a copy of a control-plane node's tree
// (/etc/kubernetes with its manifests and certificates, /var/lib/etcd),
// operated with zero connection flags through --kubeadm-root, and each
// member runs as an `etcdkit member run` process from its manifest's
// etcd command line (what the kubelet would run).
package kubeadm

import (
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/fsutil"
	"github.com/etcdkit/etcdkit/internal/kubeadm"
	"github.com/etcdkit/etcdkit/internal/local"
	"github.com/etcdkit/etcdkit/internal/render"
	"github.com/etcdkit/etcdkit/internal/spec"
	"github.com/etcdkit/etcdkit/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite testdata/kube-apiserver.applied.yaml")

// node is one control-plane node: its tree and its member.
type node struct {
	name, root string
	peer, cli  string
	proc       *testutil.Proc
}

func (n *node) path(p string) string { return kubeadm.Root(n.root).Path(p) }

// start runs the member a node's manifest describes, as the kubelet would:
// `etcdkit kubeadm config` turns the manifest's etcd command line into a
// config (paths under the node's root), and `etcdkit member run` runs it.
// All nodes share this machine's loopback, so the metrics listener, which
// kubeadm puts on 127.0.0.1:2381 on every node, moves to a free port.
func (n *node) start(t *testing.T, wait bool) {
	t.Helper()
	r := testutil.RunOK(t, nil, "kubeadm", "config", "--kubeadm-root", n.root)
	cfg, err := etcdconf.Parse("kubeadm config", []byte(r.Stdout))
	if err != nil {
		t.Fatalf("%v\n%s", err, r.Stdout)
	}
	port, err := local.FreePorts("127.0.0.1", 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ListenMetricsURLs = fmt.Sprintf("http://127.0.0.1:%d", port[0])
	b, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(n.root, "kubelet-etcd.yaml")
	testutil.WriteBytes(t, config, b)
	n.proc = testutil.Start(t, nil, testutil.Etcdkit(t), "member", "run", "--config", config)
	if wait {
		testutil.WaitReady(t, n.proc)
	}
}

// newNode is a node of a new cluster: kubeadm's certificates for the
// member, its manifest rendered the way kubeadm writes it, and the fixture
// kube-apiserver manifest.
func newNode(t *testing.T, c *spec.Cluster, caDir string, i int) *node {
	t.Helper()
	m := &c.Members[i]
	n := &node{name: m.Name, root: t.TempDir(), peer: m.PeerURL, cli: m.ClientURL}
	testutil.KubeadmNode(t, caDir, n.root, m.Name, fmt.Sprintf("127.0.0.%d", i+1))
	pod, err := render.StaticPod(c, m, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, n.path(kubeadm.EtcdManifest), pod)
	api, err := os.ReadFile(filepath.Join(testutil.ModuleRoot(t), "internal", "kubeadm", "testdata", "kube-apiserver.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, n.path(kubeadm.APIServerManifest), api)
	return n
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := fsutil.WriteFile(path, data, fsutil.PrivateFile); err != nil {
		t.Fatal(err)
	}
}

func contains(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Fatalf("%s lacks %q:\n%s", what, w, out)
		}
	}
}

// TestStackedCluster is a kubeadm control plane's etcd from start to
// member replacement: three nodes with kubeadm's manifests and
// certificates, operated with no connection flag at all (health, status,
// member list, snapshot save, inspect); kube-apiserver's --etcd-servers
// rewritten from the live member list; a fourth node prepared with
// prepare-member, which joins as a learner and is promoted; then a failed
// member replaced from a node's tree, producing the new node's manifest and
// the API server change.
func TestStackedCluster(t *testing.T) {
	caDir := testutil.KubeadmCA(t)
	c := &spec.Cluster{
		PKI:     spec.PKI{Dir: "/etc/kubernetes/pki/etcd", Layout: "kubeadm"},
		DataDir: kubeadm.DataDir,
		Tuning:  spec.Tuning{SnapshotCount: 10000},
	}
	for i := 1; i <= 3; i++ {
		peer, cli := testutil.FreeURLs(t, i)
		c.Members = append(c.Members, spec.Member{Name: fmt.Sprintf("m%d", i), PeerURL: peer, ClientURL: cli})
	}
	var nodes []*node
	for i := range c.Members {
		nodes = append(nodes, newNode(t, c, caDir, i))
	}
	for _, n := range nodes {
		n.start(t, false)
	}
	for _, n := range nodes {
		testutil.WaitReady(t, n.proc)
	}
	n1 := nodes[0]
	root := []string{"--kubeadm-root", n1.root}

	// Zero flags: the manifest says where the member is and which files
	// reach it.
	r := testutil.RunOK(t, nil, append([]string{"health", "--cluster"}, root...)...)
	contains(t, "health", r.Stdout, n1.cli, nodes[2].cli)
	r = testutil.RunOK(t, nil, append([]string{"status", "-v"}, root...)...)
	contains(t, "status -v", r.Stderr, "using endpoints "+n1.cli+" from kubeadm manifest /etc/kubernetes/manifests/etcd.yaml under "+n1.root,
		"cert   "+n1.path("/etc/kubernetes/pki/etcd/healthcheck-client.crt"), "cacert "+n1.path("/etc/kubernetes/pki/etcd/ca.crt"))
	contains(t, "status", r.Stdout, "m1")
	testutil.ExpectVoters(t, testutil.Members(t, nil, "--kubeadm-root", n1.root), "m1", "m2", "m3")
	snap := filepath.Join(t.TempDir(), "snap.db")
	testutil.RunOK(t, nil, append([]string{"snapshot", "save", snap}, root...)...)
	testutil.RunOK(t, nil, "snapshot", "status", snap)

	r = testutil.RunOK(t, nil, append([]string{"kubeadm", "inspect"}, root...)...)
	contains(t, "inspect", r.Stdout, "member m1 ("+n1.path(kubeadm.EtcdManifest)+")", "client URLs      "+n1.cli,
		"data dir         /var/lib/etcd (database ", "--name=m1", "healthcheck-client", "apiserver-etcd-client", "kube-apiserver   --etcd-servers=https://127.0.0.1:2379",
		"[state-new-with-data] --initial-cluster-state")

	// kube-apiserver: the diff first, nothing written; then --apply.
	apiFile := n1.path(kubeadm.APIServerManifest)
	before, _ := os.ReadFile(apiFile)
	list := strings.Join([]string{n1.cli, nodes[1].cli, nodes[2].cli}, ",")
	r = testutil.RunOK(t, nil, append([]string{"kubeadm", "apiserver-endpoints"}, root...)...)
	contains(t, "apiserver-endpoints", r.Stdout, "-    - --etcd-servers=https://127.0.0.1:2379", "+    - --etcd-servers="+list, "not written")
	if now, _ := os.ReadFile(apiFile); string(now) != string(before) {
		t.Fatal("apiserver-endpoints without --apply wrote the manifest")
	}
	r = testutil.RunOK(t, nil, append([]string{"kubeadm", "apiserver-endpoints", "--apply"}, root...)...)
	contains(t, "apiserver-endpoints --apply", r.Stdout, "wrote "+apiFile, n1.path("/etc/kubernetes/tmp/etcdkit-"))
	applied, _ := os.ReadFile(apiFile)
	testutil.Golden(t, filepath.Join("testdata", "kube-apiserver.applied.yaml"), []byte(strings.ReplaceAll(string(applied), list, "ETCD_SERVERS")), *update)
	if entries, _ := os.ReadDir(n1.path(kubeadm.ManifestDir)); len(entries) != 2 {
		t.Fatalf("the manifests directory holds %v; the kubelet would run anything else there", entries)
	}
	r = testutil.RunOK(t, nil, append([]string{"kubeadm", "apiserver-endpoints", "--apply"}, root...)...)
	contains(t, "apiserver-endpoints again", r.Stdout, "nothing to change")

	// A new control-plane node with the etcd CA: prepare-member issues its
	// certificates, adds it as a learner and writes its manifest; the
	// kubelet (here: the test) starts it; --wait promotes it.
	n4 := &node{name: "m4", root: t.TempDir()}
	n4.peer, n4.cli = testutil.FreeURLs(t, 4)
	testutil.KubeadmNode(t, caDir, n4.root, "")
	_, pp, _ := net.SplitHostPort(strings.TrimPrefix(n4.peer, "https://"))
	_, cp, _ := net.SplitHostPort(strings.TrimPrefix(n4.cli, "https://"))
	backups := t.TempDir()
	p := testutil.Start(t, nil, testutil.Etcdkit(t), "kubeadm", "prepare-member", "--kubeadm-root", n4.root, "--name", "m4",
		"--advertise-address", "127.0.0.4", "--peer-port", pp, "--client-port", cp, "--endpoints", n1.cli, "--backup-dir", backups, "--wait")
	testutil.WaitFile(t, p, n4.path(kubeadm.EtcdManifest))
	contains(t, "prepare-member", p.Stderr(), `added member "m4"`, "as a learner", "snapshot before the change")
	n4.start(t, true)
	testutil.Finish(t, p)
	contains(t, "prepare-member", p.Stdout(), "wrote "+n4.path("/etc/kubernetes/pki/etcd/server.crt"), n4.path(kubeadm.EtcdManifest),
		`promoted member "m4"`, "etcdkit kubeadm apiserver-endpoints --apply")
	manifest, _ := os.ReadFile(n4.path(kubeadm.EtcdManifest))
	contains(t, "m4's manifest", string(manifest), "as kubeadm writes it for a member that joins", "--initial-cluster-state=existing",
		"--initial-cluster=m1="+n1.peer, "m4="+n4.peer, "kubeadm.kubernetes.io/etcd.advertise-client-urls: "+n4.cli)
	// The new node operates with zero flags too.
	testutil.ExpectVoters(t, testutil.Members(t, nil, "--kubeadm-root", n4.root), "m1", "m2", "m3", "m4")
	// Again: nothing changes.
	r = testutil.RunOK(t, nil, "kubeadm", "prepare-member", "--kubeadm-root", n4.root, "--name", "m4", "--advertise-address", "127.0.0.4",
		"--peer-port", pp, "--client-port", cp, "--endpoints", n1.cli, "--skip-snapshot")
	contains(t, "prepare-member again", r.Stdout, "runs member \"m4\" already: nothing written")

	// m3's node fails for good. Replace it from m1's node: the new node's
	// tree gets its manifest (made from m1's) and certificates.
	n3 := nodes[2]
	if err := n3.proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	n3.proc.Wait(t, time.Minute)
	n5 := &node{name: "m5", root: t.TempDir()}
	n5.peer, n5.cli = testutil.FreeURLs(t, 5)
	p = testutil.Start(t, nil, testutil.Etcdkit(t), "member", "replace", "m3", "--name", "m5", "--peer-url", n5.peer, "--client-url", n5.cli,
		"--kubeadm-root", n1.root, "--out", n5.root, "--backup-dir", backups)
	testutil.WaitFile(t, p, n5.path(kubeadm.EtcdManifest))
	n5.start(t, true)
	testutil.Finish(t, p)
	four := strings.Join([]string{n1.cli, nodes[1].cli, n4.cli, n5.cli}, ",")
	contains(t, "replace", p.Stdout(), `replaced member "m3" with "m5"`, "kube-apiserver on this node:",
		"-    - --etcd-servers="+list, "+    - --etcd-servers="+four, "etcdkit kubeadm apiserver-endpoints --apply")
	contains(t, "replace", p.Stderr(), `added "m5" as learner`, `"m5" is a voting member`, "rsync -a "+n5.root+"/ root@127.0.0.5:/")
	manifest, _ = os.ReadFile(n5.path(kubeadm.EtcdManifest))
	contains(t, "m5's manifest", string(manifest), `from member "m1"'s manifest`, "--name=m5", "--initial-cluster-state=existing", "m5="+n5.peer)
	testutil.ExpectVoters(t, testutil.Members(t, nil, "--kubeadm-root", n1.root), "m1", "m2", "m4", "m5")
	// m1's manifest and kube-apiserver's were only read.
	if now, _ := os.ReadFile(apiFile); string(now) != string(applied) {
		t.Fatal("member replace wrote this node's kube-apiserver manifest")
	}
}

// TestBadInputs: a broken tree gives one clear error, exit code 2, and
// nothing is written, for discovery and for each kubeadm command.
func TestBadInputs(t *testing.T) {
	caDir := testutil.KubeadmCA(t)
	fixtures := filepath.Join(testutil.ModuleRoot(t), "internal", "kubeadm", "testdata")
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(fixtures, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	good := read("etcd.yaml")
	apply := []string{"kubeadm", "apiserver-endpoints", "--apply"}
	for _, tc := range []struct {
		name     string
		manifest string   // etcd.yaml's content; "" leaves none
		remove   string   // a file of the tree
		args     []string // the command, run with --kubeadm-root
		want     []string
	}{
		{name: "unparseable", manifest: "apiVersion: v1\nkind: Pod\nspec:\n  containers: [\n", args: apply,
			want: []string{"etc/kubernetes/manifests/etcd.yaml: not a Pod manifest", "fix the YAML, or restore the file"}},
		{name: "not etcd", manifest: good, args: []string{"health", "--kubeadm-manifest", kubeadm.APIServerManifest},
			want: []string{`is the manifest of pod "kube-apiserver", whose containers run kube-apiserver, not etcd`, "point --kubeadm-manifest at etcd's manifest"}},
		{name: "no CA flag", manifest: strings.Replace(good, "    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt\n", "", 1), args: apply,
			want: []string{"the etcd command has no --trusted-ca-file", "restore the flag, or pass --cacert"}},
		{name: "CA missing", manifest: good, remove: "etc/kubernetes/pki/etcd/ca.crt", args: []string{"member", "list"},
			want: []string{"--trusted-ca-file names /etc/kubernetes/pki/etcd/ca.crt, which does not exist", "restore the etcd CA"}},
		{name: "no manifest", args: []string{"status"},
			want: []string{"etc/kubernetes/manifests/etcd.yaml does not exist", "with an external etcd cluster, pass --endpoints"}},
		{name: "inspect unparseable", manifest: "kind: [", args: []string{"kubeadm", "inspect"}, want: []string{"not a Pod manifest"}},
		{name: "prepare-member without CA", remove: "etc/kubernetes/pki/etcd/ca.key",
			args: []string{"kubeadm", "prepare-member", "--name", "m4", "--advertise-address", "127.0.0.4", "--endpoints", "https://127.0.0.1:1"},
			want: []string{"has the CA certificate but not its key", "copy the cluster's etcd CA (ca.crt and ca.key"}},
		{name: "prepare-member without endpoints",
			args: []string{"kubeadm", "prepare-member", "--name", "m4", "--advertise-address", "127.0.0.4"},
			want: []string{"--endpoints is required: the client URL of a member of the cluster this node joins"}},
		{name: "prepare-member bad address",
			args: []string{"kubeadm", "prepare-member", "--name", "m4", "--advertise-address", "node4", "--endpoints", "https://127.0.0.1:1"},
			want: []string{`invalid value "node4" for flag --advertise-address`}},
		{name: "prepare-member on a member", manifest: good,
			args: []string{"kubeadm", "prepare-member", "--name", "m4", "--advertise-address", "127.0.0.4", "--endpoints", "https://127.0.0.1:1"},
			want: []string{`runs member "cp1"`, "this node is an etcd member already"}},
		{name: "replace without --out", manifest: good,
			args: []string{"member", "replace", "cp2", "--name", "cp4", "--peer-url", "https://10.0.0.14:2380", "--client-url", "https://10.0.0.14:2379"},
			want: []string{"--out DIR is required in a kubeadm tree"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			r := kubeadm.Root(root)
			if strings.HasPrefix(tc.name, "prepare-member") && tc.manifest == "" {
				testutil.KubeadmNode(t, caDir, root, "")
			} else {
				testutil.KubeadmNode(t, caDir, root, "cp1", "10.0.0.11")
			}
			if tc.manifest != "" {
				writeFile(t, r.Path(kubeadm.EtcdManifest), []byte(tc.manifest))
			}
			writeFile(t, r.Path(kubeadm.APIServerManifest), []byte(read("kube-apiserver.yaml")))
			if tc.remove != "" {
				if err := os.Remove(filepath.Join(root, tc.remove)); err != nil {
					t.Fatal(err)
				}
			}
			before := testutil.TreeState(t, root)
			res := testutil.Run(t, nil, testutil.Etcdkit(t), append(tc.args, "--kubeadm-root", root)...)
			testutil.ExpectFailure(t, res, 2, tc.want...)
			testutil.AssertTreeState(t, root, before)
		})
	}
}
