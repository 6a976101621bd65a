// Package providertest is the conformance suite every provider runs: the
// behaviour the service relies on — clusters that become ready, steps that
// end in the right state, idempotent creation and submission, cancellation,
// termination, injected loss and adoption after a restart — checked against
// the real implementation.
//
// A provider's test calls Run with a Harness that knows how to make a fresh
// provider and three steps in its own language: one that succeeds, one that
// fails, one that runs until stopped. Every cluster the suite creates is
// terminated when its test ends.
package providertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/clock"
	"github.com/berthhq/berth/internal/provider"
)

// DefaultDeadline bounds each wait when the Harness sets none.
const DefaultDeadline = 30 * time.Second

// tick is how often the suite polls while it waits for a state.
const tick = 20 * time.Millisecond

// Harness is what Run needs to know about a provider.
type Harness struct {
	// New returns a provider with fresh backing state. It registers its own
	// cleanup with t.
	New func(t *testing.T) provider.Provider
	// Reopen returns a new Provider value over p's backing state, as after
	// a server restart; nil if the provider cannot.
	Reopen func(t *testing.T, p provider.Provider) provider.Provider
	// Success exits 0, Failure exits non-zero, LongRunning runs until it is
	// cancelled or its cluster ends.
	Success, Failure, LongRunning berth.Step
	// Unrunnable is a step the provider can never run, which its
	// StepChecker must refuse; zero skips that check.
	Unrunnable berth.Step
	// Kill makes a cluster die as a spot reclaim would, from outside the
	// provider (an emulator's fault); nil uses the provider's Killer, if
	// it has one.
	Kill func(t *testing.T, p provider.Provider, id string)
	// Deadline bounds each wait for a state; 0 means DefaultDeadline.
	Deadline time.Duration
}

// Run runs the conformance suite against h's provider.
func Run(t *testing.T, h Harness) {
	if h.Deadline <= 0 {
		h.Deadline = DefaultDeadline
	}
	tests := []struct {
		name string
		run  func(t *testing.T, h Harness)
	}{
		{"CreateBecomesReady", testCreateBecomesReady},
		{"CreateIdempotent", testCreateIdempotent},
		{"SubmitBeforeReady", testSubmitBeforeReady},
		{"StepOutcomes", testStepOutcomes},
		{"SubmitIdempotent", testSubmitIdempotent},
		{"ListStepsEmpty", testListStepsEmpty},
		{"CancelRunning", testCancelRunning},
		{"Terminate", testTerminate},
		{"Kill", testKill},
		{"DescribeUnknown", testDescribeUnknown},
		{"Reopen", testReopen},
		{"StepLogs", testStepLogs},
		{"PollInterval", testPollInterval},
		{"FindCluster", testFindCluster},
		{"CheckStep", testCheckStep},
		{"Notify", testNotify},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, h)
		})
	}
}

// NewClusterID returns a fresh Berth cluster id.
func NewClusterID() string { return berth.NewID("cl", clock.Real{}.Now()) }

// NewStepName returns a fresh step name in the form the service uses.
func NewStepName() string { return berth.StepName(berth.NewID("job", clock.Real{}.Now()), 1, 0) }

// Create creates a cluster and registers its termination with t.
func Create(t *testing.T, p provider.Provider, req provider.CreateRequest) string {
	t.Helper()
	id, err := p.CreateCluster(context.Background(), req)
	if err != nil {
		t.Fatalf("CreateCluster(%+v): %v", req, err)
	}
	Cleanup(t, p, id)
	return id
}

// Cleanup registers with t the termination of cluster id, so that a test
// leaves no cluster (and no process) behind.
func Cleanup(t *testing.T, p provider.Provider, id string) {
	t.Cleanup(func() {
		if err := p.TerminateCluster(context.Background(), id); err != nil {
			t.Errorf("cleanup: TerminateCluster(%s): %v", id, err)
		}
	})
}

// CreateReady creates a cluster, registers its termination with t and
// waits until it is ready.
func CreateReady(t *testing.T, p provider.Provider, deadline time.Duration) string {
	t.Helper()
	id := Create(t, p, provider.CreateRequest{ClusterID: NewClusterID(), Pool: "conformance", Slots: 2})
	WaitCluster(t, p, id, deadline, "ready", func(c provider.Cluster) bool { return c.State == berth.ClusterReady })
	return id
}

