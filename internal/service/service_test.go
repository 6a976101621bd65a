package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/store"
	"github.com/berthhq/berth/internal/store/sqlite"
	"github.com/berthhq/berth/internal/wait"
)

const deadline = 20 * time.Second

// harness is one service over a real SQLite store and a fake provider.
type harness struct {
	t    *testing.T
	path string
	st   store.Store
	fake *fakeProvider
	pool berth.Pool
	svc  *Service
	// wrap, when set, stands between the service and the store.
	wrap func(store.Store) store.Store
}

func testPool() berth.Pool {
	return berth.Pool{Name: "p", Provider: "fake", Slots: 2, MinClusters: 0, MaxClusters: 2, PricePerHour: 3.6}
}

func newHarness(t *testing.T, pool berth.Pool, fake *fakeProvider) *harness {
	t.Helper()
	h := &harness{t: t, path: filepath.Join(t.TempDir(), "berth.db"), fake: fake, pool: pool}
	h.start()
	return h
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// start opens the store and starts a service on it, as a (re)started
// server would.
func (h *harness) start() {
	h.t.Helper()
	st, err := sqlite.Open(context.Background(), h.path, testLog(h.t))
	if err != nil {
		h.t.Fatal(err)
	}
	var use store.Store = st
	if h.wrap != nil {
		use = h.wrap(st)
	}
	svc, err := New(Options{
		Store: use, Pools: []Pool{{Pool: h.pool, Provider: h.fake}}, Log: testLog(h.t),
		Tick: 50 * time.Millisecond, RetryBackoff: 20 * time.Millisecond,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	svc.callRetry = 5 * time.Millisecond
	if err := svc.Start(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	h.st, h.svc = st, svc
	h.t.Cleanup(h.stop)
}

func (h *harness) stop() {
	if h.svc == nil {
		return
	}
	h.svc.Stop()
	h.st.Close()
	h.svc = nil
}

func (h *harness) submit(spec berth.JobSpec) berth.Job {
	h.t.Helper()
	if spec.Pool == "" {
		spec.Pool = h.pool.Name
	}
	j, _, err := h.svc.Submit(context.Background(), spec)
	if err != nil {
		h.t.Fatal(err)
	}
	return j
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	wait.For(t, deadline, what, cond)
}

func (h *harness) job(id string) berth.Job {
	h.t.Helper()
	j, err := h.svc.Job(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return j
}

func (h *harness) waitState(id string, want berth.JobState) berth.Job {
	h.t.Helper()
	var j berth.Job
	waitFor(h.t, "job "+id+" "+string(want), func() bool {
		j = h.job(id)
		return j.State == want
	})
	return j
}

// finish waits for a step to run on the provider and ends it.
func (h *harness) finish(jobID string, attempt, step, exit int) {
	h.t.Helper()
	name := berth.StepName(jobID, attempt, step)
	waitFor(h.t, "step "+name+" to run", func() bool { return h.fake.finish(name, exit) })
}

// waitReady waits until the pool has exactly n ready clusters and returns
// them.
func (h *harness) waitReady(n int) []berth.Cluster {
	h.t.Helper()
	var cs []berth.Cluster
	waitFor(h.t, fmt.Sprintf("%d ready clusters", n), func() bool {
		var err error
		cs, err = h.svc.Clusters(context.Background(), store.ClusterFilter{State: berth.ClusterReady})
		return err == nil && len(cs) == n
	})
	return cs
}

// submitRunning submits a job and waits until its first attempt's first
// step runs at the provider; it returns the job and that step's name.
func (h *harness) submitRunning(spec berth.JobSpec) (berth.Job, string) {
	h.t.Helper()
	j := h.submit(spec)
	name := berth.StepName(j.ID, 1, 0)
	waitFor(h.t, "step "+name+" to run", func() bool { return h.fake.started(name) == 1 })
	return j, name
}

func oneStep(args ...string) []berth.Step {
	return []berth.Step{{Name: "s", Args: args}}
}

func TestJobRunsItsStepsInOrder(t *testing.T) {
	h := newHarness(t, testPool(), newFake(true))
	j := h.submit(berth.JobSpec{Steps: []berth.Step{{Name: "a", Args: []string{"a"}}, {Name: "b", Args: []string{"b"}}}})
	if j.State != berth.JobQueued {
		t.Fatalf("submitted job is %s, want queued", j.State)
	}
	h.finish(j.ID, 1, 0, 0)
	// Step b starts only after a succeeded.
	h.finish(j.ID, 1, 1, 0)
	j = h.waitState(j.ID, berth.JobSucceeded)
	if len(j.Attempts) != 1 || j.Attempts[0].Reason != berth.ReasonSucceeded {
		t.Fatalf("attempts = %+v", j.Attempts)
	}
	for i, s := range j.Steps {
		if s.State != berth.StepSucceeded {
			t.Errorf("step %d is %s", i, s.State)
		}
	}
	if j.Cost <= 0 {
		t.Errorf("job cost = %v, want > 0", j.Cost)
	}
	if n := h.fake.started(berth.StepName(j.ID, 1, 1)); n != 1 {
		t.Errorf("step 1 started %d times", n)
	}
}

func TestIdempotentSubmit(t *testing.T) {
	h := newHarness(t, testPool(), newFake(true))
	spec := berth.JobSpec{Pool: "p", Steps: oneStep("x"), IdempotencyKey: "dag/task/1"}
	a, created, err := h.svc.Submit(context.Background(), spec)
	if err != nil || !created {
		t.Fatalf("first submit: created=%v err=%v", created, err)
	}
	b, created, err := h.svc.Submit(context.Background(), spec)
	if err != nil || created || b.ID != a.ID {
		t.Fatalf("second submit: id=%s (first %s) created=%v err=%v", b.ID, a.ID, created, err)
	}
}

func TestSubmitRejectsBadInput(t *testing.T) {
	h := newHarness(t, testPool(), newFake(true))
	for _, tc := range []struct {
		spec berth.JobSpec
		want error
	}{
		{berth.JobSpec{Pool: "nope", Steps: oneStep("x")}, berth.ErrUnprocessable},
		{berth.JobSpec{Pool: "p"}, berth.ErrInvalid},
		{berth.JobSpec{Pool: "p", Steps: oneStep("x"), Retries: -1}, berth.ErrInvalid},
	} {
		if _, _, err := h.svc.Submit(context.Background(), tc.spec); !errors.Is(err, tc.want) {
			t.Errorf("Submit(%+v) = %v, want %v", tc.spec, err, tc.want)
		}
	}
	jobs, _, err := h.svc.Jobs(context.Background(), store.JobFilter{})
	if err != nil || len(jobs) != 0 {
		t.Fatalf("bad submissions stored %d jobs (err %v)", len(jobs), err)
	}
}

func TestStepFailureIsRetriedThenFails(t *testing.T) {
	h := newHarness(t, testPool(), newFake(true))
	j := h.submit(berth.JobSpec{Steps: oneStep("x"), Retries: 1})
	h.finish(j.ID, 1, 0, 3)
	h.finish(j.ID, 2, 0, 3)
	j = h.waitState(j.ID, berth.JobFailed)
	if j.UserFailures != 2 || j.InfraFailures != 0 || len(j.Attempts) != 2 {
		t.Fatalf("user=%d infra=%d attempts=%d", j.UserFailures, j.InfraFailures, len(j.Attempts))
	}
	for _, a := range j.Attempts {
		if a.Reason != berth.ReasonStepFailed {
			t.Errorf("attempt %d reason %s", a.N, a.Reason)
		}
	}
	if j.Reason != berth.ReasonStepFailed {
		t.Errorf("job reason %s", j.Reason)
	}
}

func TestLostClusterRequeuesFromInfraBudget(t *testing.T) {
	fake := newFake(true)
	h := newHarness(t, testPool(), fake)
	j, _ := h.submitRunning(berth.JobSpec{Steps: oneStep("x"), Retries: 0})
	fake.lose("fake-"+h.job(j.ID).ClusterID, "spot", true)
	h.finish(j.ID, 2, 0, 0)
	j = h.waitState(j.ID, berth.JobSucceeded)
	if len(j.Attempts) != 2 || j.Attempts[0].Reason != berth.ReasonClusterLost {
		t.Fatalf("attempts = %+v", j.Attempts)
	}
	if j.Attempts[0].ClusterID == j.Attempts[1].ClusterID {
		t.Errorf("second attempt ran on the lost cluster")
	}
	if j.InfraFailures != 1 || j.UserFailures != 0 {
		t.Errorf("infra=%d user=%d; a loss must not use up retries", j.InfraFailures, j.UserFailures)
	}
	c, err := h.svc.Cluster(context.Background(), j.Attempts[0].ClusterID)
	if err != nil || c.State != berth.ClusterLost || !c.Capacity {
		t.Fatalf("lost cluster = %+v, %v", c.Cluster, err)
	}
}

func TestInfraRetriesRunOut(t *testing.T) {
	fake := newFake(true)
	h := newHarness(t, testPool(), fake)
	zero := 0
	j := h.submit(berth.JobSpec{Steps: oneStep("x"), MaxInfraRetries: &zero})
	waitFor(t, "step to run", func() bool { return len(fake.running()) == 1 })
	fake.lose("fake-"+h.job(j.ID).ClusterID, "instance failure", false)
	j = h.waitState(j.ID, berth.JobFailed)
	if j.Reason != berth.ReasonInfraRetries {
		t.Fatalf("reason = %s", j.Reason)
	}
}

func TestResumeUnfinishedSkipsDoneSteps(t *testing.T) {
	fake := newFake(true)
	h := newHarness(t, testPool(), fake)
	j := h.submit(berth.JobSpec{Resume: berth.ResumeUnfinished, Steps: []berth.Step{{Args: []string{"a"}}, {Args: []string{"b"}}}})
	h.finish(j.ID, 1, 0, 0)
	name := berth.StepName(j.ID, 1, 1)
	waitFor(t, "step 1 to run", func() bool { return fake.started(name) == 1 })
	fake.lose("fake-"+h.job(j.ID).ClusterID, "spot", true)
	h.finish(j.ID, 2, 1, 0)
	j = h.waitState(j.ID, berth.JobSucceeded)
	if j.Attempts[1].FirstStep != 1 {
		t.Fatalf("second attempt started at step %d, want 1", j.Attempts[1].FirstStep)
	}
	if n := fake.started(berth.StepName(j.ID, 2, 0)); n != 0 {
		t.Fatalf("step 0 ran again %d times", n)
	}
}

func TestCancel(t *testing.T) {
	pool := testPool()
	pool.MaxClusters = 1
	pool.Slots = 1
	fake := newFake(true)
	h := newHarness(t, pool, fake)
	running := h.submit(berth.JobSpec{Steps: oneStep("x")})
	waitFor(t, "step to run", func() bool { return len(fake.running()) == 1 })
	queued := h.submit(berth.JobSpec{Steps: oneStep("y")})

	j, err := h.svc.Cancel(context.Background(), queued.ID)
	if err != nil || j.State != berth.JobCancelled {
		t.Fatalf("cancel queued: %s %v", j.State, err)
	}
	if len(j.Attempts) != 0 {
		t.Fatalf("a cancelled queued job ran: %+v", j.Attempts)
	}
	j, err = h.svc.Cancel(context.Background(), running.ID)
	if err != nil || j.State != berth.JobCancelled {
		t.Fatalf("cancel running: %s %v", j.State, err)
	}
	if len(fake.running()) != 0 {
		t.Fatalf("step still running after cancel: %v", fake.running())
	}
	if j.Attempts[0].Reason != berth.ReasonCancelled {
		t.Fatalf("attempt reason %s", j.Attempts[0].Reason)
	}
	if _, err := h.svc.Cancel(context.Background(), running.ID); !errors.Is(err, berth.ErrConflict) {
		t.Fatalf("cancel of an ended job: %v, want conflict", err)
	}
}

func TestTimeout(t *testing.T) {
	fake := newFake(true)
	h := newHarness(t, testPool(), fake)
	j := h.submit(berth.JobSpec{Steps: oneStep("x"), Timeout: berth.Duration(100 * time.Millisecond)})
	j = h.waitState(j.ID, berth.JobFailed)
	if j.Reason != berth.ReasonTimeout || j.Attempts[0].Reason != berth.ReasonTimeout {
		t.Fatalf("job reason %s, attempt %+v", j.Reason, j.Attempts[0])
	}
	if len(fake.running()) != 0 {
		t.Fatalf("step still running after timeout")
	}
}

func TestFallbackAfterRepeatedCapacityLosses(t *testing.T) {
	pool := testPool()
	pool.MaxClusters = 1
	pool.Fallback = &berth.Fallback{AfterFailures: 2, For: time.Hour}
	fake := newFake(true)
	h := newHarness(t, pool, fake)
	j := h.submit(berth.JobSpec{Steps: oneStep("x")})
	for n := 1; n <= 2; n++ {
		name := berth.StepName(j.ID, n, 0)
		waitFor(t, "attempt to run", func() bool { return fake.started(name) == 1 })
		fake.lose("fake-"+h.job(j.ID).ClusterID, "spot", true)
	}
	h.finish(j.ID, 3, 0, 0)
	h.waitState(j.ID, berth.JobSucceeded)
	reqs := fake.createRequests()
	if len(reqs) != 3 || reqs[0].Fallback || reqs[1].Fallback || !reqs[2].Fallback {
		t.Fatalf("create requests = %+v; want the third on the fallback spec", reqs)
	}
	ps, _ := h.svc.Pool(context.Background(), "p")
	if !ps.FallbackActive {
		t.Fatalf("pool does not report its fallback")
	}
}

func TestScaleOutAndIn(t *testing.T) {
	pool := testPool()
	pool.MaxClusters = 3
	pool.MinClusters = 1
	pool.IdleTimeout = 50 * time.Millisecond
	fake := newFake(true)
	h := newHarness(t, pool, fake)
	var ids []string
	for range 8 {
		ids = append(ids, h.submit(berth.JobSpec{Steps: oneStep("x")}).ID)
	}
	waitFor(t, "three clusters running six jobs", func() bool { return len(fake.running()) == 6 })
	if n := fake.liveClusters(); n != 3 {
		t.Fatalf("%d clusters, want max_clusters 3", n)
	}
	for _, id := range ids {
		if !h.fake.finish(berth.StepName(id, 1, 0), 0) {
			h.finish(id, 1, 0, 0)
		}
	}
	for _, id := range ids {
		h.waitState(id, berth.JobSucceeded)
	}
	waitFor(t, "scale in to min_clusters", func() bool {
		cs, err := h.svc.Clusters(context.Background(), store.ClusterFilter{State: berth.ClusterTerminated})
		return err == nil && len(cs) == 2
	})
	if n := fake.liveClusters(); n != 1 {
		t.Fatalf("%d clusters left at the provider, want min_clusters 1", n)
	}
}

func TestBootTimeoutLosesAndReplaces(t *testing.T) {
	pool := testPool()
	pool.BootTimeout = 50 * time.Millisecond
	fake := newFake(false)
	h := newHarness(t, pool, fake)
	j := h.submit(berth.JobSpec{Steps: oneStep("x")})
	waitFor(t, "a lost cluster", func() bool {
		cs, _ := h.svc.Clusters(context.Background(), store.ClusterFilter{State: berth.ClusterLost})
		return len(cs) > 0
	})
	fake.readyAll()
	h.finish(j.ID, 1, 0, 0)
	h.waitState(j.ID, berth.JobSucceeded)
	// The cluster given up on is terminated at the provider, not left to
	// come up late, unused and billed.
	lost, _ := h.svc.Clusters(context.Background(), store.ClusterFilter{State: berth.ClusterLost})
	for _, c := range lost {
		if st := fake.clusterState(c.ProviderID); st != berth.ClusterTerminated {
			t.Errorf("lost cluster %s is %s at the provider, want terminated", c.ID, st)
		}
	}
}

// A restarted service adopts the step it had started rather than starting
// it again, and finishes the job.
func TestRestartAdoptsRunningStep(t *testing.T) {
	fake := newFake(true)
	h := newHarness(t, testPool(), fake)
	j, name := h.submitRunning(berth.JobSpec{Steps: oneStep("x")})
	h.stop()
	h.start()
	h.finish(j.ID, 1, 0, 0)
	j = h.waitState(j.ID, berth.JobSucceeded)
	if n := fake.started(name); n != 1 || len(j.Attempts) != 1 {
		t.Fatalf("step started %d times, %d attempts", n, len(j.Attempts))
	}
}

// The crash window: the attempt is on disk but the provider's step id is
// not. The restarted service finds the step by its name.
func TestRestartAdoptsStepByName(t *testing.T) {
	fake := newFake(true)
	h := newHarness(t, testPool(), fake)
	j := h.submit(berth.JobSpec{Steps: oneStep("x")})
	name := berth.StepName(j.ID, 1, 0)
	waitFor(t, "step id recorded", func() bool {
		a := h.job(j.ID).Attempts
		return len(a) == 1 && a[0].Steps[0].ProviderID != ""
	})
	h.stop()
	// Forget the provider's id, as if the server died before recording it.
	st, err := sqlite.Open(context.Background(), h.path, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := st.GetJob(context.Background(), j.ID)
	stored.Attempts[0].Steps[0].ProviderID = ""
	stored.Attempts[0].Steps[0].State = berth.StepPending
	if err := st.Commit(context.Background(), store.Batch{Jobs: []berth.Job{stored}}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	h.start()
	waitFor(t, "step adopted", func() bool { return h.job(j.ID).Attempts[0].Steps[0].ProviderID != "" })
	events, err := h.svc.JobEvents(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	adopted := false
	for _, e := range events {
		adopted = adopted || e.Kind == "step_adopted"
	}
	if !adopted {
		t.Errorf("no step_adopted event: %+v", events)
	}
	h.finish(j.ID, 1, 0, 0)
	h.waitState(j.ID, berth.JobSucceeded)
	if n := fake.started(name); n != 1 {
		t.Fatalf("step started %d times, want 1", n)
	}
}

func TestDrainAndTerminate(t *testing.T) {
	pool := testPool()
	pool.MinClusters = 1
	fake := newFake(true)
	h := newHarness(t, pool, fake)
	cl := h.waitReady(1)[0]
	j := h.submit(berth.JobSpec{Steps: oneStep("x")})
	waitFor(t, "step to run", func() bool { return len(fake.running()) == 1 })
	c, err := h.svc.Drain(context.Background(), cl.ID)
	if err != nil || c.State != berth.ClusterDraining {
		t.Fatalf("drain: %s %v", c.State, err)
	}
	// The draining cluster keeps its job until it ends, then goes away.
	h.finish(j.ID, 1, 0, 0)
	h.waitState(j.ID, berth.JobSucceeded)
	waitFor(t, "drained cluster terminated", func() bool {
		c, _ := h.svc.Cluster(context.Background(), cl.ID)
		return c.State == berth.ClusterTerminated
	})
	next := h.waitReady(1)[0]
	c, err = h.svc.Terminate(context.Background(), next.ID)
	if err != nil || c.State != berth.ClusterTerminating && c.State != berth.ClusterTerminated {
		t.Fatalf("terminate: %s %v", c.State, err)
	}
	if _, err := h.svc.Drain(context.Background(), cl.ID); !errors.Is(err, berth.ErrConflict) {
		t.Fatalf("drain of a terminated cluster: %v, want conflict", err)
	}
	if _, err := h.svc.Drain(context.Background(), "cl-nope"); !errors.Is(err, berth.ErrNotFound) {
		t.Fatalf("drain of an unknown cluster: %v, want not found", err)
	}
}

func TestKill(t *testing.T) {
	fake := newFake(true)
	h := newHarness(t, testPool(), fake)
	j := h.submit(berth.JobSpec{Steps: oneStep("x")})
	waitFor(t, "step to run", func() bool { return len(fake.running()) == 1 })
	c, err := h.svc.Kill(context.Background(), h.job(j.ID).ClusterID)
	if err != nil || c.State != berth.ClusterLost {
		t.Fatalf("kill: %s %v", c.State, err)
	}
	h.finish(j.ID, 2, 0, 0)
	h.waitState(j.ID, berth.JobSucceeded)
}

func TestAffinityPrefersItsCluster(t *testing.T) {
	pool := testPool()
	pool.MinClusters = 2
	fake := newFake(true)
	h := newHarness(t, pool, fake)
	h.waitReady(2)
	a := h.submit(berth.JobSpec{Steps: oneStep("x"), Affinity: "k"})
	h.finish(a.ID, 1, 0, 0)
	a = h.waitState(a.ID, berth.JobSucceeded)
	// Fill the affinity cluster's other slot... the next job with the key
	// must still land on it, not on the other idle cluster.
	b := h.submit(berth.JobSpec{Steps: oneStep("y"), Affinity: "k", AffinityRequired: true})
	h.finish(b.ID, 1, 0, 0)
	b = h.waitState(b.ID, berth.JobSucceeded)
	if b.ClusterID != a.ClusterID {
		t.Fatalf("affinity job ran on %s, want %s", b.ClusterID, a.ClusterID)
	}
	if _, err := h.svc.Terminate(context.Background(), a.ClusterID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "affinity cluster gone", func() bool {
		c, _ := h.svc.Cluster(context.Background(), a.ClusterID)
		return c.State.Terminal()
	})
	c := h.submit(berth.JobSpec{Steps: oneStep("z"), Affinity: "k", AffinityRequired: true})
	c = h.waitState(c.ID, berth.JobFailed)
	if c.Reason != berth.ReasonAffinityLost {
		t.Fatalf("reason %s, want affinity_lost", c.Reason)
	}
}

func TestMaxLifetimeRecyclesThroughDraining(t *testing.T) {
	pool := testPool()
	pool.MinClusters = 1
	pool.MaxLifetime = 300 * time.Millisecond
	fake := newFake(true)
	h := newHarness(t, pool, fake)
	first := h.waitReady(1)[0]
	j := h.submit(berth.JobSpec{Steps: oneStep("x")})
	waitFor(t, "step to run", func() bool { return len(fake.running()) == 1 })
	// Past its lifetime the cluster drains: it keeps its job, takes no new
	// one, and a replacement keeps min_clusters.
	waitFor(t, "the old cluster draining", func() bool {
		c, _ := h.svc.Cluster(context.Background(), first.ID)
		return c.State == berth.ClusterDraining
	})
	k := h.submit(berth.JobSpec{Steps: oneStep("y")})
	h.finish(k.ID, 1, 0, 0)
	if k = h.waitState(k.ID, berth.JobSucceeded); k.ClusterID == first.ID {
		t.Fatalf("a new job was placed on a draining cluster")
	}
	h.finish(j.ID, 1, 0, 0)
	if j = h.waitState(j.ID, berth.JobSucceeded); j.ClusterID != first.ID || len(j.Attempts) != 1 {
		t.Fatalf("the draining cluster's job was moved: %+v", j.Attempts)
	}
	waitFor(t, "the old cluster terminated", func() bool {
		c, _ := h.svc.Cluster(context.Background(), first.ID)
		return c.State == berth.ClusterTerminated
	})
}

// A failed terminate is tried again until the provider confirms; the
// cluster is not forgotten at the first error.
func TestTerminateIsRetriedUntilDone(t *testing.T) {
	pool := testPool()
	pool.MinClusters = 1
	fake := newFake(true)
	fake.set(func(f *fakeProvider) { f.failTerminate = 3 })
	h := newHarness(t, pool, fake)
	c := h.waitReady(1)[0]
	if _, err := h.svc.Terminate(context.Background(), c.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the cluster terminated", func() bool {
		got, _ := h.svc.Cluster(context.Background(), c.ID)
		return got.State == berth.ClusterTerminated && fake.clusterState(c.ProviderID) == berth.ClusterTerminated
	})
}

// A cancel requested while the server was down, for a step that was
// already stopped, ends the job cancelled, not failed.
func TestCancelAcrossRestartIsNotAFailure(t *testing.T) {
	fake := newFake(true)
	h := newHarness(t, testPool(), fake)
	j, name := h.submitRunning(berth.JobSpec{Steps: oneStep("x")})
	h.stop()
	st, err := sqlite.Open(context.Background(), h.path, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.RequestCancel(context.Background(), j.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	fake.cancelStep(name)
	h.start()
	j = h.waitState(j.ID, berth.JobCancelled)
	if j.UserFailures != 0 || j.Attempts[0].Reason != berth.ReasonCancelled {
		t.Fatalf("user failures %d, attempt %+v", j.UserFailures, j.Attempts[0])
	}
}

// A provider that will not take steps is the provider's trouble: the
// attempt is charged to the infrastructure budget, and the job runs once
// the provider recovers.
func TestSubmitOutageIsAnInfraFailure(t *testing.T) {
	fake := newFake(true)
	fake.set(func(f *fakeProvider) { f.failSubmit = errors.New("connection refused") })
	h := newHarness(t, testPool(), fake)
	j := h.submit(berth.JobSpec{Steps: oneStep("x")})
	waitFor(t, "the attempt given up", func() bool { return len(h.job(j.ID).Attempts) == 2 })
	fake.set(func(f *fakeProvider) { f.failSubmit = nil })
	h.finish(j.ID, 2, 0, 0)
	j = h.waitState(j.ID, berth.JobSucceeded)
	if a := j.Attempts[0]; a.Reason != berth.ReasonProviderError {
		t.Fatalf("first attempt ended %s, want provider_error", a.Reason)
	}
	if j.UserFailures != 0 || j.InfraFailures != 1 {
		t.Fatalf("user %d infra %d", j.UserFailures, j.InfraFailures)
	}
}

// A running step of ours that no running attempt owns is cancelled.
func TestOrphanStepIsCancelled(t *testing.T) {
	pool := testPool()
	pool.MinClusters = 1
	fake := newFake(true)
	h := newHarness(t, pool, fake)
	c := h.waitReady(1)[0]
	orphan := berth.StepName("job-0000000000000000", 1, 0)
	fake.addStep(c.ProviderID, orphan)
	fake.addStep(c.ProviderID, "not-ours")
	waitFor(t, "the orphan cancelled", func() bool { return fake.stepState(orphan) == berth.StepCancelled })
	if st := fake.stepState("not-ours"); st != berth.StepRunning {
		t.Fatalf("a step Berth did not name was touched: %s", st)
	}
}

// State that names a pool the configuration lacks is refused at start.
func TestStartRefusesUnconfiguredPools(t *testing.T) {
	fake := newFake(true)
	h := newHarness(t, testPool(), fake)
	h.submit(berth.JobSpec{Steps: oneStep("x")})
	h.stop()
	st, err := sqlite.Open(context.Background(), h.path, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	other := testPool()
	other.Name = "q"
	svc, err := New(Options{Store: st, Pools: []Pool{{Pool: other, Provider: fake}}, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	err = svc.Start(context.Background())
	if err == nil {
		svc.Stop()
		t.Fatal("started over jobs of an unconfigured pool")
	}
	if !strings.Contains(err.Error(), `pool "p"`) {
		t.Fatalf("error does not name the pool: %v", err)
	}
}

// flakyStore fails commits and loads on demand.
type flakyStore struct {
	store.Store
	failCommits, failLoads atomic.Int32
}

func (f *flakyStore) Commit(ctx context.Context, b store.Batch) error {
	if f.failCommits.Add(-1) >= 0 {
		return errors.New("disk full")
	}
	return f.Store.Commit(ctx, b)
}

func (f *flakyStore) Load(ctx context.Context) (store.State, error) {
	if f.failLoads.Add(-1) >= 0 {
		return store.State{}, errors.New("disk gone")
	}
	return f.Store.Load(ctx)
}

// When a commit fails and the state cannot even be read back, the loop
// acts on nothing until it can; then the job runs, once.
func TestFailedCommitActsOnNothing(t *testing.T) {
	fake := newFake(true)
	flaky := &flakyStore{}
	h := &harness{t: t, path: filepath.Join(t.TempDir(), "berth.db"), fake: fake, pool: testPool()}
	h.wrap = func(s store.Store) store.Store { flaky.Store = s; return flaky }
	h.start()
	flaky.failCommits.Store(1000)
	flaky.failLoads.Store(1000)
	j := h.submit(berth.JobSpec{Steps: oneStep("x")})
	name := berth.StepName(j.ID, 1, 0)
	waitFor(t, "several passes over a broken store", func() bool { return flaky.failLoads.Load() < 995 })
	if n := fake.started(name); n != 0 {
		t.Fatalf("a step was submitted while the store could not record it")
	}
	flaky.failCommits.Store(0)
	flaky.failLoads.Store(0)
	h.finish(j.ID, 1, 0, 0)
	h.waitState(j.ID, berth.JobSucceeded)
	if n := fake.started(name); n != 1 {
		t.Fatalf("step started %d times", n)
	}
}

// A step the provider refuses as invalid is the job's failure at once, not
// the infrastructure's after retries.
func TestInvalidStepIsTheJobsFailure(t *testing.T) {
	fake := newFake(true)
	fake.set(func(f *fakeProvider) { f.failSubmit = fmt.Errorf("%w: no such program", berth.ErrInvalid) })
	h := newHarness(t, testPool(), fake)
	j := h.submit(berth.JobSpec{Steps: oneStep("x")})
	j = h.waitState(j.ID, berth.JobFailed)
	if j.Reason != berth.ReasonStepFailed || j.InfraFailures != 0 || len(j.Attempts) != 1 {
		t.Fatalf("reason %s, infra %d, attempts %d", j.Reason, j.InfraFailures, len(j.Attempts))
	}
}
