package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/store"
)

// t0 has nanoseconds, so a store that rounds times fails the round trips.
var t0 = time.Date(2026, 11, 24, 10, 30, 0, 123456789, time.UTC)

// at returns t0 plus n seconds and a few nanoseconds more, so every time
// of a fixture is distinct down to the nanosecond.
func at(n int) time.Time { return t0.Add(time.Duration(n)*time.Second + time.Duration(n)) }

// newJob returns a queued job with every submitted field set.
func newJob(id string) berth.Job {
	return berth.Job{
		ID:   id,
		Pool: "spark",
		Name: "phase-3 " + id,
		Steps: []berth.JobStep{
			{
				Step: berth.Step{
					Name: "transform",
					Args: []string{"spark-submit", "s3://bucket/phase3.py", "--bin", "7", "ünïcode \"quoted\""},
					Env:  map[string]string{"SPARK_HOME": "spark", "EMPTY": ""},
					Dir:  "work/phase3",
				},
				State: berth.StepPending,
			},
			{
				Step: berth.Step{Name: "load", Args: []string{"--table", "t"}, Jar: "s3://bucket/load.jar", MainClass: "com.example.Load",
					Properties: map[string]string{"mapreduce.job.maps": "4", "spark.ünïcode": "\"quoted\"", "empty": ""}},
				State: berth.StepPending,
			},
		},
		Priority:         7,
		Affinity:         "nightly-2026-11-24",
		AffinityRequired: true,
		Retries:          2,
		MaxInfraRetries:  4,
		Timeout:          berth.Duration(2*time.Hour + 3*time.Nanosecond),
		Resume:           berth.ResumeUnfinished,
		IdempotencyKey:   "nightly/phase_3/" + id,
		Labels:           map[string]string{"dag_id": "nightly", "task_id": "phase_3"},
		ExecutionRoleArn: "arn:aws:iam::123456789012:role/berth/" + id,
		Then:             []berth.Hint{{Pool: "spark-ünïcode", Jobs: 3}, {Pool: "small", Jobs: 1}},
		State:            berth.JobQueued,
		CreatedAt:        at(0),
		Attempts:         []berth.Attempt{},
	}
}

// ran returns j as the loop would write it after a first attempt on
// cluster that was lost, and a second that is running: every job field the
// loop owns is set, and the attempts carry every field too.
func ran(j berth.Job, cluster1, cluster2 string) berth.Job {
	exit := 137
	zero := 0
	j.State = berth.JobRunning
	j.ClusterID = cluster2
	j.Reason = berth.ReasonClusterLost
	j.StartedAt = at(10)
	j.NotBefore = at(11)
	j.UserFailures = 1
	j.InfraFailures = 2
	j.Cost = 1.0 / 3.0
	j.Steps = slices.Clone(j.Steps)
	j.Steps[0].State = berth.StepSucceeded
	j.Steps[1].State = berth.StepRunning
	j.Attempts = []berth.Attempt{
		{
			N: 1, ClusterID: cluster1, State: berth.AttemptFailed, Reason: berth.ReasonClusterLost,
			StartedAt: at(10), EndedAt: at(20), FirstStep: 0, Cost: 0.125,
			Steps: []berth.AttemptStep{
				{Index: 0, State: berth.StepSucceeded, ProviderID: "s-1", StartedAt: at(10), EndedAt: at(15), ExitCode: &zero},
				{Index: 1, State: berth.StepFailed, ProviderID: "s-2", StartedAt: at(15), EndedAt: at(20), ExitCode: &exit, Message: "container killed"},
			},
		},
		{
			N: 2, ClusterID: cluster2, State: berth.AttemptRunning,
			StartedAt: at(30), FirstStep: 1, Cost: 2.5e-7,
			Steps: []berth.AttemptStep{
				{Index: 1, State: berth.StepRunning, ProviderID: "s-3", StartedAt: at(30)},
			},
		},
	}
	return j
}

// newCluster returns a cluster with every stored field set.
func newCluster(id, pool string, state berth.ClusterState, created time.Time) berth.Cluster {
	return berth.Cluster{
		ID:           id,
		Pool:         pool,
		State:        state,
		ProviderID:   "j-" + id,
		Fallback:     true,
		Slots:        8,
		PricePerHour: 12.345678901234567,
		CreatedAt:    created,
		ReadyAt:      created.Add(90*time.Second + 1),
		IdleSince:    created.Add(5*time.Minute + 2),
		EndedAt:      created.Add(time.Hour + 3),
		Reason:       "spot capacity reclaimed",
		Capacity:     true,
		EndsLost:     true,
	}
}

func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func isErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want one wrapping %v", what, err, want)
	}
}

func create(t *testing.T, s store.Store, j berth.Job) berth.Job {
	t.Helper()
	got, created, err := s.CreateJob(t.Context(), j)
	if err != nil {
		t.Fatalf("CreateJob(%s): %v", j.ID, err)
	}
	if !created {
		t.Fatalf("CreateJob(%s): created false for a new job", j.ID)
	}
	return got
}

// loopEvents lists the events but the queued ones CreateJob writes: what
// the loop's commits and cancel requests wrote.
func loopEvents(t *testing.T, s store.Store, f store.EventFilter) []berth.Event {
	t.Helper()
	evs, err := s.ListEvents(t.Context(), f)
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(evs, func(e berth.Event) bool { return e.Kind == store.EventQueued })
}

// eventsOf lists the events of one kind.
func eventsOf(t *testing.T, s store.Store, kind string) []berth.Event {
	t.Helper()
	evs, err := s.ListEvents(t.Context(), store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(evs, func(e berth.Event) bool { return e.Kind != kind })
}

func commit(t *testing.T, s store.Store, b store.Batch) {
	t.Helper()
	if err := s.Commit(t.Context(), b); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func getJob(t *testing.T, s store.Store, id string) berth.Job {
	t.Helper()
	j, err := s.GetJob(t.Context(), id)
	if err != nil {
		t.Fatalf("GetJob(%s): %v", id, err)
	}
	return j
}

// stored is what GetJob should return for a job the loop committed: the
// store keeps its own Seq, CreatedAt and CancelRequested.
func stored(j berth.Job, seq int64, created time.Time, cancel bool) berth.Job {
	j.Seq, j.CreatedAt, j.CancelRequested = seq, created, cancel
	return j
}

// derivedZero clears the cluster fields a store need not keep.
func derivedZero(cs ...berth.Cluster) []berth.Cluster {
	out := make([]berth.Cluster, len(cs))
	for i, c := range cs {
		c.Running, c.Cost = 0, 0
		out[i] = c
	}
	return out
}

func ids(jobs []berth.Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

func clusterIDs(cs []berth.Cluster) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func jobID(i int) string { return fmt.Sprintf("job-%03d", i) }
