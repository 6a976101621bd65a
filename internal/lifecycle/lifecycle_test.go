package lifecycle

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// world is a State with one pool, built up for a case: the tests drive it
// with the same inputs the loop gives it, and read its Effects.
type world struct {
	t   testing.TB
	s   *State
	now time.Time
	ids int
	fx  []Effects
}

func newWorld(t testing.TB, pool berth.Pool) *world {
	w := &world{t: t, now: t0}
	if pool.Name == "" {
		pool = berth.Pool{Name: "p", Slots: 2, MaxClusters: 2, PricePerHour: 3.6}
	}
	w.s = New(Config{RetryBackoff: 10 * time.Second, NewID: func(prefix string, _ time.Time) string {
		w.ids++
		return fmt.Sprintf("%s-%d", prefix, w.ids)
	}}, []*Pool{{Pool: pool, Spec: "spec-1", CanFind: true}})
	w.s.Begin(w.now)
	return w
}

// pass decides at the world's time and commits, keeping the effects.
func (w *world) pass() Effects {
	w.s.Decide(w.now)
	fx := *w.s.Effects()
	w.fx = append(w.fx, fx)
	for _, c := range fx.Calls {
		w.s.Started(c)
	}
	w.s.Committed()
	w.s.Begin(w.now)
	return fx
}

func (w *world) at(d time.Duration) { w.now = w.now.Add(d); w.s.Begin(w.now) }

func (w *world) submit(spec berth.JobSpec) *berth.Job {
	if spec.Pool == "" {
		spec.Pool = "p"
	}
	if len(spec.Steps) == 0 {
		spec.Steps = []berth.Step{{Name: "a", Args: []string{"true"}}}
	}
	if err := spec.Validate(); err != nil {
		w.t.Fatal(err)
	}
	w.ids++
	j := spec.NewJob(fmt.Sprintf("job-%d", w.ids), w.now)
	w.s.Submitted(j)
	return w.s.Job(j.ID)
}

// readyCluster starts a cluster for a queued job and reports it ready.
func (w *world) readyCluster() *Cluster {
	fx := w.pass()
	create := callOf(fx, CallCreate)
	if create == nil {
		w.t.Fatalf("no create call in %+v", fx.Calls)
	}
	w.s.ApplyResult(Result{Call: *create, ID: "prov-" + create.ClusterID})
	w.s.ApplyReport(Report{ClusterID: create.ClusterID, Cluster: provider.Cluster{State: berth.ClusterReady}, Listed: true})
	return w.s.Cluster(create.ClusterID)
}

// step reports the named step of a cluster in a state.
func (w *world) report(c *Cluster, cluster berth.ClusterState, steps ...provider.Step) {
	w.s.ApplyReport(Report{ClusterID: c.C.ID, Cluster: provider.Cluster{State: cluster}, Steps: steps, Listed: true})
}

func callOf(fx Effects, kind CallKind) *Call {
	for i := range fx.Calls {
		if fx.Calls[i].Kind == kind {
			return &fx.Calls[i]
		}
	}
	return nil
}

func exit(n int) *int { return &n }

// submitted runs a job onto a ready cluster and answers its first submit.
func (w *world) running(spec berth.JobSpec) (*berth.Job, *Cluster) {
	j := w.submit(spec)
	c := w.readyCluster()
	fx := w.pass()
	sub := callOf(fx, CallSubmit)
	if sub == nil {
		w.t.Fatalf("no submit call after placement: %+v", fx.Calls)
	}
	w.s.ApplyResult(Result{Call: *sub, ID: "step-" + sub.Name})
	w.report(c, berth.ClusterReady, provider.Step{ID: "step-" + sub.Name, Name: sub.Name, State: berth.StepRunning})
	w.pass()
	return w.s.Job(j.ID), c
}

func stepName(j *berth.Job, attempt, step int) string { return berth.StepName(j.ID, attempt, step) }

func hasEvent(fx []Effects, kind, text string) bool {
	for _, f := range fx {
		for _, e := range f.Events {
			if e.Kind == kind && strings.Contains(e.Message, text) {
				return true
			}
		}
	}
	return false
}

