package fsutil

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileModeAndReplace(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	p := filepath.Join(dir, "key.pem")
	if err := WriteFile(p, []byte("one"), PrivateFile); err != nil {
		t.Fatal(err)
	}
	assertMode(t, p, 0o600)
	assertMode(t, dir, 0o700)
	if err := WriteFile(p, []byte("two"), PrivateFile); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "two" {
		t.Fatalf("got %q", b)
	}
	assertOnly(t, dir, "key.pem")
}

// A failure while producing content leaves the old file and no temp file.
func TestWriteFromFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "snap.db")
	if err := WriteFile(p, []byte("old"), PublicFile); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("stream broke")
	err := WriteFrom(p, PublicFile, func(w io.Writer) error {
		_, _ = w.Write([]byte("half"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("want the producer's error, got %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Fatalf("old content replaced by %q", b)
	}
	assertOnly(t, dir, "snap.db")
}

func TestWriteFileUnwritableDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root can write to a read-only directory")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(filepath.Join(dir, "x"), []byte("x"), PublicFile); err == nil {
		t.Fatal("write into a read-only directory succeeded")
	}
}

func TestTxn(t *testing.T) {
	dir := t.TempDir()
	var txn Txn
	if err := txn.Add(filepath.Join(dir, "cert.pem"), []byte("c"), PublicFile); err != nil {
		t.Fatal(err)
	}
	if err := txn.Add(filepath.Join(dir, "key.pem"), []byte("k"), PrivateFile); err != nil {
		t.Fatal(err)
	}
	// Nothing is visible before Commit.
	assertOnlyPrefix(t, dir, ".")
	txn.Abort()
	assertOnly(t, dir)

	txn = Txn{}
	for _, f := range []string{"cert.pem", "key.pem"} {
		if err := txn.Add(filepath.Join(dir, f), []byte(f), PrivateFile); err != nil {
			t.Fatal(err)
		}
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	assertOnly(t, dir, "cert.pem", "key.pem")
	assertMode(t, filepath.Join(dir, "key.pem"), 0o600)
}

func TestDirEmpty(t *testing.T) {
	dir := t.TempDir()
	if e, err := DirEmpty(filepath.Join(dir, "missing")); !e || err != nil {
		t.Fatalf("missing dir: %v %v", e, err)
	}
	if e, _ := DirEmpty(dir); !e {
		t.Fatal("empty dir reported non-empty")
	}
	_ = os.WriteFile(filepath.Join(dir, "x"), nil, 0o600)
	if e, _ := DirEmpty(dir); e {
		t.Fatal("non-empty dir reported empty")
	}
}

func assertMode(t *testing.T, p string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != want {
		t.Fatalf("%s: mode %#o, want %#o", p, fi.Mode().Perm(), want)
	}
}

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if len(got) != len(names) {
		t.Fatalf("%s holds %v, want %v", dir, got, names)
	}
	for i := range got {
		if got[i] != names[i] {
			t.Fatalf("%s holds %v, want %v", dir, got, names)
		}
	}
}

func assertOnlyPrefix(t *testing.T, dir, prefix string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name()[:1] != prefix {
			t.Fatalf("%s visible before commit", e.Name())
		}
	}
}
