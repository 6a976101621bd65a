package sim_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/clock"
	"github.com/berthhq/berth/internal/provider"
	"github.com/berthhq/berth/internal/provider/providertest"
	"github.com/berthhq/berth/internal/provider/sim"
)

// The suite runs on the wall clock: it waits on real time, and short boot
// and terminate times keep it quick.
func TestConformance(t *testing.T) {
	providertest.Run(t, providertest.Harness{
		New: func(t *testing.T) provider.Provider {
			return newProvider(t, sim.Options{
				Primary:      sim.Model{BootTime: sim.Fixed(200 * time.Millisecond), TerminateTime: sim.Fixed(100 * time.Millisecond)},
				Fallback:     &sim.Model{BootTime: sim.Uniform(100*time.Millisecond, 300*time.Millisecond)},
				PollInterval: 50 * time.Millisecond,
			})
		},
		// A sim Provider is the cloud itself, not a view of it: a
		// restarted server is handed the same one.
		Reopen:      func(t *testing.T, p provider.Provider) provider.Provider { return p },
		Success:     berth.Step{Args: []string{"sleep", "50ms"}},
		Failure:     berth.Step{Args: []string{"fail", "50ms"}},
		LongRunning: berth.Step{Args: []string{"sleep", "1h"}},
		Unrunnable:  berth.Step{Args: []string{"sleep", "a while"}},
		Deadline:    20 * time.Second,
	})
}

// The sim provider never notifies (provider.Notifier): a notice would
// come from a goroutine of its own, outside the executor, and the
// simulation would no longer be deterministic. Its watchers poll.
func TestDoesNotNotify(t *testing.T) {
	var p provider.Provider = newProvider(t, sim.Options{})
	if _, ok := p.(provider.Notifier); ok {
		t.Fatal("the sim provider is a provider.Notifier")
	}
}

var t0 = time.Date(2026, 11, 24, 6, 0, 0, 0, time.UTC)

var ctx = context.Background()

func newProvider(t *testing.T, opts sim.Options) *sim.Provider {
	t.Helper()
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	p, err := sim.New(opts)
	if err != nil {
		t.Fatalf("sim.New: %v", err)
	}
	return p
}

// newFake returns a provider on a fake clock set to t0.
func newFake(t *testing.T, opts sim.Options) (*sim.Provider, *clock.Fake) {
	t.Helper()
	fc := clock.NewFake(t0)
	opts.Clock = fc
	return newProvider(t, opts), fc
}

var nextCluster int

func create(t *testing.T, p *sim.Provider, fallback bool) string {
	t.Helper()
	nextCluster++
	id, err := p.CreateCluster(ctx, provider.CreateRequest{ClusterID: fmt.Sprintf("cl-%d", nextCluster), Pool: "p", Slots: 2, Fallback: fallback})
	if err != nil {
		t.Fatalf("CreateCluster: %v", err)
	}
	return id
}

func describe(t *testing.T, p *sim.Provider, id string) provider.Cluster {
	t.Helper()
	c, err := p.DescribeCluster(ctx, id)
	if err != nil {
		t.Fatalf("DescribeCluster(%s): %v", id, err)
	}
	return c
}

func submit(t *testing.T, p *sim.Provider, cluster, name string, args ...string) string {
	t.Helper()
	id, err := p.SubmitStep(ctx, cluster, provider.StepRequest{Name: name, Step: berth.Step{Args: args}})
	if err != nil {
		t.Fatalf("SubmitStep(%q): %v", name, err)
	}
	return id
}

func stepOf(t *testing.T, p *sim.Provider, cluster, id string) provider.Step {
	t.Helper()
	s, err := providertest.FindStep(p, cluster, id)
	if err != nil || s == nil {
		t.Fatalf("step %s on %s: %v, %v", id, cluster, s, err)
	}
	return *s
}

// at moves the fake clock to t0+d.
func at(fc *clock.Fake, d time.Duration) { fc.Advance(t0.Add(d).Sub(fc.Now())) }

