// Package storetest is the conformance suite of store.Store. Every driver
// runs it against a real database, so the service can rely on the rules
// below whichever database is behind it:
//
//   - CreateJob assigns a strictly increasing Seq and is idempotent on
//     IdempotencyKey, also under concurrent submissions of one key.
//   - Every field of a job, attempt, cluster, pool state and event comes
//     back exactly as written, times to the nanosecond and in UTC, zero
//     times as zero. Cluster.Running and Cluster.Cost are derived: a store
//     may drop them.
//   - ListJobs pages newest first through a cursor, with state, pool and
//     label filters; a bad cursor or negative limit is berth.ErrInvalid.
//   - RequestCancel is berth.ErrNotFound for an unknown job and
//     berth.ErrConflict (with the job) for an ended one; it appends one
//     "cancel_requested" event.
//   - Commit is all or nothing (a batch naming an unknown job is
//     berth.ErrNotFound and writes nothing), writes jobs whole with their
//     attempts, upserts clusters, pool state and affinity, appends events,
//     and never changes a job's Seq, CreatedAt or CancelRequested.
//   - Load returns the live jobs and clusters, all pool state, the
//     affinity map and the highest Seq.
//   - Lock is exclusive across stores on one database: while one holds it,
//     a Lock from any store, the holder included, is berth.ErrConflict
//     saying another berth server holds the store; release or Close gives
//     it up, and release may be called twice.
//
// Reopening a store and finding the same state is driver-specific (a file,
// a server) and is each driver's own test.
package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/store"
)

// Run runs the suite. newDB must make a new, empty database for the test
// it is given and return open, which opens a store on that database and
// closes it when that test ends. Each call of open opens another store on
// the same database, as a second process would; most subtests need one,
// the lock's two.
func Run(t *testing.T, newDB func(t *testing.T) (open func() store.Store)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateJob/RoundTrip", testCreateRoundTrip},
		{"CreateJob/Seq", testCreateSeq},
		{"CreateJob/Idempotent", testCreateIdempotent},
		{"CreateJob/IdempotentConcurrent", testCreateIdempotentConcurrent},
		{"CreateJob/DuplicateID", testCreateDuplicateID},
		{"CreateJob/QueuedEvent", testCreateQueuedEvent},
		{"CreateJobs", testCreateJobs},
		{"CreateJobs/AllOrNone", testCreateJobsAllOrNone},
		{"CreateJobs/Many", testCreateJobsMany},
		{"CreateJobs/SameID", testCreateJobsSameID},
		{"GetJob/NotFound", testGetJobNotFound},
		{"ListJobs/Pages", testListJobsPages},
		{"ListJobs/Limits", testListJobsLimits},
		{"ListJobs/BadInput", testListJobsBadInput},
		{"ListJobs/Attempts", testListJobsAttempts},
		{"RequestCancel", testRequestCancel},
		{"CancelRequests", testCancelRequests},
		{"Commit/RoundTrip", testCommitRoundTrip},
		{"Commit/Empty", testCommitEmpty},
		{"Commit/Atomic", testCommitAtomic},
		{"Commit/KeepsStoreFields", testCommitKeepsStoreFields},
		{"Commit/Attempts", testCommitAttempts},
		{"Commit/SpecFixed", testCommitSpecFixed},
		{"Commit/Started", testCommitStarted},
		{"Commit/ManyRows", testCommitManyRows},
		{"Commit/Upserts", testCommitUpserts},
		{"Load", testLoad},
		{"Load/Empty", testLoadEmpty},
		{"Load/Dormant", testLoadDormant},
		{"GetJobs", testGetJobs},
		{"JobsAfter", testJobsAfter},
		{"GetCluster/NotFound", testGetClusterNotFound},
		{"ListClusters", testListClusters},
		{"ClusterAttempts", testClusterAttempts},
		{"ListEvents", testListEvents},
		{"Concurrent", testConcurrent},
		{"Ping", testPing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newDB(t)())
		})
	}
	twoStores := []struct {
		name string
		fn   func(t *testing.T, open func() store.Store)
	}{
		{"Lock/Exclusive", testLockExclusive},
		{"Lock/Close", testLockClose},
		{"Installation", testInstallation},
	}
	for _, tt := range twoStores {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newDB(t))
		})
	}
}

func testCreateRoundTrip(t *testing.T, s store.Store) {
	emptyThen := newJob("job-empty-then")
	emptyThen.Then = []berth.Hint{}
	cases := []struct {
		name string
		job  berth.Job
		// stored changes what comes back from what was given.
		stored func(j *berth.Job)
	}{
		{"every field", newJob("job-full"), nil},
		{"bare", berth.Job{ID: "job-bare", Pool: "p", State: berth.JobQueued, Resume: berth.ResumeFromStart,
			Steps: []berth.JobStep{{Step: berth.Step{Args: []string{"true"}}, State: berth.StepPending}}}, nil},
		{"an empty then list comes back absent", emptyThen, func(j *berth.Job) { j.Then = nil }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, created, err := s.CreateJob(t.Context(), c.job)
			if err != nil || !created {
				t.Fatalf("CreateJob: created %v, error %v", created, err)
			}
			if got.Seq <= 0 {
				t.Errorf("Seq = %d, want > 0", got.Seq)
			}
			if got.Attempts == nil {
				t.Error("Attempts is nil, want an empty slice")
			}
			want := c.job
			if c.stored != nil {
				c.stored(&want)
			}
			want.Seq = got.Seq
			want.Attempts = []berth.Attempt{}
			equal(t, "CreateJob result", got, want)
			equal(t, "GetJob", getJob(t, s, c.job.ID), want)
		})
	}
}

