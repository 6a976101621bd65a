package memory

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/store"
	"github.com/berthhq/berth/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) func() store.Store {
		db := New()
		return func() store.Store { return open(t, db) }
	})
}

// open opens a store on db and closes it when the test ends.
func open(tb testing.TB, db *DB) *Store {
	s := db.Open()
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 987654321, time.UTC)

func job(id string) berth.Job {
	code := 0
	return berth.Job{
		ID: id, Pool: "small", State: berth.JobQueued, Resume: berth.ResumeFromStart, CreatedAt: t0, StartedAt: t0,
		MaxInfraRetries: berth.DefaultInfraRetry, IdempotencyKey: "key/" + id,
		Labels: map[string]string{"dag_id": "d"},
		Then:   []berth.Hint{{Pool: "big", Jobs: 2}},
		Steps: []berth.JobStep{{
			Step:  berth.Step{Name: "s", Args: []string{"true"}, Env: map[string]string{"A": "1"}, Properties: map[string]string{"p": "1"}},
			State: berth.StepPending,
		}},
		Attempts: []berth.Attempt{{
			N: 1, ClusterID: "cl-1", State: berth.AttemptRunning, StartedAt: t0,
			Steps: []berth.AttemptStep{{Index: 0, State: berth.StepRunning, ProviderID: "s-1", ExitCode: &code}},
		}},
	}
}

// scribble changes every part of j that a shallow copy would share: step
// args, env and properties, labels, the then list, attempts, their steps
// and exit codes.
func scribble(j *berth.Job) {
	j.Steps[0].Args[0] = "scribbled"
	j.Steps[0].Env["A"] = "scribbled"
	j.Steps[0].Properties["p"] = "scribbled"
	j.Labels["dag_id"] = "scribbled"
	j.Then[0].Pool = "scribbled"
	*j.Attempts[0].Steps[0].ExitCode = 99
	j.Attempts[0].Steps[0].ProviderID = "scribbled"
	j.Attempts[0].ClusterID = "scribbled"
}

// TestIsolation: what a caller gave the store or got from it shares no
// memory with what the store keeps.
func TestIsolation(t *testing.T) {
	ctx := t.Context()
	s := open(t, New())

	given := job("job-1")
	stored, _, err := s.CreateJob(ctx, given)
	if err != nil {
		t.Fatal(err)
	}
	want := stored
	want.Steps = []berth.JobStep{{Step: berth.Step{Name: "s", Args: []string{"true"}, Env: map[string]string{"A": "1"}, Properties: map[string]string{"p": "1"}}, State: berth.StepPending}}
	want.Labels = map[string]string{"dag_id": "d"}
	want.Then = []berth.Hint{{Pool: "big", Jobs: 2}}
	code := 0
	want.Attempts = []berth.Attempt{{
		N: 1, ClusterID: "cl-1", State: berth.AttemptRunning, StartedAt: t0,
		Steps: []berth.AttemptStep{{Index: 0, State: berth.StepRunning, ProviderID: "s-1", ExitCode: &code}},
	}}
	if _, _, err := s.CreateJob(ctx, job("job-2")); err != nil {
		t.Fatal(err)
	}

	// Each case gets a job from the store, or gives one to it, and
	// scribbles on it afterwards.
	cases := []struct {
		name string
		get  func(t *testing.T) berth.Job
	}{
		{"given to CreateJob", func(t *testing.T) berth.Job { return given }},
		{"returned by CreateJob", func(t *testing.T) berth.Job { return stored }},
		{"returned by CreateJob for a used key", func(t *testing.T) berth.Job {
			j, created, err := s.CreateJob(ctx, job("job-1"))
			if err != nil || created {
				t.Fatalf("CreateJob again: created %v, %v", created, err)
			}
			return j
		}},
		{"returned by GetJob", func(t *testing.T) berth.Job {
			j, err := s.GetJob(ctx, "job-1")
			if err != nil {
				t.Fatal(err)
			}
			return j
		}},
		{"returned by ListJobs", func(t *testing.T) berth.Job {
			jobs, _, err := s.ListJobs(ctx, store.JobFilter{})
			if err != nil {
				t.Fatal(err)
			}
			return jobs[1]
		}},
		{"returned by JobsAfter", func(t *testing.T) berth.Job {
			jobs, err := s.JobsAfter(ctx, 0, 1)
			if err != nil {
				t.Fatal(err)
			}
			return jobs[0]
		}},
		{"returned by Load", func(t *testing.T) berth.Job {
			st, err := s.Load(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return st.Jobs[0]
		}},
		{"given to Commit", func(t *testing.T) berth.Job {
			j := job("job-1")
			if err := s.Commit(ctx, store.Batch{Jobs: []berth.Job{j}}); err != nil {
				t.Fatal(err)
			}
			return j
		}},
		{"returned by RequestCancel", func(t *testing.T) berth.Job {
			j, err := s.RequestCancel(ctx, "job-1", t0)
			if err != nil {
				t.Fatal(err)
			}
			want.CancelRequested = true
			return j
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := c.get(t)
			scribble(&j)
			got, err := s.GetJob(ctx, "job-1")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("stored job changed:\n got %+v\nwant %+v", got, want)
			}
		})
	}

	t.Run("returned by ClusterAttempts", func(t *testing.T) {
		as, err := s.ClusterAttempts(ctx, "cl-1")
		if err != nil || len(as) != 2 {
			t.Fatalf("ClusterAttempts: %+v, %v", as, err)
		}
		*as[0].Steps[0].ExitCode = 99
		as[0].Steps[0].ProviderID = "scribbled"
		again, err := s.ClusterAttempts(ctx, "cl-1")
		if err != nil {
			t.Fatal(err)
		}
		if got := again[0].Steps[0]; *got.ExitCode != 0 || got.ProviderID != "s-1" {
			t.Errorf("stored attempt step changed: %+v (exit code %d)", got, *got.ExitCode)
		}
	})

	t.Run("Load's affinity", func(t *testing.T) {
		if err := s.Commit(ctx, store.Batch{Affinity: map[string]string{"a": "cl-1"}}); err != nil {
			t.Fatal(err)
		}
		st, err := s.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st.Affinity["a"] = "scribbled"
		st.Affinity["b"] = "scribbled"
		again, err := s.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(again.Affinity, map[string]string{"a": "cl-1"}) {
			t.Errorf("stored affinity changed: %v", again.Affinity)
		}
	})
}

