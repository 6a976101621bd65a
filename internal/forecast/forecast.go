// Package forecast estimates when queued jobs will start, by running a
// pool's placement forward in virtual time from its live state.
//
// The simulation follows the scheduler's rules (package scheduler) in
// small:
//
//   - a running job frees its slot when it is expected to end: its start
//     plus its expected run time (package learn). A job already running
//     longer than that is expected to end soon: at now plus a tenth of its
//     expected run time;
//   - a starting cluster becomes ready at its expected time (its creation
//     plus the pool's learned boot time); one already late is expected
//     soon, at now plus a tenth of the boot time;
//   - at every moment something changes, free slots of ready clusters go
//     to the eligible jobs (not_before passed) in placement order: a job
//     takes its affinity cluster when that has room, else the busiest
//     cluster with room; a job that requires its affinity cluster waits
//     for it, and one whose cluster is not there never starts;
//   - when eligible jobs (those forecast and those behind them) exceed the
//     slots of the starting clusters, the pool starts clusters for them,
//     up to max_clusters, none while it is blocked or before its hold on
//     new clusters ends; each is ready after the boot time;
//   - a draining cluster takes no job and counts against max_clusters
//     until its jobs end.
//
// It leaves out what it cannot know (losses, new submissions, cancels,
// failures and their retries, clusters scaled down while only deferred
// work waits) and counts a terminating cluster as already gone. So an
// estimate is what happens if everything goes as expected from now.
//
// Run is pure: no clock (the time is Input.Now), no I/O, and the same input
// gives the same estimates. It costs O((jobs + slots) · log(jobs + slots))
// for the jobs it is given; the caller bounds them.
package forecast

import (
	"cmp"
	"slices"
	"time"

	"github.com/berthhq/berth/internal/berth"
)

// Input is one pool as it is at Now.
type Input struct {
	Now time.Time
	// Slots, MaxClusters and Boot describe the clusters the pool may
	// start: their slots, how many may be live, how long each takes to
	// become ready.
	Slots       int
	MaxClusters int
	Boot        time.Duration
	// Blocked pools start no cluster; StartAfter holds new clusters back
	// until then after failed creations.
	Blocked    bool
	StartAfter time.Time
	// Clusters are the pool's starting, ready and draining clusters,
	// oldest first: the order breaks ties between equally busy ones.
	Clusters []Cluster
	// Queue is the head of the pool's queue in placement order, deferred
	// jobs included where they fall in that order.
	Queue []Job
	// Behind counts the eligible jobs queued after Queue: they are demand
	// for new clusters, but get no estimate.
	Behind int
}

// Cluster is one live cluster.
type Cluster struct {
	ID    string
	State berth.ClusterState
	Slots int
	// ReadyAt is when a starting cluster is expected to be ready.
	ReadyAt time.Time
	// Running are the jobs it runs.
	Running []Running
}

// Running is one job on a cluster.
type Running struct {
	StartedAt time.Time
	Expected  time.Duration
}

// Job is one queued job.
type Job struct {
	ID string
	// Expected is how long it is expected to run.
	Expected  time.Duration
	NotBefore time.Time
	// Affinity is the cluster the job prefers, "" for none; Required makes
	// it the only one the job may run on.
	Affinity string
	Required bool
}

// Estimate is the forecast for one job.
type Estimate struct {
	// Start is when the job is expected to start; zero when the forecast
	// sees no way for it to (a blocked pool with no cluster, a required
	// cluster that is gone).
	Start time.Time
	// Cluster is the cluster it is expected to start on, "" for one the
	// pool has yet to start.
	Cluster string
	// Starting says that cluster is starting at Now.
	Starting bool
}

// Run forecasts the start of every job of in.Queue; the estimates come in
// the queue's order.
func Run(in Input) []Estimate {
	var f Forecaster
	return f.Run(in)
}

