package lifecycle

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/learn"
	"github.com/berthhq/berth/internal/provider"
)

// forecast is the world's outlook now.
func (w *world) forecast() Outlook {
	var o Outlook
	w.s.Forecast(w.now, &o)
	return o
}

// wantWait checks a job's wait in the outlook, and that its message says
// what it waits for.
func wantWait(t *testing.T, w *world, o Outlook, id string, want berth.Wait) {
	t.Helper()
	got, ok := o.Jobs[id]
	if !ok {
		t.Fatalf("job %s has no wait in the outlook", id)
	}
	p := w.s.Pool(w.s.Job(id).Pool)
	msg := got.Describe(p.Pool.Name, p.Pool.MaxClusters, p.State.BlockedReason)
	if got != want {
		t.Fatalf("job %s waits %+v, want %+v", id, got, want)
	}
	if msg == "" || (want.WaitCluster != "" && !strings.Contains(msg, want.WaitCluster)) {
		t.Fatalf("job %s's message %q does not say what it waits for", id, msg)
	}
}

// A job a cluster is starting for waits for that cluster, expected ready
// after the pool's boot time: the configured one until one was seen.
func TestWaitClusterStarting(t *testing.T) {
	for _, tt := range []struct {
		name       string
		configured time.Duration
		want       time.Duration
	}{
		{"no boot time known", 0, learn.DefaultBoot},
		{"the configured boot time", 3 * time.Minute, 3 * time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, berth.Pool{})
			w.s.Pool("p").BootTime = tt.configured
			j := w.submit(berth.JobSpec{})
			create := callOf(w.pass(), CallCreate)
			wantWait(t, w, w.forecast(), j.ID, berth.Wait{
				WaitReason: berth.WaitClusterStarting, WaitCluster: create.ClusterID, WaitUntil: t0.Add(tt.want), ETA: t0.Add(tt.want),
			})
		})
	}
}

// A cluster seen ready teaches the pool's boot time.
func TestBootTimeIsLearned(t *testing.T) {
	w := newWorld(t, berth.Pool{Name: "p", Slots: 1, MaxClusters: 2})
	w.submit(berth.JobSpec{})
	create := callOf(w.pass(), CallCreate)
	w.s.ApplyResult(Result{Call: *create, ID: "prov-1"})
	w.at(4 * time.Minute)
	w.report(w.s.Cluster(create.ClusterID), berth.ClusterReady)
	w.pass()
	b := w.submit(berth.JobSpec{})
	create = callOf(w.pass(), CallCreate)
	wantWait(t, w, w.forecast(), b.ID, berth.Wait{
		WaitReason: berth.WaitClusterStarting, WaitCluster: create.ClusterID, WaitUntil: w.now.Add(4 * time.Minute), ETA: w.now.Add(4 * time.Minute),
	})
}

// At max_clusters a job waits for a running job's slot: when that job is
// expected to end, by the run times learned from the store's history and
// then from the jobs that end.
func TestWaitPoolAtMax(t *testing.T) {
	w := newWorld(t, berth.Pool{Name: "p", Slots: 1, MaxClusters: 1})
	w.s.Seed([]berth.Job{{ID: "old", Pool: "p", Name: "x", State: berth.JobSucceeded, EndedAt: t0,
		Attempts: []berth.Attempt{{N: 1, State: berth.AttemptSucceeded, StartedAt: t0.Add(-4 * time.Minute), EndedAt: t0}}}})
	a, c := w.running(berth.JobSpec{Name: "x"})
	b := w.submit(berth.JobSpec{Name: "x"})
	w.at(time.Minute)
	w.pass()
	start := a.CurrentAttempt().StartedAt
	wantWait(t, w, w.forecast(), b.ID, berth.Wait{WaitReason: berth.WaitPoolAtMax, ETA: start.Add(4 * time.Minute)})

	// a ends after 2m: x is now expected to take 4m + (2m - 4m)/4.
	w.at(time.Minute)
	w.report(c, berth.ClusterReady, provider.Step{ID: "step-" + stepName(a, 1, 0), Name: stepName(a, 1, 0), State: berth.StepSucceeded, ExitCode: exit(0)})
	w.pass()
	if got := w.s.Job(b.ID); got == nil || got.State != berth.JobRunning {
		t.Fatalf("b is not running after a ended: %+v", got)
	}
	next := w.submit(berth.JobSpec{Name: "x"})
	w.pass()
	wantWait(t, w, w.forecast(), next.ID, berth.Wait{WaitReason: berth.WaitPoolAtMax, ETA: w.now.Add(3*time.Minute + 30*time.Second)})
}