// A submit call carries what the provider needs of the job besides the
// step: the job's execution role, and when its attempt started.
func TestSubmitCallCarriesTheJobsRole(t *testing.T) {
	const role = "arn:aws:iam::123456789012:role/r"
	for _, want := range []string{role, ""} {
		w := newWorld(t, berth.Pool{})
		w.submit(berth.JobSpec{ExecutionRoleArn: want})
		w.readyCluster()
		sub := callOf(w.pass(), CallSubmit)
		if sub == nil {
			t.Fatal("no submit call after placement")
		}
		if sub.ExecutionRoleArn != want || !sub.Since.Equal(w.now) {
			t.Errorf("submit call with role %q since %v; want role %q since %v", sub.ExecutionRoleArn, sub.Since, want, w.now)
		}
	}
}

func TestStepsRunInOrderAndTheJobSucceeds(t *testing.T) {
	w := newWorld(t, berth.Pool{})
	j, c := w.running(berth.JobSpec{Steps: []berth.Step{{Name: "a", Args: []string{"a"}}, {Name: "b", Args: []string{"b"}}}})
	if j.State != berth.JobRunning || j.Steps[0].State != berth.StepRunning {
		t.Fatalf("job %s step %s, want running", j.State, j.Steps[0].State)
	}
	w.at(time.Minute)
	w.report(c, berth.ClusterReady, provider.Step{ID: "s0", Name: stepName(j, 1, 0), State: berth.StepSucceeded, ExitCode: exit(0)})
	fx := w.pass()
	sub := callOf(fx, CallSubmit)
	if sub == nil || sub.Step != 1 {
		t.Fatalf("after step 0: calls %+v, want the submit of step 1", fx.Calls)
	}
	w.s.ApplyResult(Result{Call: *sub, ID: "s1"})
	w.report(c, berth.ClusterReady, provider.Step{ID: "s1", Name: stepName(j, 1, 1), State: berth.StepSucceeded, ExitCode: exit(0)})
	w.pass()
	if w.s.Job(j.ID) != nil {
		t.Fatal("a succeeded job stays in the state after its commit")
	}
	last := w.fx[len(w.fx)-1]
	if len(last.EndedJobs) != 1 || last.EndedJobs[0].State != berth.JobSucceeded || last.EndedJobs[0].Attempts[0].State != berth.AttemptSucceeded {
		t.Fatalf("ended %+v", last.EndedJobs)
	}
}

