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
	"container/heap"
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
	s := newSim(in)
	s.run()
	return s.est
}

type cluster struct {
	id       string
	state    berth.ClusterState
	slots    int
	free     int
	running  int
	order    int
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

type events []event

func (h events) Len() int { return len(h) }
func (h events) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h events) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *events) Push(x any)   { *h = append(*h, x.(event)) }
func (h *events) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// indexes is a min-heap of queue positions: the eligible jobs, first in
// placement order on top.
type indexes []int

func (h indexes) Len() int           { return len(h) }
func (h indexes) Less(i, j int) bool { return h[i] < h[j] }
func (h indexes) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *indexes) Push(x any)        { *h = append(*h, x.(int)) }
func (h *indexes) Pop() any {
	old := *h
	i := old[len(old)-1]
	*h = old[:len(old)-1]
	return i
}

type sim struct {
	in       Input
	now      time.Time
	clusters []*cluster
	byID     map[string]*cluster
	events   events
	seq      int
	eligible indexes
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

func newSim(in Input) *sim {
	s := &sim{in: in, now: in.Now, byID: map[string]*cluster{}, est: make([]Estimate, len(in.Queue)), left: len(in.Queue)}
	for i, c := range in.Clusters {
		sc := &cluster{id: c.ID, state: c.State, slots: max(c.Slots, 0), order: i}
		switch c.State {
		case berth.ClusterStarting:
			sc.starting = true
			s.live++
			s.supply += sc.slots
			ready := c.ReadyAt
			if !ready.After(s.now) {
				ready = s.now.Add(in.Boot / 10)
			}
			s.push(event{at: ready, cluster: sc, ready: true})
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
			continue
		}
		s.clusters = append(s.clusters, sc)
		if _, dup := s.byID[c.ID]; !dup && c.ID != "" {
			s.byID[c.ID] = sc
		}
	}
	for i, j := range in.Queue {
		if j.NotBefore.After(s.now) {
			s.deferred = append(s.deferred, i)
		} else {
			s.makeEligible(i)
		}
	}
	// The deferred come due by not_before, then in queue order.
	sortDeferred(s.deferred, in.Queue)
	return s
}

func (s *sim) push(e event) {
	e.seq = s.seq
	s.seq++
	heap.Push(&s.events, e)
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
	for len(s.events) > 0 && !s.events[0].at.After(s.now) {
		e := heap.Pop(&s.events).(event)
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

func (s *sim) makeEligible(i int) {
	heap.Push(&s.eligible, i)
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
	for s.free > 0 && len(s.eligible) > 0 {
		i := heap.Pop(&s.eligible).(int)
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
		c := &cluster{state: berth.ClusterStarting, slots: in.Slots, order: len(s.clusters)}
		s.clusters = append(s.clusters, c)
		s.live++
		s.supply += c.slots
		s.push(event{at: s.now.Add(in.Boot), cluster: c, ready: true})
	}
}

// demand is what new clusters could serve: the eligible jobs that do not
// wait for one cluster, and those behind the forecast.
func (s *sim) demand() int { return len(s.eligible) - s.waiting + s.in.Behind }

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
	if len(s.events) > 0 {
		earlier(s.events[0].at)
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
