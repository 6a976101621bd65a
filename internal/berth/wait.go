package berth

import (
	"fmt"
	"time"
)

// WaitReason says why a queued job is not running yet.
type WaitReason string

const (
	// WaitNoFreeSlot: every ready cluster of the pool is full and the pool
	// starts no cluster for the job now (it holds new clusters back after
	// failed creations), so the job waits for a slot to free.
	WaitNoFreeSlot WaitReason = "no_free_slot"
	// WaitClusterStarting: a cluster is booting that will take the job;
	// Wait.WaitCluster names it when it is known and WaitUntil is when it
	// is expected to be ready.
	WaitClusterStarting WaitReason = "cluster_starting"
	// WaitPoolAtMax: the pool has max_clusters live and all their slots
	// are busy.
	WaitPoolAtMax WaitReason = "pool_at_max_clusters"
	// WaitBackoff: a retry waits out its backoff until WaitUntil (the job's
	// not_before).
	WaitBackoff WaitReason = "backoff_until"
	// WaitPoolBlocked: a permanent provider failure blocks the pool, which
	// starts no cluster until it is unblocked.
	WaitPoolBlocked WaitReason = "pool_blocked"
	// WaitAffinityBusy: the job requires its affinity cluster
	// (WaitCluster), which is full.
	WaitAffinityBusy WaitReason = "affinity_cluster_busy"
	// WaitPending: the scheduler has not looked at the job yet (it was
	// just submitted, or its backoff just ended); its next pass places it
	// or says why it waits.
	WaitPending WaitReason = "pending"
)

// Wait is why a queued job waits and when it is expected to start. It is
// derived when the job is read, from the loop's last pass, and never
// stored; jobs that are not queued have none.
type Wait struct {
	WaitReason WaitReason `json:"wait_reason,omitempty"`
	// WaitMessage says the same for a person, with what the reason
	// depends on (the block's cause, the limit reached).
	WaitMessage string `json:"wait_message,omitempty"`
	// WaitCluster is the cluster the job waits for: the starting one that
	// will take it, or its busy affinity cluster.
	WaitCluster string `json:"wait_cluster,omitempty"`
	// WaitUntil is when the reason is expected to pass: the starting
	// cluster's expected ready time, the end of a retry backoff, the end
	// of a hold on new clusters.
	WaitUntil time.Time `json:"wait_until,omitzero"`
	// ETA is the estimated start, from the scheduler run forward in
	// virtual time from the live state; zero when there is none (the
	// forecast sees no way for the job to start, or the job is too far
	// back in its queue to be forecast).
	ETA time.Time `json:"eta,omitzero"`
}

// Describe says w for a person, for its WaitMessage: pool is the job's
// pool, maxClusters its max_clusters and blocked why it is blocked.
func (w Wait) Describe(pool string, maxClusters int, blocked string) string {
	at := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	switch w.WaitReason {
	case WaitNoFreeSlot:
		if !w.WaitUntil.IsZero() {
			return "every ready cluster of pool " + pool + " is full, and new clusters are held back after failed creations until " + at(w.WaitUntil)
		}
		return "every ready cluster of pool " + pool + " is full; waiting for a slot to free"
	case WaitClusterStarting:
		switch {
		case w.WaitCluster != "" && !w.WaitUntil.IsZero():
			return "cluster " + w.WaitCluster + " is starting for it, expected ready at " + at(w.WaitUntil)
		case w.WaitCluster != "":
			return "cluster " + w.WaitCluster + " is starting for it"
		}
		return "a cluster of pool " + pool + " is starting for it"
	case WaitPoolAtMax:
		if maxClusters <= 0 {
			return "pool " + pool + " starts no cluster: its max_clusters is 0"
		}
		return fmt.Sprintf("pool %s has its max_clusters (%d) live and every slot busy", pool, maxClusters)
	case WaitBackoff:
		return "retry backoff until " + at(w.WaitUntil)
	case WaitPoolBlocked:
		return "pool " + pool + " is blocked: " + blocked
	case WaitAffinityBusy:
		return "its required affinity cluster " + w.WaitCluster + " is full"
	case WaitPending:
		return "the scheduler has not looked at it yet"
	}
	return string(w.WaitReason)
}