func TestFailureAttribution(t *testing.T) {
	tests := []struct {
		name     string
		retries  int
		infra    int
		event    func(w *world, j *berth.Job, c *Cluster)
		state    berth.JobState
		reason   berth.Reason
		user     int
		infraN   int
		notEarly bool
	}{
		{
			name: "a step that fails on a live cluster is the job's: retried after a backoff", retries: 1, infra: 1,
			event: func(w *world, j *berth.Job, c *Cluster) {
				w.report(c, berth.ClusterReady, provider.Step{ID: "x", Name: stepName(j, 1, 0), State: berth.StepFailed, ExitCode: exit(1)})
			},
			state: berth.JobQueued, user: 1, notEarly: true,
		},
		{
			name: "no retries left: failed step_failed", retries: 0, infra: 1,
			event: func(w *world, j *berth.Job, c *Cluster) {
				w.report(c, berth.ClusterReady, provider.Step{ID: "x", Name: stepName(j, 1, 0), State: berth.StepFailed, ExitCode: exit(1)})
			},
			state: berth.JobFailed, reason: berth.ReasonStepFailed, user: 1,
		},
		{
			name: "a step failed by a lost node on a cluster that lives on is the infrastructure's", retries: 0, infra: 1,
			event: func(w *world, j *berth.Job, c *Cluster) {
				w.report(c, berth.ClusterReady, provider.Step{ID: "x", Name: stepName(j, 1, 0), State: berth.StepFailed, Lost: true, Message: "Container released on a *lost* node"})
			},
			// Placed again on the cluster, which lives on.
			state: berth.JobRunning, infraN: 1,
		},
		{
			name: "a step failed in the same report as its cluster's loss is the loss", retries: 0, infra: 1,
			event: func(w *world, j *berth.Job, c *Cluster) {
				w.s.ApplyReport(Report{ClusterID: c.C.ID, Cluster: provider.Cluster{State: berth.ClusterLost, Class: provider.ClassCapacity, Reason: "spot"},
					Steps: []provider.Step{{ID: "x", Name: stepName(j, 1, 0), State: berth.StepFailed}}, Listed: true})
			},
			state: berth.JobQueued, infraN: 1,
		},
		{
			name: "losses beyond max_infra_retries: failed infra_retries_exhausted", retries: 3, infra: 0,
			event: func(w *world, j *berth.Job, c *Cluster) {
				w.report(c, berth.ClusterLost)
			},
			state: berth.JobFailed, reason: berth.ReasonInfraRetries, infraN: 1,
		},
		{
			name: "a cluster terminated outside Berth is a loss", retries: 0, infra: 1,
			event: func(w *world, j *berth.Job, c *Cluster) {
				w.report(c, berth.ClusterTerminated)
			},
			state: berth.JobQueued, infraN: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, berth.Pool{})
			j, c := w.running(berth.JobSpec{Retries: tt.retries, MaxInfraRetries: &tt.infra})
			tt.event(w, j, c)
			w.pass()
			got := w.s.Job(j.ID)
			if got == nil {
				for _, f := range w.fx {
					for _, e := range f.EndedJobs {
						if e.ID == j.ID {
							got = e
						}
					}
				}
			}
			if got.State != tt.state || got.Reason != tt.reason || got.UserFailures != tt.user || got.InfraFailures != tt.infraN {
				t.Fatalf("job %s %q user %d infra %d; want %s %q user %d infra %d", got.State, got.Reason, got.UserFailures, got.InfraFailures, tt.state, tt.reason, tt.user, tt.infraN)
			}
			if tt.notEarly && !got.NotBefore.After(w.now) {
				t.Errorf("retry not held back: not_before %v", got.NotBefore)
			}
			for i, s := range got.Steps {
				if s.State == berth.StepRunning {
					t.Errorf("step %d still running", i)
				}
			}
		})
	}
}

func TestStopsRacingALoss(t *testing.T) {
	for _, stop := range []string{"timeout", "cancel"} {
		t.Run(stop, func(t *testing.T) {
			w := newWorld(t, berth.Pool{})
			infra := 3
			j, c := w.running(berth.JobSpec{Timeout: berth.Duration(time.Second), MaxInfraRetries: &infra})
			if stop == "cancel" {
				w.s.CancelRequested(j.ID)
			} else {
				w.at(2 * time.Second)
			}
			fx := w.pass()
			if callOf(fx, CallCancel) == nil {
				t.Fatalf("no cancel call for a %s: %+v", stop, fx.Calls)
			}
			// The cluster is lost before the step's stop is seen.
			w.report(c, berth.ClusterLost)
			w.pass()
			got := w.s.Job(j.ID)
			if stop == "cancel" {
				got = w.fx[len(w.fx)-1].EndedJobs[0]
				if got.State != berth.JobCancelled || got.InfraFailures != 1 || got.UserFailures != 0 {
					t.Fatalf("cancel after a loss: %s infra %d user %d", got.State, got.InfraFailures, got.UserFailures)
				}
				return
			}
			if got.State != berth.JobQueued || got.InfraFailures != 1 || got.UserFailures != 0 || got.Attempts[0].Reason != berth.ReasonClusterLost {
				t.Fatalf("timeout after a loss: %s infra %d user %d reason %s; want requeued as a loss", got.State, got.InfraFailures, got.UserFailures, got.Attempts[0].Reason)
			}
		})
	}
}

