package emulator_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/emr"
	"github.com/aws/aws-sdk-go-v2/service/emr/types"

	"github.com/berthhq/berth/internal/clock"
	"github.com/berthhq/berth/internal/emulator"
	"github.com/berthhq/berth/internal/wait"
)

// A spot loss fails the running steps first; the cluster says it was lost
// only LossLag later, when its pending steps are CANCELLED.
func TestSpotLoss(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	id := h.ready(t, input("spot", 1))
	ids := h.add(t, id, newGate(t).step("running"), jar("pending"))
	running := h.waitStep(t, id, ids[0], emulator.StepRunning)
	if err := h.emu.SpotLoss(id); err != nil {
		t.Fatal(err)
	}
	st := h.step(t, id, ids[0])
	if st.Status.State != types.StepStateFailed || st.Status.FailureDetails == nil || !strings.Contains(aws.ToString(st.Status.FailureDetails.Message), "lost") {
		t.Fatalf("running step after a spot loss: %s %+v, want FAILED for a lost node", st.Status.State, st.Status.FailureDetails)
	}
	c := h.cluster(t, id)
	if c.Status.State != types.ClusterStateWaiting || c.Status.StateChangeReason != nil {
		t.Fatalf("cluster right after the loss: %s %+v; the loss must show only after the lag", c.Status.State, c.Status.StateChangeReason)
	}
	if st := h.step(t, id, ids[1]).Status.State; st != types.StepStatePending {
		t.Errorf("pending step during the lag: %s, want PENDING (not started)", st)
	}
	wait.For(t, within, "the running step's process group to end", func() bool { return gone(running.PID) })
	groups, _ := h.emr.ListInstanceGroups(context.Background(), &emr.ListInstanceGroupsInput{ClusterId: aws.String(id)})
	if n := aws.ToInt32(groups.InstanceGroups[1].RunningInstanceCount); n != 0 {
		t.Errorf("spot core group after the loss: %d running", n)
	}

	h.advance(emulator.DefaultLossLag)
	c = h.cluster(t, id)
	if c.Status.State != types.ClusterStateTerminating || c.Status.StateChangeReason.Code != types.ClusterStateChangeReasonCodeInstanceFailure ||
		!strings.HasPrefix(aws.ToString(c.Status.StateChangeReason.Message), "The master node was terminated") {
		t.Fatalf("cluster after the lag: %s %+v", c.Status.State, c.Status.StateChangeReason)
	}
	if st := h.step(t, id, ids[1]).Status.State; st != types.StepStateCancelled {
		t.Errorf("pending step of the lost cluster: %s, want CANCELLED", st)
	}
	if st := h.step(t, id, ids[0]).Status.State; st != types.StepStateFailed {
		t.Errorf("the failed step became %s", st)
	}
	h.advance(emulator.DefaultTerminateTime)
	if st := h.cluster(t, id).Status.State; st != types.ClusterStateTerminatedWithErrors {
		t.Errorf("lost cluster ends %s, want TERMINATED_WITH_ERRORS", st)
	}
	if err := h.emu.SpotLoss(id); !errors.Is(err, emulator.ErrClusterEnding) {
		t.Errorf("SpotLoss of an ended cluster: %v", err)
	}
	if err := h.emu.SpotLoss("j-NOSUCHCLUSTER"); !errors.Is(err, emulator.ErrNoCluster) {
		t.Errorf("SpotLoss of no cluster: %v", err)
	}
}

// An instance failure fails the running steps at once; the cluster ends
// after the lag, or goes on running its other steps if it survives.
func TestInstanceFailure(t *testing.T) {
	for _, survive := range []bool{false, true} {
		name := map[bool]string{false: "lost", true: "survives"}[survive]
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, emulator.Options{})
			id := h.ready(t, input("node", 1))
			ids := h.add(t, id, newGate(t).step("running"), jar("next"))
			h.waitStep(t, id, ids[0], emulator.StepRunning)
			if err := h.emu.InstanceFailure(id, survive); err != nil {
				t.Fatal(err)
			}
			if st := h.step(t, id, ids[0]).Status.State; st != types.StepStateFailed {
				t.Fatalf("running step: %s, want FAILED", st)
			}
			if survive {
				c, next := h.cluster(t, id), h.step(t, id, ids[1]).Status.State
				if c.Status.State != types.ClusterStateRunning || next != types.StepStateRunning {
					t.Errorf("surviving cluster %s, next step %s; want RUNNING both", c.Status.State, next)
				}
				h.advance(emulator.DefaultLossLag)
				if c := h.cluster(t, id); c.Status.State != types.ClusterStateWaiting {
					t.Errorf("surviving cluster after the lag: %s %+v, want WAITING", c.Status.State, c.Status.StateChangeReason)
				}
				return
			}
			h.advance(emulator.DefaultLossLag)
			c := h.cluster(t, id)
			next := h.step(t, id, ids[1]).Status.State
			if c.Status.State != types.ClusterStateTerminating || c.Status.StateChangeReason.Code != types.ClusterStateChangeReasonCodeInstanceFailure || next != types.StepStateCancelled {
				t.Errorf("lost cluster %s %+v, next step %s", c.Status.State, c.Status.StateChangeReason, next)
			}
		})
	}
}