// testCreateQueuedEvent: a created job comes with its queued event, in
// the same write; a used key writes none.
func testCreateQueuedEvent(t *testing.T, s store.Store) {
	j := create(t, s, newJob("job-1"))
	again := newJob("job-again")
	again.IdempotencyKey = j.IdempotencyKey
	if _, created, err := s.CreateJob(t.Context(), again); err != nil || created {
		t.Fatalf("CreateJob with a used key: created %v, error %v", created, err)
	}
	evs, err := s.ListEvents(t.Context(), store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	want := store.QueuedEvent(&j)
	if len(evs) != 1 {
		t.Fatalf("events %+v, want one: %+v", evs, want)
	}
	want.Seq = evs[0].Seq
	equal(t, "queued event", evs[0], want)
}

// testCreateJobs: a call stores its jobs in order, each as CreateJob
// would, and a key used earlier, or earlier in the same call, gets the job
// that holds it.
func testCreateJobs(t *testing.T, s store.Store) {
	ctx := t.Context()
	old := create(t, s, newJob("job-old"))
	a, b, c := newJob("job-a"), newJob("job-b"), newJob("job-c")
	b.IdempotencyKey = old.IdempotencyKey
	c.IdempotencyKey = a.IdempotencyKey
	var heldBy []string
	out, err := s.CreateJobs(ctx, []berth.Job{a, b, c}, func(i int, holder *berth.Job) error {
		heldBy = append(heldBy, fmt.Sprintf("%d:%s", i, holder.ID))
		return nil
	})
	if err != nil {
		t.Fatalf("CreateJobs: %v", err)
	}
	equal(t, "held called for", heldBy, []string{"1:job-old", "2:job-a"})
	if len(out) != 3 {
		t.Fatalf("CreateJobs answered %d jobs, want 3", len(out))
	}
	storedA := getJob(t, s, "job-a")
	equal(t, "new job", out[0], berth.Submitted{Job: storedA, Created: true})
	equal(t, "job of a key used before", out[1], berth.Submitted{Job: old})
	equal(t, "job of a key used earlier in the call", out[2], berth.Submitted{Job: storedA})
	if storedA.Seq <= old.Seq {
		t.Errorf("Seq %d after %d", storedA.Seq, old.Seq)
	}
	for _, id := range []string{"job-b", "job-c"} {
		if _, err := s.GetJob(ctx, id); !isNotFound(err) {
			t.Errorf("GetJob(%s): error %v, want not found", id, err)
		}
	}
	if evs := eventsOf(t, s, store.EventQueued); len(evs) != 2 {
		t.Errorf("queued events %+v, want two (job-old, job-a)", evs)
	}
	if out, err := s.CreateJobs(ctx, nil, nil); err != nil || len(out) != 0 {
		t.Errorf("CreateJobs of none: %+v, %v", out, err)
	}
}

// testCreateJobsMany: a call of more jobs than one statement writes
// (drivers batch rows) stores each whole, labels and all, in the call's
// order, with one queued event each in that order.
func testCreateJobsMany(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 150
	jobs := make([]berth.Job, n)
	for i := range jobs {
		jobs[i] = newJob(fmt.Sprintf("job-many-%03d", i))
		if i%3 == 0 {
			jobs[i].Labels = nil
		} else {
			jobs[i].Labels = map[string]string{"n": fmt.Sprint(i), "third": fmt.Sprint(i % 3)}
		}
	}
	out, err := s.CreateJobs(ctx, jobs, nil)
	if err != nil {
		t.Fatalf("CreateJobs: %v", err)
	}
	if len(out) != n {
		t.Fatalf("CreateJobs answered %d jobs, want %d", len(out), n)
	}
	for i, got := range out {
		if !got.Created {
			t.Fatalf("job %d not created", i)
		}
		if i > 0 && got.Job.Seq <= out[i-1].Job.Seq {
			t.Errorf("job %d: Seq %d after %d, want the call's order", i, got.Job.Seq, out[i-1].Job.Seq)
		}
		equal(t, "GetJob of "+got.Job.ID, getJob(t, s, got.Job.ID), got.Job)
	}
	page, _, err := s.ListJobs(ctx, store.JobFilter{Labels: map[string]string{"third": "2"}, Limit: n})
	if err != nil {
		t.Fatal(err)
	}
	var ids, want []string
	for _, j := range page {
		ids = append(ids, j.ID)
	}
	for i := range jobs {
		if i%3 == 2 {
			want = append(want, jobs[i].ID)
		}
	}
	slices.Sort(ids)
	equal(t, "jobs listed by label", ids, want)
	evs := eventsOf(t, s, store.EventQueued)
	if len(evs) != n {
		t.Fatalf("%d queued events, want %d", len(evs), n)
	}
	for i, ev := range evs {
		if ev.JobID != jobs[i].ID {
			t.Fatalf("queued event %d is of %s, want %s", i, ev.JobID, jobs[i].ID)
		}
	}
}

// testCreateJobsSameID: two jobs of one call with one id are stored when
// the first is a used key's and the second is new; with one id and one
// key the second is the first's hit.
func testCreateJobsSameID(t *testing.T, s store.Store) {
	ctx := t.Context()
	old := create(t, s, newJob("job-old"))
	first, second := newJob("job-same"), newJob("job-same")
	first.IdempotencyKey = old.IdempotencyKey
	out, err := s.CreateJobs(ctx, []berth.Job{first, second}, nil)
	if err != nil {
		t.Fatalf("CreateJobs: %v", err)
	}
	stored := getJob(t, s, "job-same")
	equal(t, "the used key's job", out[0], berth.Submitted{Job: old})
	equal(t, "the new job", out[1], berth.Submitted{Job: stored, Created: true})

	a, b := newJob("job-twice"), newJob("job-twice")
	out, err = s.CreateJobs(ctx, []berth.Job{a, b}, nil)
	if err != nil {
		t.Fatalf("CreateJobs of one id and key twice: %v", err)
	}
	stored = getJob(t, s, "job-twice")
	equal(t, "the first", out[0], berth.Submitted{Job: stored, Created: true})
	equal(t, "the second, the first's hit", out[1], berth.Submitted{Job: stored})
}

// testCreateJobsAllOrNone: one bad job fails the call, and none of its
// jobs is stored.
func testCreateJobsAllOrNone(t *testing.T, s store.Store) {
	ctx := t.Context()
	taken := create(t, s, newJob("job-taken"))
	for name, bad := range map[string]berth.Job{
		"empty id":  {Pool: "p"},
		"id in use": newJob(taken.ID),
	} {
		t.Run(name, func(t *testing.T) {
			if bad.ID == taken.ID {
				bad.IdempotencyKey = "a new key"
			}
			_, err := s.CreateJobs(ctx, []berth.Job{newJob("job-x" + name), bad, newJob("job-y" + name)}, nil)
			if err == nil {
				t.Fatal("CreateJobs with a bad job: no error")
			}
			for _, id := range []string{"job-x" + name, "job-y" + name} {
				if _, err := s.GetJob(ctx, id); !isNotFound(err) {
					t.Errorf("GetJob(%s) after the failed call: error %v, want not found", id, err)
				}
			}
		})
	}
	t.Run("held says no", func(t *testing.T) {
		again := newJob("job-again")
		again.IdempotencyKey = taken.IdempotencyKey
		no := berth.Errorf(berth.ErrConflict, "not that one")
		_, err := s.CreateJobs(ctx, []berth.Job{newJob("job-z"), again}, func(int, *berth.Job) error { return no })
		if !errors.Is(err, no) {
			t.Fatalf("CreateJobs: error %v, want held's", err)
		}
		if _, err := s.GetJob(ctx, "job-z"); !isNotFound(err) {
			t.Errorf("GetJob(job-z) after the failed call: error %v, want not found", err)
		}
	})
	if evs := eventsOf(t, s, store.EventQueued); len(evs) != 1 {
		t.Errorf("queued events %+v, want only job-taken's", evs)
	}
}

func testCreateSeq(t *testing.T, s store.Store) {
	var last int64
	for i := range 5 {
		j := create(t, s, newJob(jobID(i)))
		if j.Seq <= last {
			t.Errorf("job %d: Seq %d after %d, want increasing", i, j.Seq, last)
		}
		last = j.Seq
	}
}

func testCreateIdempotent(t *testing.T, s store.Store) {
	first := create(t, s, newJob("job-first"))

	again := newJob("job-again")
	again.IdempotencyKey = first.IdempotencyKey
	again.Pool, again.Priority = "other", 99
	got, created, err := s.CreateJob(t.Context(), again)
	if err != nil {
		t.Fatalf("CreateJob with a used key: %v", err)
	}
	if created {
		t.Error("CreateJob with a used key: created true, want false")
	}
	equal(t, "job returned for a used key", got, first)
	if _, err := s.GetJob(t.Context(), "job-again"); !isNotFound(err) {
		t.Errorf("GetJob of the duplicate: error %v, want not found", err)
	}

	other := newJob("job-other")
	other.IdempotencyKey = "another key"
	create(t, s, other)
	// Jobs without a key never collide.
	for _, id := range []string{"job-nokey-1", "job-nokey-2"} {
		j := newJob(id)
		j.IdempotencyKey = ""
		create(t, s, j)
	}
	jobs, _, err := s.ListJobs(t.Context(), store.JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "jobs stored", ids(jobs), []string{"job-nokey-2", "job-nokey-1", "job-other", "job-first"})
}

func testCreateIdempotentConcurrent(t *testing.T, s store.Store) {
	const n = 16
	var (
		wg      sync.WaitGroup
		results = make([]berth.Job, n)
		made    = make([]bool, n)
		errs    = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			j := newJob(jobID(i))
			j.IdempotencyKey = "the same key"
			results[i], made[i], errs[i] = s.CreateJob(t.Context(), j)
		})
	}
	wg.Wait()
	winners := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("CreateJob %d: %v", i, errs[i])
		}
		if made[i] {
			winners++
		}
		if results[i].ID != results[0].ID {
			t.Errorf("CreateJob %d returned job %s, another returned %s", i, results[i].ID, results[0].ID)
		}
	}
	if winners != 1 {
		t.Errorf("%d submissions created a job, want exactly 1", winners)
	}
	jobs, _, err := s.ListJobs(t.Context(), store.JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 {
		t.Errorf("%d jobs stored, want 1", len(jobs))
	}
}