func TestCreationFailuresByClass(t *testing.T) {
	fallback := &berth.Fallback{AfterFailures: 1, For: 48 * time.Hour}
	tests := []struct {
		name     string
		err      error
		tries    int
		blocked  bool
		fallback bool
		abandon  bool
	}{
		{"permanent: the pool is blocked at once", &provider.Error{Class: provider.ClassPermanent, Code: "ValidationException", Message: "bad release"}, 1, true, false, true},
		{"capacity: counts towards the fallback, gives the cluster up", &provider.Error{Class: provider.ClassCapacity, Message: "no spot"}, 1, false, true, true},
		{"transient: tried again, given up after five", errors.New("connection reset"), 5, false, false, true},
		{"throttled: tried again without counting", fmt.Errorf("slow down: %w", berth.ErrThrottled), 8, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, berth.Pool{Name: "p", Slots: 1, MaxClusters: 1, Fallback: fallback})
			w.submit(berth.JobSpec{})
			fx := w.pass()
			create := *callOf(fx, CallCreate)
			for range tt.tries {
				w.s.ApplyResult(Result{Call: create, Err: tt.err})
				w.at(time.Hour)
				w.pass()
			}
			p := w.s.Pool("p")
			c := w.s.Cluster(create.ClusterID)
			abandoned := c == nil || c.C.State == berth.ClusterTerminating
			if p.State.Blocked() != tt.blocked || p.State.FallbackActive(w.now) != tt.fallback || abandoned != tt.abandon {
				t.Fatalf("blocked %v fallback %v abandoned %v; want %v %v %v", p.State.Blocked(), p.State.FallbackActive(w.now), abandoned, tt.blocked, tt.fallback, tt.abandon)
			}
			if tt.abandon && !tt.blocked && !p.StartAfter.After(w.now.Add(-time.Hour)) {
				t.Errorf("no hold on the next start after a failed creation")
			}
			if tt.blocked {
				// However long it waits, a blocked pool starts nothing.
				w.at(24 * time.Hour)
				if fx := w.pass(); callOf(fx, CallCreate) != nil && callOf(fx, CallCreate).ClusterID != create.ClusterID {
					t.Fatal("a blocked pool started a cluster")
				}
				if err := w.s.Unblock("p"); err != nil {
					t.Fatal(err)
				}
				// The cluster given up on is looked for, and not found.
				for _, f := range w.fx {
					if find := callOf(f, CallFind); find != nil {
						w.s.ApplyResult(Result{Call: *find})
					}
				}
				w.at(time.Second)
				w.pass()
				if fx := w.pass(); callOf(fx, CallCreate) == nil {
					t.Fatal("an unblocked pool with queued work started nothing")
				}
			}
		})
	}
}

func TestRestoreUnblocksAChangedPool(t *testing.T) {
	w := newWorld(t, berth.Pool{})
	w.s.Restore(nil, nil, nil, []berth.PoolState{{Pool: "p", BlockedAt: t0, BlockedReason: "bad", BlockedSpec: "spec-0"}}, nil, t0)
	if w.s.Pool("p").State.Blocked() {
		t.Fatal("a pool blocked under another configuration stays blocked")
	}
	fx := w.s.Effects()
	if !fx.DirtyPools["p"] || !hasEvent([]Effects{*fx}, "pool_unblocked", "configuration changed") {
		t.Fatalf("unblock not recorded: %+v", fx)
	}
	w.s.Restore(nil, nil, nil, []berth.PoolState{{Pool: "p", BlockedAt: t0, BlockedReason: "bad", BlockedSpec: "spec-1"}}, nil, t0)
	if !w.s.Pool("p").State.Blocked() {
		t.Fatal("a pool blocked under its configuration was unblocked")
	}
}