// WaitCluster polls DescribeCluster until done holds, failing t when the
// deadline passes first.
func WaitCluster(t *testing.T, p provider.Provider, id string, deadline time.Duration, what string, done func(provider.Cluster) bool) provider.Cluster {
	t.Helper()
	var last provider.Cluster
	ok := poll(deadline, func() bool {
		c, err := p.DescribeCluster(context.Background(), id)
		if err != nil {
			t.Fatalf("DescribeCluster(%s): %v", id, err)
		}
		last = c
		return done(c)
	})
	if !ok {
		t.Fatalf("cluster %s not %s within %v; last seen %+v", id, what, deadline, last)
	}
	return last
}

// WaitStep polls ListSteps until step stepID is there and done holds,
// failing t when the deadline passes first.
func WaitStep(t *testing.T, p provider.Provider, clusterID, stepID string, deadline time.Duration, what string, done func(provider.Step) bool) provider.Step {
	t.Helper()
	var last *provider.Step
	ok := poll(deadline, func() bool {
		s, err := FindStep(p, clusterID, stepID)
		if err != nil {
			t.Fatalf("ListSteps(%s): %v", clusterID, err)
		}
		last = s
		return s != nil && done(*s)
	})
	if !ok {
		if last == nil {
			t.Fatalf("step %s never listed on cluster %s within %v", stepID, clusterID, deadline)
		}
		t.Fatalf("step %s not %s within %v; last seen %s", stepID, what, deadline, Format(*last))
	}
	return *last
}

// FindStep returns step stepID as ListSteps reports it, or nil.
func FindStep(p provider.Provider, clusterID, stepID string) (*provider.Step, error) {
	steps, err := p.ListSteps(context.Background(), clusterID)
	if err != nil {
		return nil, err
	}
	for _, s := range steps {
		if s.ID == stepID {
			return &s, nil
		}
	}
	return nil, nil
}

// Terminal is a WaitStep condition: the step has ended.
func Terminal(s provider.Step) bool { return s.State.Terminal() }

// Format shows a step in a failure message.
func Format(s provider.Step) string {
	code := "none"
	if s.ExitCode != nil {
		code = fmt.Sprint(*s.ExitCode)
	}
	return fmt.Sprintf("{id=%s name=%q state=%s exit=%s message=%q}", s.ID, s.Name, s.State, code, s.Message)
}

func poll(deadline time.Duration, done func() bool) bool {
	timeout := time.NewTimer(deadline)
	defer timeout.Stop()
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for {
		if done() {
			return true
		}
		select {
		case <-timeout.C:
			return done()
		case <-ticker.C:
		}
	}
}

func submit(t *testing.T, p provider.Provider, clusterID, name string, step berth.Step) string {
	t.Helper()
	id, err := p.SubmitStep(context.Background(), clusterID, provider.StepRequest{Name: name, Step: step})
	if err != nil {
		t.Fatalf("SubmitStep(%s, %q): %v", clusterID, name, err)
	}
	if id == "" {
		t.Fatalf("SubmitStep(%s, %q) returned an empty id", clusterID, name)
	}
	return id
}

func testCreateBecomesReady(t *testing.T, h Harness) {
	p := h.New(t)
	for _, fallback := range []bool{false, true} {
		id := Create(t, p, provider.CreateRequest{ClusterID: NewClusterID(), Pool: "conformance", Slots: 2, Fallback: fallback})
		c, err := p.DescribeCluster(context.Background(), id)
		if err != nil {
			t.Fatalf("DescribeCluster(%s): %v", id, err)
		}
		if c.State != berth.ClusterStarting && c.State != berth.ClusterReady {
			t.Fatalf("new cluster (fallback %v) is %s, want starting or ready", fallback, c.State)
		}
		if c.ID != "" && c.ID != id {
			t.Errorf("DescribeCluster(%s).ID = %s", id, c.ID)
		}
		WaitCluster(t, p, id, h.Deadline, "ready", func(c provider.Cluster) bool {
			if c.State.Terminal() {
				t.Fatalf("cluster %s ended while starting: %+v", id, c)
			}
			return c.State == berth.ClusterReady
		})
	}
}