func TestClusterLifecycle(t *testing.T) {
	p, fc := newFake(t, sim.Options{Primary: sim.Model{BootTime: sim.Fixed(5 * time.Minute), TerminateTime: sim.Fixed(2 * time.Minute)}})
	id := create(t, p, false)
	if id != "sim-c-1" {
		t.Errorf("first cluster id = %q, want sim-c-1", id)
	}
	steps := []struct {
		at     time.Duration
		act    func()
		want   berth.ClusterState
		reason string
	}{
		{at: 0, want: berth.ClusterStarting},
		{at: 5*time.Minute - time.Nanosecond, want: berth.ClusterStarting},
		{at: 5 * time.Minute, want: berth.ClusterReady},
		{at: 10 * time.Minute, act: func() {
			if err := p.TerminateCluster(ctx, id); err != nil {
				t.Fatalf("TerminateCluster: %v", err)
			}
		}, want: berth.ClusterTerminating, reason: sim.ReasonTerminated},
		{at: 12*time.Minute - time.Nanosecond, want: berth.ClusterTerminating, reason: sim.ReasonTerminated},
		{at: 12 * time.Minute, want: berth.ClusterTerminated, reason: sim.ReasonTerminated},
		{at: 13 * time.Minute, act: func() {
			// A second termination changes nothing.
			if err := p.TerminateCluster(ctx, id); err != nil {
				t.Fatalf("TerminateCluster again: %v", err)
			}
		}, want: berth.ClusterTerminated, reason: sim.ReasonTerminated},
	}
	for _, s := range steps {
		at(fc, s.at)
		if s.act != nil {
			s.act()
		}
		c := describe(t, p, id)
		if c.State != s.want || c.Reason != s.reason || c.Class != "" {
			t.Errorf("at +%s: %+v, want %s (%q)", s.at, c, s.want, s.reason)
		}
	}
	snap := p.Snapshot()
	if len(snap.Clusters) != 1 || !snap.Clusters[0].TerminateAsked || !snap.Clusters[0].EndedAt.Equal(t0.Add(12*time.Minute)) || snap.Live != 0 {
		t.Errorf("snapshot = %+v", snap)
	}
}

func TestStepOutcomes(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		script  func(string, berth.Step) (time.Duration, bool)
		runs    time.Duration
		want    berth.StepState
		code    int
		message string
	}{
		{name: "sleep", args: []string{"sleep", "90s"}, runs: 90 * time.Second, want: berth.StepSucceeded, code: 0},
		{name: "fail", args: []string{"fail", "90s"}, runs: 90 * time.Second, want: berth.StepFailed, code: 1, message: "exited with code 1"},
		{name: "any other step runs for the step time", args: []string{"spark-submit", "job.py"}, runs: 30 * time.Second, want: berth.StepSucceeded},
		{name: "script decides", args: []string{"sleep", "90s"}, runs: 7 * time.Second, want: berth.StepFailed, code: 1, message: "exited with code 1",
			script: func(name string, s berth.Step) (time.Duration, bool) {
				if !strings.HasPrefix(name, "step-") || s.Args[0] != "sleep" {
					panic("script called with the wrong step")
				}
				return 7 * time.Second, false
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, fc := newFake(t, sim.Options{Primary: sim.Model{StepTime: sim.Fixed(30 * time.Second)}, Script: tt.script})
			cluster := create(t, p, false)
			at(fc, time.Minute)
			id := submit(t, p, cluster, "step-1", tt.args...)
			fc.Advance(tt.runs - time.Nanosecond)
			if s := stepOf(t, p, cluster, id); s.State != berth.StepRunning || s.ExitCode != nil || !s.StartedAt.Equal(t0.Add(time.Minute)) {
				t.Fatalf("just before its end the step is %s, started %v", providertest.Format(s), s.StartedAt)
			}
			fc.Advance(time.Nanosecond)
			s := stepOf(t, p, cluster, id)
			if s.State != tt.want || s.ExitCode == nil || *s.ExitCode != tt.code || s.Message != tt.message {
				t.Fatalf("step ended %s, want %s with code %d", providertest.Format(s), tt.want, tt.code)
			}
			if got := s.EndedAt.Sub(s.StartedAt); got != tt.runs {
				t.Errorf("step ran %s, want %s", got, tt.runs)
			}
		})
	}
}

// A step the service says it recorded is listed no more once it ended;
// one still running stays listed, and StepByName still finds both.
func TestForgetSteps(t *testing.T) {
	p, fc := newFake(t, sim.Options{})
	cluster := create(t, p, false)
	at(fc, time.Minute)
	done := submit(t, p, cluster, "step-done", "sleep", "10s")
	long := submit(t, p, cluster, "step-long", "sleep", "1h")
	fc.Advance(time.Minute)
	p.ForgetSteps(cluster, []string{done, long, "no-such-step"})
	p.ForgetSteps("no-such-cluster", []string{done})
	steps, err := p.ListSteps(ctx, cluster)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 1 || steps[0].ID != long {
		t.Fatalf("listed %v, want only the running step %s", steps, long)
	}
	for name, want := range map[string]berth.StepState{"step-done": berth.StepSucceeded, "step-long": berth.StepRunning} {
		if s, ok := p.StepByName(cluster, name); !ok || s.State != want {
			t.Errorf("StepByName(%s) = %s, %v; want %s", name, providertest.Format(s), ok, want)
		}
	}
	// Forgetting is not a call of the provider's API.
	if n := p.Snapshot().Calls[cluster]; n != 3 {
		t.Errorf("%d calls counted on the cluster, want 3 (two submits, one list)", n)
	}
}

