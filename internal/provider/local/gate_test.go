package local

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider"
)

// poll waits for cond, failing t after a generous deadline.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for !cond() {
		select {
		case <-timeout:
			t.Fatalf("not %s in time", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// ended reports whether pid is gone or a zombie.
func ended(pid int) bool {
	st, err := readProcStat(pid)
	return err != nil || st.state == 'Z'
}

// lockHeld reports whether someone holds the cluster's lock exclusively.
func lockHeld(p *Provider, cluster string) (bool, error) {
	f, err := os.Open(filepath.Join(p.clusterDir(cluster), "lock"))
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	return false, err
}

// appendStep appends a line to the file ran each time it runs.
func appendStep(ran string) berth.Step {
	return berth.Step{Args: []string{"sh", "-c", `echo ran >> "$1"`, "sh", ran}}
}

// TestSubmissionLeftByACrash reads the step directories a server killed
// inside SubmitStep can leave, then submits the step again: a step that
// never ran is hidden and replaced under the same id, one that ran is
// adopted, and no step runs twice. Each case runs on this version's layout
// and on that of the version before step.json, which a server upgraded
// under a running cluster finds.
func TestSubmissionLeftByACrash(t *testing.T) {
	t.Parallel()
	// gated records argv as the step's wrapper, one that passed the gate's
	// pid record but not its go line.
	gated := func(t *testing.T, f stepFixture, argv ...string) *exec.Cmd {
		t.Helper()
		cmd, rec := startDetached(t, argv...)
		rec.Gated = true
		f.record(t, rec)
		return cmd
	}
	waitEnded := func(t *testing.T, cmd *exec.Cmd) {
		t.Helper()
		poll(t, "ended", func() bool { return ended(cmd.Process.Pid) })
	}
	tests := []struct {
		name string
		// leave makes the step directory as the crash left it and returns
		// the wrapper it left, if any.
		leave func(t *testing.T, f stepFixture) *exec.Cmd
		// decide, if set, runs while the resubmission is under way.
		decide func(t *testing.T, f stepFixture)
		// listed is the step's state in ListSteps before the resubmission;
		// "" means not listed.
		listed berth.StepState
		// after is the step's state after the resubmission, unless it is
		// replaced: then it runs afresh and succeeds.
		after    berth.StepState
		replaced bool
		// killed: the resubmission must kill the leftover wrapper.
		killed bool
		// newOnly: a state only this version's layout has.
		newOnly bool
	}{
		{
			name:     "no pid record",
			leave:    func(*testing.T, stepFixture) *exec.Cmd { return nil },
			replaced: true,
		},
		{
			name: "a record half written, not renamed into place",
			leave: func(t *testing.T, f stepFixture) *exec.Cmd {
				if err := os.WriteFile(filepath.Join(f.dir, "step.json.tmp"), []byte(`{"name": "berth:job-x:1:0", "pi`), 0o644); err != nil {
					t.Fatal(err)
				}
				return nil
			},
			replaced: true,
			newOnly:  true,
		},
		{
			name: "a record without a process, its start error not written",
			leave: func(t *testing.T, f stepFixture) *exec.Cmd {
				f.record(t, procRecord{})
				return nil
			},
			replaced: true,
			newOnly:  true,
		},
		{
			name: "pid record, the wrapper ended without the go line",
			leave: func(t *testing.T, f stepFixture) *exec.Cmd {
				cmd := gated(t, f, "true")
				waitEnded(t, cmd)
				return cmd
			},
			replaced: true,
		},
		{
			name: "pid record, the wrapper is stuck",
			leave: func(t *testing.T, f stepFixture) *exec.Cmd {
				f.p.startTimeout = 50 * time.Millisecond
				return gated(t, f)
			},
			replaced: true,
			killed:   true,
		},
		{
			name: "pid record, the go line reached the wrapper before the crash",
			leave: func(t *testing.T, f stepFixture) *exec.Cmd {
				return gated(t, f, "sh", "-c", `while [ ! -e "$1/release" ]; do sleep 0.01; done; : >"$1/ran"; exec sleep 600`, "sh", f.dir)
			},
			decide: func(t *testing.T, f stepFixture) {
				// Release it only once the resubmission is waiting for it,
				// holding the cluster's lock. (Not poll: this is not the
				// test's goroutine, so it must not call t.Fatal.)
				timeout := time.After(20 * time.Second)
				for {
					held, err := lockHeld(f.p, f.cluster)
					if err != nil {
						t.Error(err)
						return
					}
					if held {
						break
					}
					select {
					case <-timeout:
						t.Error("the resubmission never took the lock")
						return
					case <-time.After(time.Millisecond):
					}
				}
				if err := os.WriteFile(filepath.Join(f.dir, "release"), nil, 0o644); err != nil {
					t.Error(err)
				}
			},
			after: berth.StepRunning,
		},
		{
			name: "a wrapper from before the gate vanished",
			leave: func(t *testing.T, f stepFixture) *exec.Cmd {
				cmd, rec := startDetached(t, "true")
				f.record(t, rec)
				waitEnded(t, cmd)
				return cmd
			},
			listed: berth.StepFailed,
			after:  berth.StepFailed,
		},
		{
			name: "the wrapper could not start",
			leave: func(t *testing.T, f stepFixture) *exec.Cmd {
				if !f.legacy {
					f.record(t, procRecord{})
				}
				if err := os.WriteFile(filepath.Join(f.dir, "start_error"), []byte("no such directory\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return nil
			},
			listed: berth.StepFailed,
			after:  berth.StepFailed,
		},
	}
	for _, tt := range tests {
		for _, legacy := range []bool{false, true} {
			if legacy && tt.newOnly {
				continue
			}
			name := tt.name
			if legacy {
				name = "legacy layout/" + name
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				f := newStepFixture(t, legacy)
				leftover := tt.leave(t, f)
				steps, err := f.p.ListSteps(context.Background(), f.cluster)
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case tt.listed == "" && len(steps) != 0:
					t.Fatalf("ListSteps = %+v, want the step hidden", steps)
				case tt.listed != "" && (len(steps) != 1 || steps[0].State != tt.listed):
					t.Fatalf("ListSteps = %+v, want the step %s", steps, tt.listed)
				}

				ran := filepath.Join(t.TempDir(), "ran")
				done := make(chan struct{})
				if tt.decide != nil {
					go func() {
						defer close(done)
						tt.decide(t, f)
					}()
				} else {
					close(done)
				}
				id, err := f.p.SubmitStep(context.Background(), f.cluster, provider.StepRequest{Name: f.name, Step: appendStep(ran)})
				<-done
				if err != nil || id != f.id {
					t.Fatalf("SubmitStep = %s, %v; want %s", id, err, f.id)
				}
				if tt.killed {
					waitEnded(t, leftover)
					err := leftover.Wait()
					var exit *exec.ExitError
					if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
						t.Fatalf("the stuck wrapper ended with %v, want SIGKILL", err)
					}
				}
				if !tt.replaced {
					if rec, err := readRecord(f.dir); err != nil || !slices.Equal(rec.Argv, []string{"true"}) {
						t.Fatalf("the step's spec is now %+v (err %v), want the first submission's", rec.stepSpec, err)
					}
					if leftover != nil {
						if pr, err := readProc(f.dir); err != nil || pr.PID != leftover.Process.Pid {
							t.Fatalf("the step's process is now %+v (err %v), want %d", pr, err, leftover.Process.Pid)
						}
					}
					if s := f.step(t); s.State != tt.after {
						t.Fatalf("adopted step is %s (%q), want %s", s.State, s.Message, tt.after)
					}
					if _, err := os.Stat(ran); !errors.Is(err, fs.ErrNotExist) {
						t.Fatalf("the resubmission ran the step: %v", err)
					}
					return
				}
				poll(t, "succeeded", func() bool { return f.step(t).State == berth.StepSucceeded })
				if b, err := os.ReadFile(ran); err != nil || string(b) != "ran\n" {
					t.Fatalf("the step ran %q (err %v), want once", b, err)
				}
				if left, err := os.ReadDir(filepath.Join(f.p.dir, "tmp")); err != nil || len(left) != 0 {
					t.Errorf("tmp/ holds %v (err %v), want nothing left there", left, err)
				}
				if files := dirFiles(t, f.dir); !slices.Equal(files, []string{"exit", "ran", "stderr", "stdout", "step.json"}) {
					t.Errorf("the replaced step's directory holds %v, want only the new submission's files", files)
				}
			})
		}
	}
}

// dirFiles lists the names in dir.
func dirFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestCancelNeverRan: cancelling a step that never ran does nothing and
// leaves it replaceable.
func TestCancelNeverRan(t *testing.T) {
	t.Parallel()
	f := newStepFixture(t, false)
	if err := f.p.CancelStep(context.Background(), f.cluster, f.id); err != nil {
		t.Fatalf("CancelStep: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "cancelled")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("CancelStep recorded a cancellation: %v", err)
	}
	ran := filepath.Join(t.TempDir(), "ran")
	id, err := f.p.SubmitStep(context.Background(), f.cluster, provider.StepRequest{Name: f.name, Step: appendStep(ran)})
	if err != nil || id != f.id {
		t.Fatalf("SubmitStep = %s, %v; want %s", id, err, f.id)
	}
	poll(t, "succeeded", func() bool { return f.step(t).State == berth.StepSucceeded })
	if b, err := os.ReadFile(ran); err != nil || string(b) != "ran\n" {
		t.Fatalf("the step ran %q (err %v), want once", b, err)
	}
}

// TestWrapperMissesTheGo: a wrapper that does not take the go line while
// its server lives leaves a step that failed to start, listed with the
// reason, its command never run.
func TestWrapperMissesTheGo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		sig     syscall.Signal
		state   byte // the wrapper's state in /proc once the signal took
		message string
	}{
		{"killed before the go line", syscall.SIGKILL, 'Z', "could not start: the wrapper ended before it ran the command"},
		{"stopped before the go line", syscall.SIGSTOP, 'T', "could not start: the wrapper did not take the go line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, cluster := readyCluster(t)
			p.startTimeout = 100 * time.Millisecond
			wrapper := 0
			p.submitHook = func(point, _ string, pid int) {
				if point != hookRecorded {
					return
				}
				wrapper = pid
				if err := syscall.Kill(pid, tt.sig); err != nil {
					t.Error(err)
					return
				}
				poll(t, "signalled", func() bool {
					st, err := readProcStat(pid)
					return err != nil || st.state == tt.state || st.state == 'Z'
				})
			}
			ran := filepath.Join(t.TempDir(), "ran")
			name := "berth:job-y:1:0"
			id, err := p.SubmitStep(context.Background(), cluster, provider.StepRequest{Name: name, Step: appendStep(ran)})
			if err != nil {
				t.Fatalf("SubmitStep: %v", err)
			}
			if wrapper == 0 {
				t.Fatal("the hook was not called")
			}
			steps, err := p.ListSteps(context.Background(), cluster)
			if err != nil || len(steps) != 1 || steps[0].ID != id {
				t.Fatalf("ListSteps = %+v, %v; want the step %s", steps, err, id)
			}
			if s := steps[0]; s.State != berth.StepFailed || !strings.HasPrefix(s.Message, tt.message) || s.ExitCode != nil {
				t.Fatalf("step is %s (%q), want failed: %s", s.State, s.Message, tt.message)
			}
			poll(t, "the wrapper ended", func() bool { return ended(wrapper) })
			if _, err := os.Stat(ran); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("the command ran: %v", err)
			}
			// Recorded as a failure, it is not started again.
			again, err := p.SubmitStep(context.Background(), cluster, provider.StepRequest{Name: name, Step: appendStep(ran)})
			if err != nil || again != id {
				t.Fatalf("SubmitStep again = %s, %v; want %s", again, err, id)
			}
			if _, err := os.Stat(ran); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("the second submission ran the command: %v", err)
			}
		})
	}
}