func testCreateDuplicateID(t *testing.T, s store.Store) {
	create(t, s, newJob("job-1"))
	dup := newJob("job-1")
	dup.IdempotencyKey = "a different key"
	_, _, err := s.CreateJob(t.Context(), dup)
	isErr(t, "CreateJob with a used id", err, berth.ErrConflict)
}

func testGetJobNotFound(t *testing.T, s store.Store) {
	_, err := s.GetJob(t.Context(), "job-missing")
	isErr(t, "GetJob of an unknown job", err, berth.ErrNotFound)
}

func testListJobsPages(t *testing.T, s store.Store) {
	// 25 jobs over two pools, three bins and two states.
	var all []berth.Job // newest first
	for i := range 25 {
		j := newJob(jobID(i))
		j.Pool = []string{"a", "b"}[i%2]
		j.Labels = map[string]string{"bin": fmt.Sprint(i % 3), "dag": "d"}
		j = create(t, s, j)
		if i%4 == 0 {
			j.State = berth.JobRunning
			commit(t, s, store.Batch{Jobs: []berth.Job{j}})
		}
		all = append([]berth.Job{j}, all...)
	}
	match := func(f store.JobFilter) []string {
		var out []string
		for _, j := range all {
			if f.State != "" && j.State != f.State || f.Pool != "" && j.Pool != f.Pool {
				continue
			}
			ok := true
			for k, v := range f.Labels {
				if got, has := j.Labels[k]; !has || got != v {
					ok = false
				}
			}
			if ok {
				out = append(out, j.ID)
			}
		}
		return out
	}
	cases := []struct {
		name string
		f    store.JobFilter
	}{
		{"all", store.JobFilter{}},
		{"pool", store.JobFilter{Pool: "a"}},
		{"state", store.JobFilter{State: berth.JobRunning}},
		{"queued in pool b", store.JobFilter{State: berth.JobQueued, Pool: "b"}},
		{"label", store.JobFilter{Labels: map[string]string{"bin": "1"}}},
		{"two labels", store.JobFilter{Labels: map[string]string{"bin": "2", "dag": "d"}}},
		{"label value unmatched", store.JobFilter{Labels: map[string]string{"bin": "1", "dag": "x"}}},
		{"label key unmatched", store.JobFilter{Labels: map[string]string{"nope": "1"}}},
		{"everything", store.JobFilter{State: berth.JobQueued, Pool: "b", Labels: map[string]string{"bin": "0"}}},
		{"unknown pool", store.JobFilter{Pool: "zzz"}},
	}
	for _, c := range cases {
		for _, limit := range []int{1, 4, 25, 100} {
			t.Run(fmt.Sprintf("%s/limit %d", c.name, limit), func(t *testing.T) {
				want := match(c.f)
				f := c.f
				f.Limit = limit
				var got []string
				for page := 0; ; page++ {
					if page > len(all) {
						t.Fatal("pagination does not end")
					}
					jobs, next, err := s.ListJobs(t.Context(), f)
					if err != nil {
						t.Fatalf("page %d: %v", page, err)
					}
					if len(jobs) > limit {
						t.Fatalf("page %d: %d jobs, limit %d", page, len(jobs), limit)
					}
					if next != "" && len(jobs) != limit {
						t.Errorf("page %d: %d jobs and a next page, want full pages of %d", page, len(jobs), limit)
					}
					got = append(got, ids(jobs)...)
					if next == "" {
						break
					}
					if len(jobs) == 0 {
						t.Fatal("empty page with a next cursor")
					}
					f.Cursor = next
				}
				equal(t, "jobs over all pages", got, want)
			})
		}
	}

	// Listed jobs are whole.
	jobs, _, err := s.ListJobs(t.Context(), store.JobFilter{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "listed job", jobs[0], all[0])
}

func testListJobsLimits(t *testing.T, s store.Store) {
	n := store.DefaultLimit + 3
	for i := range n {
		j := newJob(jobID(i))
		j.IdempotencyKey = ""
		j.Labels = nil
		create(t, s, j)
	}
	jobs, next, err := s.ListJobs(t.Context(), store.JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != store.DefaultLimit || next == "" {
		t.Errorf("limit 0: %d jobs, next %q; want %d and a next page", len(jobs), next, store.DefaultLimit)
	}
	if len(jobs) > 0 && jobs[0].ID != jobID(n-1) {
		t.Errorf("first job %s, want the newest, %s", jobs[0].ID, jobID(n-1))
	}
	jobs, next, err = s.ListJobs(t.Context(), store.JobFilter{Limit: store.MaxLimit + 1})
	if err != nil {
		t.Fatalf("limit above MaxLimit: %v", err)
	}
	if len(jobs) != n || next != "" {
		t.Errorf("limit above MaxLimit: %d jobs, next %q; want %d and no next page", len(jobs), next, n)
	}
}

func testListJobsBadInput(t *testing.T, s store.Store) {
	create(t, s, newJob("job-1"))
	for _, f := range []store.JobFilter{
		{Cursor: "not a cursor"},
		{Cursor: "-1"},
		{Cursor: "1.5"},
		{Limit: -1},
	} {
		_, _, err := s.ListJobs(t.Context(), f)
		isErr(t, fmt.Sprintf("ListJobs(%+v)", f), err, berth.ErrInvalid)
	}
}

func testListJobsAttempts(t *testing.T, s store.Store) {
	a := create(t, s, newJob("job-a"))
	b := create(t, s, newJob("job-b"))
	ranA := ran(a, "cl-1", "cl-2")
	commit(t, s, store.Batch{Jobs: []berth.Job{ranA}})
	jobs, _, err := s.ListJobs(t.Context(), store.JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "listed jobs", jobs, []berth.Job{b, stored(ranA, a.Seq, a.CreatedAt, false)})
}

func testRequestCancel(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.RequestCancel(ctx, "job-missing", at(1)); !isNotFound(err) {
		t.Errorf("RequestCancel of an unknown job: error %v, want not found", err)
	}

	cases := []struct {
		state    berth.JobState
		conflict bool
	}{
		{berth.JobQueued, false},
		{berth.JobRunning, false},
		{berth.JobSucceeded, true},
		{berth.JobFailed, true},
		{berth.JobCancelled, true},
	}
	for i, c := range cases {
		t.Run(string(c.state), func(t *testing.T) {
			j := create(t, s, newJob("job-"+string(c.state)))
			if c.state != berth.JobQueued {
				j.State = c.state
				commit(t, s, store.Batch{Jobs: []berth.Job{j}})
			}
			when := at(100 + i)
			got, err := s.RequestCancel(ctx, j.ID, when)
			if c.conflict {
				isErr(t, "RequestCancel of an ended job", err, berth.ErrConflict)
				equal(t, "job returned with the conflict", got, j)
				equal(t, "job stored", getJob(t, s, j.ID), j)
				if evs := loopEvents(t, s, store.EventFilter{JobID: j.ID}); len(evs) != 0 {
					t.Errorf("events after a refused request: %+v", evs)
				}
				return
			}
			if err != nil {
				t.Fatalf("RequestCancel: %v", err)
			}
			want := j
			want.CancelRequested = true
			equal(t, "RequestCancel result", got, want)
			equal(t, "job stored", getJob(t, s, j.ID), want)

			// Asking again changes nothing and records nothing more.
			again, err := s.RequestCancel(ctx, j.ID, at(200))
			if err != nil {
				t.Fatalf("second RequestCancel: %v", err)
			}
			equal(t, "second RequestCancel result", again, want)
			evs := loopEvents(t, s, store.EventFilter{JobID: j.ID})
			if len(evs) != 1 {
				t.Fatalf("%d events, want 1: %+v", len(evs), evs)
			}
			if evs[0].Kind != store.EventCancelRequested || evs[0].JobID != j.ID || !evs[0].At.Equal(when) || evs[0].Seq <= 0 {
				t.Errorf("event %+v, want kind %q for job %s at %s", evs[0], store.EventCancelRequested, j.ID, when)
			}
		})
	}
}

func testCancelRequests(t *testing.T, s store.Store) {
	ctx := t.Context()
	ids0, err := s.CancelRequests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids0) != 0 {
		t.Errorf("CancelRequests of an empty store: %v", ids0)
	}
	queued := create(t, s, newJob("job-queued"))
	running := create(t, s, newJob("job-running"))
	ended := create(t, s, newJob("job-ended"))
	create(t, s, newJob("job-untouched"))
	running.State = berth.JobRunning
	commit(t, s, store.Batch{Jobs: []berth.Job{running}})
	for _, j := range []berth.Job{queued, running, ended} {
		if _, err := s.RequestCancel(ctx, j.ID, at(5)); err != nil {
			t.Fatalf("RequestCancel(%s): %v", j.ID, err)
		}
	}
	// The loop cancels the third job; its request is then done with.
	ended.State, ended.Reason, ended.EndedAt = berth.JobCancelled, berth.ReasonCancelled, at(6)
	commit(t, s, store.Batch{Jobs: []berth.Job{ended}})

	got, err := s.CancelRequests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	equal(t, "CancelRequests", got, []string{"job-queued", "job-running"})
}

func testCommitRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	j := create(t, s, newJob("job-1"))
	c1 := newCluster("cl-1", "spark", berth.ClusterLost, at(1))
	c2 := newCluster("cl-2", "spark", berth.ClusterReady, at(2))
	c2.EndedAt, c2.Reason, c2.Capacity, c2.Fallback = time.Time{}, "", false, false
	c2.Running, c2.Cost = 3, 4.5 // derived; a store may drop them
	pools := []berth.PoolState{
		{Pool: "spark", CapacityFailures: 2, FirstFailureAt: at(3), FallbackUntil: at(4)},
		{Pool: "small", BlockedAt: at(4), BlockedReason: "bootstrap action 1 returned a non-zero return code", BlockedSpec: "3f2a", UnblockedAt: at(2)},
	}
	events := []berth.Event{
		{At: at(5), JobID: j.ID, ClusterID: "cl-1", Kind: "placed", Message: "placed on cl-1 \u2014 ok"},
		{At: at(6), ClusterID: "cl-1", Kind: "cluster_lost", Message: "spot capacity reclaimed"},
		{At: at(7), JobID: j.ID, Kind: "requeued"},
	}
	r := ran(j, "cl-1", "cl-2")
	commit(t, s, store.Batch{
		Jobs:     []berth.Job{r},
		Clusters: []berth.Cluster{c1, c2},
		Pools:    pools,
		Affinity: map[string]string{"nightly-2026-11-24": "cl-2"},
		Events:   events,
	})

	equal(t, "job", getJob(t, s, j.ID), stored(r, j.Seq, j.CreatedAt, false))
	for _, c := range []berth.Cluster{c1, c2} {
		got, err := s.GetCluster(ctx, c.ID)
		if err != nil {
			t.Fatalf("GetCluster(%s): %v", c.ID, err)
		}
		equal(t, "cluster "+c.ID, derivedZero(got), derivedZero(c))
	}
	st, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(st.Pools, func(a, b int) bool { return st.Pools[a].Pool < st.Pools[b].Pool })
	equal(t, "pool state", st.Pools, []berth.PoolState{pools[1], pools[0]})
	equal(t, "affinity", st.Affinity, map[string]string{"nightly-2026-11-24": "cl-2"})

	evs := loopEvents(t, s, store.EventFilter{})
	if len(evs) != len(events) {
		t.Fatalf("%d events, want %d", len(evs), len(events))
	}
	for i := range evs {
		if i > 0 && evs[i].Seq <= evs[i-1].Seq {
			t.Errorf("event %d: Seq %d after %d, want increasing", i, evs[i].Seq, evs[i-1].Seq)
		}
		want := events[i]
		want.Seq = evs[i].Seq
		equal(t, fmt.Sprintf("event %d", i), evs[i], want)
	}
}

