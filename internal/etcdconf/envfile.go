package etcdconf

import (
	"fmt"
	"regexp"
	"strings"
)

// EnvVar is one assignment of an environment file.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	// Line is the 1-based line the assignment starts on.
	Line int `json:"line"`
	// Quoted reports whether any part of the value was quoted.
	Quoted bool `json:"-"`
}

// EnvSyntaxError is a line systemd would skip or refuse.
type EnvSyntaxError struct {
	Line int
	Msg  string
}

func (e EnvSyntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ParseEnvFile reads the syntax systemd's EnvironmentFile= reads: NAME=VALUE
// lines; blank lines and lines starting with # or ; are comments; values may
// be single-quoted (literal), double-quoted (backslash escapes ", \, ` and $)
// or bare (a backslash escapes the next character, trailing blanks are
// dropped); a backslash at the end of a line continues the value. A # after
// a value is part of the value, as it is for systemd. Lines systemd would
// skip are returned as errors, with the assignments that did parse.
func ParseEnvFile(data []byte) ([]EnvVar, []EnvSyntaxError) {
	p := envParser{src: data, line: 1}
	return p.parse()
}

type envParser struct {
	src  []byte
	i    int
	line int
	vars []EnvVar
	errs []EnvSyntaxError
}

func (p *envParser) eof() bool { return p.i >= len(p.src) }

func (p *envParser) fail(line int, format string, args ...any) {
	p.errs = append(p.errs, EnvSyntaxError{Line: line, Msg: fmt.Sprintf(format, args...)})
}

// skipLine moves past the end of the current line.
func (p *envParser) skipLine() {
	for !p.eof() {
		c := p.src[p.i]
		p.i++
		if c == '\n' {
			p.line++
			return
		}
	}
}

func (p *envParser) parse() ([]EnvVar, []EnvSyntaxError) {
	for {
		// Leading blanks and empty lines.
		for !p.eof() && isEnvSpace(p.src[p.i]) {
			if p.src[p.i] == '\n' {
				p.line++
			}
			p.i++
		}
		if p.eof() {
			return p.vars, p.errs
		}
		if c := p.src[p.i]; c == '#' || c == ';' {
			p.skipLine()
			continue
		}
		start := p.line
		keyStart := p.i
		for !p.eof() && p.src[p.i] != '=' && p.src[p.i] != '\n' {
			p.i++
		}
		key := strings.TrimSpace(string(p.src[keyStart:p.i]))
		if p.eof() || p.src[p.i] == '\n' {
			p.fail(start, "%q is not an assignment; write NAME=VALUE", truncate(key, 40))
			continue
		}
		p.i++ // '='
		value, quoted, ok := p.value(start)
		switch {
		case !ok:
		case strings.HasPrefix(key, "export ") || strings.HasPrefix(key, "export\t"):
			p.fail(start, "%q: systemd's EnvironmentFile= does not read shell's export; write %s=...", key, strings.TrimSpace(key[len("export"):]))
		case !envNameRE.MatchString(key):
			p.fail(start, "%q is not a valid variable name (letters, digits and _, not starting with a digit)", truncate(key, 40))
		default:
			p.vars = append(p.vars, EnvVar{Name: key, Value: value, Line: start, Quoted: quoted})
		}
	}
}

// value reads one value up to the end of its (possibly continued) line.
func (p *envParser) value(start int) (string, bool, bool) {
	var b strings.Builder
	keep := 0 // length of b up to the last character that is not a trailing blank
	quoted := false
	// Blanks right after '=' are not part of the value.
	for !p.eof() && (p.src[p.i] == ' ' || p.src[p.i] == '\t') {
		p.i++
	}
	for !p.eof() {
		c := p.src[p.i]
		p.i++
		switch c {
		case '\n':
			p.line++
			return b.String()[:keep], quoted, true
		case '\\':
			if p.eof() {
				continue
			}
			n := p.src[p.i]
			p.i++
			if n == '\n' {
				p.line++
				continue
			}
			b.WriteByte(n)
			keep = b.Len()
		case '\'':
			quoted = true
			for {
				if p.eof() {
					p.fail(start, "unterminated single quote")
					return "", quoted, false
				}
				q := p.src[p.i]
				p.i++
				if q == '\'' {
					break
				}
				if q == '\n' {
					p.line++
				}
				b.WriteByte(q)
			}
			keep = b.Len()
		case '"':
			quoted = true
			for {
				if p.eof() {
					p.fail(start, "unterminated double quote")
					return "", quoted, false
				}
				q := p.src[p.i]
				p.i++
				if q == '"' {
					break
				}
				if q == '\\' && !p.eof() {
					n := p.src[p.i]
					switch n {
					case '"', '\\', '`', '$':
						p.i++
						b.WriteByte(n)
						continue
					case '\n':
						p.i++
						p.line++
						continue
					}
				}
				if q == '\n' {
					p.line++
				}
				b.WriteByte(q)
			}
			keep = b.Len()
		default:
			b.WriteByte(c)
			if !isEnvSpace(c) {
				keep = b.Len()
			}
		}
	}
	return b.String()[:keep], quoted, true
}

func isEnvSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// QuoteEnvValue writes a value so ParseEnvFile (and systemd) read it back
// unchanged: double quotes, with ", \, ` and $ escaped.
func QuoteEnvValue(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '"', '\\', '`', '$':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// IsEnvFile reports whether data looks like an environment file rather than
// YAML: its first line that is not blank or a comment is NAME=VALUE.
func IsEnvFile(data []byte) bool {
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		name, _, ok := strings.Cut(line, "=")
		return ok && envNameRE.MatchString(strings.TrimSpace(name))
	}
	return false
}
