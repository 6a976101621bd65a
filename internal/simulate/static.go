package simulate

import (
	"time"

	"github.com/berthhq/berth/internal/workload"
)

// runAirflowStatic plays today's basic DAG: each pipeline instance makes
// its own clusters for each pool it uses when its first phase on that
// pool is to start, and terminates them when its last phase on that pool
// has ended; in between they sit idle through the phases on other pools.
// A pool gets min(StaticClusters, the pipeline's largest phase on it)
// clusters, and a phase's jobs are split over them round robin, as a DAG
// hard-codes its branches. Phases run one after another.
//
// A lost cluster takes its running and queued jobs down with it; after
// ManualResponse a person recreates it (a new cluster, booting again)
// and clears the failed tasks, which then run on it: one intervention.
// A cluster lost while it had nothing to do is found out when a phase
// next gives it jobs, and recreated ManualResponse after that. A person
// who would recreate a cluster for the (maxRecoveries+1)-th time in one
// phase gives up instead: the instance's clusters are terminated and its
// unfinished jobs lost. Airflow does not know max_clusters, so this
// policy ignores it.
func runAirflowStatic(w *workload.Workload) *Trace {
	f := newFleet(w, PolicyAirflowStatic)
	for i := range f.ins {
		in := &staticInstance{f: f, i: i, lanes: map[string][]*lane{}, last: map[string]int{}, width: map[string]int{}}
		for k, ph := range f.ins[i].Phases {
			in.last[ph.Pool] = k
			in.width[ph.Pool] = max(in.width[ph.Pool], len(ph.Durations))
		}
		f.q.at(f.ins[i].Arrival, func(now time.Duration) { in.start(0, now) })
	}
	f.q.run()
	return f.t
}

// staticInstance is one pipeline instance under the static DAG.
type staticInstance struct {
	f *fleet
	i int
	// lanes are the instance's clusters per pool, made on first use.
	lanes map[string][]*lane
	// last is each pool's last phase; width its largest phase.
	last, width map[string]int
	phase       int
	// left counts the phase's jobs not yet succeeded; recoveries the
	// clusters recreated during it.
	left, recoveries int
	gaveUp           bool
}

// lane is one of the DAG's fixed clusters for a pool: the cluster in it
// now, replaced when a person recreates it.
type lane struct {
	pool string
	c    *cluster
	// lostUnseen is set when its cluster was lost with nothing to do;
	// nobody knows until a phase gives it jobs.
	lostUnseen bool
}

func (in *staticInstance) start(k int, now time.Duration) {
	ph := in.f.ins[in.i].Phases[k]
	in.phase, in.left, in.recoveries = k, len(ph.Durations), 0
	in.f.submit(in.i, k, now)
	lanes := in.lanes[ph.Pool]
	if lanes == nil {
		for range min(in.f.w.StaticClusters, in.width[ph.Pool]) {
			l := &lane{pool: ph.Pool}
			l.c = in.create(l, now)
			lanes = append(lanes, l)
		}
		in.lanes[ph.Pool] = lanes
	}
	for n, share := range roundRobin(in.f.jobs(in.i, k), len(lanes)) {
		l := lanes[n]
		switch {
		case len(share) == 0:
		case l.lostUnseen:
			l.lostUnseen = false
			in.recover(l, share, now)
		default:
			l.c.submit(share, now)
		}
	}
}

func (in *staticInstance) create(l *lane, now time.Duration) *cluster {
	pool, _ := in.f.w.Pool(l.pool)
	return in.f.create(pool, now, in.succeeded, func(unfinished []int, now time.Duration) {
		if len(unfinished) == 0 {
			l.lostUnseen = true
			return
		}
		in.recover(l, unfinished, now)
	})
}

// recover is a person noticing at now that the lane's cluster is gone:
// after ManualResponse they recreate it and clear its failed tasks, or,
// past maxRecoveries in the phase, give up on the instance instead.
func (in *staticInstance) recover(l *lane, jobs []int, now time.Duration) {
	in.f.q.at(now+in.f.w.ManualResponse, func(now time.Duration) {
		if in.gaveUp {
			return
		}
		if in.recoveries == maxRecoveries {
			in.giveUp(now)
			return
		}
		in.recoveries++
		in.f.t.Interventions++
		l.c = in.create(l, now)
		l.c.submit(jobs, now)
	})
}

func (in *staticInstance) succeeded(_ int, now time.Duration) {
	in.left--
	if in.left > 0 {
		return
	}
	phases := in.f.ins[in.i].Phases
	pool := phases[in.phase].Pool
	if in.last[pool] == in.phase {
		for _, l := range in.lanes[pool] {
			l.c.terminate(now)
		}
	}
	if in.phase+1 == len(phases) {
		in.f.t.Instances[in.i].End = now
		return
	}
	in.start(in.phase+1, now)
}

// giveUp leaves the instance unfinished and ends its clusters.
func (in *staticInstance) giveUp(now time.Duration) {
	in.gaveUp = true
	for _, lanes := range in.lanes {
		for _, l := range lanes {
			l.c.terminate(now)
		}
	}
}
