package executor

import (
	"github.com/berthhq/berth/internal/clock"
)

// DefaultMaxCalls bounds the provider calls in flight on a Real executor.
const DefaultMaxCalls = 32

// Real is the executor of `berth serve`: goroutines and the wall clock (or
// any Clock handed to it).
type Real struct {
	clock.Clock
	calls chan struct{}
}

// NewReal returns a Real executor on clk (nil: the wall clock) that lets at
// most maxCalls provider calls run at once (≤ 0: DefaultMaxCalls).
func NewReal(clk clock.Clock, maxCalls int) *Real {
	if clk == nil {
		clk = clock.Real{}
	}
	if maxCalls <= 0 {
		maxCalls = DefaultMaxCalls
	}
	return &Real{Clock: clk, calls: make(chan struct{}, maxCalls)}
}

// Go runs fn in a new goroutine.
func (r *Real) Go(fn func()) { go fn() }

// Call runs fn in a new goroutine once fewer than maxCalls calls run.
func (r *Real) Call(fn func()) {
	go func() {
		r.calls <- struct{}{}
		defer func() { <-r.calls }()
		fn()
	}()
}
