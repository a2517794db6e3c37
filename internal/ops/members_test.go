package ops

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// cluster builds a member list: each spec is "name:flags" with flags
// v (voter) or l (learner), h (healthy), s (started), L (leader).
func cluster(specs ...string) *Membership {
	ms := &Membership{}
	for i, s := range specs {
		name, flags, _ := strings.Cut(s, ":")
		m := Member{
			id: uint64(i + 1), ID: fmt.Sprintf("%x", i+1), Name: name,
			PeerURLs:   []string{fmt.Sprintf("https://10.0.0.%d:2380", i+1)},
			ClientURLs: []string{fmt.Sprintf("https://10.0.0.%d:2379", i+1)},
			Learner:    strings.Contains(flags, "l"),
			Healthy:    strings.Contains(flags, "h"),
			Started:    strings.Contains(flags, "s"),
			Leader:     strings.Contains(flags, "L"),
		}
		if !m.Started {
			m.Name, m.ClientURLs = "", nil
		}
		ms.Members = append(ms.Members, m)
	}
	return ms
}

func TestCheckRemove(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ms        *Membership
		target    string
		force     bool
		want      []string // substrings of the refusal; none means allowed
		unhealthy bool
	}{
		{"healthy 3 to 2 needs force", cluster("m1:vhsL", "m2:vhs", "m3:vhs"), "m3", false,
			[]string{"leave 2 voting members", "tolerate no failure", "member replace m3", "--force"}, false},
		{"healthy 3 to 2 with force", cluster("m1:vhsL", "m2:vhs", "m3:vhs"), "m3", true, nil, false},
		{"the down member of 3 with force", cluster("m1:vs", "m2:vhsL", "m3:vhs"), "m1", true, nil, false},
		{"a second member while one is down", cluster("m1:vs", "m2:vhsL", "m3:vhs"), "m2", true,
			[]string{"only 1 of the 2 remaining voting members would be healthy", "down: m1", "2 are needed", "bring m1 back", "member replace m1"}, true},
		{"quorum lost", cluster("m1:vs", "m2:vs", "m3:vhs"), "m1", true,
			[]string{"lost quorum", "1 of 3", "cluster recover"}, true},
		{"last member", cluster("m1:vhsL"), "m1", true, []string{"last member"}, false},
		{"last voter beside a learner", cluster("m1:vhsL", "m2:lhs"), "m1", true, []string{"last voting member", "promote"}, false},
		{"a learner, even when voters are down", cluster("m1:vs", "m2:vhsL", "m3:vhs", "m4:lhs"), "m4", false, nil, false},
		{"5 to 4 needs force", cluster("a:vhs", "b:vhs", "c:vhsL", "d:vhs", "e:vhs"), "e", false,
			[]string{"leave 4 voting members", "tolerate 1 failure(s), no more than 3"}, false},
		{"4 to 3", cluster("a:vhs", "b:vhs", "c:vhsL", "d:vs"), "d", false, nil, false},
		{"5 with two down: one of them", cluster("a:vs", "b:vs", "c:vhsL", "d:vhs", "e:vhs"), "a", true, nil, false},
		{"5 with two down: a healthy one", cluster("a:vs", "b:vs", "c:vhsL", "d:vhs", "e:vhs"), "e", true,
			[]string{"only 2 of the 4 remaining", "3 are needed"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.ms.Find(tc.target)
			err := CheckRemove(tc.ms, m, tc.force)
			checkRefusal(t, err, tc.want, tc.unhealthy)
		})
	}
}

