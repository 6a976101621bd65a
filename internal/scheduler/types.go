package scheduler

import (
	"time"

	"github.com/berthhq/berth/internal/berth"
)

// Snapshot is everything the scheduler may look at. The loop builds it from
// its own state; the simulator builds it in virtual time.
type Snapshot struct {
	Now      time.Time
	Pools    []PoolView
	Clusters []ClusterView
	// Queued holds the jobs waiting for a cluster, in no particular order.
	Queued []JobView
	// Affinity maps an affinity key to the cluster that last ran it.
	Affinity map[string]string
}

// PoolView is one pool and whether its fallback spec is in force.
type PoolView struct {
	Pool     berth.Pool
	Fallback bool
	// Blocked pools start no cluster: their spec cannot work.
	Blocked bool
	// StartAfter holds back new clusters after failed creations, so a
	// spec that keeps failing is not retried in a tight loop.
	StartAfter time.Time
	// Backlog counts the pool's eligible queued jobs left out of Queued
	// (a long queue is given by its head): they count as demand.
	Backlog int
	// Expected is work expected to arrive, soonest first: what running
	// jobs said will follow them, or what followed their tasks before.
	Expected []Arrival
	// BootTime is how long the pool's clusters took to boot lately; 0
	// when none has been seen (DefaultBootTime is assumed).
	BootTime time.Duration
	// Ends are when the pool's running jobs are expected to end, for
	// those whose run time is known: slots that expected work can take.
	Ends []time.Time
	// Foreseen is set when the pool's latest job to end said, or taught,
	// what follows it: no expected work then means none is coming.
	Foreseen bool
}

// Arrival is Jobs jobs expected on Pool at At.
type Arrival struct {
	Pool string
	At   time.Time
	Jobs int
}

// ClusterView is one cluster that is not terminated or lost.
type ClusterView struct {
	ID        string
	Pool      string
	State     berth.ClusterState
	Slots     int
	Running   int
	CreatedAt time.Time
	// IdleSince is zero while the cluster runs jobs.
	IdleSince time.Time
	// Spared marks a starting cluster restored from the store that has not
	// been heard of since: it may have come up while Berth was down, so it
	// is not judged by boot_timeout yet.
	Spared bool
	// Released marks a terminating cluster whose provider has taken the
	// termination. Until then it still counts against max_clusters: it
	// may well be running.
	Released bool
}

// JobView is one queued job.
type JobView struct {
	ID               string
	Pool             string
	Priority         int
	CreatedAt        time.Time
	NotBefore        time.Time
	Affinity         string
	AffinityRequired bool
}

// Plan is what the scheduler decided. The loop writes it to the store and
// then carries it out.
type Plan struct {
	Place []Placement
	Start []Start
	Drain []Drain
	// Terminate lists draining clusters with no jobs left.
	Terminate []string
	// Lose lists starting clusters past their pool's boot_timeout.
	Lose []Lose
	// Fail lists queued jobs that can never be placed.
	Fail []Fail
	// Waits says why each eligible job left unplaced waits (see Wait).
	Waits []Wait
	// WakeAt is the earliest time a later pass could decide something
	// different with no new event (a not_before, an idle_timeout, a
	// boot_timeout or a max_lifetime coming due); zero when none.
	WakeAt time.Time
}

// Placement puts a job on a cluster.
type Placement struct {
	JobID     string
	ClusterID string
}

// Start starts one cluster of a pool.
type Start struct {
	Pool     string
	Fallback bool
	Reason   string
}

// Drain stops a cluster from taking new jobs.
type Drain struct {
	ClusterID string
	Reason    string
}

// Lose gives up on a cluster.
type Lose struct {
	ClusterID string
	Reason    string
}

// Fail ends a queued job.
type Fail struct {
	JobID  string
	Reason berth.Reason
	// Message says what happened, for the job's events.
	Message string
}
