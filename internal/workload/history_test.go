package workload

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/config"
	"github.com/berthhq/berth/internal/store"
	"github.com/berthhq/berth/internal/store/sqlite"
)

var t0 = time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// historyConfig has an emr pool with a fallback and a local pool.
const historyConfig = `
pools:
  - name: spark
    provider: emr
    slots: 4
    max_clusters: 5
    idle_timeout: 10m
    max_lifetime: 12h
    price_per_hour: 12.5
    emr: {region: us-east-1, release_label: emr-7.5.0, instance_groups: [{role: MASTER, instance_type: m5.xlarge, count: 1, market: SPOT}]}
    fallback: {after_failures: 2, for: 1h, emr: {instance_groups: [{role: MASTER, instance_type: m5.xlarge, count: 1}]}}
  - name: small
    provider: local
    slots: 2
    max_clusters: 3
    idle_timeout: 30s
    price_per_hour: 1
    local: {boot_time: 2s}
`

func parseConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "berth.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	return st
}

// airflow is the labels the Airflow provider puts on a task's job.
func airflow(dag, run, task, mapIndex string) map[string]string {
	return map[string]string{berth.LabelDAG: dag, berth.LabelRun: run, berth.LabelTask: task, berth.LabelMapIndex: mapIndex}
}

// attempt is an attempt that ran step first (and only it) from start to
// end after t0 and ended for reason; an end of 0 is one still running.
func attempt(reason berth.Reason, first int, start, end time.Duration) berth.Attempt {
	a := berth.Attempt{ClusterID: "cl-1", State: berth.AttemptRunning, StartedAt: at(start), FirstStep: first}
	s := berth.AttemptStep{Index: first, State: berth.StepRunning, ProviderID: "s-1", StartedAt: at(start)}
	if end != 0 {
		a.State, a.Reason, a.EndedAt = berth.AttemptFailed, reason, at(end)
		s.State, s.EndedAt = berth.StepFailed, at(end)
		if reason == berth.ReasonSucceeded {
			a.State, s.State = berth.AttemptSucceeded, berth.StepSucceeded
		}
	}
	a.Steps = []berth.AttemptStep{s}
	return a
}

// addJob submits a job created at created and, when it has attempts,
// commits it as the loop does once they ran; the job ends as its last
// attempt did.
func addJob(t *testing.T, st store.Store, id, pool string, created time.Duration, labels map[string]string, attempts ...berth.Attempt) {
	t.Helper()
	steps := 1
	for _, a := range attempts {
		steps = max(steps, a.FirstStep+len(a.Steps))
	}
	j := berth.Job{
		ID: id, Pool: pool, State: berth.JobQueued, Resume: berth.ResumeFromStart, Labels: labels,
		MaxInfraRetries: berth.DefaultInfraRetry, CreatedAt: at(created), Attempts: []berth.Attempt{},
	}
	for i := range steps {
		j.Steps = append(j.Steps, berth.JobStep{Step: berth.Step{Name: fmt.Sprint("step-", i), Args: []string{"true"}}, State: berth.StepPending})
	}
	j, _, err := st.CreateJob(t.Context(), j)
	if err != nil {
		t.Fatal(err)
	}
	if len(attempts) == 0 {
		return
	}
	for i := range attempts {
		attempts[i].N = i + 1
	}
	last := attempts[len(attempts)-1]
	j.Attempts, j.ClusterID, j.StartedAt, j.EndedAt = attempts, last.ClusterID, attempts[0].StartedAt, last.EndedAt
	switch last.State {
	case berth.AttemptRunning:
		j.State = berth.JobRunning
	case berth.AttemptSucceeded:
		j.State, j.Reason = berth.JobSucceeded, berth.ReasonSucceeded
	default:
		j.State, j.Reason = berth.JobFailed, last.Reason
	}
	for i := range j.Steps {
		j.Steps[i].State = berth.StepSucceeded
	}
	if err := st.Commit(t.Context(), store.Batch{Jobs: []berth.Job{j}}); err != nil {
		t.Fatal(err)
	}
}

func durations(ds ...time.Duration) []time.Duration { return ds }

