// Package fuzz holds `go test -fuzz` targets for etcdkit's parsers of
// untrusted input: etcd config files, cluster specs, snapshot files and
// their sidecars, and endpoint lists. `go test ./...` runs each target's
// seeds; .ci/run fuzzes each briefly:
//
//	go test ./test/robustness/fuzz -run '^$' -fuzz '^FuzzSpecParse$' -fuzztime 5s
//
// Every target checks the same promise: bad input gets an error that names
// what was read, never a panic or a hang; and what is accepted survives a
// round trip through etcdkit's own writer.
package fuzz

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
	"sigs.k8s.io/yaml"

	"github.com/etcdkit/etcdkit/internal/connect"
	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/snapshot"
	"github.com/etcdkit/etcdkit/internal/spec"
)

const etcdYAML = `name: m1
data-dir: /var/lib/etcd/default.etcd
listen-peer-urls: https://10.0.0.1:2380
listen-client-urls: https://10.0.0.1:2379,https://127.0.0.1:2379
initial-advertise-peer-urls: https://10.0.0.1:2380
advertise-client-urls: https://10.0.0.1:2379
initial-cluster: m1=https://10.0.0.1:2380,m2=https://10.0.0.2:2380,m3=https://10.0.0.3:2380
initial-cluster-token: etcd-cluster
initial-cluster-state: new
heartbeat-interval: 100
election-timeout: 1000
quota-backend-bytes: 8589934592
auto-compaction-mode: periodic
auto-compaction-retention: "1h"
snapshot-count: 10000
max-request-bytes: 1572864
max-txn-ops: 128
client-transport-security:
  cert-file: /etc/etcd/ssl/server.pem
  key-file: /etc/etcd/ssl/server-key.pem
  client-cert-auth: true
  trusted-ca-file: /etc/etcd/ssl/ca.pem
peer-transport-security:
  cert-file: /etc/etcd/ssl/peer.pem
  key-file: /etc/etcd/ssl/peer-key.pem
  client-cert-auth: true
  trusted-ca-file: /etc/etcd/ssl/ca.pem
log-outputs: [stderr]
etcdkit:
  backup: {dir: /var/backups/etcd, schedule: "0 */6 * * *", keep: 28}
`

// FuzzEtcdconfParse: etcd's YAML config format.
func FuzzEtcdconfParse(f *testing.F) {
	for _, s := range []string{
		etcdYAML,
		"name: m1\n",
		"client-cert-auth: true\n",
		"name: [1, 2]\nheartbeat-interval: fast\n",
		"peer-transport-security: yes\n",
		"client-transport-security:\n  cert-fle: x\n",
		"etcdkit: {insecure-http: true, unknown: 1}\n",
		"- a\n- b\n",
		"name: &a m1\ndata-dir: *a\n",
		"quota-backend-bytes: 1e400\n",
		"\t: :\n",
		"{}",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const file = "etcd.yaml"
		cfg, err := etcdconf.Parse(file, data)
		if err != nil {
			mustName(t, err, file)
			return
		}
		out, err := cfg.Marshal()
		if err != nil {
			t.Fatalf("a parsed config does not marshal: %v", err)
		}
		again, err := etcdconf.Parse(file, out)
		if err != nil {
			t.Fatalf("etcdkit cannot read the config it wrote: %v\n%s", err, out)
		}
		out2, err := again.Marshal()
		if err != nil || string(out2) != string(out) {
			t.Fatalf("config changes on a second round trip (%v):\n%s\n---\n%s", err, out, out2)
		}
		if _, err := cfg.Validate(etcdconf.ValidateOptions{File: file, Source: data}); err == nil {
			if _, err := cfg.Embed(); err != nil {
				// Allowed: etcd's own settings can still be refused, but
				// with a message, which is all this checks.
				if err.Error() == "" {
					t.Fatal("empty error")
				}
			}
		} else {
			mustName(t, err, file)
		}
	})
}

