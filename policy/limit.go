package policy

import (
	"sync"
	"time"
)

// Limiter is a token bucket per key: each key may spend Burst requests at
// once and earns Rate per second after that. It keeps state but does no
// I/O and reads no clock: the caller passes the time.
type Limiter struct {
	rate  float64
	burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// limiterMax bounds how many keys are remembered; the oldest-idle are
// dropped first (full buckets, which are no loss).
const limiterMax = 100000

// NewLimiter returns a limiter, or nil (no limit) when rate is 0.
func NewLimiter(rate float64, burst int) *Limiter {
	if rate <= 0 {
		return nil
	}
	return &Limiter{rate: rate, burst: float64(max(burst, 1)), buckets: map[string]*bucket{}}
}

// Allow spends a token of key; if there is none it says how long until
// there is. A nil Limiter allows everything.
func (l *Limiter) Allow(key string, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= limiterMax {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// prune drops buckets that have refilled: forgetting them changes nothing.
func (l *Limiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= limiterMax {
		clear(l.buckets) // under a flood of distinct keys, start afresh
	}
}

// ErrRateLimited is the answer over a limit.
var ErrRateLimited = E(KindThrottled, "rate_limited", "too many requests; slow down")
