package lifecycle

import (
	"cmp"
	"slices"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/learn"
	"github.com/berthhq/berth/internal/scheduler"
)

// What foresight keeps, and how far it trusts it.
const (
	// learnWeight is the weight of the newest observation in a moving
	// average: recent runs count most, one odd run does not undo many.
	learnWeight = 0.3
	// maxRuns bounds the pipeline runs followed at once; the oldest are
	// forgotten first.
	maxRuns = 10_000
	// overdueMargin is how soon a job running past its expected end is
	// expected to end.
	overdueMargin = time.Minute
	// knownAfter successes of a task, what follows it is taken as known.
	knownAfter = 2
)

// foresight is what the policy has learned of the pipelines that submit
// to it, to have clusters ready before work arrives: what task follows
// each and how soon, and when runs arrive. How long tasks run and clusters
// boot is the learned model's (package learn, shared with the forecast).
// It is learned from what the policy sees (jobs submitted, jobs ending),
// so that it is as deterministic as the rest of the state.
type foresight struct {
	// ended counts each task's successes: after a few, what follows it
	// (maybe nothing) is known.
	ended map[taskKey]int
	// foreseen holds, per pool, whether its latest job to succeed said or
	// taught what follows it.
	foreseen map[string]bool
	next     map[taskKey]map[taskKey]*follow
	runs     map[runKey]*runTrack
	// pending is work jobs announced as they ended, awaited until it is
	// submitted (see awaitGrace).
	pending map[expectKey]pending
	// dags holds each pipeline's rhythm: runs that arrive on a schedule
	// are expected at the next beat.
	dags map[string]*rhythm
	// seq orders runs by their last activity, to forget the oldest.
	seq uint64
}

// taskKey names a task of a pipeline on a pool, as the learned model
// does; a job without pipeline labels is its own task, by name.
type taskKey = learn.Task

type runKey struct{ dag, run string }

// follow is what was seen after a task ended in a run: the next task's
// first job came gap later, and the run gave it jobs jobs.
type follow struct {
	gap  time.Duration
	jobs int
}

// rhythm is when a pipeline's runs arrive: the last run's start, the
// average period, and the first task with the jobs it was given.
type rhythm struct {
	last   time.Time
	period time.Duration
	runs   int
	first  taskKey
	jobs   int
}

// runTrack is one pipeline run in progress: the task whose jobs last
// ended, and the jobs each later task was given so far.
type runTrack struct {
	last    taskKey
	lastEnd time.Time
	given   map[taskKey]int
	seq     uint64
}

func newForesight() foresight {
	return foresight{ended: map[taskKey]int{}, foreseen: map[string]bool{}, next: map[taskKey]map[taskKey]*follow{},
		runs: map[runKey]*runTrack{}, dags: map[string]*rhythm{}, pending: map[expectKey]pending{}}
}

// taskOf is the job's task; a job known only by its pool is the pool's
// task of no name.
func taskOf(j *berth.Job) taskKey {
	t, _ := learn.TaskOf(j)
	t.Pool = j.Pool
	return t
}

func runOf(j *berth.Job) (runKey, bool) {
	dag, run := j.Labels[berth.LabelDAG], j.Labels[berth.LabelRun]
	return runKey{dag, run}, dag != "" && run != "" && j.Labels[berth.LabelTask] != ""
}

func average(old, v time.Duration, known bool) time.Duration {
	if !known {
		return v
	}
	return old + time.Duration(learnWeight*float64(v-old))
}

