package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/clock"
	"github.com/berthhq/berth/internal/provider"
)

// cachedIDs lists the step ids p keeps for the cluster; nil when it keeps
// no entry for the cluster at all.
func cachedIDs(p *Provider, cluster string) []string {
	p.finished.mu.Lock()
	defer p.finished.mu.Unlock()
	cf := p.finished.clusters[cluster]
	if cf == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(cf.steps))
}

func listSteps(t *testing.T, p *Provider, cluster string) []provider.Step {
	t.Helper()
	steps, err := p.ListSteps(context.Background(), cluster)
	if err != nil {
		t.Fatalf("ListSteps: %v", err)
	}
	return steps
}

// fresh lists the cluster's steps through a new Provider over p's Dir:
// what a restarted server would read from disk.
func fresh(t *testing.T, p *Provider, cluster string) []provider.Step {
	t.Helper()
	q, err := New(Options{Dir: p.dir})
	if err != nil {
		t.Fatal(err)
	}
	return listSteps(t, q, cluster)
}

func formatSteps(steps []provider.Step) string {
	var b strings.Builder
	for _, s := range steps {
		code := "-"
		if s.ExitCode != nil {
			code = strconv.Itoa(*s.ExitCode)
		}
		fmt.Fprintf(&b, "\n\t%s %q %s code=%s %q started=%s ended=%s", s.ID, s.Name, s.State, code, s.Message,
			s.StartedAt.Format(time.RFC3339Nano), s.EndedAt.Format(time.RFC3339Nano))
	}
	return b.String()
}

// sameAsFresh checks that p answers for the cluster exactly as a new
// Provider reading everything from disk does.
func sameAsFresh(t *testing.T, p *Provider, cluster string) []provider.Step {
	t.Helper()
	got, want := listSteps(t, p, cluster), fresh(t, p, cluster)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ListSteps with the cache:%s\nfrom disk:%s", formatSteps(got), formatSteps(want))
	}
	return got
}

// cacheFixture is a ready cluster on a Provider whose clock moves only when
// the test says, so that a cancelled step's SIGKILL waits for the test.
type cacheFixture struct {
	p       *Provider
	clk     *clock.Fake
	cluster string
}

func newCacheFixture(t *testing.T) cacheFixture {
	t.Helper()
	clk := clock.NewFake(clock.Real{}.Now())
	p, err := New(Options{Dir: t.TempDir(), Clock: clk, Log: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	cluster := berth.NewID("cl", clk.Now())
	if _, err := p.CreateCluster(context.Background(), provider.CreateRequest{ClusterID: cluster, Pool: "small", Slots: 1}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.TerminateCluster(context.Background(), cluster) })
	return cacheFixture{p, clk, cluster}
}

func (f cacheFixture) submit(t *testing.T, name string, step berth.Step) string {
	t.Helper()
	id, err := f.p.SubmitStep(context.Background(), f.cluster, provider.StepRequest{Name: name, Step: step})
	if err != nil {
		t.Fatalf("SubmitStep(%q): %v", name, err)
	}
	return id
}

// handMade places a step directory whose record names a process the test
// starts from argv (as startDetached does), as a server that started it
// would have left it, so that the test can kill parts of it at will.
func (f cacheFixture) handMade(t *testing.T, name string, argv ...string) (string, *exec.Cmd, procRecord) {
	t.Helper()
	spec := f.spec(name)
	id, dir := placeStep(t, f.p, f.cluster, spec, false)
	cmd, rec := startDetached(t, argv...)
	recordStep(t, dir, spec, rec, false)
	return id, cmd, rec
}

// vanish kills and reaps a hand-made step's process, which leaves its
// group empty.
func vanish(t *testing.T, cmd *exec.Cmd, rec procRecord) {
	t.Helper()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait() // it was killed: the error says so
	if !groupGone(rec) {
		t.Fatalf("process group %d is not empty", rec.PGID)
	}
}

func shStep(script string, args ...string) berth.Step {
	return berth.Step{Args: append([]string{"sh", "-c", script, "sh"}, args...)}
}

// place places a step directory without a record: a submission whose
// server died before it recorded the step.
func (f cacheFixture) place(t *testing.T, name string) string {
	t.Helper()
	id, _ := placeStep(t, f.p, f.cluster, f.spec(name), false)
	return id
}

func (f cacheFixture) spec(name string) stepSpec {
	return stepSpec{Name: name, Argv: []string{"true"}, SubmittedAt: f.clk.Now()}
}

// waitFile waits until the file at path has content, and returns it.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	var b []byte
	poll(t, path+" written", func() bool {
		b, _ = os.ReadFile(path)
		return len(b) > 0
	})
	return strings.TrimSpace(string(b))
}

