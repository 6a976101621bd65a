package sqlite

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/store"
	"github.com/berthhq/berth/internal/store/storetest"
	"github.com/berthhq/berth/internal/wait"

	"modernc.org/sqlite"
)

func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// openAt opens the store at path and closes it when the test ends.
func openAt(tb testing.TB, path string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), path, testLogger(tb))
	if err != nil {
		tb.Fatalf("Open(%s): %v", path, err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

func openTemp(tb testing.TB) *Store {
	return openAt(tb, filepath.Join(tb.TempDir(), "berth.db"))
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) func() store.Store {
		path := filepath.Join(t.TempDir(), "berth.db")
		return func() store.Store { return openAt(t, path) }
	})
}

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 987654321, time.UTC)

func job(id string) berth.Job {
	return berth.Job{
		ID: id, Pool: "small", State: berth.JobQueued, Resume: berth.ResumeFromStart, CreatedAt: t0,
		MaxInfraRetries: berth.DefaultInfraRetry, IdempotencyKey: "key/" + id,
		Labels: map[string]string{"dag_id": "d"},
		Steps:  []berth.JobStep{{Step: berth.Step{Name: "s", Args: []string{"true"}}, State: berth.StepPending}},
	}
}

// TestReopen is the durability check: what was acknowledged is there after
// the store is closed and the file opened again.
func TestReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "berth.db")
	s, err := Open(ctx, path, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	var jobs []berth.Job
	for i := range 4 {
		j, _, err := s.CreateJob(ctx, job(fmt.Sprintf("job-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j)
	}
	run := jobs[1]
	run.State, run.ClusterID, run.StartedAt = berth.JobRunning, "cl-1", t0.Add(time.Second)
	run.Attempts = []berth.Attempt{{N: 1, ClusterID: "cl-1", State: berth.AttemptRunning, StartedAt: t0.Add(time.Second), Steps: []berth.AttemptStep{{Index: 0, State: berth.StepRunning}}}}
	done := jobs[2]
	done.State, done.EndedAt = berth.JobSucceeded, t0.Add(2*time.Second)
	err = s.Commit(ctx, store.Batch{
		Jobs:     []berth.Job{run, done},
		Clusters: []berth.Cluster{{ID: "cl-1", Pool: "small", State: berth.ClusterReady, Slots: 2, CreatedAt: t0}},
		Pools:    []berth.PoolState{{Pool: "small", CapacityFailures: 1, FirstFailureAt: t0}},
		Affinity: map[string]string{"a": "cl-1"},
		Events:   []berth.Event{{At: t0, JobID: run.ID, ClusterID: "cl-1", Kind: "placed"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RequestCancel(ctx, jobs[3].ID, t0); err != nil {
		t.Fatal(err)
	}
	before, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eventsBefore, err := s.ListEvents(ctx, store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openAt(t, path)
	after, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(after, before) {
		t.Errorf("Load after reopening:\n got %+v\nwant %+v", after, before)
	}
	if n := len(after.Jobs) + len(after.Dormant); n != 3 || after.MaxSeq != jobs[3].Seq {
		t.Errorf("Load after reopening: %d live jobs, MaxSeq %d; want 3 and %d", n, after.MaxSeq, jobs[3].Seq)
	}
	eventsAfter, err := s.ListEvents(ctx, store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	// Four queued, one placed, one cancel request.
	if !reflect.DeepEqual(eventsAfter, eventsBefore) || len(eventsAfter) != 6 {
		t.Errorf("events after reopening:\n got %+v\nwant %+v", eventsAfter, eventsBefore)
	}
	got, err := s.GetJob(ctx, done.ID)
	if err != nil || got.State != berth.JobSucceeded {
		t.Errorf("ended job after reopening: %+v, %v", got, err)
	}
	// Idempotency survives too, and Seq goes on from where it was.
	dup := job("job-0-again")
	dup.IdempotencyKey = jobs[0].IdempotencyKey
	again, created, err := s.CreateJob(ctx, dup)
	if err != nil || created || again.ID != jobs[0].ID {
		t.Errorf("CreateJob with a stored key: job %s, created %v, error %v; want %s", again.ID, created, err, jobs[0].ID)
	}
	j := job("job-new")
	j.IdempotencyKey = ""
	fresh, _, err := s.CreateJob(ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Seq <= jobs[3].Seq {
		t.Errorf("Seq after reopening %d, want above %d", fresh.Seq, jobs[3].Seq)
	}
}

// TestCloseDuringSubmissions closes the store under a stream of
// submissions: each one either fails or was acknowledged, and every
// acknowledged job is in the file when it is opened again.
func TestCloseDuringSubmissions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "berth.db")
	s, err := Open(t.Context(), path, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	const workers, perWorker = 8, 200
	var (
		wg    sync.WaitGroup
		acked = make([][]string, workers)
		count atomic.Int64
	)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				j := job(fmt.Sprintf("job-%d-%d", w, i))
				if _, _, err := s.CreateJob(t.Context(), j); err != nil {
					if !errors.Is(err, berth.ErrUnavailable) {
						t.Errorf("CreateJob while closing: %v, want berth.ErrUnavailable", err)
					}
					return
				}
				acked[w] = append(acked[w], j.ID)
				count.Add(1)
			}
		})
	}
	wait.For(t, 30*time.Second, "every writer to have a job acknowledged", func() bool { return count.Load() >= workers })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	s = openAt(t, path)
	n := 0
	for _, ids := range acked {
		for _, id := range ids {
			n++
			if _, err := s.GetJob(t.Context(), id); err != nil {
				t.Errorf("acknowledged job %s after reopening: %v", id, err)
			}
		}
	}
	if n == 0 {
		t.Error("no submission was acknowledged before Close")
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no migrations embedded")
	}
	path := filepath.Join(t.TempDir(), "berth.db")
	applied := func() []string {
		t.Helper()
		s, err := Open(t.Context(), path, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		rows, err := s.read.QueryContext(t.Context(), `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var (
				v       int
				name, a string
			)
			if err := rows.Scan(&v, &name, &a); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%d %s %s", v, name, a))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	first := applied()
	if len(first) != len(ms) {
		t.Fatalf("%d migrations recorded, want %d: %v", len(first), len(ms), first)
	}
	for i, m := range ms {
		if !strings.HasPrefix(first[i], fmt.Sprintf("%d %s ", m.version, m.name)) {
			t.Errorf("migration %d recorded as %q, want version %d %s", i, first[i], m.version, m.name)
		}
	}
	// Reopening applies nothing: the same rows, applied_at unchanged.
	second := applied()
	if !reflect.DeepEqual(second, first) {
		t.Errorf("reopening changed schema_migrations:\n got %v\nwant %v", second, first)
	}
}

// TestMigrationExecutionRole: a database from before migration 5 keeps its
// jobs, and they come back with no execution role.
func TestMigrationExecutionRole(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "berth.db")
	job := berth.Job{ID: "job-old", Pool: "p", State: berth.JobQueued, Resume: berth.ResumeFromStart, CreatedAt: time.Unix(1, 0).UTC(),
		Steps:            []berth.JobStep{{Step: berth.Step{Args: []string{"true"}}, State: berth.StepPending}},
		ExecutionRoleArn: "arn:aws:iam::123456789012:role/r"}
	s := reopenAt(t, path, 4, job)
	got, err := s.GetJob(ctx, job.ID)
	if err != nil {
		t.Fatalf("GetJob after the migration: %v", err)
	}
	if got.ExecutionRoleArn != "" || got.Pool != "p" {
		t.Errorf("after the migration: pool %q, execution role %q; want p and none", got.Pool, got.ExecutionRoleArn)
	}
}

// TestMigrationThen: a database from before migration 6 keeps its jobs,
// which come back with no then list, and takes new jobs' then lists.
func TestMigrationThen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "berth.db")
	old := berth.Job{ID: "job-old", Pool: "p", State: berth.JobQueued, Resume: berth.ResumeFromStart, CreatedAt: time.Unix(1, 0).UTC(),
		Steps: []berth.JobStep{{Step: berth.Step{Args: []string{"true"}}, State: berth.StepPending}},
		Then:  []berth.Hint{{Pool: "q", Jobs: 2}}}
	s := reopenAt(t, path, 5, old)
	got, err := s.GetJob(ctx, old.ID)
	if err != nil {
		t.Fatalf("GetJob after the migration: %v", err)
	}
	if got.Then != nil || got.Pool != "p" {
		t.Errorf("after the migration: pool %q, then %v; want p and none", got.Pool, got.Then)
	}
	later := old
	later.ID = "job-new"
	if _, _, err := s.CreateJob(ctx, later); err != nil {
		t.Fatalf("CreateJob after the migration: %v", err)
	}
	got, err = s.GetJob(ctx, later.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Then, later.Then) {
		t.Errorf("a job created after the migration: then %v, want %v", got.Then, later.Then)
	}
}

// downgrades takes a database of the latest schema back to the version
// before each migration that added a column: migration v is undone by
// downgrades[v]. Undoing down to a version undoes every later one too.
var downgrades = map[int]string{
	5: `ALTER TABLE jobs DROP COLUMN execution_role_arn`,
	6: `ALTER TABLE jobs DROP COLUMN then_hints`,
}

// reopenAt makes a database at path holding job, takes its schema back to
// version (as an older berth would have left it), and opens it again, so
// that the migrations since run over the job. The store closes when the
// test ends.
func reopenAt(t *testing.T, path string, version int, job berth.Job) *Store {
	t.Helper()
	ctx := t.Context()
	s, err := Open(ctx, path, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	for v := len(ms); v > version; v-- {
		q, ok := downgrades[v]
		if !ok {
			t.Fatalf("no downgrade for migration %d: add it to downgrades", v)
		}
		if _, err := s.write.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := s.write.ExecContext(ctx, `DELETE FROM schema_migrations WHERE version > ?`, version); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, path, testLogger(t))
	if err != nil {
		t.Fatalf("Open of a version %d database: %v", version, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestMigrationsRefuseNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "berth.db")
	s, err := Open(t.Context(), path, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.write.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future.sql')`); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(t.Context(), path, testLogger(t))
	if err == nil {
		s.Close()
		t.Fatal("Open of a database from a newer build succeeded")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Errorf("error %q does not say the schema is newer", err)
	}
}

// TestPragmas checks the settings durability and concurrency rest on.
func TestPragmas(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	cases := []struct {
		db     string
		pragma string
		want   string
	}{
		{"writer", "journal_mode", "wal"},
		{"writer", "synchronous", "2"}, // FULL
		{"writer", "foreign_keys", "1"},
		{"writer", "busy_timeout", fmt.Sprint(busyTimeoutMS)},
		{"reader", "journal_mode", "wal"},
		{"reader", "query_only", "1"},
		{"reader", "busy_timeout", fmt.Sprint(busyTimeoutMS)},
	}
	for _, c := range cases {
		db := s.write
		if c.db == "reader" {
			db = s.read
		}
		var got string
		if err := db.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
			t.Fatalf("%s PRAGMA %s: %v", c.db, c.pragma, err)
		}
		if got != c.want {
			t.Errorf("%s PRAGMA %s = %s, want %s", c.db, c.pragma, got, c.want)
		}
	}
}

// TestReadsDoNotWaitForWriter holds the writer's only connection inside a
// transaction and reads meanwhile: the read must answer (a deadlock would
// hit the deadline) and must not see the uncommitted row.
func TestReadsDoNotWaitForWriter(t *testing.T) {
	s := openTemp(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, _, err := s.CreateJob(ctx, job("job-committed")); err != nil {
		t.Fatal(err)
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'running'`); err != nil {
		t.Fatal(err)
	}
	j, err := s.GetJob(ctx, "job-committed")
	if err != nil {
		t.Fatalf("GetJob while a write is open: %v", err)
	}
	if j.State != berth.JobQueued {
		t.Errorf("read saw an uncommitted state %s", j.State)
	}
	if _, _, err := s.ListJobs(ctx, store.JobFilter{}); err != nil {
		t.Fatalf("ListJobs while a write is open: %v", err)
	}
}

func TestErrors(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	if _, _, err := s.CreateJob(ctx, job("job-1")); err != nil {
		t.Fatal(err)
	}
	dup := job("job-1")
	dup.IdempotencyKey = ""
	_, _, dupErr := s.CreateJob(ctx, dup)

	far := job("job-far")
	far.CreatedAt = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
	_, _, farErr := s.CreateJob(ctx, far)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, cancelErr := s.GetJob(cancelled, "job-1")

	ended := job("job-2")
	ended.IdempotencyKey = ""
	if _, _, err := s.CreateJob(ctx, ended); err != nil {
		t.Fatal(err)
	}
	ended.State, ended.EndedAt = berth.JobSucceeded, t0
	if err := s.Commit(ctx, store.Batch{Jobs: []berth.Job{ended}}); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		err    error
		want   error
		public string // what a user may be told; "" for none
	}{
		{"duplicate id", dupErr, berth.ErrConflict, ""},
		{"time out of range", farErr, berth.ErrInvalid, "time 2300-01-01T00:00:00Z is outside the range the store keeps (1678-2262)"},
		{"cancelled context", cancelErr, context.Canceled, ""},
		{"commit with an empty cluster id", s.Commit(ctx, store.Batch{Clusters: []berth.Cluster{{Pool: "p"}}}), berth.ErrInvalid, ""},
		{"create with an empty id", func() error { _, _, err := s.CreateJob(ctx, berth.Job{}); return err }(), berth.ErrInvalid, ""},
		{"negative event limit", func() error { _, err := s.ListEvents(ctx, store.EventFilter{Limit: -1}); return err }(), berth.ErrInvalid, "limit -1 is negative"},
		{"unknown job", func() error { _, err := s.GetJob(ctx, "job-4242"); return err }(), berth.ErrNotFound, "job job-4242 not found"},
		{"unknown cluster", func() error { _, err := s.GetCluster(ctx, "cl-4242"); return err }(), berth.ErrNotFound, "cluster cl-4242 not found"},
		{"cancel of an unknown job", func() error { _, err := s.RequestCancel(ctx, "job-4242", t0); return err }(), berth.ErrNotFound, "job job-4242 not found"},
		{"cancel of an ended job", func() error { _, err := s.RequestCancel(ctx, "job-2", t0); return err }(), berth.ErrConflict, "job job-2 has already ended (succeeded)"},
		{"bad cursor", func() error { _, _, err := s.ListJobs(ctx, store.JobFilter{Cursor: "x"}); return err }(), berth.ErrInvalid, `cursor "x" is not one a listing of jobs handed out`},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: error %v, want one wrapping %v", c.name, c.err, c.want)
		}
		if got := berth.Public(c.err); got != c.public {
			t.Errorf("%s: public message %q, want %q", c.name, got, c.public)
		}
		if c.public != "" && !strings.HasPrefix(c.err.Error(), "sqlite: ") {
			t.Errorf("%s: %q does not say, for the log, what the store was doing", c.name, c.err)
		}
		var se *sqlite.Error
		if errors.As(c.err, &se) {
			t.Errorf("%s: the driver's error type leaks: %v", c.name, c.err)
		}
	}
}

// TestCommitFailsLate complements the suite's atomicity test, whose unknown
// job this driver catches before writing anything: here the batch fails on
// its last row, after the others were written in the transaction.
func TestCommitFailsLate(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	j, _, err := s.CreateJob(ctx, job("job-1"))
	if err != nil {
		t.Fatal(err)
	}
	moved := j
	moved.State = berth.JobRunning
	err = s.Commit(ctx, store.Batch{
		Jobs:     []berth.Job{moved},
		Clusters: []berth.Cluster{{ID: "cl-1", Pool: "small", State: berth.ClusterReady, CreatedAt: t0}},
		Pools:    []berth.PoolState{{Pool: "small", CapacityFailures: 1}},
		Affinity: map[string]string{"a": "cl-1"},
		Events: []berth.Event{
			{At: t0, JobID: j.ID, Kind: "placed"},
			{At: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), Kind: "too late to store"},
		},
	})
	if !errors.Is(err, berth.ErrInvalid) {
		t.Fatalf("Commit with an out-of-range time: %v, want berth.ErrInvalid", err)
	}
	st, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := s.ListEvents(ctx, store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	// The one event is the job's queued one, written with it.
	// The job never started: it is dormant.
	if len(st.Jobs) != 0 || len(st.Dormant) != 1 || len(st.Clusters)+len(st.Pools)+len(st.Affinity)+len(evs) != 1 {
		t.Errorf("a failed batch was partly written: %+v, events %+v", st, evs)
	}
}

// TestCreateGroup writes one group of submissions directly, as the loop
// does when they arrive together: each is answered on its own, a failing
// one is undone alone, and a later one sees an earlier one's key.
func TestCreateGroup(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	gone, cancel := context.WithCancel(ctx)
	cancel()

	first := job("job-a")
	sameID := job("job-a")
	sameID.IdempotencyKey, sameID.Pool = "key/other", "other"
	sameKey := job("job-c")
	sameKey.IdempotencyKey = first.IdempotencyKey
	plain := job("job-d")
	late := job("job-e")
	// Its labels fail after its row was inserted: the savepoint must take
	// the row back.
	halfway := job("job-f")

	cases := []struct {
		ctx     context.Context
		job     berth.Job
		created bool
		wantID  string // of the job returned
		wantErr error
	}{
		{ctx, first, true, "job-a", nil},
		{ctx, sameID, false, "", berth.ErrConflict},
		{ctx, sameKey, false, "job-a", nil},
		{ctx, plain, true, "job-d", nil},
		{gone, late, false, "", context.Canceled},
		{ctx, halfway, false, "", berth.ErrConflict},
	}
	var group []*createReq
	for _, c := range cases {
		r, err := newCreateReq(c.ctx, []berth.Job{c.job})
		if err != nil {
			t.Fatal(err)
		}
		if c.job.ID == halfway.ID {
			r.jobs[0].labels = `{"k": "1", "k": "2"}`
		}
		group = append(group, r)
	}
	s.createGroup(group)
	var lastSeq int64
	for i, c := range cases {
		res := <-group[i].done
		if c.wantErr != nil {
			if !errors.Is(res.err, c.wantErr) {
				t.Errorf("submission %d (%s): error %v, want %v", i, c.job.ID, res.err, c.wantErr)
			}
			continue
		}
		if res.err != nil || len(res.jobs) != 1 || res.jobs[0].Created != c.created {
			t.Errorf("submission %d (%s): %+v, error %v; want created %v", i, c.job.ID, res.jobs, res.err, c.created)
			continue
		}
		got := res.jobs[0].Job
		if c.created {
			if got.Seq <= lastSeq {
				t.Errorf("submission %d: Seq %d after %d", i, got.Seq, lastSeq)
			}
			lastSeq = got.Seq
		} else if got.ID != c.wantID {
			t.Errorf("submission %d: returned job %s, want %s", i, got.ID, c.wantID)
		}
	}

	jobs, _, err := s.ListJobs(ctx, store.JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, j := range jobs {
		got = append(got, j.ID+"/"+j.Pool)
	}
	if want := []string{"job-d/small", "job-a/small"}; !reflect.DeepEqual(got, want) {
		t.Errorf("jobs stored %v, want %v", got, want)
	}
}

// TestCreateMerged: a group whose calls all succeed is written as one
// call, each call still answered with its own jobs in its order (a later
// call's key held by an earlier call's job is a hit on it, judged by the
// later call); a group with a failing call writes nothing merged and
// answers no one, and createGroup then fails that call alone.
func TestCreateMerged(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	first, plain := job("job-a"), job("job-b")
	plain.IdempotencyKey, plain.Labels = "", nil
	sameKey := job("job-c")
	sameKey.IdempotencyKey = first.IdempotencyKey
	var judged []string
	var group []*createReq
	for _, jobs := range [][]berth.Job{{first}, {plain, sameKey}, {job("job-d")}} {
		r, err := newCreateReq(ctx, jobs)
		if err != nil {
			t.Fatal(err)
		}
		r.held = func(i int, holder *berth.Job) error {
			judged = append(judged, fmt.Sprintf("%s held by %s", jobs[i].ID, holder.ID))
			return nil
		}
		group = append(group, r)
	}
	if !s.createMerged(ctx, group) {
		t.Fatal("a group of good calls was not merged")
	}
	want := [][]string{{"job-a+"}, {"job-b+", "job-a"}, {"job-d+"}}
	var lastSeq int64
	for k, r := range group {
		res := <-r.done
		if res.err != nil || len(res.jobs) != len(want[k]) {
			t.Fatalf("call %d: %+v, error %v; want %v", k, res.jobs, res.err, want[k])
		}
		for i, sub := range res.jobs {
			if !sub.Created {
				if got := sub.Job.ID; got != want[k][i] {
					t.Errorf("call %d job %d: a hit on %s, want %s", k, i, got, want[k][i])
				}
				continue
			}
			if want[k][i] != r.jobs[i].job.ID+"+" {
				t.Errorf("call %d job %d: created %s, want %s", k, i, r.jobs[i].job.ID, want[k][i])
			}
			if sub.Job.Seq <= lastSeq {
				t.Errorf("call %d job %d: Seq %d after %d", k, i, sub.Job.Seq, lastSeq)
			}
			lastSeq = sub.Job.Seq
		}
	}
	if w := []string{"job-c held by job-a"}; !reflect.DeepEqual(judged, w) {
		t.Errorf("judged %v, want %v", judged, w)
	}
	if d, err := s.GetJob(ctx, "job-d"); err != nil || d.Labels["dag_id"] != "d" {
		t.Errorf("job-d stored as %+v, %v; want its labels", d, err)
	}

	// A repeated id fails the merged write whole: nothing of it stays.
	var bad []*createReq
	for _, j := range []berth.Job{job("job-x"), job("job-a")} {
		j.IdempotencyKey = ""
		r, err := newCreateReq(ctx, []berth.Job{j})
		if err != nil {
			t.Fatal(err)
		}
		bad = append(bad, r)
	}
	if s.createMerged(ctx, bad) {
		t.Fatal("a group with a repeated id was merged")
	}
	for k, r := range bad {
		if len(r.done) != 0 {
			t.Errorf("call %d answered by a merge that failed", k)
		}
	}
	if _, err := s.GetJob(ctx, "job-x"); !errors.Is(err, berth.ErrNotFound) {
		t.Errorf("job-x after a failed merge: %v, want not found", err)
	}
	s.createGroup(bad)
	if res := <-bad[0].done; res.err != nil || !res.jobs[0].Created {
		t.Errorf("job-x alone: %+v, %v", res.jobs, res.err)
	}
	if res := <-bad[1].done; !errors.Is(res.err, berth.ErrConflict) {
		t.Errorf("repeated job-a alone: %v, want a conflict", res.err)
	}
}

func TestParseDSN(t *testing.T) {
	cases := []struct {
		dsn     string
		want    string
		wantErr bool
	}{
		{"sqlite://berth.db", "berth.db", false},
		{"sqlite:///var/lib/berth/berth.db", "/var/lib/berth/berth.db", false},
		{"sqlite://./data/berth.db", "./data/berth.db", false},
		{"sqlite://data dir/berth.db", "data dir/berth.db", false},
		{"sqlite://", "", true},
		{"sqlite://:memory:", "", true},
		{"sqlite://berth.db?mode=ro", "", true},
		{"sqlite://file:berth.db", "", true},
		{"postgres://localhost/berth", "", true},
		{"berth.db", "", true},
		{"", "", true},
	}
	for _, c := range cases {
		got, err := ParseDSN(c.dsn)
		if c.wantErr {
			if !errors.Is(err, berth.ErrInvalid) {
				t.Errorf("ParseDSN(%q) = %q, %v; want an error wrapping berth.ErrInvalid", c.dsn, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseDSN(%q) = %q, %v; want %q", c.dsn, got, err, c.want)
		}
	}
}

func TestOpenFails(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		path string
	}{
		{"empty path", ""},
		{"missing directory", filepath.Join(dir, "missing", "berth.db")},
		{"a directory", dir},
	}
	for _, c := range cases {
		s, err := Open(t.Context(), c.path, testLogger(t))
		if err == nil {
			s.Close()
			t.Errorf("%s: Open(%q) succeeded", c.name, c.path)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Errorf("Open created a directory: %v", err)
	}
}

func TestCloseTwice(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "berth.db"), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Ping(t.Context()); err == nil {
		t.Error("Ping after Close succeeded")
	}
	if _, _, err := s.CreateJob(t.Context(), job("job-late")); !errors.Is(err, berth.ErrUnavailable) {
		t.Errorf("CreateJob after Close: %v, want berth.ErrUnavailable", err)
	}
}

func BenchmarkCreateJob(b *testing.B) {
	storetest.BenchCreateJob(b, openAt(b, filepath.Join(b.TempDir(), "berth.db")))
}

// BenchmarkCommit commits one loop pass that moves 100 jobs along.
func BenchmarkCommit(b *testing.B) {
	storetest.BenchCommit(b, openAt(b, filepath.Join(b.TempDir(), "berth.db")))
}

// BenchmarkCreateJobParallel submits from many goroutines at once, as an
// API under load does.
func BenchmarkCreateJobParallel(b *testing.B) {
	s := openAt(b, filepath.Join(b.TempDir(), "berth.db"))
	ctx := b.Context()
	var n atomic.Int64
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			j := job(fmt.Sprintf("job-%d", i))
			j.IdempotencyKey = fmt.Sprintf("bench/%d", i)
			if _, _, err := s.CreateJob(ctx, j); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// The log is checkpointed into the database file while the store runs,
// by the store's own checkpointer: the commits that write it do not.
func TestCheckpointsInTheBackground(t *testing.T) {
	path := filepath.Join(t.TempDir(), "berth.db")
	s := openAt(t, path)
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := size()
	for i := range 200 {
		if _, _, err := s.CreateJob(t.Context(), job(fmt.Sprintf("job-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	wait.For(t, time.Minute, "the database file to take in the log", func() bool { return size() > before })
}

var loadJobs = flag.Int("load.jobs", 20_000, "queued jobs BenchmarkLoad reads")

// BenchmarkLoad reads a queue of -load.jobs jobs back, as a restart does.
func BenchmarkLoad(b *testing.B) {
	s := openAt(b, filepath.Join(b.TempDir(), "berth.db"))
	ctx := b.Context()
	batch := make([]berth.Job, 0, berth.MaxBatch)
	for i := range *loadJobs {
		batch = append(batch, job(berth.NewID("job", t0.Add(time.Duration(i)))))
		if len(batch) == cap(batch) || i == *loadJobs-1 {
			if _, err := s.CreateJobs(ctx, batch, nil); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		st, err := s.Load(ctx)
		if err != nil || len(st.Jobs) != *loadJobs {
			b.Fatalf("Load = %d jobs, %v; want %d", len(st.Jobs), err, *loadJobs)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(*loadJobs), "µs/job")
}
