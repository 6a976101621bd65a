package service

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/executor"
	"github.com/berthhq/berth/internal/provider"
	"github.com/berthhq/berth/internal/provider/sim"
	"github.com/berthhq/berth/internal/store"
	"github.com/berthhq/berth/internal/store/memory"
	"github.com/prometheus/client_golang/prometheus"
)

// vharness is one service on the simulated executor, over the in-memory
// store (which passes the same conformance suite as SQLite) and a sim
// provider, in virtual time: a test runs it forward and nothing waits on
// the wall clock.
type vharness struct {
	t    *testing.T
	exec *executor.Sim
	prov *sim.Provider
	// use is what the service is given as the pool's provider: prov, or
	// wrapProv(prov).
	use      provider.Provider
	wrapProv func(*sim.Provider) provider.Provider
	pool     berth.Pool
	db       *memory.DB
	st       store.Store
	svc      *Service
	// wrap, when set, stands between the service and the store.
	wrap func(store.Store) store.Store
	ids  int
	// reg, when set, receives the service's metrics.
	reg *prometheus.Registry
	// terminateStrays is the pool's TerminateStrays, bootTime its
	// BootTime.
	terminateStrays bool
	bootTime        time.Duration
	// passes counts the passes of every service the harness started,
	// writes those that wrote jobs, clusters or events.
	passes, writes int
	trace          bool
	// keepWhole is the service's KeepWhole.
	keepWhole int
}

// vopt changes how newVirtual builds its harness, before the service
// starts.
type vopt func(h *vharness, o *sim.Options)

// withSim changes the sim provider's options: a fallback model, a Script.
func withSim(f func(o *sim.Options)) vopt {
	return func(_ *vharness, o *sim.Options) { f(o) }
}

// withStore puts wrap between the service and the store, in every start.
func withStore(wrap func(store.Store) store.Store) vopt {
	return func(h *vharness, _ *sim.Options) { h.wrap = wrap }
}

// withProvider gives the service wrap(prov) in place of the sim provider.
func withProvider(wrap func(*sim.Provider) provider.Provider) vopt {
	return func(h *vharness, _ *sim.Options) { h.wrapProv = wrap }
}

var vEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newVirtual(t *testing.T, pool berth.Pool, model sim.Model, opts ...vopt) *vharness {
	t.Helper()
	h := &vharness{t: t, exec: executor.NewSim(vEpoch, 1), pool: pool, db: memory.New()}
	o := sim.Options{Primary: model, PricePerHour: pool.PricePerHour, PollInterval: 10 * time.Second, Seed: 1}
	for _, opt := range opts {
		opt(h, &o)
	}
	o.Clock = h.exec
	p, err := sim.New(o)
	if err != nil {
		t.Fatal(err)
	}
	h.prov = p
	h.use = p
	if h.wrapProv != nil {
		h.use = h.wrapProv(p)
	}
	h.start()
	t.Cleanup(h.crash)
	return h
}

func simPool() berth.Pool {
	return berth.Pool{Name: "p", Provider: "sim", Slots: 2, MaxClusters: 2, IdleTimeout: 10 * time.Minute, PricePerHour: 3.6}
}