// Forecaster runs forecasts one after another, keeping its buffers from
// one to the next, so that a loop that forecasts after every pass does not
// allocate for it once they have grown. The zero value is ready to use.
type Forecaster struct{ s sim }

// Run is the package's Run; the estimates it returns are good until the
// next call.
func (f *Forecaster) Run(in Input) []Estimate {
	f.s.reset(in)
	f.s.run()
	return f.s.est
}

// ReadyAt is when a starting cluster expected ready at expected is
// expected ready, as the forecast has it at now: a cluster already late is
// expected in a tenth of the pool's boot time.
func ReadyAt(expected, now time.Time, boot time.Duration) time.Time {
	if !expected.After(now) {
		return now.Add(boot / 10)
	}
	return expected
}

type cluster struct {
	id       string
	state    berth.ClusterState
	slots    int
	free     int
	running  int
	starting bool // starting at Now
	// parked are the jobs that require this cluster and found it full.
	parked []int
}

// event is a slot freeing or a cluster becoming ready.
type event struct {
	at      time.Time
	seq     int
	cluster *cluster
	ready   bool
}

func eventLess(a, b event) bool {
	if !a.at.Equal(b.at) {
		return a.at.Before(b.at)
	}
	return a.seq < b.seq
}

// minHeap is a binary heap on a slice, typed so that pushing costs no
// allocation of its own.
type minHeap[T any] struct {
	items []T
	less  func(a, b T) bool
}

func (h *minHeap[T]) len() int { return len(h.items) }
func (h *minHeap[T]) min() T   { return h.items[0] }

func (h *minHeap[T]) push(x T) {
	h.items = append(h.items, x)
	for i := len(h.items) - 1; i > 0; {
		parent := (i - 1) / 2
		if !h.less(h.items[i], h.items[parent]) {
			break
		}
		h.items[i], h.items[parent] = h.items[parent], h.items[i]
		i = parent
	}
}

func (h *minHeap[T]) pop() T {
	top := h.items[0]
	last := len(h.items) - 1
	h.items[0] = h.items[last]
	h.items = h.items[:last]
	for i := 0; ; {
		l, r, least := 2*i+1, 2*i+2, i
		if l < last && h.less(h.items[l], h.items[least]) {
			least = l
		}
		if r < last && h.less(h.items[r], h.items[least]) {
			least = r
		}
		if least == i {
			break
		}
		h.items[i], h.items[least] = h.items[least], h.items[i]
		i = least
	}
	return top
}

type sim struct {
	in       Input
	now      time.Time
	clusters []*cluster
	// made are the clusters made so far, for reuse by the next run.
	made   []*cluster
	byID   map[string]*cluster
	events minHeap[event]
	seq    int
	// eligible holds the queue positions of the eligible jobs.
	eligible positions
	// deferred are the queue positions not yet eligible, by not_before;
	// nextDeferred is the first of them still to come.
	deferred     []int
	nextDeferred int
	// waiting counts the eligible jobs that require their affinity
	// cluster: they are no demand, since a new cluster cannot help them.
	waiting int
	est     []Estimate
	left    int // jobs neither placed nor known never to start
	// live counts what max_clusters counts; supply the slots of clusters
	// not yet ready; free the free slots of ready ones.
	live, supply, free int
}