const clusterYAML = `apiVersion: etcdkit.io/v1alpha1
kind: Cluster
name: etcd-cluster
pki: {dir: /etc/etcd/ssl, layout: cfssl, keyAlgorithm: ecdsa-p256, validity: 43800h}
members:
  - {name: master01, host: 192.168.100.200, peerURL: "https://192.168.100.200:2380", clientURL: "https://192.168.100.200:2379"}
  - {name: master02, peerURL: "https://192.168.100.201:2380", clientURL: "https://192.168.100.201:2379"}
  - {name: master03, peerURL: "https://192.168.100.202:2380", clientURL: "https://192.168.100.202:2379", dataDir: /data/etcd}
dataDir: /var/lib/etcd/default.etcd
tuning: {heartbeatInterval: 100ms, electionTimeout: 1000ms, snapshotCount: 10000, quotaBackendBytes: 8GiB, autoCompactionRetention: 1h}
backup: {dir: /var/backups/etcd, schedule: "0 */6 * * *", keep: 28}
`

// FuzzSpecParse: the cluster spec.
func FuzzSpecParse(f *testing.F) {
	for _, s := range []string{
		clusterYAML,
		"members: []\n",
		"kind: Cluster\nmembers:\n  - name: a\n    peerURL: http://x\n",
		"tuning: {quotaBackendBytes: -1}\n",
		"tuning: {quotaBackendBytes: 1.5KiB, electionTimeout: 1h}\n",
		"tuning: {heartbeatInterval: 1}\n",
		"pki: {validity: forever}\n",
		"unknownField: 1\n",
		"members: [{name: a, peerURL: 'https://a:1', clientURL: 'https://a:2'}, {name: a, peerURL: 'https://a:1', clientURL: 'https://a:2'}]\n",
		"",
		"[",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const file = "cluster.yaml"
		c, err := spec.Parse(file, data)
		if err != nil {
			mustName(t, err, file)
			return
		}
		if _, err := c.Validate(file); err != nil {
			mustName(t, err, file)
			return
		}
		// A valid spec survives being written (as Cluster.Write does) and
		// read back.
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("a valid spec does not marshal: %v", err)
		}
		again, err := spec.Parse(file, out)
		if err != nil {
			t.Fatalf("etcdkit cannot read the spec it wrote: %v\n%s", err, out)
		}
		if _, err := again.Validate(file); err != nil {
			t.Fatalf("the spec etcdkit wrote is not valid: %v\n%s", err, out)
		}
		out2, err := yaml.Marshal(again)
		if err != nil || string(out2) != string(out) {
			t.Fatalf("spec changed on a round trip (%v):\n%s\n---\n%s", err, out, out2)
		}
	})
}

// FuzzSnapshotStatus: a snapshot file as `snapshot status|verify` and a
// restore read it.
func FuzzSnapshotStatus(f *testing.F) {
	good := makeSnapshot(f)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(good[:len(good)/2])
	f.Add(good[:len(good)-sha256.Size])
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/3] ^= 0x40
	f.Add(flipped)
	f.Add([]byte{})
	f.Add(make([]byte, 4096+sha256.Size))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "s.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := snapshot.Status(path)
		if err != nil {
			mustName(t, err, path)
		} else if st.Size != int64(len(data)) {
			t.Fatalf("status says %d bytes, the file has %d", st.Size, len(data))
		}
		st, err = snapshot.Verify(path, snapshot.VerifyOptions{})
		if err != nil {
			mustName(t, err, path)
			return
		}
		if !st.HasHash {
			t.Fatal("verify accepted a file without an embedded sha256")
		}
	})
}

// FuzzSnapshotSidecar: the JSON sidecar beside a snapshot.
func FuzzSnapshotSidecar(f *testing.F) {
	for _, s := range []string{
		`{"path":"x","created":"2026-01-02T03:04:05Z","reason":"manual","endpoint":"https://127.0.0.1:2379","member":"m1","revision":12,"totalKeys":3,"size":20512,"sha256":"ab","verified":true}`,
		`{"created":"yesterday"}`,
		`{"revision":"12"}`,
		`[]`, `null`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		snap := filepath.Join(t.TempDir(), "s.db")
		if err := os.WriteFile(snapshot.SidecarPath(snap), data, 0o600); err != nil {
			t.Fatal(err)
		}
		info, err := snapshot.ReadSidecar(snap)
		if err != nil {
			mustName(t, err, snapshot.SidecarPath(snap))
			return
		}
		if info.Path != snap {
			t.Fatalf("sidecar of %s describes %s", snap, info.Path)
		}
	})
}

