package join

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// KeyPrefix is the part of the key space etcdkit reserves for joins. Only
// hashes and public data are kept there.
const KeyPrefix = "/etcdkit/join/"

const (
	tokenPrefix = KeyPrefix + "tokens/"
	// keepExpired is how long an expired or used-up token stays listed
	// (and refused by name) before etcd deletes it with its lease.
	keepExpired = 24 * time.Hour
	// casAttempts bounds the compare-and-swap loops: each retry means
	// another join changed the token in between.
	casAttempts = 20
)

// TokenData is what etcd keeps of a token besides its hash, and what
// anyone with access to the cluster may see.
type TokenData struct {
	ID          string    `json:"id"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created"`
	Expires     time.Time `json:"expires"`
	// Uses is how many joins the token allows; Used how many it had, by
	// the members in UsedBy.
	Uses   int      `json:"uses"`
	Used   int      `json:"used"`
	UsedBy []string `json:"usedBy,omitempty"`
}

// Record is a token as etcd keeps it: a hash, never the secret.
type Record struct {
	TokenData
	Hash string `json:"hash"`
}

// Status of a token.
const (
	StatusValid   = "valid"
	StatusExpired = "expired"
	StatusUsedUp  = "used up"
)

// Status says whether the token can still be used at now.
func (r *TokenData) Status(now time.Time) string {
	switch {
	case !now.Before(r.Expires):
		return StatusExpired
	case r.Used >= r.Uses:
		return StatusUsedUp
	}
	return StatusValid
}

// Info is a token as `token list` shows it: no hash.
type Info struct {
	TokenData
	Status string `json:"status"`
}

// Info is the listing view of r at now.
func (r *Record) Info(now time.Time) Info {
	return Info{TokenData: r.TokenData, Status: r.Status(now)}
}

// Errors of a token check. The refusal of an unknown id and of a wrong
// secret read the same, so ids cannot be probed; expiry and use count are
// told only to whoever holds the secret.
var (
	ErrTokenRefused  = errors.New("the join token is not valid: there is no such token, it was revoked, or its secret is wrong")
	ErrTokenExpired  = errors.New("the join token has expired")
	ErrTokenUsedUp   = errors.New("the join token has been used as many times as it allows")
	ErrTokenNotFound = errors.New("no such token")
)

// Store keeps tokens in etcd under KeyPrefix.
type Store struct {
	Client *clientv3.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func tokenKey(id string) string { return tokenPrefix + id }

// CreateOptions describes a new token.
type CreateOptions struct {
	TTL         time.Duration
	Uses        int
	Description string
}

// Create stores a new token and returns it: the only time its secret is
// known. The key carries a lease that outlives the expiry by a day, so
// etcd deletes it on its own.
func (s *Store) Create(ctx context.Context, o CreateOptions) (Token, *Record, error) {
	if o.TTL <= 0 {
		return Token{}, nil, fmt.Errorf("a join token must expire: give a positive TTL such as 1h, got %v", o.TTL)
	}
	if o.Uses < 1 {
		return Token{}, nil, fmt.Errorf("a join token must allow at least one join, got %d uses", o.Uses)
	}
	lease, err := s.Client.Grant(ctx, int64((o.TTL + keepExpired).Seconds()))
	if err != nil {
		return Token{}, nil, fmt.Errorf("store the token: %w", err)
	}
	now := s.now().UTC().Truncate(time.Second)
	for range casAttempts {
		tok, err := NewToken()
		if err != nil {
			return Token{}, nil, err
		}
		rec := &Record{Hash: tok.Hash(), TokenData: TokenData{ID: tok.ID, Description: o.Description, Created: now, Expires: now.Add(o.TTL), Uses: o.Uses}}
		b, err := json.Marshal(rec)
		if err != nil {
			return Token{}, nil, err
		}
		key := tokenKey(tok.ID)
		resp, err := s.Client.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, string(b), clientv3.WithLease(lease.ID))).
			Commit()
		if err != nil {
			return Token{}, nil, fmt.Errorf("store the token: %w", err)
		}
		if resp.Succeeded {
			return tok, rec, nil
		}
		// The id is taken (1 in 2 billion): draw another.
	}
	return Token{}, nil, errors.New("store the token: every id drawn was taken")
}

