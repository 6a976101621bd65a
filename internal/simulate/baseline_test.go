package simulate

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/config"
	"github.com/berthhq/berth/internal/provider/sim"
	"github.com/berthhq/berth/internal/workload"
)

// baselines are the policies of this file's tests, by name.
var baselines = []struct {
	name string
	run  func(*workload.Workload) *Trace
}{
	{PolicyAirflowStatic, runAirflowStatic},
	{PolicyClusterPerPhase, runClusterPerPhase},
	{PolicyOracle, runOracle},
}

func parse(t *testing.T, yaml string) *workload.Workload {
	t.Helper()
	w, err := workload.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("workload: %v", err)
	}
	return w
}

func key(pipeline string, instance, phase, job int) workload.JobKey {
	return workload.JobKey{Pipeline: pipeline, Instance: instance, Phase: phase, Job: job}
}

// wantClusters compares the trace's clusters with want, the costs within
// rounding.
func wantClusters(t *testing.T, tr *Trace, want []Cluster) {
	t.Helper()
	if len(tr.Clusters) != len(want) {
		t.Errorf("%d clusters, want %d:\n%s", len(tr.Clusters), len(want), clusterLines(tr.Clusters))
	}
	for i := range min(len(tr.Clusters), len(want)) {
		got, w := tr.Clusters[i], want[i]
		costOK := math.Abs(got.Cost-w.Cost) < 1e-9
		got.Cost, w.Cost = 0, 0
		if got != w || !costOK {
			t.Errorf("cluster %d = %+v cost %g, want %+v cost %g", i, got, tr.Clusters[i].Cost, w, want[i].Cost)
		}
	}
}

func clusterLines(cs []Cluster) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "\t%+v\n", c)
	}
	return b.String()
}

// wantJobs compares the trace's jobs, in order, with want.
func wantJobs(t *testing.T, tr *Trace, want []Job) {
	t.Helper()
	if len(tr.Jobs) != len(want) {
		t.Errorf("%d jobs, want %d", len(tr.Jobs), len(want))
	}
	for i := range min(len(tr.Jobs), len(want)) {
		if !reflect.DeepEqual(tr.Jobs[i], want[i]) {
			t.Errorf("job %d =\n\t%+v, want\n\t%+v", i, tr.Jobs[i], want[i])
		}
	}
}

func wantResult(t *testing.T, tr *Trace, cost float64, latency time.Duration, interventions, jobsLost int) {
	t.Helper()
	r := tr.Measure()
	if math.Abs(r.Cost-cost) > 1e-9 || time.Duration(r.LatencyMean) != latency || r.Interventions != interventions || r.JobsLost != jobsLost {
		t.Errorf("cost %g, latency %v, interventions %d, jobs lost %d; want %g, %v, %d, %d",
			r.Cost, time.Duration(r.LatencyMean), r.Interventions, r.JobsLost, cost, latency, interventions, jobsLost)
	}
}

