package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// forDuration calls f from workers goroutines, each call after the last,
// until d has passed, and times every call. It stops at the first error.
func forDuration(ctx context.Context, workers int, d time.Duration, f func(context.Context) error) (lat *latencies, n int, elapsed time.Duration, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lat = &latencies{}
	var count atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	end := t0.Add(d)
	for range workers {
		wg.Go(func() {
			var mine []time.Duration
			defer func() { lat.add(mine...) }()
			for ctx.Err() == nil {
				t := time.Now()
				if !t.Before(end) {
					return
				}
				if err := f(ctx); err != nil {
					cancel(err)
					return
				}
				mine = append(mine, time.Since(t))
				count.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed = time.Since(t0)
	if err := context.Cause(ctx); err != nil {
		return lat, 0, elapsed, err
	}
	return lat, int(count.Load()), elapsed, nil
}

// parallel calls f(i) for every i in [0, n) from workers goroutines and
// stops at the first error.
func parallel(ctx context.Context, workers, n int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// forCount calls f n times, one after the other, and times every call.
func forCount(ctx context.Context, n int, f func(context.Context) error) (*latencies, int, time.Duration, error) {
	lat := &latencies{}
	t0 := time.Now()
	for range n {
		t := time.Now()
		if err := f(ctx); err != nil {
			return lat, 0, time.Since(t0), err
		}
		lat.add(time.Since(t))
	}
	return lat, n, time.Since(t0), nil
}
