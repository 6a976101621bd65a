package executor

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/wait"
)

var start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// trace runs a small workload of tasks that spawn tasks and timers and
// returns the order they ran in, with their virtual times.
func trace(seed uint64) []string {
	s := NewSim(start, seed)
	s.Latency = func(r *rand.Rand) time.Duration { return time.Duration(r.IntN(3)) * time.Second }
	var out []string
	note := func(what string) { out = append(out, fmt.Sprintf("%s@%s", what, s.Now().Sub(start))) }
	for i := range 5 {
		s.Go(func() {
			note(fmt.Sprintf("go%d", i))
			s.Call(func() { note(fmt.Sprintf("call%d", i)) })
		})
	}
	stopped := s.AfterFunc(time.Second, func() { note("stopped") })
	s.AfterFunc(time.Second, func() { note("timer") })
	stopped.Stop()
	for s.Step() {
	}
	return out
}

func TestSimReplaysItsSeed(t *testing.T) {
	a, b := trace(7), trace(7)
	if !slices.Equal(a, b) {
		t.Fatalf("seed 7 ran differently twice:\n%v\n%v", a, b)
	}
	differs := false
	for seed := uint64(8); seed < 20 && !differs; seed++ {
		differs = !slices.Equal(a, trace(seed))
	}
	if !differs {
		t.Fatal("12 other seeds all gave seed 7's order: the order is not drawn from the seed")
	}
	for _, e := range a {
		if e == "stopped@1s" {
			t.Fatal("a stopped timer ran")
		}
	}
	if len(a) != 11 {
		t.Fatalf("ran %d tasks, want 11: %v", len(a), a)
	}
}

func TestSimTime(t *testing.T) {
	s := NewSim(start, 1)
	var at []time.Duration
	s.AfterFunc(time.Hour, func() { at = append(at, s.Now().Sub(start)) })
	s.AfterFunc(time.Minute, func() {
		at = append(at, s.Now().Sub(start))
		s.AfterFunc(time.Minute, func() { at = append(at, s.Now().Sub(start)) })
	})
	if n := s.RunUntil(start.Add(30 * time.Minute)); n != 2 {
		t.Fatalf("RunUntil 30m ran %d events, want 2", n)
	}
	if got := s.Now().Sub(start); got != 30*time.Minute {
		t.Fatalf("clock at %s after RunUntil 30m", got)
	}
	if next, ok := s.Next(); !ok || next.Sub(start) != time.Hour {
		t.Fatalf("Next = %v %v", next, ok)
	}
	for s.Step() {
	}
	if want := []time.Duration{time.Minute, 2 * time.Minute, time.Hour}; !slices.Equal(at, want) {
		t.Fatalf("ran at %v, want %v", at, want)
	}
	select {
	case <-s.After(time.Second):
		t.Fatal("After fired before its time")
	default:
	}
}

func TestRealBoundsCalls(t *testing.T) {
	r := NewReal(nil, 2)
	var mu sync.Mutex
	running, most, ended := 0, 0, 0
	release := make(chan struct{})
	for range 5 {
		r.Call(func() {
			mu.Lock()
			running++
			most = max(most, running)
			mu.Unlock()
			<-release
			mu.Lock()
			running--
			ended++
			mu.Unlock()
		})
	}
	count := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return running, ended
	}
	wait.For(t, 10*time.Second, "two calls running", func() bool { n, _ := count(); return n == 2 })
	// Let them end one at a time: each end lets exactly one more in.
	for range 5 {
		release <- struct{}{}
	}
	wait.For(t, 10*time.Second, "all calls ended", func() bool { _, e := count(); return e == 5 })
	if most != 2 {
		t.Fatalf("%d calls ran at once, want at most 2", most)
	}
}
