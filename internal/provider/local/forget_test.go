package local

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider"
)

// TestForgetSteps: steps the service forgot leave the listing, and the
// steps directory, once they have ended for good and nothing of theirs is
// left running; until then they stay listed. A forgotten step is still
// adopted by a submission of its name, its logs stay readable, and a
// Provider reading the directory afresh answers the same.
func TestForgetSteps(t *testing.T) {
	t.Parallel()
	f := newCacheFixture(t)
	ran := filepath.Join(t.TempDir(), "ran")
	fifo := filepath.Join(t.TempDir(), "release")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	doneName := "berth:job-done:1:0"
	done := f.submit(t, doneName, shStep(`echo ran >> "$1"; echo hello`, ran))
	// Ends at once, leaving a process of its group behind.
	left := f.submit(t, "berth:job-left:1:0", shStep(`sleep 300 </dev/null >/dev/null 2>&1 & exit 0`))
	// cat ends when the test closes the fifo's write end.
	held := f.submit(t, "berth:job-held:1:0", shStep(`cat "$1" >/dev/null`, fifo))
	states := func() map[string]berth.StepState {
		m := map[string]berth.StepState{}
		for _, s := range listSteps(t, f.p, f.cluster) {
			m[s.ID] = s.State
		}
		return m
	}
	poll(t, "two steps succeeded", func() bool {
		st := states()
		return st[done] == berth.StepSucceeded && st[left] == berth.StepSucceeded
	})

	f.p.ForgetSteps(f.cluster, []string{done, left, held})
	st := states()
	if _, ok := st[done]; ok || st[left] != berth.StepSucceeded || st[held] != berth.StepRunning {
		t.Fatalf("after ForgetSteps listed %v; want %s gone, %s succeeded (its group is not empty), %s running", st, done, left, held)
	}
	if exists(filepath.Join(f.p.stepsDir(f.cluster), done)) || !f.p.movedAside(f.cluster, done) {
		t.Fatalf("step %s is still among the steps, not among the ended", done)
	}
	sameAsFresh(t, f.p, f.cluster)

	// Submitted again under its name, it is adopted and does not run.
	if id := f.submit(t, doneName, shStep(`echo ran >> "$1"`, ran)); id != done {
		t.Fatalf("SubmitStep again = %s, want %s", id, done)
	}
	if b, err := os.ReadFile(ran); err != nil || strings.Count(string(b), "ran") != 1 {
		t.Fatalf("ran file = %q, %v; want the one run", b, err)
	}
	logs, err := f.p.StepLogs(context.Background(), f.cluster, done)
	if err != nil || logs.Stdout != "hello\n" {
		t.Fatalf("StepLogs = %+v, %v; want its output", logs, err)
	}
	if err := f.p.CancelStep(context.Background(), f.cluster, done); err != nil {
		t.Fatalf("CancelStep of a forgotten step: %v", err)
	}

	// What the step left behind ends: the step goes too.
	rec, err := readProc(filepath.Join(f.p.stepsDir(f.cluster), left))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(-rec.PGID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	poll(t, "the step that left a process behind is gone", func() bool {
		_, ok := states()[left]
		return !ok
	})
	// The held step, forgotten before it ended, goes once it has.
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0) // waits for cat to open it
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	poll(t, "the held step is gone", func() bool {
		_, ok := states()[held]
		return !ok
	})
	if steps := fresh(t, f.p, f.cluster); len(steps) != 0 {
		t.Fatalf("a fresh Provider lists%s; want nothing", formatSteps(steps))
	}
	if got := cachedIDs(f.p, f.cluster); len(got) != 0 {
		t.Fatalf("cached %v, want nothing", got)
	}
}

// TestForgetStepsOfAnUnlistedCluster: forgetting steps of a cluster this
// Provider never listed keeps nothing, and lists as before.
func TestForgetStepsOfAnUnlistedCluster(t *testing.T) {
	t.Parallel()
	f := newCacheFixture(t)
	id := f.submit(t, "berth:job-a:1:0", shStep("true"))
	f.p.ForgetSteps(f.cluster, []string{id})
	f.p.ForgetSteps("cl-unknown", []string{id})
	poll(t, "the step succeeded", func() bool {
		steps := listSteps(t, f.p, f.cluster)
		return len(steps) == 1 && steps[0].State == berth.StepSucceeded
	})
	if _, err := f.p.ListSteps(context.Background(), "cl-unknown"); err == nil {
		t.Fatal("ListSteps of an unknown cluster answered")
	}
	var _ provider.Forgetter = f.p
}