// TestListStepsCache: after a mix of steps in every state, the caching
// Provider keeps exactly the ones that ended for good and answers as a
// Provider that reads everything from disk, before and after the cancelling
// step ends and after a step directory disappears.
func TestListStepsCache(t *testing.T) {
	t.Parallel()
	f := newCacheFixture(t)
	ctx := context.Background()
	tmp := t.TempDir()
	tests := []struct {
		name string
		// make puts the step on the cluster and returns its id.
		make    func(t *testing.T) string
		state   berth.StepState // "": not listed
		message string          // a prefix of the step's message
		cached  bool
	}{
		{
			name:  "succeeded",
			make:  func(t *testing.T) string { return f.submit(t, "berth:job-ok:1:0", shStep("true")) },
			state: berth.StepSucceeded, cached: true,
		},
		{
			name:  "failed",
			make:  func(t *testing.T) string { return f.submit(t, "berth:job-fail:1:0", shStep("exit 3")) },
			state: berth.StepFailed, message: "exited with code 3", cached: true,
		},
		{
			name: "could not start",
			make: func(t *testing.T) string {
				return f.submit(t, "berth:job-nodir:1:0", berth.Step{Args: []string{"true"}, Dir: filepath.Join(tmp, "missing")})
			},
			state: berth.StepFailed, message: "could not start", cached: true,
		},
		{
			name: "cancelled",
			make: func(t *testing.T) string {
				id := f.submit(t, "berth:job-cancel:1:0", shStep("sleep 600"))
				if err := f.p.CancelStep(ctx, f.cluster, id); err != nil {
					t.Fatal(err)
				}
				return id
			},
			state: berth.StepCancelled, message: "cancelled", cached: true,
		},
		{
			name:  "running",
			make:  func(t *testing.T) string { return f.submit(t, "berth:job-run:1:0", shStep("sleep 600")) },
			state: berth.StepRunning,
		},
		{
			// Its leader ignores SIGTERM, and the SIGKILL after the grace
			// waits for the fake clock.
			name: "cancelling",
			make: func(t *testing.T) string {
				ready := filepath.Join(tmp, "cancelling-ready")
				id, _, _ := f.handMade(t, "berth:job-slow:1:0", "sh", "-c", `trap "" TERM; echo x >"$1"; exec sleep 600`, "sh", ready)
				waitFile(t, ready)
				if err := f.p.CancelStep(ctx, f.cluster, id); err != nil {
					t.Fatal(err)
				}
				return id
			},
			state: berth.StepRunning, message: "cancelling",
		},
		{
			name: "vanished",
			make: func(t *testing.T) string {
				id, cmd, rec := f.handMade(t, "berth:job-gone:1:0")
				vanish(t, cmd, rec)
				return id
			},
			state: berth.StepFailed, message: MessageVanished, cached: true,
		},
		{
			// Its leader died, but a child lives on in its group and
			// could still write the output that dates the step's end.
			name: "vanished, its group lives on",
			make: func(t *testing.T) string {
				child := filepath.Join(tmp, "child")
				id, cmd, rec := f.handMade(t, "berth:job-orphan:1:0", "sh", "-c", `sleep 600 & echo $! >"$1"; wait`, "sh", child)
				t.Cleanup(func() { syscall.Kill(-rec.PGID, syscall.SIGKILL) })
				waitFile(t, child)
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
				cmd.Wait() // it was killed: the error says so
				if groupGone(rec) {
					t.Fatal("the child died with its leader")
				}
				return id
			},
			state: berth.StepFailed, message: MessageVanished,
		},
		{
			name:  "never ran",
			make:  func(t *testing.T) string { return f.place(t, "berth:job-never:1:0") },
			state: "",
		},
	}
	ids := make([]string, len(tests))
	for i, tt := range tests {
		ids[i] = tt.make(t)
	}
	var wantCached []string
	poll(t, "every step in its state", func() bool {
		steps := listSteps(t, f.p, f.cluster)
		for i, tt := range tests {
			k := slices.IndexFunc(steps, func(s provider.Step) bool { return s.ID == ids[i] })
			if tt.state == "" {
				if k >= 0 {
					t.Fatalf("%s: listed as %s, want it not listed", tt.name, steps[k].State)
				}
				continue
			}
			if k < 0 {
				t.Fatalf("%s: not listed:%s", tt.name, formatSteps(steps))
			}
			if s := steps[k]; s.State != tt.state || !strings.HasPrefix(s.Message, tt.message) {
				return false
			}
		}
		return true
	})
	for i, tt := range tests {
		if tt.cached {
			wantCached = append(wantCached, ids[i])
		}
	}
	slices.Sort(wantCached)
	steps := sameAsFresh(t, f.p, f.cluster)
	if got := cachedIDs(f.p, f.cluster); !slices.Equal(got, wantCached) {
		t.Fatalf("cached %v, want %v", got, wantCached)
	}

	t.Run("an answer changed by its caller does not change the cache", func(t *testing.T) {
		for _, s := range steps {
			if s.ExitCode != nil {
				*s.ExitCode = -99
			}
		}
		sameAsFresh(t, f.p, f.cluster)
	})

	t.Run("the cancelling step ends and is kept", func(t *testing.T) {
		var cancelling string
		for i, tt := range tests {
			if tt.name == "cancelling" {
				cancelling = ids[i]
			}
		}
		f.clk.Advance(cancelGrace)
		poll(t, "the cancelling step cancelled", func() bool {
			for _, s := range listSteps(t, f.p, f.cluster) {
				if s.ID == cancelling {
					return s.State == berth.StepCancelled
				}
			}
			t.Fatal("the cancelling step is not listed")
			return false
		})
		sameAsFresh(t, f.p, f.cluster)
		if got := cachedIDs(f.p, f.cluster); !slices.Contains(got, cancelling) {
			t.Fatalf("cached %v, want the cancelled step %s among them", got, cancelling)
		}
	})

	t.Run("a step directory that disappears is no longer listed", func(t *testing.T) {
		gone := ids[0]
		if err := os.RemoveAll(filepath.Join(f.p.stepsDir(f.cluster), gone)); err != nil {
			t.Fatal(err)
		}
		for _, s := range sameAsFresh(t, f.p, f.cluster) {
			if s.ID == gone {
				t.Fatalf("step %s is still listed", gone)
			}
		}
		if got := cachedIDs(f.p, f.cluster); slices.Contains(got, gone) {
			t.Fatalf("cached %v, still with %s", got, gone)
		}
	})
}

