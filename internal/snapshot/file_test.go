package snapshot

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// makeSnapshot writes a small file in etcd's snapshot format: a bbolt
// database with etcd's (empty) key and meta buckets and one bucket of n keys, followed by its sha256. It is not a
// member's database, but every check of a snapshot file applies to it.
func makeSnapshot(t *testing.T, path string, n int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range []string{"key", "meta"} {
			if _, err := tx.CreateBucket([]byte(name)); err != nil {
				return err
			}
		}
		b, err := tx.CreateBucket([]byte("test"))
		if err != nil {
			return err
		}
		for i := range n {
			if err := b.Put(fmt.Appendf(nil, "k%04d", i), []byte(strings.Repeat("v", 100))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	appendHash(t, path)
}

// appendHash ends a database file with its sha256, as a member streams it.
func appendHash(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if err := os.WriteFile(path, append(data, sum[:]...), 0o600); err != nil {
		t.Fatal(err)
	}
}

// managed adds the sidecar Save would write, stamped at created.
func managed(t *testing.T, path string, created time.Time) {
	t.Helper()
	st, err := Verify(path, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := writeSidecar(&Info{Path: path, Created: created, Size: st.Size, SHA256: st.SHA256, Verified: true}); err != nil {
		t.Fatal(err)
	}
}

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	makeSnapshot(t, good, 200)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	st, err := Verify(good, VerifyOptions{})
	if err != nil {
		t.Fatalf("a good snapshot fails: %v", err)
	}
	if !st.HasHash || st.Size != int64(len(data)) || st.SHA256 != fmt.Sprintf("%x", sha256.Sum256(data)) {
		t.Fatalf("status %+v", st)
	}

	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flipped := append([]byte(nil), data...)
	flipped[len(flipped)/2] ^= 0xff
	dbOnly := data[:len(data)-sha256.Size]
	for _, tc := range []struct {
		name string
		data []byte
		skip bool
		want string
	}{
		{"truncated", data[:len(data)/2], false, "no embedded sha256"},
		{"truncated to a page", data[:8192], true, "truncated: it needs"},
		{"one flipped byte", flipped, false, "embedded sha256 does not match"},
		{"one flipped byte, skip-hash-check", flipped, true, "embedded sha256 does not match"},
		{"empty", nil, false, "only 0 bytes"},
		{"not a database", []byte(strings.Repeat("x", 4096*8)), true, "not an etcd database"},
		{"db copy without hash", dbOnly, false, "--skip-hash-check"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := write(strings.ReplaceAll(tc.name, " ", "-")+".db", tc.data)
			_, err := Verify(p, VerifyOptions{SkipHashCheck: tc.skip})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Verify: %v; want ErrInvalid with %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), p) {
				t.Fatalf("the message does not name the file: %v", err)
			}
		})
	}
	if _, err := Verify(write("copy.db", dbOnly), VerifyOptions{SkipHashCheck: true}); err != nil {
		t.Fatalf("a db copy with --skip-hash-check: %v", err)
	}

	t.Run("file changed after save", func(t *testing.T) {
		p := filepath.Join(dir, "sidecar.db")
		makeSnapshot(t, p, 10)
		managed(t, p, time.Now())
		other := filepath.Join(dir, "other.db")
		makeSnapshot(t, other, 11)
		b, err := os.ReadFile(other)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(p, VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "does not match its sidecar") {
			t.Fatalf("Verify: %v", err)
		}
	})
}

