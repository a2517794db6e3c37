package snapshot

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcdkit/etcdkit/internal/spec"
)

// TestRestoreRefusesDamagedDatabase: a snapshot whose embedded sha256 is
// right but whose database is damaged (the member's own database was bad,
// or a db copy with --skip-hash-check) passes the hash check; the database
// check runs beside etcdutl's restore, and its failure must leave no data
// dir and no staging dir behind.
func TestRestoreRefusesDamagedDatabase(t *testing.T) {
	damaged, err := os.ReadFile(filepath.Join("testdata", "page-past-eof.db"))
	if err != nil {
		t.Fatal(err)
	}
	db := damaged[:len(damaged)/512*512]
	sum := sha256.Sum256(db)
	dir := t.TempDir()
	snap := filepath.Join(dir, "damaged.db")
	if err := os.WriteFile(snap, append(db, sum[:]...), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	_, err = Restore(RestoreOptions{Snapshot: snap, Cluster: testCluster(data), Members: []string{"m1", "m2", "m3"}, RevisionBump: DefaultRevisionBump})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "the database is damaged") {
		t.Fatalf("Restore of a damaged database: %v", err)
	}
	if left := entries(data); left != "" {
		t.Fatalf("a refused restore left %q in %s", left, data)
	}
}

// kvSnapshot writes makeKVSnapshot's file of n keys into a new temp dir and
// returns the dir, the file and its content.
func kvSnapshot(t *testing.T, n int) (dir, path string, content []byte) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, "s.db")
	makeKVSnapshot(t, path, n)
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return dir, path, content
}

// entries names what dir holds ("" when it does not exist).
func entries(dir string) string {
	list, _ := os.ReadDir(dir)
	var names []string
	for _, e := range list {
		names = append(names, e.Name())
	}
	return strings.Join(names, ",")
}

func testCluster(data string) *spec.Cluster {
	c := &spec.Cluster{Name: "c"}
	for i, name := range []string{"m1", "m2", "m3"} {
		c.Members = append(c.Members, spec.Member{
			Name:    name,
			PeerURL: "https://127.0.0." + string(rune('1'+i)) + ":2380",
			DataDir: filepath.Join(data, name),
		})
	}
	return c
}

// TestRestoreNamesTokenByDatabase: the restored cluster's token is named by
// the database's sha256, read from a streamed snapshot's last 32 bytes (so
// the restores need not wait for the file to be hashed); a db copy of the
// same database, which has no embedded hash, gets the same token from its
// own sha256. Every member ends with a data dir and nothing else is left.
func TestRestoreNamesTokenByDatabase(t *testing.T) {
	dir, snap, content := kvSnapshot(t, 50)
	db := content[:len(content)-sha256.Size]
	want := DefaultToken("c", fmt.Sprintf("%x", sha256.Sum256(db)))
	dbCopy := filepath.Join(dir, "copy.db")
	if err := os.WriteFile(dbCopy, db, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file string
		skip bool
	}{{snap, false}, {dbCopy, true}} {
		data := filepath.Join(dir, filepath.Base(tc.file)+".data")
		res, err := Restore(RestoreOptions{Snapshot: tc.file, Cluster: testCluster(data), Members: []string{"m1", "m2", "m3"}, RevisionBump: DefaultRevisionBump, SkipHashCheck: tc.skip})
		if err != nil {
			t.Fatalf("restore %s: %v", tc.file, err)
		}
		if res.Token != want {
			t.Errorf("restore %s: token %q, want %q", tc.file, res.Token, want)
		}
		if res.Snapshot == nil || res.Snapshot.TotalKeys != 49 || res.Revision != 52+DefaultRevisionBump {
			t.Errorf("restore %s: result %+v", tc.file, res)
		}
		if left := entries(data); left != "m1,m2,m3" {
			t.Errorf("restore %s left %q in %s, want the three data dirs only", tc.file, left, data)
		}
		for _, m := range []string{"m1", "m2", "m3"} {
			if !fileExists(filepath.Join(data, m, "member", "snap", "db")) {
				t.Errorf("restore %s: %s has no database", tc.file, m)
			}
		}
	}
}

// TestRestoreReportsEveryProblem: a damaged snapshot and a non-empty data
// dir are reported together (the verification runs beside the data dir
// checks), and neither the data dir nor anything beside it changes.
func TestRestoreReportsEveryProblem(t *testing.T) {
	dir, snap, content := kvSnapshot(t, 10)
	content[len(content)/2] ^= 0x55
	if err := os.WriteFile(snap, content, 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	old := filepath.Join(data, "m1", "old")
	if err := os.MkdirAll(filepath.Dir(old), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(old, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Restore(RestoreOptions{Snapshot: snap, Cluster: testCluster(data), Members: []string{"m1", "m2"}})
	if err == nil || !strings.Contains(err.Error(), "embedded sha256 does not match") || !strings.Contains(err.Error(), `member "m1": data dir`) {
		t.Fatalf("Restore: %v, want both the snapshot's and m1's problem", err)
	}
	if left := entries(data); left != "m1" || !fileExists(old) {
		t.Fatalf("a refused restore changed %s: %q", data, left)
	}
}