func TestFromStoreInstances(t *testing.T) {
	st := openStore(t)
	const m = time.Minute
	ok, lost, failed := berth.ReasonSucceeded, berth.ReasonClusterLost, berth.ReasonStepFailed
	// Run r1 of nightly: extract, then transform over three map indexes,
	// then load on the other pool; r2 arrives in between.
	addJob(t, st, "r1-extract", "spark", 0, airflow("nightly", "r1", "extract", "-1"), attempt(ok, 0, 1*m, 11*m))
	addJob(t, st, "plain-small", "small", 5*m, nil, attempt(ok, 0, 5*m, 6*m))
	addJob(t, st, "r1-transform-0", "spark", 11*m, airflow("nightly", "r1", "transform", "0"), attempt(ok, 0, 11*m, 31*m))
	// Map index 1 fails its first try; a second try of the task succeeds.
	addJob(t, st, "r1-transform-1a", "spark", 11*m, airflow("nightly", "r1", "transform", "1"), attempt(failed, 0, 11*m, 16*m))
	// Map index 2 runs after a lost cluster: its succeeded attempt counts, not the longer lost one.
	addJob(t, st, "r1-transform-2", "spark", 11*m, airflow("nightly", "r1", "transform", "2"),
		attempt(lost, 0, 11*m, 29*m), attempt(ok, 0, 30*m, 42*m))
	addJob(t, st, "r2-extract", "spark", 20*m, airflow("nightly", "r2", "extract", "-1"), attempt(ok, 0, 20*m, 29*m))
	// A try that never ran does not replace one that did.
	addJob(t, st, "r2-extract-again", "spark", 21*m, airflow("nightly", "r2", "extract", "-1"))
	addJob(t, st, "r1-transform-1b", "spark", 30*m, airflow("nightly", "r1", "transform", "1"), attempt(ok, 0, 31*m, 46*m))
	// Never succeeded: its longest attempt.
	addJob(t, st, "r1-load", "small", 47*m, airflow("nightly", "r1", "load", "-1"), attempt(failed, 0, 47*m, 50*m), attempt(failed, 0, 51*m, 55*m))
	// A DAG without a run is no run: a job of its own.
	addJob(t, st, "dag-only", "small", 60*m, map[string]string{berth.LabelDAG: "nightly"}, attempt(ok, 0, 60*m, 62*m))
	// Resumed after a loss at its second step: both steps' run times.
	lostAt := attempt(lost, 0, 70*m, 82*m)
	lostAt.Steps = []berth.AttemptStep{
		{Index: 0, State: berth.StepSucceeded, StartedAt: at(70 * m), EndedAt: at(80 * m)},
		{Index: 1, State: berth.StepFailed, StartedAt: at(80 * m), EndedAt: at(82 * m)},
	}
	addJob(t, st, "resumed", "spark", 70*m, nil, lostAt, attempt(ok, 1, 85*m, 105*m))
	// Never ran, or still running: left out.
	addJob(t, st, "r3-queued", "spark", 80*m, airflow("nightly", "r3", "extract", "-1"))
	addJob(t, st, "running", "spark", 90*m, nil, attempt("", 0, 91*m, 0))

	w, sum, err := FromStore(t.Context(), st, parseConfig(t, historyConfig), 0, at(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []Instance{
		{Pipeline: "nightly", N: 0, Arrival: 0, Phases: []InstancePhase{
			{Pool: "spark", Durations: durations(10 * m)},
			{Pool: "spark", Durations: durations(20*m, 15*m, 12*m)},
			{Pool: "small", Durations: durations(4 * m)},
		}},
		{Pipeline: "pool/small", N: 0, Arrival: 5 * m, Phases: []InstancePhase{{Pool: "small", Durations: durations(1 * m)}}},
		{Pipeline: "nightly", N: 1, Arrival: 20 * m, Phases: []InstancePhase{{Pool: "spark", Durations: durations(9 * m)}}},
		{Pipeline: "pool/small", N: 1, Arrival: 60 * m, Phases: []InstancePhase{{Pool: "small", Durations: durations(2 * m)}}},
		{Pipeline: "pool/spark", N: 0, Arrival: 70 * m, Phases: []InstancePhase{{Pool: "spark", Durations: durations(10*m + 20*m)}}},
	}
	if got := w.Instances(); !reflect.DeepEqual(got, want) {
		t.Errorf("instances:\n got %+v\nwant %+v", got, want)
	}
	if sum.Jobs != 13 || sum.Replayed != 9 || sum.Superseded != 2 || sum.NotRun != 2 || sum.Instances != 5 {
		t.Errorf("summary: %d jobs, %d replayed, %d superseded, %d not run, %d instances; want 13, 9, 2, 2, 5",
			sum.Jobs, sum.Replayed, sum.Superseded, sum.NotRun, sum.Instances)
	}
	if !sum.Start.Equal(t0) || !sum.From.IsZero() || !sum.To.Equal(at(3*time.Hour)) {
		t.Errorf("summary: start %s, window %s to %s; want start %s and the whole store to %s", sum.Start, sum.From, sum.To, t0, at(3*time.Hour))
	}
	if w.Seed != ReplaySeed || len(w.Pipelines) != 0 {
		t.Errorf("workload: seed %d, %d pipelines; want seed %d and none", w.Seed, len(w.Pipelines), ReplaySeed)
	}
}

func TestFromStoreSince(t *testing.T) {
	st := openStore(t)
	const h = time.Hour
	ok := berth.ReasonSucceeded
	addJob(t, st, "old", "small", 0, nil, attempt(ok, 0, 0, 10*time.Minute))
	addJob(t, st, "older-run", "small", 1*h, airflow("d", "r", "a", "-1"), attempt(ok, 0, h, 2*h))
	// Within the window, though its run began before it: the run is
	// replayed from the jobs the window holds.
	addJob(t, st, "in-run", "small", 4*h, airflow("d", "r", "b", "-1"), attempt(ok, 0, 4*h, 5*h))
	addJob(t, st, "in", "small", 5*h, nil, attempt(ok, 0, 5*h, 5*h+time.Minute))
	addJob(t, st, "future", "small", 7*h, nil, attempt(ok, 0, 7*h, 8*h))

	w, sum, err := FromStore(t.Context(), st, parseConfig(t, historyConfig), 3*h, at(6*h))
	if err != nil {
		t.Fatal(err)
	}
	want := []Instance{
		{Pipeline: "d", N: 0, Arrival: 0, Phases: []InstancePhase{{Pool: "small", Durations: durations(h)}}},
		{Pipeline: "pool/small", N: 0, Arrival: h, Phases: []InstancePhase{{Pool: "small", Durations: durations(time.Minute)}}},
	}
	if got := w.Instances(); !reflect.DeepEqual(got, want) {
		t.Errorf("instances:\n got %+v\nwant %+v", got, want)
	}
	if sum.Jobs != 2 || !sum.From.Equal(at(3*h)) || !sum.Start.Equal(at(4*h)) {
		t.Errorf("summary: %d jobs, from %s, start %s; want 2, %s, %s", sum.Jobs, sum.From, sum.Start, at(3*h), at(4*h))
	}

	if _, _, err := FromStore(t.Context(), st, parseConfig(t, historyConfig), 30*time.Minute, at(6*h)); !errors.Is(err, berth.ErrNotFound) {
		t.Errorf("an empty window: error %v, want one wrapping ErrNotFound", err)
	}
}

func TestFromStorePools(t *testing.T) {
	st := openStore(t)
	const m, h = time.Minute, time.Hour
	cluster := func(id string, state berth.ClusterState, created, ready, ended time.Duration) berth.Cluster {
		c := berth.Cluster{ID: id, Pool: "spark", State: state, ProviderID: "j-" + id, Slots: 4, PricePerHour: 12.5, CreatedAt: at(created)}
		if ready != 0 {
			c.ReadyAt = at(ready)
		}
		if ended != 0 {
			c.EndedAt = at(ended)
		}
		return c
	}
	fallback := cluster("fb", berth.ClusterTerminated, 3*h, 3*h+12*m, 4*h)
	fallback.Fallback = true
	clusters := []berth.Cluster{
		// Ended before the window: not counted.
		cluster("gone", berth.ClusterLost, 0, 20*m, 30*m),
		// Boots 6, 10 and 7 minutes; 2h (of 2h30m), 2h and 2h in the window;
		// one lost.
		cluster("c1", berth.ClusterTerminated, 30*m, 36*m, 3*h),
		cluster("c2", berth.ClusterLost, 2*h, 2*h+10*m, 4*h),
		cluster("c3", berth.ClusterReady, 4*h, 4*h+7*m, 0),
		// Terminated, with no terminating event: no termination observed.
		cluster("c4", berth.ClusterTerminated, 5*h, 0, 5*h),
		fallback,
	}
	events := []berth.Event{
		{At: at(2*h + 50*m), ClusterID: "c1", Kind: string(berth.ClusterDraining)},
		{At: at(2*h + 57*m), ClusterID: "c1", Kind: string(berth.ClusterTerminating)},
		{At: at(3 * h), ClusterID: "c1", Kind: string(berth.ClusterTerminated)},
	}
	if err := st.Commit(t.Context(), store.Batch{Clusters: clusters, Events: events}); err != nil {
		t.Fatal(err)
	}
	addJob(t, st, "j", "spark", 2*h, nil, attempt(berth.ReasonSucceeded, 0, 2*h, 3*h))

	w, sum, err := FromStore(t.Context(), st, parseConfig(t, historyConfig), 5*h, at(6*h))
	if err != nil {
		t.Fatal(err)
	}
	spark, _ := w.Pool("spark")
	wantSpark := config.Pool{
		Name: "spark", Provider: config.ProviderSim, Slots: 4, MaxClusters: 5,
		IdleTimeout: config.IdleTimeout(10 * m), BootTimeout: config.Duration(config.DefaultBootTimeoutEMR),
		MaxLifetime: config.Duration(12 * h), PricePerHour: 12.5,
		Sim: &config.SimSpec{BootTime: config.Duration(7 * m), TerminateTime: config.Duration(3 * m), LossPerClusterHour: spark.Sim.LossPerClusterHour},
		Fallback: &config.Fallback{AfterFailures: 2, For: config.Duration(h),
			// Its own boot; the pool's termination; no loss.
			Sim: &config.SimSpec{BootTime: config.Duration(12 * m), TerminateTime: config.Duration(3 * m)}},
	}
	if !reflect.DeepEqual(spark, wantSpark) {
		t.Errorf("pool spark:\n got %+v %+v %+v\nwant %+v %+v %+v", spark, spark.Sim, spark.Fallback, wantSpark, wantSpark.Sim, wantSpark.Fallback)
	}
	if loss, want := spark.Sim.LossPerClusterHour, 1.0/(2+2+2+0); math.Abs(loss-want) > 1e-12 {
		t.Errorf("spark loss_per_cluster_hour %g, want %g (one lost in 6 cluster-hours)", loss, want)
	}
	small, _ := w.Pool("small")
	wantSmall := config.SimSpec{BootTime: config.Duration(2 * time.Second), TerminateTime: config.Duration(ReplayTerminateTime)}
	if small.Provider != config.ProviderSim || small.Slots != 2 || small.MaxClusters != 3 || small.Fallback != nil || *small.Sim != wantSmall {
		t.Errorf("pool small with no clusters: %+v %+v, want a sim pool of 2 slots, 3 clusters, and the spec %+v", small, small.Sim, wantSmall)
	}
	wantHistory := []PoolHistory{
		{Name: "spark", Clusters: 5, Lost: 1, ClusterHours: 7, Boots: 4, Terminations: 1},
		{Name: "small"},
	}
	if !reflect.DeepEqual(sum.Pools, wantHistory) {
		t.Errorf("pool history:\n got %+v\nwant %+v", sum.Pools, wantHistory)
	}
}

// An emr pool none of whose clusters was seen boots as EMR does.
func TestFromStoreDefaultBoot(t *testing.T) {
	st := openStore(t)
	addJob(t, st, "j", "spark", 0, nil, attempt(berth.ReasonSucceeded, 0, 0, time.Minute))
	w, _, err := FromStore(t.Context(), st, parseConfig(t, historyConfig), 0, at(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	spark, _ := w.Pool("spark")
	want := config.SimSpec{BootTime: config.Duration(ReplayBootTimeEMR), TerminateTime: config.Duration(ReplayTerminateTime)}
	if *spark.Sim != want {
		t.Errorf("spark's sim spec %+v, want %+v", *spark.Sim, want)
	}
}

func TestFromStoreUnknownPools(t *testing.T) {
	st := openStore(t)
	addJob(t, st, "j", "retired", 0, nil, attempt(berth.ReasonSucceeded, 0, 0, time.Minute))
	addJob(t, st, "k", "small", 0, nil, attempt(berth.ReasonSucceeded, 0, 0, time.Minute))
	c := berth.Cluster{ID: "c", Pool: "old", State: berth.ClusterTerminated, ProviderID: "j-c", Slots: 1, CreatedAt: at(0), EndedAt: at(time.Hour)}
	if err := st.Commit(t.Context(), store.Batch{Clusters: []berth.Cluster{c}}); err != nil {
		t.Fatal(err)
	}
	_, _, err := FromStore(t.Context(), st, parseConfig(t, historyConfig), 0, at(2*time.Hour))
	if !errors.Is(err, berth.ErrInvalid) || err == nil || !strings.Contains(err.Error(), "old, retired") {
		t.Errorf("error %v, want one wrapping ErrInvalid that names old and retired", err)
	}
}