// checkTrace holds every policy to what a faithful trace is: each job of
// the workload once, in order; clusters billed from request to end;
// attempts only on a cluster while it is ready, never more at once than
// its slots, in sequence per job and after its submission; lost attempts
// end with their cluster; a succeeded job's last attempt not lost; each
// phase submitted once the one before succeeded; an instance ended at its
// last job's end exactly when all its jobs succeeded.
func checkTrace(t *testing.T, w *workload.Workload, tr *Trace) {
	t.Helper()
	clusters := map[string]Cluster{}
	for _, c := range tr.Clusters {
		if _, dup := clusters[c.ID]; dup {
			t.Errorf("cluster %s twice", c.ID)
		}
		clusters[c.ID] = c
		if c.Ended < c.Requested || c.Ready != -1 && (c.Ready < c.Requested || c.Ready > c.Ended) {
			t.Errorf("cluster %+v: times out of order", c)
		}
		if want := sim.Bill(c.Ended-c.Requested, poolOf(t, w, c.Pool).PricePerHour); c.Cost != want {
			t.Errorf("cluster %s costs %g, want %g", c.ID, c.Cost, want)
		}
		if c.Slots != max(poolOf(t, w, c.Pool).Slots, 1) {
			t.Errorf("cluster %s has %d slots", c.ID, c.Slots)
		}
	}
	type edge struct {
		at    time.Duration
		delta int
	}
	edges := map[string][]edge{}
	ins := w.Instances()
	x := 0
	for i, in := range ins {
		end := time.Duration(-1)
		done := true
		prevEnd := in.Arrival
		for k, ph := range in.Phases {
			phaseEnd, phaseDone := prevEnd, true
			for jn := range ph.Durations {
				if x >= len(tr.Jobs) {
					t.Fatalf("trace has %d jobs, the workload more", len(tr.Jobs))
				}
				j := tr.Jobs[x]
				x++
				if j.Key != key(in.Pipeline, in.N, k, jn) || j.Pool != ph.Pool {
					t.Fatalf("job %d is %+v on %s, want %+v on %s", x-1, j.Key, j.Pool, key(in.Pipeline, in.N, k, jn), ph.Pool)
				}
				if !done {
					if j.Submitted != -1 || len(j.Attempts) > 0 || j.Succeeded {
						t.Errorf("job %+v ran after a phase before it failed", j.Key)
					}
					continue
				}
				if j.Submitted != prevEnd {
					t.Errorf("job %+v submitted at %v, want %v (its phase's start)", j.Key, j.Submitted, prevEnd)
				}
				from := j.Submitted
				for n, a := range j.Attempts {
					c, ok := clusters[a.Cluster]
					switch {
					case !ok:
						t.Errorf("job %+v ran on unknown cluster %q", j.Key, a.Cluster)
						continue
					case c.Pool != ph.Pool:
						t.Errorf("job %+v of pool %s ran on %s", j.Key, ph.Pool, c.ID)
					case c.Ready == -1 || a.Start < c.Ready || a.End > c.Ended:
						t.Errorf("job %+v attempt %d [%v, %v] outside cluster %+v's ready time", j.Key, n, a.Start, a.End, c)
					case a.Start < from || a.End < a.Start:
						t.Errorf("job %+v attempt %d [%v, %v] before its submission or previous attempt", j.Key, n, a.Start, a.End)
					case a.Lost && (!c.Lost || a.End != c.Ended):
						t.Errorf("job %+v attempt %d lost at %v, but cluster %+v was not", j.Key, n, a.End, c)
					}
					from = a.End
					edges[a.Cluster] = append(edges[a.Cluster], edge{a.Start, 1}, edge{a.End, -1})
				}
				if j.Succeeded {
					last := j.Attempts[len(j.Attempts)-1]
					if last.Lost || last.End-last.Start != ph.Durations[jn] {
						t.Errorf("job %+v succeeded, but its last attempt %+v lost or short of %v", j.Key, last, ph.Durations[jn])
					}
					phaseEnd = max(phaseEnd, last.End)
				} else {
					phaseDone = false
				}
			}
			prevEnd, done = phaseEnd, done && phaseDone
		}
		if done {
			end = prevEnd
		}
		if got := tr.Instances[i]; got != (InstanceSpan{in.Pipeline, in.N, in.Arrival, end}) {
			t.Errorf("instance %+v, want end %v", got, end)
		}
	}
	if x != len(tr.Jobs) || len(tr.Instances) != len(ins) {
		t.Errorf("trace has %d jobs and %d instances, the workload %d and %d", len(tr.Jobs), len(tr.Instances), x, len(ins))
	}
	for id, es := range edges {
		slices.SortFunc(es, func(a, b edge) int { return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.delta, b.delta)) })
		running := 0
		for _, e := range es {
			if running += e.delta; running > clusters[id].Slots {
				t.Errorf("cluster %s runs %d jobs at %v, has %d slots", id, running, e.at, clusters[id].Slots)
				break
			}
		}
	}
}

