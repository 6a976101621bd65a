package sim_test

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider"
	"github.com/berthhq/berth/internal/provider/providertest"
	"github.com/berthhq/berth/internal/provider/sim"
)

// A loss drawn at creation comes at its time: the cluster is lost with
// ClassCapacity, and the step running on it fails at that moment.
func TestLossAtADrawnTime(t *testing.T) {
	p, fc := newFake(t, sim.Options{Seed: 7, Primary: sim.Model{LossPerClusterHour: 1}})
	cluster := create(t, p, false)
	step := submit(t, p, cluster, "long", "sleep", "1000h")
	var lostAt time.Time
	for range 48 * 60 {
		fc.Advance(time.Minute)
		if c := describe(t, p, cluster); c.State == berth.ClusterLost {
			if c.Class != provider.ClassCapacity || c.Reason != sim.ReasonReclaimed {
				t.Fatalf("lost cluster = %+v, want class capacity, reason %q", c, sim.ReasonReclaimed)
			}
			lostAt = p.Snapshot().Clusters[0].EndedAt
			break
		}
		if s := stepOf(t, p, cluster, step); s.State != berth.StepRunning {
			t.Fatalf("step on a live cluster is %s", providertest.Format(s))
		}
	}
	if lostAt.IsZero() {
		t.Fatal("no loss within 48 cluster-hours at a rate of 1 per hour")
	}
	if !lostAt.After(fc.Now().Add(-time.Minute)) || lostAt.After(fc.Now()) {
		t.Fatalf("lost at %v, not within the last minute before %v", lostAt, fc.Now())
	}
	s := stepOf(t, p, cluster, step)
	if s.State != berth.StepFailed || !s.EndedAt.Equal(lostAt) || s.ExitCode != nil || !strings.Contains(s.Message, sim.ReasonReclaimed) {
		t.Fatalf("step on the lost cluster = %s ended %v, want failed at the loss %v", providertest.Format(s), s.EndedAt, lostAt)
	}
	if _, err := p.SubmitStep(ctx, cluster, provider.StepRequest{Name: "late", Step: berth.Step{Args: []string{"true"}}}); !errors.Is(err, provider.ErrNotReady) {
		t.Fatalf("SubmitStep on a lost cluster: %v, want ErrNotReady", err)
	}
}

// Times to loss are exponential with the model's rate per cluster-hour:
// their mean over many clusters is near 1/rate. The seed is fixed, so
// this is not a flaky statistical test: it checks the draw's scale.
func TestLossRate(t *testing.T) {
	for _, rate := range []float64{0.5, 4} {
		t.Run(fmt.Sprint(rate), func(t *testing.T) {
			p, fc := newFake(t, sim.Options{Seed: 1, Primary: sim.Model{LossPerClusterHour: rate}})
			const n = 2000
			for range n {
				create(t, p, false)
			}
			fc.Advance(1000 * time.Hour)
			var total time.Duration
			snap := p.Snapshot()
			for _, c := range snap.Clusters {
				if c.State != berth.ClusterLost {
					t.Fatalf("cluster %s is %s after 1000h", c.ID, c.State)
				}
				total += c.EndedAt.Sub(c.CreatedAt)
			}
			mean := total.Hours() / n
			if want := 1 / rate; math.Abs(mean-want) > 0.1*want {
				t.Fatalf("mean time to loss %.3fh, want %.3fh ± 10%%", mean, want)
			}
		})
	}
}

// A termination begun before a cluster's loss is due wins: it ends
// terminated, and the loss never comes.
func TestTerminationCancelsALossToCome(t *testing.T) {
	p, fc := newFake(t, sim.Options{Seed: 3, Primary: sim.Model{LossPerClusterHour: 1e-3, TerminateTime: sim.Fixed(time.Minute)}})
	cluster := create(t, p, false)
	if err := p.TerminateCluster(ctx, cluster); err != nil {
		t.Fatal(err)
	}
	fc.Advance(100000 * time.Hour)
	if c := describe(t, p, cluster); c.State != berth.ClusterTerminated {
		t.Fatalf("terminated cluster is %+v", c)
	}
}

