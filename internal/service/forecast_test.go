package service

import (
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/learn"
	"github.com/berthhq/berth/internal/provider/sim"
)

// The forecast is read in virtual time the way the API reads it, through
// Service.Job: a simulation needs nothing else to see when a job should
// start.

// untilWait runs until the job waits for the reason, and returns it.
func (h *vharness) untilWait(id string, want berth.WaitReason) berth.Job {
	h.t.Helper()
	var j berth.Job
	h.until("job "+id+" waiting for "+string(want), 6*time.Hour, func() bool {
		j = h.job(id)
		return j.State == berth.JobQueued && j.WaitReason == want
	})
	return j
}

// A job a cluster is starting for names that cluster and when it should be
// ready: after the configured boot time, then after the boot time the
// pool's clusters showed.
func TestForecastClusterStarting(t *testing.T) {
	pool := simPool()
	pool.Slots = 1
	h := newVirtual(t, pool, sim.Model{BootTime: sim.Fixed(7 * time.Minute)}, func(h *vharness, _ *sim.Options) { h.bootTime = 5 * time.Minute })
	a := h.submit(berth.JobSpec{Steps: sleepSteps("30m")})
	got := h.untilWait(a.ID, berth.WaitClusterStarting)
	c := h.cluster(got.WaitCluster)
	if c.State != berth.ClusterStarting || c.Pool != "p" {
		t.Fatalf("a waits for cluster %s, which is %s", c.ID, c.State)
	}
	want := c.CreatedAt.Add(5 * time.Minute)
	if !got.WaitUntil.Equal(want) || !got.ETA.Equal(want) {
		t.Fatalf("a waits until %v with eta %v; want both %v, the configured boot time after the cluster's creation", got.WaitUntil, got.ETA, want)
	}
	if !strings.Contains(got.WaitMessage, c.ID) {
		t.Errorf("message %q does not name the cluster", got.WaitMessage)
	}

	h.untilJob(a.ID, berth.JobRunning)
	booted := h.cluster(c.ID)
	b := h.submit(berth.JobSpec{Steps: sleepSteps("1m")})
	got = h.untilWait(b.ID, berth.WaitClusterStarting)
	second := h.cluster(got.WaitCluster)
	want = second.CreatedAt.Add(booted.ReadyAt.Sub(booted.CreatedAt))
	if second.ID == c.ID || !got.WaitUntil.Equal(want) || !got.ETA.Equal(want) {
		t.Fatalf("b waits for %s until %v (eta %v); want a new cluster until %v, the first one's boot time after its creation", second.ID, got.WaitUntil, got.ETA, want)
	}
	h.untilJob(b.ID, berth.JobRunning)
	if started := h.job(b.ID).StartedAt; started.Before(want) {
		t.Fatalf("b started at %v, before its cluster was expected ready at %v", started, want)
	}
}

// At max_clusters a job starts when the running job's slot frees: when
// that job is expected to end, by the default run time at first, then by
// the run time its task showed. The sim provider's steps take exactly
// what they say (sleep 10m is the default's 10m), so in virtual time the
// estimate is when the slot really frees.
func TestForecastPoolAtMax(t *testing.T) {
	pool := simPool()
	pool.Slots, pool.MaxClusters = 1, 1
	h := newVirtual(t, pool, sim.Model{BootTime: sim.Fixed(time.Minute)})
	spec := berth.JobSpec{Name: "x", Steps: sleepSteps("10m")}
	a := h.submit(spec)
	a = h.untilJob(a.ID, berth.JobRunning)
	b := h.submit(spec)
	got := h.untilWait(b.ID, berth.WaitPoolAtMax)
	aStart := a.Attempts[0].StartedAt
	if want := aStart.Add(learn.DefaultRun); !got.ETA.Equal(want) {
		t.Fatalf("b's eta %v, want %v: a's start and the default run time", got.ETA, want)
	}
	if got.WaitCluster != "" || !got.WaitUntil.IsZero() {
		t.Errorf("b waits for cluster %q until %v; nothing to name at max_clusters", got.WaitCluster, got.WaitUntil)
	}

	// a ran for d: x is now expected to take d, and c to start when b
	// has run that long.
	a = h.untilJob(a.ID, berth.JobSucceeded)
	if freed := a.Attempts[0].EndedAt; !freed.Equal(got.ETA) {
		t.Fatalf("a's slot freed at %v, b's eta was %v", freed, got.ETA)
	}
	d := a.Attempts[0].EndedAt.Sub(a.Attempts[0].StartedAt)
	b = h.untilJob(b.ID, berth.JobRunning)
	c := h.submit(spec)
	got = h.untilWait(c.ID, berth.WaitPoolAtMax)
	eta := b.Attempts[0].StartedAt.Add(d)
	if !got.ETA.Equal(eta) {
		t.Fatalf("c's eta %v, want %v: b's start and a's run time %s", got.ETA, eta, d)
	}
	b = h.untilJob(b.ID, berth.JobSucceeded)
	c = h.untilJob(c.ID, berth.JobRunning)
	if freed := b.Attempts[0].EndedAt; !freed.Equal(eta) || !c.StartedAt.Equal(eta) {
		t.Fatalf("b's slot freed at %v and c started at %v; c's eta was %v", freed, c.StartedAt, eta)
	}
}

// A pool holding new clusters back after a failed creation says until
// when, and the job is expected to start when the running job's slot
// frees: a new cluster, after the hold and the boot time the pool's
// clusters showed, would come later.
func TestForecastNoFreeSlot(t *testing.T) {
	pool := simPool()
	pool.Slots = 1
	model := sim.Model{BootTime: sim.Fixed(20 * time.Minute)}
	h := newVirtual(t, pool, model)
	spec := berth.JobSpec{Steps: sleepSteps("10m")}
	a := h.submit(spec)
	a = h.untilJob(a.ID, berth.JobRunning)
	model.CapacityShortage = 1
	if err := h.prov.SetModel(model, nil); err != nil {
		t.Fatal(err)
	}
	b := h.submit(spec)
	got := h.untilWait(b.ID, berth.WaitNoFreeSlot)
	if now := h.exec.Now(); !got.WaitUntil.After(now) {
		t.Fatalf("b waits until %v, not after now (%v)", got.WaitUntil, now)
	}
	eta := a.Attempts[0].StartedAt.Add(learn.DefaultRun)
	if !got.ETA.Equal(eta) {
		t.Fatalf("b's eta %v, want %v: a's start and the default run time", got.ETA, eta)
	}
	a = h.untilJob(a.ID, berth.JobSucceeded)
	b = h.untilJob(b.ID, berth.JobRunning)
	if !a.Attempts[0].EndedAt.Equal(eta) || !b.StartedAt.Equal(eta) {
		t.Fatalf("a's slot freed at %v and b started at %v; b's eta was %v", a.Attempts[0].EndedAt, b.StartedAt, eta)
	}
}

// A retry waits out its backoff: until its not_before, when the idle
// cluster takes it.
func TestForecastBackoff(t *testing.T) {
	h := newVirtual(t, simPool(), sim.Model{BootTime: sim.Fixed(time.Minute)})
	j := h.submit(berth.JobSpec{Steps: []berth.Step{{Name: "f", Args: []string{"fail", "1m"}}}, Retries: 1})
	got := h.untilWait(j.ID, berth.WaitBackoff)
	if got.NotBefore.IsZero() || !got.WaitUntil.Equal(got.NotBefore) || !got.ETA.Equal(got.NotBefore) {
		t.Fatalf("the retry waits until %v with eta %v; want both its not_before %v", got.WaitUntil, got.ETA, got.NotBefore)
	}
	if !strings.Contains(got.WaitMessage, got.NotBefore.UTC().Format(time.RFC3339)) {
		t.Errorf("message %q does not say until when", got.WaitMessage)
	}
}

// A blocked pool with no cluster says why, and gives no estimate.
func TestForecastPoolBlocked(t *testing.T) {
	h := newVirtual(t, simPool(), sim.Model{BootTime: sim.Fixed(time.Minute), Broken: sim.BrokenValidation})
	j := h.submit(berth.JobSpec{Steps: sleepSteps("1m")})
	got := h.untilWait(j.ID, berth.WaitPoolBlocked)
	ps, err := h.svc.Pool(t.Context(), "p")
	if err != nil {
		t.Fatal(err)
	}
	if !got.ETA.IsZero() || !strings.Contains(got.WaitMessage, ps.BlockedReason) {
		t.Fatalf("a job of a blocked pool: eta %v, message %q; want none, and the block's reason %q", got.ETA, got.WaitMessage, ps.BlockedReason)
	}
}

// Only queued jobs carry a wait.
func TestForecastOnlyQueued(t *testing.T) {
	h := newVirtual(t, simPool(), sim.Model{BootTime: sim.Fixed(time.Minute)})
	j := h.submit(berth.JobSpec{Steps: sleepSteps("1m")})
	for _, want := range []berth.JobState{berth.JobRunning, berth.JobSucceeded} {
		if got := h.untilJob(j.ID, want); got.Wait != (berth.Wait{}) {
			t.Fatalf("a %s job carries a wait: %+v", want, got.Wait)
		}
	}
}
