package lint

import (
	"slices"
	"strings"
	"testing"
)

func TestParseUnit(t *testing.T) {
	src := "# comment\n[Unit]\nDescription = etcd \\\n  member\n; comment\n[Service]\nExecStart=/bin/etcd \\\n# skipped\n  --name x\n[Install]\nWantedBy=multi-user.target\n"
	u, errs := ParseUnit([]byte(src))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if len(u.Sections) != 3 || u.Sections[1].Name != "Service" || u.Sections[1].Line != 6 {
		t.Fatalf("sections: %+v", u.Sections)
	}
	if d, _ := u.Value("Unit", "Description"); d.Value != "etcd  member" || d.Line != 3 {
		t.Fatalf("Description: %+v", d)
	}
	if e, _ := u.Value("Service", "ExecStart"); e.Value != "/bin/etcd  --name x" {
		t.Fatalf("ExecStart: %+v", e)
	}
	if got := unitWords(`/bin/sh -c "exec etcd --name \"a b\"" 'x y' z\ w`); !slices.Equal(got, []string{"/bin/sh", "-c", `exec etcd --name "a b"`, "x y", "z w"}) {
		t.Fatalf("words: %q", got)
	}
}

// FuzzParseUnit: the unit parser and the unit rules never panic, every
// entry has a valid name inside a section, and lines are in the file.
func FuzzParseUnit(f *testing.F) {
	for _, seed := range []string{
		"[Unit]\nConflicts=etcd.service\n[Service]\nType=notify\nExecStart=/bin/bash -c \"etcd | tee x\"\nRestart=always\nRestart=on-failure\n[Install]\nWantedBy=a\n[Install]\n",
		"Key=outside\n[Broken\n[]\nnot a setting\n[S]\nA=\\\n",
		"[Service]\nExecStart=\nExecStart=/usr/bin/sudo -u etcd etcd\nNotifyAccess=all\n",
		"\xef\xbb\xbf[Unit]\r\nA=b\r\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, src string) {
		u, errs := ParseUnit([]byte(src))
		n := strings.Count(src, "\n") + 1
		for _, s := range u.Sections {
			if s.Line < 1 || s.Line > n || s.Name == "" {
				t.Fatalf("bad section %+v", s)
			}
			for _, e := range s.Entries {
				if !unitKeyRE.MatchString(e.Key) || e.Line < s.Line || e.Line > n {
					t.Fatalf("bad entry %+v in %+v", e, s)
				}
			}
		}
		for _, e := range errs {
			if e.Line < 1 || e.Line > n {
				t.Fatalf("bad error %+v", e)
			}
		}
		_, _ = Data("fuzz.service", []byte(src))
	})
}