func TestCreationFailures(t *testing.T) {
	tests := []struct {
		name  string
		model sim.Model
		class provider.Class
		code  string
	}{
		{"capacity shortage", sim.Model{CapacityShortage: 1}, provider.ClassCapacity, sim.CodeCapacity},
		{"invalid spec", sim.Model{Broken: sim.BrokenValidation}, provider.ClassPermanent, sim.CodeValidation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := newFake(t, sim.Options{Primary: tt.model, Fallback: &sim.Model{}})
			_, err := p.CreateCluster(ctx, provider.CreateRequest{ClusterID: "cl-a", Pool: "p", Slots: 1})
			var pe *provider.Error
			if !errors.As(err, &pe) || pe.Class != tt.class || pe.Code != tt.code || provider.ClassOf(err) != tt.class {
				t.Fatalf("CreateCluster: %v, want a provider.Error of class %s, code %s", err, tt.class, tt.code)
			}
			if s := p.Snapshot(); len(s.Clusters) != 0 || s.Refused != 1 {
				t.Fatalf("a refused creation left %+v", s)
			}
			// The fallback spec works.
			create(t, p, true)
		})
	}
}

func TestCapacityShortageIsAProbability(t *testing.T) {
	p, _ := newFake(t, sim.Options{Seed: 11, Primary: sim.Model{CapacityShortage: 0.25}})
	const n = 2000
	refused := 0
	for i := range n {
		_, err := p.CreateCluster(ctx, provider.CreateRequest{ClusterID: fmt.Sprintf("cl-%d", i), Pool: "p", Slots: 1})
		if provider.ClassOf(err) == provider.ClassCapacity {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if got := float64(refused) / n; math.Abs(got-0.25) > 0.03 {
		t.Fatalf("%.3f of creations refused, want 0.25 ± 0.03", got)
	}
	if s := p.Snapshot(); s.Refused != refused || len(s.Clusters) != n-refused {
		t.Fatalf("snapshot counts %d refused and %d clusters, want %d and %d", s.Refused, len(s.Clusters), refused, n-refused)
	}
}

// A spec whose bootstrap always fails boots and is lost, permanently,
// without ever being ready.
func TestBrokenBootstrap(t *testing.T) {
	p, fc := newFake(t, sim.Options{Primary: sim.Model{BootTime: sim.Fixed(8 * time.Minute), Broken: sim.BrokenBootstrap}})
	cluster := create(t, p, false)
	at(fc, 8*time.Minute-time.Nanosecond)
	if c := describe(t, p, cluster); c.State != berth.ClusterStarting {
		t.Fatalf("booting cluster is %+v", c)
	}
	at(fc, 8*time.Minute)
	c := describe(t, p, cluster)
	if c.State != berth.ClusterLost || c.Class != provider.ClassPermanent || c.Reason != sim.ReasonBootstrap {
		t.Fatalf("cluster after its boot = %+v, want lost, permanent, %q", c, sim.ReasonBootstrap)
	}
	if _, err := p.SubmitStep(ctx, cluster, provider.StepRequest{Name: "s", Step: berth.Step{Args: []string{"true"}}}); !errors.Is(err, provider.ErrNotReady) {
		t.Fatalf("SubmitStep: %v, want ErrNotReady", err)
	}
}

func TestBilling(t *testing.T) {
	const price = 3.6 // per hour: 0.001 a second
	tests := []struct {
		name string
		// run acts on a cluster created at t0 and returns when to read
		// its cost.
		run    func(p *sim.Provider, id string, move func(time.Duration)) time.Duration
		billed time.Duration
	}{
		{"a short life pays the minimum", func(p *sim.Provider, id string, move func(time.Duration)) time.Duration {
			move(10 * time.Second)
			terminate(t, p, id) // terminated 40s after creation
			return time.Hour
		}, time.Minute},
		{"per second, rounded up", func(p *sim.Provider, id string, move func(time.Duration)) time.Duration {
			move(61*time.Second + 200*time.Millisecond)
			terminate(t, p, id) // terminated at 91.2s
			return time.Hour
		}, 92 * time.Second},
		{"terminating is billed", func(p *sim.Provider, id string, move func(time.Duration)) time.Duration {
			move(2 * time.Minute)
			terminate(t, p, id) // terminates in 30s
			return time.Hour
		}, 150 * time.Second},
		{"until the loss", func(p *sim.Provider, id string, move func(time.Duration)) time.Duration {
			move(5 * time.Minute)
			if err := p.KillCluster(ctx, id); err != nil {
				t.Fatal(err)
			}
			return time.Hour
		}, 5 * time.Minute},
		{"a live cluster until now", func(p *sim.Provider, id string, move func(time.Duration)) time.Duration {
			return 3 * time.Minute
		}, 3 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, fc := newFake(t, sim.Options{PricePerHour: price, Primary: sim.Model{TerminateTime: sim.Fixed(30 * time.Second)}})
			id := create(t, p, false)
			other := create(t, p, false) // lives on: billed until now
			read := tt.run(p, id, func(d time.Duration) { at(fc, d) })
			at(fc, read)
			want := price * tt.billed.Hours()
			got, ok := p.ClusterCost(id, fc.Now())
			if !ok || math.Abs(got-want) > 1e-9 {
				t.Fatalf("cost = %v (%v), want %v", got, ok, want)
			}
			total := want + price*read.Hours()
			if got := p.Cost(fc.Now()); math.Abs(got-total) > 1e-9 {
				t.Errorf("Cost = %v, want %v", got, total)
			}
			snap := p.Snapshot()
			if math.Abs(snap.Cost-total) > 1e-9 || math.Abs(snap.Clusters[0].Cost-want) > 1e-9 || snap.Clusters[1].ID != other {
				t.Errorf("snapshot costs %v, %+v; want %v", snap.Cost, snap.Clusters, total)
			}
		})
	}
}

func terminate(t *testing.T, p *sim.Provider, id string) {
	t.Helper()
	if err := p.TerminateCluster(ctx, id); err != nil {
		t.Fatalf("TerminateCluster(%s): %v", id, err)
	}
}

// record plays one fixed sequence of calls, every draw of the model in
// play, and writes down everything the provider answered.
func record(t *testing.T, seed uint64) []string {
	model := sim.Model{
		BootTime:           sim.Uniform(time.Minute, 10*time.Minute),
		TerminateTime:      sim.Exponential(time.Minute),
		StepTime:           sim.Exponential(5 * time.Minute),
		LossPerClusterHour: 0.5,
		CapacityShortage:   0.2,
	}
	p, fc := newFake(t, sim.Options{Seed: seed, Primary: model, Faults: sim.Faults{Transient: 0.05, Throttle: 0.05, LostReply: 0.05}})
	var out []string
	note := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	var ids []string
	for round := range 30 {
		id, err := p.CreateCluster(ctx, provider.CreateRequest{ClusterID: fmt.Sprintf("cl-%d", round%12), Pool: "p", Slots: 2})
		note("create %q %v", id, err)
		if id != "" && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
		fc.Advance(3 * time.Minute)
		for i, id := range ids {
			c, err := p.DescribeCluster(ctx, id)
			note("describe %s %+v %v", id, c, err)
			if c.State == berth.ClusterReady {
				sid, err := p.SubmitStep(ctx, id, provider.StepRequest{Name: fmt.Sprintf("s-%d-%d", round, i), Step: berth.Step{Args: []string{"run"}}})
				note("submit %q %v", sid, err)
			}
			steps, err := p.ListSteps(ctx, id)
			for _, s := range steps {
				note("step %s", providertest.Format(s)+" "+s.StartedAt.String()+" "+s.EndedAt.String())
			}
			note("list %v", err)
			if round%7 == i%7 {
				note("terminate %v", p.TerminateCluster(ctx, id))
			}
		}
	}
	snap := p.Snapshot()
	note("snapshot %+v", snap)
	return out
}

func TestDeterminism(t *testing.T) {
	a, b := record(t, 42), record(t, 42)
	if !slices.Equal(a, b) {
		for i := range min(len(a), len(b)) {
			if a[i] != b[i] {
				t.Fatalf("same seed, different answers at %d:\n%s\n%s", i, a[i], b[i])
			}
		}
		t.Fatalf("same seed, %d and %d answers", len(a), len(b))
	}
	if c := record(t, 43); slices.Equal(a, c) {
		t.Fatal("seeds 42 and 43 gave the same answers")
	}
	// The run exercised what it claims to.
	all := strings.Join(a, "\n")
	for _, want := range []string{sim.CodeCapacity, sim.CodeThrottling, sim.CodeInternal, sim.CodeLostReply, "state=succeeded", "state=failed", "terminated", "lost"} {
		if !strings.Contains(all, want) {
			t.Errorf("the recorded run never shows %q", want)
		}
	}
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name      string
		faults    sim.Faults
		throttled bool
		// effect: the call took effect although it failed.
		effect bool
	}{
		{"transient", sim.Faults{Transient: 1}, false, false},
		{"throttled", sim.Faults{Throttle: 1}, true, false},
		{"lost reply", sim.Faults{LostReply: 1}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := newFake(t, sim.Options{})
			ready := create(t, p, false)
			if err := p.SetFaults(tt.faults); err != nil {
				t.Fatal(err)
			}
			req := provider.CreateRequest{ClusterID: "cl-faulty", Pool: "p", Slots: 1}
			_, createErr := p.CreateCluster(ctx, req)
			_, submitErr := p.SubmitStep(ctx, ready, provider.StepRequest{Name: "s", Step: berth.Step{Args: []string{"true"}}})
			_, describeErr := p.DescribeCluster(ctx, ready)
			_, listErr := p.ListSteps(ctx, ready)
			_, _, findErr := p.FindCluster(ctx, "cl-faulty")
			terminateErr := p.TerminateCluster(ctx, "sim-c-404")
			for _, err := range []error{createErr, submitErr, describeErr, listErr, findErr, terminateErr} {
				if err == nil || errors.Is(err, berth.ErrThrottled) != tt.throttled || provider.ClassOf(err) != provider.ClassTransient {
					t.Errorf("call under %+v: %v, want a transient error, throttled %v", tt.faults, err, tt.throttled)
				}
			}
			// Fault injection by hand is not an API call.
			if err := p.KillCluster(ctx, ready); err != nil {
				t.Errorf("KillCluster under faults: %v", err)
			}
			if err := p.SetFaults(sim.Faults{}); err != nil {
				t.Fatal(err)
			}
			snap := p.Snapshot()
			if got := len(snap.Clusters) == 2; got != tt.effect {
				t.Fatalf("clusters after a failed create: %+v, want effect %v", snap.Clusters, tt.effect)
			}
			if got := snap.Started["s"] == 1; got != tt.effect {
				t.Fatalf("steps started after a failed submit: %v, want effect %v", snap.Started, tt.effect)
			}
			// Retrying finds what a lost reply had done.
			id, err := p.CreateCluster(ctx, req)
			if err != nil || tt.effect && id != snap.Clusters[1].ID {
				t.Fatalf("CreateCluster retried = %s, %v", id, err)
			}
		})
	}
	p, _ := newFake(t, sim.Options{})
	for _, f := range []sim.Faults{{Transient: -0.1}, {Throttle: 1.5}, {Transient: 0.6, LostReply: 0.6}} {
		if err := p.SetFaults(f); !errors.Is(err, berth.ErrInvalid) {
			t.Errorf("SetFaults(%+v) = %v, want ErrInvalid", f, err)
		}
	}
}