// FailBootstraps and FailCapacity end the next clusters as EMR would; the
// ones after them start.
func TestStartFailures(t *testing.T) {
	fleets := func(in *emr.RunJobFlowInput) {
		in.Instances.InstanceGroups = nil
		in.Instances.InstanceFleets = []types.InstanceFleetConfig{
			{InstanceFleetType: types.InstanceFleetTypeMaster, TargetOnDemandCapacity: aws.Int32(1), InstanceTypeConfigs: []types.InstanceTypeConfig{{InstanceType: aws.String("m5.xlarge")}}},
			{InstanceFleetType: types.InstanceFleetTypeCore, TargetSpotCapacity: aws.Int32(4), InstanceTypeConfigs: []types.InstanceTypeConfig{{InstanceType: aws.String("r5.2xlarge")}}},
		}
	}
	tests := []struct {
		name  string
		fault func(*emulator.Emulator)
		edit  func(*emr.RunJobFlowInput)
		// through is the state the cluster passes before it ends.
		through types.ClusterState
		code    types.ClusterStateChangeReasonCode
		msg     string
	}{
		{"bootstrap", func(e *emulator.Emulator) { e.FailBootstraps(1) }, nil, types.ClusterStateBootstrapping,
			types.ClusterStateChangeReasonCodeBootstrapFailure, "bootstrap action 1 returned a non-zero return code"},
		{"capacity of groups", func(e *emulator.Emulator) { e.FailCapacity(1) }, nil, types.ClusterStateStarting,
			types.ClusterStateChangeReasonCodeInternalError, "EC2 is out of capacity for r5.2xlarge in availability zone us-east-1a"},
		{"capacity of fleets", func(e *emulator.Emulator) { e.FailCapacity(1) }, fleets, types.ClusterStateStarting,
			types.ClusterStateChangeReasonCodeInstanceFleetTimeout, "could not be provisioned within its provisioning timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, emulator.Options{})
			tt.fault(h.emu)
			in := input("doomed", 1)
			if tt.edit != nil {
				tt.edit(in)
			}
			id := h.start(t, in)
			var passed []types.ClusterState
			for range 4 {
				c := h.cluster(t, id)
				passed = append(passed, c.Status.State)
				if c.Status.State == types.ClusterStateTerminating {
					if c.Status.StateChangeReason.Code != tt.code || !strings.Contains(aws.ToString(c.Status.StateChangeReason.Message), tt.msg) {
						t.Errorf("reason %+v, want %s with %q", c.Status.StateChangeReason, tt.code, tt.msg)
					}
					break
				}
				h.advance(max(emulator.DefaultBootTime, emulator.DefaultBootstrapTime))
			}
			if passed[len(passed)-2] != tt.through {
				t.Errorf("states %v, want %s before TERMINATING", passed, tt.through)
			}
			h.advance(emulator.DefaultTerminateTime)
			if st := h.cluster(t, id).Status.State; st != types.ClusterStateTerminatedWithErrors {
				t.Errorf("ends %s, want TERMINATED_WITH_ERRORS", st)
			}
			h.ready(t, in) // the next one is fine
		})
	}
}

