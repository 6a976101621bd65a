package lifecycle

import (
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider"
	"github.com/berthhq/berth/internal/scheduler"
)

// pjob is a job of a pipeline run's task, created at created.
func pjob(id, pool, dag, run, task string, created time.Time) *berth.Job {
	return &berth.Job{ID: id, Pool: pool, State: berth.JobQueued, CreatedAt: created,
		Labels: map[string]string{berth.LabelDAG: dag, berth.LabelRun: run, berth.LabelTask: task}}
}

// task is a pipeline's task on a pool.
func task(pool, dag, name string) taskKey { return taskKey{Pool: pool, DAG: dag, Name: name} }

// succeed makes j a job that ran from start to end and succeeded.
func succeed(j *berth.Job, start, end time.Time) *berth.Job {
	j.State, j.StartedAt, j.EndedAt = berth.JobSucceeded, start, end
	j.Attempts = []berth.Attempt{{N: 1, ClusterID: "c", State: berth.AttemptSucceeded, StartedAt: start, EndedAt: end}}
	return j
}

// What follows a task is learned from the runs: the next task's pool, how
// long after the end its first job came (averaged), and how many jobs.
func TestForesightLearnsWhatFollows(t *testing.T) {
	f := newForesight()
	for n, gap := range []time.Duration{time.Minute, 3 * time.Minute} {
		run := string(rune('1' + n))
		base := t0.Add(time.Duration(n) * time.Hour)
		plan := pjob("plan"+run, "small", "d", run, "plan", base)
		f.submitted(plan, base)
		f.succeeded(succeed(plan, base, base.Add(5*time.Minute)), base.Add(5*time.Minute))
		for i := range 3 {
			f.submitted(pjob("bin"+run+string(rune('a'+i)), "bins", "d", run, "bin", base), base.Add(5*time.Minute+gap))
		}
	}
	fl := f.next[task("small", "d", "plan")][task("bins", "d", "bin")]
	if fl == nil {
		t.Fatalf("nothing learned to follow plan: %+v", f.next)
	}
	if want := time.Minute + time.Duration(learnWeight*float64(2*time.Minute)); fl.gap != want || fl.jobs != 3 {
		t.Errorf("follow %+v, want gap %s and 3 jobs", *fl, want)
	}
}

// foreseeWorld is a State with pools a, b and c, whose model knows how
// long the tasks a/t1 (10m) and b/t2 (20m) run.
func foreseeWorld(t *testing.T) *State {
	t.Helper()
	var pools []*Pool
	for _, n := range []string{"a", "b", "c"} {
		pools = append(pools, &Pool{Pool: berth.Pool{Name: n, Slots: 1, MaxClusters: 4}})
	}
	s := New(Config{}, pools)
	s.Begin(t0)
	m := s.learned()
	m.ObserveJob(succeed(pjob("old1", "a", "d", "r0", "t1", t0), t0.Add(-time.Hour), t0.Add(-50*time.Minute)))
	m.ObserveJob(succeed(pjob("old2", "b", "d", "r0", "t2", t0), t0.Add(-time.Hour), t0.Add(-40*time.Minute)))
	return s
}

// runAt puts a job running on a cluster since start.
func runAt(s *State, j *berth.Job, start time.Time) {
	j.State, j.ClusterID, j.StartedAt = berth.JobRunning, "cl-"+j.ID, start
	j.Attempts = []berth.Attempt{{N: 1, ClusterID: j.ClusterID, State: berth.AttemptRunning, StartedAt: start}}
	s.jobs[j.ID] = j
	s.index(j)
}

// A running job's hints are work expected when it is expected to end;
// jobs of one run that name the same pool name it once, at the last end.
func TestExpectedFromHints(t *testing.T) {
	s := foreseeWorld(t)
	for i, start := range []time.Duration{0, 3 * time.Minute} {
		j := pjob("j"+string(rune('1'+i)), "a", "d", "r1", "t1", t0)
		j.Then = []berth.Hint{{Pool: "b", Jobs: 2}}
		runAt(s, j, t0.Add(start))
	}
	got, ends := s.expected(t0)
	if len(got["b"]) != 1 || !got["b"][0].At.Equal(t0.Add(13*time.Minute)) || got["b"][0].Jobs != 2 {
		t.Errorf("expected on b: %+v, want 2 jobs once, at the later end (13m)", got["b"])
	}
	if len(ends["a"]) != 2 || !ends["a"][0].Equal(t0.Add(10*time.Minute)) {
		t.Errorf("ends on a: %v, want 10m and 13m", ends["a"])
	}
}