func TestIdempotency(t *testing.T) {
	p, fc := newFake(t, sim.Options{Primary: sim.Model{BootTime: sim.Fixed(time.Minute)}})
	req := provider.CreateRequest{ClusterID: "cl-x", Pool: "p", Slots: 2}
	first, err := p.CreateCluster(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := p.CreateCluster(ctx, req); err != nil || again != first {
		t.Fatalf("CreateCluster again = %s, %v; want %s", again, err, first)
	}
	if id, found, err := p.FindCluster(ctx, "cl-x"); err != nil || !found || id != first {
		t.Fatalf("FindCluster = %s, %v, %v", id, found, err)
	}
	if _, found, err := p.FindCluster(ctx, "cl-never"); err != nil || found {
		t.Fatalf("FindCluster of a cluster never created = %v, %v", found, err)
	}
	if _, err := p.SubmitStep(ctx, first, provider.StepRequest{Name: "s", Step: berth.Step{Args: []string{"true"}}}); !errors.Is(err, provider.ErrNotReady) {
		t.Fatalf("SubmitStep while starting: %v, want ErrNotReady", err)
	}
	fc.Advance(time.Minute)
	step := submit(t, p, first, "s", "sleep", "1m")
	if again := submit(t, p, first, "s", "sleep", "1m"); again != step || step != "sim-s-1" {
		t.Fatalf("SubmitStep again = %s, first %s (want sim-s-1)", again, step)
	}
	other := create(t, p, false)
	fc.Advance(time.Minute)
	// The same name on another cluster is another step: counted twice.
	submit(t, p, other, "s", "true")
	if snap := p.Snapshot(); snap.Started["s"] != 2 || snap.StepsStarted != 2 {
		t.Fatalf("started = %v (%d), want s twice", snap.Started, snap.StepsStarted)
	}
	// Once the cluster is gone, its Berth id gets a new one.
	if err := p.KillCluster(ctx, first); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := p.FindCluster(ctx, "cl-x"); found {
		t.Fatal("FindCluster finds a lost cluster")
	}
	if again, err := p.CreateCluster(ctx, req); err != nil || again == first {
		t.Fatalf("CreateCluster after the loss = %s, %v; want a new cluster", again, err)
	}
}

func TestUnknownIDs(t *testing.T) {
	p, _ := newFake(t, sim.Options{})
	if c := describe(t, p, "sim-c-9"); c.State != berth.ClusterLost || c.Reason != sim.ReasonUnknown {
		t.Fatalf("unknown cluster = %+v", c)
	}
	if err := p.TerminateCluster(ctx, "sim-c-9"); err != nil {
		t.Fatalf("TerminateCluster of an unknown id: %v", err)
	}
	checks := map[string]error{}
	_, checks["submit"] = p.SubmitStep(ctx, "sim-c-9", provider.StepRequest{Name: "s", Step: berth.Step{Args: []string{"true"}}})
	_, checks["list"] = p.ListSteps(ctx, "sim-c-9")
	checks["cancel"] = p.CancelStep(ctx, "sim-c-9", "sim-s-1")
	checks["kill"] = p.KillCluster(ctx, "sim-c-9")
	_, checks["logs"] = p.StepLogs(ctx, "sim-c-9", "sim-s-1")
	for call, err := range checks {
		if !errors.Is(err, provider.ErrUnknownCluster) {
			t.Errorf("%s on an unknown cluster: %v, want ErrUnknownCluster", call, err)
		}
	}
	cluster := create(t, p, false)
	if err := p.CancelStep(ctx, cluster, "sim-s-9"); !errors.Is(err, berth.ErrNotFound) {
		t.Errorf("CancelStep of an unknown step: %v, want ErrNotFound", err)
	}
}

func TestCancelAndTerminateStopSteps(t *testing.T) {
	p, fc := newFake(t, sim.Options{Primary: sim.Model{TerminateTime: sim.Fixed(time.Minute)}})
	cluster := create(t, p, false)
	cancelled := submit(t, p, cluster, "c", "sleep", "1h")
	done := submit(t, p, cluster, "d", "sleep", "1s")
	cut := submit(t, p, cluster, "t", "sleep", "1h")
	at(fc, time.Minute)
	for _, id := range []string{cancelled, done} {
		if err := p.CancelStep(ctx, cluster, id); err != nil {
			t.Fatal(err)
		}
	}
	at(fc, 2*time.Minute)
	terminate(t, p, cluster)
	if n := p.Snapshot().Clusters[0].Running; n != 0 {
		t.Errorf("%d steps run on a terminating cluster", n)
	}
	at(fc, time.Hour)
	tests := []struct {
		id    string
		state berth.StepState
		ended time.Duration
	}{
		{cancelled, berth.StepCancelled, time.Minute},
		{done, berth.StepSucceeded, time.Second},
		{cut, berth.StepFailed, 2 * time.Minute},
	}
	for _, tt := range tests {
		s := stepOf(t, p, cluster, tt.id)
		if s.State != tt.state || !s.EndedAt.Equal(t0.Add(tt.ended)) {
			t.Errorf("step %s, ended %v; want %s at +%s", providertest.Format(s), s.EndedAt, tt.state, tt.ended)
		}
	}
}

func TestKill(t *testing.T) {
	tests := []struct {
		name string
		// prepare acts before the kill at +1m on a cluster that boots in 2m.
		prepare func(p *sim.Provider, id string)
		want    berth.ClusterState
		class   provider.Class
	}{
		{"starting", func(*sim.Provider, string) {}, berth.ClusterLost, provider.ClassCapacity},
		{"terminating", func(p *sim.Provider, id string) { terminate(t, p, id) }, berth.ClusterLost, provider.ClassCapacity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, fc := newFake(t, sim.Options{Primary: sim.Model{BootTime: sim.Fixed(2 * time.Minute), TerminateTime: sim.Fixed(5 * time.Minute)}})
			id := create(t, p, false)
			tt.prepare(p, id)
			at(fc, time.Minute)
			if err := p.KillCluster(ctx, id); err != nil {
				t.Fatal(err)
			}
			c := describe(t, p, id)
			if c.State != tt.want || c.Class != tt.class || c.Reason != sim.ReasonKilled {
				t.Fatalf("killed cluster = %+v", c)
			}
			if end := p.Snapshot().Clusters[0].EndedAt; !end.Equal(t0.Add(time.Minute)) {
				t.Fatalf("killed cluster ended at %v", end)
			}
		})
	}
	// A terminated cluster stays terminated.
	p, fc := newFake(t, sim.Options{})
	id := create(t, p, false)
	terminate(t, p, id)
	fc.Advance(time.Second)
	if err := p.KillCluster(ctx, id); err != nil {
		t.Fatal(err)
	}
	if c := describe(t, p, id); c.State != berth.ClusterTerminated {
		t.Fatalf("a killed terminated cluster is %+v", c)
	}
}

