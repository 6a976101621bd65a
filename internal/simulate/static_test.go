package simulate

import (
	"fmt"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/provider/sim"
)

// twoPools is a pipeline that goes from pool a to b and back: three jobs
// of an hour, one of ten minutes on b, one of half an hour on a. Pool a
// costs 0.1 a minute, b 1 a minute. max_clusters is 1, which the Airflow
// baselines do not know of.
const twoPools = `
seed: 1
pools:
  - {name: a, provider: sim, slots: 2, max_clusters: 1, price_per_hour: 6, sim: {boot_time: 10m, terminate_time: 5m}}
  - {name: b, provider: sim, slots: 1, max_clusters: 1, price_per_hour: 60, sim: {boot_time: 5m}}
pipelines:
  - name: p
    count: 1
    phases:
      - {pool: a, jobs: 3, duration: 1h}
      - {pool: b, jobs: 1, duration: 10m}
      - {pool: a, jobs: 1, duration: 30m}
`

// The static DAG makes two clusters of a at the start, split 2 and 1
// jobs, keeps them through the phase on b and runs the last phase on the
// first; b's cluster lives only for its phase.
func TestAirflowStaticKeepsAPoolsClustersThroughTheInstance(t *testing.T) {
	m := time.Minute
	tr := runAirflowStatic(parse(t, twoPools))
	wantClusters(t, tr, []Cluster{
		{ID: "a-0", Pool: "a", Requested: 0, Ready: 10 * m, Ended: 120 * m, Slots: 2, Cost: 12},
		{ID: "a-1", Pool: "a", Requested: 0, Ready: 10 * m, Ended: 120 * m, Slots: 2, Cost: 12},
		{ID: "b-0", Pool: "b", Requested: 70 * m, Ready: 75 * m, Ended: 85 * m, Slots: 1, Cost: 15},
	})
	wantJobs(t, tr, []Job{
		{Key: key("p", 0, 0, 0), Pool: "a", Submitted: 0, Succeeded: true, Attempts: []Attempt{{"a-0", 10 * m, 70 * m, false}}},
		{Key: key("p", 0, 0, 1), Pool: "a", Submitted: 0, Succeeded: true, Attempts: []Attempt{{"a-1", 10 * m, 70 * m, false}}},
		{Key: key("p", 0, 0, 2), Pool: "a", Submitted: 0, Succeeded: true, Attempts: []Attempt{{"a-0", 10 * m, 70 * m, false}}},
		{Key: key("p", 0, 1, 0), Pool: "b", Submitted: 70 * m, Succeeded: true, Attempts: []Attempt{{"b-0", 75 * m, 85 * m, false}}},
		{Key: key("p", 0, 2, 0), Pool: "a", Submitted: 85 * m, Succeeded: true, Attempts: []Attempt{{"a-0", 85 * m, 115 * m, false}}},
	})
	wantResult(t, tr, 39, 115*m, 0, 0)
}

// A cluster runs its share at most slots at once, in order: of three
// jobs on one cluster of two slots, the third waits for the first.
func TestAirflowStaticQueuesAShareOnItsCluster(t *testing.T) {
	m := time.Minute
	tr := runAirflowStatic(parse(t, `
static_clusters: 1
pools:
  - {name: a, provider: sim, slots: 2, price_per_hour: 6, sim: {boot_time: 10m}}
pipelines:
  - {name: p, count: 2, every: 1h, phases: [{pool: a, jobs: 3, duration: 20m}]}
`))
	wantClusters(t, tr, []Cluster{
		{ID: "a-0", Pool: "a", Requested: 0, Ready: 10 * m, Ended: 50 * m, Slots: 2, Cost: 5},
		{ID: "a-1", Pool: "a", Requested: 60 * m, Ready: 70 * m, Ended: 110 * m, Slots: 2, Cost: 5},
	})
	for n, c := range []string{"a-0", "a-1"} {
		at := time.Duration(n) * time.Hour
		wantJobs(t, &Trace{Jobs: tr.Jobs[3*n : 3*n+3]}, []Job{
			{Key: key("p", n, 0, 0), Pool: "a", Submitted: at, Succeeded: true, Attempts: []Attempt{{c, at + 10*m, at + 30*m, false}}},
			{Key: key("p", n, 0, 1), Pool: "a", Submitted: at, Succeeded: true, Attempts: []Attempt{{c, at + 10*m, at + 30*m, false}}},
			{Key: key("p", n, 0, 2), Pool: "a", Submitted: at, Succeeded: true, Attempts: []Attempt{{c, at + 30*m, at + 50*m, false}}},
		})
	}
	wantResult(t, tr, 10, 50*m, 0, 0)
}

// lossy is pool a losing 0.5 clusters a cluster-hour: which clusters it
// loses, and when, depends on the seed alone.
func lossy(seed int, phases string) string {
	return fmt.Sprintf(`
seed: %d
pools:
  - {name: a, provider: sim, slots: 1, price_per_hour: 6, sim: {boot_time: 10m, terminate_time: 5m, loss_per_cluster_hour: 0.5}}
pipelines:
  - {name: p, count: 1, phases: [%s]}
`, seed, phases)
}