// submitted learns from a new job of a run: it is what followed the task
// that last ended in the run. It reports whether the job is of a run: a
// job of none teaches it nothing.
func (f *foresight) submitted(j *berth.Job, now time.Time) bool {
	rk, ok := runOf(j)
	if !ok {
		return false
	}
	_, known := f.runs[rk]
	r := f.run(rk)
	t := taskOf(j)
	delete(f.pending, expectKey{from: rk, to: t})
	delete(f.pending, expectKey{from: rk, to: taskKey{Pool: t.Pool}})
	r.given[t]++
	f.beat(rk.dag, t, !known, r.given[t], now)
	if r.last == (taskKey{}) || r.last == t {
		return true
	}
	nx := f.next[r.last]
	if nx == nil {
		nx = map[taskKey]*follow{}
		f.next[r.last] = nx
	}
	fl := nx[t]
	gap := max(now.Sub(r.lastEnd), 0)
	switch {
	case fl == nil:
		nx[t] = &follow{gap: gap, jobs: 1}
	case r.given[t] == 1:
		fl.gap = average(fl.gap, gap, true)
		fl.jobs = 1
	default:
		fl.jobs = max(fl.jobs, r.given[t])
	}
	return true
}

// beat learns a pipeline's rhythm from the first task of each run.
func (f *foresight) beat(dag string, t taskKey, newRun bool, given int, now time.Time) {
	d := f.dags[dag]
	if d == nil {
		if !newRun {
			return
		}
		d = &rhythm{}
		f.dags[dag] = d
	}
	switch {
	case newRun:
		if d.runs > 0 {
			d.period = average(d.period, now.Sub(d.last), d.runs > 1)
		}
		d.last, d.first, d.jobs = now, t, 1
		d.runs++
	case t == d.first:
		d.jobs = max(d.jobs, given)
	}
}

// nextRuns are the runs expected to arrive on their pipelines' rhythm,
// once three runs showed it: the first task's jobs at the next beat,
// until a lead after it.
func (f *foresight) nextRuns(now time.Time, add func(expectKey, expectation), due func(time.Time)) {
	for dag, d := range f.dags {
		if d.runs < 3 || d.period <= 0 {
			continue
		}
		at := d.last.Add(d.period)
		if now.After(at.Add(d.period / 4)) {
			continue // the run is late: no longer expected
		}
		due(at)
		due(at.Add(d.period / 4))
		add(expectKey{from: runKey{dag: dag}, job: "next run", to: d.first}, expectation{Arrival: scheduler.Arrival{Pool: d.first.Pool, At: maxTime(at, now), Jobs: d.jobs}, task: d.first})
	}
}

// succeeded learns from a job that succeeded: its task is the latest to
// end in its run, and what it announces is awaited.
func (f *foresight) succeeded(j *berth.Job, now time.Time) {
	t := taskOf(j)
	rk, inRun := runOf(j)
	if inRun {
		// Counted for pipeline tasks only: jobs known by a name of their
		// own would grow the map without end, and teach nothing.
		f.ended[t]++
	}
	f.foreseen[j.Pool] = len(j.Then) > 0 || f.ended[t] >= knownAfter
	f.announce(j, now, func(k expectKey, e expectation) { f.pending[k] = pending{e, e.At.Add(awaitGrace)} })
	if inRun {
		r := f.run(rk)
		r.last, r.lastEnd = t, now
	}
}

func (f *foresight) run(k runKey) *runTrack {
	f.seq++
	r := f.runs[k]
	if r == nil {
		if len(f.runs) >= maxRuns {
			f.forgetOldest()
		}
		r = &runTrack{given: map[taskKey]int{}}
		f.runs[k] = r
	}
	r.seq = f.seq
	return r
}

func (f *foresight) forgetOldest() {
	var oldest runKey
	least := ^uint64(0)
	for k, r := range f.runs {
		if r.seq < least {
			oldest, least = k, r.seq
		}
	}
	delete(f.runs, oldest)
}

// stopped forgets the work a run announced once one of its jobs failed
// or was cancelled: the workflow will not go on as announced.
func (f *foresight) stopped(j *berth.Job) {
	rk, ok := runOf(j)
	if !ok {
		return
	}
	for k := range f.pending {
		if k.from == rk {
			delete(f.pending, k)
		}
	}
}