// TestClusterEndsDuringSubmit: a cluster terminated while a submission is
// past its claim (which no longer holds the cluster's lock) gets no step
// that nothing would stop. Termination records the end and then stops
// every step that has a record; a submission that finds the end recorded
// after writing its record never opens the gate.
func TestClusterEndsDuringSubmit(t *testing.T) {
	t.Parallel()
	for _, point := range []string{hookStarted, hookRecorded} {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			p, cluster := readyCluster(t)
			wrapper := 0
			p.submitHook = func(at, _ string, pid int) {
				if at != point {
					return
				}
				wrapper = pid
				if err := p.TerminateCluster(context.Background(), cluster); err != nil {
					t.Error(err)
				}
			}
			ran := filepath.Join(t.TempDir(), "ran")
			_, err := p.SubmitStep(context.Background(), cluster, provider.StepRequest{Name: "berth:job-t:1:0", Step: appendStep(ran)})
			if !errors.Is(err, provider.ErrNotReady) {
				t.Fatalf("SubmitStep = %v, want ErrNotReady", err)
			}
			if wrapper == 0 {
				t.Fatal("the hook was not called")
			}
			poll(t, "the wrapper ended", func() bool { return ended(wrapper) })
			if _, err := os.Stat(ran); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("the command ran on a terminated cluster: %v", err)
			}
			if steps, err := p.ListSteps(context.Background(), cluster); err != nil || len(steps) != 0 {
				t.Fatalf("ListSteps = %+v, %v; want no step", steps, err)
			}
		})
	}
}