func poolOf(t *testing.T, w *workload.Workload, name string) config.Pool {
	t.Helper()
	p, ok := w.Pool(name)
	if !ok {
		t.Fatalf("no pool %q", name)
	}
	return p
}

// maxRandomJobs is the most jobs a phase of a random workload has.
const maxRandomJobs = 6

// randomWorkload is a small workload drawn from seed: a few pools and
// pipelines of a few phases, losing clusters at the given rate.
func randomWorkload(t *testing.T, seed uint64, lossRate float64) *workload.Workload {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 0))
	var b strings.Builder
	fmt.Fprintf(&b, "seed: %d\nstatic_clusters: %d\nmanual_response: %dm\npools:\n", seed, 1+r.IntN(3), r.IntN(60))
	pools := 1 + r.IntN(3)
	for p := range pools {
		fmt.Fprintf(&b, "  - {name: p%d, provider: sim, slots: %d, max_clusters: 2, price_per_hour: %d, sim: {boot_time: %dm, terminate_time: %dm, loss_per_cluster_hour: %g}}\n",
			p, 1+r.IntN(4), 1+r.IntN(20), r.IntN(20), r.IntN(10), lossRate)
	}
	b.WriteString("pipelines:\n")
	for n := range 1 + r.IntN(3) {
		fmt.Fprintf(&b, "  - name: q%d\n    count: %d\n    every: %dm\n    phases:\n", n, 1+r.IntN(5), 10+r.IntN(120))
		for range 1 + r.IntN(4) {
			fmt.Fprintf(&b, "      - {pool: p%d, jobs: %d, duration: %dm, jitter: %d%%}\n", r.IntN(pools), 1+r.IntN(maxRandomJobs), 5+r.IntN(120), r.IntN(50))
		}
	}
	return parse(t, b.String())
}

func TestBaselinesKeepTheirInvariants(t *testing.T) {
	for seed := range uint64(40) {
		for _, rate := range []float64{0, 0.5, 3} {
			w := randomWorkload(t, seed, rate)
			for _, b := range baselines {
				t.Run(fmt.Sprintf("%d/%g/%s", seed, rate, b.name), func(t *testing.T) {
					tr := b.run(w)
					if tr.Policy != b.name {
						t.Errorf("policy %q", tr.Policy)
					}
					checkTrace(t, w, tr)
					if !reflect.DeepEqual(tr, b.run(w)) {
						t.Error("a second run gave another trace")
					}
				})
			}
		}
	}
}

// Without losses, on one-slot clusters and with as many static clusters
// as a phase can have jobs (so that no baseline queues a job), the oracle costs no
// more than the Airflow baselines and no Airflow baseline loses a job or
// needs a person. With more slots the oracle can cost a little more: a
// job stays on the cluster it started on, so its clusters can be more
// than the running jobs need once some have ended; and where a baseline
// queues jobs it boots fewer clusters, which can cost less.
func TestOracleIsTheCheapestWhenNothingQueues(t *testing.T) {
	for seed := range uint64(200) {
		w := randomWorkload(t, seed, 0)
		for i := range w.Pools {
			w.Pools[i].Slots = 1
		}
		w.StaticClusters = maxRandomJobs
		oracle := runOracle(w).Measure()
		for _, run := range []func(*workload.Workload) *Trace{runAirflowStatic, runClusterPerPhase} {
			tr := run(w)
			r := tr.Measure()
			if oracle.Cost > r.Cost+1e-9 {
				t.Errorf("seed %d: oracle costs %g, %s %g", seed, oracle.Cost, tr.Policy, r.Cost)
			}
			if oracle.LatencyMean > r.LatencyMean {
				t.Errorf("seed %d: oracle's mean latency %v, %s's %v", seed, oracle.LatencyMean, tr.Policy, r.LatencyMean)
			}
			if r.Interventions != 0 || r.JobsLost != 0 {
				t.Errorf("seed %d: %s: %d interventions, %d jobs lost without losses", seed, tr.Policy, r.Interventions, r.JobsLost)
			}
		}
	}
}
