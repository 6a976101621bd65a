package berth

import "time"

// Pool is a named cluster template and its scaling policy. The provider's
// own spec (for EMR the release, applications, instance groups) stays with
// the provider; the scheduler needs only what is here.
type Pool struct {
	Name        string        `json:"name"`
	Provider    string        `json:"provider"`
	Slots       int           `json:"slots"`
	MinClusters int           `json:"min_clusters"`
	MaxClusters int           `json:"max_clusters"`
	IdleTimeout time.Duration `json:"-"`
	// IdleAuto is idle_timeout: auto: an idle cluster is ended when no
	// work is expected within the pool's boot time, and kept at most a
	// boot time idle when work is. IdleTimeout is then 0.
	IdleAuto     bool          `json:"-"`
	BootTimeout  time.Duration `json:"-"`
	MaxLifetime  time.Duration `json:"-"`
	PricePerHour float64       `json:"price_per_hour"`
	// Fallback is nil when the pool has no fallback spec.
	Fallback *Fallback `json:"fallback,omitempty"`
}

// Fallback says when a pool switches to its fallback spec and for how long.
type Fallback struct {
	// AfterFailures capacity losses within For switch the pool over.
	AfterFailures int           `json:"after_failures"`
	For           time.Duration `json:"-"`
}

// PoolState is what Berth remembers about a pool between passes of its
// loop: recent capacity failures and whether the fallback spec is in force.
type PoolState struct {
	Pool string `json:"pool"`
	// CapacityFailures counts capacity losses since FirstFailureAt.
	CapacityFailures int       `json:"capacity_failures"`
	FirstFailureAt   time.Time `json:"first_failure_at,omitzero"`
	// FallbackUntil is when the pool goes back to its primary spec; zero or
	// past when the primary spec is in force.
	FallbackUntil time.Time `json:"fallback_until,omitzero"`
	// BlockedAt is when a permanent provider failure showed that the pool's
	// spec cannot work; zero while the pool is not blocked. A blocked pool
	// starts no cluster until its configuration changes or someone
	// unblocks it.
	BlockedAt time.Time `json:"blocked_at,omitzero"`
	// BlockedReason is the provider's message for the failure.
	BlockedReason string `json:"blocked_reason,omitempty"`
	// BlockedSpec fingerprints the pool's configuration when it was
	// blocked, so that a changed configuration lifts the block.
	BlockedSpec string `json:"blocked_spec,omitempty"`
	// UnblockedAt is when the pool was last unblocked: whoever unblocked
	// it said its spec works as of then, so a cluster started before,
	// failing on the old spec, does not block it again.
	UnblockedAt time.Time `json:"unblocked_at,omitzero"`
}

// Blocked reports whether the pool is blocked.
func (p PoolState) Blocked() bool { return !p.BlockedAt.IsZero() }

// FallbackActive reports whether new clusters of the pool use its fallback
// spec at now.
func (p PoolState) FallbackActive(now time.Time) bool {
	return now.Before(p.FallbackUntil)
}

// RecordCapacityFailure counts one capacity loss at now and switches the
// pool to its fallback spec when enough of them came within the window. It
// reports whether it switched.
func (p *PoolState) RecordCapacityFailure(fb *Fallback, now time.Time) bool {
	if fb == nil || fb.AfterFailures <= 0 {
		return false
	}
	if p.CapacityFailures == 0 || now.Sub(p.FirstFailureAt) > fb.For {
		p.CapacityFailures, p.FirstFailureAt = 0, now
	}
	p.CapacityFailures++
	if p.CapacityFailures < fb.AfterFailures {
		return false
	}
	p.CapacityFailures, p.FirstFailureAt = 0, time.Time{}
	p.FallbackUntil = now.Add(fb.For)
	return true
}
