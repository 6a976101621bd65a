package emr

import (
	"context"
	"sync"
	"time"

	"github.com/berthhq/berth/internal/clock"
)

// Rate is a token bucket: Refill tokens a second, at most Burst saved up.
type Rate struct {
	Refill float64
	Burst  float64
}

// EMR's documented defaults, per account and region.
var (
	// DefaultRates are the per-API buckets.
	DefaultRates = map[string]Rate{
		"ListSteps":         {Refill: 0.5, Burst: 10},
		"DescribeStep":      {Refill: 0.5, Burst: 10},
		"AddJobFlowSteps":   {Refill: 0.5, Burst: 10},
		"RunJobFlow":        {Refill: 0.5, Burst: 10},
		"TerminateJobFlows": {Refill: 0.5, Burst: 10},
		"DescribeCluster":   {Refill: 1, Burst: 10},
	}
	// OtherRate is the bucket of an API without one of its own.
	OtherRate = Rate{Refill: 1, Burst: 10}
	// AccountRate is the account-wide bucket every call also draws on.
	AccountRate = Rate{Refill: 5, Burst: 10}
)

// Limiter keeps EMR's buckets on Berth's side. Reserve is deterministic
// in the clock's time; Wait sleeps out the reservation on the clock. It is
// safe for concurrent use.
type Limiter struct {
	mu      sync.Mutex
	clk     clock.Clock
	rates   map[string]Rate
	other   Rate
	buckets map[string]*bucket
	account *bucket
	// live holds the clusters of the fleet that draws on the limiter, so
	// that their polls are paced to fit it.
	live map[string]bool
}

type bucket struct {
	rate   Rate
	tokens float64
	at     time.Time
}

// NewLimiter returns a limiter with EMR's default buckets, full, on clk
// (nil: the wall clock).
func NewLimiter(clk clock.Clock) *Limiter {
	return NewScaledLimiter(clk, 1)
}

// NewScaledLimiter returns a limiter whose buckets refill scale times as
// fast as EMR's defaults: for an account whose limits were raised, and for
// tests that must not wait out EMR's pace.
func NewScaledLimiter(clk clock.Clock, scale float64) *Limiter {
	if clk == nil {
		clk = clock.Real{}
	}
	rates := make(map[string]Rate, len(DefaultRates))
	for api, r := range DefaultRates {
		rates[api] = Rate{Refill: r.Refill * scale, Burst: r.Burst}
	}
	account := Rate{Refill: AccountRate.Refill * scale, Burst: AccountRate.Burst}
	return &Limiter{clk: clk, rates: rates, other: Rate{Refill: OtherRate.Refill * scale, Burst: OtherRate.Burst},
		buckets: map[string]*bucket{}, live: map[string]bool{},
		account: &bucket{rate: account, tokens: account.Burst, at: clk.Now()}}
}

// take draws one token at now, the bucket going into debt if it has none,
// and returns how long until the debt is paid: the wait before the call.
func (b *bucket) take(now time.Time) time.Duration {
	if now.After(b.at) {
		b.tokens = min(b.tokens+now.Sub(b.at).Seconds()*b.rate.Refill, b.rate.Burst)
		b.at = now
	}
	b.tokens--
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate.Refill * float64(time.Second))
}

// Reserve takes a token for one call of api, from its bucket and the
// account's, and returns how long the caller must wait before making it.
func (l *Limiter) Reserve(api string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clk.Now()
	b := l.buckets[api]
	if b == nil {
		r, ok := l.rates[api]
		if !ok {
			r = l.other
		}
		b = &bucket{rate: r, tokens: r.Burst, at: now}
		l.buckets[api] = b
	}
	return max(b.take(now), l.account.take(now))
}

// Track counts a cluster in the fleet (live) or drops it.
func (l *Limiter) Track(id string, live bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if live {
		l.live[id] = true
	} else {
		delete(l.live, id)
	}
}

// Clusters is the number of live clusters drawing on the limiter.
func (l *Limiter) Clusters() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.live)
}

// Wait reserves a call of api and waits until it may be made, or until
// ctx ends.
func (l *Limiter) Wait(ctx context.Context, api string) error {
	d := l.Reserve(api)
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-l.clk.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// shared holds one limiter per account, region and scale: every EMR pool
// of one account and region draws on the same buckets, as EMR counts them.
var shared = struct {
	sync.Mutex
	m map[sharedKey]*Limiter
}{m: map[sharedKey]*Limiter{}}

type sharedKey struct {
	account, region string
	scale           float64
}

// Shared returns the limiter of an account and region at EMR's default
// rates, making it on clk the first time.
func Shared(account, region string, clk clock.Clock) *Limiter {
	return SharedScaled(account, region, clk, 1)
}

// SharedScaled is Shared for a limiter whose buckets refill scale times
// as fast (NewScaledLimiter).
func SharedScaled(account, region string, clk clock.Clock, scale float64) *Limiter {
	shared.Lock()
	defer shared.Unlock()
	k := sharedKey{account, region, scale}
	if l := shared.m[k]; l != nil {
		return l
	}
	l := NewScaledLimiter(clk, scale)
	shared.m[k] = l
	return l
}

// pollShare is the part of the ListSteps budget the watchers may use;
// the rest is left for retries and the API's own callers.
const pollShare = 0.8

// PollInterval is how often each of n clusters may be polled (one
// DescribeCluster and one ListSteps) so that the fleet stays within EMR's
// default buckets: never more often than base, and slower as the fleet
// grows.
func PollInterval(n int, base time.Duration) time.Duration {
	return pollInterval(n, base, DefaultRates["ListSteps"].Refill, AccountRate.Refill)
}

// PollInterval is PollInterval at the limiter's own rates, for the
// clusters it tracks: a limiter scaled for raised limits lets its fleet be
// polled as many times as often.
func (l *Limiter) PollInterval(base time.Duration) time.Duration {
	l.mu.Lock()
	n, list, account := len(l.live), l.rates["ListSteps"].Refill, l.account.rate.Refill
	l.mu.Unlock()
	return pollInterval(n, base, list, account)
}

// pollInterval paces n clusters' polls to ListSteps' refill and the
// account's.
func pollInterval(n int, base time.Duration, list, account float64) time.Duration {
	if n <= 0 {
		return base
	}
	// ListSteps has the slowest refill of the two calls of a poll; the
	// account bucket takes both.
	perList := float64(n) / (list * pollShare)
	perAccount := float64(2*n) / (account * pollShare)
	need := time.Duration(max(perList, perAccount) * float64(time.Second))
	return max(base, need)
}