func TestCancelQueuedAndRunning(t *testing.T) {
	w := newWorld(t, berth.Pool{Name: "p", Slots: 1, MaxClusters: 1})
	j, c := w.running(berth.JobSpec{})
	q := w.submit(berth.JobSpec{})
	w.s.CancelRequested(q.ID)
	w.s.CancelRequested(j.ID)
	fx := w.pass()
	if cancel := callOf(fx, CallCancel); cancel == nil || cancel.JobID != j.ID {
		t.Fatalf("calls %+v, want the running step cancelled", fx.Calls)
	}
	if len(fx.EndedJobs) != 1 || fx.EndedJobs[0].ID != q.ID || fx.EndedJobs[0].State != berth.JobCancelled {
		t.Fatalf("ended %+v, want the queued job cancelled", fx.EndedJobs)
	}
	w.report(c, berth.ClusterReady, provider.Step{ID: "x", Name: stepName(j, 1, 0), State: berth.StepCancelled})
	fx = w.pass()
	if len(fx.EndedJobs) != 1 || fx.EndedJobs[0].State != berth.JobCancelled || fx.EndedJobs[0].UserFailures != 0 {
		t.Fatalf("ended %+v, want the running job cancelled, no failure charged", fx.EndedJobs)
	}
}

func TestAdoptionAndOrphans(t *testing.T) {
	w := newWorld(t, berth.Pool{})
	j := w.submit(berth.JobSpec{})
	c := w.readyCluster()
	w.pass() // places it and asks for the submit
	// The provider has the step although its submit was never answered
	// (a crash in between), and a step of an attempt that no longer runs.
	w.s.inflight = map[string]bool{}
	w.report(c, berth.ClusterReady,
		provider.Step{ID: "adopted", Name: stepName(j, 1, 0), State: berth.StepRunning},
		provider.Step{ID: "orphan", Name: berth.StepName("job-99", 1, 0), State: berth.StepRunning})
	fx := w.pass()
	if got := w.s.Job(j.ID).Attempts[0].Steps[0].ProviderID; got != "adopted" {
		t.Fatalf("step's provider id %q, want it adopted", got)
	}
	if !hasEvent([]Effects{fx}, "step_adopted", "adopted") {
		t.Error("no step_adopted event")
	}
	if sub := callOf(fx, CallSubmit); sub != nil {
		t.Errorf("the adopted step was submitted again: %+v", sub)
	}
	if cancel := callOf(fx, CallCancel); cancel == nil || cancel.StepID != "orphan" {
		t.Fatalf("calls %+v, want the orphan cancelled", fx.Calls)
	}
}

func TestIllegalMovesAreRefusedAndCounted(t *testing.T) {
	w := newWorld(t, berth.Pool{})
	j := w.submit(berth.JobSpec{})
	if w.s.moveJob(j, berth.JobSucceeded) {
		t.Fatal("queued → succeeded was allowed")
	}
	if j.State != berth.JobQueued || !slices.Equal(w.s.Effects().Illegal, []string{"job"}) {
		t.Fatalf("state %s, illegal %v", j.State, w.s.Effects().Illegal)
	}
}

func TestCommandsOnClusters(t *testing.T) {
	w := newWorld(t, berth.Pool{Name: "p", Slots: 2, MinClusters: 1, MaxClusters: 2})
	c := w.readyCluster()
	if err := w.s.Drain(c.C.ID); err != nil {
		t.Fatal(err)
	}
	fx := w.pass()
	if c.C.State != berth.ClusterTerminating || callOf(fx, CallTerminate) == nil {
		t.Fatalf("drained idle cluster is %s with calls %+v, want terminating", c.C.State, fx.Calls)
	}
	if err := w.s.Drain("cl-none"); !errors.Is(err, berth.ErrConflict) {
		t.Fatalf("drain of an unknown cluster: %v", err)
	}
	if err := w.s.Unblock("nope"); !errors.Is(err, berth.ErrNotFound) {
		t.Fatalf("unblock of an unknown pool: %v", err)
	}
}

