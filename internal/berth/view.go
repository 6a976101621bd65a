package berth

import "time"

// PoolStatus is a pool with its live counts, as the API shows it.
type PoolStatus struct {
	Pool
	IdleTimeout Duration `json:"idle_timeout"`
	// IdleTimeoutAuto is idle_timeout: auto (IdleTimeout is then 0).
	IdleTimeoutAuto bool     `json:"idle_timeout_auto,omitempty"`
	BootTimeout     Duration `json:"boot_timeout,omitzero"`
	MaxLifetime     Duration `json:"max_lifetime,omitzero"`
	// Clusters counts the pool's clusters by state (terminal states count
	// the clusters that ended since the service started).
	Clusters  map[ClusterState]int `json:"clusters"`
	Queued    int                  `json:"queued"`
	Running   int                  `json:"running"`
	FreeSlots int                  `json:"free_slots"`
	// FallbackActive is true while new clusters use the fallback spec.
	FallbackActive bool `json:"fallback_active"`
	// Blocked is true while a permanent provider failure keeps the pool
	// from starting clusters; BlockedReason is the provider's message.
	Blocked       bool      `json:"blocked"`
	BlockedReason string    `json:"blocked_reason,omitempty"`
	BlockedAt     time.Time `json:"blocked_at,omitzero"`
	// Strays are live clusters this installation started for the pool
	// that Berth has no record of (the provider's ids): they cost money
	// and run no job. Terminated when the pool says so (EMR:
	// terminate_strays), else only reported.
	Strays []string `json:"strays,omitempty"`
}

// ClusterDetail is a cluster with the attempts that ran on it and its
// history.
type ClusterDetail struct {
	Cluster
	Attempts []Attempt `json:"attempts"`
	Events   []Event   `json:"events"`
}

// Logs is one step's output, or where to find it.
type Logs struct {
	JobID   string `json:"job_id,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
	Step    int    `json:"step"`
	Stdout  string `json:"stdout,omitempty"`
	Stderr  string `json:"stderr,omitempty"`
	// Location is where the provider keeps the logs (EMR: the S3 prefix).
	Location string `json:"location,omitempty"`
}
