// Package store is the seam between Berth and its database. The Store
// interface is written against the domain types only; each driver (sqlite
// now, postgres next) translates its own errors into berth's sentinels, and
// every driver passes the one conformance suite in storetest.
//
// Writes come from two places. The API creates jobs and records cancel
// requests; everything else is written by the service's loop, which is the
// only writer of job and cluster state and commits the changes of one pass
// in one transaction (Commit). That loop holds the store's Lock while it
// runs, so a second server over the same database refuses to start instead
// of running a second loop.
package store

import (
	"context"
	"fmt"
	"time"

	"github.com/berthhq/berth/internal/berth"
)

// Store keeps jobs, attempts, clusters, pool state and events.
type Store interface {
	// CreateJob stores a new queued job with its queued event (QueuedEvent)
	// and returns it with its Seq set and created true. When
	// job.IdempotencyKey is set and a job with that key exists, it stores
	// nothing and returns the existing job and false. The job is durable
	// when CreateJob returns: its submission costs one commit, not one
	// more when the loop picks it up.
	CreateJob(ctx context.Context, job berth.Job) (stored berth.Job, created bool, err error)
	// CreateJobs stores several jobs as CreateJob stores each, in one
	// transaction: all of them or, on an error, none. It answers in their
	// order; a later job with the key of an earlier one in the same call
	// gets that one, created false. When held is not nil it is called,
	// inside the transaction, for each job i whose key is taken, with the
	// job that holds it: an error from it fails the call, as it is.
	CreateJobs(ctx context.Context, jobs []berth.Job, held func(i int, holder *berth.Job) error) ([]berth.Submitted, error)
	// GetJob returns one job with its attempts, or berth.ErrNotFound.
	GetJob(ctx context.Context, id string) (berth.Job, error)
	// GetJobs returns the jobs of these ids, with their attempts, each
	// once, in the order asked; an id no job has is left out. The loop reads with it
	// the dormant jobs Load gave it as DormantJobs, once they near the
	// head of their queue.
	GetJobs(ctx context.Context, ids []string) ([]berth.Job, error)
	// ListJobs returns jobs newest first, with a cursor for the next page
	// ("" when there is none).
	ListJobs(ctx context.Context, f JobFilter) (jobs []berth.Job, next string, err error)
	// RequestCancel marks a job that has not ended as to be cancelled and
	// returns it. berth.ErrNotFound for an unknown job; berth.ErrConflict
	// (with the job) when it has already ended.
	RequestCancel(ctx context.Context, id string, at time.Time) (berth.Job, error)

	// GetCluster returns one cluster, or berth.ErrNotFound.
	GetCluster(ctx context.Context, id string) (berth.Cluster, error)
	// ListClusters returns clusters oldest first.
	ListClusters(ctx context.Context, f ClusterFilter) ([]berth.Cluster, error)
	// ClusterAttempts returns the attempts that ran on a cluster, with
	// JobID set, oldest first.
	ClusterAttempts(ctx context.Context, clusterID string) ([]berth.Attempt, error)
	// ListEvents returns events oldest first.
	ListEvents(ctx context.Context, f EventFilter) ([]berth.Event, error)

	// Load returns what the loop needs to start: every job that has not
	// ended, every cluster that is not terminated or lost, pool state and
	// the affinity map. Of a dormant job (berth.Job.Dormant) it returns
	// only what placement needs, in State.Dormant.
	Load(ctx context.Context) (State, error)
	// JobsAfter returns jobs with Seq > seq, in Seq order, at most limit
	// (the loop picks up new submissions with it).
	JobsAfter(ctx context.Context, seq int64, limit int) ([]berth.Job, error)
	// CancelRequests returns the ids of jobs that have not ended and have a
	// cancel request.
	CancelRequests(ctx context.Context) ([]string, error)
	// Commit writes a batch of the loop's changes in one transaction: all of
	// it or none. Of a job it writes the run state (berth.Job.SetRun): what
	// its submission fixed stays as stored, and so do CancelRequested, Seq
	// and CreatedAt, which only the store sets. A job's attempts are
	// upserted by number, and one the batch does not list stays. Clusters
	// are written whole; events are appended.
	Commit(ctx context.Context, b Batch) error

	// Lock takes the exclusive right to run the loop over this store, for
	// as long as the loop runs: two loops over one database would each
	// place every job, and each start clusters up to max_clusters. A second
	// Lock, from this process or another, fails with an error wrapping
	// berth.ErrConflict that says another berth server holds the store.
	// Lock does not wait for the holder to let go. release gives the right
	// up and may be called more than once; closing the store gives it up
	// too, and so does the end of the holding process, however it ends.
	//
	// An embedded database makes it a lock on a file. A driver over a
	// database server (PostgreSQL next) makes it a leader lease: a row
	// naming the holder with an expiry, renewed while the loop runs, taken
	// over by another server only once it has expired, and a holder that
	// fails to renew it in time stops its loop.
	Lock(ctx context.Context) (release func() error, err error)

	// Installation names this installation of Berth: the id stored in the
	// database, or candidate, stored, if it has none yet. Providers tag
	// what they start with it, so that a restarted Berth tells its own
	// clusters from another installation's in the same account.
	Installation(ctx context.Context, candidate string) (string, error)

	// Ping reports whether the store answers.
	Ping(ctx context.Context) error
	// Close closes the store and gives up its Lock. It may be called more
	// than once.
	Close() error
}

