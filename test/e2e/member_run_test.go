package e2e

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/local"
	"github.com/etcdkit/etcdkit/internal/testutil"
)

// oneMember writes a 1-member cluster (PKI, spec, config) with `up`'s own
// code and returns the member's config path and its parsed config.
func oneMember(t *testing.T) (string, *etcdconf.Config) {
	t.Helper()
	d := local.Dir(filepath.Join(t.TempDir(), "c"))
	if _, err := d.Create(local.CreateOptions{Members: 1}); err != nil {
		t.Fatal(err)
	}
	path := d.Member("m1").Config()
	cfg, err := etcdconf.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, cfg
}

// writeConfig writes a changed copy of a config beside the original.
func writeConfig(t *testing.T, dir string, cfg *etcdconf.Config) string {
	t.Helper()
	data, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "etcd-test.yaml")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMemberRunStopsCleanly: SIGTERM and SIGINT both stop a member with
// exit code 0.
func TestMemberRunStopsCleanly(t *testing.T) {
	bin := testutil.Etcdkit(t)
	path, _ := oneMember(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		p := testutil.Start(t, nil, bin, "member", "run", "--config", path)
		testutil.WaitReady(t, p)
		if err := p.Signal(sig); err != nil {
			t.Fatal(err)
		}
		if code := p.Wait(t, time.Minute); code != 0 {
			t.Fatalf("after %v: exit %d\n%s", sig, code, p.Stderr())
		}
	}
}

// TestMemberRunBadInput: each way a member cannot start gives one clear
// error naming the problem, a non-zero exit, no stack trace, and creates no
// data dir.
func TestMemberRunBadInput(t *testing.T) {
	bin := testutil.Etcdkit(t)

	t.Run("missing certificate file", func(t *testing.T) {
		path, cfg := oneMember(t)
		cfg.ClientTransportSecurity.CertFile = filepath.Join(filepath.Dir(path), "ssl", "nope.pem")
		bad := writeConfig(t, filepath.Dir(path), cfg)
		r := testutil.Run(t, nil, bin, "member", "run", "--config", bad)
		testutil.ExpectFailure(t, r, 2, "client-transport-security.cert-file", "nope.pem: file does not exist")
		expectNoDataDir(t, cfg)
	})

	t.Run("invalid URL", func(t *testing.T) {
		path, cfg := oneMember(t)
		cfg.ListenPeerURLs = "https//127.0.0.1:2380"
		bad := writeConfig(t, filepath.Dir(path), cfg)
		r := testutil.Run(t, nil, bin, "member", "run", "--config", bad)
		testutil.ExpectFailure(t, r, 2, "listen-peer-urls", `invalid URL "https//127.0.0.1:2380"`)
		expectNoDataDir(t, cfg)
	})

	t.Run("world-readable key", func(t *testing.T) {
		path, cfg := oneMember(t)
		if err := os.Chmod(cfg.PeerTransportSecurity.KeyFile, 0o644); err != nil {
			t.Fatal(err)
		}
		r := testutil.Run(t, nil, bin, "member", "run", "--config", path)
		testutil.ExpectFailure(t, r, 2, "readable by others", "chmod 600 "+cfg.PeerTransportSecurity.KeyFile)
		expectNoDataDir(t, cfg)
	})

	t.Run("unknown key", func(t *testing.T) {
		path, cfg := oneMember(t)
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		bad := filepath.Join(filepath.Dir(path), "typo.yaml")
		if err := os.WriteFile(bad, append(src, []byte("snapshot-cuont: 100\n")...), 0o600); err != nil {
			t.Fatal(err)
		}
		r := testutil.Run(t, nil, bin, "member", "run", "--config", bad)
		testutil.ExpectFailure(t, r, 2, "snapshot-cuont: unknown key", `did you mean "snapshot-count"?`)
		expectNoDataDir(t, cfg)
	})

	t.Run("port in use", func(t *testing.T) {
		path, cfg := oneMember(t)
		u, err := url.Parse(cfg.ListenClientURLs)
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		r := testutil.Run(t, nil, bin, "member", "run", "--config", path)
		testutil.ExpectFailure(t, r, 1, `member "m1": cannot start`, "address already in use")
		expectNoDataDir(t, cfg)
	})

	t.Run("data dir held by a running member", func(t *testing.T) {
		path, cfg := oneMember(t)
		p := testutil.Start(t, nil, bin, "member", "run", "--config", path)
		testutil.WaitReady(t, p)
		// Same data dir, other ports: only the data dir is shared.
		ports, err := local.FreePorts("127.0.0.1", 2)
		if err != nil {
			t.Fatal(err)
		}
		second := *cfg
		second.ListenClientURLs = "https://127.0.0.1:" + itoa(ports[0])
		second.AdvertiseClientURLs = second.ListenClientURLs
		second.ListenPeerURLs = "https://127.0.0.1:" + itoa(ports[1])
		second.InitialAdvertisePeerURLs = second.ListenPeerURLs
		second.InitialCluster = "m1=" + second.ListenPeerURLs
		bad := writeConfig(t, filepath.Dir(path), &second)
		r := testutil.Run(t, nil, bin, "member", "run", "--config", bad)
		testutil.ExpectFailure(t, r, 1, "is in use by another running etcd member", cfg.DataDir)
		if p.Exited() {
			t.Fatalf("the running member stopped: %s", p.Stderr())
		}
	})

	t.Run("no config", func(t *testing.T) {
		r := testutil.Run(t, nil, bin, "member", "run")
		testutil.ExpectFailure(t, r, 2, "--config is required")
		r = testutil.Run(t, nil, bin, "member", "run", "--config", filepath.Join(t.TempDir(), "missing.yaml"))
		testutil.ExpectFailure(t, r, 2, "missing.yaml: no such file or directory")
	})
}

func expectNoDataDir(t *testing.T, cfg *etcdconf.Config) {
	t.Helper()
	if _, err := os.Stat(cfg.DataDir); !os.IsNotExist(err) {
		t.Fatalf("data dir %s was created by a member that could not start (err %v)", cfg.DataDir, err)
	}
}