// Without hints, what followed the task before is expected, and followed
// down the pipeline: t1 on a, then t2 on b, then t3 on c.
func TestExpectedFromShape(t *testing.T) {
	s := foreseeWorld(t)
	f := &s.foresee
	f.next[task("a", "d", "t1")] = map[taskKey]*follow{task("b", "d", "t2"): {gap: time.Minute, jobs: 4}}
	f.next[task("b", "d", "t2")] = map[taskKey]*follow{task("c", "d", "t3"): {gap: 2 * time.Minute, jobs: 1}}
	runAt(s, pjob("j1", "a", "d", "r1", "t1", t0), t0)
	got, _ := s.expected(t0)
	if b := got["b"]; len(b) != 1 || !b[0].At.Equal(t0.Add(11*time.Minute)) || b[0].Jobs != 4 {
		t.Errorf("expected on b: %+v, want 4 jobs at 11m", b)
	}
	// t2 runs 20m from 11m, and t3 follows 2m after: 33m.
	if c := got["c"]; len(c) != 1 || !c[0].At.Equal(t0.Add(33*time.Minute)) {
		t.Errorf("expected on c: %+v, want 1 job at 33m", c)
	}
}

// Work announced by a job that ended is awaited a moment, until it is
// submitted, its run stops, or its grace runs out.
func TestAnnouncedWorkIsAwaited(t *testing.T) {
	for _, tt := range []struct {
		name   string
		then   func(s *State, now time.Time)
		awaits bool
	}{
		{"awaited", func(*State, time.Time) {}, true},
		{"submitted", func(s *State, now time.Time) {
			s.foresee.submitted(pjob("next", "b", "d", "r1", "t2", now), now)
		}, false},
		{"its run stopped", func(s *State, now time.Time) {
			j := pjob("other", "a", "d", "r1", "t1b", now)
			j.State = berth.JobFailed
			s.foresee.stopped(j)
		}, false},
		{"grace over", func(s *State, now time.Time) { s.Begin(now.Add(awaitGrace + time.Second)) }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := foreseeWorld(t)
			end := t0.Add(10 * time.Minute)
			j := pjob("j1", "a", "d", "r1", "t1", t0)
			j.Then = []berth.Hint{{Pool: "b", Jobs: 1}}
			s.foresee.submitted(j, t0)
			s.foresee.succeeded(succeed(j, t0, end), end)
			tt.then(s, end)
			s.expectVer++
			got, _ := s.expected(s.now.Add(10*time.Minute + time.Second))
			if awaits := len(got["b"]) == 1; awaits != tt.awaits {
				t.Errorf("expected on b: %+v, want awaited %v", got["b"], tt.awaits)
			}
		})
	}
}

// A pipeline whose runs come on a rhythm is expected at its next beat,
// once three runs showed it, until a quarter period late.
func TestRhythm(t *testing.T) {
	f := newForesight()
	for n := range 3 {
		at := t0.Add(time.Duration(n) * time.Hour)
		f.submitted(pjob("j"+string(rune('0'+n)), "a", "d", string(rune('0'+n)), "t1", at), at)
	}
	var got []expectation
	collect := func(_ expectKey, e expectation) { got = append(got, e) }
	f.nextRuns(t0.Add(150*time.Minute), collect, func(time.Time) {})
	if len(got) != 1 || !got[0].At.Equal(t0.Add(3*time.Hour)) || got[0].Pool != "a" || got[0].Jobs != 1 {
		t.Fatalf("next runs %+v, want one job on a at 3h", got)
	}
	got = nil
	f.nextRuns(t0.Add(3*time.Hour+16*time.Minute), collect, func(time.Time) {})
	if len(got) != 0 {
		t.Errorf("a run 16m late is still expected: %+v", got)
	}
}

