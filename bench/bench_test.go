package bench

import (
	"testing"
)

// TestSmoke runs each benchmark once so they keep compiling and working.
// It asserts nothing about time.
func TestSmoke(t *testing.T) {
	b, err := Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UpEtcdkit(b, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := UpStock(b, 3); err != nil {
		t.Fatal(err)
	}
}