func TestPrune(t *testing.T) {
	day := time.Date(2025, 3, 10, 0, 0, 0, 0, time.UTC)
	// Four snapshots a day (00:00, 06:00, 12:00, 18:00) for 5 days.
	setup := func(t *testing.T) (string, []string) {
		dir := t.TempDir()
		var paths []string // oldest first
		for d := range 5 {
			for h := 0; h < 24; h += 6 {
				at := day.AddDate(0, 0, d).Add(time.Duration(h) * time.Hour)
				p := filepath.Join(dir, FileName(at))
				makeSnapshot(t, p, 5)
				managed(t, p, at)
				paths = append(paths, p)
			}
		}
		return dir, paths
	}
	left := func(t *testing.T, dir string) []string {
		t.Helper()
		es, err := List(dir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			out = append(out, filepath.Base(e.Path))
		}
		return out
	}
	base := func(ps ...string) []string {
		var out []string
		for _, p := range ps {
			out = append(out, filepath.Base(p))
		}
		return out
	}

	t.Run("keep N", func(t *testing.T) {
		dir, ps := setup(t)
		res, err := Prune(dir, PruneOptions{Keep: 3})
		if err != nil {
			t.Fatal(err)
		}
		want := base(ps[19], ps[18], ps[17])
		if got := left(t, dir); !equal(got, want) {
			t.Fatalf("left %v, want %v", got, want)
		}
		if len(res.Deleted) != 17 || len(res.Kept) != 3 {
			t.Fatalf("deleted %d kept %d", len(res.Deleted), len(res.Kept))
		}
		for _, d := range res.Deleted {
			if fileExists(SidecarPath(d.Path)) {
				t.Fatalf("sidecar of %s left behind", d.Path)
			}
		}
	})

	t.Run("keep daily", func(t *testing.T) {
		dir, ps := setup(t)
		if _, err := Prune(dir, PruneOptions{Keep: 2, KeepDaily: 3}); err != nil {
			t.Fatal(err)
		}
		// The 2 newest, plus the newest (18:00) of the last 3 days.
		want := base(ps[19], ps[18], ps[15], ps[11])
		if got := left(t, dir); !equal(got, want) {
			t.Fatalf("left %v, want %v", got, want)
		}
	})

	t.Run("dry run deletes nothing", func(t *testing.T) {
		dir, _ := setup(t)
		res, err := Prune(dir, PruneOptions{Keep: 1, DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Deleted) != 19 || len(left(t, dir)) != 20 {
			t.Fatalf("dry run: %d reported, %d files left", len(res.Deleted), len(left(t, dir)))
		}
	})

	t.Run("newest verified survives damaged newer ones", func(t *testing.T) {
		dir, ps := setup(t)
		for _, p := range ps[17:] { // the three newest
			if err := os.Truncate(p, 10000); err != nil {
				t.Fatal(err)
			}
		}
		res, err := Prune(dir, PruneOptions{Keep: 2})
		if err != nil {
			t.Fatal(err)
		}
		want := base(ps[19], ps[18], ps[16])
		if got := left(t, dir); !equal(got, want) {
			t.Fatalf("left %v, want %v", got, want)
		}
		for _, k := range res.Kept {
			if k.Path == ps[16] && !strings.Contains(strings.Join(k.Why, ","), "newest verified") {
				t.Fatalf("kept %s for %v", k.Path, k.Why)
			}
		}
	})

	t.Run("files without a sidecar are never touched", func(t *testing.T) {
		dir, _ := setup(t)
		foreign := filepath.Join(dir, "etcdctl-made.db")
		makeSnapshot(t, foreign, 1)
		old := time.Now().Add(-1000 * time.Hour)
		if err := os.Chtimes(foreign, old, old); err != nil {
			t.Fatal(err)
		}
		res, err := Prune(dir, PruneOptions{Keep: 1})
		if err != nil {
			t.Fatal(err)
		}
		if !fileExists(foreign) || len(res.Unmanaged) != 1 {
			t.Fatalf("a foreign snapshot was deleted or not reported: %+v", res.Unmanaged)
		}
	})

	t.Run("nothing to keep is refused", func(t *testing.T) {
		dir, _ := setup(t)
		if _, err := Prune(dir, PruneOptions{}); err == nil {
			t.Fatal("prune with no retention succeeded")
		}
		if n := len(left(t, dir)); n != 20 {
			t.Fatalf("%d files left", n)
		}
	})
}

func TestSidecarIsJSON(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.db")
	makeSnapshot(t, p, 1)
	managed(t, p, time.Unix(100, 0).UTC())
	b, err := os.ReadFile(SidecarPath(p))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"created", "revision", "totalKeys", "size", "sha256"} {
		if _, ok := m[k]; !ok {
			t.Fatalf("sidecar lacks %q: %s", k, b)
		}
	}
}

func equal(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
