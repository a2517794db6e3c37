package lint

import (
	"fmt"
	"regexp"
	"strings"
)

// Unit is a parsed systemd unit file, keeping every section and every
// assignment in order (systemd merges repeated sections and lets a later
// assignment override an earlier one; a linter must see both).
type Unit struct {
	Sections []Section
}

// Section is one [Name] block.
type Section struct {
	Name    string
	Line    int
	Entries []Entry
}

// Entry is one Key=Value line (continuation lines joined).
type Entry struct {
	Key   string
	Value string
	Line  int
}

// UnitSyntaxError is a line systemd would ignore with a warning.
type UnitSyntaxError struct {
	Line int
	Msg  string
}

var unitKeyRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// ParseUnit reads systemd's unit file syntax: [Section] headers, Key=Value
// assignments, # and ; comment lines, and a backslash at the end of a line
// continuing it on the next (comment lines inside a continuation are
// skipped, as systemd does).
func ParseUnit(data []byte) (*Unit, []UnitSyntaxError) {
	u := &Unit{}
	var errs []UnitSyntaxError
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	var cur *Section
	for i := 0; i < len(lines); i++ {
		lineNo := i + 1
		line := strings.TrimSpace(lines[i])
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		// Join continuation lines.
		for strings.HasSuffix(line, "\\") && i+1 < len(lines) {
			line = strings.TrimSuffix(line, "\\") + " "
			for i+1 < len(lines) {
				i++
				next := strings.TrimSpace(lines[i])
				if next != "" && (next[0] == '#' || next[0] == ';') {
					continue
				}
				line += next
				break
			}
		}
		line = strings.TrimSpace(strings.TrimSuffix(line, "\\"))
		if strings.HasPrefix(line, "[") {
			end := strings.Index(line, "]")
			name := ""
			if end > 0 {
				name = line[1:end]
			}
			if end < 0 || strings.TrimSpace(line[end+1:]) != "" || name == "" {
				errs = append(errs, UnitSyntaxError{Line: lineNo, Msg: fmt.Sprintf("%q is not a section header; write [Name]", truncate(line, 40))})
				continue
			}
			u.Sections = append(u.Sections, Section{Name: name, Line: lineNo})
			cur = &u.Sections[len(u.Sections)-1]
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		switch {
		case !ok:
			errs = append(errs, UnitSyntaxError{Line: lineNo, Msg: fmt.Sprintf("%q is not an assignment; write Key=Value", truncate(line, 40))})
		case !unitKeyRE.MatchString(key):
			errs = append(errs, UnitSyntaxError{Line: lineNo, Msg: fmt.Sprintf("%q is not a valid setting name", truncate(key, 40))})
		case cur == nil:
			errs = append(errs, UnitSyntaxError{Line: lineNo, Msg: fmt.Sprintf("%s= is outside any section; systemd ignores it", key)})
		default:
			cur.Entries = append(cur.Entries, Entry{Key: key, Value: value, Line: lineNo})
		}
	}
	return u, errs
}

// Values returns every assignment of key in every section named section,
// in file order.
func (u *Unit) Values(section, key string) []Entry {
	var out []Entry
	for _, s := range u.Sections {
		if s.Name != section {
			continue
		}
		for _, e := range s.Entries {
			if e.Key == key {
				out = append(out, e)
			}
		}
	}
	return out
}

// Value is the effective value of a single-valued setting: the last
// assignment wins.
func (u *Unit) Value(section, key string) (Entry, bool) {
	vs := u.Values(section, key)
	if len(vs) == 0 {
		return Entry{}, false
	}
	return vs[len(vs)-1], true
}

// unitWords splits a command line the way systemd does for ExecStart=:
// blanks separate words, double and single quotes group, a backslash
// escapes the next character.
func unitWords(s string) []string {
	var out []string
	var b strings.Builder
	in := false
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else if c == '\\' && i+1 < len(s) && quote == '"' {
				i++
				b.WriteByte(s[i])
			} else {
				b.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote, in = c, true
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
			in = true
		case c == ' ' || c == '\t':
			if in {
				out = append(out, b.String())
				b.Reset()
				in = false
			}
		default:
			b.WriteByte(c)
			in = true
		}
	}
	if in {
		out = append(out, b.String())
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
