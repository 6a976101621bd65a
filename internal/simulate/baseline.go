package simulate

import (
	"container/heap"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/berthhq/berth/internal/config"
	"github.com/berthhq/berth/internal/provider/sim"
	"github.com/berthhq/berth/internal/workload"
)

// The baselines are discrete-event computations over the workload's
// draws: no goroutines, no clock, the same trace for the same workload.
// This file holds what they share: the plan of every job and instance,
// an agenda of events, and clusters that boot, run jobs, get lost and
// are billed.

// maxRecoveries bounds how often one phase is recovered from a loss
// (recreated by a person, or retried by Airflow): past it the phase's
// unfinished jobs stay unsucceeded and its instance never ends, so that
// a pool whose clusters cannot outlive a job still ends the run.
const maxRecoveries = 100

// never is the loss time of a cluster that is never lost.
const never = time.Duration(math.MaxInt64)

// plan is a trace before any policy acted: every job of the workload in
// instance, phase and job order, none submitted (Submitted -1) or run,
// and every instance, none ended. A job whose phase never starts stays
// so, and counts as lost.
type plan struct {
	t   *Trace
	ins []workload.Instance
	// first[i][k] is the index in t.Jobs of instance i's phase k's job 0.
	first [][]int
	// dur is each job's drawn duration, by its index in t.Jobs.
	dur []time.Duration
}

func newPlan(w *workload.Workload, policy string) *plan {
	p := &plan{t: &Trace{Policy: policy}, ins: w.Instances()}
	for _, in := range p.ins {
		p.t.Instances = append(p.t.Instances, InstanceSpan{Pipeline: in.Pipeline, N: in.N, Arrival: in.Arrival, End: -1})
		var firsts []int
		for k, ph := range in.Phases {
			firsts = append(firsts, len(p.t.Jobs))
			for j, d := range ph.Durations {
				key := workload.JobKey{Pipeline: in.Pipeline, Instance: in.N, Phase: k, Job: j}
				p.t.Jobs = append(p.t.Jobs, Job{Key: key, Pool: ph.Pool, Submitted: -1})
				p.dur = append(p.dur, d)
			}
		}
		p.first = append(p.first, firsts)
	}
	return p
}

// jobs are the indexes in t.Jobs of instance i's phase k.
func (p *plan) jobs(i, k int) []int {
	n := len(p.ins[i].Phases[k].Durations)
	out := make([]int, n)
	for j := range out {
		out[j] = p.first[i][k] + j
	}
	return out
}

// submit marks a phase's jobs handed over at now.
func (p *plan) submit(i, k int, now time.Duration) {
	for _, x := range p.jobs(i, k) {
		p.t.Jobs[x].Submitted = now
	}
}

// roundRobin splits jobs over n clusters as a static DAG does: the j-th
// job to cluster j mod n.
func roundRobin(jobs []int, n int) [][]int {
	shares := make([][]int, n)
	for j, x := range jobs {
		shares[j%n] = append(shares[j%n], x)
	}
	return shares
}

// simSpec is the pool's sim block; a zero one if it has none.
func simSpec(p config.Pool) config.SimSpec {
	if p.Sim == nil {
		return config.SimSpec{}
	}
	return *p.Sim
}

// agenda orders events by time; at one instant a loss comes after
// everything else, so that a job ending exactly when its cluster is lost
// has ended, and otherwise first come, first served.
type agenda struct {
	events eventHeap
	seq    int
}

type event struct {
	at   time.Duration
	loss bool
	seq  int
	fn   func(now time.Duration)
}

func (a *agenda) at(t time.Duration, fn func(now time.Duration)) { a.push(t, false, fn) }

func (a *agenda) push(t time.Duration, loss bool, fn func(now time.Duration)) {
	a.seq++
	heap.Push(&a.events, event{at: t, loss: loss, seq: a.seq, fn: fn})
}

// run plays the events, and those they add, until none is left.
func (a *agenda) run() {
	for a.events.Len() > 0 {
		e := heap.Pop(&a.events).(event)
		e.fn(e.at)
	}
}

type eventHeap []event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	if h[i].loss != h[j].loss {
		return !h[i].loss
	}
	return h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// fleet is a plan being played on an agenda, with the clusters it made.
type fleet struct {
	*plan
	w *workload.Workload
	q agenda
	// made counts the clusters created per pool: the next one's ordinal,
	// which decides its fate (Workload.LossAfter).
	made map[string]int
}

func newFleet(w *workload.Workload, policy string) *fleet {
	return &fleet{plan: newPlan(w, policy), w: w, made: map[string]int{}}
}

