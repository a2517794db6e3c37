package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/ssh"
)

// Options are shared by every connection of one apply run. The zero value
// verifies host keys against ~/.ssh/known_hosts and
// /etc/ssh/ssh_known_hosts, reads ~/.ssh/config, uses $SSH_AUTH_SOCK, and
// applies changes without recording them.
type Options struct {
	// KnownHosts is the user's known_hosts file, the one AcceptNewHostKeys
	// appends to. Default ~/.ssh/known_hosts.
	KnownHosts string
	// SystemKnownHosts is also read (never written). Default
	// /etc/ssh/ssh_known_hosts; "-" reads none.
	SystemKnownHosts string
	// AcceptNewHostKeys trusts a host that is in no known_hosts file on
	// first use and records its key. A changed key is refused regardless.
	AcceptNewHostKeys bool
	// AcceptNewHostKeysHint is how the user turns AcceptNewHostKeys on,
	// named in the refusal of an unknown host: the CLI passes its flag
	// ("--accept-new-host-keys") so the message never drifts from it.
	AcceptNewHostKeysHint string
	// SSHConfig is the ssh_config file hosts are resolved with. Default
	// ~/.ssh/config; "-" reads none.
	SSHConfig string
	// AgentSocket is the SSH agent. Default $SSH_AUTH_SOCK; "-" uses none.
	AgentSocket string
	// SSHDir holds the default identities (id_ed25519, ...). Default ~/.ssh.
	SSHDir string
	// ConnectTimeout bounds the TCP connect and the SSH handshake.
	// Default 15s.
	ConnectTimeout time.Duration
	// Plan records every change; in dry-run mode it records instead of
	// changing. Nil applies changes without recording them.
	Plan *Plan
	// Log receives every command run on every host, with its exit code,
	// duration and stderr (never its stdin, which may be a key). Nil logs
	// nothing. See NewDebugLog.
	Log *zap.Logger
}

func (o *Options) home() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return home
}

func (o *Options) sshDir() string {
	if o.SSHDir != "" {
		return o.SSHDir
	}
	if h := o.home(); h != "" {
		return filepath.Join(h, ".ssh")
	}
	return ""
}

func (o *Options) knownHostsFiles() []string {
	user := o.KnownHosts
	if user == "" {
		if d := o.sshDir(); d != "" {
			user = filepath.Join(d, "known_hosts")
		}
	}
	files := []string{user}
	switch o.SystemKnownHosts {
	case "":
		files = append(files, "/etc/ssh/ssh_known_hosts")
	case "-":
	default:
		files = append(files, o.SystemKnownHosts)
	}
	return files
}

func (o *Options) sshConfigPath() string {
	switch o.SSHConfig {
	case "-":
		return ""
	case "":
		if d := o.sshDir(); d != "" {
			return filepath.Join(d, "config")
		}
		return ""
	}
	return o.SSHConfig
}

func (o *Options) agentSocket() string {
	switch o.AgentSocket {
	case "-":
		return ""
	case "":
		return os.Getenv("SSH_AUTH_SOCK")
	}
	return o.AgentSocket
}

func (o *Options) connectTimeout() time.Duration {
	if o.ConnectTimeout > 0 {
		return o.ConnectTimeout
	}
	return 15 * time.Second
}

func (o *Options) logf(h Host, format string, args ...any) {
	if o.Log != nil {
		o.Log.Debug(fmt.Sprintf(format, args...), zap.String("host", h.label()), zap.String("addr", h.Addr()))
	}
}

// ResolveHost fills h's empty fields from the SSH config and defaults,
// without connecting: what Connect would dial.
func (o *Options) ResolveHost(h Host) (Host, error) {
	var cfg *SSHConfig
	if p := o.sshConfigPath(); p != "" {
		var err error
		if cfg, err = LoadSSHConfig(p); err != nil {
			return h, h.hostErr(err)
		}
	}
	r, err := cfg.Resolve(h)
	if err != nil {
		return h, h.hostErr(err)
	}
	return r, nil
}