func TestSnapshot(t *testing.T) {
	p, fc := newFake(t, sim.Options{Primary: sim.Model{BootTime: sim.Fixed(time.Minute)}, IDPrefix: "sim-r2"})
	a := create(t, p, false)
	b := create(t, p, true)
	at(fc, time.Minute)
	submit(t, p, a, "one", "sleep", "10m")
	submit(t, p, a, "two", "sleep", "20m")
	submit(t, p, a, "one", "sleep", "10m")
	if err := p.KillCluster(ctx, b); err != nil {
		t.Fatal(err)
	}
	at(fc, 15*time.Minute)
	snap := p.Snapshot()
	if snap.Live != 1 || snap.StepsStarted != 2 || snap.Started["one"] != 1 || snap.Started["two"] != 1 || !snap.At.Equal(fc.Now()) {
		t.Fatalf("snapshot = %+v", snap)
	}
	ca, cb := snap.Clusters[0], snap.Clusters[1]
	if ca.ID != "sim-r2-c-1" || ca.State != berth.ClusterReady || ca.Running != 1 || ca.Pool != "p" || ca.Slots != 2 || ca.Fallback || !ca.EndedAt.IsZero() {
		t.Errorf("live cluster = %+v", ca)
	}
	if cb.State != berth.ClusterLost || cb.Class != provider.ClassCapacity || !cb.Fallback || cb.TerminateAsked || !cb.EndedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("killed cluster = %+v", cb)
	}
	// The snapshot is the caller's.
	snap.Started["one"] = 99
	if p.Snapshot().Started["one"] != 1 {
		t.Error("changing a snapshot changed the provider")
	}
}

