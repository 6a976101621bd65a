// Package clock is the only place Berth reads the time. Everything else is
// handed a Clock, so tests and the simulator can run in time of their own.
package clock

import "time"

// Clock tells the time and makes timers.
type Clock interface {
	Now() time.Time
	// After is time.After on this clock.
	After(d time.Duration) <-chan time.Time
	// AfterFunc calls fn once d has passed on this clock, unless the
	// returned timer is stopped first. fn runs in a goroutine of its own
	// on the wall clock; a virtual clock says where it runs.
	AfterFunc(d time.Duration, fn func()) Timer
}

// Timer is a pending AfterFunc.
type Timer interface {
	// Stop keeps fn from running and reports whether it did so: false when
	// fn has run, is running, or the timer was stopped before.
	Stop() bool
}

// Real is the wall clock.
type Real struct{}

// Now returns the current time, in UTC and without the monotonic reading so
// that times survive a trip through the store unchanged.
func (Real) Now() time.Time { return time.Now().UTC().Round(0) }

// After waits for d on the wall clock.
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }

// AfterFunc is time.AfterFunc.
func (Real) AfterFunc(d time.Duration, fn func()) Timer { return time.AfterFunc(d, fn) }
