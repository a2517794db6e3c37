package join

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTokenRoundTrip(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		tok, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		s := tok.String()
		if seen[s] {
			t.Fatalf("token %s drawn twice", s)
		}
		seen[s] = true
		if !strings.HasPrefix(s, "etk1.") || len(s) != len("etk1.")+idLen+1+secretLen {
			t.Fatalf("token %q has the wrong form", s)
		}
		got, err := ParseToken("  " + s + "\n")
		if err != nil || got != tok {
			t.Fatalf("ParseToken(%q) = %v, %v", s, got, err)
		}
		if !got.Matches(tok.Hash()) {
			t.Fatal("a token does not match its own hash")
		}
		other := tok
		other.Secret = strings.Repeat("a", secretLen)
		if other.Matches(tok.Hash()) || tok.Matches("") {
			t.Fatal("a wrong secret matches")
		}
	}
}

func TestParseTokenRefusals(t *testing.T) {
	secret := "abcdefghijklmnopqrstuvwx"
	for _, tc := range []struct{ in, want string }{
		{"", "want etk1.<6-character id>"},
		{"abcdef." + secret, "want etk1."},
		{"etk2.abcdef." + secret, `does not start with "etk1."`},
		{"etk1.abcde." + secret, "the id is not 6"},
		{"etk1.ABCDEF." + secret, "the id is not 6"},
		{"etk1.abcdef." + secret[:20], "id abcdef): the secret is not 24"},
		{"etk1.abcdef." + strings.ToUpper(secret), "the secret is not 24"},
		{"etk1.abcdef." + secret + ".x", "want etk1."},
		{"etk1.abcdef.abcdefghijklmnopqrstuvw!", "the secret is not 24"},
	} {
		_, err := ParseToken(tc.in)
		if !errors.Is(err, ErrTokenFormat) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseToken(%q) = %v, want %q", tc.in, err, tc.want)
		}
		if err != nil && len(tc.in) > 12 && strings.Contains(err.Error(), tc.in[12:]) {
			t.Errorf("ParseToken(%q): the message repeats the secret: %v", tc.in, err)
		}
	}
}

// FuzzParseToken: the parser never panics, accepts only tokens that print
// back as themselves, and never repeats a secret in its messages.
func FuzzParseToken(f *testing.F) {
	for _, s := range []string{"etk1.abcdef.abcdefghijklmnopqrstuvwx", "etk1..", "etk1.abcdef.", ".", "etk1.abcdef.abcdefghijklmnopqrstuvwx.", "etk1.\x00bcdef.abcdefghijklmnopqrstuvwx", " etk1.a1b2c3.000000000000000000000000 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			if !errors.Is(err, ErrTokenFormat) {
				t.Fatalf("error %v does not wrap ErrTokenFormat", err)
			}
			if parts := strings.Split(strings.TrimSpace(s), "."); len(parts) == 3 && len(parts[2]) >= 8 && strings.Contains(err.Error(), parts[2]) {
				t.Fatalf("the message repeats the secret %q: %v", parts[2], err)
			}
			return
		}
		if tok.String() != strings.TrimSpace(s) {
			t.Fatalf("ParseToken(%q) prints back as %q", s, tok.String())
		}
		again, err := ParseToken(tok.String())
		if err != nil || again != tok {
			t.Fatalf("re-parse of %q: %v, %v", tok.String(), again, err)
		}
		if CheckTokenID(tok.ID) != nil {
			t.Fatalf("accepted id %q fails CheckTokenID", tok.ID)
		}
	})
}

func TestRecordStatus(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	r := &TokenData{Expires: now.Add(time.Hour), Uses: 2, Used: 1}
	if s := r.Status(now); s != StatusValid {
		t.Fatalf("status %q", s)
	}
	if s := r.Status(now.Add(time.Hour)); s != StatusExpired {
		t.Fatalf("at expiry: %q", s)
	}
	r.Used = 2
	if s := r.Status(now); s != StatusUsedUp {
		t.Fatalf("used up: %q", s)
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	l := &limiter{Burst: 3, Refill: 10 * time.Second, Now: func() time.Time { return now }, buckets: map[string]*bucket{}}
	for i := range 3 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("attempt %d refused", i)
		}
		l.Fail("a")
	}
	ok, wait := l.Allow("a")
	if ok || wait != 10*time.Second {
		t.Fatalf("after the burst: allowed %v, wait %v", ok, wait)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another address is refused")
	}
	now = now.Add(4 * time.Second)
	if _, wait := l.Allow("a"); wait != 6*time.Second {
		t.Fatalf("wait %v after 4 s", wait)
	}
	now = now.Add(6 * time.Second)
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("not allowed again after a refill")
	}
}
