package kubeadm

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/etcdkit/etcdkit/internal/fsutil"
	"github.com/etcdkit/etcdkit/internal/lint"
	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/ops/replace"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testutil.Golden(t, filepath.Join("testdata", "golden", name), got, *update)
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// node is a copy of a control-plane node's tree: the fixture manifests and
// the etcd certificates of member cp1 at 10.0.0.11.
func node(t *testing.T, etcdManifest string) Root {
	t.Helper()
	root := t.TempDir()
	testutil.KubeadmNode(t, testutil.KubeadmCA(t), root, "cp1", "10.0.0.11")
	writeNodeFile(t, root, EtcdManifest, fixture(t, etcdManifest))
	writeNodeFile(t, root, APIServerManifest, fixture(t, "kube-apiserver.yaml"))
	return Root(root)
}

func writeNodeFile(t *testing.T, root, path string, data []byte) {
	t.Helper()
	if err := fsutil.WriteFile(Root(root).Path(path), data, fsutil.PrivateFile); err != nil {
		t.Fatal(err)
	}
}

// TestManifest reads what kubeadm writes, in both generations of flags.
func TestManifest(t *testing.T) {
	for _, f := range []string{"etcd.yaml", "etcd-v1.30.yaml"} {
		t.Run(f, func(t *testing.T) {
			root := node(t, f)
			m, err := Load(root, EtcdManifest)
			if err != nil {
				t.Fatal(err)
			}
			if m.Name() != "cp1" || !slices.Equal(m.ClientURLs(), []string{"https://10.0.0.11:2379"}) ||
				!slices.Equal(m.PeerURLs(), []string{"https://10.0.0.11:2380"}) || m.PKIDir() != "/etc/kubernetes/pki/etcd" {
				t.Fatalf("read %q %v %v %s", m.Name(), m.ClientURLs(), m.PeerURLs(), m.PKIDir())
			}
			if f == "etcd-v1.30.yaml" && len(m.Problems) != 2 {
				t.Fatalf("etcd 3.7 has no --experimental-* flags; want 2 problems, got %v", m.Problems)
			}
			// Discovery: the member's URL, its CA and the health-check
			// client, all under the root.
			s, err := m.Settings()
			if err != nil {
				t.Fatal(err)
			}
			etcd := root.Path("/etc/kubernetes/pki/etcd")
			if !slices.Equal(s.Endpoints, []string{"https://10.0.0.11:2379"}) || s.CACert != etcd+"/ca.crt" ||
				s.Cert != etcd+"/healthcheck-client.crt" || s.Key != etcd+"/healthcheck-client.key" {
				t.Fatalf("settings %+v", s)
			}
			rooted := m.Rooted()
			if rooted.DataDir != root.Path("/var/lib/etcd") || rooted.PeerTransportSecurity.CertFile != etcd+"/peer.crt" || m.Config.DataDir != "/var/lib/etcd" {
				t.Fatalf("rooted config: %s %s (node's %s)", rooted.DataDir, rooted.PeerTransportSecurity.CertFile, m.Config.DataDir)
			}
		})
	}
}