func testCommitEmpty(t *testing.T, s store.Store) {
	j := create(t, s, newJob("job-1"))
	if err := s.Commit(t.Context(), store.Batch{}); err != nil {
		t.Fatalf("Commit of an empty batch: %v", err)
	}
	equal(t, "job after an empty batch", getJob(t, s, j.ID), j)
}

func testCommitAtomic(t *testing.T, s store.Store) {
	ctx := t.Context()
	j := create(t, s, newJob("job-1"))
	changed := ran(j, "cl-1", "cl-1")
	ghost := newJob("job-ghost")
	err := s.Commit(ctx, store.Batch{
		// The unknown job comes last, after writes a careless driver
		// would already have made.
		Jobs:     []berth.Job{changed, ghost},
		Clusters: []berth.Cluster{newCluster("cl-1", "spark", berth.ClusterReady, at(1))},
		Pools:    []berth.PoolState{{Pool: "spark", CapacityFailures: 1, FirstFailureAt: at(2)}},
		Affinity: map[string]string{"k": "cl-1"},
		Events:   []berth.Event{{At: at(3), JobID: j.ID, Kind: "placed"}},
	})
	isErr(t, "Commit naming an unknown job", err, berth.ErrNotFound)

	equal(t, "job after the failed batch", getJob(t, s, j.ID), j)
	if _, err := s.GetCluster(ctx, "cl-1"); !isNotFound(err) {
		t.Errorf("cluster of the failed batch: error %v, want not found", err)
	}
	if evs := loopEvents(t, s, store.EventFilter{}); len(evs) != 0 {
		t.Errorf("events of the failed batch were written: %+v", evs)
	}
	st, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Pools) != 0 || len(st.Affinity) != 0 || len(st.Clusters) != 0 {
		t.Errorf("failed batch left pools %+v, affinity %v, clusters %+v", st.Pools, st.Affinity, st.Clusters)
	}
	cas, err := s.ClusterAttempts(ctx, "cl-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(cas) != 0 {
		t.Errorf("attempts of the failed batch were written: %+v", cas)
	}
}

