package simulate

import (
	"testing"
	"time"

	"github.com/berthhq/berth/internal/provider/sim"
)

// Each phase gets fresh clusters, ended with it: the last phase on a
// boots a cluster of its own where the static DAG kept one.
func TestClusterPerPhaseMakesClustersForEachPhase(t *testing.T) {
	m := time.Minute
	tr := runClusterPerPhase(parse(t, twoPools))
	wantClusters(t, tr, []Cluster{
		{ID: "a-0", Pool: "a", Requested: 0, Ready: 10 * m, Ended: 75 * m, Slots: 2, Cost: 7.5},
		{ID: "a-1", Pool: "a", Requested: 0, Ready: 10 * m, Ended: 75 * m, Slots: 2, Cost: 7.5},
		{ID: "b-0", Pool: "b", Requested: 70 * m, Ready: 75 * m, Ended: 85 * m, Slots: 1, Cost: 15},
		{ID: "a-2", Pool: "a", Requested: 85 * m, Ready: 95 * m, Ended: 130 * m, Slots: 2, Cost: 4.5},
	})
	wantJobs(t, tr, []Job{
		{Key: key("p", 0, 0, 0), Pool: "a", Submitted: 0, Succeeded: true, Attempts: []Attempt{{"a-0", 10 * m, 70 * m, false}}},
		{Key: key("p", 0, 0, 1), Pool: "a", Submitted: 0, Succeeded: true, Attempts: []Attempt{{"a-1", 10 * m, 70 * m, false}}},
		{Key: key("p", 0, 0, 2), Pool: "a", Submitted: 0, Succeeded: true, Attempts: []Attempt{{"a-0", 10 * m, 70 * m, false}}},
		{Key: key("p", 0, 1, 0), Pool: "b", Submitted: 70 * m, Succeeded: true, Attempts: []Attempt{{"b-0", 75 * m, 85 * m, false}}},
		{Key: key("p", 0, 2, 0), Pool: "a", Submitted: 85 * m, Succeeded: true, Attempts: []Attempt{{"a-2", 95 * m, 125 * m, false}}},
	})
	wantResult(t, tr, 34.5, 125*m, 0, 0)
}

// Seed 7 loses a-0 under its job: Airflow retries the phase at once, on
// two fresh clusters, and runs both jobs again, the one on the cluster
// that survived too. No person is involved.
func TestClusterPerPhaseRetriesThePhaseOnALoss(t *testing.T) {
	m := time.Minute
	w := parse(t, lossy(7, "{pool: a, jobs: 2, duration: 1h}"))
	lost := w.LossAfter("a", 0)
	if lost <= 10*m || lost >= 70*m || w.LossAfter("a", 1) < lost+5*m || w.LossAfter("a", 2) < 75*m || w.LossAfter("a", 3) < 75*m {
		t.Fatalf("seed 7 no longer loses a-0 alone, under its job: losses after %v, %v, %v, %v",
			lost, w.LossAfter("a", 1), w.LossAfter("a", 2), w.LossAfter("a", 3))
	}
	tr := runClusterPerPhase(w)
	wantClusters(t, tr, []Cluster{
		{ID: "a-0", Pool: "a", Requested: 0, Ready: 10 * m, Ended: lost, Lost: true, Slots: 1, Cost: sim.Bill(lost, 6)},
		{ID: "a-1", Pool: "a", Requested: 0, Ready: 10 * m, Ended: lost + 5*m, Slots: 1, Cost: sim.Bill(lost+5*m, 6)},
		{ID: "a-2", Pool: "a", Requested: lost, Ready: lost + 10*m, Ended: lost + 75*m, Slots: 1, Cost: 7.5},
		{ID: "a-3", Pool: "a", Requested: lost, Ready: lost + 10*m, Ended: lost + 75*m, Slots: 1, Cost: 7.5},
	})
	wantJobs(t, tr, []Job{
		{Key: key("p", 0, 0, 0), Pool: "a", Submitted: 0, Succeeded: true, Attempts: []Attempt{
			{"a-0", 10 * m, lost, true},
			{"a-2", lost + 10*m, lost + 70*m, false},
		}},
		{Key: key("p", 0, 0, 1), Pool: "a", Submitted: 0, Succeeded: true, Attempts: []Attempt{
			{"a-1", 10 * m, lost, false},
			{"a-3", lost + 10*m, lost + 70*m, false},
		}},
	})
	wantResult(t, tr, sim.Bill(lost, 6)+sim.Bill(lost+5*m, 6)+15, lost+70*m, 0, 0)
}

// A job that succeeded in a try that failed runs again in the next one.
func TestClusterPerPhaseRerunsSucceededJobs(t *testing.T) {
	m := time.Minute
	w := parse(t, lossy(7, "{pool: a, jobs: 3, duration: 20m}"))
	// Jobs 0 and 2 run one after the other on a-0 (10m–30m, 30m–50m),
	// job 1 on a-1 (10m–30m): seed 7 loses a-0 under job 2, and both
	// clusters of the retry live until its phase ends.
	lost := w.LossAfter("a", 0)
	if lost <= 30*m || lost >= 50*m || w.LossAfter("a", 1) < lost+5*m || w.LossAfter("a", 2) < 55*m || w.LossAfter("a", 3) < 55*m {
		t.Fatalf("seed 7 no longer loses a-0 alone, under job 2: losses after %v, %v, %v, %v",
			lost, w.LossAfter("a", 1), w.LossAfter("a", 2), w.LossAfter("a", 3))
	}
	tr := runClusterPerPhase(w)
	wantJobs(t, tr, []Job{
		{Key: key("p", 0, 0, 0), Pool: "a", Submitted: 0, Succeeded: true, Attempts: []Attempt{
			{"a-0", 10 * m, 30 * m, false},
			{"a-2", lost + 10*m, lost + 30*m, false},
		}},
		{Key: key("p", 0, 0, 1), Pool: "a", Submitted: 0, Succeeded: true, Attempts: []Attempt{
			{"a-1", 10 * m, 30 * m, false},
			{"a-3", lost + 10*m, lost + 30*m, false},
		}},
		{Key: key("p", 0, 0, 2), Pool: "a", Submitted: 0, Succeeded: true, Attempts: []Attempt{
			{"a-0", 30 * m, lost, true},
			{"a-2", lost + 30*m, lost + 50*m, false},
		}},
	})
	wantResult(t, tr, sim.Bill(lost, 6)+sim.Bill(lost+5*m, 6)+11, lost+50*m, 0, 0)
}

// Past maxRecoveries retries the phase stays failed: its jobs and the
// phases after it are lost, and the instance never ends.
func TestClusterPerPhaseGivesUpAfterItsRetries(t *testing.T) {
	tr := runClusterPerPhase(parse(t, `
pools:
  - {name: a, provider: sim, slots: 1, price_per_hour: 6, sim: {boot_time: 10m, loss_per_cluster_hour: 1000}}
pipelines:
  - {name: p, count: 1, phases: [{pool: a, jobs: 2, duration: 1h}, {pool: a, jobs: 1, duration: 1h}]}
`))
	if len(tr.Clusters) != 2*(1+maxRecoveries) {
		t.Errorf("%d clusters, want 2 for each of %d tries", len(tr.Clusters), 1+maxRecoveries)
	}
	if tr.Instances[0].End != -1 {
		t.Errorf("instance ended at %v", tr.Instances[0].End)
	}
	if r := tr.Measure(); r.Interventions != 0 || r.JobsLost != 3 {
		t.Errorf("%d interventions, %d jobs lost; want 0 and 3", r.Interventions, r.JobsLost)
	}
}