func TestStepTimeDefaultsToZero(t *testing.T) {
	p, _ := newFake(t, sim.Options{})
	cluster := create(t, p, false)
	s := stepOf(t, p, cluster, submit(t, p, cluster, "s", "true"))
	if s.State != berth.StepSucceeded || !s.EndedAt.Equal(s.StartedAt) {
		t.Fatalf("a step with the default step time is %s", providertest.Format(s))
	}
}

func TestCheckStep(t *testing.T) {
	tests := []struct {
		args []string
		jar  string
		ok   bool
	}{
		{args: []string{"sleep", "1s"}, ok: true},
		{args: []string{"fail", "1m30s"}, ok: true},
		{args: []string{"echo", "hello"}, ok: true},
		{args: []string{"sleep"}, ok: true, jar: "s3://b/x.jar"}, // a jar's main class gets args of its own
		{args: []string{"sleep"}},
		{args: []string{"sleep", "1s", "2s"}},
		{args: []string{"sleep", "90"}},
		{args: []string{"fail", "-1s"}},
		{args: []string{"fail", "0s"}},
		{args: []string{"sleep", "soon"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " ")+tt.jar, func(t *testing.T) {
			p, _ := newFake(t, sim.Options{})
			step := berth.Step{Args: tt.args, Jar: tt.jar}
			err := p.CheckStep(step)
			if tt.ok != (err == nil) || err != nil && !errors.Is(err, berth.ErrInvalid) {
				t.Fatalf("CheckStep(%q) = %v, want ok %v", tt.args, err, tt.ok)
			}
			// SubmitStep refuses what CheckStep refuses, and starts nothing.
			cluster := create(t, p, false)
			_, err = p.SubmitStep(ctx, cluster, provider.StepRequest{Name: "s", Step: step})
			if tt.ok != (err == nil) || err != nil && !errors.Is(err, berth.ErrInvalid) {
				t.Fatalf("SubmitStep(%q) = %v, want ok %v", tt.args, err, tt.ok)
			}
			if n := p.Snapshot().StepsStarted; n != map[bool]int{true: 1}[tt.ok] {
				t.Fatalf("%d steps started", n)
			}
		})
	}
}

func TestSetModel(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	p, err := sim.New(sim.Options{Primary: sim.Model{BootTime: sim.Fixed(time.Minute)}, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	before, err := p.CreateCluster(ctx, provider.CreateRequest{ClusterID: "cl-1", Pool: "p", Slots: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetModel(sim.Model{BootTime: sim.Fixed(time.Minute), Broken: sim.BrokenValidation}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = p.CreateCluster(ctx, provider.CreateRequest{ClusterID: "cl-2", Pool: "p", Slots: 1})
	if provider.ClassOf(err) != provider.ClassPermanent {
		t.Fatalf("create after the spec broke: %v, want a permanent failure", err)
	}
	clk.Advance(time.Minute)
	if c, _ := p.DescribeCluster(ctx, before); c.State != berth.ClusterReady {
		t.Fatalf("a cluster made before the change is %s, want ready", c.State)
	}
	if err := p.SetModel(sim.Model{BootTime: sim.Dist{}, CapacityShortage: 2}, nil); !errors.Is(err, berth.ErrInvalid) {
		t.Fatalf("SetModel with a bad model: %v, want invalid", err)
	}
	if m, _ := p.Models(); m.Broken != sim.BrokenValidation {
		t.Fatal("a refused SetModel changed the model")
	}
}

func TestLossReportLag(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	p, err := sim.New(sim.Options{Primary: sim.Model{BootTime: sim.Fixed(time.Minute), LossReportLag: 2 * time.Minute}, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if g := p.AttributionGrace(); g != 2*time.Minute {
		t.Fatalf("AttributionGrace = %s", g)
	}
	ctx := context.Background()
	id, err := p.CreateCluster(ctx, provider.CreateRequest{ClusterID: "cl-1", Pool: "p", Slots: 1})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	step, err := p.SubmitStep(ctx, id, provider.StepRequest{Name: "berth:job-1:1:0", Step: berth.Step{Args: []string{"sleep", "1h"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.KillCluster(ctx, id); err != nil {
		t.Fatal(err)
	}
	steps, _ := p.ListSteps(ctx, id)
	c, _ := p.DescribeCluster(ctx, id)
	if len(steps) != 1 || steps[0].ID != step || steps[0].State != berth.StepFailed || c.State != berth.ClusterReady {
		t.Fatalf("right after the loss: steps %+v, cluster %s; want the step failed and the cluster still described ready", steps, c.State)
	}
	clk.Advance(2 * time.Minute)
	if c, _ := p.DescribeCluster(ctx, id); c.State != berth.ClusterLost || c.Class != provider.ClassCapacity {
		t.Fatalf("after the lag: %+v, want lost with class capacity", c)
	}
}