func testCommitKeepsStoreFields(t *testing.T, s store.Store) {
	ctx := t.Context()
	j := create(t, s, newJob("job-1"))
	// The loop holds this copy from before the API recorded the request.
	loopCopy := j
	if _, err := s.RequestCancel(ctx, j.ID, at(1)); err != nil {
		t.Fatal(err)
	}
	loopCopy.State = berth.JobRunning
	loopCopy.CancelRequested = false
	loopCopy.Seq = j.Seq + 1000
	loopCopy.CreatedAt = at(999)
	commit(t, s, store.Batch{Jobs: []berth.Job{loopCopy}})

	got := getJob(t, s, j.ID)
	if !got.CancelRequested {
		t.Error("Commit of a stale copy cleared CancelRequested")
	}
	if got.Seq != j.Seq || !got.CreatedAt.Equal(j.CreatedAt) {
		t.Errorf("Commit changed Seq %d -> %d or CreatedAt %s -> %s", j.Seq, got.Seq, j.CreatedAt, got.CreatedAt)
	}
	if got.State != berth.JobRunning {
		t.Errorf("state %s, want the committed %s", got.State, berth.JobRunning)
	}
	reqs, err := s.CancelRequests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "CancelRequests", reqs, []string{j.ID})
}

func testCommitAttempts(t *testing.T, s store.Store) {
	j := create(t, s, newJob("job-1"))
	r := ran(j, "cl-1", "cl-2")

	first := r
	first.Attempts = []berth.Attempt{r.Attempts[0]}
	first.Attempts[0].State, first.Attempts[0].Reason, first.Attempts[0].EndedAt = berth.AttemptRunning, "", time.Time{}
	commit(t, s, store.Batch{Jobs: []berth.Job{first}})
	equal(t, "job with one running attempt", getJob(t, s, j.ID), stored(first, j.Seq, j.CreatedAt, false))

	// The attempt ends and a second starts: upserted by number.
	commit(t, s, store.Batch{Jobs: []berth.Job{r}})
	equal(t, "job with two attempts", getJob(t, s, j.ID), stored(r, j.Seq, j.CreatedAt, false))

	// Upserted, not written whole: an attempt the batch does not list
	// stays.
	last := r
	last.Attempts = r.Attempts[1:]
	last.Attempts[0].Cost = 42
	commit(t, s, store.Batch{Jobs: []berth.Job{last}})
	want := r
	want.Attempts = []berth.Attempt{r.Attempts[0], last.Attempts[0]}
	equal(t, "job after a commit of its last attempt", getJob(t, s, j.ID), stored(want, j.Seq, j.CreatedAt, false))
}

// testCommitSpecFixed: a commit writes a job's run state; what its
// submission fixed (pool, name, labels, then, key, ...) stays as stored,
// whatever the batch's copy says, and so do the labels' matches.
func testCommitSpecFixed(t *testing.T, s store.Store) {
	j := create(t, s, newJob("job-1"))
	w := ran(j, "cl-1", "cl-2")
	changed := w
	changed.Pool, changed.Name, changed.Priority, changed.Affinity, changed.AffinityRequired = "other", "renamed", 7, "elsewhere", !j.AffinityRequired
	changed.Retries, changed.MaxInfraRetries, changed.Timeout, changed.Resume = 9, 9, berth.Duration(time.Minute), berth.ResumeUnfinished
	changed.IdempotencyKey, changed.ExecutionRoleArn = "another key", "arn:aws:iam::123456789012:role/other"
	changed.Labels = map[string]string{"dag_id": "weekly"}
	changed.Then = []berth.Hint{{Pool: "small", Jobs: 2}}
	commit(t, s, store.Batch{Jobs: []berth.Job{changed}})
	equal(t, "job", getJob(t, s, j.ID), stored(w, j.Seq, j.CreatedAt, false))
	for labels, want := range map[string]int{"weekly": 0, j.Labels["dag_id"]: 1} {
		jobs, _, err := s.ListJobs(t.Context(), store.JobFilter{Labels: map[string]string{"dag_id": labels}})
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) != want {
			t.Errorf("ListJobs(dag_id %s): %d jobs, want %d", labels, len(jobs), want)
		}
	}
	again := newJob("job-again")
	again.IdempotencyKey = j.IdempotencyKey
	if got, created, err := s.CreateJob(t.Context(), again); err != nil || created || got.ID != j.ID {
		t.Errorf("CreateJob with the job's key: %s, created %v, %v; want %s", got.ID, created, err, j.ID)
	}
}

