package executor

import (
	"container/heap"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/berthhq/berth/internal/clock"
)

// Sim is a discrete-event executor on a virtual clock. Tasks are events:
// Go schedules one now, Call one after a latency drawn by Latency, and
// AfterFunc one at its due time. Run takes the events one at a time, in
// order of time, and events due at the same time in an order drawn from the
// seed, so different seeds try different interleavings and one seed always
// replays the same one.
//
// Sim is meant to be driven from one goroutine; its methods are safe to
// call from others, but then the order of events is theirs to decide.
type Sim struct {
	mu    sync.Mutex
	now   time.Time
	rng   *rand.Rand
	seq   uint64
	queue events
	steps uint64
	// Latency draws how long a Call takes before it runs; nil means no
	// time at all.
	Latency func(r *rand.Rand) time.Duration
}

var _ Executor = (*Sim)(nil)

// NewSim returns a Sim whose virtual clock starts at start and whose
// ordering and latencies draw on seed.
func NewSim(start time.Time, seed uint64) *Sim {
	return &Sim{now: start, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Rand is the executor's random source, for a harness that wants its draws
// in the same stream (and so the same replay) as the executor's.
func (s *Sim) Rand() *rand.Rand { return s.rng }

// Now returns the virtual time.
func (s *Sim) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

// After returns a channel that receives the virtual time once d has
// passed. Nothing under Sim may block on it; it is there for code that
// selects on it alongside other channels.
func (s *Sim) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	s.AfterFunc(d, func() { ch <- s.Now() })
	return ch
}

// AfterFunc schedules fn once d has passed.
func (s *Sim) AfterFunc(d time.Duration, fn func()) clock.Timer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scheduleLocked(s.now.Add(max(d, 0)), fn)
}

// Go schedules fn now.
func (s *Sim) Go(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scheduleLocked(s.now, fn)
}

// Call schedules fn after a latency drawn by Latency.
func (s *Sim) Call(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var d time.Duration
	if s.Latency != nil {
		d = max(s.Latency(s.rng), 0)
	}
	s.scheduleLocked(s.now.Add(d), fn)
}

func (s *Sim) scheduleLocked(at time.Time, fn func()) *event {
	s.seq++
	e := &event{at: at, tie: s.rng.Uint64(), seq: s.seq, fn: fn, index: -1, sim: s}
	heap.Push(&s.queue, e)
	return e
}

// Step runs the next event, moving the clock to its time. It reports false
// when there is none.
func (s *Sim) Step() bool {
	s.mu.Lock()
	if s.queue.Len() == 0 {
		s.mu.Unlock()
		return false
	}
	e := heap.Pop(&s.queue).(*event)
	if e.at.After(s.now) {
		s.now = e.at
	}
	e.done = true
	s.steps++
	s.mu.Unlock()
	e.fn()
	return true
}

// RunUntil runs events due up to and including t, then sets the clock to
// t. It returns the number of events it ran.
func (s *Sim) RunUntil(t time.Time) int {
	n := 0
	for {
		s.mu.Lock()
		due := s.queue.Len() > 0 && !s.queue[0].at.After(t)
		s.mu.Unlock()
		if !due {
			break
		}
		s.Step()
		n++
	}
	s.mu.Lock()
	if t.After(s.now) {
		s.now = t
	}
	s.mu.Unlock()
	return n
}

// Next is the time of the next event, and false when there is none.
func (s *Sim) Next() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queue.Len() == 0 {
		return time.Time{}, false
	}
	return s.queue[0].at, true
}

// Pending is the number of events waiting.
func (s *Sim) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queue.Len()
}

// Steps is the number of events run so far.
func (s *Sim) Steps() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.steps
}

type event struct {
	at    time.Time
	tie   uint64
	seq   uint64
	fn    func()
	index int
	done  bool
	sim   *Sim
}

// Stop removes the event from the queue if it has not run.
func (e *event) Stop() bool {
	s := e.sim
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.done || e.index < 0 {
		return false
	}
	heap.Remove(&s.queue, e.index)
	e.done = true
	return true
}

// events is a min-heap by time, then by the seeded tie-break.
type events []*event

func (q events) Len() int { return len(q) }
func (q events) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	if q[i].tie != q[j].tie {
		return q[i].tie < q[j].tie
	}
	return q[i].seq < q[j].seq
}
func (q events) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *events) Push(x any) {
	e := x.(*event)
	e.index = len(*q)
	*q = append(*q, e)
}
func (q *events) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	e.index = -1
	return e
}
