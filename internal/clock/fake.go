package clock

import (
	"sync"
	"time"
)

// Fake is a clock that moves only when told to. It is safe for concurrent
// use. Timers that come due run in the goroutine that calls Advance, in the
// order of their due times (ties in the order they were made).
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	seq     int
	waiters []*fakeTimer
}

type fakeTimer struct {
	f    *Fake
	at   time.Time
	seq  int
	fn   func()
	done bool
}

// NewFake returns a fake clock set to now.
func NewFake(now time.Time) *Fake { return &Fake{now: now} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// After fires when the fake time reaches now+d.
func (f *Fake) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	f.AfterFunc(d, func() { ch <- f.Now() })
	return ch
}

// AfterFunc calls fn when the fake time reaches now+d; with d ≤ 0 at the
// next Advance.
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	t := &fakeTimer{f: f, at: f.now.Add(max(d, 0)), seq: f.seq, fn: fn}
	f.waiters = append(f.waiters, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	if t.done {
		return false
	}
	t.done = true
	return true
}

// Advance moves the fake time on by d and runs the timers that are due.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	for {
		next := f.dueLocked()
		if next == nil {
			break
		}
		next.done = true
		f.mu.Unlock()
		next.fn()
		f.mu.Lock()
	}
	f.mu.Unlock()
}

// Pending is the number of timers not yet run or stopped.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.waiters {
		if !t.done {
			n++
		}
	}
	return n
}

// dueLocked returns the earliest timer due at f.now, dropping the ones that
// ran or were stopped.
func (f *Fake) dueLocked() *fakeTimer {
	kept := f.waiters[:0]
	var next *fakeTimer
	for _, t := range f.waiters {
		if t.done {
			continue
		}
		kept = append(kept, t)
		if !t.at.After(f.now) && (next == nil || t.at.Before(next.at) || t.at.Equal(next.at) && t.seq < next.seq) {
			next = t
		}
	}
	clear(f.waiters[len(kept):])
	f.waiters = kept
	return next
}
