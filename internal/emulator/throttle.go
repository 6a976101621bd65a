package emulator

import "time"

// rate is a token bucket: refill tokens a second, at most burst saved up.
type rate struct {
	refill, burst float64
}

// EMR's throttling, per account and region: a bucket per API and one for
// the account, which every call draws on too.
var (
	apiRates = map[string]rate{
		"ListSteps":         {0.5, 10},
		"DescribeStep":      {0.5, 10},
		"AddJobFlowSteps":   {0.5, 10},
		"RunJobFlow":        {0.5, 10},
		"TerminateJobFlows": {0.5, 10},
		"DescribeCluster":   {1, 10},
	}
	otherRate   = rate{1, 10}
	accountRate = rate{5, 10}
)

type bucket struct {
	rate   rate
	tokens float64
	at     time.Time
}

func newBucket(r rate, now time.Time) *bucket {
	return &bucket{rate: r, tokens: r.burst, at: now}
}

// scaled is r refilled Options.ThrottleScale times as fast.
func (e *Emulator) scaled(r rate) rate {
	return rate{refill: r.refill * e.opts.ThrottleScale, burst: r.burst}
}

// fill adds what the bucket earned up to now.
func (b *bucket) fill(now time.Time) {
	if now.After(b.at) {
		b.tokens = min(b.tokens+now.Sub(b.at).Seconds()*b.rate.refill, b.rate.burst)
		b.at = now
	}
}

// epsilon forgives the rounding of refills that should make a whole token.
const epsilon = 1e-9

// takeToken draws a token for a call of op from its bucket and the
// account's, and reports whether both had one; a throttled call takes
// none.
func (e *Emulator) takeToken(op string) bool {
	now := e.clk.Now()
	b := e.buckets[op]
	if b == nil {
		r, ok := apiRates[op]
		if !ok {
			r = otherRate
		}
		b = newBucket(e.scaled(r), now)
		e.buckets[op] = b
	}
	b.fill(now)
	e.account.fill(now)
	if b.tokens < 1-epsilon || e.account.tokens < 1-epsilon {
		return false
	}
	b.tokens--
	e.account.tokens--
	return true
}