// testCommitStarted: a job with attempts has started. A creation or a
// commit of one without a StartedAt is refused and writes nothing, and a
// commit that gives none keeps the start stored, and the attempts with it.
func testCommitStarted(t *testing.T, s store.Store) {
	ctx := t.Context()
	bad := ran(newJob("job-bad"), "cl-1", "cl-2")
	bad.StartedAt = time.Time{}
	if _, _, err := s.CreateJob(ctx, bad); !errors.Is(err, berth.ErrInvalid) {
		t.Errorf("CreateJob of a job with attempts that never started = %v, want ErrInvalid", err)
	}
	if _, err := s.GetJob(ctx, bad.ID); !errors.Is(err, berth.ErrNotFound) {
		t.Errorf("GetJob of the refused job = %v, want ErrNotFound", err)
	}
	j := create(t, s, newJob("job-1"))
	w := ran(j, "cl-1", "cl-2")
	noStart := w
	noStart.StartedAt = time.Time{}
	if err := s.Commit(ctx, store.Batch{Jobs: []berth.Job{noStart}}); !errors.Is(err, berth.ErrInvalid) {
		t.Errorf("Commit of attempts without a start = %v, want ErrInvalid", err)
	}
	equal(t, "job after the refused commit", getJob(t, s, j.ID), j)
	commit(t, s, store.Batch{Jobs: []berth.Job{w}})
	again := w
	again.StartedAt, again.Attempts = time.Time{}, nil
	commit(t, s, store.Batch{Jobs: []berth.Job{again}})
	equal(t, "job after a commit that gave no start", getJob(t, s, j.ID), stored(w, j.Seq, j.CreatedAt, false))
}

// testCommitManyRows: a batch larger than any one statement of a store
// (the SQLite store writes rows 64, 16, 4 and 1 at a time) keeps every
// attempt and every event, the events in the batch's order, and an
// attempt listed twice ends as its last copy.
func testCommitManyRows(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 87 // 64 + 16 + 4 + 3 × 1
	var b store.Batch
	for i := range n {
		j := create(t, s, newJob(fmt.Sprintf("job-%03d", i)))
		w := ran(j, "cl-1", "cl-2")
		b.Jobs = append(b.Jobs, w)
		b.Events = append(b.Events, berth.Event{At: at(i), JobID: j.ID, Kind: "placed", Message: strconv.Itoa(i)})
	}
	last := &b.Jobs[n-1]
	again := last.Attempts[1]
	again.Cost = 42
	last.Attempts = append(last.Attempts, again)
	commit(t, s, b)
	for i, w := range b.Jobs {
		got := getJob(t, s, w.ID)
		if len(got.Attempts) != 2 {
			t.Fatalf("job %s has %d attempts, want 2", w.ID, len(got.Attempts))
		}
		if want := w.Attempts[len(w.Attempts)-1].Cost; i == n-1 && got.Attempts[1].Cost != want {
			t.Errorf("the attempt listed twice costs %v, want its last copy's %v", got.Attempts[1].Cost, want)
		}
	}
	evs, err := s.ListEvents(ctx, store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, ev := range evs {
		if ev.Kind == "placed" {
			msgs = append(msgs, ev.Message)
		}
	}
	if len(msgs) != n {
		t.Fatalf("%d events, want %d", len(msgs), n)
	}
	for i, m := range msgs {
		if m != strconv.Itoa(i) {
			t.Fatalf("event %d is %q, want %d: %v", i, m, i, msgs)
		}
	}
}

func testCommitUpserts(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := newCluster("cl-1", "spark", berth.ClusterStarting, at(1))
	c.ProviderID, c.ReadyAt, c.IdleSince, c.EndedAt, c.Reason, c.Capacity = "", time.Time{}, time.Time{}, time.Time{}, "", false
	commit(t, s, store.Batch{
		Clusters: []berth.Cluster{c},
		Pools:    []berth.PoolState{{Pool: "spark", CapacityFailures: 1, FirstFailureAt: at(1)}},
		Affinity: map[string]string{"k1": "cl-1", "k2": "cl-1"},
	})
	c2 := newCluster("cl-1", "spark", berth.ClusterDraining, at(1))
	pool := berth.PoolState{Pool: "spark", FallbackUntil: at(9)}
	commit(t, s, store.Batch{
		Clusters: []berth.Cluster{c2},
		Pools:    []berth.PoolState{pool},
		Affinity: map[string]string{"k1": "cl-2"},
	})
	got, err := s.GetCluster(ctx, "cl-1")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "cluster after upsert", derivedZero(got), derivedZero(c2))
	st, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "pool state after upsert", st.Pools, []berth.PoolState{pool})
	equal(t, "affinity after upsert", st.Affinity, map[string]string{"k1": "cl-2", "k2": "cl-1"})
}

func testLoad(t *testing.T, s store.Store) {
	ctx := t.Context()
	var live []berth.Job
	var last berth.Job
	for i, state := range []berth.JobState{berth.JobQueued, berth.JobRunning, berth.JobSucceeded, berth.JobFailed, berth.JobCancelled, berth.JobQueued} {
		j := create(t, s, newJob(jobID(i)))
		last = j
		if state != berth.JobQueued {
			w := ran(j, "cl-starting", "cl-ready")
			w.State = state
			commit(t, s, store.Batch{Jobs: []berth.Job{w}})
			j = stored(w, j.Seq, j.CreatedAt, false)
		}
		if !state.Terminal() {
			live = append(live, j)
		}
	}
	var liveClusters []berth.Cluster
	for i, state := range berth.ClusterStates {
		c := newCluster("cl-"+string(state), "spark", state, at(i))
		commit(t, s, store.Batch{Clusters: []berth.Cluster{c}})
		if !state.Terminal() {
			liveClusters = append(liveClusters, c)
		}
	}
	commit(t, s, store.Batch{
		Pools:    []berth.PoolState{{Pool: "spark", CapacityFailures: 1, FirstFailureAt: at(1)}},
		Affinity: map[string]string{"a": "cl-starting", "b": "cl-ready"},
	})
	pool := berth.PoolState{Pool: "spark", FallbackUntil: at(50)}
	commit(t, s, store.Batch{
		Pools:    []berth.PoolState{pool, {Pool: "small"}},
		Affinity: map[string]string{"a": "cl-draining"},
	})

	st, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(st.Jobs, func(a, b int) bool { return st.Jobs[a].Seq < st.Jobs[b].Seq })
	equal(t, "live jobs", st.Jobs, live)
	sort.Slice(st.Clusters, func(a, b int) bool { return st.Clusters[a].CreatedAt.Before(st.Clusters[b].CreatedAt) })
	equal(t, "live clusters", derivedZero(st.Clusters...), derivedZero(liveClusters...))
	sort.Slice(st.Pools, func(a, b int) bool { return st.Pools[a].Pool < st.Pools[b].Pool })
	equal(t, "pools", st.Pools, []berth.PoolState{{Pool: "small"}, pool})
	equal(t, "affinity", st.Affinity, map[string]string{"a": "cl-draining", "b": "cl-ready"})
	if st.MaxSeq != last.Seq {
		t.Errorf("MaxSeq %d, want %d", st.MaxSeq, last.Seq)
	}
}

