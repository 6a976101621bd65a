package api

import (
	"context"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/store"
)

// Service is what the API needs from Berth's service. Errors wrap berth's
// sentinel errors; anything else is an internal error.
type Service interface {
	// Submit validates and stores a job; created is false when the
	// idempotency key matched an existing job, which is returned instead.
	Submit(ctx context.Context, spec berth.JobSpec) (job berth.Job, created bool, err error)
	// SubmitBatch validates and stores 1 to berth.MaxBatch jobs, all or
	// none, and answers in their order.
	SubmitBatch(ctx context.Context, specs []berth.JobSpec) ([]berth.Submitted, error)
	Job(ctx context.Context, id string) (berth.Job, error)
	// WaitJob returns once the job has ended or wait has passed, whichever
	// comes first, or when ctx ends.
	WaitJob(ctx context.Context, id string, wait time.Duration) (berth.Job, error)
	Jobs(ctx context.Context, f store.JobFilter) (jobs []berth.Job, next string, err error)
	Cancel(ctx context.Context, id string) (berth.Job, error)
	// JobLogs returns one step's logs of one attempt; attempt 0 means the
	// latest attempt.
	JobLogs(ctx context.Context, id string, attempt, step int) (berth.Logs, error)
	JobEvents(ctx context.Context, id string) ([]berth.Event, error)

	Pools(ctx context.Context) ([]berth.PoolStatus, error)
	Pool(ctx context.Context, name string) (berth.PoolStatus, error)
	// Unblock lifts the block a permanent provider failure put on a pool
	// and returns the pool's status once that is committed. A pool that
	// is not blocked is returned as it is: unblocking is idempotent.
	Unblock(ctx context.Context, name string) (berth.PoolStatus, error)
	Clusters(ctx context.Context, f store.ClusterFilter) ([]berth.Cluster, error)
	Cluster(ctx context.Context, id string) (berth.ClusterDetail, error)
	Drain(ctx context.Context, id string) (berth.Cluster, error)
	Terminate(ctx context.Context, id string) (berth.Cluster, error)
	// Kill injects a fault: berth.ErrUnsupported when the cluster's
	// provider cannot.
	Kill(ctx context.Context, id string) (berth.Cluster, error)

	// Ready returns nil when the service is ready to serve (store open,
	// loop running), berth.ErrUnavailable otherwise.
	Ready(ctx context.Context) error
}