// replay learns what follows what from jobs that ended, as if it had seen
// them: each submitted at its creation and ending at its end, in the
// order these happened.
func (f *foresight) replay(jobs []*berth.Job) {
	type event struct {
		at  time.Time
		end bool
		j   *berth.Job
	}
	evs := make([]event, 0, 2*len(jobs))
	for _, j := range jobs {
		evs = append(evs, event{j.CreatedAt, false, j})
		if j.State == berth.JobSucceeded {
			evs = append(evs, event{j.EndedAt, true, j})
		}
	}
	slices.SortStableFunc(evs, func(a, b event) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		if a.end != b.end {
			// At one moment, ends first: a job submitted as another ended
			// followed it.
			if a.end {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.j.ID, b.j.ID)
	})
	for _, e := range evs {
		if e.end {
			f.succeeded(e.j, e.at)
		} else {
			f.submitted(e.j, e.at)
		}
	}
	clear(f.pending) // what the past announced has come or will not
}

// run is a task's learned run time, when it has been seen.
func run(m *learn.Model, t taskKey) (time.Duration, bool) { return m.Known(t) }

// expectedEnd is when a running job is expected to end, if its task's run
// time is known: a guess from the pool would start clusters for nothing.
func expectedEnd(m *learn.Model, j *berth.Job, now time.Time) (time.Time, bool) {
	a := j.CurrentAttempt()
	d, ok := run(m, taskOf(j))
	if a == nil || !ok {
		return time.Time{}, false
	}
	end := a.StartedAt.Add(d)
	if !end.After(now) {
		end = now.Add(overdueMargin)
	}
	return end, true
}

// expected is the work expected to arrive, per pool, soonest first, and
// when the pools' running jobs are expected to end. Work is expected from
// what the running jobs said will follow them (then hints) or, for a job
// without hints, what followed its task before; from jobs that just ended
// and announced work not yet submitted; and from pipelines' rhythm. Known
// work is followed further down its pipeline, as far as chainDepth tasks
// within chainHorizon, so that a cluster needed two tasks later is ready
// too. Jobs of one run that announce the same work announce it once, when
// the last of them is expected to end.
func (s *State) expected(now time.Time) (map[string][]scheduler.Arrival, map[string][]time.Time) {
	c := &s.expectCache
	if c.ver == s.expectVer && now.Before(c.until) {
		return c.arrivals, c.ends
	}
	// Until something changes, the answer holds until the first time it
	// depends on comes: a job's expected end (then it is overdue), the
	// end of a wait for announced work, a rhythm's beat; and for
	// expectStale at most.
	until := now.Add(expectStale)
	due := func(t time.Time) {
		if t.After(now) && t.Before(until) {
			until = t
		}
	}
	f, m := &s.foresee, s.learned()
	at := map[expectKey]expectation{}
	add := func(k expectKey, e expectation) {
		if old, ok := at[k]; ok {
			e.At = maxTime(e.At, old.At)
			e.Jobs = max(e.Jobs, old.Jobs)
		}
		at[k] = e
	}
	ends := map[string][]time.Time{}
	for _, on := range s.running {
		for _, j := range on {
			end, ok := expectedEnd(m, j, now)
			if !ok {
				continue
			}
			ends[j.Pool] = append(ends[j.Pool], end)
			due(end)
			f.announce(j, end, func(k expectKey, e expectation) {
				if _, given := s.runs(j, k.to); !given {
					add(k, e)
				}
			})
		}
	}
	for k, p := range f.pending {
		if now.After(p.until) {
			delete(f.pending, k)
			continue
		}
		due(p.until.Add(time.Nanosecond))
		add(k, p.expectation)
	}
	f.nextRuns(now, add, due)
	// Follow known work down its pipeline: breadth first, so that each
	// step of the chain starts from the latest estimate of the one before.
	frontier := make([]expectKey, 0, len(at))
	for k := range at {
		frontier = append(frontier, k)
	}
	slices.SortFunc(frontier, compareExpectKeys)
	for depth := 0; depth < chainDepth && len(frontier) > 0; depth++ {
		var next []expectKey
		for _, k := range frontier {
			e := at[k]
			d, ok := run(m, e.task)
			if !ok || e.task.Name == "" {
				continue
			}
			for t, fl := range f.next[e.task] {
				a := e.At.Add(d + fl.gap)
				if a.After(now.Add(chainHorizon)) {
					continue
				}
				nk := expectKey{k.from, k.job, t}
				if _, seen := at[nk]; !seen {
					next = append(next, nk)
				}
				add(nk, expectation{Arrival: scheduler.Arrival{Pool: t.Pool, At: a, Jobs: fl.jobs}, task: t})
			}
		}
		slices.SortFunc(next, compareExpectKeys)
		frontier = slices.Compact(next)
	}
	out := map[string][]scheduler.Arrival{}
	for _, e := range at {
		out[e.Pool] = append(out[e.Pool], e.Arrival)
	}
	for _, as := range out {
		slices.SortFunc(as, func(a, b scheduler.Arrival) int { return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.Jobs, b.Jobs)) })
	}
	for _, es := range ends {
		slices.SortFunc(es, time.Time.Compare)
	}
	*c = expectCache{ver: s.expectVer, until: until, arrivals: out, ends: ends}
	return out, ends
}

