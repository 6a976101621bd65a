package berth

import "time"

// ClusterState is where a cluster is in its life.
type ClusterState string

const (
	ClusterStarting    ClusterState = "starting"
	ClusterReady       ClusterState = "ready"
	ClusterDraining    ClusterState = "draining"
	ClusterTerminating ClusterState = "terminating"
	ClusterTerminated  ClusterState = "terminated"
	// ClusterLost is a cluster that died under us: spot capacity reclaimed,
	// instance or bootstrap failure, or boot timeout.
	ClusterLost ClusterState = "lost"
)

// ClusterStates lists every cluster state, in life order.
var ClusterStates = []ClusterState{ClusterStarting, ClusterReady, ClusterDraining, ClusterTerminating, ClusterTerminated, ClusterLost}

// Valid reports whether s is a known cluster state.
func (s ClusterState) Valid() bool {
	for _, v := range ClusterStates {
		if s == v {
			return true
		}
	}
	return false
}

// Terminal reports whether a cluster in this state is gone for good.
func (s ClusterState) Terminal() bool { return s == ClusterTerminated || s == ClusterLost }

var clusterMoves = map[ClusterState][]ClusterState{
	ClusterStarting:    {ClusterReady, ClusterDraining, ClusterTerminating, ClusterLost},
	ClusterReady:       {ClusterDraining, ClusterTerminating, ClusterLost},
	ClusterDraining:    {ClusterTerminating, ClusterLost},
	ClusterTerminating: {ClusterTerminated, ClusterLost},
}

// CanMove reports whether a cluster may go from one state to another.
func (s ClusterState) CanMove(to ClusterState) bool {
	for _, v := range clusterMoves[s] {
		if v == to {
			return true
		}
	}
	return false
}

// Cluster is one live instance of a pool, created and owned by Berth.
type Cluster struct {
	ID    string       `json:"id"`
	Pool  string       `json:"pool"`
	State ClusterState `json:"state"`
	// ProviderID is the provider's id for the cluster (an EMR job flow id);
	// empty until the provider accepted the request.
	ProviderID string `json:"provider_id,omitempty"`
	// Fallback is true when the cluster was built from the pool's fallback
	// spec.
	Fallback     bool      `json:"fallback,omitempty"`
	Slots        int       `json:"slots"`
	PricePerHour float64   `json:"price_per_hour"`
	CreatedAt    time.Time `json:"created_at"`
	ReadyAt      time.Time `json:"ready_at,omitzero"`
	// IdleSince is when the cluster last had no job; zero while it has some.
	IdleSince time.Time `json:"idle_since,omitzero"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	// Reason says why the cluster was drained, terminated or lost.
	Reason string `json:"reason,omitempty"`
	// Capacity marks a loss the provider blamed on capacity (spot reclaim,
	// insufficient capacity): such losses switch a pool to its fallback.
	Capacity bool `json:"capacity,omitempty"`
	// EndsLost marks a cluster Berth gave up on (boot timeout, failed
	// creation) while it is being terminated at the provider: it ends lost,
	// not terminated. It is stored so that the termination is carried on
	// after a restart.
	EndsLost bool `json:"ends_lost,omitempty"`
	// Running is the number of jobs on the cluster now. It is derived, not
	// stored.
	Running int `json:"running"`
	// Cost is the cluster's lifetime so far at its price. Derived.
	Cost float64 `json:"cost"`
}

// Lifetime is how long the cluster has existed at now.
func (c *Cluster) Lifetime(now time.Time) time.Duration {
	end := c.EndedAt
	if end.IsZero() {
		end = now
	}
	if end.Before(c.CreatedAt) {
		return 0
	}
	return end.Sub(c.CreatedAt)
}

// FreeSlots is how many more jobs the cluster takes with running jobs on
// it: none unless it is ready.
func (c *Cluster) FreeSlots(running int) int {
	if c.State != ClusterReady {
		return 0
	}
	return max(c.Slots-running, 0)
}

// CostAt is the cluster's cost at now: its lifetime times its price.
func (c *Cluster) CostAt(now time.Time) float64 {
	return c.Lifetime(now).Hours() * c.PricePerHour
}

// SlotCost is the cost of holding one slot of a cluster for d.
func SlotCost(d time.Duration, pricePerHour float64, slots int) float64 {
	if slots <= 0 || d <= 0 {
		return 0
	}
	return d.Hours() * pricePerHour / float64(slots)
}
