package pki

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/pki"
	"github.com/etcdkit/etcdkit/internal/testutil"
)

// TestPKIBadInput: each bad input gets one clear error naming the file and
// the fix, the documented exit code, and leaves every file as it was.
func TestPKIBadInput(t *testing.T) {
	root := t.TempDir()
	ca := filepath.Join(root, "ca")
	ek(t, "pki", "init", "--dir", ca)
	ek(t, "pki", "issue", "server", "m1", "--hosts", "10.0.0.1", "--dir", ca)
	testutil.WriteBytes(t, filepath.Join(root, "ca-config.json"), []byte(caConfig))
	testutil.WriteBytes(t, filepath.Join(root, "m1-csr.json"), []byte(memberCSR))
	testutil.WriteBytes(t, filepath.Join(root, "dsa-csr.json"), []byte(`{"CN": "m1", "hosts": ["10.0.0.1"], "key": {"algo": "dsa", "size": 1024}}`))
	testutil.WriteBytes(t, filepath.Join(root, "a-file"), []byte("not a directory"))
	broken := filepath.Join(root, "broken")
	ek(t, "pki", "init", "--dir", broken)
	testutil.WriteBytes(t, filepath.Join(broken, "ca.pem"), []byte("-----BEGIN CERTIFICATE-----\nnot base64\n"))

	cases := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"malformed CA PEM", []string{"pki", "issue", "server", "m1", "--hosts", "10.0.0.1", "--dir", broken}, 1,
			[]string{filepath.Join(broken, "ca.pem") + ": no PEM certificate found"}},
		{"CSR with an unknown key algorithm", []string{"pki", "issue", "--cfssl-config", filepath.Join(root, "ca-config.json"), "--profile", "peer", filepath.Join(root, "dsa-csr.json"), "--dir", ca, "--out", filepath.Join(root, "out")}, 2,
			[]string{filepath.Join(root, "dsa-csr.json") + `: key.algo: unknown key algorithm "dsa"; use rsa (size 2048, 3072 or 4096), ecdsa (size 256 or 384) or ed25519`}},
		{"profile that does not exist", []string{"pki", "issue", "--cfssl-config", filepath.Join(root, "ca-config.json"), "--profile", "pear", filepath.Join(root, "m1-csr.json"), "--dir", ca, "--out", filepath.Join(root, "out")}, 2,
			[]string{`profile "pear" is not in ` + filepath.Join(root, "ca-config.json") + " (it has client, peer, server); cfssl would silently have used the default profile"}},
		{"unwritable dir for a new CA", []string{"pki", "init", "--dir", filepath.Join(root, "a-file", "ca")}, 1,
			[]string{"create directory " + filepath.Join(root, "a-file", "ca"), "not a directory"}},
		{"unwritable dir for a leaf", []string{"pki", "issue", "peer", "m1", "--hosts", "10.0.0.1", "--dir", ca, "--out", filepath.Join(root, "a-file")}, 1,
			[]string{filepath.Join(root, "a-file") + " is not a directory"}},
		{"a CA that exists", []string{"pki", "init", "--dir", ca}, 1,
			[]string{"a CA already exists at " + filepath.Join(ca, "ca.pem"), "use `etcdkit pki rotate-ca --dir " + ca + "`"}},
		{"a certificate that exists", []string{"pki", "issue", "server", "m2", "--hosts", "10.0.0.2", "--dir", ca}, 1,
			[]string{filepath.Join(ca, "server.pem") + ` already holds the certificate of "m1"`, "--force"}},
		{"server without hosts", []string{"pki", "issue", "server", "m2", "--dir", ca, "--out", filepath.Join(root, "m2")}, 2,
			[]string{"a server certificate needs the hosts clients dial: give --hosts"}},
		{"unknown key algorithm flag", []string{"pki", "init", "--key-algorithm", "ec", "--dir", filepath.Join(root, "new")}, 2,
			[]string{`invalid value "ec" for flag --key-algorithm; options are ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096, ed25519`}},
		{"renew of an unknown certificate", []string{"pki", "renew", "m9", "--dir", ca}, 2,
			[]string{`no certificate "m9" in directory ` + ca}},
		{"rotation phase out of order", []string{"pki", "rotate-ca", "finish", "--dir", ca, "--no-probe"}, 1,
			[]string{"finish comes after reissue: no rotation has started; see `etcdkit pki rotate-ca status --dir " + ca + "`"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.TreeState(t, root)
			r := ekFails(t, tc.args...)
			testutil.ExpectFailure(t, r, tc.code, tc.want...)
			testutil.AssertTreeState(t, root, before)
		})
	}
}

