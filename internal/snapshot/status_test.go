package snapshot

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	etcdutlsnap "go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// makeKVSnapshot writes a snapshot whose key bucket holds n puts and a
// delete of the first key, as etcd's mvcc store lays them out.
func makeKVSnapshot(t *testing.T, path string, n int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		kb, err := tx.CreateBucket([]byte("key"))
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucket([]byte("meta")); err != nil {
			return err
		}
		put := func(rev int64, key string, tombstone bool) error {
			kv := &mvccpb.KeyValue{Key: []byte(key), ModRevision: rev}
			if !tombstone {
				kv.Value = bytes.Repeat([]byte("v"), 64)
			}
			v, err := proto.Marshal(kv)
			if err != nil {
				return err
			}
			k := mvcc.NewRevBytes()
			k = mvcc.RevToBytes(mvcc.Revision{Main: rev}, k)
			if tombstone {
				k = append(k, 't')
			}
			return kb.Put(k, v)
		}
		for i := 1; i <= n; i++ {
			if err := put(int64(i+1), fmt.Sprintf("k%05d", i), false); err != nil {
				return err
			}
		}
		return put(int64(n+2), "k00001", true)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	appendHash(t, path)
}

// TestStatusAgreesWithEtcdutl: the one-pass status reports what the stock
// etcdutl reports for the same file: revision, live keys, hash, size.
func TestStatusAgreesWithEtcdutl(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	makeKVSnapshot(t, path, 500)
	ours, err := Status(path)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := etcdutlsnap.NewV3(zap.NewNop()).Status(path)
	if err != nil {
		t.Fatal(err)
	}
	if ours.Revision != theirs.Revision || ours.TotalKeys != theirs.TotalKey || ours.Hash != theirs.Hash || ours.StorageVersion != theirs.Version {
		t.Fatalf("etcdkit: rev %d keys %d hash %x version %q; etcdutl: rev %d keys %d hash %x version %q",
			ours.Revision, ours.TotalKeys, ours.Hash, ours.StorageVersion, theirs.Revision, theirs.TotalKey, theirs.Hash, theirs.Version)
	}
	if ours.Revision != 502 || ours.TotalKeys != 499 {
		t.Fatalf("revision %d and %d live keys; want 502 and 499", ours.Revision, ours.TotalKeys)
	}
}

// TestStreamHash: hashing as the bytes arrive, in chunks of any size,
// gives what hashing the finished file gives, for a file with and without
// an embedded hash and with a wrong one.
func TestStreamHash(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	makeSnapshot(t, good, 300)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(data)
	bad[len(bad)-1] ^= 1
	noHash := data[:len(data)-sha256.Size]
	rng := rand.New(rand.NewPCG(1, 2))
	for name, content := range map[string][]byte{"embedded hash": data, "wrong hash": bad, "no hash": noHash} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		wantWhole, wantOK, err := hashFile(path, int64(len(content)), hasChecksum(int64(len(content))))
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(content); wantWhole != hex.EncodeToString(sum[:]) {
			t.Fatalf("%s: hashFile says sha256 %s, sha256sum would say %x", name, wantWhole, sum)
		}
		for _, maxChunk := range []int{1, 7, 31, 32, 33, 4096, 1 << 20} {
			h := newStreamHash()
			for rest := content; len(rest) > 0; {
				n := min(len(rest), 1+rng.IntN(maxChunk))
				h.Write(rest[:n])
				rest = rest[n:]
			}
			whole, ok, err := h.sums()
			if err != nil {
				t.Fatal(err)
			}
			if whole != wantWhole || h.n != int64(len(content)) {
				t.Fatalf("%s, chunks up to %d: sha256 %s, want %s", name, maxChunk, whole, wantWhole)
			}
			if hasChecksum(h.n) && ok != wantOK {
				t.Fatalf("%s, chunks up to %d: embedded hash ok=%v, want %v", name, maxChunk, ok, wantOK)
			}
		}
	}
}

// TestStatusOfDamagedPages: databases found by FuzzSnapshotStatus that
// take bbolt's check down with them. One has a page pointing past the end
// of the file: it faults inside bbolt's own check goroutine, which no
// recover reaches (etcdutl dies on it). The other has a page header
// claiming billions of overflow pages: bbolt's check records each in a map
// until the host runs out of memory. Status must report each file as
// damaged, and this process must live on.
func TestStatusOfDamagedPages(t *testing.T) {
	for file, why := range map[string]string{
		"page-past-eof.db":    "points outside the file",
		"overflow-runaway.db": "impossible number of overflow pages",
	} {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", file))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "damaged.db")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = Status(path)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Status: want ErrInvalid, got %v", err)
			}
			for _, want := range []string{path, "the database is damaged", why} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

// TestStatusCheckTimeLimit: a check that runs past its limit (as one over
// damaged pages that point at the same subtree again and again would) is
// stopped and reported, not waited for.
func TestStatusCheckTimeLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	makeKVSnapshot(t, path, 10)
	defer func(f func(int64) time.Duration) { checkTimeLimit = f }(checkTimeLimit)
	checkTimeLimit = func(int64) time.Duration { return time.Nanosecond }
	_, err := Status(path)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "did not finish in 1ns") {
		t.Fatalf("Status with a 1ns check limit: %v", err)
	}
}