// A person who terminates or drains a pool's cluster stops the pool
// starting clusters for expected work for a while; queued work is not
// affected.
func TestByHandStopsGuessing(t *testing.T) {
	s := foreseeWorld(t)
	j := pjob("j1", "a", "d", "r1", "t1", t0)
	j.Then = []berth.Hint{{Pool: "b", Jobs: 1}}
	runAt(s, j, t0)
	c := &Cluster{C: berth.Cluster{ID: "cl-b", Pool: "b", State: berth.ClusterReady, Slots: 1}, Pool: s.pools["b"]}
	s.clusters[c.C.ID] = c
	if snap := s.snapshot(t0); len(poolView(snap.Pools, "b").Expected) != 1 {
		t.Fatalf("before: expected on b %+v, want the hint", poolView(snap.Pools, "b").Expected)
	}
	if err := s.Terminate("cl-b"); err != nil {
		t.Fatal(err)
	}
	if snap := s.snapshot(t0.Add(time.Minute)); len(poolView(snap.Pools, "b").Expected) != 0 {
		t.Errorf("after a terminate by hand: expected on b %+v, want none", poolView(snap.Pools, "b").Expected)
	}
	if snap := s.snapshot(t0.Add(byHandQuiet + time.Second)); len(poolView(snap.Pools, "b").Expected) != 1 {
		t.Errorf("after the quiet: expected on b %+v, want the hint again", poolView(snap.Pools, "b").Expected)
	}
}

// The history in the store teaches what follows what, as if seen live.
func TestReplayLearns(t *testing.T) {
	f := newForesight()
	a := succeed(pjob("a", "small", "d", "r1", "plan", t0), t0, t0.Add(5*time.Minute))
	b := succeed(pjob("b", "bins", "d", "r1", "bin", t0.Add(6*time.Minute)), t0.Add(6*time.Minute), t0.Add(20*time.Minute))
	f.replay([]*berth.Job{b, a})
	if fl := f.next[task("small", "d", "plan")][task("bins", "d", "bin")]; fl == nil || fl.gap != time.Minute {
		t.Errorf("replay learned %+v, want bin a minute after plan", f.next)
	}
	if len(f.pending) != 0 {
		t.Errorf("replay left awaited work: %+v", f.pending)
	}
}

func poolView(ps []scheduler.PoolView, name string) scheduler.PoolView {
	for _, p := range ps {
		if p.Pool.Name == name {
			return p
		}
	}
	return scheduler.PoolView{}
}

// A cluster that ended leaves no retry bookkeeping behind: a service that
// runs for months must not keep an entry per cluster it terminated.
func TestEndedClusterForgetsItsCalls(t *testing.T) {
	w := newWorld(t, berth.Pool{})
	j, c := w.running(berth.JobSpec{})
	name := stepName(j, 1, 0)
	w.report(c, berth.ClusterReady, provider.Step{ID: "step-" + name, Name: name, State: berth.StepSucceeded, ExitCode: exit(0)})
	w.pass()
	if err := w.s.Terminate(c.C.ID); err != nil {
		t.Fatal(err)
	}
	term := callOf(w.pass(), CallTerminate)
	if term == nil {
		t.Fatal("no terminate call")
	}
	w.s.ApplyResult(Result{Call: *term})
	if len(w.s.retryAt) == 0 {
		t.Fatal("a taken termination is not scheduled to be asked again")
	}
	w.report(c, berth.ClusterTerminated)
	w.pass()
	if w.s.Cluster(c.C.ID) != nil || len(w.s.retryAt) != 0 || len(w.s.tries) != 0 {
		t.Errorf("after the end: cluster %v, retries %v, tries %v", w.s.Cluster(c.C.ID) != nil, w.s.retryAt, w.s.tries)
	}
}

// A job of no run leaves what is expected as it was, so its submission
// keeps expected's cached answer; a job of the run it names changes the
// answer and so drops the cache.
func TestExpectedCacheAcrossSubmissions(t *testing.T) {
	s := foreseeWorld(t)
	s.foresee.next[task("a", "d", "t1")] = map[taskKey]*follow{task("b", "d", "t2"): {gap: time.Minute, jobs: 1}}
	runAt(s, pjob("j1", "a", "d", "r1", "t1", t0), t0)
	if got, _ := s.expected(t0); len(got["b"]) != 1 {
		t.Fatalf("expected on b: %+v, want t2's job", got["b"])
	}
	ver := s.expectVer
	s.Submitted(berth.Job{ID: "plain", Pool: "b", State: berth.JobQueued, CreatedAt: t0})
	if s.expectVer != ver {
		t.Errorf("a job of no run moved expectVer")
	}
	s.Submitted(*pjob("next", "b", "d", "r1", "t2", t0))
	if s.expectVer == ver {
		t.Fatalf("a job of the run left expectVer")
	}
	if got, _ := s.expected(t0); len(got["b"]) != 0 {
		t.Errorf("expected on b: %+v, want none once the run gave b its job", got["b"])
	}
}