// Conn is an SSH connection to one host. It is safe for concurrent use:
// each command runs in its own SSH session.
type Conn struct {
	host   Host
	client *ssh.Client
	opts   *Options
	// sudo: the user is not root; commands run through `sudo -n`.
	sudo bool
	// keyAccepted is set when this connection trusted a new host key.
	keyAccepted bool
	closeOnce   sync.Once
}

// Connect resolves h, dials it, verifies its host key and authenticates.
// Errors name the host and say what to do: ErrUnreachable,
// ErrUnknownHostKey, ErrHostKeyChanged, ErrAuth, ErrNoPrivilege.
func Connect(ctx context.Context, h Host, opts *Options) (*Conn, error) {
	if opts == nil {
		opts = &Options{}
	}
	h, err := opts.ResolveHost(h)
	if err != nil {
		return nil, err
	}
	if h.Address == "" {
		return nil, h.errorf("no address to connect to")
	}
	c := &Conn{host: h, opts: opts}
	start := time.Now()
	if err := c.dial(ctx); err != nil {
		opts.logf(h, "connect as %s failed after %s: %v", h.User, time.Since(start).Round(time.Millisecond), err)
		return nil, err
	}
	opts.logf(h, "connected as %s in %s", h.User, time.Since(start).Round(time.Millisecond))
	if err := c.checkPrivilege(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Conn) dial(ctx context.Context) error {
	h, o := c.host, c.opts
	keys := &hostKeys{files: o.knownHostsFiles(), acceptNew: o.AcceptNewHostKeys, acceptHint: o.AcceptNewHostKeysHint}
	keys.onAccept = func(addr string, key ssh.PublicKey) {
		c.keyAccepted = true
		o.logf(h, "trusted new host key %s %s on first use, recorded in %s", key.Type(), ssh.FingerprintSHA256(key), keys.userFile())
	}
	signers, closeAgent, err := o.signers(h)
	if err != nil {
		return h.hostErr(err)
	}
	defer closeAgent()
	var offered []string
	var list []ssh.Signer
	for _, s := range signers {
		list = append(list, s.signer)
		offered = append(offered, s.from)
	}

	// The host key error is kept here rather than parsed out of the
	// handshake error, so it reaches the caller intact.
	var keyErr error
	cfg := &ssh.ClientConfig{
		User: h.User,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(list...)},
		HostKeyCallback: func(addr string, remote net.Addr, key ssh.PublicKey) error {
			keyErr = keys.check(addr, remote, key)
			return keyErr
		},
		HostKeyAlgorithms: keys.knownAlgorithms(h.Addr()),
		Timeout:           o.connectTimeout(),
	}

	dctx, cancel := context.WithTimeout(ctx, o.connectTimeout())
	defer cancel()
	var d net.Dialer
	tcp, err := d.DialContext(dctx, "tcp", h.Addr())
	if err != nil {
		return h.hostErr(fmt.Errorf("%w: %v; check the address and port, that sshd runs there and that no firewall drops port %d",
			ErrUnreachable, err, h.Port))
	}
	// Bound the handshake too: a host that accepts TCP and never speaks
	// SSH must not hang apply.
	deadline, _ := dctx.Deadline()
	_ = tcp.SetDeadline(deadline)
	stop := context.AfterFunc(dctx, func() { tcp.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(tcp, h.Addr(), cfg)
	stop()
	if err != nil {
		tcp.Close()
		switch {
		case keyErr != nil:
			return h.hostErr(keyErr)
		case strings.Contains(err.Error(), "unable to authenticate"):
			return h.hostErr(fmt.Errorf("%w as user %q: the host refused every key offered (%s); "+
				"check ssh.user and ssh.keyPath for the host and its ~%s/.ssh/authorized_keys",
				ErrAuth, h.User, strings.Join(offered, ", "), h.User))
		case ctx.Err() != nil:
			return h.hostErr(ctx.Err())
		case dctx.Err() != nil:
			return h.hostErr(fmt.Errorf("%w: no SSH handshake within %s", ErrUnreachable, o.connectTimeout()))
		default:
			return h.hostErr(fmt.Errorf("ssh handshake: %w", err))
		}
	}
	_ = tcp.SetDeadline(time.Time{})
	c.client = ssh.NewClient(sc, chans, reqs)
	return nil
}

// checkPrivilege finds out whether commands need sudo, and that sudo works
// without a password: apply cannot answer a prompt.
func (c *Conn) checkPrivilege(ctx context.Context) error {
	res, err := c.run(ctx, "id -u", nil, false)
	if err != nil {
		return err
	}
	if strings.TrimSpace(res.Stdout) == "0" {
		return nil
	}
	if _, err := c.run(ctx, "sudo -n true", nil, false); err != nil {
		return c.host.errorf("%w: user %q is not root and cannot run `sudo -n`; "+
			"connect as root or allow the user passwordless sudo", ErrNoPrivilege, c.host.User)
	}
	c.sudo = true
	return nil
}

// Host is the resolved host this connection reaches.
func (c *Conn) Host() Host { return c.host }

// String is `host "name" (addr:port)`.
func (c *Conn) String() string { return c.host.String() }

// AcceptedNewHostKey reports whether connecting trusted a new host key.
func (c *Conn) AcceptedNewHostKey() bool { return c.keyAccepted }

// Close ends the connection. Safe to call more than once.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		if c.client != nil {
			err = c.client.Close()
		}
	})
	return err
}