func testCreateIdempotent(t *testing.T, h Harness) {
	p := h.New(t)
	req := provider.CreateRequest{ClusterID: NewClusterID(), Pool: "conformance", Slots: 2}
	first := Create(t, p, req)
	// Concurrent retries too: a crash-and-retry may overlap a slow first
	// call.
	const n = 4
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { ids[i], errs[i] = p.CreateCluster(context.Background(), req) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("CreateCluster again: %v", errs[i])
		}
		if ids[i] != first {
			t.Errorf("CreateCluster again = %s, want the first cluster %s", ids[i], first)
		}
	}

	// The same holds for a cluster created concurrently from the start.
	req.ClusterID = NewClusterID()
	for i := range n {
		wg.Go(func() { ids[i], errs[i] = p.CreateCluster(context.Background(), req) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("concurrent CreateCluster: %v", errs[i])
		}
		if ids[i] != ids[0] {
			t.Errorf("concurrent CreateCluster gave %s and %s", ids[0], ids[i])
		}
	}
	Cleanup(t, p, ids[0])
}

func testSubmitBeforeReady(t *testing.T, h Harness) {
	p := h.New(t)
	id := Create(t, p, provider.CreateRequest{ClusterID: NewClusterID(), Pool: "conformance", Slots: 2})
	c, err := p.DescribeCluster(context.Background(), id)
	if err != nil {
		t.Fatalf("DescribeCluster: %v", err)
	}
	if c.State != berth.ClusterStarting {
		t.Skipf("the provider reports a new cluster %s at once; cannot observe starting", c.State)
	}
	name := NewStepName()
	sid, err := p.SubmitStep(context.Background(), id, provider.StepRequest{Name: name, Step: h.Success})
	if err == nil {
		after, derr := p.DescribeCluster(context.Background(), id)
		if derr == nil && after.State == berth.ClusterReady {
			t.Skip("the cluster became ready between DescribeCluster and SubmitStep")
		}
		t.Fatalf("SubmitStep on a starting cluster = %s, nil; want ErrNotReady", sid)
	}
	if !errors.Is(err, provider.ErrNotReady) {
		t.Fatalf("SubmitStep on a starting cluster: %v; want ErrNotReady", err)
	}
	// Nothing was left behind: once ready, the same name is a fresh step.
	WaitCluster(t, p, id, h.Deadline, "ready", func(c provider.Cluster) bool { return c.State == berth.ClusterReady })
	steps, err := p.ListSteps(context.Background(), id)
	if err != nil {
		t.Fatalf("ListSteps: %v", err)
	}
	if len(steps) != 0 {
		t.Fatalf("a refused SubmitStep left steps behind: %v", steps)
	}
	sid = submit(t, p, id, name, h.Success)
	WaitStep(t, p, id, sid, h.Deadline, "succeeded", func(s provider.Step) bool { return s.State == berth.StepSucceeded })
}

func testStepOutcomes(t *testing.T, h Harness) {
	p := h.New(t)
	cluster := CreateReady(t, p, h.Deadline)
	tests := []struct {
		name string
		step berth.Step
		want berth.StepState
	}{
		{"success", h.Success, berth.StepSucceeded},
		{"failure", h.Failure, berth.StepFailed},
	}
	ids := make([]string, len(tests))
	names := make([]string, len(tests))
	for i, tt := range tests {
		names[i] = NewStepName()
		ids[i] = submit(t, p, cluster, names[i], tt.step)
	}
	if ids[0] == ids[1] {
		t.Fatalf("two steps with different names got one id %s", ids[0])
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := WaitStep(t, p, cluster, ids[i], h.Deadline, "ended", Terminal)
			if s.State != tt.want {
				t.Fatalf("step ended %s, want %s", Format(s), tt.want)
			}
			if s.Name != names[i] {
				t.Errorf("step name = %q, want %q", s.Name, names[i])
			}
			if s.ExitCode != nil {
				if got := *s.ExitCode; (got == 0) != (tt.want == berth.StepSucceeded) {
					t.Errorf("%s step has exit code %d", s.State, got)
				}
			} else {
				t.Logf("provider reports no exit code for %s", Format(s))
			}
			if !s.StartedAt.IsZero() && !s.EndedAt.IsZero() && s.EndedAt.Before(s.StartedAt) {
				t.Errorf("step ended at %v, before it started at %v", s.EndedAt, s.StartedAt)
			}
		})
	}
}