// A live job that is nothing but its place in its queue comes back as
// that place alone; every other live job comes back whole.
func testLoadDormant(t *testing.T, s store.Store) {
	ctx := t.Context()
	bare := func(id string, prio int) berth.Job {
		j := newJob(id)
		j.Affinity, j.AffinityRequired, j.Priority = "", false, prio
		return j
	}
	first := create(t, s, bare("job-dormant-1", 3))
	affinity := create(t, s, newJob("job-affinity"))
	later := bare("job-later", 0)
	later.NotBefore = at(40)
	later = create(t, s, later)
	cancel := create(t, s, bare("job-cancel", 0))
	if _, err := s.RequestCancel(ctx, cancel.ID, at(5)); err != nil {
		t.Fatal(err)
	}
	cancel.CancelRequested = true
	started := create(t, s, bare("job-started", 0))
	w := ran(started, "cl-1", "cl-2")
	w.State = berth.JobQueued
	commit(t, s, store.Batch{Jobs: []berth.Job{w}})
	w = stored(w, started.Seq, started.CreatedAt, false)
	last := create(t, s, bare("job-dormant-2", -1))

	st, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "dormant jobs", st.Dormant, []berth.DormantJob{
		{ID: first.ID, Pool: first.Pool, Priority: 3, CreatedAt: first.CreatedAt},
		{ID: last.ID, Pool: last.Pool, Priority: -1, CreatedAt: last.CreatedAt},
	})
	sort.Slice(st.Jobs, func(a, b int) bool { return st.Jobs[a].Seq < st.Jobs[b].Seq })
	equal(t, "whole jobs", ids(st.Jobs), ids([]berth.Job{affinity, later, cancel, w}))
	equal(t, "the started job", st.Jobs[3], w)
	for _, j := range st.Jobs {
		if j.Dormant() {
			t.Errorf("Load gave dormant job %s whole", j.ID)
		}
	}
}

// GetJobs reads jobs whole, with their attempts, in the order asked.
func testGetJobs(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := create(t, s, newJob("job-a"))
	b := create(t, s, newJob("job-b"))
	w := ran(b, "cl-1", "cl-2")
	commit(t, s, store.Batch{Jobs: []berth.Job{w}})
	w = stored(w, b.Seq, b.CreatedAt, false)
	got, err := s.GetJobs(ctx, []string{"job-none", w.ID, a.ID, w.ID})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "GetJobs", got, []berth.Job{w, a})
	got, err = s.GetJobs(ctx, nil)
	if err != nil || len(got) != 0 {
		t.Errorf("GetJobs of no ids: %v, %v", got, err)
	}
}

func testLoadEmpty(t *testing.T, s store.Store) {
	st, err := s.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Jobs)+len(st.Clusters)+len(st.Pools)+len(st.Affinity) != 0 || st.MaxSeq != 0 {
		t.Errorf("Load of an empty store: %+v", st)
	}
}

func testJobsAfter(t *testing.T, s store.Store) {
	ctx := t.Context()
	var jobs []berth.Job
	for i := range 5 {
		jobs = append(jobs, create(t, s, newJob(jobID(i))))
	}
	// An ended job is still listed: JobsAfter is about submission order.
	w := ran(jobs[0], "cl-1", "cl-2")
	w.State = berth.JobSucceeded
	commit(t, s, store.Batch{Jobs: []berth.Job{w}})
	jobs[0] = stored(w, jobs[0].Seq, jobs[0].CreatedAt, false)

	cases := []struct {
		name  string
		after int64
		limit int
		want  []berth.Job
	}{
		{"all", 0, 10, jobs},
		{"limited", jobs[1].Seq, 2, jobs[2:4]},
		{"rest", jobs[2].Seq, 10, jobs[3:]},
		{"none after the last", jobs[4].Seq, 10, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.JobsAfter(ctx, c.after, c.limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.want) == 0 && len(got) == 0 {
				return
			}
			equal(t, "JobsAfter", got, c.want)
		})
	}
}

func testGetClusterNotFound(t *testing.T, s store.Store) {
	_, err := s.GetCluster(t.Context(), "cl-missing")
	isErr(t, "GetCluster of an unknown cluster", err, berth.ErrNotFound)
}

func testListClusters(t *testing.T, s store.Store) {
	commit(t, s, store.Batch{Clusters: []berth.Cluster{
		newCluster("cl-b1", "b", berth.ClusterReady, at(1)),
		newCluster("cl-a1", "a", berth.ClusterReady, at(1)),
		newCluster("cl-a2", "a", berth.ClusterDraining, at(0)),
		newCluster("cl-b0", "b", berth.ClusterReady, at(1)),
		newCluster("cl-b9", "b", berth.ClusterTerminated, at(2)),
	}})
	cases := []struct {
		name string
		f    store.ClusterFilter
		want []string
	}{
		{"all, oldest first then by id", store.ClusterFilter{}, []string{"cl-a2", "cl-a1", "cl-b0", "cl-b1", "cl-b9"}},
		{"pool", store.ClusterFilter{Pool: "a"}, []string{"cl-a2", "cl-a1"}},
		{"state", store.ClusterFilter{State: berth.ClusterReady}, []string{"cl-a1", "cl-b0", "cl-b1"}},
		{"pool and state", store.ClusterFilter{Pool: "b", State: berth.ClusterTerminated}, []string{"cl-b9"}},
		{"unknown pool", store.ClusterFilter{Pool: "z"}, []string{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.ListClusters(t.Context(), c.f)
			if err != nil {
				t.Fatal(err)
			}
			equal(t, "clusters", clusterIDs(got), c.want)
		})
	}
}

