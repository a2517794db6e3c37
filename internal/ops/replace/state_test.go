package replace

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeState(t *testing.T, dir string, s State) string {
	t.Helper()
	old := ""
	if s.Old != nil {
		old = s.Old.Name
	}
	p := statePath(dir, old, s.New.Name)
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A re-run finds its progress file by the old member's name, ID or peer
// URL and the new member's name; an unfinished run for the same new
// member with other arguments is reported, not overwritten.
func TestFindState(t *testing.T) {
	dir := t.TempDir()
	m4 := NewMember{Name: "m4", PeerURL: "https://10.0.0.4:2380", ClientURL: "https://10.0.0.4:2379"}
	old := &MemberRecord{ID: "8e9e05c52164694d", Name: "m1", PeerURLs: []string{"https://10.0.0.1:2380"}}
	p := writeState(t, dir, State{Old: old, New: m4, Done: []string{"snapshot", "remove"}})

	for _, ref := range []string{"m1", "8e9e05c52164694d", "https://10.0.0.1:2380"} {
		st, path, err := findState(dir, ref, "m4")
		if err != nil || st == nil || path != p || !st.done("remove") {
			t.Fatalf("by %q: %+v %s %v", ref, st, path, err)
		}
		if err := st.matches(Options{Old: ref, New: m4}); err != nil {
			t.Fatalf("by %q: %v", ref, err)
		}
	}
	// up replace m1 without --name continues with m4.
	if st, _, _ := Lookup(dir, "m1"); st == nil || st.New != m4 {
		t.Fatalf("lookup: %+v", st)
	}
	// Other URLs for m4, or m4 for another old member: a clash.
	st, _, _ := findState(dir, "m1", "m4")
	other := m4
	other.PeerURL = "https://10.0.0.9:2380"
	if err := st.matches(Options{Old: "m1", New: other}); err == nil || !strings.Contains(err.Error(), "https://10.0.0.4:2380") {
		t.Fatalf("other URLs: %v", err)
	}
	st, _, _ = findState(dir, "m2", "m4")
	if st == nil {
		t.Fatal("the unfinished replacement by m4 was not found for another old member")
	}
	if err := st.matches(Options{Old: "m2", New: m4}); err == nil || !strings.Contains(err.Error(), `replacement of member "m1"`) {
		t.Fatalf("other old member: %v", err)
	}
	// Nothing for another new member: a fresh file.
	st, path, err := findState(dir, "m2", "m5")
	if st != nil || err != nil || path != filepath.Join(dir, "etcdkit-replace-m2-by-m5.json") {
		t.Fatalf("fresh: %+v %s %v", st, path, err)
	}
	// A damaged file is an error naming it.
	if err := os.WriteFile(filepath.Join(dir, "etcdkit-add-x.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := findState(dir, "m1", "m4"); err == nil || !strings.Contains(err.Error(), "etcdkit-add-x.json") {
		t.Fatalf("damaged: %v", err)
	}
}