func testSubmitIdempotent(t *testing.T, h Harness) {
	p := h.New(t)
	cluster := CreateReady(t, p, h.Deadline)
	name := NewStepName()
	first := submit(t, p, cluster, name, h.Success)
	const n = 4
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ids[i], errs[i] = p.SubmitStep(context.Background(), cluster, provider.StepRequest{Name: name, Step: h.Success})
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("SubmitStep again: %v", errs[i])
		}
		if ids[i] != first {
			t.Errorf("SubmitStep again = %s, want the first step %s", ids[i], first)
		}
	}
	WaitStep(t, p, cluster, first, h.Deadline, "succeeded", func(s provider.Step) bool { return s.State == berth.StepSucceeded })
	// Submitting after the step ended still adopts it.
	if again := submit(t, p, cluster, name, h.Success); again != first {
		t.Errorf("SubmitStep after the end = %s, want %s", again, first)
	}
	assertOneStepNamed(t, p, cluster, name)
}

func assertOneStepNamed(t *testing.T, p provider.Provider, cluster, name string) {
	t.Helper()
	steps, err := p.ListSteps(context.Background(), cluster)
	if err != nil {
		t.Fatalf("ListSteps: %v", err)
	}
	count := 0
	for _, s := range steps {
		if s.Name == name {
			count++
		}
	}
	if count != 1 {
		t.Fatalf("ListSteps has %d steps named %q, want 1: %v", count, name, steps)
	}
}

func testListStepsEmpty(t *testing.T, h Harness) {
	p := h.New(t)
	cluster := CreateReady(t, p, h.Deadline)
	steps, err := p.ListSteps(context.Background(), cluster)
	if err != nil {
		t.Fatalf("ListSteps: %v", err)
	}
	if len(steps) != 0 {
		t.Fatalf("a new cluster has steps: %v", steps)
	}
}

func startLong(t *testing.T, h Harness, p provider.Provider, cluster string) string {
	t.Helper()
	id := submit(t, p, cluster, NewStepName(), h.LongRunning)
	WaitStep(t, p, cluster, id, h.Deadline, "running", func(s provider.Step) bool {
		if s.State.Terminal() {
			t.Fatalf("long-running step ended: %s", Format(s))
		}
		return s.State == berth.StepRunning
	})
	return id
}

func testCancelRunning(t *testing.T, h Harness) {
	p := h.New(t)
	cluster := CreateReady(t, p, h.Deadline)
	id := startLong(t, h, p, cluster)
	if err := p.CancelStep(context.Background(), cluster, id); err != nil {
		t.Fatalf("CancelStep: %v", err)
	}
	s := WaitStep(t, p, cluster, id, h.Deadline, "ended", Terminal)
	if s.State != berth.StepCancelled {
		t.Fatalf("cancelled step ended %s", Format(s))
	}
	if err := p.CancelStep(context.Background(), cluster, id); err != nil {
		t.Fatalf("CancelStep of an ended step: %v", err)
	}
	// Cancelling a step that ended by itself changes nothing.
	done := submit(t, p, cluster, NewStepName(), h.Success)
	WaitStep(t, p, cluster, done, h.Deadline, "succeeded", func(s provider.Step) bool { return s.State == berth.StepSucceeded })
	if err := p.CancelStep(context.Background(), cluster, done); err != nil {
		t.Fatalf("CancelStep of a succeeded step: %v", err)
	}
	if s, err := FindStep(p, cluster, done); err != nil || s == nil || s.State != berth.StepSucceeded {
		t.Fatalf("after CancelStep a succeeded step is %v (err %v)", s, err)
	}
}

func testTerminate(t *testing.T, h Harness) {
	p := h.New(t)
	cluster := CreateReady(t, p, h.Deadline)
	id := startLong(t, h, p, cluster)
	if err := p.TerminateCluster(context.Background(), cluster); err != nil {
		t.Fatalf("TerminateCluster: %v", err)
	}
	WaitCluster(t, p, cluster, h.Deadline, "terminated", func(c provider.Cluster) bool { return c.State == berth.ClusterTerminated })
	s := WaitStep(t, p, cluster, id, h.Deadline, "stopped", Terminal)
	if s.State == berth.StepSucceeded {
		t.Fatalf("the running step of a terminated cluster succeeded: %s", Format(s))
	}
	if err := p.TerminateCluster(context.Background(), cluster); err != nil {
		t.Fatalf("TerminateCluster again: %v", err)
	}
	_, err := p.SubmitStep(context.Background(), cluster, provider.StepRequest{Name: NewStepName(), Step: h.Success})
	if !errors.Is(err, provider.ErrNotReady) {
		t.Fatalf("SubmitStep on a terminated cluster: %v; want ErrNotReady", err)
	}
}