// TestListStepsRereadsRunningSteps: a running step is read from disk on
// every call, so the call after it finishes shows it finished, while other
// goroutines list the same cluster.
func TestListStepsRereadsRunningSteps(t *testing.T) {
	t.Parallel()
	f := newCacheFixture(t)
	fifo := filepath.Join(t.TempDir(), "release")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := f.submit(t, "berth:job-done:1:0", shStep("true"))
	// cat ends when the test closes the fifo's write end.
	held := f.submit(t, "berth:job-held:1:0", shStep(`cat "$1" >/dev/null`, fifo))
	state := func(steps []provider.Step, id string) berth.StepState {
		for _, s := range steps {
			if s.ID == id {
				return s.State
			}
		}
		t.Fatalf("step %s not listed:%s", id, formatSteps(steps))
		return ""
	}
	poll(t, "the first step succeeded", func() bool {
		return state(listSteps(t, f.p, f.cluster), done) == berth.StepSucceeded
	})
	for range 3 {
		if st := state(listSteps(t, f.p, f.cluster), held); st != berth.StepRunning {
			t.Fatalf("the held step is %s, want running", st)
		}
	}
	if got := cachedIDs(f.p, f.cluster); !slices.Equal(got, []string{done}) {
		t.Fatalf("cached %v, want only the step that ended, %s", got, done)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := f.p.ListSteps(context.Background(), f.cluster); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0) // waits for cat to open it
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	poll(t, "the held step succeeded", func() bool {
		return state(listSteps(t, f.p, f.cluster), held) == berth.StepSucceeded
	})
	close(stop)
	wg.Wait()
	sameAsFresh(t, f.p, f.cluster)
	if got, want := cachedIDs(f.p, f.cluster), slices.Sorted(slices.Values([]string{done, held})); !slices.Equal(got, want) {
		t.Fatalf("cached %v, want %v", got, want)
	}
}

