// Package clock is the only place Berth reads the time. Everything else is
// handed a Clock, so tests and the simulator can run in time of their own.
package clock

import "time"

// Clock tells the time and makes timers.
type Clock interface {
	Now() time.Time
	// After is time.After on this clock.
	After(d time.Duration) <-chan time.Time
}

// Real is the wall clock.
type Real struct{}

// Now returns the current time, in UTC and without the monotonic reading so
// that times survive a trip through the store unchanged.
func (Real) Now() time.Time { return time.Now().UTC().Round(0) }

// After waits for d on the wall clock.
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }
