package service

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider"
	"github.com/berthhq/berth/internal/provider/sim"
	"github.com/berthhq/berth/internal/store"
	"github.com/berthhq/berth/internal/store/sqlite"
	"github.com/berthhq/berth/internal/wait"
)

// deadline bounds every wait of a wall-clock test.
const deadline = 20 * time.Second

// wharness is one service on the real executor, over a real SQLite store
// and a sim provider, all on the wall clock. It is for the API calls that
// block until the loop has done something (Cancel, Drain, Terminate, Kill,
// Unblock): they wait on what a pass commits, so the loop must run in
// goroutines of its own while the test's goroutine waits in them. Under
// the simulated executor nothing would run the loop meanwhile. Everything
// else is tested in virtual time (vharness).
type wharness struct {
	t    *testing.T
	path string
	prov *sim.Provider
	// use is what the service is given as the pool's provider: prov, or
	// what a wopt wrapped it in; wrap, when set, stands between the
	// service and the store.
	use  provider.Provider
	wrap func(store.Store) store.Store
	pool berth.Pool
	st   store.Store
	svc  *Service
}

// wopt changes a wall-clock harness before its service starts.
type wopt func(h *wharness)

// newWallClock starts a wall-clock harness whose sim clusters boot in a few
// milliseconds and are polled every few. Steps run as their args say
// (["sleep", "1h"] outlasts any test) unless opts has a Script.
func newWallClock(t *testing.T, pool berth.Pool, opts sim.Options, wopts ...wopt) *wharness {
	t.Helper()
	if opts.Primary == (sim.Model{}) {
		opts.Primary = sim.Model{BootTime: sim.Fixed(5 * time.Millisecond)}
	}
	opts.PollInterval, opts.PricePerHour = 5*time.Millisecond, pool.PricePerHour
	p, err := sim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h := &wharness{t: t, path: filepath.Join(t.TempDir(), "berth.db"), prov: p, use: p, pool: pool}
	for _, o := range wopts {
		o(h)
	}
	h.start()
	t.Cleanup(h.stop)
	return h
}

// start opens the store and starts a service on it, as a (re)started
// server would.
func (h *wharness) start() {
	h.t.Helper()
	st, err := sqlite.Open(context.Background(), h.path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	var use store.Store = st
	if h.wrap != nil {
		use = h.wrap(st)
	}
	svc, err := New(Options{
		Store: use, Pools: []Pool{{Pool: h.pool, Provider: h.use}}, Log: slog.New(slog.DiscardHandler),
		Tick: 50 * time.Millisecond, RetryBackoff: 20 * time.Millisecond,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	h.st, h.svc = st, svc
}

func (h *wharness) stop() {
	if h.svc == nil {
		return
	}
	h.svc.Stop()
	h.st.Close()
	h.svc = nil
}

func (h *wharness) submit(spec berth.JobSpec) berth.Job {
	h.t.Helper()
	return submitTo(h.t, h.svc, h.pool.Name, spec)
}

func (h *wharness) job(id string) berth.Job {
	h.t.Helper()
	return jobOf(h.t, h.svc, id)
}

func (h *wharness) waitJob(id string, want berth.JobState) berth.Job {
	h.t.Helper()
	var j berth.Job
	wait.For(h.t, deadline, "job "+id+" "+string(want), func() bool {
		j = h.job(id)
		return j.State == want
	})
	return j
}

// waitRunning waits until the job's first step runs, as the service
// records it.
func (h *wharness) waitRunning(id string) {
	h.t.Helper()
	wait.For(h.t, deadline, "job "+id+" running its first step", func() bool {
		return h.job(id).Steps[0].State == berth.StepRunning
	})
}

// waitReady waits until the pool has exactly n ready clusters and returns
// them.
func (h *wharness) waitReady(n int) []berth.Cluster {
	h.t.Helper()
	var cs []berth.Cluster
	wait.For(h.t, deadline, fmt.Sprintf("%d ready clusters", n), func() bool {
		var err error
		cs, err = h.svc.Clusters(context.Background(), store.ClusterFilter{State: berth.ClusterReady})
		return err == nil && len(cs) == n
	})
	return cs
}

// Cancel answers once the job has ended: a queued job at once, a running
// one once its step is stopped at the provider.
func TestCancelAnswersWithTheEndedJob(t *testing.T) {
	pool := simPool()
	pool.MaxClusters = 1
	pool.Slots = 1
	h := newWallClock(t, pool, sim.Options{})
	ctx := context.Background()
	running := h.submit(berth.JobSpec{Steps: sleepSteps("1h")})
	h.waitRunning(running.ID)
	queued := h.submit(berth.JobSpec{Steps: sleepSteps("1h")})

	j, err := h.svc.Cancel(ctx, queued.ID)
	if err != nil || j.State != berth.JobCancelled || len(j.Attempts) != 0 {
		t.Fatalf("cancel queued: %s with %d attempts, %v; want cancelled, never run", j.State, len(j.Attempts), err)
	}
	j, err = h.svc.Cancel(ctx, running.ID)
	if err != nil || j.State != berth.JobCancelled || j.Attempts[0].Reason != berth.ReasonCancelled {
		t.Fatalf("cancel running: %s %v", j.State, err)
	}
	if n := h.prov.Snapshot().Clusters[0].Running; n != 0 {
		t.Fatalf("%d steps still run at the provider after the cancel answered", n)
	}
}

// Drain and Terminate answer with the cluster as the pass that took the
// command left it.
func TestClusterCommandsAnswerAfterTheCommit(t *testing.T) {
	pool := simPool()
	pool.MinClusters = 1
	h := newWallClock(t, pool, sim.Options{})
	ctx := context.Background()
	cl := h.waitReady(1)[0]
	j := h.submit(berth.JobSpec{Steps: sleepSteps("1h")})
	h.waitRunning(j.ID)
	c, err := h.svc.Drain(ctx, cl.ID)
	if err != nil || c.State != berth.ClusterDraining {
		t.Fatalf("drain: %s %v, want draining", c.State, err)
	}
	c, err = h.svc.Terminate(ctx, cl.ID)
	if err != nil || c.State != berth.ClusterTerminating && c.State != berth.ClusterTerminated {
		t.Fatalf("terminate: %s %v, want terminating or terminated", c.State, err)
	}
}

// Kill answers once the loop has seen the cluster lost, and the job runs
// again elsewhere.
func TestKill(t *testing.T) {
	// The first attempt runs until the cluster dies, the next ones end at
	// once.
	script := func(name string, _ berth.Step) (time.Duration, bool) {
		if _, n, _, _ := berth.ParseStepName(name); n == 1 {
			return time.Hour, true
		}
		return time.Millisecond, true
	}
	h := newWallClock(t, simPool(), sim.Options{Script: script})
	j := h.submit(berth.JobSpec{Steps: sleepSteps("1h")})
	h.waitRunning(j.ID)
	c, err := h.svc.Kill(context.Background(), h.job(j.ID).ClusterID)
	if err != nil || c.State != berth.ClusterLost {
		t.Fatalf("kill: %s %v, want lost", c.State, err)
	}
	j = h.waitJob(j.ID, berth.JobSucceeded)
	if len(j.Attempts) != 2 || j.Attempts[0].Reason != berth.ReasonClusterLost {
		t.Fatalf("attempts = %+v", j.Attempts)
	}
}