// FailCalls fails the next calls of an operation with the code, message
// and status given, without effect.
func TestFailCalls(t *testing.T) {
	tests := []struct {
		code   string
		status int
	}{
		{"ValidationException", 400},
		{"AccessDeniedException", 400},
		{"ThrottlingException", 400},
		{"InternalServerError", 500},
		{"InternalFailure", 500},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			h := newHarness(t, emulator.Options{})
			h.emu.FailCalls("RunJobFlow", tt.code, "scripted "+tt.code, tt.status, 2)
			for range 2 {
				_, err := h.emr.RunJobFlow(context.Background(), input("x", 1))
				code, msg, status := apiError(t, err)
				want := "scripted " + tt.code
				if tt.code == "InternalServerError" {
					want = "" // EMR's model of it has no message, so the SDK drops it
				}
				if code != tt.code || msg != want || status != tt.status {
					t.Fatalf("failed call: %s %q %d, want %s %d", code, msg, status, tt.code, tt.status)
				}
			}
			if n := len(h.emu.Snapshot()); n != 0 {
				t.Fatalf("failed calls made %d clusters", n)
			}
			h.start(t, input("x", 1))
			if n := h.emu.Calls()["RunJobFlow"]; n != 3 {
				t.Errorf("%d RunJobFlow calls counted, want 3", n)
			}
		})
	}
}

// A dropped reply is a 500 for a call that took effect.
func TestDropReplies(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	h.emu.DropReplies("RunJobFlow", 1)
	_, err := h.emr.RunJobFlow(context.Background(), input("x", 1))
	if code, _, status := apiError(t, err); code != "InternalFailure" || status != http.StatusInternalServerError {
		t.Fatalf("dropped reply: %s %d, want InternalFailure 500", code, status)
	}
	out, err := h.emr.ListClusters(context.Background(), &emr.ListClustersInput{})
	if err != nil || len(out.Clusters) != 1 {
		t.Fatalf("clusters after a dropped reply: %v (%v), want the one it made", out, err)
	}
	h.start(t, input("y", 1))
}

// SetLatency holds an answer back on the emulator's clock, after the call
// took effect.
func TestLatency(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	h.emu.SetLatency("*", 5*time.Second)
	done := make(chan error, 1)
	go func() {
		_, err := h.emr.ListClusters(context.Background(), &emr.ListClustersInput{})
		done <- err
	}()
	// The held answer is the only timer of an emulator with no cluster.
	wait.For(t, within, "the answer to be held back", func() bool { return h.clk.Pending() == 1 })
	select {
	case err := <-done:
		t.Fatalf("answered (%v) before its latency passed", err)
	default:
	}
	h.clk.Advance(5 * time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	h.emu.SetLatency("*", 0)
	if _, err := h.emr.ListClusters(context.Background(), &emr.ListClustersInput{}); err != nil {
		t.Fatal(err)
	}
}

// With throttling on, each API has its bucket (burst 10, refilled at its
// rate) and every call also draws on the account's (burst 10, 5 a
// second); a call that finds either empty is ThrottlingException.
func TestThrottling(t *testing.T) {
	tests := []struct {
		op     string
		refill float64
	}{
		{"ListSteps", 0.5},
		{"DescribeStep", 0.5},
		{"RunJobFlow", 0.5},
		{"DescribeCluster", 1},
		{"ListInstanceGroups", 1},
	}
	for _, tt := range tests {
		t.Run(tt.op, func(t *testing.T) {
			h := newHarness(t, emulator.Options{BootTime: time.Hour})
			id := h.start(t, input("c", 1))
			sid := h.add(t, id, jar("j"))[0]
			call := callOf(h, tt.op, id, sid)
			h.emu.SetThrottle(true)
			for i := range 10 {
				if err := call(); err != nil {
					t.Fatalf("call %d of the burst: %v", i+1, err)
				}
			}
			wantThrottled(t, call())
			// Each second adds refill tokens to the API's bucket (and 5
			// to the account's, more than the API's).
			for sec := 1; sec <= 4; sec++ {
				h.clk.Advance(time.Second)
				want := int(float64(sec)*tt.refill+1e-9) - int(float64(sec-1)*tt.refill+1e-9)
				for i := range want {
					if err := call(); err != nil {
						t.Fatalf("second %d, call %d of %d: %v", sec, i+1, want, err)
					}
				}
				wantThrottled(t, call())
			}
			if n := h.emu.Throttled(); n != 5 {
				t.Errorf("Throttled() = %d, want 5", n)
			}
		})
	}

	t.Run("account", func(t *testing.T) {
		h := newHarness(t, emulator.Options{BootTime: time.Hour})
		id := h.start(t, input("c", 1))
		h.emu.SetThrottle(true)
		ops := []string{"DescribeCluster", "ListSteps", "ListInstanceGroups", "ListInstanceFleets", "GetAutoTerminationPolicy"}
		for _, op := range ops {
			for range 2 {
				if err := callOf(h, op, id, "")(); err != nil {
					t.Fatalf("%s: %v", op, err)
				}
			}
		}
		fresh := callOf(h, "ListClusters", id, "")
		wantThrottled(t, fresh()) // its own bucket is full; the account's is not
		h.clk.Advance(200 * time.Millisecond)
		if err := fresh(); err != nil {
			t.Fatalf("after the account earned a token: %v", err)
		}
		wantThrottled(t, fresh())
	})
}

// ThrottleScale refills every bucket that many times as fast, the
// account's too; the bursts stay 10.
func TestThrottleScale(t *testing.T) {
	h := newHarness(t, emulator.Options{BootTime: time.Hour, Throttle: true, ThrottleScale: 20})
	id := h.start(t, input("c", 1))
	list := callOf(h, "ListSteps", id, "")
	// RunJobFlow took one token of the account's burst of 10.
	for i := range 9 {
		if err := list(); err != nil {
			t.Fatalf("call %d of the burst: %v", i+1, err)
		}
	}
	wantThrottled(t, list())
	// A second later both buckets are full again and only the bursts
	// count: 10 calls pass, not 11.
	h.clk.Advance(time.Second)
	for i := range 10 {
		if err := list(); err != nil {
			t.Fatalf("call %d a second later: %v", i+1, err)
		}
	}
	wantThrottled(t, list())
	// ListSteps refills at 0.5 × 20 = 10 a second: a token each 100 ms.
	h.clk.Advance(90 * time.Millisecond)
	wantThrottled(t, list())
	h.clk.Advance(10 * time.Millisecond)
	if err := list(); err != nil {
		t.Fatalf("100 ms after the burst: %v", err)
	}
	wantThrottled(t, list())
	// The account refills at 5 × 20 = 100 a second: it earned 10 in those
	// 100 ms and has 9 left. With them spent, 10 ms earns it the next.
	describe := callOf(h, "DescribeCluster", id, "")
	for i := range 9 {
		if err := describe(); err != nil {
			t.Fatalf("DescribeCluster %d: %v", i+1, err)
		}
	}
	wantThrottled(t, describe())
	h.clk.Advance(10 * time.Millisecond)
	if err := describe(); err != nil {
		t.Fatalf("10 ms later: %v", err)
	}
	if n := h.emu.Throttled(); n != 5 {
		t.Errorf("Throttled() = %d, want 5", n)
	}
}

func wantThrottled(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("not throttled")
	}
	code, msg, status := apiError(t, err)
	if code != "ThrottlingException" || msg != "Rate exceeded" || status != http.StatusBadRequest {
		t.Fatalf("%s %q %d, want ThrottlingException \"Rate exceeded\" 400", code, msg, status)
	}
}

