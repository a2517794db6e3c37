package remote

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Sentinel errors, matched with errors.Is. Every error a Conn returns also
// names its host (see Error).
var (
	// ErrUnreachable: no TCP connection to the host's SSH port.
	ErrUnreachable = errors.New("unreachable")
	// ErrAuth: the host refused every key offered.
	ErrAuth = errors.New("authentication failed")
	// ErrUnknownHostKey: the host is not in known_hosts and trust on first
	// use was not asked for.
	ErrUnknownHostKey = errors.New("unknown host key")
	// ErrHostKeyChanged: known_hosts holds a different key for the host.
	ErrHostKeyChanged = errors.New("host key changed")
	// ErrNoPrivilege: the user is not root and cannot use sudo without a
	// password.
	ErrNoPrivilege = errors.New("no root privilege")
)

// Error is any failure on one host. Its message starts with the host's name
// and address, as `host "master02" (10.0.0.2:22): ...`, so a failure in a
// fan-out over many hosts says where it happened.
type Error struct {
	Name string // the host's name in the spec
	Addr string // address:port
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("host %q (%s): %v", e.Name, e.Addr, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// ExitError is a remote command that ran and exited non-zero.
type ExitError struct {
	Cmd    string
	Code   int
	Stderr string
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("command %q exited %d", e.Cmd, e.Code)
	if s := lastLines(e.Stderr, 3); s != "" {
		msg += ": " + s
	}
	return msg
}

// UnknownHostKeyError is the refusal to talk to a host whose key is in no
// known_hosts file. It carries the fingerprint the operator must check.
type UnknownHostKeyError struct {
	Addr        string
	KeyType     string
	Fingerprint string // SHA256:...
	KnownHosts  string // the file that would be written
	// AcceptHint is how the user turns on trust on first use (the CLI's
	// flag), from Options.AcceptNewHostKeysHint.
	AcceptHint string
}

func (e *UnknownHostKeyError) Error() string {
	trust := "trust it on first use"
	if e.AcceptHint != "" {
		trust += " (" + e.AcceptHint + ")"
	}
	return fmt.Sprintf("host key %s %s is not in %s; compare it with the host's own "+
		"(`ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub` on the host), then %s "+
		"or add it with `ssh-keyscan %s >> %s`",
		e.KeyType, e.Fingerprint, e.KnownHosts, keyFileStem(e.KeyType), trust, keyscanArgs(e.Addr), e.KnownHosts)
}

func (e *UnknownHostKeyError) Is(target error) bool { return target == ErrUnknownHostKey }

// HostKeyChangedError is a host presenting a key other than the one
// known_hosts holds for it: a reinstalled host, or a man in the middle.
type HostKeyChangedError struct {
	Addr        string
	KeyType     string
	Fingerprint string
	Known       []KnownKey
}

// KnownKey is a key known_hosts holds for a host, and where.
type KnownKey struct {
	File        string
	Line        int
	KeyType     string
	Fingerprint string
}

func (e *HostKeyChangedError) Error() string {
	var known []string
	for _, k := range e.Known {
		known = append(known, fmt.Sprintf("%s %s (%s:%d)", k.KeyType, k.Fingerprint, k.File, k.Line))
	}
	file := "~/.ssh/known_hosts"
	if len(e.Known) > 0 {
		file = e.Known[0].File
	}
	return fmt.Sprintf("HOST KEY CHANGED: the host presents %s %s but known_hosts has %s; "+
		"someone may be intercepting the connection (man in the middle), or the host was reinstalled. "+
		"Refusing to connect. If you know the host was reinstalled, remove the old key with "+
		"`ssh-keygen -R %s -f %s` and verify the new fingerprint",
		e.KeyType, e.Fingerprint, strings.Join(known, ", "), knownHostsName(e.Addr), file)
}

func (e *HostKeyChangedError) Is(target error) bool { return target == ErrHostKeyChanged }

// keyFileStem maps a key type to the name sshd gives its host key file.
func keyFileStem(keyType string) string {
	switch {
	case strings.Contains(keyType, "ed25519"):
		return "ed25519"
	case strings.Contains(keyType, "ecdsa"):
		return "ecdsa"
	case strings.Contains(keyType, "rsa"):
		return "rsa"
	}
	return "*"
}

// keyscanArgs is the ssh-keyscan arguments for addr ("host:port").
func keyscanArgs(addr string) string {
	host, port := splitHostPort(addr)
	if port == "22" {
		return host
	}
	return "-p " + port + " " + host
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "; "))
}

// exitCode extracts the remote exit status from a session error: -1 when
// the command died without one (killed by a signal, connection lost).
func exitCode(err error) (int, bool) {
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return ee.ExitStatus(), true
	}
	return -1, false
}
