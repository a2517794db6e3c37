package snapshot

import (
	"crypto/sha256"
	"errors"
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
	c := &spec.Cluster{Name: "c"}
	for i, name := range []string{"m1", "m2", "m3"} {
		c.Members = append(c.Members, spec.Member{
			Name:    name,
			PeerURL: "https://127.0.0." + string(rune('1'+i)) + ":2380",
			DataDir: filepath.Join(data, name),
		})
	}
	_, err = Restore(RestoreOptions{Snapshot: snap, Cluster: c, Members: []string{"m1", "m2", "m3"}, RevisionBump: DefaultRevisionBump})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "the database is damaged") {
		t.Fatalf("Restore of a damaged database: %v", err)
	}
	if left, _ := os.ReadDir(data); len(left) > 0 {
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		t.Fatalf("a refused restore left %v in %s", names, data)
	}
}
