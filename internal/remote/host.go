// Package remote is the SSH transport `etcdkit apply` drives hosts with. A
// Conn runs commands, reads and writes files atomically, uploads the
// etcdkit binary and detects a host's facts; every change to a host goes
// through Conn.Change, which in dry-run mode records "would do X" instead
// of doing it, so apply can print a per-host plan. Host keys are verified
// against known_hosts; every error names its host; every command run on
// every host can be logged to a debug file.
//
// Commands run through the login user's shell; a user other than root runs
// them through `sudo -n`. The remote side needs a POSIX shell and
// coreutils (mktemp, sha256sum, stat, sync), which every supported
// distribution has.
package remote

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kevinburke/ssh_config"
)

// Defaults for a host the spec and ~/.ssh/config say nothing about.
const (
	DefaultPort = 22
	// DefaultUser is root: apply writes /etc, /var/lib and units. ssh's own
	// default (the local user name) is rarely right for that.
	DefaultUser = "root"
)

// Host is how to reach one machine. Empty fields are filled from
// ~/.ssh/config (HostName, User, Port, IdentityFile) and then from the
// defaults above; a field set here wins over ~/.ssh/config, as a flag wins
// over a config file.
type Host struct {
	// Name labels the host in messages and in the plan: the member name.
	Name string
	// Address is an IP address, a host name, or a Host alias in
	// ~/.ssh/config.
	Address string
	Port    int
	User    string
	// KeyPath is a private key file. Without one, apply offers the SSH
	// agent's keys and ~/.ssh/id_ed25519, id_ecdsa and id_rsa.
	KeyPath string
}

// Addr is host:port as dialled.
func (h Host) Addr() string {
	port := h.Port
	if port == 0 {
		port = DefaultPort
	}
	return net.JoinHostPort(h.Address, strconv.Itoa(port))
}

func (h Host) String() string { return fmt.Sprintf("host %q (%s)", h.label(), h.Addr()) }

func (h Host) label() string {
	if h.Name != "" {
		return h.Name
	}
	return h.Address
}

// hostErr wraps err so it names h, unless it already does.
func (h Host) hostErr(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) && e.Name == h.label() {
		return err
	}
	return &Error{Name: h.label(), Addr: h.Addr(), Err: err}
}

func (h Host) errorf(format string, args ...any) error {
	return h.hostErr(fmt.Errorf(format, args...))
}

// SSHConfig is a parsed ~/.ssh/config.
type SSHConfig struct {
	path string
	cfg  *ssh_config.Config
}

// LoadSSHConfig reads an ssh_config(5) file. A missing file is an empty
// config; an unreadable or invalid one is an error naming the file.
func LoadSSHConfig(path string) (*SSHConfig, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &SSHConfig{path: path}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read ssh config %s: %w", path, err)
	}
	cfg, err := ssh_config.DecodeBytes(b)
	if err != nil {
		return nil, fmt.Errorf("ssh config %s: %w", path, err)
	}
	return &SSHConfig{path: path, cfg: cfg}, nil
}

func (c *SSHConfig) get(alias, key string) string {
	if c == nil || c.cfg == nil {
		return ""
	}
	v, err := c.cfg.Get(alias, key)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(v)
}

// Resolve fills h's empty fields from the config and the defaults. The
// address becomes the config's HostName when h.Address is an alias there.
// A KeyPath that came from IdentityFile is kept only when the file exists,
// as ssh ignores a missing IdentityFile.
func (c *SSHConfig) Resolve(h Host) (Host, error) {
	alias := h.Address
	if hn := c.get(alias, "HostName"); hn != "" {
		h.Address = expandTokens(hn, alias, "", 0)
	}
	if h.User == "" {
		h.User = c.get(alias, "User")
	}
	if h.User == "" {
		h.User = DefaultUser
	}
	if h.Port == 0 {
		if p := c.get(alias, "Port"); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n <= 0 || n > 65535 {
				return h, fmt.Errorf("ssh config %s: Host %s: invalid Port %q", c.path, alias, p)
			}
			h.Port = n
		}
	}
	if h.Port == 0 {
		h.Port = DefaultPort
	}
	if h.KeyPath == "" {
		if id := c.get(alias, "IdentityFile"); id != "" {
			p := expandHome(expandTokens(id, alias, h.User, h.Port))
			if _, err := os.Stat(p); err == nil {
				h.KeyPath = p
			}
		}
	} else {
		h.KeyPath = expandHome(h.KeyPath)
	}
	return h, nil
}

// expandTokens replaces the ssh_config tokens apply can know: %h (host),
// %n (the alias), %r (remote user), %p (port), %d (local home), %%.
func expandTokens(s, alias, user string, port int) string {
	if !strings.Contains(s, "%") {
		return s
	}
	home, _ := os.UserHomeDir()
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'h', 'n':
			b.WriteString(alias)
		case 'r':
			b.WriteString(user)
		case 'p':
			b.WriteString(strconv.Itoa(port))
		case 'd':
			b.WriteString(home)
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}

func splitHostPort(addr string) (host, port string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, "22"
	}
	return host, port
}
