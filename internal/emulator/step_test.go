package emulator_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/emr"
	"github.com/aws/aws-sdk-go-v2/service/emr/types"

	"github.com/berthhq/berth/internal/emulator"
	"github.com/berthhq/berth/internal/wait"
)

// A command-runner.jar step runs its Args as a process in the cluster's
// directory; its exit status decides COMPLETED or FAILED, with EMR's
// FailureDetails. Another jar runs nothing and completes on the clock.
func TestStepsRun(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	in := input("steps", 4)
	in.LogUri = aws.String("s3://logs/emr")
	id := h.ready(t, in)
	ids := h.add(t, id,
		command("ok", "sh", "-c", "pwd; echo out; echo err >&2"),
		command("fail", "sh", "-c", "exit 3"),
		command("argv", "printf", "%s|", "a b", "$HOME", "'q'"),
		command("missing", "no-such-program-anywhere"),
	)
	for _, sid := range ids {
		if !stepID.MatchString(sid) {
			t.Errorf("step id %q is not like EMR's", sid)
		}
	}
	ok := h.waitStep(t, id, ids[0], emulator.StepCompleted)
	dir, _, _ := strings.Cut(ok.Stdout, "\n")
	if ok.Stdout != dir+"\nout\n" || ok.Stderr != "err\n" || ok.ExitCode != 0 {
		t.Errorf("step ok: stdout %q, stderr %q, exit %d", ok.Stdout, ok.Stderr, ok.ExitCode)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() || !strings.Contains(filepath.Base(dir), id) {
		t.Errorf("step ran in %q (%v), want a directory of cluster %s", dir, err, id)
	}

	h.waitStep(t, id, ids[1], emulator.StepFailed)
	st := h.step(t, id, ids[1])
	fd := st.Status.FailureDetails
	if fd == nil || aws.ToString(fd.Message) != "Command exited with status 3" ||
		aws.ToString(fd.LogFile) != "s3://logs/emr/"+id+"/steps/"+ids[1]+"/stderr.gz" {
		t.Errorf("FailureDetails of a step that exited 3: %+v", fd)
	}
	if st.Status.Timeline.StartDateTime == nil || st.Status.Timeline.EndDateTime == nil {
		t.Errorf("timeline of an ended step: %+v", st.Status.Timeline)
	}

	if argv := h.waitStep(t, id, ids[2], emulator.StepCompleted); argv.Stdout != "a b|$HOME|'q'|" {
		t.Errorf("args went through a shell: %q", argv.Stdout)
	}
	missing := h.waitStep(t, id, ids[3], emulator.StepFailed)
	if !strings.Contains(missing.FailureMessage, "Cannot run program") {
		t.Errorf("a program that is not there: %q", missing.FailureMessage)
	}

	js := h.add(t, id, jar("spark"))[0]
	if st := h.step(t, id, js); st.Status.State != types.StepStateRunning || aws.ToString(st.Config.MainClass) != "com.example.Main" {
		t.Fatalf("jar step: %s %+v", st.Status.State, st.Config)
	}
	h.advance(emulator.DefaultJarStepTime)
	if st := h.step(t, id, js).Status.State; st != types.StepStateCompleted {
		t.Errorf("jar step after its time: %s", st)
	}
	if st := h.cluster(t, id).Status.State; st != types.ClusterStateWaiting {
		t.Errorf("cluster with no step running: %s, want WAITING", st)
	}
}

// At most StepConcurrencyLevel steps run at once, in the order they were
// added; the cluster is RUNNING while any does.
func TestConcurrencyLimit(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	id := h.ready(t, input("two at once", 2))
	gates := []gate{newGate(t), newGate(t), newGate(t), newGate(t)}
	var steps []types.StepConfig
	for i, g := range gates {
		steps = append(steps, g.step("s"+string(rune('1'+i))))
	}
	ids := h.add(t, id, steps...)
	states := func() []string {
		c, _ := h.emu.Cluster(id)
		var out []string
		for _, s := range c.Steps {
			out = append(out, s.State)
		}
		return out
	}
	R, P, C := emulator.StepRunning, emulator.StepPending, emulator.StepCompleted
	if got := states(); !slices.Equal(got, []string{R, R, P, P}) {
		t.Fatalf("steps %v, want two running and two pending", got)
	}
	if st := h.cluster(t, id).Status.State; st != types.ClusterStateRunning {
		t.Errorf("cluster %s while steps run, want RUNNING", st)
	}
	gates[1].open(t)
	h.waitStep(t, id, ids[1], C)
	if got := states(); !slices.Equal(got, []string{R, C, R, P}) {
		t.Fatalf("after the second ended: %v, want the third running in its place", got)
	}
	for _, g := range []gate{gates[0], gates[2], gates[3]} {
		g.open(t)
	}
	wait.For(t, within, "every step completed", func() bool { return slices.Equal(states(), []string{C, C, C, C}) })
	if st := h.cluster(t, id).Status.State; st != types.ClusterStateWaiting {
		t.Errorf("cluster %s with every step done, want WAITING", st)
	}
}

// A cluster takes at most 256 steps PENDING, RUNNING and CANCEL_PENDING;
// the ones that end make room.
func TestActiveStepLimit(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	id := h.start(t, input("full", 1)) // still STARTING: every step stays PENDING
	var ids []string
	for range 4 {
		var batch []types.StepConfig
		for range 64 {
			batch = append(batch, jar("j"))
		}
		ids = append(ids, h.add(t, id, batch...)...)
	}
	_, err := h.emr.AddJobFlowSteps(context.Background(), &emr.AddJobFlowStepsInput{JobFlowId: aws.String(id), Steps: []types.StepConfig{jar("257th")}})
	wantAPIError(t, err, "ValidationException", "Maximum number of active steps(State = 'Running', 'Pending' or 'Cancel_Pending') for cluster exceeded.")
	if _, err := h.emr.CancelSteps(context.Background(), &emr.CancelStepsInput{ClusterId: aws.String(id), StepIds: ids[:1]}); err != nil {
		t.Fatal(err)
	}
	h.add(t, id, jar("in the cancelled one's place"))
	if c, _ := h.emu.Cluster(id); len(c.Steps) != 257 {
		t.Errorf("%d steps, want 257", len(c.Steps))
	}
}

// ListSteps answers 50 steps a page in reverse order of creation,
// filtered by state and id; its pages do not move when steps are added
// between them.
func TestListSteps(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	id := h.start(t, input("many", 1))
	var batch []types.StepConfig
	for range 120 {
		batch = append(batch, jar("j"))
	}
	ids := h.add(t, id, batch...)
	if _, err := h.emr.CancelSteps(context.Background(), &emr.CancelStepsInput{ClusterId: aws.String(id), StepIds: []string{ids[3], ids[7]}}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var got []string
	var marker *string
	for pages := 0; ; pages++ {
		out, err := h.emr.ListSteps(ctx, &emr.ListStepsInput{ClusterId: aws.String(id), Marker: marker})
		if err != nil {
			t.Fatal(err)
		}
		if want := []int{50, 50, 20}[min(pages, 2)]; len(out.Steps) != want {
			t.Fatalf("page %d has %d steps, want %d", pages, len(out.Steps), want)
		}
		for _, s := range out.Steps {
			got = append(got, aws.ToString(s.Id))
		}
		if pages == 0 {
			h.add(t, id, jar("added between pages"))
		}
		if marker = out.Marker; marker == nil {
			break
		}
	}
	want := slices.Clone(ids)
	slices.Reverse(want)
	if !slices.Equal(got, want) {
		t.Errorf("ListSteps pages\n%v\nwant newest first\n%v", got, want)
	}

	cancelled, err := h.emr.ListSteps(ctx, &emr.ListStepsInput{ClusterId: aws.String(id), StepStates: []types.StepState{types.StepStateCancelled}})
	if err != nil || len(cancelled.Steps) != 2 || aws.ToString(cancelled.Steps[0].Id) != ids[7] {
		t.Errorf("CANCELLED steps: %v (%v), want %s and %s", cancelled, err, ids[7], ids[3])
	}
	byID, err := h.emr.ListSteps(ctx, &emr.ListStepsInput{ClusterId: aws.String(id), StepIds: []string{ids[0], ids[100]}})
	if err != nil || len(byID.Steps) != 2 || aws.ToString(byID.Steps[0].Id) != ids[100] || aws.ToString(byID.Steps[1].Name) != "j" {
		t.Errorf("steps by id: %+v (%v)", byID, err)
	}
	_, err = h.emr.DescribeStep(ctx, &emr.DescribeStepInput{ClusterId: aws.String(id), StepId: aws.String("s-NOSUCHSTEP")})
	wantAPIError(t, err, "InvalidRequestException", "s-NOSUCHSTEP")
}

// CancelSteps: a pending step is CANCELLED at once; a running one is
// CANCEL_PENDING, holding its place, until its process group ends after
// SIGTERM (SEND_INTERRUPT) or SIGKILL (TERMINATE_PROCESS); an ended step
// cannot be cancelled.
func TestCancelSteps(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	id := h.ready(t, input("cancel", 1))
	dir := t.TempDir()
	termed := filepath.Join(dir, "got-sigterm")
	// The first step stops on SIGTERM, saying so; the second ignores it.
	// Each says when its trap is set, so that the signal does not come
	// before it.
	polite := command("polite", "sh", "-c", "trap 'echo term > "+termed+"; exit 0' TERM; echo ready; while :; do sleep 0.01; done")
	stubborn := command("stubborn", "sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.01; done")
	ready := func(sid string) emulator.Step {
		wait.For(t, within, "step "+sid+" to set its trap", func() bool { return h.snapStep(t, id, sid).Stdout == "ready\n" })
		return h.snapStep(t, id, sid)
	}
	ids := h.add(t, id, polite, stubborn, jar("pending"))
	ctx := context.Background()
	cancel := func(opt types.StepCancellationOption, sids ...string) []types.CancelStepsInfo {
		t.Helper()
		out, err := h.emr.CancelSteps(ctx, &emr.CancelStepsInput{ClusterId: aws.String(id), StepIds: sids, StepCancellationOption: opt})
		if err != nil {
			t.Fatal(err)
		}
		return out.CancelStepsInfoList
	}

	first := ready(ids[0])
	if first.State != emulator.StepRunning {
		t.Fatalf("first step %s", first.State)
	}
	info := cancel("", ids[2])
	if len(info) != 1 || info[0].Status != types.CancelStepsRequestStatusSubmitted || h.snapStep(t, id, ids[2]).State != emulator.StepCancelled {
		t.Fatalf("cancel of a pending step: %+v, state %s", info, h.snapStep(t, id, ids[2]).State)
	}

	cancel(types.StepCancellationOptionSendInterrupt, ids[0])
	h.waitStep(t, id, ids[0], emulator.StepCancelled)
	if b, err := os.ReadFile(termed); err != nil || string(b) != "term\n" {
		t.Errorf("the step did not get SIGTERM: %q, %v", b, err)
	}
	wait.For(t, within, "the first step's process group to end", func() bool { return gone(first.PID) })

	h.waitStep(t, id, ids[1], emulator.StepRunning)
	second := ready(ids[1])
	cancel(types.StepCancellationOptionSendInterrupt, ids[1])
	if st := h.step(t, id, ids[1]).Status.State; st != types.StepStateCancelPending {
		t.Fatalf("a step that ignores SIGTERM: %s, want CANCEL_PENDING", st)
	}
	h.add(t, id, jar("waits for the place"))
	if c := h.cluster(t, id); c.Status.State != types.ClusterStateRunning {
		t.Errorf("cluster %s while a step is being cancelled, want RUNNING", c.Status.State)
	}
	if s := h.emu.Snapshot()[0].Steps[3]; s.State != emulator.StepPending {
		t.Errorf("a step started in the place of one being cancelled: %s", s.State)
	}
	cancel(types.StepCancellationOptionTerminateProcess, ids[1])
	h.waitStep(t, id, ids[1], emulator.StepCancelled)
	wait.For(t, within, "the second step's process group to end", func() bool { return gone(second.PID) })

	info = cancel("", ids[0], "s-NOSUCHSTEP")
	if len(info) != 2 || info[0].Status != types.CancelStepsRequestStatusFailed || !strings.Contains(aws.ToString(info[0].Reason), "CANCELLED") ||
		info[1].Status != types.CancelStepsRequestStatusFailed {
		t.Errorf("cancel of an ended step and of no step: %+v", info)
	}
}

// TerminateJobFlows ends a cluster's steps: running ones INTERRUPTED, their
// processes killed, pending ones CANCELLED.
func TestTerminateEndsSteps(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	id := h.ready(t, input("busy", 1))
	ids := h.add(t, id, newGate(t).step("running"), jar("pending"))
	running := h.waitStep(t, id, ids[0], emulator.StepRunning)
	if _, err := h.emr.TerminateJobFlows(context.Background(), &emr.TerminateJobFlowsInput{JobFlowIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	if st := h.step(t, id, ids[0]).Status.State; st != types.StepStateInterrupted {
		t.Errorf("running step of a terminated cluster: %s, want INTERRUPTED", st)
	}
	if st := h.step(t, id, ids[1]).Status.State; st != types.StepStateCancelled {
		t.Errorf("pending step of a terminated cluster: %s, want CANCELLED", st)
	}
	wait.For(t, within, "the running step's process group to end", func() bool { return gone(running.PID) })
	h.advance(emulator.DefaultTerminateTime)
	if st := h.cluster(t, id).Status.State; st != types.ClusterStateTerminated {
		t.Errorf("cluster %s", st)
	}
}

// A failed step's ActionOnFailure acts on a cluster that runs one step at
// a time: TERMINATE_CLUSTER ends it with STEP_FAILURE, CANCEL_AND_WAIT
// cancels the pending steps.
func TestActionOnFailure(t *testing.T) {
	for _, tt := range []struct {
		action  types.ActionOnFailure
		cluster types.ClusterState
	}{
		{types.ActionOnFailureTerminateCluster, types.ClusterStateTerminating},
		{types.ActionOnFailureCancelAndWait, types.ClusterStateWaiting},
	} {
		t.Run(string(tt.action), func(t *testing.T) {
			h := newHarness(t, emulator.Options{})
			id := h.ready(t, input("aof", 1))
			fail := command("fail", "false")
			fail.ActionOnFailure = tt.action
			ids := h.add(t, id, fail, jar("next"))
			h.waitStep(t, id, ids[0], emulator.StepFailed)
			c := h.cluster(t, id)
			if c.Status.State != tt.cluster {
				t.Errorf("cluster %s, want %s", c.Status.State, tt.cluster)
			}
			if tt.cluster == types.ClusterStateTerminating && c.Status.StateChangeReason.Code != types.ClusterStateChangeReasonCodeStepFailure {
				t.Errorf("reason %+v, want STEP_FAILURE", c.Status.StateChangeReason)
			}
			if st := h.step(t, id, ids[1]).Status.State; st != types.StepStateCancelled {
				t.Errorf("the next step: %s, want CANCELLED", st)
			}
		})
	}
}

// A cluster that does not keep its job flow alive ends once its steps
// are done.
func TestTransientCluster(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	in := input("transient", 1)
	in.Instances.KeepJobFlowAliveWhenNoSteps = aws.Bool(false)
	in.Steps = []types.StepConfig{jar("only")}
	id := h.start(t, in)
	if !aws.ToBool(h.cluster(t, id).AutoTerminate) {
		t.Errorf("AutoTerminate false for a cluster that keeps no job flow alive")
	}
	h.advance(emulator.DefaultBootTime, emulator.DefaultBootstrapTime)
	if st := h.cluster(t, id).Status.State; st != types.ClusterStateRunning {
		t.Fatalf("cluster %s with its step running", st)
	}
	h.advance(emulator.DefaultJarStepTime)
	c := h.cluster(t, id)
	if c.Status.State != types.ClusterStateTerminating || c.Status.StateChangeReason.Code != types.ClusterStateChangeReasonCodeAllStepsCompleted {
		t.Errorf("after its last step: %s %+v, want TERMINATING ALL_STEPS_COMPLETED", c.Status.State, c.Status.StateChangeReason)
	}
}

// What a step's command leaves running in its process group ends with
// it: the step completes when its command does, and leaves nothing
// behind.
func TestStepLeavesNothing(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	id := h.ready(t, input("background", 1))
	sid := h.add(t, id, command("bg", "sh", "-c", "sleep 300 & echo started"))[0]
	s := h.waitStep(t, id, sid, emulator.StepCompleted)
	if s.Stdout != "started\n" {
		t.Errorf("stdout %q", s.Stdout)
	}
	wait.For(t, within, "the background sleep to end", func() bool { return gone(s.PID) })
}