// TestSettingsFallBack: without healthcheck-client, kube-apiserver's client
// pair serves; without the annotation, --advertise-client-urls.
func TestSettingsFallBack(t *testing.T) {
	root := node(t, "etcd.yaml")
	etcd := root.Path("/etc/kubernetes/pki/etcd")
	os.Remove(filepath.Join(etcd, "healthcheck-client.crt"))
	data := strings.Replace(string(fixture(t, "etcd.yaml")), "    kubeadm.kubernetes.io/etcd.advertise-client-urls: https://10.0.0.11:2379\n", "    other: x\n", 1)
	m, err := Parse(root, EtcdManifest, []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.Settings()
	if err != nil {
		t.Fatal(err)
	}
	if s.Cert != root.Path("/etc/kubernetes/pki/apiserver-etcd-client.crt") || s.Endpoints[0] != "https://10.0.0.11:2379" {
		t.Fatalf("settings %+v", s)
	}
	found := false
	for _, f := range m.Findings() {
		found = found || f.Rule == RuleAnnotation
	}
	if !found {
		t.Fatal("a manifest without kubeadm's annotation is not reported")
	}
}

// TestBadManifests: each gives one error naming the file, what is wrong
// and what to do.
func TestBadManifests(t *testing.T) {
	good := string(fixture(t, "etcd.yaml"))
	for _, tc := range []struct {
		name, data string
		remove     string // a file of the cert tree
		want       []string
	}{
		{name: "unparseable", data: "apiVersion: v1\nkind: Pod\nspec:\n  containers: [\n", want: []string{"not a Pod manifest", "fix the YAML", TmpDir}},
		{name: "not a pod", data: "apiVersion: apps/v1\nkind: Deployment\n", want: []string{"not a Pod manifest: kind is Deployment"}},
		{name: "kube-apiserver", data: string(fixture(t, "kube-apiserver.yaml")), want: []string{`is the manifest of pod "kube-apiserver"`, "run kube-apiserver, not etcd", "--kubeadm-manifest", EtcdManifest}},
		{name: "no trusted-ca-file", data: strings.Replace(good, "    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt\n", "", 1),
			want: []string{"no --trusted-ca-file", "/etc/kubernetes/pki/etcd/ca.crt", "restore the flag, or pass --cacert"}},
		{name: "missing CA", data: good, remove: "etc/kubernetes/pki/etcd/ca.crt", want: []string{":33: --trusted-ca-file names /etc/kubernetes/pki/etcd/ca.crt, which does not exist", "looked for", "restore the etcd CA"}},
		{name: "no client pair", data: good, remove: "client", want: []string{"no client certificate", "healthcheck-client.crt nor", "apiserver-etcd-client.crt", "etcdkit pki issue client kube-etcd-healthcheck-client --layout kubeadm"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := node(t, "etcd.yaml")
			writeNodeFile(t, string(root), EtcdManifest, []byte(tc.data))
			switch tc.remove {
			case "":
			case "client":
				for _, p := range []string{"etc/kubernetes/pki/etcd/healthcheck-client.crt", "etc/kubernetes/pki/apiserver-etcd-client.crt"} {
					os.Remove(filepath.Join(string(root), p))
				}
			default:
				os.Remove(filepath.Join(string(root), tc.remove))
			}
			_, _, err := Source(root, EtcdManifest, true).Find()
			if err == nil || !errors.Is(err, ErrBadManifest) {
				t.Fatalf("got %v, want a bad-manifest error", err)
			}
			for _, w := range append(tc.want, root.Path(EtcdManifest)) {
				if tc.name == "no client pair" && w == root.Path(EtcdManifest) {
					continue
				}
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
	// Not there: nothing found by default, an error when asked for.
	empty := Root(t.TempDir())
	if _, found, err := Source(empty, "", false).Find(); found || err != nil {
		t.Fatalf("default source with no manifest: found %v, %v", found, err)
	}
	if _, _, err := Source(empty, "", true).Find(); err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "external etcd") {
		t.Fatalf("explicit source with no manifest: %v", err)
	}
}

var servers = []string{"https://10.0.0.11:2379", "https://10.0.0.12:2379", "https://10.0.0.13:2379"}

// TestAPIServerEndpoints: --etcd-servers is rewritten in place, one line,
// atomically, with a backup outside the manifests directory.
func TestAPIServerEndpoints(t *testing.T) {
	root := node(t, "etcd.yaml")
	a, err := LoadAPIServer(root, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := a.EtcdServers(); !slices.Equal(got, []string{"https://127.0.0.1:2379"}) {
		t.Fatalf("etcd servers %v", got)
	}
	ch, err := a.SetEtcdServers(root, servers)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Reformatted || ch.Unchanged {
		t.Fatalf("change %+v", ch)
	}
	golden(t, "kube-apiserver.yaml", ch.After())
	golden(t, "kube-apiserver.diff", []byte(strings.ReplaceAll(ch.Diff, string(root), "ROOT")))
	if err := ch.Apply(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(a.File)
	golden(t, "kube-apiserver.yaml", got)
	if fi, _ := os.Stat(a.File); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want kubeadm's 0600 kept", fi.Mode())
	}
	if ch.Backup != root.Path("/etc/kubernetes/tmp/etcdkit-20250102-030405/kube-apiserver.yaml") {
		t.Fatalf("backup at %s", ch.Backup)
	}
	if b, _ := os.ReadFile(ch.Backup); string(b) != string(fixture(t, "kube-apiserver.yaml")) {
		t.Fatal("the backup is not the old manifest")
	}
	if entries, _ := os.ReadDir(root.Path(ManifestDir)); len(entries) != 2 {
		t.Fatalf("the manifests directory holds %v: anything else there the kubelet runs", entries)
	}
	// Again: nothing to change.
	a, _ = LoadAPIServer(root, "")
	if ch, _ := a.SetEtcdServers(root, servers); !ch.Unchanged {
		t.Fatalf("second run changes %s", ch.Diff)
	}
}

// TestAPIServerEdits: quoted items are kept quoted, a missing flag is added
// after the command, and what cannot be edited in place is written whole.
func TestAPIServerEdits(t *testing.T) {
	orig := string(fixture(t, "kube-apiserver.yaml"))
	for _, tc := range []struct {
		name, from, to string
		reformatted    bool
		want           string
	}{
		{name: "quoted", from: "    - --etcd-servers=https://127.0.0.1:2379\n", to: "    - \"--etcd-servers=https://127.0.0.1:2379\" # stacked\n",
			want: "    - \"--etcd-servers=" + strings.Join(servers, ",") + "\" # stacked\n"},
		{name: "missing", from: "    - --etcd-servers=https://127.0.0.1:2379\n", to: "",
			want: "    - --tls-private-key-file=/etc/kubernetes/pki/apiserver.key\n    - --etcd-servers=" + strings.Join(servers, ",") + "\n    image:"},
		{name: "in args", from: "    - kube-apiserver\n", to: "    - kube-apiserver\n    args:\n",
			want: "    args:\n    - --advertise-address=10.0.0.11\n"},
		{name: "flow", from: "  - command:\n    - kube-apiserver\n", to: "  - command: [kube-apiserver,\n",
			reformatted: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := Root(t.TempDir())
			data := strings.Replace(orig, tc.from, tc.to, 1)
			if tc.name == "flow" {
				// the whole command as a flow sequence
				lines := strings.Split(data, "\n")
				var out []string
				for _, l := range lines {
					if v, ok := strings.CutPrefix(l, "    - --"); ok && !strings.HasPrefix(l, "    - --image") {
						out[len(out)-1] += " --" + v + ","
						continue
					}
					out = append(out, l)
				}
				data = strings.Join(out, "\n")
				data = strings.Replace(data, ",\n    image:", "]\n    image:", 1)
			}
			writeNodeFile(t, string(root), APIServerManifest, []byte(data))
			a, err := LoadAPIServer(root, "")
			if err != nil {
				t.Fatal(err)
			}
			ch, err := a.SetEtcdServers(root, servers)
			if err != nil {
				t.Fatal(err)
			}
			if ch.Reformatted != tc.reformatted {
				t.Fatalf("reformatted %v:\n%s", ch.Reformatted, ch.After())
			}
			if !strings.Contains(string(ch.After()), tc.want) {
				t.Fatalf("the manifest lacks %q:\n%s", tc.want, ch.After())
			}
			b, _ := LoadAPIServer(root, "")
			b.Data = ch.After()
			if err := os.WriteFile(b.File, ch.After(), 0o600); err != nil {
				t.Fatal(err)
			}
			b, _ = LoadAPIServer(root, "")
			if !slices.Equal(b.EtcdServers(), servers) {
				t.Fatalf("read back %v", b.EtcdServers())
			}
		})
	}
}

// TestAPIServerRefusesAConcurrentEdit: a manifest changed between reading
// and writing is not overwritten.
func TestAPIServerRefusesAConcurrentEdit(t *testing.T) {
	root := node(t, "etcd.yaml")
	a, _ := LoadAPIServer(root, "")
	ch, err := a.SetEtcdServers(root, servers)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(a.Data), "--secure-port=6443", "--secure-port=6444", 1)
	writeNodeFile(t, string(root), APIServerManifest, []byte(edited))
	before := testutil.TreeState(t, string(root))
	if err := ch.Apply(time.Now()); err == nil || !strings.Contains(err.Error(), "changed while etcdkit was working") {
		t.Fatalf("got %v", err)
	}
	testutil.AssertTreeState(t, string(root), before)
}

// TestEtcdServers lists started voters only.
func TestEtcdServers(t *testing.T) {
	ms := &ops.Membership{Members: []ops.Member{
		{Name: "a", Started: true, ClientURLs: []string{"https://a:2379"}},
		{Name: "b", Started: true, Learner: true, ClientURLs: []string{"https://b:2379"}},
		{ID: "c", Learner: true},
		{Name: "d", Started: true, ClientURLs: []string{"https://d:2379"}},
	}}
	if got := EtcdServers(ms); !slices.Equal(got, []string{"https://a:2379", "https://d:2379"}) {
		t.Fatalf("got %v", got)
	}
}

// TestNewManifest: a joining member's manifest, from another member's (its
// image and flags kept, its own settings changed) or as kubeadm writes it.
func TestNewManifest(t *testing.T) {
	root := node(t, "etcd.yaml")
	tmpl, err := Load(root, EtcdManifest)
	if err != nil {
		t.Fatal(err)
	}
	nm := replace.NewMember{Name: "cp4", PeerURL: "https://10.0.0.14:2380", ClientURL: "https://10.0.0.14:2379"}
	initial := "cp1=https://10.0.0.11:2380,cp2=https://10.0.0.12:2380,cp4=https://10.0.0.14:2380"
	fromTmpl, err := NewManifest(tmpl, nm, initial, RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "etcd-cp4-from-cp1.yaml", fromTmpl)
	rendered, err := NewManifest(nil, nm, initial, RenderOptions{Image: "registry.k8s.io/etcd:3.6.4-0"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "etcd-cp4.yaml", rendered)
	// Both read back as the member, and lint clean but for the CA-less
	// tree (the files are checked where the test's tree has none).
	for _, data := range [][]byte{fromTmpl, rendered} {
		m, err := Parse(root, EtcdManifest, data)
		if err != nil {
			t.Fatal(err)
		}
		c := m.Config
		if m.Name() != "cp4" || c.InitialClusterState != "existing" || c.InitialCluster != initial ||
			c.ListenClientURLs != "https://127.0.0.1:2379,https://10.0.0.14:2379" && c.ListenClientURLs != "https://10.0.0.14:2379,https://127.0.0.1:2379" ||
			c.ListenPeerURLs != nm.PeerURL || !slices.Equal(m.ClientURLs(), []string{nm.ClientURL}) || len(m.Problems) > 0 {
			t.Fatalf("read back: %s %+v %v", m.Name(), c, m.Problems)
		}
		for _, f := range m.Findings() {
			if f.Severity == lint.Error && f.Rule != "missing-file" && f.Rule != "cert-san-mismatch" {
				t.Fatalf("finding %+v", f)
			}
		}
	}
}

// TestMoveURLs: the old member's address becomes the new one's; loopback
// and wildcard addresses stay, on the new port.
func TestMoveURLs(t *testing.T) {
	for _, tc := range []struct{ list, old, new, want string }{
		{"https://127.0.0.1:2379,https://10.0.0.11:2379", "https://10.0.0.11:2379", "https://10.0.0.14:2379", "https://127.0.0.1:2379,https://10.0.0.14:2379"},
		{"https://127.0.0.1:41000", "https://127.0.0.1:41000", "https://127.0.0.5:42000", "https://127.0.0.5:42000"},
		{"https://0.0.0.0:2380", "https://10.0.0.11:2380", "https://10.0.0.14:3380", "https://0.0.0.0:3380,https://10.0.0.14:3380"},
		{"https://10.0.0.11:2379,https://192.168.1.11:2379", "https://10.0.0.11:2379", "https://10.0.0.14:2379", "https://10.0.0.14:2379"},
	} {
		if got := moveURLs(tc.list, []string{tc.old}, tc.new); got != tc.want {
			t.Errorf("moveURLs(%s) = %s, want %s", tc.list, got, tc.want)
		}
	}
}

// TestNodeFiles: a node's certificates are issued by kubeadm's rules and
// written before its manifest; fitting ones are kept; one that does not fit
// is refused with the command that replaces it, and nothing is written.
func TestNodeFiles(t *testing.T) {
	caDir := testutil.KubeadmCA(t)
	ca, err := pki.OpenCA(pki.LayoutKubeadm, caDir)
	if err != nil {
		t.Fatal(err)
	}
	nm := replace.NewMember{Name: "cp4", PeerURL: "https://10.0.0.14:2380", ClientURL: "https://10.0.0.14:2379"}
	root := Root(t.TempDir())
	n := Node{Root: root, PKIDir: "/etc/kubernetes/pki/etcd", Manifest: EtcdManifest, CA: ca}
	f, err := n.Plan(nm)
	if err != nil {
		t.Fatal(err)
	}
	w, err := f.Write([]byte("manifest\n"))
	if err != nil {
		t.Fatal(err)
	}
	etcd := root.Path("/etc/kubernetes/pki/etcd")
	if want := root.Path(EtcdManifest); w.Files[len(w.Files)-1] != want || len(w.Files) != 8 {
		t.Fatalf("wrote %v; want the CA, three pairs, then %s", w.Files, want)
	}
	server, err := pki.LoadLeaf(pki.LayoutKubeadm.Leaf(etcd, pki.RoleServer))
	if err != nil {
		t.Fatal(err)
	}
	if hosts := pki.HostsOf(server.Cert); !slices.Equal(hosts, []string{"cp4", "localhost", "10.0.0.14", "127.0.0.1", "::1"}) || server.Cert.Subject.CommonName != "cp4" {
		t.Fatalf("server certificate %s for %v; want kubeadm's SANs", server.Cert.Subject, hosts)
	}
	hc, err := pki.LoadLeaf(pki.LayoutKubeadm.Leaf(etcd, pki.RoleClient))
	if err != nil || hc.Cert.Subject.CommonName != pki.KubeadmHealthcheckClientCN || !slices.Equal(hc.Cert.Subject.Organization, []string{"system:masters"}) {
		t.Fatalf("healthcheck-client %v %v", hc, err)
	}
	if fi, _ := os.Stat(root.Path(EtcdManifest)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("manifest mode %v", fi.Mode())
	}

	// Again: every certificate fits and is kept.
	f, err = n.Plan(nm)
	if err != nil || len(f.Kept()) != 3 {
		t.Fatalf("re-plan: kept %v, %v", f.Kept(), err)
	}
	// Another member's address on the same node: the server certificate
	// does not cover it, and nothing is written.
	before := testutil.TreeState(t, string(root))
	other := nm
	other.ClientURL, other.PeerURL = "https://10.0.0.15:2379", "https://10.0.0.15:2380"
	_, err = n.Plan(other)
	if err == nil || !strings.Contains(err.Error(), "does not cover 10.0.0.15") || !strings.Contains(err.Error(), "etcdkit pki issue server cp4 --layout kubeadm --dir "+etcd+" --hosts cp4,localhost,10.0.0.15,127.0.0.1,::1 --force") {
		t.Fatalf("got %v", err)
	}
	testutil.AssertTreeState(t, string(root), before)
	// No CA: a missing certificate cannot be issued.
	n.CA = nil
	if _, err := (Node{Root: Root(t.TempDir()), PKIDir: n.PKIDir, Manifest: EtcdManifest}).Plan(nm); !errors.Is(err, ErrNoCA) {
		t.Fatalf("got %v", err)
	}
	// The CA certificate without its key: what the node has is kept, and
	// only what it lacks would need the key.
	f, err = n.Plan(nm)
	if err != nil || len(f.Kept()) != 3 {
		t.Fatalf("without the CA key: kept %v, %v", f.Kept(), err)
	}
	os.Remove(filepath.Join(etcd, "peer.crt"))
	os.Remove(filepath.Join(etcd, "peer.key"))
	if _, err := n.Plan(nm); !errors.Is(err, ErrNoCA) || !strings.Contains(err.Error(), "peer.crt does not exist") {
		t.Fatalf("got %v", err)
	}
}

// TestInspect reads the member, checks its certificates and lints the
// manifest. kubeadm v1.30's flags are what etcd 3.7 refuses: a warning
// while the pod runs etcd 3.5, an error once its image is etcd 3.7.
func TestInspect(t *testing.T) {
	root := node(t, "etcd-v1.30.yaml")
	in, err := Inspect(root, EtcdManifest, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if in.Member.Name != "cp1" || in.Member.InitialClusterState != "new" || in.DataDir.Path != "/var/lib/etcd" || in.DataDir.Exists ||
		in.APIServer == nil || !slices.Equal(in.APIServer.EtcdServers, []string{"https://127.0.0.1:2379"}) || in.Member.Image != "registry.k8s.io/etcd:3.5.12-0" {
		t.Fatalf("inspection %+v", in)
	}
	ids := map[string]string{}
	for _, c := range in.PKI.Certificates {
		ids[c.ID] = c.Status
	}
	for _, id := range []string{"server", "peer", "healthcheck-client", "apiserver-etcd-client"} {
		if ids[id] != "ok" {
			t.Fatalf("certificate %s: %q (%v)", id, ids[id], in.PKI.Findings)
		}
	}
	experimental := func(in *Inspection, sev lint.Severity) []string {
		var out []string
		for _, f := range in.Findings {
			if f.Severity == sev && strings.HasPrefix(f.Key, "--experimental-") {
				out = append(out, f.Key+": "+f.Fix)
			}
		}
		return out
	}
	want := []string{"--experimental-initial-corrupt-check: before moving to etcd 3.7: use --feature-gates=InitialCorruptCheck=true",
		"--experimental-watch-progress-notify-interval: before moving to etcd 3.7: use --watch-progress-notify-interval"}
	if got := experimental(in, lint.Warning); !slices.Equal(got, want) || in.Errors() != 0 {
		t.Fatalf("on etcd 3.5: warnings %v, errors %d: %+v", got, in.Errors(), in.Findings)
	}
	data := strings.Replace(string(fixture(t, "etcd-v1.30.yaml")), "etcd:3.5.12-0", "etcd:3.7.0-0", 1)
	writeNodeFile(t, string(root), EtcdManifest, []byte(data))
	if in, err = Inspect(root, EtcdManifest, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := experimental(in, lint.Error); len(got) != 2 || in.Errors() != 2 {
		t.Fatalf("on etcd 3.7: errors %v: %+v", got, in.Findings)
	}
}
