// Package join lets a new host join a cluster with one command and no
// private key crossing the network: join tokens (etk1.<id>.<secret>, kept in
// etcd only as a hash), the HTTPS join endpoint a member holding the CA key
// serves, and the joiner that pins the CA, sends certificate requests for
// keys it made itself, and writes the member's files.
package join

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// TokenPrefix is the version tag every token starts with.
const TokenPrefix = "etk1"

const (
	idLen     = 6
	secretLen = 24
	// alphabet is what ids and secrets are made of: lowercase letters and
	// digits, so a token survives shells, YAML and URLs unquoted. 24 of
	// them carry 124 bits.
	alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
)

// Token is a parsed join token. Its String form is the only place the
// secret appears; etcd keeps Hash.
type Token struct {
	ID     string
	Secret string
}

// ErrTokenFormat is wrapped by ParseToken's errors.
var ErrTokenFormat = errors.New("invalid join token")

// NewToken makes a token with a random id and secret.
func NewToken() (Token, error) {
	id, err := randomString(idLen)
	if err != nil {
		return Token{}, err
	}
	secret, err := randomString(secretLen)
	if err != nil {
		return Token{}, err
	}
	return Token{ID: id, Secret: secret}, nil
}

func randomString(n int) (string, error) {
	// Rejection sampling keeps every character equally likely.
	const limit = 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, n*2)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("read random bytes: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out), nil
}

// String is the token as the operator copies it: etk1.<id>.<secret>.
func (t Token) String() string {
	return TokenPrefix + "." + t.ID + "." + t.Secret
}

// ParseToken reads etk1.<id>.<secret>. Its errors never repeat the
// secret: they end up in logs.
func ParseToken(s string) (Token, error) {
	s = strings.TrimSpace(s)
	want := fmt.Sprintf("want %s.<%d-character id>.<%d-character secret> of lowercase letters and digits, as `etcdkit token create` prints it", TokenPrefix, idLen, secretLen)
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return Token{}, fmt.Errorf("%w: %s", ErrTokenFormat, want)
	}
	if parts[0] != TokenPrefix {
		return Token{}, fmt.Errorf("%w: it does not start with %q; %s", ErrTokenFormat, TokenPrefix+".", want)
	}
	if err := CheckTokenID(parts[1]); err != nil {
		return Token{}, err
	}
	if len(parts[2]) != secretLen || !validChars(parts[2]) {
		return Token{}, fmt.Errorf("%w (id %s): the secret is not %d lowercase letters and digits; %s", ErrTokenFormat, parts[1], secretLen, want)
	}
	return Token{ID: parts[1], Secret: parts[2]}, nil
}

// CheckTokenID validates a token id alone (`token revoke ID`).
func CheckTokenID(id string) error {
	if len(id) != idLen || !validChars(id) {
		return fmt.Errorf("%w: the id is not %d lowercase letters and digits (the part after %q)", ErrTokenFormat, idLen, TokenPrefix+".")
	}
	return nil
}

func validChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(alphabet, rune(s[i])) {
			return false
		}
	}
	return true
}

// Hash is what etcd keeps of a token: the hex SHA-256 of the whole token.
// The secret is random, so no salt or slow hash is needed.
func (t Token) Hash() string {
	sum := sha256.Sum256([]byte(t.String()))
	return hex.EncodeToString(sum[:])
}

// Matches compares the token with a stored hash in constant time, so the
// time a refusal takes says nothing about how much of the secret was right.
func (t Token) Matches(hash string) bool {
	return subtle.ConstantTimeCompare([]byte(t.Hash()), []byte(hash)) == 1
}