func testKill(t *testing.T, h Harness) {
	p := h.New(t)
	kill := h.Kill
	if k, ok := p.(provider.Killer); ok && kill == nil {
		kill = func(t *testing.T, _ provider.Provider, id string) {
			if err := k.KillCluster(context.Background(), id); err != nil {
				t.Fatalf("KillCluster: %v", err)
			}
		}
	}
	if kill == nil {
		t.Skip("the provider is not a Killer and the harness has no Kill")
	}
	cluster := CreateReady(t, p, h.Deadline)
	id := startLong(t, h, p, cluster)
	kill(t, p, cluster)
	c := WaitCluster(t, p, cluster, h.Deadline, "lost", func(c provider.Cluster) bool { return c.State.Terminal() })
	if c.State != berth.ClusterLost || c.Class != provider.ClassCapacity {
		t.Fatalf("killed cluster is %+v, want lost with class capacity", c)
	}
	if c.Reason == "" {
		t.Errorf("killed cluster gives no reason")
	}
	s := WaitStep(t, p, cluster, id, h.Deadline, "stopped", Terminal)
	if s.State == berth.StepSucceeded {
		t.Fatalf("the running step of a killed cluster succeeded: %s", Format(s))
	}
}

func testDescribeUnknown(t *testing.T, h Harness) {
	p := h.New(t)
	id := NewClusterID()
	c, err := p.DescribeCluster(context.Background(), id)
	if err != nil {
		t.Fatalf("DescribeCluster of an unknown id: %v", err)
	}
	if c.State != berth.ClusterLost {
		t.Fatalf("unknown cluster is %s, want lost", c.State)
	}
	if err := p.TerminateCluster(context.Background(), id); err != nil {
		t.Fatalf("TerminateCluster of an unknown id: %v", err)
	}
}

func testReopen(t *testing.T, h Harness) {
	if h.Reopen == nil {
		t.Skip("the provider cannot be reopened")
	}
	p1 := h.New(t)
	cluster := CreateReady(t, p1, h.Deadline)
	doneName := NewStepName()
	done := submit(t, p1, cluster, doneName, h.Success)
	long := startLong(t, h, p1, cluster)

	p2 := h.Reopen(t, p1)
	if tr, ok := p2.(provider.StepTracker); ok {
		// As the restarted service does: it tells the provider which
		// steps its running attempts have.
		tr.TrackSteps(cluster, []provider.TrackedStep{{ID: done}, {ID: long}})
	}
	c, err := p2.DescribeCluster(context.Background(), cluster)
	if err != nil || c.State != berth.ClusterReady {
		t.Fatalf("reopened DescribeCluster = %+v, %v; want ready", c, err)
	}
	WaitStep(t, p2, cluster, done, h.Deadline, "succeeded", func(s provider.Step) bool { return s.State == berth.StepSucceeded })
	if again := submit(t, p2, cluster, doneName, h.Success); again != done {
		t.Fatalf("reopened SubmitStep of an existing name = %s, want %s", again, done)
	}
	assertOneStepNamed(t, p2, cluster, doneName)

	// The step the first value started is running as far as the second
	// knows, and the second can stop it.
	s, err := FindStep(p2, cluster, long)
	if err != nil || s == nil || s.State != berth.StepRunning {
		t.Fatalf("reopened ListSteps shows the long step as %v (err %v), want running", s, err)
	}
	if err := p2.CancelStep(context.Background(), cluster, long); err != nil {
		t.Fatalf("reopened CancelStep: %v", err)
	}
	got := WaitStep(t, p2, cluster, long, h.Deadline, "ended", Terminal)
	if got.State != berth.StepCancelled {
		t.Fatalf("step cancelled through the reopened provider ended %s", Format(got))
	}
}