// TestReopen: a store closed (a server that crashed or stopped) leaves the
// data and the lock to the next store opened on the same DB, and answers
// nothing more itself.
func TestReopen(t *testing.T) {
	ctx := t.Context()
	db := New()
	s := db.Open()
	if _, err := s.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	run := job("job-1")
	if _, _, err := s.CreateJob(ctx, run); err != nil {
		t.Fatal(err)
	}
	done := job("job-2")
	if _, _, err := s.CreateJob(ctx, done); err != nil {
		t.Fatal(err)
	}
	done.State, done.EndedAt = berth.JobSucceeded, t0.Add(time.Second)
	err := s.Commit(ctx, store.Batch{
		Jobs:     []berth.Job{done},
		Clusters: []berth.Cluster{{ID: "cl-1", Pool: "small", State: berth.ClusterReady, Slots: 2, CreatedAt: t0}},
		Pools:    []berth.PoolState{{Pool: "small", BlockedAt: t0, BlockedReason: "broken", BlockedSpec: "f00"}},
		Affinity: map[string]string{"a": "cl-1"},
		Events:   []berth.Event{{At: t0, JobID: run.ID, ClusterID: "cl-1", Kind: "placed"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RequestCancel(ctx, run.ID, t0); err != nil {
		t.Fatal(err)
	}
	before, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eventsBefore, err := s.ListEvents(ctx, store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Every call of the closed store is berth.ErrUnavailable.
	calls := []struct {
		name string
		call func() error
	}{
		{"CreateJob", func() error { _, _, err := s.CreateJob(ctx, job("job-3")); return err }},
		{"GetJob", func() error { _, err := s.GetJob(ctx, run.ID); return err }},
		{"ListJobs", func() error { _, _, err := s.ListJobs(ctx, store.JobFilter{}); return err }},
		{"RequestCancel", func() error { _, err := s.RequestCancel(ctx, run.ID, t0); return err }},
		{"GetCluster", func() error { _, err := s.GetCluster(ctx, "cl-1"); return err }},
		{"ListClusters", func() error { _, err := s.ListClusters(ctx, store.ClusterFilter{}); return err }},
		{"ClusterAttempts", func() error { _, err := s.ClusterAttempts(ctx, "cl-1"); return err }},
		{"ListEvents", func() error { _, err := s.ListEvents(ctx, store.EventFilter{}); return err }},
		{"Load", func() error { _, err := s.Load(ctx); return err }},
		{"JobsAfter", func() error { _, err := s.JobsAfter(ctx, 0, 10); return err }},
		{"CancelRequests", func() error { _, err := s.CancelRequests(ctx); return err }},
		{"Commit", func() error { return s.Commit(ctx, store.Batch{Jobs: []berth.Job{run}}) }},
		{"empty Commit", func() error { return s.Commit(ctx, store.Batch{}) }},
		{"Lock", func() error { _, err := s.Lock(ctx); return err }},
		{"Ping", func() error { return s.Ping(ctx) }},
	}
	for _, c := range calls {
		err := c.call()
		if !errors.Is(err, berth.ErrUnavailable) || berth.Public(err) != "the store is closed" {
			t.Errorf("%s after Close: error %v, want berth.ErrUnavailable saying the store is closed", c.name, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	s = open(t, db)
	release, err := s.Lock(ctx)
	if err != nil {
		t.Fatalf("Lock after the holder closed: %v", err)
	}
	defer release()
	after, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(after, before) {
		t.Errorf("Load after reopening:\n got %+v\nwant %+v", after, before)
	}
	eventsAfter, err := s.ListEvents(ctx, store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(eventsAfter, eventsBefore) {
		t.Errorf("events after reopening:\n got %+v\nwant %+v", eventsAfter, eventsBefore)
	}
	if _, err := s.GetJob(ctx, done.ID); err != nil {
		t.Errorf("ended job after reopening: %v", err)
	}
	j, _, err := s.CreateJob(ctx, job("job-3"))
	if err != nil {
		t.Fatal(err)
	}
	if j.Seq != before.MaxSeq+1 {
		t.Errorf("Seq after reopening %d, want %d", j.Seq, before.MaxSeq+1)
	}
}

// TestDatabasesApart: two DBs share neither data nor the lock.
func TestDatabasesApart(t *testing.T) {
	ctx := t.Context()
	a, b := open(t, New()), open(t, New())
	if _, err := a.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lock(ctx); err != nil {
		t.Errorf("Lock on another DB: %v", err)
	}
	if _, _, err := a.CreateJob(ctx, job("job-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetJob(ctx, "job-1"); !errors.Is(err, berth.ErrNotFound) {
		t.Errorf("GetJob on another DB: %v, want not found", err)
	}
}

// TestErrors: the public messages are the sqlite driver's, so the API says
// the same over either store.
func TestErrors(t *testing.T) {
	s := open(t, New())
	ctx := t.Context()
	ended := job("job-2")
	if _, _, err := s.CreateJob(ctx, ended); err != nil {
		t.Fatal(err)
	}
	ended.State, ended.EndedAt = berth.JobSucceeded, t0
	if err := s.Commit(ctx, store.Batch{Jobs: []berth.Job{ended}}); err != nil {
		t.Fatal(err)
	}
	dup := job("job-2")
	dup.IdempotencyKey = ""
	cancelled, cancel := context.WithCancel(ctx)
	cancel()

	cases := []struct {
		name   string
		err    error
		want   error
		public string
	}{
		{"duplicate id", func() error { _, _, err := s.CreateJob(ctx, dup); return err }(), berth.ErrConflict, ""},
		{"create with an empty id", func() error { _, _, err := s.CreateJob(ctx, berth.Job{}); return err }(), berth.ErrInvalid, ""},
		{"cancelled context", func() error { _, err := s.GetJob(cancelled, "job-2"); return err }(), context.Canceled, ""},
		{"commit with an empty cluster id", s.Commit(ctx, store.Batch{Clusters: []berth.Cluster{{Pool: "p"}}}), berth.ErrInvalid, ""},
		{"commit with an empty pool", s.Commit(ctx, store.Batch{Pools: []berth.PoolState{{}}}), berth.ErrInvalid, ""},
		{"commit of an unknown job", s.Commit(ctx, store.Batch{Jobs: []berth.Job{job("job-4242")}}), berth.ErrNotFound, "job job-4242 not found"},
		{"negative event limit", func() error { _, err := s.ListEvents(ctx, store.EventFilter{Limit: -1}); return err }(), berth.ErrInvalid, "limit -1 is negative"},
		{"negative job limit", func() error { _, _, err := s.ListJobs(ctx, store.JobFilter{Limit: -1}); return err }(), berth.ErrInvalid, "limit -1 is negative"},
		{"negative JobsAfter limit", func() error { _, err := s.JobsAfter(ctx, 0, -1); return err }(), berth.ErrInvalid, ""},
		{"unknown job", func() error { _, err := s.GetJob(ctx, "job-4242"); return err }(), berth.ErrNotFound, "job job-4242 not found"},
		{"unknown cluster", func() error { _, err := s.GetCluster(ctx, "cl-4242"); return err }(), berth.ErrNotFound, "cluster cl-4242 not found"},
		{"cancel of an unknown job", func() error { _, err := s.RequestCancel(ctx, "job-4242", t0); return err }(), berth.ErrNotFound, "job job-4242 not found"},
		{"cancel of an ended job", func() error { _, err := s.RequestCancel(ctx, "job-2", t0); return err }(), berth.ErrConflict, "job job-2 has already ended (succeeded)"},
		{"bad cursor", func() error { _, _, err := s.ListJobs(ctx, store.JobFilter{Cursor: "x"}); return err }(), berth.ErrInvalid, `cursor "x" is not one a listing of jobs handed out`},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: error %v, want one wrapping %v", c.name, c.err, c.want)
		}
		if got := berth.Public(c.err); got != c.public {
			t.Errorf("%s: public message %q, want %q", c.name, got, c.public)
		}
	}
}

// TestCommitRewrites covers what the loop never does: a commit that names
// another idempotency key, a cluster whose CreatedAt moves, attempts out
// of order or repeated.
func TestCommitRewrites(t *testing.T) {
	ctx := t.Context()
	s := open(t, New())
	a, _, err := s.CreateJob(ctx, job("job-a"))
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := s.CreateJob(ctx, job("job-b"))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("key kept", func(t *testing.T) {
		// A job's key is its submission's: a commit that names another
		// leaves it, and the key still finds the job.
		j := b
		j.IdempotencyKey = a.IdempotencyKey
		if err := s.Commit(ctx, store.Batch{Jobs: []berth.Job{j}}); err != nil {
			t.Fatal(err)
		}
		again := job("job-c")
		again.IdempotencyKey = b.IdempotencyKey
		got, created, err := s.CreateJob(ctx, again)
		if err != nil || created || got.ID != "job-b" {
			t.Errorf("CreateJob with job-b's key: %s, created %v, %v; want job-b", got.ID, created, err)
		}
	})
	t.Run("cluster moves", func(t *testing.T) {
		for i, id := range []string{"cl-1", "cl-2", "cl-3"} {
			c := berth.Cluster{ID: id, Pool: "p", State: berth.ClusterReady, CreatedAt: t0.Add(time.Duration(i) * time.Second)}
			if err := s.Commit(ctx, store.Batch{Clusters: []berth.Cluster{c}}); err != nil {
				t.Fatal(err)
			}
		}
		moved := berth.Cluster{ID: "cl-1", Pool: "p", State: berth.ClusterLost, CreatedAt: t0.Add(time.Hour)}
		if err := s.Commit(ctx, store.Batch{Clusters: []berth.Cluster{moved}}); err != nil {
			t.Fatal(err)
		}
		cs, err := s.ListClusters(ctx, store.ClusterFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(ids(cs)); got != "[cl-2 cl-3 cl-1]" {
			t.Errorf("clusters %s, want [cl-2 cl-3 cl-1]", got)
		}
		st, err := s.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(ids(st.Clusters)); got != "[cl-2 cl-3]" {
			t.Errorf("live clusters %s, want [cl-2 cl-3]", got)
		}
	})
	t.Run("attempts", func(t *testing.T) {
		j := a
		j.Attempts = []berth.Attempt{
			{N: 3, ClusterID: "cl-3", State: berth.AttemptRunning},
			{N: 1, ClusterID: "cl-1", State: berth.AttemptRunning},
			{N: 1, ClusterID: "cl-2", State: berth.AttemptFailed},
		}
		if err := s.Commit(ctx, store.Batch{Jobs: []berth.Job{j}}); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetJob(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := []berth.Attempt{j.Attempts[2], j.Attempts[0]}
		if !reflect.DeepEqual(got.Attempts, want) {
			t.Errorf("attempts %+v, want %+v", got.Attempts, want)
		}
		// The job left cl-1: the attempt that ran there was overwritten.
		for cluster, want := range map[string]int{"cl-1": 0, "cl-2": 1, "cl-3": 1} {
			as, err := s.ClusterAttempts(ctx, cluster)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, at := range as {
				if at.JobID == j.ID {
					n++
				}
			}
			if n != want {
				t.Errorf("ClusterAttempts(%s): %d of %s, want %d: %+v", cluster, n, j.ID, want, as)
			}
		}
	})
}

func ids(cs []berth.Cluster) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func BenchmarkCreateJob(b *testing.B) { storetest.BenchCreateJob(b, open(b, New())) }

// BenchmarkCommit commits one loop pass that moves 100 jobs along, the
// same as the sqlite driver's.
func BenchmarkCommit(b *testing.B) { storetest.BenchCommit(b, open(b, New())) }