// Result is a finished remote command.
type Result struct {
	Stdout, Stderr string
	ExitCode       int
}

// Run runs a command that only reads. It runs in dry-run mode too, so
// never use it to change a host: use RunChange. A non-zero exit is an
// error (wrapping *ExitError) returned with the Result. Cancelling ctx
// kills the remote command.
func (c *Conn) Run(ctx context.Context, cmd string) (Result, error) {
	return c.run(ctx, cmd, nil, true)
}

// RunInput is Run with stdin.
func (c *Conn) RunInput(ctx context.Context, cmd string, stdin io.Reader) (Result, error) {
	return c.run(ctx, cmd, stdin, true)
}

func (c *Conn) run(ctx context.Context, cmd string, stdin io.Reader, privileged bool) (Result, error) {
	var stdout, stderr bytes.Buffer
	code, err := c.stream(ctx, cmd, stdin, &stdout, &stderr, privileged)
	return Result{Stdout: stdout.String(), Stderr: stderr.String(), ExitCode: code}, err
}

// stream runs cmd with the given streams and returns its exit code.
func (c *Conn) stream(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer, privileged bool) (int, error) {
	if err := ctx.Err(); err != nil {
		return -1, c.host.errorf("%s: %w", cmd, err)
	}
	inner := cmd
	if privileged && c.sudo {
		inner = "sudo -n -- sh -c " + Quote(cmd)
	}
	// The command runs as `sh -c` under a shell that first reports its pid
	// on stderr. sshd makes that shell a process group leader, so on
	// cancellation a second session can kill the whole group: sshd does
	// not deliver SSH signal requests to root sessions, and closing the
	// channel alone leaves a command that does not write running.
	full := pidMarker + "; exec sh -c " + Quote(inner)
	sess, err := c.client.NewSession()
	if err != nil {
		return -1, c.host.errorf("open SSH session: %w (connection lost?)", err)
	}
	defer sess.Close()
	var errTail tailBuffer
	pid := &pidSniffer{w: io.MultiWriter(stderr, &errTail), known: make(chan struct{})}
	sess.Stdin = stdin
	sess.Stdout = stdout
	sess.Stderr = pid

	start := time.Now()
	if err := sess.Start(full); err != nil {
		return -1, c.host.errorf("start %q: %w", cmd, err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		c.kill(pid, done)
		sess.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second): // the host stopped answering
		}
		c.logCommand(cmd, -1, time.Since(start), errTail.String(), ctx.Err())
		return -1, c.host.errorf("%s: %w", cmd, ctx.Err())
	}
	code := 0
	if err != nil {
		var ok bool
		if code, ok = exitCode(err); !ok {
			c.logCommand(cmd, -1, time.Since(start), errTail.String(), err)
			return -1, c.host.errorf("%q: %w", cmd, err)
		}
	}
	c.logCommand(cmd, code, time.Since(start), errTail.String(), nil)
	if code != 0 {
		return code, c.host.hostErr(&ExitError{Cmd: cmd, Code: code, Stderr: errTail.String()})
	}
	return 0, nil
}