// A step failure on a provider that reports losses late is held for the
// pool's grace: a loss within it takes the blame, and only after it is the
// failure the job's.
func TestAttributionGrace(t *testing.T) {
	for _, lost := range []bool{true, false} {
		t.Run(fmt.Sprintf("lost=%v", lost), func(t *testing.T) {
			w := newWorld(t, berth.Pool{})
			w.s.Pool("p").Grace = time.Minute
			infra := 2
			j, c := w.running(berth.JobSpec{Retries: 1, MaxInfraRetries: &infra})
			w.report(c, berth.ClusterReady, provider.Step{ID: "x", Name: stepName(j, 1, 0), State: berth.StepFailed, ExitCode: exit(137)})
			fx := w.pass()
			if got := w.s.Job(j.ID); got.UserFailures != 0 || got.CurrentAttempt() == nil {
				t.Fatalf("charged at once: user %d, attempt running %v", got.UserFailures, got.CurrentAttempt() != nil)
			}
			if fx.WakeAt.IsZero() || fx.WakeAt.After(w.now.Add(time.Minute)) {
				t.Fatalf("wakes at %v, want by the grace's end", fx.WakeAt)
			}
			w.at(30 * time.Second)
			if lost {
				w.report(c, berth.ClusterLost)
			}
			w.pass()
			w.at(time.Minute)
			fx = w.pass()
			if !lost {
				// The grace is over: the policy asks for a fresh look and
				// charges the job once the cluster is seen alive.
				if !slices.Contains(fx.Poke, c.C.ID) {
					t.Fatalf("no fresh look asked for at the grace's end: pokes %v", fx.Poke)
				}
				if got := w.s.Job(j.ID); got.UserFailures != 0 {
					t.Fatal("charged before the cluster was seen alive again")
				}
				w.report(c, berth.ClusterReady, provider.Step{ID: "x", Name: stepName(j, 1, 0), State: berth.StepFailed, ExitCode: exit(137)})
				w.pass()
			}
			got := w.s.Job(j.ID)
			reason := got.Attempts[0].Reason
			if lost && (reason != berth.ReasonClusterLost || got.InfraFailures != 1 || got.UserFailures != 0) {
				t.Fatalf("lost within the grace: reason %s infra %d user %d", reason, got.InfraFailures, got.UserFailures)
			}
			if !lost && (reason != berth.ReasonStepFailed || got.UserFailures != 1 || got.InfraFailures != 0) {
				t.Fatalf("not lost: reason %s infra %d user %d", reason, got.InfraFailures, got.UserFailures)
			}
		})
	}
}

// A cluster started before its pool was unblocked fails on the spec that
// was broken: its failure does not block the pool again.
func TestClustersFromBeforeAnUnblockDoNotBlockAgain(t *testing.T) {
	w := newWorld(t, berth.Pool{Name: "p", Slots: 1, MinClusters: 2, MaxClusters: 2})
	fx := w.pass()
	creates := callsOf(fx, CallCreate)
	if len(creates) != 2 {
		t.Fatalf("%d creates, want 2", len(creates))
	}
	for _, c := range creates {
		w.s.ApplyResult(Result{Call: c, ID: "prov-" + c.ClusterID})
	}
	// The first fails for good: the pool is blocked.
	w.s.ApplyReport(Report{ClusterID: creates[0].ClusterID, Cluster: provider.Cluster{State: berth.ClusterLost, Class: provider.ClassPermanent, Reason: "bootstrap failed"}})
	w.pass()
	if !w.s.Pool("p").State.Blocked() {
		t.Fatal("a permanent loss did not block the pool")
	}
	// Someone fixes the spec and unblocks; the second, started before,
	// then fails the same way.
	w.at(time.Minute)
	if err := w.s.Unblock("p"); err != nil {
		t.Fatal(err)
	}
	w.pass()
	w.s.ApplyReport(Report{ClusterID: creates[1].ClusterID, Cluster: provider.Cluster{State: berth.ClusterLost, Class: provider.ClassPermanent, Reason: "bootstrap failed"}})
	fx = w.pass()
	if w.s.Pool("p").State.Blocked() {
		t.Fatal("a cluster from before the unblock blocked the pool again")
	}
	if !hasEvent([]Effects{fx}, "permanent_failure", "stays unblocked") {
		t.Error("no event says why the pool stays unblocked")
	}
}