// start opens the store and starts a service, as a (re)started server.
func (h *vharness) start() {
	h.t.Helper()
	st := h.db.Open()
	h.st = st
	var use store.Store = st
	if h.wrap != nil {
		use = h.wrap(st)
	}
	svc, err := New(Options{
		Store: use, Pools: []Pool{{Pool: h.pool, Provider: h.use, TerminateStrays: h.terminateStrays, BootTime: h.bootTime}}, Executor: h.exec, Registry: registry(h.reg),
		Log: slog.New(slog.DiscardHandler), RetryBackoff: 30 * time.Second, KeepWhole: h.keepWhole,
		NewID: func(prefix string, _ time.Time) string {
			h.ids++
			return fmt.Sprintf("%s-%06d", prefix, h.ids)
		},
		OnPass: func(p Pass) {
			h.passes++
			if p.Err == nil && p.Jobs+p.Clusters+p.Events > 0 {
				h.writes++
			}
			if h.trace {
				h.t.Logf("pass at %s: %+v", p.At.Sub(vEpoch), p)
			}
		},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	h.svc = svc
}

// crash drops the service as a killed process would; the provider keeps
// its clusters.
func (h *vharness) crash() {
	if h.svc == nil {
		return
	}
	h.svc.Abandon()
	h.st.Close()
	h.svc = nil
}

// run runs the simulation for d of virtual time.
func (h *vharness) run(d time.Duration) { h.exec.RunUntil(h.exec.Now().Add(d)) }

// until runs the simulation event by event until cond holds, failing the
// test if within (virtual time) passes first. It asks cond again after
// each pass of the loop and each move of the clock: the service's state
// changes only in passes, the provider's with time or in a call, and a
// call's result makes a pass.
func (h *vharness) until(what string, within time.Duration, cond func() bool) {
	h.t.Helper()
	h.await(what, within, cond, func() any { return [2]int64{int64(h.passes), h.exec.Now().UnixNano()} })
}

// untilStored is until for a cond that reads only what the service has
// stored: it asks again only after a pass that wrote, so that waiting
// through hours of idle passes costs no query each.
func (h *vharness) untilStored(what string, within time.Duration, cond func() bool) {
	h.t.Helper()
	h.await(what, within, cond, func() any { return h.writes })
}

// await runs the simulation until cond holds, asking it again whenever
// mark changes.
func (h *vharness) await(what string, within time.Duration, cond func() bool, mark func() any) {
	h.t.Helper()
	end := h.exec.Now().Add(within)
	// A service that keeps scheduling work at one instant never lets
	// virtual time move: a livelock, reported rather than hung on.
	const maxAtOnce = 100_000
	at, same := h.exec.Now(), 0
	for {
		m := mark()
		if cond() {
			return
		}
		for mark() == m {
			next, ok := h.exec.Next()
			if !ok || next.After(end) {
				h.t.Fatalf("after %s of virtual time, still waiting for %s", within, what)
			}
			if next.Equal(at) {
				if same++; same > maxAtOnce {
					h.t.Fatalf("livelock: %d events at %s while waiting for %s", same, at.Sub(vEpoch), what)
				}
			} else {
				at, same = next, 0
			}
			h.exec.Step()
		}
	}
}

func (h *vharness) submit(spec berth.JobSpec) berth.Job {
	h.t.Helper()
	return submitTo(h.t, h.svc, h.pool.Name, spec)
}

func (h *vharness) job(id string) berth.Job {
	h.t.Helper()
	return jobOf(h.t, h.svc, id)
}

func (h *vharness) untilJob(id string, want berth.JobState) berth.Job {
	h.t.Helper()
	var j berth.Job
	h.untilStored("job "+id+" "+string(want), 6*time.Hour, func() bool {
		j = h.job(id)
		return j.State == want
	})
	return j
}

func sleepSteps(ds ...string) []berth.Step {
	var out []berth.Step
	for i, d := range ds {
		out = append(out, berth.Step{Name: fmt.Sprintf("s%d", i), Args: []string{"sleep", d}})
	}
	return out
}

func intp(n int) *int { return &n }

// untilStep runs until step of the job's attempt n is in state want, as the
// service records it.
func (h *vharness) untilStep(jobID string, n, step int, want berth.StepState) {
	h.t.Helper()
	h.untilStored(fmt.Sprintf("job %s attempt %d step %d %s", jobID, n, step, want), 6*time.Hour, func() bool {
		j := h.job(jobID)
		if len(j.Attempts) < n {
			return false
		}
		for _, s := range j.Attempts[n-1].Steps {
			if s.Index == step {
				return s.State == want
			}
		}
		return false
	})
}

// clusters lists the pool's clusters in one state, as the service has them.
func (h *vharness) clusters(state berth.ClusterState) []berth.Cluster {
	h.t.Helper()
	cs, err := h.svc.Clusters(context.Background(), store.ClusterFilter{State: state})
	if err != nil {
		h.t.Fatal(err)
	}
	return cs
}

// untilClusters runs until exactly n clusters are in state and returns
// them.
func (h *vharness) untilClusters(state berth.ClusterState, n int) []berth.Cluster {
	h.t.Helper()
	var cs []berth.Cluster
	h.untilStored(fmt.Sprintf("%d clusters %s", n, state), 6*time.Hour, func() bool {
		cs = h.clusters(state)
		return len(cs) == n
	})
	return cs
}

func (h *vharness) cluster(id string) berth.ClusterDetail {
	h.t.Helper()
	c, err := h.svc.Cluster(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// untilCluster runs until the cluster is in state want, as the service
// records it.
func (h *vharness) untilCluster(id string, want berth.ClusterState) {
	h.t.Helper()
	h.untilStored("cluster "+id+" "+string(want), 6*time.Hour, func() bool {
		c, err := h.st.GetCluster(context.Background(), id)
		return err == nil && c.State == want
	})
}

// started is how many times the provider started a step of this name.
func (h *vharness) started(name string) int { return h.prov.Snapshot().Started[name] }

// simCluster is what the provider knows of the cluster with its id.
func (h *vharness) simCluster(providerID string) sim.ClusterInfo {
	h.t.Helper()
	for _, c := range h.prov.Snapshot().Clusters {
		if c.ID == providerID {
			return c
		}
	}
	h.t.Fatalf("the sim provider has no cluster %q", providerID)
	return sim.ClusterInfo{}
}

// stepState is the state of the named step on a cluster, as the provider
// reports it; "" when it has none of that name.
func (h *vharness) stepState(providerID, name string) berth.StepState {
	h.t.Helper()
	s, _ := h.prov.StepByName(providerID, name)
	return s.State
}

// kill reclaims one of Berth's clusters at the provider, as a spot
// reclaim would.
func (h *vharness) kill(clusterID string) {
	h.t.Helper()
	if err := h.prov.KillCluster(context.Background(), h.cluster(clusterID).ProviderID); err != nil {
		h.t.Fatal(err)
	}
}

// setFaults changes the provider's API faults.
func (h *vharness) setFaults(f sim.Faults) {
	h.t.Helper()
	if err := h.prov.SetFaults(f); err != nil {
		h.t.Fatal(err)
	}
}

// A spec that can never work blocks its pool after the first failure: no
// cluster after it, however long the job waits, until it is unblocked.
func TestPermanentFailureBlocksThePool(t *testing.T) {
	for _, broken := range []sim.Broken{sim.BrokenValidation, sim.BrokenBootstrap} {
		t.Run(broken.String(), func(t *testing.T) {
			model := sim.Model{BootTime: sim.Fixed(2 * time.Minute), Broken: broken}
			h := newVirtual(t, simPool(), model)
			j := h.submit(berth.JobSpec{Steps: sleepSteps("1m")})
			h.until("the pool blocked", time.Hour, func() bool {
				ps, _ := h.svc.Pool(context.Background(), "p")
				return ps.Blocked
			})
			made := len(h.prov.Snapshot().Clusters) + h.prov.Snapshot().Refused
			h.run(6 * time.Hour)
			if now := len(h.prov.Snapshot().Clusters) + h.prov.Snapshot().Refused; now != made {
				t.Fatalf("a blocked pool tried %d more creations in 6h", now-made)
			}
			ps, _ := h.svc.Pool(context.Background(), "p")
			if !strings.Contains(ps.BlockedReason, "failed") && !strings.Contains(ps.BlockedReason, "invalid") {
				t.Errorf("blocked reason %q does not say what failed", ps.BlockedReason)
			}
			got := h.job(j.ID)
			if got.State != berth.JobQueued || got.WaitReason != berth.WaitPoolBlocked || !strings.Contains(got.WaitMessage, ps.BlockedReason) {
				t.Fatalf("job is %s waiting for %s (%q), want queued and saying the pool is blocked", got.State, got.WaitReason, got.WaitMessage)
			}
			// Fixed and unblocked, the job runs.
			model.Broken = sim.Works
			if err := h.prov.SetModel(model, nil); err != nil {
				t.Fatal(err)
			}
			h.svc.RequestUnblock("p")
			h.untilJob(j.ID, berth.JobSucceeded)
		})
	}
}

// A creation that always fails for a passing reason backs off: it does not
// make a new cluster every half minute forever.
func TestFailingCreationBacksOff(t *testing.T) {
	h := newVirtual(t, simPool(), sim.Model{BootTime: sim.Fixed(time.Minute)})
	if err := h.prov.SetFaults(sim.Faults{Transient: 1}); err != nil {
		t.Fatal(err)
	}
	h.submit(berth.JobSpec{Steps: sleepSteps("1m")})
	h.run(2 * time.Hour)
	cs, err := h.st.ListClusters(context.Background(), store.ClusterFilter{})
	if err != nil {
		t.Fatal(err)
	}
	// Without the backoff: one cluster given up on every ~31s, 230 in 2h.
	if len(cs) > 12 {
		t.Fatalf("%d clusters started in 2h for a creation that always fails", len(cs))
	}
	if len(cs) < 2 {
		t.Fatalf("%d clusters started in 2h: the pool gave up trying", len(cs))
	}
}

// A job that fails after its cluster was lost shows no step running.
func TestJobFailedByLossShowsItsStepsEnded(t *testing.T) {
	h := newVirtual(t, simPool(), sim.Model{BootTime: sim.Fixed(time.Minute)})
	j := h.submit(berth.JobSpec{Steps: sleepSteps("1h", "1m"), MaxInfraRetries: intp(0)})
	h.until("the step running", time.Hour, func() bool { return h.job(j.ID).Steps[0].State == berth.StepRunning })
	killAll(t, h)
	got := h.untilJob(j.ID, berth.JobFailed)
	if got.Reason != berth.ReasonInfraRetries || got.InfraFailures != 1 || got.UserFailures != 0 {
		t.Fatalf("job ended %s with infra %d user %d", got.Reason, got.InfraFailures, got.UserFailures)
	}
	for i, s := range got.Steps {
		if !s.State.Terminal() {
			t.Errorf("step %d is %s in a failed job", i, s.State)
		}
	}
}

// A timeout that races a loss is no user failure: the loss came first.
func TestTimeoutRacingALossIsALoss(t *testing.T) {
	h := newVirtual(t, simPool(), sim.Model{BootTime: sim.Fixed(time.Minute)})
	j := h.submit(berth.JobSpec{Steps: sleepSteps("1h"), Timeout: berth.Duration(time.Second), Retries: 0, MaxInfraRetries: intp(1)})
	// Each attempt is lost just as its timeout is noticed: the loss and
	// the stop land in the same pass.
	for n := 1; n <= 2; n++ {
		h.until(fmt.Sprintf("attempt %d running", n), time.Hour, func() bool {
			got := h.job(j.ID)
			return len(got.Attempts) == n && got.Steps[0].State == berth.StepRunning
		})
		killAll(t, h)
		h.run(15 * time.Second)
	}
	got := h.untilJob(j.ID, berth.JobFailed)
	user, infra := 0, 0
	for _, a := range got.Attempts {
		switch a.Reason {
		case berth.ReasonStepFailed, berth.ReasonTimeout:
			user++
		case berth.ReasonClusterLost:
			infra++
		}
	}
	if got.UserFailures != user || got.InfraFailures != infra {
		t.Fatalf("job counts user %d infra %d; its attempts say %d and %d (%+v)", got.UserFailures, got.InfraFailures, user, infra, got.Attempts)
	}
}

// A job cancelled while its cluster is lost ends cancelled with the loss
// counted.
func TestCancelRacingALossCountsTheLoss(t *testing.T) {
	h := newVirtual(t, simPool(), sim.Model{BootTime: sim.Fixed(time.Minute)})
	j := h.submit(berth.JobSpec{Steps: sleepSteps("1h")})
	h.until("the step running", time.Hour, func() bool { return h.job(j.ID).Steps[0].State == berth.StepRunning })
	if _, err := h.svc.RequestCancel(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	killAll(t, h)
	got := h.untilJob(j.ID, berth.JobCancelled)
	last := got.Attempts[len(got.Attempts)-1]
	if last.Reason == berth.ReasonClusterLost && got.InfraFailures != 1 {
		t.Fatalf("the attempt ended cluster_lost but infra_failures is %d", got.InfraFailures)
	}
}

// A store that cannot commit makes the service unready and the loop back
// off, and once it can, everything carries on with nothing lost.
func TestCommitFailuresBackOff(t *testing.T) {
	var failing atomic.Bool
	var commits atomic.Int64
	h := newVirtual(t, simPool(), sim.Model{BootTime: sim.Fixed(time.Minute)}, withStore(func(s store.Store) store.Store {
		return &failingStore{Store: s, fail: &failing, commits: &commits}
	}))
	j := h.submit(berth.JobSpec{Steps: sleepSteps("30m")})
	h.until("the step running", time.Hour, func() bool { return h.job(j.ID).Steps[0].State == berth.StepRunning })

	failing.Store(true)
	before := commits.Load()
	// The loop picks this one up and cannot record that it did.
	late := h.submit(berth.JobSpec{Steps: sleepSteps("1m")})
	h.run(10 * time.Minute)
	if err := h.svc.Ready(context.Background()); err == nil {
		t.Fatal("ready while the store cannot commit")
	}
	// Backing off from 0.1s doubling to 30s: about 25 tries in 10 minutes,
	// not one per wake-up.
	if n := commits.Load() - before; n > 40 || n < 5 {
		t.Fatalf("%d commit tries in 10 minutes of a failing store", n)
	}
	failing.Store(false)
	h.until("ready again", time.Minute, func() bool { return h.svc.Ready(context.Background()) == nil })
	h.untilJob(j.ID, berth.JobSucceeded)
	h.untilJob(late.ID, berth.JobSucceeded)
	evs, _ := h.st.ListEvents(context.Background(), store.EventFilter{})
	if !slices.ContainsFunc(evs, func(e berth.Event) bool { return e.Kind == "store_recovered" }) {
		t.Error("no store_recovered event")
	}
}

type failingStore struct {
	store.Store
	fail    *atomic.Bool
	commits *atomic.Int64
}

func (f *failingStore) Commit(ctx context.Context, b store.Batch) error {
	f.commits.Add(1)
	if f.fail.Load() {
		return berth.Errorf(berth.ErrUnavailable, "the store cannot write: disk full")
	}
	return f.Store.Commit(ctx, b)
}

// The same workload on the same seed records the same events, byte for
// byte: the service's decisions do not depend on map order or the wall
// clock.
func TestSameSeedSameEvents(t *testing.T) {
	log := func() []string {
		pool := simPool()
		pool.MaxClusters = 3
		h := newVirtual(t, pool, sim.Model{BootTime: sim.Uniform(time.Minute, 5*time.Minute), LossPerClusterHour: 1})
		for i := range 12 {
			h.exec.AfterFunc(time.Duration(i)*3*time.Minute, func() {
				h.submit(berth.JobSpec{Name: fmt.Sprint(i), Steps: sleepSteps(fmt.Sprintf("%dm", 1+i%7), "30s"), Retries: 1})
			})
		}
		h.run(3 * time.Hour)
		evs, err := h.st.ListEvents(context.Background(), store.EventFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range evs {
			out = append(out, fmt.Sprintf("%d %s %s %s %s %s", e.Seq, e.At.Format(time.RFC3339Nano), e.JobID, e.ClusterID, e.Kind, e.Message))
		}
		return out
	}
	a, b := log(), log()
	if len(a) < 50 {
		t.Fatalf("only %d events: the workload did too little to show anything", len(a))
	}
	if !slices.Equal(a, b) {
		for i := range min(len(a), len(b)) {
			if a[i] != b[i] {
				t.Fatalf("runs differ at event %d:\n%s\n%s", i, a[i], b[i])
			}
		}
		t.Fatalf("runs differ in length: %d and %d events", len(a), len(b))
	}
}

// killAll reclaims every live cluster at the provider.
func killAll(t *testing.T, h *vharness) {
	t.Helper()
	for _, c := range h.prov.Snapshot().Clusters {
		if !c.State.Terminal() {
			if err := h.prov.KillCluster(context.Background(), c.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A pass whose commit fails counts nothing: the loss it saw is counted
// once, in the metrics and in the pool's fallback state, when a pass that
// sees it again commits.
func TestFailedPassCountsNothing(t *testing.T) {
	var failing atomic.Bool
	var commits atomic.Int64
	pool := simPool()
	pool.Fallback = &berth.Fallback{AfterFailures: 3, For: time.Hour}
	reg := prometheus.NewRegistry()
	h := newVirtual(t, pool, sim.Model{BootTime: sim.Fixed(time.Minute)},
		withStore(func(s store.Store) store.Store { return &failingStore{Store: s, fail: &failing, commits: &commits} }),
		func(h *vharness, _ *sim.Options) { h.reg = reg })
	j := h.submit(berth.JobSpec{Steps: sleepSteps("1h")})
	h.until("the step running", time.Hour, func() bool { return h.job(j.ID).Steps[0].State == berth.StepRunning })

	failing.Store(true)
	killAll(t, h)
	h.run(5 * time.Minute)
	if n := commits.Load(); n < 3 {
		t.Fatalf("only %d commits tried while failing: the loss was not handled again and again", n)
	}
	failing.Store(false)
	h.until("the loss recorded", time.Hour, func() bool { return h.job(j.ID).InfraFailures == 1 })
	if got := counter(t, reg, "berth_attempts_total", "reason", "cluster_lost"); got != 1 {
		t.Errorf("berth_attempts_total{reason=cluster_lost} = %v, want 1", got)
	}
	st, err := h.st.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, ps := range st.Pools {
		if ps.Pool == "p" && ps.CapacityFailures != 1 {
			t.Errorf("the pool counts %d capacity failures, want 1", ps.CapacityFailures)
		}
	}
}

// counter reads one counter of a registry by name and one label.
func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

// registry keeps a nil *Registry from becoming a non-nil Registerer.
func registry(r *prometheus.Registry) prometheus.Registerer {
	if r == nil {
		return nil
	}
	return r
}

// countTerminates counts the TerminateCluster calls that reach the sim
// provider.
type countTerminates struct {
	*sim.Provider
	n *atomic.Int64
}

func (c countTerminates) TerminateCluster(ctx context.Context, id string) error {
	c.n.Add(1)
	return c.Provider.TerminateCluster(ctx, id)
}

// A termination that takes minutes at the provider (EMR's do) is asked for
// again only now and then, not in a tight loop until the cluster is gone.
func TestSlowTerminationIsNotResentInALoop(t *testing.T) {
	var terminates atomic.Int64
	pool := simPool()
	pool.MinClusters = 1
	h := newVirtual(t, pool, sim.Model{BootTime: sim.Fixed(time.Minute), TerminateTime: sim.Fixed(5 * time.Minute)},
		withProvider(func(p *sim.Provider) provider.Provider { return countTerminates{p, &terminates} }))
	cl := h.untilClusters(berth.ClusterReady, 1)[0]
	before := h.exec.Steps()
	h.svc.RequestTerminate(cl.ID)
	h.untilCluster(cl.ID, berth.ClusterTerminated)
	if n := terminates.Load(); n < 1 || n > 7 {
		t.Fatalf("%d TerminateCluster calls for one termination of 5 minutes", n)
	}
	if events := h.exec.Steps() - before; events > 2000 {
		t.Fatalf("%d events to terminate one cluster", events)
	}
}

// submitTo submits spec to svc, in pool unless the spec names one.
func submitTo(t testing.TB, svc *Service, pool string, spec berth.JobSpec) berth.Job {
	t.Helper()
	if spec.Pool == "" {
		spec.Pool = pool
	}
	j, _, err := svc.Submit(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// jobOf reads a job from svc.
func jobOf(t testing.TB, svc *Service, id string) berth.Job {
	t.Helper()
	j, err := svc.Job(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}