func TestCheckAdd(t *testing.T) {
	add := func(name, peer string) AddOptions { return AddOptions{Name: name, PeerURLs: []string{peer}} }
	for _, tc := range []struct {
		name      string
		ms        *Membership
		o         AddOptions
		existing  bool
		want      []string
		unhealthy bool
	}{
		{"healthy", cluster("m1:vhsL", "m2:vhs", "m3:vhs"), add("m4", "https://10.0.0.4:2380"), false, nil, false},
		{"a one-member cluster grows", cluster("m1:vhsL"), add("m2", "https://10.0.0.2:2380"), false, nil, false},
		{"one of 3 down", cluster("m1:vs", "m2:vhsL", "m3:vhs"), add("m4", "https://10.0.0.4:2380"), false,
			[]string{"only 2 of 3 voting members are healthy", "3 of the 4", "member replace m1 --name m4"}, true},
		{"quorum lost", cluster("m1:vs", "m2:vs", "m3:vhs"), add("m4", "https://10.0.0.4:2380"), false,
			[]string{"lost quorum", "1 of 3", "not healthy: m1, m2"}, true},
		{"peer URL of another member", cluster("m1:vhsL", "m2:vhs"), add("m4", "https://10.0.0.2:2380"), false,
			[]string{"peer URL https://10.0.0.2:2380 is already used by member \"m2\"", "member replace m2"}, false},
		{"name of another member", cluster("m1:vhsL", "m2:vhs"), add("m2", "https://10.0.0.9:2380"), false,
			[]string{`a member named "m2" already exists`, "member update m2"}, false},
		{"re-run: same name and peer URL", cluster("m1:vhsL", "m2:vhs"), add("m2", "https://10.0.0.2:2380"), true, nil, false},
		{"re-run: unstarted with that peer URL", cluster("m1:vhsL", "m2:vhs", "x:l"), add("m3", "https://10.0.0.3:2380"), true, nil, false},
		{"bad URL", cluster("m1:vhsL"), add("m2", "10.0.0.2:2380"), false, []string{"--peer-urls", "invalid URL"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := CheckAdd(tc.ms, tc.o)
			if tc.existing != (m != nil) {
				t.Fatalf("existing = %v, want %v (err %v)", m, tc.existing, err)
			}
			if tc.want == nil && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if tc.want != nil {
				if !errors.Is(err, ErrRefused) && !strings.Contains(tc.name, "bad URL") {
					t.Fatalf("want a refusal, got %v", err)
				}
				checkRefusal(t, err, tc.want, tc.unhealthy)
			}
		})
	}
}

func TestCheckPromote(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ms     *Membership
		target string
		want   []string
	}{
		{"caught-up learner", cluster("m1:vhsL", "m2:vhs", "m3:lhs"), "m3", nil},
		{"not started", cluster("m1:vhsL", "m2:vhs", "x:l"), "3", []string{"has not started", "etcdkit member run --config", "member promote 3 --wait"}},
		{"not healthy", cluster("m1:vhsL", "m2:vhs", "m3:ls"), "m3", []string{"not healthy"}},
		{"quorum lost", cluster("m1:vs", "m2:vs", "m3:vhsL", "m4:lhs"), "m4", []string{"lost quorum"}},
		{"4 voters with 2 down", cluster("m1:vs", "m2:vhs", "m3:vhsL", "m4:lhs"), "m4", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkRefusal(t, CheckPromote(tc.ms, tc.ms.Find(tc.target)), tc.want, false)
		})
	}
}

func checkRefusal(t *testing.T, err error, want []string, unhealthy bool) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("allowed; want a refusal with %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error lacks %q:\n%v", w, err)
		}
	}
	if unhealthy && !errors.Is(err, ErrUnhealthy) {
		t.Fatalf("a health refusal must match ErrUnhealthy (exit code 3): %v", err)
	}
}

func TestFindAndInitialCluster(t *testing.T) {
	ms := cluster("m1:vhsL", "m2:vhs", "x:l")
	if m := ms.Find("m2"); m == nil || m.Name != "m2" {
		t.Fatalf("by name: %+v", m)
	}
	if m := ms.Find("3"); m == nil || m.Started {
		t.Fatalf("by ID: %+v", m)
	}
	if m := ms.Find("https://10.0.0.1:2380"); m == nil || m.Name != "m1" {
		t.Fatalf("by peer URL: %+v", m)
	}
	err := ms.NotFound("m9")
	if !errors.Is(err, ErrMemberNotFound) || !strings.Contains(err.Error(), "unstarted 3 (https://10.0.0.3:2380)") {
		t.Fatalf("not found: %v", err)
	}
	got := InitialCluster(ms, ms.Find("3"), "m3")
	want := "m1=https://10.0.0.1:2380,m2=https://10.0.0.2:2380,m3=https://10.0.0.3:2380"
	if got != want {
		t.Fatalf("initial cluster %q, want %q", got, want)
	}
	// Another member that never started stands in by its ID.
	ms = cluster("m1:vhsL", "x:l", "y:l")
	if got := InitialCluster(ms, ms.Find("3"), "new"); got != "m1=https://10.0.0.1:2380,2=https://10.0.0.2:2380,new=https://10.0.0.3:2380" {
		t.Fatalf("initial cluster %q", got)
	}
}
