// Package executor runs what is concurrent in Berth's service: provider
// calls, the per-cluster watchers, the loop's passes and its timers. The
// service starts nothing by itself; it asks its Executor. There are two:
//
//   - Real runs each task in a goroutine on the wall clock, with at most a
//     bounded number of provider calls in flight. It is what `berth serve`
//     uses.
//   - Sim runs tasks as discrete events on a virtual clock, one at a time in
//     one goroutine, in an order drawn from a seed. Time jumps from one
//     event to the next, so a simulated day takes as long as its events take
//     to run, and the same seed gives the same run, event for event.
//
// Code that runs on an executor must not block waiting for another task (a
// channel receive, a sleep): under Sim there is no other goroutine to
// unblock it. It hands work on with Go, Call and AfterFunc instead.
package executor

import (
	"github.com/berthhq/berth/internal/clock"
)

// Executor runs tasks apart from their caller and tells the time.
type Executor interface {
	// Now, After and AfterFunc are the executor's clock.
	clock.Clock
	// Go runs fn apart from its caller, as soon as it can.
	Go(fn func())
	// Call runs fn, a call to the world outside (a provider), apart from
	// its caller. The executor bounds how many run at once; under Sim a
	// call may take a while, as calls over a network do.
	Call(fn func())
}
