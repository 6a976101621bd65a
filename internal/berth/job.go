package berth

import (
	"strconv"
	"strings"
	"time"
)

// JobState is where a job is in its life.
type JobState string

const (
	JobQueued    JobState = "queued"
	JobRunning   JobState = "running"
	JobSucceeded JobState = "succeeded"
	JobFailed    JobState = "failed"
	JobCancelled JobState = "cancelled"
)

// JobStates lists every job state, in life order.
var JobStates = []JobState{JobQueued, JobRunning, JobSucceeded, JobFailed, JobCancelled}

// Terminal reports whether a job in this state will never change again.
func (s JobState) Terminal() bool {
	return s == JobSucceeded || s == JobFailed || s == JobCancelled
}

// Valid reports whether s is a known job state.
func (s JobState) Valid() bool {
	for _, v := range JobStates {
		if s == v {
			return true
		}
	}
	return false
}

var jobMoves = map[JobState][]JobState{
	// A queued job can fail without running: its required affinity cluster
	// is gone, or it was cancelled.
	JobQueued: {JobRunning, JobFailed, JobCancelled},
	// A running job goes back to queued when its cluster is lost or a step
	// failed with retries left.
	JobRunning: {JobQueued, JobSucceeded, JobFailed, JobCancelled},
}

// CanMove reports whether a job may go from one state to another.
func (s JobState) CanMove(to JobState) bool {
	for _, v := range jobMoves[s] {
		if v == to {
			return true
		}
	}
	return false
}

// StepState is where one step of a job, or of an attempt, is.
type StepState string

const (
	StepPending   StepState = "pending"
	StepRunning   StepState = "running"
	StepSucceeded StepState = "succeeded"
	StepFailed    StepState = "failed"
	StepCancelled StepState = "cancelled"
)

// Terminal reports whether a step in this state has ended.
func (s StepState) Terminal() bool {
	return s == StepSucceeded || s == StepFailed || s == StepCancelled
}

// Resume says where a job's next attempt starts after its cluster was lost.
type Resume string

const (
	// ResumeFromStart runs every step again: the job is atomic.
	ResumeFromStart Resume = "from_start"
	// ResumeUnfinished skips the steps that already succeeded.
	ResumeUnfinished Resume = "unfinished"
)

// Reason is why an attempt ended, or why a job failed without one.
type Reason string

const (
	ReasonSucceeded   Reason = "succeeded"
	ReasonStepFailed  Reason = "step_failed"
	ReasonClusterLost Reason = "cluster_lost"
	ReasonTimeout     Reason = "timeout"
	ReasonCancelled   Reason = "cancelled"
	// ReasonAffinityLost fails a job whose affinity_required cluster is gone.
	ReasonAffinityLost Reason = "affinity_lost"
	// ReasonProviderError ends an attempt whose step the provider would not
	// take; like a cluster loss it is charged to max_infra_retries.
	ReasonProviderError Reason = "provider_error"
	// ReasonInfraRetries fails a job whose clusters were lost more often than
	// max_infra_retries allows.
	ReasonInfraRetries Reason = "infra_retries_exhausted"
)

// Step is one command of a job. On the local provider Args is the argv of a
// process; on EMR it is the command-runner.jar arguments, or the arguments of
// Jar's MainClass when Jar is set.
type Step struct {
	Name      string   `json:"name"`
	Args      []string `json:"args"`
	Jar       string   `json:"jar,omitempty"`
	MainClass string   `json:"main_class,omitempty"`
	// Properties are Java properties for a jar step (EMR's
	// HadoopJarStep.Properties).
	Properties map[string]string `json:"properties,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	Dir        string            `json:"dir,omitempty"`
}

// JobStep is a step as a job reports it: the command and how far it got in
// the job's latest attempt that ran it.
type JobStep struct {
	Step
	State StepState `json:"state"`
}

// Job is the unit a workflow task submits: steps that run one after another
// on one cluster of the named pool.
type Job struct {
	ID               string            `json:"id"`
	Pool             string            `json:"pool"`
	Name             string            `json:"name,omitempty"`
	Steps            []JobStep         `json:"steps"`
	Priority         int               `json:"priority"`
	Affinity         string            `json:"affinity,omitempty"`
	AffinityRequired bool              `json:"affinity_required,omitempty"`
	Retries          int               `json:"retries"`
	MaxInfraRetries  int               `json:"max_infra_retries"`
	Timeout          Duration          `json:"timeout,omitzero"`
	Resume           Resume            `json:"resume"`
	IdempotencyKey   string            `json:"idempotency_key,omitempty"`
	Labels           map[string]string `json:"labels,omitempty"`
	// Then is the work the submitter says will follow this job; the
	// scheduler warms clusters for it (see Hint).
	Then []Hint `json:"then,omitempty"`
	// ExecutionRoleArn is the IAM role the job's steps run as (an EMR
	// runtime role), empty for the cluster's own. Only EMR pools use it;
	// the local and sim providers ignore it.
	ExecutionRoleArn string `json:"execution_role_arn,omitempty"`

	State     JobState `json:"state"`
	ClusterID string   `json:"cluster_id,omitempty"`
	// Reason says why a failed or cancelled job ended.
	Reason          Reason    `json:"reason,omitempty"`
	CreatedAt       time.Time `json:"created_at"`
	StartedAt       time.Time `json:"started_at,omitzero"`
	EndedAt         time.Time `json:"ended_at,omitzero"`
	NotBefore       time.Time `json:"not_before,omitzero"`
	UserFailures    int       `json:"user_failures"`
	InfraFailures   int       `json:"infra_failures"`
	CancelRequested bool      `json:"cancel_requested,omitempty"`
	Attempts        []Attempt `json:"attempts"`
	// Cost is the job's share of its clusters' cost: the slot-seconds its
	// attempts held, at each cluster's price.
	Cost float64 `json:"cost"`
	// Wait says why a queued job waits and when it is expected to start
	// (wait_reason, wait_message, wait_cluster, wait_until, eta). It is
	// derived when the job is read, not stored.
	Wait

	// Seq is the store's submission order; the loop picks up new jobs by it.
	Seq int64 `json:"-"`
}

// SetRun copies from's run state into j: what changes while the job runs
// (state, cluster, reason, times, failure counts, cost, the steps with
// their states), not what its submission fixed, nor the attempts, which a
// store merges by number. Steps are shared, not copied.
func (j *Job) SetRun(from *Job) {
	j.State, j.ClusterID, j.Reason = from.State, from.ClusterID, from.Reason
	j.StartedAt, j.EndedAt, j.NotBefore = from.StartedAt, from.EndedAt, from.NotBefore
	j.UserFailures, j.InfraFailures, j.Cost = from.UserFailures, from.InfraFailures, from.Cost
	j.Steps = from.Steps
}

// Dormant reports whether a job is nothing yet but its place in its pool's
// queue: queued, never started, with no affinity, no not_before and no
// cancel request. Placement orders such a job by its DormantJob alone, so
// a long queue is kept in memory as those, and each job is read whole only
// when it nears the head of its queue.
func (j *Job) Dormant() bool {
	return j.State == JobQueued && j.StartedAt.IsZero() && len(j.Attempts) == 0 && !j.CancelRequested &&
		j.NotBefore.IsZero() && j.Affinity == "" && !j.AffinityRequired
}

// DormantJob is what placement needs of a dormant job (Job.Dormant).
type DormantJob struct {
	ID        string
	Pool      string
	Priority  int
	CreatedAt time.Time
}

// CurrentAttempt returns the job's running attempt, or nil.
func (j *Job) CurrentAttempt() *Attempt {
	if n := len(j.Attempts); n > 0 && j.Attempts[n-1].State == AttemptRunning {
		return &j.Attempts[n-1]
	}
	return nil
}

// NextStep is the index of the first step the next attempt runs.
func (j *Job) NextStep() int {
	if j.Resume != ResumeUnfinished {
		return 0
	}
	for i, s := range j.Steps {
		if s.State != StepSucceeded {
			return i
		}
	}
	return len(j.Steps)
}

// AttemptState is where one attempt is.
type AttemptState string

const (
	AttemptRunning   AttemptState = "running"
	AttemptSucceeded AttemptState = "succeeded"
	AttemptFailed    AttemptState = "failed"
	AttemptCancelled AttemptState = "cancelled"
)

// Attempt is one try of a job on one cluster.
type Attempt struct {
	N         int           `json:"n"`
	ClusterID string        `json:"cluster_id"`
	State     AttemptState  `json:"state"`
	Reason    Reason        `json:"reason,omitempty"`
	StartedAt time.Time     `json:"started_at"`
	EndedAt   time.Time     `json:"ended_at,omitzero"`
	FirstStep int           `json:"first_step"`
	Steps     []AttemptStep `json:"steps"`
	Cost      float64       `json:"cost"`
	// JobID is filled in where an attempt is listed outside its job.
	JobID string `json:"job_id,omitempty"`
}

// AttemptStep is one step's run within an attempt.
type AttemptStep struct {
	Index int       `json:"index"`
	State StepState `json:"state"`
	// ProviderID is the provider's id for the step; empty until the
	// provider accepted it.
	ProviderID string    `json:"provider_id,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	EndedAt    time.Time `json:"ended_at,omitzero"`
	ExitCode   *int      `json:"exit_code,omitempty"`
	Message    string    `json:"message,omitempty"`
}

// The labels a workflow engine's jobs carry to say where in a pipeline
// they stand (the Airflow provider sets them): the DAG, its task, the DAG
// run, and the index of a mapped task's instance. Berth learns pipelines'
// shapes and run times from them.
const (
	LabelDAG      = "dag_id"
	LabelTask     = "task_id"
	LabelRun      = "run_id"
	LabelMapIndex = "map_index"
)

// StepName is the name a step of an attempt carries on the provider. It
// carries the attempt's identity, so that after a crash the restarted service
// recognises the step it had submitted and adopts it instead of submitting it
// again.
func StepName(jobID string, attempt, step int) string {
	// Named on every pass for every running job: concatenation, not Sprintf.
	return "berth:" + jobID + ":" + strconv.Itoa(attempt) + ":" + strconv.Itoa(step)
}

// ParseStepName reads a name made by StepName; ok is false for any other.
func ParseStepName(name string) (jobID string, attempt, step int, ok bool) {
	parts := strings.Split(name, ":")
	if len(parts) != 4 || parts[0] != "berth" || !ValidID(parts[1]) {
		return "", 0, 0, false
	}
	a, err1 := strconv.Atoi(parts[2])
	s, err2 := strconv.Atoi(parts[3])
	if err1 != nil || err2 != nil || a < 1 || s < 0 {
		return "", 0, 0, false
	}
	return parts[1], a, s, true
}

// Event is one entry of a job's or cluster's history.
type Event struct {
	Seq       int64     `json:"seq"`
	At        time.Time `json:"at"`
	JobID     string    `json:"job_id,omitempty"`
	ClusterID string    `json:"cluster_id,omitempty"`
	Kind      string    `json:"kind"`
	Message   string    `json:"message"`
}