func testClusterAttempts(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := create(t, s, newJob("job-a"))
	b := create(t, s, newJob("job-b"))
	// job-a: attempt 1 on cl-1 at 10s, attempt 2 on cl-2. job-b: attempt 1
	// on cl-1, earlier, at 5s.
	ra := ran(a, "cl-1", "cl-2")
	rb := ran(b, "cl-1", "cl-3")
	rb.Attempts = rb.Attempts[:1]
	rb.Attempts[0].StartedAt = at(5)
	commit(t, s, store.Batch{Jobs: []berth.Job{ra, rb}})

	got, err := s.ClusterAttempts(ctx, "cl-1")
	if err != nil {
		t.Fatal(err)
	}
	wantB, wantA := rb.Attempts[0], ra.Attempts[0]
	wantB.JobID, wantA.JobID = b.ID, a.ID
	equal(t, "attempts on cl-1", got, []berth.Attempt{wantB, wantA})

	got, err = s.ClusterAttempts(ctx, "cl-2")
	if err != nil {
		t.Fatal(err)
	}
	want2 := ra.Attempts[1]
	want2.JobID = a.ID
	equal(t, "attempts on cl-2", got, []berth.Attempt{want2})

	got, err = s.ClusterAttempts(ctx, "cl-none")
	if err != nil || len(got) != 0 {
		t.Errorf("attempts on an unknown cluster: %+v, %v; want none", got, err)
	}
}

func testListEvents(t *testing.T, s store.Store) {
	events := []berth.Event{
		{At: at(1), JobID: "job-a", ClusterID: "cl-1", Kind: "placed", Message: "1"},
		{At: at(2), JobID: "job-a", Kind: "step", Message: "2"},
		{At: at(3), ClusterID: "cl-1", Kind: "ready", Message: "3"},
		{At: at(4), JobID: "job-b", ClusterID: "cl-2", Kind: "placed", Message: "4"},
	}
	// Two batches: Seq keeps growing across them.
	commit(t, s, store.Batch{Events: events[:2]})
	commit(t, s, store.Batch{Events: events[2:]})
	cases := []struct {
		name string
		f    store.EventFilter
		want []string // messages
	}{
		{"all", store.EventFilter{}, []string{"1", "2", "3", "4"}},
		{"job", store.EventFilter{JobID: "job-a"}, []string{"1", "2"}},
		{"cluster", store.EventFilter{ClusterID: "cl-1"}, []string{"1", "3"}},
		{"job and cluster", store.EventFilter{JobID: "job-a", ClusterID: "cl-1"}, []string{"1"}},
		{"limit", store.EventFilter{Limit: 3}, []string{"1", "2", "3"}},
		{"limit within a filter", store.EventFilter{ClusterID: "cl-1", Limit: 1}, []string{"1"}},
		{"unknown job", store.EventFilter{JobID: "job-z"}, []string{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.ListEvents(t.Context(), c.f)
			if err != nil {
				t.Fatal(err)
			}
			msgs := []string{}
			for i, ev := range got {
				msgs = append(msgs, ev.Message)
				if i > 0 && ev.Seq <= got[i-1].Seq {
					t.Errorf("event %d: Seq %d after %d", i, ev.Seq, got[i-1].Seq)
				}
			}
			equal(t, "events", msgs, c.want)
		})
	}
}

// testConcurrent mixes submissions, loop commits and reads, for the race
// detector and for drivers that would deadlock or fail with "busy".
func testConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const writers, perWriter = 4, 10
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, fmt.Sprintf(format, args...))
	}
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				j := newJob(jobID(w*perWriter + i))
				got, _, err := s.CreateJob(ctx, j)
				if err != nil {
					fail("CreateJob: %v", err)
					return
				}
				got.State = berth.JobRunning
				if err := s.Commit(ctx, store.Batch{Jobs: []berth.Job{got}, Events: []berth.Event{{At: at(i), JobID: got.ID, Kind: "placed"}}}); err != nil {
					fail("Commit: %v", err)
					return
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for range perWriter {
				if _, _, err := s.ListJobs(ctx, store.JobFilter{State: berth.JobRunning}); err != nil {
					fail("ListJobs: %v", err)
					return
				}
				if _, err := s.Load(ctx); err != nil {
					fail("Load: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(strings.Join(errs, "\n"))
	}
	jobs, _, err := s.ListJobs(ctx, store.JobFilter{State: berth.JobRunning, Limit: store.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != writers*perWriter {
		t.Errorf("%d running jobs, want %d", len(jobs), writers*perWriter)
	}
	if evs := loopEvents(t, s, store.EventFilter{}); len(evs) != writers*perWriter {
		t.Errorf("%d events of the loop, want %d", len(evs), writers*perWriter)
	}
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// testLockExclusive: one holder at a time, whichever store asks, and the
// right passes on once it is released.
func testLockExclusive(t *testing.T, open func() store.Store) {
	ctx := t.Context()
	first, second := open(), open()
	release, err := first.Lock(ctx)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	for _, c := range []struct {
		name string
		s    store.Store
	}{
		{"another store on the database", second},
		{"the holder again", first},
	} {
		rel, err := c.s.Lock(ctx)
		if !isHeld(err) {
			t.Errorf("Lock by %s while it is held: error %v, want berth.ErrConflict saying %q", c.name, err, heldText)
		}
		if err == nil {
			_ = rel()
		}
	}
	if err := release(); err != nil {
		t.Fatalf("release: %v", err)
	}
	if err := release(); err != nil {
		t.Errorf("second release: %v", err)
	}
	release, err = second.Lock(ctx)
	if err != nil {
		t.Fatalf("Lock by another store after release: %v", err)
	}
	if rel, err := first.Lock(ctx); !isHeld(err) {
		t.Errorf("Lock by the first store once the other holds it: error %v, want berth.ErrConflict", err)
		if err == nil {
			_ = rel()
		}
	}
	if err := release(); err != nil {
		t.Errorf("release: %v", err)
	}
}

// testLockClose: closing the holder gives the lock up, as a server that
// stops without releasing it would.
func testLockClose(t *testing.T, open func() store.Store) {
	ctx := t.Context()
	first, second := open(), open()
	if _, err := first.Lock(ctx); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	release, err := second.Lock(ctx)
	if err != nil {
		t.Fatalf("Lock after the holder closed: %v", err)
	}
	if err := release(); err != nil {
		t.Errorf("release: %v", err)
	}
	if rel, err := first.Lock(ctx); err == nil {
		_ = rel()
		t.Error("Lock on a closed store succeeded")
	}
}

// heldText is what a Lock that lost must say.
const heldText = "another berth server holds the store"

func isHeld(err error) bool {
	return errors.Is(err, berth.ErrConflict) && strings.Contains(err.Error(), heldText)
}

func isNotFound(err error) bool { return errors.Is(err, berth.ErrNotFound) }

// testInstallation: the first candidate is kept, by every store over the
// database and across reopening.
func testInstallation(t *testing.T, open func() store.Store) {
	ctx := t.Context()
	first := open()
	id, err := first.Installation(ctx, "inst-a")
	if err != nil || id != "inst-a" {
		t.Fatalf("first Installation = %q, %v; want inst-a", id, err)
	}
	first.Close()
	second := open()
	defer second.Close()
	if id, err := second.Installation(ctx, "inst-b"); err != nil || id != "inst-a" {
		t.Errorf("Installation after reopening = %q, %v; want the first one, inst-a", id, err)
	}
}
