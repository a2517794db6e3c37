package remote

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/etcdkit/etcdkit/internal/fsutil"
)

// hostKeys verifies host keys against known_hosts files. The first file is
// the user's, the one trust on first use appends to; the rest (such as
// /etc/ssh/ssh_known_hosts) are only read.
type hostKeys struct {
	files      []string
	acceptNew  bool
	acceptHint string
	// onAccept is told about each key trusted on first use.
	onAccept func(addr string, key ssh.PublicKey)
}

// knownHostsLocks serialises appends per file within this process, so
// concurrent connects that each trust a new host do not lose a line.
var knownHostsLocks sync.Map // path -> *sync.Mutex

// callback reads the files afresh, so a key another connection just
// appended is seen.
func (k *hostKeys) callback() (ssh.HostKeyCallback, error) {
	var existing []string
	for _, f := range k.files {
		_, err := os.Stat(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("known hosts %s: %w", f, err)
		}
		existing = append(existing, f)
	}
	if len(existing) == 0 {
		return func(string, net.Addr, ssh.PublicKey) error { return &knownhosts.KeyError{} }, nil
	}
	cb, err := knownhosts.New(existing...)
	if err != nil {
		return nil, fmt.Errorf("known hosts: %w", err)
	}
	return cb, nil
}

// check is the HostKeyCallback for one connection to addr.
func (k *hostKeys) check(addr string, remote net.Addr, key ssh.PublicKey) error {
	cb, err := k.callback()
	if err != nil {
		return err
	}
	err = cb(addr, remote, key)
	var keyErr *knownhosts.KeyError
	var revoked *knownhosts.RevokedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &revoked):
		return fmt.Errorf("host key %s %s is marked @revoked in %s:%d; refusing to connect",
			key.Type(), ssh.FingerprintSHA256(key), revoked.Revoked.Filename, revoked.Revoked.Line)
	case errors.As(err, &keyErr) && len(keyErr.Want) > 0:
		changed := &HostKeyChangedError{Addr: addr, KeyType: key.Type(), Fingerprint: ssh.FingerprintSHA256(key)}
		for _, w := range keyErr.Want {
			changed.Known = append(changed.Known, KnownKey{File: w.Filename, Line: w.Line,
				KeyType: w.Key.Type(), Fingerprint: ssh.FingerprintSHA256(w.Key)})
		}
		return changed
	case errors.As(err, &keyErr):
		if !k.acceptNew {
			return &UnknownHostKeyError{Addr: addr, KeyType: key.Type(),
				Fingerprint: ssh.FingerprintSHA256(key), KnownHosts: k.userFile(), AcceptHint: k.acceptHint}
		}
		if err := k.appendKey(addr, remote, key); err != nil {
			return err
		}
		if k.onAccept != nil {
			k.onAccept(addr, key)
		}
		return nil
	default:
		return err
	}
}

func (k *hostKeys) userFile() string {
	if len(k.files) == 0 {
		return ""
	}
	return k.files[0]
}

// appendKey adds addr's key to the user's known_hosts: the whole file is
// rewritten atomically (temp, fsync, rename) so a crash never leaves it
// truncated, keeping its mode and writing through a symlink.
func (k *hostKeys) appendKey(addr string, remote net.Addr, key ssh.PublicKey) error {
	file := k.userFile()
	if file == "" {
		return errors.New("no known_hosts file to record a new host key in")
	}
	if real, err := filepath.EvalSymlinks(file); err == nil {
		file = real
	}
	mu, _ := knownHostsLocks.LoadOrStore(file, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()

	// Another connection may have added this host while we waited.
	if cb, err := k.callback(); err == nil && cb(addr, remote, key) == nil {
		return nil
	}
	old, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("known hosts %s: %w", file, err)
	}
	mode := fsutil.PrivateFile
	if fi, err := os.Stat(file); err == nil {
		mode = fi.Mode().Perm()
	}
	if len(old) > 0 && old[len(old)-1] != '\n' {
		old = append(old, '\n')
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, key) + "\n"
	if err := fsutil.WriteFile(file, append(old, line...), mode); err != nil {
		return fmt.Errorf("record host key in known hosts: %w", err)
	}
	return nil
}

// knownAlgorithms lists the host key algorithms known_hosts has keys for at
// addr, so the handshake asks the server for a key we can verify instead of
// its preferred type (which would look like a changed key). Nil when the
// host is unknown: any algorithm will do.
func (k *hostKeys) knownAlgorithms(addr string) []string {
	cb, err := k.callback()
	if err != nil {
		return nil
	}
	// Probe with a throwaway key: the mismatch error lists the known ones.
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil
	}
	probe, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil
	}
	var keyErr *knownhosts.KeyError
	if !errors.As(cb(addr, &net.TCPAddr{IP: net.IPv4zero}, probe), &keyErr) {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	add := func(a ...string) {
		for _, s := range a {
			if !seen[s] {
				seen[s] = true
				algos = append(algos, s)
			}
		}
	}
	for _, w := range keyErr.Want {
		switch t := w.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			add(t)
		}
	}
	return algos
}

// knownHostsName is how ssh-keygen -R spells addr.
func knownHostsName(addr string) string { return knownhosts.Normalize(addr) }
