package remote

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// defaultKeyFiles are the identities ssh tries when none is configured.
var defaultKeyFiles = []string{"id_ed25519", "id_ecdsa", "id_rsa"}

// keySource is one signer and where it came from, for the debug log and
// for the message when the host refuses them all.
type keySource struct {
	signer ssh.Signer
	from   string
}

// signers gathers the keys offered to h, in ssh's order: the configured
// key file first, then the agent's keys, then the default key files. A
// configured key that cannot be used is an error; a default one is skipped.
// The returned closer ends the agent connection once the handshake is over.
func (o *Options) signers(h Host) ([]keySource, func(), error) {
	var out []keySource
	closer := func() {}
	seen := map[string]bool{}
	add := func(s ssh.Signer, from string) {
		fp := ssh.FingerprintSHA256(s.PublicKey())
		if !seen[fp] {
			seen[fp] = true
			out = append(out, keySource{s, from})
		}
	}

	var agentSigners []ssh.Signer
	if sock := o.agentSocket(); sock != "" {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			o.logf(h, "ssh agent at %s unavailable: %v", sock, err)
		} else {
			closer = func() { conn.Close() }
			agentSigners, err = agent.NewClient(conn).Signers()
			if err != nil {
				o.logf(h, "ssh agent at %s: %v", sock, err)
			}
		}
	}

	if h.KeyPath != "" {
		s, err := loadKey(h.KeyPath)
		var missing *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &missing) && agentHas(agentSigners, h.KeyPath, missing.PublicKey):
			// The agent holds the decrypted key; it is offered below.
		case errors.As(err, &missing):
			closer()
			return nil, nil, fmt.Errorf("key %s is protected by a passphrase and the SSH agent does not hold it; "+
				"run `ssh-add %s` (with SSH_AUTH_SOCK set) and retry", h.KeyPath, h.KeyPath)
		case err != nil:
			closer()
			return nil, nil, err
		default:
			add(s, h.KeyPath)
		}
	}
	for _, s := range agentSigners {
		add(s, "agent")
	}
	if h.KeyPath == "" {
		if dir := o.sshDir(); dir != "" {
			for _, name := range defaultKeyFiles {
				p := filepath.Join(dir, name)
				s, err := loadKey(p)
				if err != nil {
					if !errors.Is(err, fs.ErrNotExist) {
						o.logf(h, "skip %s: %v", p, err)
					}
					continue
				}
				add(s, p)
			}
		}
	}
	if len(out) == 0 {
		closer()
		return nil, nil, errors.New("no SSH key to offer: set ssh.keyPath for the host, " +
			"start an agent holding a key (SSH_AUTH_SOCK), or create ~/.ssh/id_ed25519")
	}
	return out, closer, nil
}

func loadKey(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read SSH key: %w", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, err
		}
		return nil, fmt.Errorf("SSH key %s: %w", path, err)
	}
	return s, nil
}

// agentHas reports whether the agent holds the key whose private file is
// keyPath, known from the encrypted file's public half or keyPath.pub.
func agentHas(signers []ssh.Signer, keyPath string, pub ssh.PublicKey) bool {
	if pub == nil {
		if b, err := os.ReadFile(keyPath + ".pub"); err == nil {
			pub, _, _, _, _ = ssh.ParseAuthorizedKey(b)
		}
	}
	if pub == nil {
		return false
	}
	want := ssh.FingerprintSHA256(pub)
	for _, s := range signers {
		if ssh.FingerprintSHA256(s.PublicKey()) == want {
			return true
		}
	}
	return false
}
