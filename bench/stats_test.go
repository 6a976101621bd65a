package main

import (
	"testing"
	"time"
)

func TestQuantileNearestRank(t *testing.T) {
	var l latencies
	for i := 1; i <= 100; i++ {
		l.add(durationMS(i))
	}
	if got := l.quantile(0.99); got != durationMS(99) {
		t.Errorf("p99 of 1..100 ms = %v, want 99ms", got)
	}
	if got := l.quantile(0.5); got != durationMS(50) {
		t.Errorf("p50 of 1..100 ms = %v, want 50ms", got)
	}
}

func durationMS(n int) time.Duration { return time.Duration(n) * time.Millisecond }