// A pool holding new clusters back after a failed creation waits for a
// slot to free, or for the hold to end, whichever gives a slot first.
func TestWaitNoFreeSlot(t *testing.T) {
	w := newWorld(t, berth.Pool{Name: "p", Slots: 1, MaxClusters: 2})
	a, _ := w.running(berth.JobSpec{})
	b := w.submit(berth.JobSpec{})
	create := callOf(w.pass(), CallCreate)
	w.s.ApplyResult(Result{Call: *create, Err: &provider.Error{Class: provider.ClassCapacity, Message: "no spot"}})
	find := callOf(w.pass(), CallFind)
	if find == nil {
		t.Fatal("no find call for the cluster given up on")
	}
	w.s.ApplyResult(Result{Call: *find})
	w.pass()
	hold := w.s.Pool("p").StartAfter
	if !hold.After(w.now) {
		t.Fatalf("no hold on new clusters after a failed creation: %v", hold)
	}
	// a's cluster came up at once, so a new one, once the hold ends, is
	// the first slot: before a is expected to end.
	if end := a.CurrentAttempt().StartedAt.Add(learn.DefaultRun); !hold.Before(end) {
		t.Fatalf("the hold ends at %v, after a is expected to end (%v): the case shows nothing", hold, end)
	}
	wantWait(t, w, w.forecast(), b.ID, berth.Wait{WaitReason: berth.WaitNoFreeSlot, WaitUntil: hold, ETA: hold})
}

// A retry waits out its backoff, then takes the free slot.
func TestWaitBackoff(t *testing.T) {
	w := newWorld(t, berth.Pool{Name: "p", Slots: 1, MaxClusters: 1})
	a, c := w.running(berth.JobSpec{Retries: 1})
	w.report(c, berth.ClusterReady, provider.Step{ID: "step-" + stepName(a, 1, 0), Name: stepName(a, 1, 0), State: berth.StepFailed, ExitCode: exit(1)})
	w.pass()
	nb := w.s.Job(a.ID).NotBefore
	if !nb.After(w.now) {
		t.Fatalf("the retry has no backoff: not_before %v", nb)
	}
	wantWait(t, w, w.forecast(), a.ID, berth.Wait{WaitReason: berth.WaitBackoff, WaitUntil: nb, ETA: nb})
}

// A blocked pool with no cluster gives its jobs no start.
func TestWaitPoolBlocked(t *testing.T) {
	w := newWorld(t, berth.Pool{})
	j := w.submit(berth.JobSpec{})
	create := callOf(w.pass(), CallCreate)
	w.s.ApplyResult(Result{Call: *create, Err: &provider.Error{Class: provider.ClassPermanent, Code: "ValidationException", Message: "bad release"}})
	w.pass()
	o := w.forecast()
	wantWait(t, w, o, j.ID, berth.Wait{WaitReason: berth.WaitPoolBlocked})
	p := w.s.Pool("p")
	if msg := o.Jobs[j.ID].Describe("p", p.Pool.MaxClusters, p.State.BlockedReason); !strings.Contains(msg, "bad release") {
		t.Fatalf("message %q does not say why the pool is blocked", msg)
	}
}

// A job that requires its busy affinity cluster waits for it, and starts
// when that cluster's job is expected to end.
func TestWaitAffinityBusy(t *testing.T) {
	w := newWorld(t, berth.Pool{Name: "p", Slots: 1, MaxClusters: 2})
	a, c := w.running(berth.JobSpec{Affinity: "k"})
	b := w.submit(berth.JobSpec{Affinity: "k", AffinityRequired: true})
	if fx := w.pass(); callOf(fx, CallCreate) != nil {
		t.Fatal("a cluster started for a job that can only use its busy affinity cluster")
	}
	wantWait(t, w, w.forecast(), b.ID, berth.Wait{
		WaitReason: berth.WaitAffinityBusy, WaitCluster: c.C.ID, ETA: a.CurrentAttempt().StartedAt.Add(learn.DefaultRun),
	})
}

// The forecast covers the head of a long queue; the jobs behind get their
// pool's reason and no estimate; the same state gives the same outlook.
func TestForecastCoversTheHead(t *testing.T) {
	// More than the scheduler is given whole, so that it sees the head.
	const n = wholeQueue + 1000
	w, _ := bigQueue(t, n)
	w.pass()
	o := w.forecast()
	var order []string
	w.s.queues["p"].ready.Ascend(func(e entry) bool { order = append(order, e.id); return true })
	for i, id := range order {
		wt, ok := o.Jobs[id]
		switch {
		case i < forecastJobs && (!ok || wt.ETA.IsZero()):
			t.Fatalf("job %d of the queue has no estimate: %+v", i, wt)
		case i >= forecastJobs && ok:
			t.Fatalf("job %d of the queue, behind the forecast and the scheduler's head, has a wait of its own: %+v", i, wt)
		}
	}
	if r := o.Rest["p"]; r.WaitReason != berth.WaitPoolAtMax || !r.ETA.IsZero() {
		t.Fatalf("the rest of the queue waits %+v, want pool_at_max_clusters with no estimate", r)
	}
	// Estimates never go back in queue order: one slot frees at a time.
	for i := 1; i < forecastJobs; i++ {
		if o.Jobs[order[i]].ETA.Before(o.Jobs[order[i-1]].ETA) {
			t.Fatalf("job %d starts before job %d", i, i-1)
		}
	}
	if again := w.forecast(); !reflect.DeepEqual(o, again) {
		t.Fatal("the same state gave another outlook")
	}
	// Filled again, an outlook is the same as a new one.
	w.s.Forecast(w.now, &o)
	if again := w.forecast(); !reflect.DeepEqual(o, again) {
		t.Fatal("an outlook filled again differs from a new one")
	}
}