// List returns every token, newest first.
func (s *Store) List(ctx context.Context) ([]Info, error) {
	resp, err := s.Client.Get(ctx, tokenPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read tokens: %w", err)
	}
	now := s.now()
	out := []Info{}
	for _, kv := range resp.Kvs {
		var r Record
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("token %s in etcd is not readable: %w", strings.TrimPrefix(string(kv.Key), tokenPrefix), err)
		}
		out = append(out, r.Info(now))
	}
	slices.SortStableFunc(out, func(a, b Info) int { return b.Created.Compare(a.Created) })
	return out, nil
}

// Revoke deletes a token; an id that is not there is ErrTokenNotFound.
func (s *Store) Revoke(ctx context.Context, id string) (*Info, error) {
	resp, err := s.Client.Delete(ctx, tokenKey(id), clientv3.WithPrevKV())
	if err != nil {
		return nil, fmt.Errorf("revoke token %s: %w", id, err)
	}
	if len(resp.PrevKvs) == 0 {
		return nil, fmt.Errorf("%w %q", ErrTokenNotFound, id)
	}
	var r Record
	_ = json.Unmarshal(resp.PrevKvs[0].Value, &r)
	info := r.Info(s.now())
	return &info, nil
}

// get reads a token's record and its mod revision; a missing key or a
// wrong secret is ErrTokenRefused.
func (s *Store) get(ctx context.Context, tok Token, opts ...clientv3.OpOption) (*Record, int64, error) {
	resp, err := s.Client.Get(ctx, tokenKey(tok.ID), opts...)
	if err != nil {
		return nil, 0, fmt.Errorf("read the join token: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, ErrTokenRefused
	}
	var r Record
	if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
		return nil, 0, fmt.Errorf("token %s in etcd is not readable: %w", tok.ID, err)
	}
	if !tok.Matches(r.Hash) {
		return nil, 0, ErrTokenRefused
	}
	return &r, resp.Kvs[0].ModRevision, nil
}

// usable says why a record cannot be used now, or nil.
func (s *Store) usable(r *Record) error {
	switch r.Status(s.now()) {
	case StatusExpired:
		return fmt.Errorf("%w (token %s expired at %s)", ErrTokenExpired, r.ID, r.Expires.UTC().Format(time.RFC3339))
	case StatusUsedUp:
		return fmt.Errorf("%w (token %s: %d of %d uses)", ErrTokenUsedUp, r.ID, r.Used, r.Uses)
	}
	return nil
}

// Check reads and checks a token without using it. It reads the local
// member's copy, so a cluster that lost quorum still says what is wrong
// with the token.
func (s *Store) Check(ctx context.Context, tok Token) (*Record, error) {
	r, _, err := s.get(ctx, tok, clientv3.WithSerializable())
	if err != nil {
		return nil, err
	}
	return r, s.usable(r)
}

// Consume takes one use of the token for the member `by`. The write is a
// compare-and-swap on the key's mod revision: two joins that read the
// same count cannot both spend it.
func (s *Store) Consume(ctx context.Context, tok Token, by string) (*Record, error) {
	return s.update(ctx, tok, func(r *Record) error {
		if err := s.usable(r); err != nil {
			return err
		}
		r.Used++
		r.UsedBy = append(r.UsedBy, by)
		return nil
	})
}

// Refund gives back a use Consume took for a join that then failed. A
// token revoked in between stays revoked.
func (s *Store) Refund(ctx context.Context, tok Token, by string) error {
	_, err := s.update(ctx, tok, func(r *Record) error {
		i := slices.Index(r.UsedBy, by)
		if i < 0 || r.Used == 0 {
			return errRefunded
		}
		r.UsedBy = slices.Delete(r.UsedBy, i, i+1)
		r.Used--
		return nil
	})
	if errors.Is(err, errRefunded) || errors.Is(err, ErrTokenRefused) {
		return nil
	}
	return err
}

var errRefunded = errors.New("nothing to refund")

// update applies change to the token's record with a compare-and-swap,
// rereading and retrying when another join changed it in between.
func (s *Store) update(ctx context.Context, tok Token, change func(*Record) error) (*Record, error) {
	key := tokenKey(tok.ID)
	for range casAttempts {
		r, rev, err := s.get(ctx, tok)
		if err != nil {
			return nil, err
		}
		if err := change(r); err != nil {
			return nil, err
		}
		b, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		resp, err := s.Client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(clientv3.OpPut(key, string(b), clientv3.WithIgnoreLease())).
			Commit()
		if err != nil {
			return nil, fmt.Errorf("update the join token: %w", err)
		}
		if resp.Succeeded {
			return r, nil
		}
	}
	return nil, fmt.Errorf("update the join token: it kept changing under %d attempts", casAttempts)
}