// reset starts a run over in, keeping the buffers of the last.
func (s *sim) reset(in Input) {
	if s.byID == nil {
		s.byID = map[string]*cluster{}
		s.events.less = eventLess
		s.eligible.later.less = func(a, b int) bool { return a < b }
	}
	clear(s.byID)
	s.in, s.now = in, in.Now
	s.clusters, s.events.items, s.deferred = s.clusters[:0], s.events.items[:0], s.deferred[:0]
	s.eligible.reset()
	s.seq, s.nextDeferred, s.waiting, s.live, s.supply, s.free = 0, 0, 0, 0, 0, 0
	s.est = slices.Grow(s.est[:0], len(in.Queue))[:len(in.Queue)]
	clear(s.est)
	s.left = len(in.Queue)
	for _, c := range in.Clusters {
		sc := s.newCluster(c.ID, c.State, max(c.Slots, 0))
		switch c.State {
		case berth.ClusterStarting:
			sc.starting = true
			s.live++
			s.supply += sc.slots
			s.push(event{at: ReadyAt(c.ReadyAt, s.now, in.Boot), cluster: sc, ready: true})
		case berth.ClusterReady, berth.ClusterDraining:
			for _, r := range c.Running {
				end := r.StartedAt.Add(r.Expected)
				if !end.After(s.now) {
					end = s.now.Add(r.Expected / 10)
				}
				sc.running++
				s.push(event{at: end, cluster: sc})
			}
			if c.State == berth.ClusterReady {
				s.live++
				sc.free = max(sc.slots-sc.running, 0)
				s.free += sc.free
			} else if sc.running > 0 {
				s.live++
			}
		default:
			s.clusters = s.clusters[:len(s.clusters)-1]
			continue
		}
		if _, dup := s.byID[c.ID]; !dup && c.ID != "" {
			s.byID[c.ID] = sc
		}
	}
	for i, j := range in.Queue {
		if j.NotBefore.After(s.now) {
			s.deferred = append(s.deferred, i)
		} else {
			s.eligible.first = append(s.eligible.first, i)
			if requires(j) {
				s.waiting++
			}
		}
	}
	// The deferred come due by not_before, then in queue order.
	sortDeferred(s.deferred, in.Queue)
}

// newCluster is a cluster for this run, reusing one of an earlier run.
func (s *sim) newCluster(id string, state berth.ClusterState, slots int) *cluster {
	var c *cluster
	if n := len(s.clusters); n < len(s.made) {
		c = s.made[n]
		*c = cluster{parked: c.parked[:0]}
	} else {
		c = &cluster{}
		s.made = append(s.made, c)
	}
	c.id, c.state, c.slots = id, state, slots
	s.clusters = append(s.clusters, c)
	return c
}

func (s *sim) push(e event) {
	e.seq = s.seq
	s.seq++
	s.events.push(e)
}

func (s *sim) run() {
	for s.left > 0 {
		s.apply()
		s.place()
		s.scaleUp()
		next, ok := s.next()
		if !ok {
			return // what is left never starts
		}
		s.now = next
	}
}

// apply takes in the events due by now and the jobs whose not_before has
// come.
func (s *sim) apply() {
	for s.events.len() > 0 && !s.events.min().at.After(s.now) {
		e := s.events.pop()
		c := e.cluster
		if e.ready {
			c.state = berth.ClusterReady
			c.free = c.slots
			s.free += c.free
			s.supply -= c.slots
			s.unpark(c)
			continue
		}
		c.running--
		switch c.state {
		case berth.ClusterReady:
			c.free++
			s.free++
			s.unpark(c)
		case berth.ClusterDraining:
			if c.running == 0 {
				s.live--
			}
		}
	}
	for s.nextDeferred < len(s.deferred) {
		i := s.deferred[s.nextDeferred]
		if s.in.Queue[i].NotBefore.After(s.now) {
			break
		}
		s.makeEligible(i)
		s.nextDeferred++
	}
}

func requires(j Job) bool { return j.Required && j.Affinity != "" }

// positions are the eligible jobs' queue positions, taken first in
// placement order. Most are eligible from the start and are taken in
// order; only those that become eligible later (a not_before passed, a
// required cluster with room again) need a heap.
type positions struct {
	first []int
	next  int
	later minHeap[int]
}

func (p *positions) reset() {
	p.first, p.next, p.later.items = p.first[:0], 0, p.later.items[:0]
}

func (p *positions) len() int { return len(p.first) - p.next + p.later.len() }

