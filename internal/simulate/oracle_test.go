package simulate

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// The oracle starts every job at once on clusters booted before the run
// (Requested is negative) and keeps a's first cluster through the ten
// minutes on b, shorter than a's boot and terminate time.
func TestOracleBootsJustInTime(t *testing.T) {
	m := time.Minute
	tr := runOracle(parse(t, twoPools))
	wantClusters(t, tr, []Cluster{
		{ID: "a-0", Pool: "a", Requested: -10 * m, Ready: 0, Ended: 105 * m, Slots: 2, Cost: 11.5},
		{ID: "a-1", Pool: "a", Requested: -10 * m, Ready: 0, Ended: 65 * m, Slots: 2, Cost: 7.5},
		{ID: "b-0", Pool: "b", Requested: 55 * m, Ready: 60 * m, Ended: 70 * m, Slots: 1, Cost: 15},
	})
	wantJobs(t, tr, []Job{
		{Key: key("p", 0, 0, 0), Pool: "a", Submitted: 0, Succeeded: true, Attempts: []Attempt{{"a-0", 0, 60 * m, false}}},
		{Key: key("p", 0, 0, 1), Pool: "a", Submitted: 0, Succeeded: true, Attempts: []Attempt{{"a-0", 0, 60 * m, false}}},
		{Key: key("p", 0, 0, 2), Pool: "a", Submitted: 0, Succeeded: true, Attempts: []Attempt{{"a-1", 0, 60 * m, false}}},
		{Key: key("p", 0, 1, 0), Pool: "b", Submitted: 60 * m, Succeeded: true, Attempts: []Attempt{{"b-0", 60 * m, 70 * m, false}}},
		{Key: key("p", 0, 2, 0), Pool: "a", Submitted: 70 * m, Succeeded: true, Attempts: []Attempt{{"a-0", 70 * m, 100 * m, false}}},
	})
	wantResult(t, tr, 34, 100*m, 0, 0)
}

// Instances share the oracle's clusters: a job takes the lowest cluster
// with a free slot, a cluster idle for no longer than boot and terminate
// time is kept, and one idle for longer is ended and another booted.
func TestOracleSharesClustersAcrossInstances(t *testing.T) {
	m := time.Minute
	tr := runOracle(parse(t, `
pools:
  - {name: c, provider: sim, slots: 2, price_per_hour: 6, sim: {boot_time: 10m, terminate_time: 5m}}
pipelines:
  - {name: p, at: [0s, 30m, 70m, 200m], phases: [{pool: c, jobs: 2, duration: 1h}]}
`))
	wantClusters(t, tr, []Cluster{
		{ID: "c-0", Pool: "c", Requested: -10 * m, Ready: 0, Ended: 135 * m, Slots: 2, Cost: 14.5},
		{ID: "c-1", Pool: "c", Requested: 20 * m, Ready: 30 * m, Ended: 95 * m, Slots: 2, Cost: 7.5},
		{ID: "c-2", Pool: "c", Requested: 190 * m, Ready: 200 * m, Ended: 265 * m, Slots: 2, Cost: 7.5},
	})
	var got []string
	for _, j := range tr.Jobs {
		got = append(got, j.Attempts[0].Cluster)
	}
	if want := "c-0 c-0 c-1 c-1 c-0 c-0 c-2 c-2"; strings.Join(got, " ") != want {
		t.Errorf("jobs ran on %v, want %s", got, want)
	}
	wantResult(t, tr, 29.5, 60*m, 0, 0)
}

// The oracle knows no losses: a pool that loses clusters changes
// nothing.
func TestOracleIgnoresLosses(t *testing.T) {
	lossless := runOracle(parse(t, twoPools))
	w := parse(t, strings.ReplaceAll(twoPools, "boot_time:", "loss_per_cluster_hour: 5, boot_time:"))
	if w.LossAfter("a", 0) == 0 || w.LossAfter("b", 0) == 0 {
		t.Fatal("the pools lose no clusters")
	}
	if lossy := runOracle(w); !reflect.DeepEqual(lossless, lossy) {
		t.Errorf("losses changed the oracle's trace:\n%+v\n%+v", lossless, lossy)
	}
}