// expectStale bounds how long an answer of expected is reused while
// nothing changes.
const expectStale = 30 * time.Second

// expectCache is expected's last answer: good while the state's
// expectVer is ver, until until. expectVer moves whenever a job starts or
// stops running, foresight learns, or the model does.
type expectCache struct {
	ver      uint64
	until    time.Time
	arrivals map[string][]scheduler.Arrival
	ends     map[string][]time.Time
}

// How far known work is followed down its pipeline.
const (
	chainDepth   = 4
	chainHorizon = 3 * time.Hour
)

// awaitGrace is how long work a finished job announced is awaited: the
// workflow engine needs a moment to hear of the end and submit what
// follows.
const awaitGrace = 5 * time.Minute

// expectKey names one piece of expected work: what announced it (a run,
// or a job when it has none) and the task (or, for a hint, the pool) it
// is.
type expectKey struct {
	from runKey
	job  string // when it has no run
	to   taskKey
}

func compareExpectKeys(a, b expectKey) int {
	return cmp.Or(cmp.Compare(a.from.dag, b.from.dag), cmp.Compare(a.from.run, b.from.run), cmp.Compare(a.job, b.job),
		cmp.Compare(a.to.Pool, b.to.Pool), cmp.Compare(a.to.DAG, b.to.DAG), cmp.Compare(a.to.Name, b.to.Name))
}

// expectation is expected work and, when known, its task, to follow it
// further.
type expectation struct {
	scheduler.Arrival
	task taskKey
}

// pending is work a job announced when it ended, until it is submitted or
// its grace runs out.
type pending struct {
	expectation
	until time.Time
}

// announce gives the work a job says or taught will follow it, if it
// ends at end: its then hints, else what followed its task before.
func (f *foresight) announce(j *berth.Job, end time.Time, out func(expectKey, expectation)) {
	from := expectKey{job: j.ID}
	if rk, ok := runOf(j); ok {
		from = expectKey{from: rk}
	}
	follows := f.next[taskOf(j)]
	if len(j.Then) > 0 {
		for _, h := range j.Then {
			e := expectation{Arrival: scheduler.Arrival{Pool: h.Pool, At: end, Jobs: h.Jobs}}
			// The hint names a pool; the task learned to follow on it, if
			// one, lets the chain go on from there.
			for t := range follows {
				if t.Pool == h.Pool && (e.task == taskKey{} || t.Name < e.task.Name) {
					e.task = t
				}
			}
			k := from
			k.to = taskKey{Pool: h.Pool}
			out(k, e)
		}
		return
	}
	for t, fl := range follows {
		k := from
		k.to = t
		out(k, expectation{Arrival: scheduler.Arrival{Pool: t.Pool, At: end.Add(fl.gap), Jobs: fl.jobs}, task: t})
	}
}

// runs reports whether the job's run has already been given jobs of task
// t: then t's work is here, not to come.
func (s *State) runs(j *berth.Job, t taskKey) (int, bool) {
	rk, ok := runOf(j)
	if !ok {
		return 0, false
	}
	r := s.foresee.runs[rk]
	if r == nil {
		return 0, false
	}
	n := r.given[t]
	return n, n > 0
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
