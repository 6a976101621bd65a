package service

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider"
	"github.com/berthhq/berth/internal/provider/sim"
	"github.com/berthhq/berth/internal/store"
)

// The tests here run the service in virtual time (vharness); those of the
// API calls that wait for the loop are in wallclock_test.go.

// booting is a sim model whose clusters take a while to come up, as EMR's
// do, and then stay.
var booting = sim.Model{BootTime: sim.Fixed(2 * time.Minute)}

func TestJobRunsItsStepsInOrder(t *testing.T) {
	h := newVirtual(t, simPool(), booting)
	j := h.submit(berth.JobSpec{Steps: sleepSteps("3m", "1m")})
	if j.State != berth.JobQueued {
		t.Fatalf("submitted job is %s, want queued", j.State)
	}
	j = h.untilJob(j.ID, berth.JobSucceeded)
	if len(j.Attempts) != 1 || j.Attempts[0].Reason != berth.ReasonSucceeded {
		t.Fatalf("attempts = %+v", j.Attempts)
	}
	for i, s := range j.Steps {
		if s.State != berth.StepSucceeded {
			t.Errorf("step %d is %s", i, s.State)
		}
	}
	// Step 1 starts only after step 0 succeeded.
	steps := j.Attempts[0].Steps
	if len(steps) != 2 || steps[1].StartedAt.Before(steps[0].EndedAt) {
		t.Fatalf("attempt steps = %+v; want step 1 started after step 0 ended", steps)
	}
	if j.Cost <= 0 {
		t.Errorf("job cost = %v, want > 0", j.Cost)
	}
	for i := range j.Steps {
		if n := h.started(berth.StepName(j.ID, 1, i)); n != 1 {
			t.Errorf("step %d started %d times at the provider", i, n)
		}
	}
	// Once their ends are committed the provider lists the steps no more
	// (provider.Forgetter): a poll costs what runs, not the history.
	listed, err := h.prov.ListSteps(context.Background(), h.cluster(j.ClusterID).ProviderID)
	if err != nil || len(listed) != 0 {
		t.Errorf("the provider still lists %d steps (%v), want none", len(listed), err)
	}
}

