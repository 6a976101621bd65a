package simulate

import (
	"time"

	"github.com/berthhq/berth/internal/workload"
)

// runClusterPerPhase plays the SubDag variant: each phase of each
// instance makes fresh clusters, min(StaticClusters, its jobs), splits
// its jobs over them round robin, and terminates them all when its last
// job has ended.
//
// The loss of any of the phase's clusters, busy or not, fails the
// SubDag, and Airflow retries it whole with no person involved: every
// cluster of the phase is terminated at once, the attempts running on
// them end there (lost on the lost cluster), and the phase starts over
// on fresh clusters, every job run again, those that had succeeded too.
// After maxRecoveries retries the phase stays failed: its jobs are lost
// and its instance never ends. Airflow does not know max_clusters, so
// this policy ignores it.
func runClusterPerPhase(w *workload.Workload) *Trace {
	f := newFleet(w, PolicyClusterPerPhase)
	for i := range f.ins {
		in := &phaseInstance{f: f, i: i}
		f.q.at(f.ins[i].Arrival, func(now time.Duration) {
			f.submit(i, 0, now)
			in.start(0, now)
		})
	}
	f.q.run()
	return f.t
}

// phaseInstance is one pipeline instance under the SubDag variant.
type phaseInstance struct {
	f        *fleet
	i        int
	phase    int
	left     int
	retries  int
	clusters []*cluster
}

// start runs a try of phase k from now.
func (in *phaseInstance) start(k int, now time.Duration) {
	ph := in.f.ins[in.i].Phases[k]
	pool, _ := in.f.w.Pool(ph.Pool)
	jobs := in.f.jobs(in.i, k)
	in.phase, in.left, in.clusters = k, len(jobs), nil
	for _, share := range roundRobin(jobs, min(in.f.w.StaticClusters, len(jobs))) {
		c := in.f.create(pool, now, in.succeeded, in.lost)
		c.submit(share, now)
		in.clusters = append(in.clusters, c)
	}
}

func (in *phaseInstance) succeeded(_ int, now time.Duration) {
	in.left--
	if in.left > 0 {
		return
	}
	for _, c := range in.clusters {
		c.terminate(now)
	}
	if in.phase+1 == len(in.f.ins[in.i].Phases) {
		in.f.t.Instances[in.i].End = now
		return
	}
	in.retries = 0
	in.f.submit(in.i, in.phase+1, now)
	in.start(in.phase+1, now)
}

func (in *phaseInstance) lost(_ []int, now time.Duration) {
	for _, c := range in.clusters {
		c.terminate(now)
	}
	for _, x := range in.f.jobs(in.i, in.phase) {
		in.f.t.Jobs[x].Succeeded = false
	}
	if in.retries == maxRecoveries {
		return
	}
	in.retries++
	in.start(in.phase, now)
}
