package service

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/clock"
)

// Commit failures hold the loop back, from the first wait to the last,
// doubling: a store that cannot write (a full disk) is retried a few times a
// second at first and then every half minute, not in a tight loop.
const (
	commitBackoffMin = 100 * time.Millisecond
	commitBackoffMax = 30 * time.Second
)

// runner is how the loop runs on its executor. Inputs (watcher reports,
// call results, API commands) go to the inbox and wake the loop; passes run
// one at a time, each taking the whole inbox; a timer wakes the loop when
// something comes due. Nothing here blocks, so the same code runs on the
// simulated executor, where there is only one goroutine.
type runner struct {
	mu     sync.Mutex
	inbox  []any
	wanted bool // a pass is wanted
	active bool // a task is running passes, or is scheduled to
	// closed is set by Stop and Abandon: nothing new starts, and tasks
	// already scheduled do nothing when they run.
	closed bool
	timer  clock.Timer
	// holdUntil keeps passes back after a failed commit.
	holdUntil time.Time
	// news is set when the API stored a submission or a cancel request
	// since the loop last read them; lastPickUp is when it did.
	news       bool
	lastPickUp time.Time
	// fresh are the jobs the API stored that the loop has not taken yet,
	// as the store answered them: a pass takes them rather than read them
	// back (see loop.pickUp).
	fresh []berth.Job
	// wg counts the tasks started on the executor, so Stop can wait for
	// them.
	wg sync.WaitGroup
}

// Pass is what one pass of the loop did, for tests and the simulator.
type Pass struct {
	At time.Time
	// Inputs is the number of reports, results and commands it took in.
	Inputs int
	// Jobs and Clusters are how many of each the pass wrote; Events how
	// many events.
	Jobs, Clusters, Events int
	// Calls is the number of provider calls it started.
	Calls int
	// Illegal counts the state changes the pass refused as illegal moves
	// (see berth's transition tables): each is a bug.
	Illegal int
	// Err is the commit's error (or the reload's), if any.
	Err error
	// Took is the pass's wall time (in a simulation too: it measures the
	// code, not the simulated world).
	Took time.Duration
}

// post hands an input to the loop and wakes it.
func (s *Service) post(in any) {
	r := &s.run
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.inbox = append(r.inbox, in)
	r.mu.Unlock()
	s.Wake()
}

// stored tells the loop that the API stored what it must read (a cancel
// request), and wakes it to pick that up.
func (s *Service) stored() {
	s.newsPending()
	s.Wake()
}

// submitted tells the loop of the jobs a submission created (those of out
// with Created), and wakes it to take them. Each copy gets steps of its
// own, since the loop changes their states; the rest of a submission never
// changes.
func (s *Service) submitted(out ...berth.Submitted) {
	s.run.mu.Lock()
	s.run.fresh = slices.Grow(s.run.fresh, len(out))
	had := len(s.run.fresh)
	for i := range out {
		if out[i].Created {
			j := out[i].Job
			j.Steps = slices.Clone(j.Steps)
			s.run.fresh = append(s.run.fresh, j)
		}
	}
	added := len(s.run.fresh) > had
	s.run.mu.Unlock()
	if added {
		s.Wake()
	}
}

// takeFresh hands the loop the jobs the API stored since it last took
// them, in Seq order.
func (s *Service) takeFresh() []berth.Job {
	s.run.mu.Lock()
	fresh := s.run.fresh
	s.run.fresh = nil
	s.run.mu.Unlock()
	slices.SortFunc(fresh, func(a, b berth.Job) int { return cmp.Compare(a.Seq, b.Seq) })
	return fresh
}

// newsPending makes the next pass read the store for submissions and
// cancel requests.
func (s *Service) newsPending() {
	s.run.mu.Lock()
	s.run.news = true
	s.run.mu.Unlock()
}

// pickUpDue reports whether the pass should read new submissions and
// cancel requests from the store: when the API says it stored something
// its word does not carry (a cancel request), after a pick-up failed, and
// at least once a tick in case something else wrote them.
func (s *Service) pickUpDue(now time.Time) bool {
	r := &s.run
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.news && now.Sub(r.lastPickUp) < s.tick {
		return false
	}
	r.news, r.lastPickUp = false, now
	return true
}

// Wake asks the loop for a pass soon. It never blocks.
func (s *Service) Wake() {
	r := &s.run
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || s.l == nil {
		return
	}
	r.wanted = true
	if r.active || s.exec.Now().Before(r.holdUntil) {
		// A running task takes the wish; a held loop waits for its timer.
		return
	}
	r.active = true
	r.wg.Add(1)
	s.exec.Go(s.passes)
}

// passes runs passes while they are wanted.
func (s *Service) passes() {
	r := &s.run
	defer r.wg.Done()
	for {
		r.mu.Lock()
		if r.closed || !r.wanted || s.exec.Now().Before(r.holdUntil) {
			r.active = false
			r.mu.Unlock()
			return
		}
		r.wanted = false
		in := r.inbox
		r.inbox = nil
		r.mu.Unlock()

		p := s.l.pass(in)
		s.arm(p)
		if s.onPass != nil {
			s.onPass(p)
		}
	}
}

// arm sets the loop's timer for its next due time: what the pass said
// comes due, the safety-net tick, or the end of a commit backoff.
func (s *Service) arm(p Pass) {
	r := &s.run
	now := s.exec.Now()
	wait := s.tick
	if p.Err != nil {
		s.l.commitWait = min(max(2*s.l.commitWait, commitBackoffMin), commitBackoffMax)
		wait = s.l.commitWait
		r.mu.Lock()
		r.holdUntil = now.Add(wait)
		r.wanted = true
		r.mu.Unlock()
	} else {
		s.l.commitWait = 0
		if !s.l.wakeAt.IsZero() {
			if d := s.l.wakeAt.Sub(now); d < wait {
				wait = max(d, time.Millisecond)
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if r.timer != nil {
		r.timer.Stop()
	}
	r.timer = s.exec.AfterFunc(wait, s.Wake)
}

// spawn runs fn on the executor as a provider call, unless the service is
// closing. It reports whether fn was scheduled.
func (s *Service) spawn(fn func()) bool {
	r := &s.run
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.wg.Add(1)
	s.exec.Call(func() {
		defer r.wg.Done()
		if s.closing() {
			return
		}
		fn()
	})
	return true
}

// after runs fn once d has passed, unless the service is closing first.
func (s *Service) after(d time.Duration, fn func()) clock.Timer {
	return s.exec.AfterFunc(d, func() {
		if !s.closing() {
			fn()
		}
	})
}

func (s *Service) closing() bool {
	r := &s.run
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// close stops everything from starting and reports whether it was open.
func (s *Service) close() bool {
	r := &s.run
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.closed = true
	if r.timer != nil {
		r.timer.Stop()
	}
	return true
}

// callNow runs fn as a provider call within the executor's bound on calls
// in flight and waits for it: for the API's own calls (kill, logs), which
// come from a request's goroutine, never from the loop.
func (s *Service) callNow(ctx context.Context, fn func(ctx context.Context) error) error {
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if !s.spawn(func() { done <- fn(ctx) }) {
		return berth.Errorf(berth.ErrUnavailable, "the service is stopping")
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return berth.Errorf(berth.ErrUnavailable, "the provider did not answer in time")
	}
}