func TestIdempotentSubmit(t *testing.T) {
	h := newVirtual(t, simPool(), booting)
	spec := berth.JobSpec{Pool: "p", Steps: sleepSteps("1m"), IdempotencyKey: "dag/task/1"}
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
	h := newVirtual(t, simPool(), booting)
	for _, tc := range []struct {
		spec berth.JobSpec
		want error
	}{
		{berth.JobSpec{Pool: "nope", Steps: sleepSteps("1m")}, berth.ErrUnprocessable},
		{berth.JobSpec{Pool: "p"}, berth.ErrInvalid},
		{berth.JobSpec{Pool: "p", Steps: sleepSteps("1m"), Retries: -1}, berth.ErrInvalid},
		// The provider's StepChecker: sim runs no sleep without a duration.
		{berth.JobSpec{Pool: "p", Steps: []berth.Step{{Name: "s", Args: []string{"sleep", "a while"}}}}, berth.ErrUnprocessable},
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
	h := newVirtual(t, simPool(), booting)
	j := h.submit(berth.JobSpec{Steps: []berth.Step{{Name: "s", Args: []string{"fail", "1m"}}}, Retries: 1})
	j = h.untilJob(j.ID, berth.JobFailed)
	if j.UserFailures != 2 || j.InfraFailures != 0 || len(j.Attempts) != 2 {
		t.Fatalf("user=%d infra=%d attempts=%d", j.UserFailures, j.InfraFailures, len(j.Attempts))
	}
	for _, a := range j.Attempts {
		if a.Reason != berth.ReasonStepFailed {
			t.Errorf("attempt %d reason %s", a.N, a.Reason)
		}
		if n := h.started(berth.StepName(j.ID, a.N, 0)); n != 1 {
			t.Errorf("attempt %d's step started %d times at the provider", a.N, n)
		}
	}
	if j.Reason != berth.ReasonStepFailed {
		t.Errorf("job reason %s", j.Reason)
	}
}

func TestLostClusterRequeuesFromInfraBudget(t *testing.T) {
	h := newVirtual(t, simPool(), booting)
	j := h.submit(berth.JobSpec{Steps: sleepSteps("1h"), Retries: 0})
	h.untilStep(j.ID, 1, 0, berth.StepRunning)
	h.kill(h.job(j.ID).ClusterID)
	j = h.untilJob(j.ID, berth.JobSucceeded)
	if len(j.Attempts) != 2 || j.Attempts[0].Reason != berth.ReasonClusterLost {
		t.Fatalf("attempts = %+v", j.Attempts)
	}
	if j.Attempts[0].ClusterID == j.Attempts[1].ClusterID {
		t.Errorf("second attempt ran on the lost cluster")
	}
	if j.InfraFailures != 1 || j.UserFailures != 0 {
		t.Errorf("infra=%d user=%d; a loss must not use up retries", j.InfraFailures, j.UserFailures)
	}
	if c := h.cluster(j.Attempts[0].ClusterID); c.State != berth.ClusterLost || !c.Capacity {
		t.Fatalf("lost cluster = %+v, want lost to capacity", c.Cluster)
	}
}

// A cluster terminated behind Berth's back (from the provider's console)
// is a loss too, though not one of capacity; with no infrastructure
// retries left it fails the job.
func TestInfraRetriesRunOut(t *testing.T) {
	h := newVirtual(t, simPool(), booting)
	j := h.submit(berth.JobSpec{Steps: sleepSteps("1h"), MaxInfraRetries: intp(0)})
	h.untilStep(j.ID, 1, 0, berth.StepRunning)
	lost := h.job(j.ID).ClusterID
	if err := h.prov.TerminateCluster(context.Background(), h.cluster(lost).ProviderID); err != nil {
		t.Fatal(err)
	}
	j = h.untilJob(j.ID, berth.JobFailed)
	if j.Reason != berth.ReasonInfraRetries || j.UserFailures != 0 {
		t.Fatalf("reason = %s, user failures %d", j.Reason, j.UserFailures)
	}
	if c := h.cluster(lost); c.State != berth.ClusterLost || c.Capacity {
		t.Fatalf("cluster = %+v, want lost, not to capacity", c.Cluster)
	}
}

func TestResumeUnfinishedSkipsDoneSteps(t *testing.T) {
	h := newVirtual(t, simPool(), booting)
	j := h.submit(berth.JobSpec{Resume: berth.ResumeUnfinished, Steps: sleepSteps("1m", "1h")})
	h.untilStep(j.ID, 1, 1, berth.StepRunning)
	h.kill(h.job(j.ID).ClusterID)
	j = h.untilJob(j.ID, berth.JobSucceeded)
	if len(j.Attempts) != 2 || j.Attempts[1].FirstStep != 1 {
		t.Fatalf("attempts = %+v; want a second starting at step 1", j.Attempts)
	}
	if n := h.started(berth.StepName(j.ID, 2, 0)); n != 0 {
		t.Fatalf("step 0 ran again %d times", n)
	}
	if n := h.started(berth.StepName(j.ID, 2, 1)); n != 1 {
		t.Fatalf("step 1 of the second attempt started %d times", n)
	}
}

func TestCancel(t *testing.T) {
	pool := simPool()
	pool.MaxClusters = 1
	pool.Slots = 1
	h := newVirtual(t, pool, booting)
	ctx := context.Background()
	running := h.submit(berth.JobSpec{Steps: sleepSteps("1h")})
	h.untilStep(running.ID, 1, 0, berth.StepRunning)
	queued := h.submit(berth.JobSpec{Steps: sleepSteps("1m")})

	if _, err := h.svc.RequestCancel(ctx, queued.ID); err != nil {
		t.Fatal(err)
	}
	if j := h.untilJob(queued.ID, berth.JobCancelled); len(j.Attempts) != 0 || h.started(berth.StepName(queued.ID, 1, 0)) != 0 {
		t.Fatalf("a cancelled queued job ran: %+v", j.Attempts)
	}
	if _, err := h.svc.RequestCancel(ctx, running.ID); err != nil {
		t.Fatal(err)
	}
	j := h.untilJob(running.ID, berth.JobCancelled)
	if j.Attempts[0].Reason != berth.ReasonCancelled {
		t.Fatalf("attempt reason %s", j.Attempts[0].Reason)
	}
	if st := h.stepState(h.cluster(j.ClusterID).ProviderID, berth.StepName(j.ID, 1, 0)); st != berth.StepCancelled {
		t.Fatalf("the step is %s at the provider, want cancelled", st)
	}
	if _, err := h.svc.RequestCancel(ctx, running.ID); !errors.Is(err, berth.ErrConflict) {
		t.Fatalf("cancel of an ended job: %v, want conflict", err)
	}
}

func TestTimeout(t *testing.T) {
	h := newVirtual(t, simPool(), booting)
	j := h.submit(berth.JobSpec{Steps: sleepSteps("1h"), Timeout: berth.Duration(10 * time.Minute)})
	j = h.untilJob(j.ID, berth.JobFailed)
	if j.Reason != berth.ReasonTimeout || j.Attempts[0].Reason != berth.ReasonTimeout {
		t.Fatalf("job reason %s, attempt %+v", j.Reason, j.Attempts[0])
	}
	if st := h.stepState(h.cluster(j.ClusterID).ProviderID, berth.StepName(j.ID, 1, 0)); st != berth.StepCancelled {
		t.Fatalf("the step is %s at the provider after the timeout, want cancelled", st)
	}
}

func TestFallbackAfterRepeatedCapacityLosses(t *testing.T) {
	pool := simPool()
	pool.MaxClusters = 1
	pool.Fallback = &berth.Fallback{AfterFailures: 2, For: time.Hour}
	// The fallback spec (on-demand) is slower to come up.
	onDemand := sim.Model{BootTime: sim.Fixed(6 * time.Minute)}
	h := newVirtual(t, pool, booting, withSim(func(o *sim.Options) { o.Fallback = &onDemand }))
	j := h.submit(berth.JobSpec{Steps: sleepSteps("30m")})
	for n := 1; n <= 2; n++ {
		h.untilStep(j.ID, n, 0, berth.StepRunning)
		h.kill(h.job(j.ID).ClusterID)
	}
	j = h.untilJob(j.ID, berth.JobSucceeded)
	cs := h.prov.Snapshot().Clusters
	if len(cs) != 3 || cs[0].Fallback || cs[1].Fallback || !cs[2].Fallback {
		t.Fatalf("clusters at the provider = %+v; want the third on the fallback spec", cs)
	}
	if c := h.cluster(j.ClusterID); !c.Fallback || c.ProviderID != cs[2].ID {
		t.Fatalf("the job ran on %+v, want the fallback cluster %s", c.Cluster, cs[2].ID)
	}
	ps, _ := h.svc.Pool(context.Background(), "p")
	if !ps.FallbackActive {
		t.Fatalf("pool does not report its fallback")
	}
}

func TestScaleOutAndIn(t *testing.T) {
	pool := simPool()
	pool.MaxClusters = 3
	pool.MinClusters = 1
	h := newVirtual(t, pool, booting)
	var ids []string
	for range 8 {
		ids = append(ids, h.submit(berth.JobSpec{Steps: sleepSteps("30m")}).ID)
	}
	most := 0
	h.until("three clusters running six jobs", time.Hour, func() bool {
		s := h.prov.Snapshot()
		most = max(most, s.Live)
		running := 0
		for _, c := range s.Clusters {
			running += c.Running
		}
		return running == 6
	})
	if n := h.prov.Snapshot().Live; n != 3 || most != 3 {
		t.Fatalf("%d clusters live at the provider (at most %d), want max_clusters 3", n, most)
	}
	for _, id := range ids {
		h.untilJob(id, berth.JobSucceeded)
	}
	h.untilClusters(berth.ClusterTerminated, 2)
	if n := h.prov.Snapshot().Live; n != 1 {
		t.Fatalf("%d clusters left at the provider, want min_clusters 1", n)
	}
}

func TestBootTimeoutLosesAndReplaces(t *testing.T) {
	pool := simPool()
	pool.BootTimeout = 10 * time.Minute
	h := newVirtual(t, pool, sim.Model{BootTime: sim.Fixed(time.Hour)})
	j := h.submit(berth.JobSpec{Steps: sleepSteps("5m")})
	h.until("the first cluster created", time.Hour, func() bool { return len(h.prov.Snapshot().Clusters) == 1 })
	// Clusters created from now on come up in time.
	if err := h.prov.SetModel(booting, nil); err != nil {
		t.Fatal(err)
	}
	j = h.untilJob(j.ID, berth.JobSucceeded)
	lost := h.clusters(berth.ClusterLost)
	if len(lost) != 1 || lost[0].ID == j.ClusterID {
		t.Fatalf("lost clusters %+v, job ran on %s; want the slow one lost and the job on its replacement", lost, j.ClusterID)
	}
	// The cluster given up on is terminated at the provider, not left to
	// come up late, unused and billed.
	if c := h.simCluster(lost[0].ProviderID); c.State != berth.ClusterTerminated || !c.TerminateAsked {
		t.Errorf("lost cluster %s is %s at the provider (terminate asked: %v), want terminated", lost[0].ID, c.State, c.TerminateAsked)
	}
}

// A restarted service adopts the step it had started rather than starting
// it again, and finishes the job.
func TestRestartAdoptsRunningStep(t *testing.T) {
	h := newVirtual(t, simPool(), booting)
	j := h.submit(berth.JobSpec{Steps: sleepSteps("30m")})
	h.untilStep(j.ID, 1, 0, berth.StepRunning)
	h.crash()
	h.start()
	j = h.untilJob(j.ID, berth.JobSucceeded)
	if n := h.prov.Snapshot().StepsStarted; n != 1 || len(j.Attempts) != 1 {
		t.Fatalf("%d steps started at the provider, %d attempts; want the one adopted", n, len(j.Attempts))
	}
}

// The crash window: the attempt is on disk but the provider's step id is
// not, because the submission's reply was lost. The restarted service
// finds the step by its name.
func TestRestartAdoptsStepByName(t *testing.T) {
	pool := simPool()
	pool.MinClusters = 1
	h := newVirtual(t, pool, booting)
	h.untilClusters(berth.ClusterReady, 1)
	// Every reply is lost from now on: the submission takes effect and
	// the service never hears of it.
	h.setFaults(sim.Faults{LostReply: 1})
	j := h.submit(berth.JobSpec{Steps: sleepSteps("10m")})
	name := berth.StepName(j.ID, 1, 0)
	h.until("the step started at the provider", time.Hour, func() bool { return h.started(name) == 1 })
	if a := h.job(j.ID).Attempts; len(a) != 1 || a[0].Steps[0].ProviderID != "" {
		t.Fatalf("attempts = %+v; want one whose step has no provider id yet", a)
	}
	h.crash()
	h.setFaults(sim.Faults{})
	h.start()
	h.untilStored("the step adopted", time.Hour, func() bool { return h.job(j.ID).Attempts[0].Steps[0].ProviderID != "" })
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
	h.untilJob(j.ID, berth.JobSucceeded)
	if n := h.started(name); n != 1 {
		t.Fatalf("step started %d times, want 1", n)
	}
}

func TestDrainAndTerminate(t *testing.T) {
	pool := simPool()
	pool.MinClusters = 1
	h := newVirtual(t, pool, booting)
	ctx := context.Background()
	cl := h.untilClusters(berth.ClusterReady, 1)[0]
	j := h.submit(berth.JobSpec{Steps: sleepSteps("10m")})
	h.untilStep(j.ID, 1, 0, berth.StepRunning)
	h.svc.RequestDrain(cl.ID)
	h.untilCluster(cl.ID, berth.ClusterDraining)
	// The draining cluster keeps its job until it ends, then goes away.
	if j = h.untilJob(j.ID, berth.JobSucceeded); j.ClusterID != cl.ID || len(j.Attempts) != 1 {
		t.Fatalf("the draining cluster's job was moved: %+v", j.Attempts)
	}
	h.untilCluster(cl.ID, berth.ClusterTerminated)
	next := h.untilClusters(berth.ClusterReady, 1)[0]
	h.svc.RequestTerminate(next.ID)
	h.untilCluster(next.ID, berth.ClusterTerminated)
	if c := h.simCluster(next.ProviderID); c.State != berth.ClusterTerminated || !c.TerminateAsked {
		t.Fatalf("terminated cluster is %s at the provider (terminate asked: %v)", c.State, c.TerminateAsked)
	}
	if _, err := h.svc.Drain(ctx, cl.ID); !errors.Is(err, berth.ErrConflict) {
		t.Fatalf("drain of a terminated cluster: %v, want conflict", err)
	}
	if _, err := h.svc.Drain(ctx, "cl-nope"); !errors.Is(err, berth.ErrNotFound) {
		t.Fatalf("drain of an unknown cluster: %v, want not found", err)
	}
}

func TestAffinityPrefersItsCluster(t *testing.T) {
	pool := simPool()
	pool.MinClusters = 2
	h := newVirtual(t, pool, booting)
	h.untilClusters(berth.ClusterReady, 2)
	a := h.submit(berth.JobSpec{Steps: sleepSteps("1m"), Affinity: "k"})
	a = h.untilJob(a.ID, berth.JobSucceeded)
	// Both clusters are idle: the next job with the key must land on the
	// one that ran it.
	b := h.submit(berth.JobSpec{Steps: sleepSteps("1m"), Affinity: "k", AffinityRequired: true})
	b = h.untilJob(b.ID, berth.JobSucceeded)
	if b.ClusterID != a.ClusterID {
		t.Fatalf("affinity job ran on %s, want %s", b.ClusterID, a.ClusterID)
	}
	h.svc.RequestTerminate(a.ClusterID)
	h.untilCluster(a.ClusterID, berth.ClusterTerminated)
	c := h.submit(berth.JobSpec{Steps: sleepSteps("1m"), Affinity: "k", AffinityRequired: true})
	c = h.untilJob(c.ID, berth.JobFailed)
	if c.Reason != berth.ReasonAffinityLost {
		t.Fatalf("reason %s, want affinity_lost", c.Reason)
	}
}

func TestMaxLifetimeRecyclesThroughDraining(t *testing.T) {
	pool := simPool()
	pool.MinClusters = 1
	pool.MaxLifetime = time.Hour
	h := newVirtual(t, pool, booting)
	first := h.untilClusters(berth.ClusterReady, 1)[0]
	j := h.submit(berth.JobSpec{Steps: sleepSteps("2h")})
	h.untilStep(j.ID, 1, 0, berth.StepRunning)
	// Past its lifetime the cluster drains: it keeps its job, takes no new
	// one, and a replacement keeps min_clusters.
	h.untilCluster(first.ID, berth.ClusterDraining)
	k := h.submit(berth.JobSpec{Steps: sleepSteps("1m")})
	if k = h.untilJob(k.ID, berth.JobSucceeded); k.ClusterID == first.ID {
		t.Fatalf("a new job was placed on a draining cluster")
	}
	if j = h.untilJob(j.ID, berth.JobSucceeded); j.ClusterID != first.ID || len(j.Attempts) != 1 {
		t.Fatalf("the draining cluster's job was moved: %+v", j.Attempts)
	}
	h.untilCluster(first.ID, berth.ClusterTerminated)
}

// A failed terminate is tried again until the provider confirms; the
// cluster is not forgotten at the first error.
func TestTerminateIsRetriedUntilDone(t *testing.T) {
	pool := simPool()
	pool.MinClusters = 1
	h := newVirtual(t, pool, booting)
	c := h.untilClusters(berth.ClusterReady, 1)[0]
	h.setFaults(sim.Faults{Transient: 1})
	h.svc.RequestTerminate(c.ID)
	h.untilCluster(c.ID, berth.ClusterTerminating)
	h.run(10 * time.Minute)
	if got := h.cluster(c.ID); got.State != berth.ClusterTerminating {
		t.Fatalf("after 10 minutes of refused terminations the cluster is %s, want still terminating", got.State)
	}
	if h.simCluster(c.ProviderID).TerminateAsked {
		t.Fatal("a termination got through a provider that fails every call")
	}
	h.setFaults(sim.Faults{})
	h.untilCluster(c.ID, berth.ClusterTerminated)
	if got := h.simCluster(c.ProviderID); got.State != berth.ClusterTerminated {
		t.Fatalf("the cluster is %s at the provider, want terminated", got.State)
	}
}

// A cancel requested while the server was down, for a step that was
// already stopped, ends the job cancelled, not failed.
func TestCancelAcrossRestartIsNotAFailure(t *testing.T) {
	h := newVirtual(t, simPool(), booting)
	ctx := context.Background()
	j := h.submit(berth.JobSpec{Steps: sleepSteps("1h")})
	h.untilStep(j.ID, 1, 0, berth.StepRunning)
	stepID := h.job(j.ID).Attempts[0].Steps[0].ProviderID
	clusterID := h.cluster(h.job(j.ID).ClusterID).ProviderID
	h.crash()
	st := h.db.Open()
	if _, err := st.RequestCancel(ctx, j.ID, h.exec.Now()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if err := h.prov.CancelStep(ctx, clusterID, stepID); err != nil {
		t.Fatal(err)
	}
	h.start()
	j = h.untilJob(j.ID, berth.JobCancelled)
	if j.UserFailures != 0 || j.Attempts[0].Reason != berth.ReasonCancelled {
		t.Fatalf("user failures %d, attempt %+v", j.UserFailures, j.Attempts[0])
	}
}

// A provider that will not take steps is the provider's trouble: the
// attempt is charged to the infrastructure budget, and the job runs once
// the provider recovers.
func TestSubmitOutageIsAnInfraFailure(t *testing.T) {
	pool := simPool()
	pool.MinClusters = 1
	h := newVirtual(t, pool, booting)
	h.untilClusters(berth.ClusterReady, 1)
	h.setFaults(sim.Faults{Transient: 1})
	j := h.submit(berth.JobSpec{Steps: sleepSteps("1m")})
	h.untilStored("the attempt given up", time.Hour, func() bool { return len(h.job(j.ID).Attempts) == 2 })
	h.setFaults(sim.Faults{})
	j = h.untilJob(j.ID, berth.JobSucceeded)
	if a := j.Attempts[0]; a.Reason != berth.ReasonProviderError {
		t.Fatalf("first attempt ended %s, want provider_error", a.Reason)
	}
	if j.UserFailures != 0 || j.InfraFailures != 1 {
		t.Fatalf("user %d infra %d", j.UserFailures, j.InfraFailures)
	}
}

// A running step of ours that no running attempt owns is cancelled: one
// named for an earlier attempt of a job that runs again elsewhere, one for
// a job that has ended. The job's own step, and a step Berth did not name,
// are left alone.
func TestOrphanStepIsCancelled(t *testing.T) {
	h := newVirtual(t, simPool(), booting)
	ctx := context.Background()
	done := h.submit(berth.JobSpec{Steps: sleepSteps("1m")})
	live := h.submit(berth.JobSpec{Steps: sleepSteps("3h")})
	h.untilJob(done.ID, berth.JobSucceeded)
	h.untilStep(live.ID, 1, 0, berth.StepRunning)
	h.kill(h.job(live.ID).ClusterID)
	h.untilStep(live.ID, 2, 0, berth.StepRunning)
	c := h.cluster(h.job(live.ID).ClusterID)
	orphans := []string{berth.StepName(live.ID, 1, 0), berth.StepName(done.ID, 1, 0)}
	for _, name := range append(orphans, "not-ours") {
		if _, err := h.prov.SubmitStep(ctx, c.ProviderID, provider.StepRequest{Name: name, Step: sleepSteps("1h")[0]}); err != nil {
			t.Fatal(err)
		}
	}
	h.until("the orphans cancelled", time.Hour, func() bool {
		for _, name := range orphans {
			if h.stepState(c.ProviderID, name) != berth.StepCancelled {
				return false
			}
		}
		return true
	})
	if st := h.stepState(c.ProviderID, "not-ours"); st != berth.StepRunning {
		t.Fatalf("a step Berth did not name was touched: %s", st)
	}
	if st := h.stepState(c.ProviderID, berth.StepName(live.ID, 2, 0)); st != berth.StepRunning {
		t.Fatalf("the job's own step is %s, want still running", st)
	}
}

// State that names a pool the configuration lacks is refused at start.
func TestStartRefusesUnconfiguredPools(t *testing.T) {
	h := newVirtual(t, simPool(), booting)
	h.submit(berth.JobSpec{Steps: sleepSteps("1m")})
	h.crash()
	st := h.db.Open()
	defer st.Close()
	other := simPool()
	other.Name = "q"
	svc, err := New(Options{Store: st, Pools: []Pool{{Pool: other, Provider: h.prov}}, Executor: h.exec})
	if err != nil {
		t.Fatal(err)
	}
	err = svc.Start(context.Background())
	if err == nil {
		svc.Abandon()
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
	flaky := &flakyStore{}
	h := newVirtual(t, simPool(), booting, withStore(func(s store.Store) store.Store { flaky.Store = s; return flaky }))
	flaky.failCommits.Store(1000)
	flaky.failLoads.Store(1000)
	j := h.submit(berth.JobSpec{Steps: sleepSteps("1m")})
	name := berth.StepName(j.ID, 1, 0)
	h.until("several passes over a broken store", time.Hour, func() bool { return flaky.failLoads.Load() < 995 })
	if s := h.prov.Snapshot(); len(s.Clusters) != 0 || s.StepsStarted != 0 {
		t.Fatalf("%d clusters created and %d steps started while the store could not record them", len(s.Clusters), s.StepsStarted)
	}
	flaky.failCommits.Store(0)
	flaky.failLoads.Store(0)
	h.untilJob(j.ID, berth.JobSucceeded)
	if n := h.started(name); n != 1 {
		t.Fatalf("step started %d times", n)
	}
}

// acceptsAll is the sim provider with its StepChecker waved through, so
// that a step it cannot run reaches SubmitStep and is refused there, as
// EMR's AddSteps refuses a step with a ValidationException that no check
// before it caught. (The sim provider refuses at SubmitStep exactly what
// its CheckStep refuses, so without this the step would be turned away
// at Submit, a 422, and never reach the loop.)
type acceptsAll struct{ *sim.Provider }

func (acceptsAll) CheckStep(berth.Step) error { return nil }

// A step the provider refuses as invalid is the job's failure at once, not
// the infrastructure's after retries.
func TestInvalidStepIsTheJobsFailure(t *testing.T) {
	h := newVirtual(t, simPool(), booting, withProvider(func(p *sim.Provider) provider.Provider { return acceptsAll{p} }))
	j := h.submit(berth.JobSpec{Steps: []berth.Step{{Name: "s", Args: []string{"sleep", "a while"}}}})
	j = h.untilJob(j.ID, berth.JobFailed)
	if j.Reason != berth.ReasonStepFailed || j.InfraFailures != 0 || len(j.Attempts) != 1 {
		t.Fatalf("reason %s, infra %d, attempts %d", j.Reason, j.InfraFailures, len(j.Attempts))
	}
	if n := h.prov.Snapshot().StepsStarted; n != 0 {
		t.Fatalf("the provider started %d steps", n)
	}
}

// recordSteps is the sim provider that keeps every StepRequest it is given.
type recordSteps struct {
	*sim.Provider
	mu   sync.Mutex
	reqs []provider.StepRequest
}

func (r *recordSteps) SubmitStep(ctx context.Context, clusterID string, req provider.StepRequest) (string, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.mu.Unlock()
	return r.Provider.SubmitStep(ctx, clusterID, req)
}

// A job's execution role reaches the provider with every one of its
// steps; a job without one asks for none.
func TestStepRequestsCarryTheExecutionRole(t *testing.T) {
	rec := &recordSteps{}
	h := newVirtual(t, simPool(), booting, withProvider(func(p *sim.Provider) provider.Provider { rec.Provider = p; return rec }))
	const role = "arn:aws:iam::123456789012:role/berth/nightly"
	with := h.submit(berth.JobSpec{Steps: sleepSteps("1m", "1m"), ExecutionRoleArn: role})
	without := h.submit(berth.JobSpec{Steps: sleepSteps("1m")})
	if with.ExecutionRoleArn != role {
		t.Fatalf("submitted job's execution role %q, want %q", with.ExecutionRoleArn, role)
	}
	h.untilJob(with.ID, berth.JobSucceeded)
	h.untilJob(without.ID, berth.JobSucceeded)

	want := map[string]string{
		berth.StepName(with.ID, 1, 0):    role,
		berth.StepName(with.ID, 1, 1):    role,
		berth.StepName(without.ID, 1, 0): "",
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	seen := map[string]bool{}
	for _, req := range rec.reqs {
		w, ok := want[req.Name]
		if !ok {
			t.Errorf("a request for step %q, which no job has", req.Name)
			continue
		}
		seen[req.Name] = true
		if req.ExecutionRoleArn != w {
			t.Errorf("step %s requested with execution role %q, want %q", req.Name, req.ExecutionRoleArn, w)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("step %s never requested", name)
		}
	}
}

// A server that shuts down ends its long polls: each answers at once with
// its job as it is, and a later one does not wait either.
func TestEndWaits(t *testing.T) {
	h := newVirtual(t, simPool(), booting)
	j := h.submit(berth.JobSpec{Steps: sleepSteps("1h")})
	poll := func() <-chan berth.Job {
		got := make(chan berth.Job, 1)
		go func() {
			w, err := h.svc.WaitJob(context.Background(), j.ID, time.Hour)
			if err != nil {
				t.Error(err)
			}
			got <- w
		}()
		return got
	}
	before := poll()
	h.svc.EndWaits()
	for _, got := range []<-chan berth.Job{before, poll()} {
		select {
		case w := <-got:
			if w.ID != j.ID || w.State.Terminal() {
				t.Errorf("long poll answered %s %s, want the unfinished job %s", w.ID, w.State, j.ID)
			}
		case <-time.After(time.Minute):
			t.Fatal("a long poll still waits after EndWaits")
		}
	}
}

// TestJobStoredWithoutWord: a job in the store that the API did not tell
// the loop of (here written straight to the store) is still picked up,
// before and after jobs the API did tell it of, and runs once.
func TestJobStoredWithoutWord(t *testing.T) {
	h := newVirtual(t, simPool(), booting)
	first := h.submit(berth.JobSpec{Steps: sleepSteps("1m")})
	now := h.exec.Now()
	spec := berth.JobSpec{Pool: h.pool.Name, Steps: sleepSteps("1m")}
	silent, created, err := h.st.CreateJob(context.Background(), spec.NewJob(berth.NewID("job", now), now))
	if err != nil || !created {
		t.Fatalf("CreateJob: created=%v err=%v", created, err)
	}
	last := h.submit(berth.JobSpec{Steps: sleepSteps("1m")})
	for _, id := range []string{first.ID, silent.ID, last.ID} {
		h.untilJob(id, berth.JobSucceeded)
		if n := h.started(berth.StepName(id, 1, 0)); n != 1 {
			t.Errorf("job %s's step started %d times", id, n)
		}
	}
}