func TestStepLogs(t *testing.T) {
	p, fc := newFake(t, sim.Options{})
	cluster := create(t, p, false)
	id := submit(t, p, cluster, "berth:job-1:1:0", "fail", "1s")
	fc.Advance(time.Second)
	logs, err := p.StepLogs(ctx, cluster, id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.Stdout, "berth:job-1:1:0") || !strings.Contains(logs.Stdout, "failed after 1s") || !strings.Contains(logs.Stderr, "exited with code 1") {
		t.Fatalf("logs = %+v", logs)
	}
}

func TestNewRefusesABadModel(t *testing.T) {
	tests := []struct {
		name string
		opts sim.Options
		want string
	}{
		{"negative boot", sim.Options{Primary: sim.Model{BootTime: sim.Fixed(-time.Second)}}, "boot time"},
		{"upside-down uniform", sim.Options{Primary: sim.Model{StepTime: sim.Uniform(time.Minute, time.Second)}}, "step time"},
		{"negative loss rate", sim.Options{Primary: sim.Model{LossPerClusterHour: -1}}, "loss per cluster-hour"},
		{"NaN loss rate", sim.Options{Primary: sim.Model{LossPerClusterHour: math.NaN()}}, "loss per cluster-hour"},
		{"shortage above 1", sim.Options{Fallback: &sim.Model{CapacityShortage: 2}}, "fallback model: capacity shortage"},
		{"faults", sim.Options{Faults: sim.Faults{Throttle: -1}}, "faults"},
		{"price", sim.Options{PricePerHour: -1}, "price"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sim.New(tt.opts)
			if !errors.Is(err, berth.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want ErrInvalid naming %q", err, tt.want)
			}
		})
	}
}
