package lifecycle

import (
	"fmt"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider"
)

// bigQueue is a world with one ready cluster of 2 slots and n queued jobs,
// every tenth of priority 1.
func bigQueue(tb testing.TB, n int) (*world, *Cluster) {
	w := newWorld(tb, berth.Pool{Name: "p", Slots: 2, MinClusters: 1, MaxClusters: 3})
	c := w.readyCluster()
	w.pass()
	for i := range n {
		w.ids++
		spec := berth.JobSpec{Pool: "p", Steps: []berth.Step{{Name: "a", Args: []string{"x"}}}}
		if i%10 == 0 {
			spec.Priority = 1
		}
		j := spec.NewJob(fmt.Sprintf("job-%07d", i), w.now.Add(time.Duration(i)*time.Millisecond))
		w.s.Submitted(j)
	}
	w.s.Committed()
	w.s.Begin(w.now)
	return w, c
}

// A long queue is given to the scheduler by its head: a pass sees what it
// can place, in placement order, and counts the rest as demand.
func TestLongQueueIsSeenByItsHead(t *testing.T) {
	const n = 10_000
	w, c := bigQueue(t, n)
	snap := w.s.snapshot(w.now)
	if len(snap.Queued) > 2+headMargin {
		t.Fatalf("the scheduler was given %d of %d queued jobs, want at most %d", len(snap.Queued), n, 2+headMargin)
	}
	if got := snap.Pools[0].Backlog; got != n-len(snap.Queued) {
		t.Fatalf("backlog %d, want %d", got, n-len(snap.Queued))
	}
	fx := w.pass()
	var placed []string
	for _, e := range fx.Events {
		if e.Kind == "placed" {
			placed = append(placed, e.JobID)
		}
	}
	// The first two in placement order: priority 1, oldest first.
	if len(placed) != 2 || placed[0] != "job-0000000" || placed[1] != "job-0000010" {
		t.Fatalf("placed %v, want job-0000000 and job-0000010", placed)
	}
	// The backlog is demand: the pool grows to its max_clusters.
	if starts := len(callsOf(fx, CallCreate)); starts != 2 {
		t.Fatalf("%d clusters started for a backlog of %d, want 2 (max_clusters 3)", starts, n)
	}
	if w.s.QueueLen("p") != n-2 || w.s.RunningIn("p") != 2 {
		t.Fatalf("counts: %d queued, %d running", w.s.QueueLen("p"), w.s.RunningIn("p"))
	}
	// A job ends; the next in order takes its slot.
	j := w.s.Job("job-0000000")
	w.report(c, berth.ClusterReady, provider.Step{ID: "x", Name: stepName(j, 1, 0), State: berth.StepSucceeded})
	fx = w.pass()
	for _, e := range fx.Events {
		if e.Kind == "placed" && e.JobID != "job-0000020" {
			t.Fatalf("placed %s next, want job-0000020", e.JobID)
		}
	}
}

func callsOf(fx Effects, kind CallKind) []Call {
	var out []Call
	for _, c := range fx.Calls {
		if c.Kind == kind {
			out = append(out, c)
		}
	}
	return out
}

// BenchmarkIdlePass is one pass over a long queue with nothing free: it
// should cost about the same at 10k, 100k and 1M queued.
func BenchmarkIdlePass(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			w, _ := bigQueue(b, n)
			w.pass() // fill the slots
			b.ResetTimer()
			for range b.N {
				w.at(time.Second)
				w.pass()
			}
		})
	}
}

// BenchmarkIdlePassForecast is BenchmarkIdlePass with the forecast the
// loop publishes after each pass: its cost is bounded by the head it
// forecasts, not by the queue.
func BenchmarkIdlePassForecast(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			w, _ := bigQueue(b, n)
			w.pass() // fill the slots
			// The loop alternates between two outlooks: readers may hold
			// the last one.
			var o [2]Outlook
			b.ResetTimer()
			for i := range b.N {
				w.at(time.Second)
				w.pass()
				w.s.Forecast(w.now, &o[i%2])
			}
		})
	}
}