// callOf is one call of op about cluster id and step sid.
func callOf(h *harness, op, id, sid string) func() error {
	ctx := context.Background()
	c := aws.String(id)
	return map[string]func() error{
		"ListSteps": func() error { _, err := h.emr.ListSteps(ctx, &emr.ListStepsInput{ClusterId: c}); return err },
		"DescribeStep": func() error {
			_, err := h.emr.DescribeStep(ctx, &emr.DescribeStepInput{ClusterId: c, StepId: aws.String(sid)})
			return err
		},
		"RunJobFlow": func() error { _, err := h.emr.RunJobFlow(ctx, input("r", 1)); return err },
		"DescribeCluster": func() error {
			_, err := h.emr.DescribeCluster(ctx, &emr.DescribeClusterInput{ClusterId: c})
			return err
		},
		"ListInstanceGroups": func() error {
			_, err := h.emr.ListInstanceGroups(ctx, &emr.ListInstanceGroupsInput{ClusterId: c})
			return err
		},
		"ListInstanceFleets": func() error {
			_, err := h.emr.ListInstanceFleets(ctx, &emr.ListInstanceFleetsInput{ClusterId: c})
			return err
		},
		"GetAutoTerminationPolicy": func() error {
			_, err := h.emr.GetAutoTerminationPolicy(ctx, &emr.GetAutoTerminationPolicyInput{ClusterId: c})
			return err
		},
		"ListClusters": func() error { _, err := h.emr.ListClusters(ctx, &emr.ListClustersInput{}); return err },
	}[op]
}