// FuzzEndpoints: --endpoints and ETCDCTL_ENDPOINTS as etcdctl spells them.
func FuzzEndpoints(f *testing.F) {
	for _, s := range [][2]string{
		{"https://10.0.0.1:2379,https://10.0.0.2:2379", "/etc/etcd/ssl/ca.pem"},
		{"10.0.0.1:2379, 10.0.0.2:2379 ,", ""},
		{"10.0.0.1:2379", "/ca.pem"},
		{"unix:///run/etcd.sock", ""},
		{",,, ,", ""},
		{"", ""},
		{"http://[::1]:2379", "x"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, endpoints, cacert string) {
		env := connect.Env(func(k string) string {
			return map[string]string{"ETCDCTL_ENDPOINTS": endpoints, "ETCDCTL_CACERT": cacert}[k]
		})
		var parts []string
		for _, p := range strings.Split(endpoints, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		tg, err := connect.Resolve(connect.Settings{}, env)
		if len(parts) == 0 {
			if !errors.Is(err, connect.ErrNoEndpoints) {
				t.Fatalf("no endpoint in %q: want ErrNoEndpoints, got %v", endpoints, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("endpoints %q: %v", endpoints, err)
		}
		if len(tg.Endpoints) != len(parts) {
			t.Fatalf("endpoints %q became %q", endpoints, tg.Endpoints)
		}
		for i, e := range tg.Endpoints {
			if !strings.Contains(e, "://") || strings.TrimSpace(e) != e || strings.Contains(e, ",") || !strings.HasSuffix(e, parts[i]) {
				t.Fatalf("endpoint %q became %q", parts[i], e)
			}
			if !strings.Contains(parts[i], "://") && strings.TrimSpace(cacert) != "" && !strings.HasPrefix(e, "https://") && utf8.ValidString(e) {
				t.Fatalf("endpoint %q with a CA became %q, not https", parts[i], e)
			}
		}
		// Normalizing is idempotent: the resolved list resolves to itself.
		again, err := connect.Resolve(connect.Settings{Endpoints: tg.Endpoints, CACert: tg.CACert}, connect.Settings{})
		if err != nil || !reflect.DeepEqual(again.Endpoints, tg.Endpoints) {
			t.Fatalf("resolving %q again gave %v, %v", tg.Endpoints, again, err)
		}
	})
}

// mustName fails unless err is a one-piece message that names what was
// read, as every bad-input message must.
func mustName(t *testing.T, err error, what string) {
	t.Helper()
	msg := err.Error()
	if !strings.Contains(msg, what) {
		t.Fatalf("error does not name %s: %q", what, msg)
	}
	// bbolt's consistency check words a page it cannot read as "panic:
	// invalid freelist page ..." inside its error; that is a message, not
	// a crash (see docs/bad-input.md). A stack trace is a crash.
	for _, marker := range []string{"goroutine ", "runtime error", ".go:"} {
		if strings.Contains(msg, marker) {
			t.Fatalf("error carries a crash: %q", msg)
		}
	}
}

// makeSnapshot builds a small file in etcd's snapshot format: a bbolt
// database with etcd's buckets, followed by its sha256.
func makeSnapshot(f *testing.F) []byte {
	path := filepath.Join(f.TempDir(), "seed.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		f.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range []string{"key", "meta"} {
			b, err := tx.CreateBucket([]byte(name))
			if err != nil {
				return err
			}
			for i := range 20 {
				if err := b.Put(fmt.Appendf(nil, "%s%04d", name, i), []byte(strings.Repeat("v", 64))); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	if err := db.Close(); err != nil {
		f.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return append(data, sum[:]...)
}