// TestCheckFindingsAndFixes: `pki check` against a member config finds a
// missing SAN for an advertised IP and a world-readable key, prints each
// with its file and fix, exits 1; the printed fix commands, run as they
// are, make the check pass. JSON and YAML carry the same findings.
func TestCheckFindingsAndFixes(t *testing.T) {
	root := t.TempDir()
	ssl := filepath.Join(root, "ssl")
	ek(t, "pki", "init", "--dir", ssl)
	ek(t, "pki", "issue", "server", "m1", "--hosts", "192.168.100.200", "--dir", ssl)
	ek(t, "pki", "issue", "peer", "m1", "--hosts", "192.168.100.200,192.168.100.201", "--dir", ssl)
	config, _ := oneMemberConfig(t, root, cfsslFiles(ssl))
	cfg, err := etcdconf.Load(config)
	if err != nil {
		t.Fatal(err)
	}
	// The member advertises an address its server certificate lacks, and
	// listens on every address (which needs nothing more).
	cfg.AdvertiseClientURLs = "https://192.168.100.201:2379"
	cfg.ListenClientURLs = "https://0.0.0.0:2379"
	cfg.InitialAdvertisePeerURLs, cfg.ListenPeerURLs, cfg.InitialCluster = "https://192.168.100.201:2380", "https://192.168.100.201:2380", "m1=https://192.168.100.201:2380"
	b, _ := cfg.Marshal()
	testutil.WriteBytes(t, config, b)
	peerKey := pki.LayoutCfssl.Leaf(ssl, pki.RolePeer).Key
	if err := os.Chmod(peerKey, 0o644); err != nil {
		t.Fatal(err)
	}

	r := ekFails(t, "pki", "check", "--config", config)
	testutil.ExpectFailure(t, r, 1, "2 errors and 0 warnings in the certificates of etcd config "+config)
	server := pki.LayoutCfssl.Leaf(ssl, pki.RoleServer).Cert
	for _, want := range []string{
		"ERROR: " + server + ": does not cover 192.168.100.201 (advertise-client-urls https://192.168.100.201:2379)",
		"  fix: etcdkit pki issue server m1 --dir " + ssl + " --hosts localhost,192.168.100.200,127.0.0.1,192.168.100.201 --force",
		"ERROR: " + peerKey + ": readable by other users (mode 0644)",
		"  fix: chmod 600 " + peerKey,
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Fatalf("check output lacks %q:\n%s", want, r.Stdout)
		}
	}
	var rep pki.Report
	r = ekFails(t, "pki", "check", "--config", config, "-o", "json")
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil || len(rep.Findings) != 2 || rep.Findings[0].Fix == "" {
		t.Fatalf("check -o json: %v %+v", err, rep.Findings)
	}
	r = ekFails(t, "pki", "check", "--config", config, "-o", "yaml")
	if !strings.Contains(r.Stdout, "findings:") || !strings.Contains(r.Stdout, "problem: 'does not cover 192.168.100.201") {
		t.Fatalf("check -o yaml:\n%s", r.Stdout)
	}

	for _, f := range rep.Findings {
		shell(t, root, f.Fix)
	}
	r = ek(t, "pki", "check", "--config", config, "--strict")
	if !strings.Contains(r.Stdout, "no problems found") {
		t.Fatalf("after the fixes:\n%s", r.Stdout)
	}
	if backups, _ := filepath.Glob(server + ".bak-*"); len(backups) != 1 {
		t.Fatalf("the replaced server certificate is not kept: %v", backups)
	}
}