// An idle cluster with an auto-termination policy ends by itself once
// idle for its timeout (scaled by IdleScale); a step resets the count.
func TestAutoTermination(t *testing.T) {
	for _, tt := range []struct {
		scale float64
		idle  time.Duration
	}{
		{1, 60 * time.Second},
		{0.01, 600 * time.Millisecond},
	} {
		t.Run(tt.idle.String(), func(t *testing.T) {
			h := newHarness(t, emulator.Options{IdleScale: tt.scale})
			in := input("idle", 1)
			in.AutoTerminationPolicy = &types.AutoTerminationPolicy{IdleTimeout: aws.Int64(60)}
			id := h.ready(t, in)
			h.advance(tt.idle / 2)
			h.add(t, id, jar("keeps it busy"))
			h.advance(emulator.DefaultJarStepTime) // the step ends: idle from here
			h.advance(tt.idle - time.Millisecond)
			if st := h.cluster(t, id).Status.State; st != types.ClusterStateWaiting {
				t.Fatalf("cluster %s before its idle timeout, want WAITING", st)
			}
			h.advance(time.Millisecond)
			c := h.cluster(t, id)
			if c.Status.State != types.ClusterStateTerminating || c.Status.StateChangeReason.Code != types.ClusterStateChangeReasonCodeAllStepsCompleted ||
				!strings.Contains(aws.ToString(c.Status.StateChangeReason.Message), "auto-termination") {
				t.Fatalf("idle cluster: %s %+v, want TERMINATING ALL_STEPS_COMPLETED by auto-termination", c.Status.State, c.Status.StateChangeReason)
			}
			h.advance(emulator.DefaultTerminateTime)
			if st := h.cluster(t, id).Status.State; st != types.ClusterStateTerminated {
				t.Errorf("ends %s, want TERMINATED", st)
			}
		})
	}
}

// Close kills the step processes and removes the clusters' directories;
// later requests are 503.
func TestClose(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	id := h.ready(t, input("c", 1))
	sid := h.add(t, id, command("run", "sh", "-c", "pwd; while :; do sleep 0.01; done"))[0]
	wait.For(t, within, "the step to say where it runs", func() bool { return strings.HasSuffix(h.snapStep(t, id, sid).Stdout, "\n") })
	s := h.snapStep(t, id, sid)
	if err := h.emu.Close(); err != nil {
		t.Fatal(err)
	}
	wait.For(t, within, "the step's process group to end", func() bool { return gone(s.PID) })
	if _, err := os.Stat(strings.TrimSpace(s.Stdout)); !os.IsNotExist(err) {
		t.Errorf("the cluster's directory is still there after Close: %v", err)
	}
	_, err := h.emr.DescribeCluster(context.Background(), &emr.DescribeClusterInput{ClusterId: aws.String(id)})
	if _, _, status := apiError(t, err); status != http.StatusServiceUnavailable {
		t.Errorf("a call after Close: %d, want 503", status)
	}
}

// Many callers at once, on the wall clock, with the default durations:
// every cluster runs its steps and ends (run with -race).
func TestConcurrentUse(t *testing.T) {
	h := newHarness(t, emulator.Options{Clock: clock.Real{}})
	var wg sync.WaitGroup
	ids := make([]string, 6)
	for i := range ids {
		wg.Go(func() {
			in := input("c", 2)
			in.Steps = []types.StepConfig{jar("a"), command("b", "true"), command("c", "sh", "-c", "echo hi")}
			out, err := h.emr.RunJobFlow(context.Background(), in)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = aws.ToString(out.JobFlowId)
			for range 5 {
				if _, err := h.emr.DescribeCluster(context.Background(), &emr.DescribeClusterInput{ClusterId: out.JobFlowId}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	wait.For(t, within, "every step of every cluster to complete", func() bool {
		for _, c := range h.emu.Snapshot() {
			if c.State != emulator.ClusterWaiting || len(c.Steps) != 3 {
				return false
			}
			for _, s := range c.Steps {
				if s.State != emulator.StepCompleted {
					return false
				}
			}
		}
		return true
	})
	for _, id := range ids {
		wg.Go(func() {
			if _, err := h.emr.TerminateJobFlows(context.Background(), &emr.TerminateJobFlowsInput{JobFlowIds: []string{id}}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	wait.For(t, within, "every cluster to end", func() bool {
		for _, c := range h.emu.Snapshot() {
			if c.State != emulator.ClusterTerminated {
				return false
			}
		}
		return true
	})
}