// cluster is one cluster of a fleet. It runs the jobs submitted to it in
// order, at most its pool's slots at once, from when it is ready.
type cluster struct {
	f      *fleet
	i      int // in f.t.Clusters
	pool   config.Pool
	lossAt time.Duration
	ready  bool
	ended  bool
	queued []int
	// running holds the attempts in progress, in start order.
	running []*run
	// succeeded is told of each job that ended well on it; lost of its
	// loss, with the jobs it had not finished (running or queued), in
	// job order. Neither is called once it was terminated.
	succeeded func(job int, now time.Duration)
	lost      func(unfinished []int, now time.Duration)
}

// run is an attempt in progress: the job and its attempt's index.
type run struct {
	job, attempt int
	over         bool
}

// create requests a cluster of the pool at now. It boots for the pool's
// boot time and is lost at its LossAfter, if that comes before it ends.
func (f *fleet) create(pool config.Pool, now time.Duration, succeeded func(int, time.Duration), lost func([]int, time.Duration)) *cluster {
	n := f.made[pool.Name]
	f.made[pool.Name]++
	c := &cluster{f: f, i: len(f.t.Clusters), pool: pool, lossAt: never, succeeded: succeeded, lost: lost}
	f.t.Clusters = append(f.t.Clusters, Cluster{
		ID:        fmt.Sprintf("%s-%d", pool.Name, n),
		Pool:      pool.Name,
		Requested: now,
		Ready:     -1,
		Ended:     -1,
		Slots:     max(pool.Slots, 1),
	})
	if after := f.w.LossAfter(pool.Name, n); after > 0 {
		c.lossAt = now + after
		f.q.push(c.lossAt, true, c.lose)
	}
	if ready := now + simSpec(pool).BootTime.Std(); ready < c.lossAt {
		f.q.at(ready, c.becomeReady)
	}
	return c
}

func (c *cluster) trace() *Cluster { return &c.f.t.Clusters[c.i] }

// submit queues jobs behind those already queued.
func (c *cluster) submit(jobs []int, now time.Duration) {
	c.queued = append(c.queued, jobs...)
	c.fill(now)
}

func (c *cluster) becomeReady(now time.Duration) {
	if c.ended {
		return
	}
	c.ready = true
	c.trace().Ready = now
	c.fill(now)
}

// fill starts queued jobs while slots are free. An attempt that would
// outlast the cluster gets no end of its own: the loss ends it.
func (c *cluster) fill(now time.Duration) {
	for c.ready && !c.ended && len(c.running) < c.trace().Slots && len(c.queued) > 0 {
		x := c.queued[0]
		c.queued = c.queued[1:]
		j := &c.f.t.Jobs[x]
		j.Attempts = append(j.Attempts, Attempt{Cluster: c.trace().ID, Start: now, End: -1})
		r := &run{job: x, attempt: len(j.Attempts) - 1}
		c.running = append(c.running, r)
		if end := now + c.f.dur[x]; end <= c.lossAt {
			c.f.q.at(end, func(now time.Duration) { c.finish(r, now) })
		}
	}
}

func (c *cluster) finish(r *run, now time.Duration) {
	if r.over {
		return
	}
	r.over = true
	c.running = slices.DeleteFunc(c.running, func(o *run) bool { return o == r })
	j := &c.f.t.Jobs[r.job]
	j.Attempts[r.attempt].End = now
	j.Succeeded = true
	c.fill(now)
	c.succeeded(r.job, now)
}

// lose is the spot reclaim: the cluster ends now, its attempts with it.
func (c *cluster) lose(now time.Duration) {
	if c.ended {
		return
	}
	unfinished := slices.Clone(c.queued)
	for _, r := range c.running {
		a := &c.f.t.Jobs[r.job].Attempts[r.attempt]
		a.End, a.Lost = now, true
		unfinished = append(unfinished, r.job)
	}
	slices.Sort(unfinished)
	c.stop()
	c.bill(now, true)
	c.lost(unfinished, now)
}

// terminate ends the cluster at now: the attempts still running end now
// (not lost: the policy stopped them) and billing stops when it has
// terminated, or at its loss if that comes first.
func (c *cluster) terminate(now time.Duration) {
	if c.ended {
		return
	}
	for _, r := range c.running {
		c.f.t.Jobs[r.job].Attempts[r.attempt].End = now
	}
	c.stop()
	end := now + simSpec(c.pool).TerminateTime.Std()
	if c.lossAt < end {
		c.bill(c.lossAt, true)
	} else {
		c.bill(end, false)
	}
}

func (c *cluster) stop() {
	for _, r := range c.running {
		r.over = true
	}
	c.running, c.queued, c.ended = nil, nil, true
}

func (c *cluster) bill(end time.Duration, lost bool) {
	t := c.trace()
	t.Ended, t.Lost = end, lost
	t.Cost = sim.Bill(t.Ended-t.Requested, c.pool.PricePerHour)
}