func (c *Conn) logCommand(cmd string, code int, d time.Duration, stderr string, err error) {
	if c.opts.Log == nil {
		return
	}
	fields := []zap.Field{zap.String("host", c.host.label()), zap.String("addr", c.host.Addr()),
		zap.String("cmd", cmd), zap.Int("exit", code), zap.Duration("took", d)}
	if stderr != "" {
		fields = append(fields, zap.String("stderr", stderr))
	}
	if err != nil {
		fields = append(fields, zap.Error(err))
	}
	c.opts.Log.Debug("run", fields...)
}

// pidMarker is the first thing every command prints on stderr.
const pidMarker = `printf 'etcdkit-pid %d\n' "$$" >&2`

// kill ends a cancelled command's process group from a new session,
// unless it has finished meanwhile. Detached daemons it started have their
// own session and survive, as they would a hang-up. The command's pid may
// still be on its way (it is the first thing the command prints, but a
// loaded machine may cancel first): kill waits for it a little.
func (c *Conn) kill(p *pidSniffer, done chan error) {
	select {
	case <-p.known:
	case err := <-done:
		// Finished after all; put the result back for the caller.
		go func() { done <- err }()
		return
	case <-time.After(10 * time.Second):
	}
	pgid := p.pid()
	if pgid <= 1 {
		return
	}
	select {
	case err := <-done:
		go func() { done <- err }()
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// dash rejects `kill -KILL -- -PGID`; this spelling is POSIX and works
	// in dash and bash alike.
	_, _ = c.run(ctx, fmt.Sprintf("kill -s KILL -- -%d", pgid), nil, true)
}

// pidSniffer takes the pid line pidMarker prints off the front of stderr
// and passes the rest on.
type pidSniffer struct {
	w    io.Writer
	mu   sync.Mutex
	head []byte
	done bool
	n    int
	// known is closed once the pid line was read (or stderr began
	// without one).
	known chan struct{}
}

func (p *pidSniffer) Write(b []byte) (int, error) {
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		return p.w.Write(b)
	}
	p.head = append(p.head, b...)
	i := bytes.IndexByte(p.head, '\n')
	if i < 0 && len(p.head) < 64 {
		p.mu.Unlock()
		return len(b), nil
	}
	p.done = true
	rest := p.head
	if i >= 0 {
		if v, ok := strings.CutPrefix(string(p.head[:i]), "etcdkit-pid "); ok {
			p.n, _ = strconv.Atoi(v)
			rest = p.head[i+1:]
		}
	}
	p.head = nil
	if p.known != nil {
		close(p.known)
	}
	p.mu.Unlock()
	if len(rest) > 0 {
		if _, err := p.w.Write(rest); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

func (p *pidSniffer) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// tailBuffer keeps the last few KiB written to it: enough stderr for an
// error message and the log without holding a runaway command's output.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const tailMax = 4096

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > tailMax {
		b.buf = b.buf[len(b.buf)-tailMax:]
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// Quote makes s one word for a POSIX shell.
func Quote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// errorsIsExit reports whether err is a remote command's exit with code.
func errorsIsExit(err error, code int) bool {
	var ee *ExitError
	return errors.As(err, &ee) && ee.Code == code
}