// Seed 108 loses a-0 under its job: a person recreates it half an hour
// later and the job runs again there, as does the next phase's.
func TestAirflowStaticRecreatesALostClusterByHand(t *testing.T) {
	m := time.Minute
	w := parse(t, lossy(108, "{pool: a, jobs: 2, duration: 1h}, {pool: a, jobs: 1, duration: 1h}"))
	lost := w.LossAfter("a", 0)
	if lost <= 10*m || lost >= 70*m || w.LossAfter("a", 1) < lost+165*m || w.LossAfter("a", 2) < 135*m {
		t.Fatalf("seed 108 no longer loses a-0 alone, under its job: losses after %v, %v, %v", lost, w.LossAfter("a", 1), w.LossAfter("a", 2))
	}
	tr := runAirflowStatic(w)
	again := lost + 30*m // the recreated a-2 is requested
	wantClusters(t, tr, []Cluster{
		{ID: "a-0", Pool: "a", Requested: 0, Ready: 10 * m, Ended: lost, Lost: true, Slots: 1, Cost: sim.Bill(lost, 6)},
		{ID: "a-1", Pool: "a", Requested: 0, Ready: 10 * m, Ended: again + 135*m, Slots: 1, Cost: sim.Bill(again+135*m, 6)},
		{ID: "a-2", Pool: "a", Requested: again, Ready: again + 10*m, Ended: again + 135*m, Slots: 1, Cost: sim.Bill(135*m, 6)},
	})
	wantJobs(t, tr, []Job{
		{Key: key("p", 0, 0, 0), Pool: "a", Submitted: 0, Succeeded: true, Attempts: []Attempt{
			{"a-0", 10 * m, lost, true},
			{"a-2", again + 10*m, again + 70*m, false},
		}},
		{Key: key("p", 0, 0, 1), Pool: "a", Submitted: 0, Succeeded: true, Attempts: []Attempt{{"a-1", 10 * m, 70 * m, false}}},
		{Key: key("p", 0, 1, 0), Pool: "a", Submitted: again + 70*m, Succeeded: true, Attempts: []Attempt{{"a-2", again + 70*m, again + 130*m, false}}},
	})
	wantResult(t, tr, sim.Bill(lost, 6)+sim.Bill(again+135*m, 6)+sim.Bill(135*m, 6), again+130*m, 1, 0)
}

// Seed 3 loses a-1 while it sits idle in the second phase: nobody knows
// until the third phase gives it a job, which waits for a person.
func TestAirflowStaticFindsAnIdleLossWhenTheClusterIsNeeded(t *testing.T) {
	m := time.Minute
	w := parse(t, lossy(3, "{pool: a, jobs: 2, duration: 1h}, {pool: a, jobs: 1, duration: 1h}, {pool: a, jobs: 2, duration: 1h}"))
	lost := w.LossAfter("a", 1)
	if lost <= 70*m || lost >= 130*m || w.LossAfter("a", 0) < 235*m || w.LossAfter("a", 2) < 75*m {
		t.Fatalf("seed 3 no longer loses a-1 alone, while idle: losses after %v, %v, %v", w.LossAfter("a", 0), lost, w.LossAfter("a", 2))
	}
	tr := runAirflowStatic(w)
	wantClusters(t, tr, []Cluster{
		{ID: "a-0", Pool: "a", Requested: 0, Ready: 10 * m, Ended: 235 * m, Slots: 1, Cost: 23.5},
		{ID: "a-1", Pool: "a", Requested: 0, Ready: 10 * m, Ended: lost, Lost: true, Slots: 1, Cost: sim.Bill(lost, 6)},
		{ID: "a-2", Pool: "a", Requested: 160 * m, Ready: 170 * m, Ended: 235 * m, Slots: 1, Cost: 7.5},
	})
	wantJobs(t, tr, []Job{
		{Key: key("p", 0, 0, 0), Pool: "a", Submitted: 0, Succeeded: true, Attempts: []Attempt{{"a-0", 10 * m, 70 * m, false}}},
		{Key: key("p", 0, 0, 1), Pool: "a", Submitted: 0, Succeeded: true, Attempts: []Attempt{{"a-1", 10 * m, 70 * m, false}}},
		{Key: key("p", 0, 1, 0), Pool: "a", Submitted: 70 * m, Succeeded: true, Attempts: []Attempt{{"a-0", 70 * m, 130 * m, false}}},
		{Key: key("p", 0, 2, 0), Pool: "a", Submitted: 130 * m, Succeeded: true, Attempts: []Attempt{{"a-0", 130 * m, 190 * m, false}}},
		{Key: key("p", 0, 2, 1), Pool: "a", Submitted: 130 * m, Succeeded: true, Attempts: []Attempt{{"a-2", 170 * m, 230 * m, false}}},
	})
	wantResult(t, tr, 31+sim.Bill(lost, 6), 230*m, 1, 0)
}

// Clusters that never outlive their boot wear the person out: after
// maxRecoveries recreations in a phase they give up instead of
// recreating another, and the instance is left unfinished.
func TestAirflowStaticGivesUpOnAPoolThatCannotBoot(t *testing.T) {
	tr := runAirflowStatic(parse(t, `
pools:
  - {name: a, provider: sim, slots: 1, price_per_hour: 6, sim: {boot_time: 10m, loss_per_cluster_hour: 1000}}
pipelines:
  - {name: p, count: 1, phases: [{pool: a, jobs: 2, duration: 1h}, {pool: a, jobs: 1, duration: 1h}]}
`))
	if len(tr.Clusters) != 2+maxRecoveries {
		t.Errorf("%d clusters, want the first 2 and %d recreated", len(tr.Clusters), maxRecoveries)
	}
	for _, c := range tr.Clusters {
		if c.Ready != -1 {
			t.Errorf("cluster %+v was ready", c)
		}
	}
	if tr.Instances[0].End != -1 {
		t.Errorf("instance ended at %v", tr.Instances[0].End)
	}
	if r := tr.Measure(); r.Interventions != maxRecoveries || r.JobsLost != 3 {
		t.Errorf("%d interventions, %d jobs lost; want %d and 3", r.Interventions, r.JobsLost, maxRecoveries)
	}
}
