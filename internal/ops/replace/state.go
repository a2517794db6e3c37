package replace

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	"github.com/etcdkit/etcdkit/internal/fsutil"
	"github.com/etcdkit/etcdkit/internal/ops"
)

// State is the progress file of a replacement, kept in the backup
// directory. The cluster itself says most of what is done; the file adds
// what it cannot: which member was the old one once it is gone, and the
// snapshot already taken.
type State struct {
	Old       *MemberRecord `json:"old,omitempty"`
	New       NewMember     `json:"new"`
	NewID     string        `json:"newID,omitempty"`
	Snapshot  string        `json:"snapshot,omitempty"`
	Done      []string      `json:"done"`
	Completed bool          `json:"completed"`
	Started   time.Time     `json:"started"`
	Updated   time.Time     `json:"updated"`
}

// MemberRecord is the old member as it was when the replacement began.
type MemberRecord struct {
	ID         string   `json:"id"`
	Name       string   `json:"name,omitempty"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs,omitempty"`
}

func record(m *ops.Member) *MemberRecord {
	return &MemberRecord{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs}
}

// Ref names the old member on a command line.
func (m *MemberRecord) Ref() string {
	if m.Name != "" {
		return m.Name
	}
	return m.ID
}

func (m *MemberRecord) names(ref string) bool {
	return ref == m.Name || ref == m.ID || slices.Contains(m.PeerURLs, ref)
}

func (s *State) markDone(phase string) {
	if !slices.Contains(s.Done, phase) {
		s.Done = append(s.Done, phase)
	}
}

func (s *State) done(phase string) bool { return slices.Contains(s.Done, phase) }

// matches says how the state differs from the arguments of a re-run.
func (s *State) matches(o Options) error {
	if s.New.Name != o.New.Name || s.New.PeerURL != o.New.PeerURL || s.New.ClientURL != o.New.ClientURL {
		return fmt.Errorf("new member %q with peer URL %s and client URL %s", s.New.Name, s.New.PeerURL, s.New.ClientURL)
	}
	switch {
	case s.Old == nil && o.Old != "":
		return fmt.Errorf("an addition of %q, no replacement", s.New.Name)
	case s.Old != nil && !s.Old.names(o.Old):
		return fmt.Errorf("the replacement of member %q", s.Old.Ref())
	}
	return nil
}

func (r *run) save() error {
	if r.o.DryRun {
		return nil
	}
	r.st.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(r.st, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFile(r.statePath, append(b, '\n'), fsutil.PrivateFile)
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func statePath(dir, old, newName string) string {
	clean := func(s string) string { return unsafeChars.ReplaceAllString(s, "_") }
	if old == "" {
		return filepath.Join(dir, "etcdkit-add-"+clean(newName)+".json")
	}
	return filepath.Join(dir, "etcdkit-replace-"+clean(old)+"-by-"+clean(newName)+".json")
}

// Lookup finds the progress file of a replacement of old (an addition
// when old is empty), by any new member; an unfinished one wins. `up
// replace OLD` uses it to continue with the member it chose before.
func Lookup(dir, old string) (*State, string, error) {
	return findState(dir, old, "")
}

// findState finds the progress file for these arguments: the one for the
// same old and new member, else an unfinished one for the same new member
// (which the caller reports as a clash), else none and the path to use.
func findState(dir, old, newName string) (*State, string, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "etcdkit-*.json"))
	var best *State
	bestPath := ""
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, "", err
		}
		var s State
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, "", fmt.Errorf("replacement progress file %s: %w (delete it to start over)", f, err)
		}
		sameOld := (old == "" && s.Old == nil) || (s.Old != nil && s.Old.names(old))
		sameNew := newName == "" || s.New.Name == newName
		switch {
		case sameOld && sameNew:
			if best == nil || (best.Completed && !s.Completed) {
				best, bestPath = &s, f
			}
		case newName != "" && s.New.Name == newName && !s.Completed && best == nil:
			best, bestPath = &s, f
		}
	}
	if best != nil {
		return best, bestPath, nil
	}
	return nil, statePath(dir, old, newName), nil
}
