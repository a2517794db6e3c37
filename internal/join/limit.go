package join

import (
	"sync"
	"time"
)

// limiter counts failed join attempts per source address: each address
// has a bucket of Burst attempts that refills one every Refill. A token's
// secret has 124 bits, so this is not what keeps it from being guessed;
// it keeps a scanner from burning CPU on certificate requests and from
// filling the log.
type limiter struct {
	Burst  int
	Refill time.Duration
	Now    func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// Defaults: ten failures in a row, then one every six seconds.
const (
	defaultBurst  = 10
	defaultRefill = 6 * time.Second
)

func newLimiter() *limiter {
	return &limiter{Burst: defaultBurst, Refill: defaultRefill, Now: time.Now, buckets: map[string]*bucket{}}
}

// fill brings an address's bucket up to date and returns it.
func (l *limiter) fill(addr string, now time.Time) *bucket {
	b, ok := l.buckets[addr]
	if !ok {
		b = &bucket{tokens: float64(l.Burst), at: now}
		l.buckets[addr] = b
	}
	b.tokens = min(float64(l.Burst), b.tokens+float64(now.Sub(b.at))/float64(l.Refill))
	b.at = now
	return b
}

// Allow reports whether addr may try now, and if not, when it may.
func (l *limiter) Allow(addr string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.Now()
	b := l.fill(addr, now)
	if b.tokens >= 1 {
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) * float64(l.Refill))
}

// Fail charges one failed attempt to addr.
func (l *limiter) Fail(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.Now()
	b := l.fill(addr, now)
	b.tokens = max(0, b.tokens-1)
	// Forget full buckets now and then, so the map does not grow with
	// every address that ever failed once.
	if len(l.buckets) > 1024 {
		for a, x := range l.buckets {
			if l.fill(a, now); x.tokens >= float64(l.Burst) {
				delete(l.buckets, a)
			}
		}
	}
}