// TestListStepsCacheDropped: a cluster that ends, by this Provider or
// another on the same Dir, or whose directory disappears, is forgotten,
// and its steps are answered as a fresh read answers them (a vanished
// step's message now names the cluster's end).
func TestListStepsCacheDropped(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		end  func(t *testing.T, f cacheFixture)
		// gone: the cluster is not found afterwards.
		gone bool
		// forgotten: end itself makes p forget the cluster, before any
		// ListSteps.
		forgotten bool
		message   string
	}{
		{
			name: "terminated", message: "process vanished (cluster terminated", forgotten: true,
			end: func(t *testing.T, f cacheFixture) {
				if err := f.p.TerminateCluster(context.Background(), f.cluster); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "killed", message: "process vanished (cluster lost", forgotten: true,
			end: func(t *testing.T, f cacheFixture) {
				if err := f.p.KillCluster(context.Background(), f.cluster); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "terminated by another Provider", message: "process vanished (cluster terminated",
			end: func(t *testing.T, f cacheFixture) {
				q, err := New(Options{Dir: f.p.dir})
				if err != nil {
					t.Fatal(err)
				}
				if err := q.TerminateCluster(context.Background(), f.cluster); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "directory removed", gone: true,
			end: func(t *testing.T, f cacheFixture) {
				if err := os.RemoveAll(f.p.clusterDir(f.cluster)); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newCacheFixture(t)
			ok := f.submit(t, "berth:job-ok:1:0", shStep("true"))
			vanished, cmd, rec := f.handMade(t, "berth:job-gone:1:0")
			vanish(t, cmd, rec)
			want := slices.Sorted(slices.Values([]string{ok, vanished}))
			poll(t, "both steps kept", func() bool {
				listSteps(t, f.p, f.cluster)
				return slices.Equal(cachedIDs(f.p, f.cluster), want)
			})

			tt.end(t, f)
			if got := cachedIDs(f.p, f.cluster); tt.forgotten && got != nil {
				t.Fatalf("cached %v right after the cluster ended", got)
			}
			steps, err := f.p.ListSteps(context.Background(), f.cluster)
			if tt.gone {
				if !errors.Is(err, provider.ErrUnknownCluster) {
					t.Fatalf("ListSteps = %v, %v; want an unknown cluster", formatSteps(steps), err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				steps = sameAsFresh(t, f.p, f.cluster)
				k := slices.IndexFunc(steps, func(s provider.Step) bool { return s.ID == vanished })
				if k < 0 || !strings.HasPrefix(steps[k].Message, tt.message) {
					t.Fatalf("steps after the end:%s\nwant %s with a message starting %q", formatSteps(steps), vanished, tt.message)
				}
			}
			if got := cachedIDs(f.p, f.cluster); got != nil {
				t.Fatalf("cached %v after the cluster ended", got)
			}
		})
	}
}

// TestListStepsCacheClusterRecreated: a cluster directory removed and
// created again under the same id, between two polls, is a new cluster,
// and its steps are read afresh even where their ids are the old ones.
func TestListStepsCacheClusterRecreated(t *testing.T) {
	t.Parallel()
	f := newCacheFixture(t)
	name := "berth:job-again:1:0"
	id := f.submit(t, name, shStep("exit 3"))
	poll(t, "the step kept", func() bool {
		listSteps(t, f.p, f.cluster)
		return slices.Equal(cachedIDs(f.p, f.cluster), []string{id})
	})
	if err := os.RemoveAll(f.p.clusterDir(f.cluster)); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(time.Minute)
	if _, err := f.p.CreateCluster(context.Background(), provider.CreateRequest{ClusterID: f.cluster, Pool: "small", Slots: 1}); err != nil {
		t.Fatal(err)
	}
	if again := f.submit(t, name, shStep("true")); again != id {
		t.Fatalf("the step's id is %s, want %s again", again, id)
	}
	poll(t, "the new step succeeded", func() bool {
		steps := listSteps(t, f.p, f.cluster)
		return len(steps) == 1 && steps[0].State == berth.StepSucceeded
	})
	sameAsFresh(t, f.p, f.cluster)
}