// TestSubmitWaitsForASubmissionUnderWay: a submission that finds another
// of the same name under way (here from another Provider on the same Dir,
// stopped between its record and its go line) waits for it to end and
// adopts its step rather than taking it for one left by a crash.
func TestSubmitWaitsForASubmissionUnderWay(t *testing.T) {
	t.Parallel()
	p1, cluster := readyCluster(t)
	p2, err := New(Options{Dir: p1.dir})
	if err != nil {
		t.Fatal(err)
	}
	busy := make(chan struct{})
	p2.submitHook = func(at, _ string, _ int) {
		if at == hookBusy {
			close(busy)
		}
	}
	ran := filepath.Join(t.TempDir(), "ran")
	req := provider.StepRequest{Name: "berth:job-w:1:0", Step: appendStep(ran)}
	second := make(chan error, 1)
	var id2 string
	p1.submitHook = func(at, _ string, _ int) {
		if at != hookRecorded {
			return
		}
		go func() {
			var err error
			id2, err = p2.SubmitStep(context.Background(), cluster, req)
			second <- err
		}()
		select {
		case <-busy:
		case err := <-second:
			t.Errorf("the second submission returned (%v) while the first was under way", err)
		case <-time.After(20 * time.Second):
			t.Error("the second submission never found the first under way")
		}
	}
	id1, err := p1.SubmitStep(context.Background(), cluster, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil || id2 != id1 {
		t.Fatalf("second SubmitStep = %s, %v; want %s", id2, err, id1)
	}
	poll(t, "succeeded", func() bool {
		steps, err := p2.ListSteps(context.Background(), cluster)
		return err == nil && len(steps) == 1 && steps[0].State == berth.StepSucceeded
	})
	if b, err := os.ReadFile(ran); err != nil || string(b) != "ran\n" {
		t.Fatalf("the step ran %q (err %v), want once", b, err)
	}
}

// TestStepLockedByAStranger: something other than a submission that holds
// a step's lock (a step that locked its own directory) costs a resubmission
// or a cancel of that step an error after a while, never a wait without
// end under the cluster's lock, and the cluster's other calls go on.
func TestStepLockedByAStranger(t *testing.T) {
	t.Parallel()
	p, cluster := readyCluster(t)
	p.stepLockWait = 50 * time.Millisecond
	name := "berth:job-l:1:0"
	id, err := p.SubmitStep(context.Background(), cluster, provider.StepRequest{Name: name, Step: berth.Step{Args: []string{"sleep", "600"}}})
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := os.Open(filepath.Join(p.stepsDir(cluster), id))
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	if err := flock(stranger, syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SubmitStep(context.Background(), cluster, provider.StepRequest{Name: name, Step: berth.Step{Args: []string{"true"}}}); err == nil {
		t.Error("SubmitStep of a step whose lock a stranger holds succeeded")
	}
	if err := p.CancelStep(context.Background(), cluster, id); err == nil {
		t.Error("CancelStep of a step whose lock a stranger holds succeeded")
	}
	if steps, err := p.ListSteps(context.Background(), cluster); err != nil || len(steps) != 1 || steps[0].State != berth.StepRunning {
		t.Fatalf("ListSteps = %+v, %v; want the step running", steps, err)
	}
	stranger.Close()
	if err := p.CancelStep(context.Background(), cluster, id); err != nil {
		t.Fatalf("CancelStep once the stranger let go: %v", err)
	}
}