func (p *positions) pop() int {
	if p.later.len() > 0 && (p.next == len(p.first) || p.later.min() < p.first[p.next]) {
		return p.later.pop()
	}
	p.next++
	return p.first[p.next-1]
}

func (s *sim) makeEligible(i int) {
	s.eligible.later.push(i)
	if requires(s.in.Queue[i]) {
		s.waiting++
	}
}

// unpark makes the jobs that wait for c eligible again once it has room.
func (s *sim) unpark(c *cluster) {
	if c.free == 0 || len(c.parked) == 0 {
		return
	}
	for _, i := range c.parked {
		s.makeEligible(i)
	}
	c.parked = c.parked[:0]
}

// place gives free slots to eligible jobs in placement order.
func (s *sim) place() {
	for s.free > 0 && s.eligible.len() > 0 {
		i := s.eligible.pop()
		j := s.in.Queue[i]
		if requires(j) {
			s.waiting--
		}
		var c *cluster
		if j.Affinity != "" {
			home := s.byID[j.Affinity]
			switch {
			case home != nil && home.state == berth.ClusterReady && home.free > 0:
				c = home
			case !j.Required:
			case home == nil || home.state == berth.ClusterDraining:
				// Gone or leaving: the scheduler fails such a job.
				s.left--
				continue
			default:
				home.parked = append(home.parked, i)
				continue
			}
		}
		if c == nil {
			c = s.busiest()
		}
		c.free--
		c.running++
		s.free--
		s.est[i] = Estimate{Start: s.now, Cluster: c.id, Starting: c.starting}
		s.left--
		s.push(event{at: s.now.Add(max(j.Expected, 0)), cluster: c})
	}
}

// busiest is the ready cluster with room running the most jobs, the
// oldest among equals. There is one: place runs only while s.free > 0.
func (s *sim) busiest() *cluster {
	var best *cluster
	for _, c := range s.clusters {
		if c.state != berth.ClusterReady || c.free == 0 {
			continue
		}
		if best == nil || c.running > best.running {
			best = c
		}
	}
	return best
}

// scaleUp starts clusters for the eligible jobs the starting ones will not
// absorb, as the scheduler does.
func (s *sim) scaleUp() {
	in := s.in
	demand := s.demand()
	if in.Blocked || in.Slots <= 0 || demand <= s.supply || s.now.Before(in.StartAfter) {
		return
	}
	n := min((demand-s.supply+in.Slots-1)/in.Slots, in.MaxClusters-s.live)
	for range n {
		c := s.newCluster("", berth.ClusterStarting, in.Slots)
		s.live++
		s.supply += c.slots
		s.push(event{at: s.now.Add(in.Boot), cluster: c, ready: true})
	}
}

// demand is what new clusters could serve: the eligible jobs that do not
// wait for one cluster, and those behind the forecast.
func (s *sim) demand() int { return s.eligible.len() - s.waiting + s.in.Behind }

// next is the next moment something changes: an event, a deferred job
// coming due, or the end of the hold on new clusters while they are
// wanted. ok is false when nothing will.
func (s *sim) next() (time.Time, bool) {
	var t time.Time
	earlier := func(c time.Time) {
		if t.IsZero() || c.Before(t) {
			t = c
		}
	}
	if s.events.len() > 0 {
		earlier(s.events.min().at)
	}
	if s.nextDeferred < len(s.deferred) {
		earlier(s.in.Queue[s.deferred[s.nextDeferred]].NotBefore)
	}
	if s.now.Before(s.in.StartAfter) && !s.in.Blocked && s.demand() > s.supply {
		earlier(s.in.StartAfter)
	}
	return t, !t.IsZero()
}

// sortDeferred orders queue positions by not_before, then position.
func sortDeferred(d []int, q []Job) {
	slices.SortFunc(d, func(a, b int) int {
		if c := q[a].NotBefore.Compare(q[b].NotBefore); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
}