func testStepLogs(t *testing.T, h Harness) {
	p := h.New(t)
	lr, ok := p.(provider.LogReader)
	if !ok {
		t.Skip("the provider is not a LogReader")
	}
	cluster := CreateReady(t, p, h.Deadline)
	id := submit(t, p, cluster, NewStepName(), h.Success)
	WaitStep(t, p, cluster, id, h.Deadline, "ended", Terminal)
	logs, err := lr.StepLogs(context.Background(), cluster, id)
	if err != nil {
		t.Fatalf("StepLogs: %v", err)
	}
	if logs.Stdout == "" && logs.Stderr == "" && logs.Location == "" {
		t.Fatalf("StepLogs of an ended step has neither output nor location: %+v", logs)
	}
}

func testPollInterval(t *testing.T, h Harness) {
	p := h.New(t)
	pl, ok := p.(provider.Poller)
	if !ok {
		t.Skip("the provider is not a Poller")
	}
	if d := pl.PollInterval(); d <= 0 {
		t.Fatalf("PollInterval = %v, want positive", d)
	}
}

func testFindCluster(t *testing.T, h Harness) {
	p := h.New(t)
	f, ok := p.(provider.Finder)
	if !ok {
		t.Skip("the provider is not a Finder")
	}
	ctx := context.Background()
	if id, found, err := f.FindCluster(ctx, NewClusterID()); err != nil || found {
		t.Fatalf("FindCluster of a cluster never created = %q, %v, %v; want not found", id, found, err)
	}
	req := provider.CreateRequest{ClusterID: NewClusterID(), Pool: "conformance", Slots: 1}
	id := Create(t, p, req)
	if got, found, err := f.FindCluster(ctx, req.ClusterID); err != nil || !found || got != id {
		t.Fatalf("FindCluster of a created cluster = %q, %v, %v; want %q", got, found, err, id)
	}
	if err := p.TerminateCluster(ctx, id); err != nil {
		t.Fatalf("TerminateCluster: %v", err)
	}
	WaitCluster(t, p, id, h.Deadline, "terminated", func(c provider.Cluster) bool { return c.State.Terminal() })
	if got, found, err := f.FindCluster(ctx, req.ClusterID); err != nil || found {
		t.Fatalf("FindCluster of a terminated cluster = %q, %v, %v; want not found", got, found, err)
	}
}

func testCheckStep(t *testing.T, h Harness) {
	p := h.New(t)
	c, ok := p.(provider.StepChecker)
	if !ok {
		t.Skip("the provider is not a StepChecker")
	}
	for name, st := range map[string]berth.Step{"success": h.Success, "failure": h.Failure, "long-running": h.LongRunning} {
		if err := c.CheckStep(st); err != nil {
			t.Errorf("CheckStep of the %s step: %v; want nil", name, err)
		}
	}
	if h.Unrunnable.Args == nil && h.Unrunnable.Jar == "" {
		return
	}
	if err := c.CheckStep(h.Unrunnable); !errors.Is(err, berth.ErrInvalid) {
		t.Errorf("CheckStep of a step the provider cannot run: %v; want berth.ErrInvalid", err)
	}
}

// testNotify: a Notifier names a step's cluster once the step has ended,
// and by then ListSteps shows the end, so that the poll the notice prompts
// finds it.
func testNotify(t *testing.T, h Harness) {
	p := h.New(t)
	n, ok := p.(provider.Notifier)
	if !ok {
		t.Skip("the provider is not a Notifier")
	}
	cluster := CreateReady(t, p, h.Deadline)
	notices := make(chan string, 64)
	n.Notify(func(id string) {
		select {
		case notices <- id:
		default: // fn must not block; the test needs only the first few
		}
	})
	t.Cleanup(func() { n.Notify(nil) })
	id := submit(t, p, cluster, NewStepName(), h.Success)
	timeout := time.After(h.Deadline)
	for {
		select {
		case got := <-notices:
			if got != cluster {
				t.Fatalf("notice for %q, want the step's cluster %q", got, cluster)
			}
			s, err := FindStep(p, cluster, id)
			if err != nil {
				t.Fatal(err)
			}
			if s != nil && s.State.Terminal() {
				return
			}
			// Some other change of the cluster: the step's end is yet to come.
		case <-timeout:
			t.Fatalf("no notice of the step's end within %v", h.Deadline)
		}
	}
}