// EventQueued is the kind of the event that CreateJob appends for a new
// job; QueuedEvent makes it, so every driver writes the same.
const EventQueued = "queued"

// QueuedEvent is the event of a job's submission.
func QueuedEvent(j *berth.Job) berth.Event {
	return berth.Event{At: j.CreatedAt, JobID: j.ID, Kind: EventQueued, Message: "submitted to pool " + j.Pool}
}

// EventCancelRequested is the kind of the event RequestCancel appends; every
// driver writes it.
const EventCancelRequested = "cancel_requested"

// JobFilter narrows ListJobs. Zero fields do not filter.
type JobFilter struct {
	State  berth.JobState
	Pool   string
	Labels map[string]string
	// Limit is at most MaxLimit; 0 means DefaultLimit.
	Limit  int
	Cursor string
}

// Page sizes for ListJobs.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// ClusterFilter narrows ListClusters. Zero fields do not filter.
type ClusterFilter struct {
	Pool  string
	State berth.ClusterState
}

// EventFilter narrows ListEvents. Zero fields do not filter; Limit 0 means
// no limit.
type EventFilter struct {
	JobID     string
	ClusterID string
	Limit     int
}

// State is what Load returns.
type State struct {
	// Jobs are the live jobs that are not dormant, and Dormant the rest,
	// each in Seq order.
	Jobs     []berth.Job
	Dormant  []berth.DormantJob
	Clusters []berth.Cluster
	Pools    []berth.PoolState
	// Affinity maps an affinity key to the cluster that last ran it.
	Affinity map[string]string
	// MaxSeq is the highest job Seq stored.
	MaxSeq int64
}

// Batch is one pass of the loop's changes.
type Batch struct {
	Jobs     []berth.Job
	Clusters []berth.Cluster
	Pools    []berth.PoolState
	// Affinity entries are upserted.
	Affinity map[string]string
	Events   []berth.Event
}

// Empty reports whether the batch changes nothing.
func (b *Batch) Empty() bool {
	return len(b.Jobs) == 0 && len(b.Clusters) == 0 && len(b.Pools) == 0 && len(b.Affinity) == 0 && len(b.Events) == 0
}

// CheckStarted is a rule both stores hold every job they write to: a job
// with attempts has started (the commit that makes its first attempt sets
// its StartedAt), and a Commit that gives a job no StartedAt keeps the one
// stored. So a job that never started has no attempts to look for.
func CheckStarted(j *berth.Job) error {
	if len(j.Attempts) > 0 && j.StartedAt.IsZero() {
		return fmt.Errorf("%w: job %s has attempts but no started_at", berth.ErrInvalid, j.ID)
	}
	return nil
}
