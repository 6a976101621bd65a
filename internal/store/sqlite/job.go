package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/store"
)

// querier is what reads need from a transaction or a pool.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// CreateJob stores a new job: CreateJobs with one.
func (s *Store) CreateJob(ctx context.Context, job berth.Job) (berth.Job, bool, error) {
	out, err := s.CreateJobs(ctx, []berth.Job{job}, nil)
	if err != nil {
		return berth.Job{}, false, err
	}
	return out[0].Job, out[0].Created, nil
}

// CreateJobs stores new jobs, each with its queued event. The insert
// absorbs a repeated idempotency key through the unique index rather than
// a read before it, so racing submissions of one key cannot both insert;
// the labels and the event are two more statements. Submissions that
// arrive together share one transaction and one fsync (see createGroup);
// the jobs of one call are stored all or none. A job with an id that
// exists already is berth.ErrConflict. The returned jobs are what GetJob
// would return.
func (s *Store) CreateJobs(ctx context.Context, jobs []berth.Job, held func(int, *berth.Job) error) ([]berth.Submitted, error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	req, err := newCreateReq(ctx, jobs)
	if err != nil {
		return nil, err
	}
	req.held = held
	res, err := s.submit(ctx, req)
	if err != nil {
		return nil, err
	}
	for i := range res {
		if !res[i].Created {
			continue
		}
		seq := res[i].Job.Seq
		res[i].Job = *req.jobs[i].job
		res[i].Job.Seq = seq
		if err := normalizeNew(&res[i].Job, req.jobs[i].steps); err != nil {
			return nil, fmt.Errorf("sqlite: create job %s: %w", res[i].Job.ID, err)
		}
	}
	return res, nil
}

// newCreateReq checks and encodes submissions before they join a group, so
// that what can be wrong with one call alone fails it alone.
func newCreateReq(ctx context.Context, jobs []berth.Job) (*createReq, error) {
	req := &createReq{ctx: ctx, jobs: make([]newJob, len(jobs)), done: make(chan createResult, 1)}
	var enc encoder
	for i := range jobs {
		job := &jobs[i]
		if job.ID == "" {
			return nil, fmt.Errorf("sqlite: create job: %w: empty id", berth.ErrInvalid)
		}
		if err := store.CheckStarted(job); err != nil {
			return nil, fmt.Errorf("sqlite: create job: %w", err)
		}
		if job.State == "" {
			c := *job
			c.State = berth.JobQueued
			job = &c
		}
		labels, steps := enc.labels(job.Labels), enc.json(job.Steps)
		args := make([]any, 0, 2+len(jobWriteCols))
		nj := newJob{
			job:    job,
			steps:  steps,
			args:   appendJobWriteArgs(append(args, job.ID, enc.time(job.CreatedAt)), &enc, job, steps, labels),
			labels: labels,
		}
		if !job.State.Terminal() {
			ev := store.QueuedEvent(job)
			nj.event = []any{enc.time(ev.At), ev.JobID, ev.ClusterID, ev.Kind, ev.Message}
		}
		for k := range job.Attempts {
			nj.attempts = append(nj.attempts, attemptArgs(&enc, job.ID, &job.Attempts[k]))
		}
		if enc.err != nil {
			return nil, fmt.Errorf("sqlite: create job %s: %w", job.ID, enc.err)
		}
		req.jobs[i] = nj
	}
	return req, nil
}

// insertJobs writes one call's jobs inside the group's transaction, in
// a few statements whatever their number: the rows of all its jobs, then
// the labels, attempts and queued events of those inserted. A job whose
// idempotency key is taken writes nothing; its answer is the job that
// holds the key, or held's error about it. On an error the caller undoes
// the call whole.
func (s *Store) insertJobs(ctx context.Context, tx *sql.Tx, r *createReq) createResult {
	op := r.op()
	rows := make([][]any, len(r.jobs))
	for i := range r.jobs {
		rows[i] = r.jobs[i].args
	}
	// RETURNING names each row inserted by id and key, in no promised
	// order. Jobs of one call may share an id (the later one inserts when
	// the earlier one's key is taken) or an id and a key (the later one
	// is the earlier one's hit): a returned row belongs to the first job
	// of its id and key, which takes it.
	type idKey struct{ id, key string }
	inserted := make(map[idKey]int64, len(r.jobs))
	err := s.stmt.insertJobs.query(ctx, tx, rows, func(res *sql.Rows) error {
		var k idKey
		var seq int64
		if err := res.Scan(&k.id, &k.key, &seq); err != nil {
			return err
		}
		inserted[k] = seq
		return nil
	})
	if err != nil {
		return createResult{err: s.fail(ctx, op, err)}
	}
	out := make([]berth.Submitted, len(r.jobs))
	var labels []byte
	var attempts, events [][]any
	for i := range r.jobs {
		nj := &r.jobs[i]
		k := idKey{nj.job.ID, nj.job.IdempotencyKey}
		seq, ok := inserted[k]
		if !ok {
			j, err := getJobBy(ctx, tx, "idempotency_key = ?", k.key)
			if err != nil {
				return createResult{err: s.fail(ctx, op+": read job with idempotency key", err)}
			}
			if r.held != nil {
				if err := r.held(i, &j); err != nil {
					return createResult{err: err}
				}
			}
			out[i] = berth.Submitted{Job: j}
			continue
		}
		delete(inserted, k)
		out[i] = berth.Submitted{Job: berth.Job{Seq: seq}, Created: true}
		if nj.labels != nil {
			labels = appendLabels(labels, nj.job.ID, nj.labels.(string))
		}
		attempts = append(attempts, nj.attempts...)
		if nj.event != nil {
			events = append(events, nj.event)
		}
	}
	if labels != nil {
		labels = append(labels, '}')
		if _, err := tx.StmtContext(ctx, s.stmt.insertLabels).ExecContext(ctx, string(labels)); err != nil {
			return createResult{err: s.fail(ctx, op+": labels", err)}
		}
	}
	if err := s.stmt.upsertAttempts.exec(ctx, tx, attempts); err != nil {
		return createResult{err: s.fail(ctx, op+": attempts", err)}
	}
	if err := s.stmt.insertEvents.exec(ctx, tx, events); err != nil {
		return createResult{err: s.fail(ctx, op+": events", err)}
	}
	return createResult{jobs: out}
}

// appendLabels adds one job's encoded labels to the insertLabels argument,
// a JSON object from job id to labels, opening it on the first.
func appendLabels(into []byte, id, labels string) []byte {
	if into == nil {
		into = append(into, '{')
	} else {
		into = append(into, ',')
	}
	quoted, _ := json.Marshal(id) // a string always encodes
	into = append(into, quoted...)
	into = append(into, ':')
	return append(into, labels...)
}

// normalizeNew makes a job just inserted look as GetJob would return it:
// fields read back from JSON and times in UTC, with nothing shared with the
// caller's copy.
func normalizeNew(j *berth.Job, steps string) error {
	j.Steps = nil
	if err := json.Unmarshal([]byte(steps), &j.Steps); err != nil {
		return err
	}
	if len(j.Labels) == 0 {
		j.Labels = nil
	} else {
		j.Labels = maps.Clone(j.Labels)
	}
	if len(j.Then) == 0 {
		j.Then = nil
	} else {
		j.Then = slices.Clone(j.Then)
	}
	j.CancelRequested = false
	j.CreatedAt, j.StartedAt, j.EndedAt, j.NotBefore = utc(j.CreatedAt), utc(j.StartedAt), utc(j.EndedAt), utc(j.NotBefore)
	attempts := make([]berth.Attempt, len(j.Attempts))
	for i, a := range j.Attempts {
		a.JobID = ""
		a.StartedAt, a.EndedAt = utc(a.StartedAt), utc(a.EndedAt)
		b, err := json.Marshal(utcSteps(a.Steps))
		if err != nil {
			return err
		}
		a.Steps = nil
		if err := json.Unmarshal(b, &a.Steps); err != nil {
			return err
		}
		attempts[i] = a
	}
	sort.Slice(attempts, func(x, y int) bool { return attempts[x].N < attempts[y].N })
	j.Attempts = attempts
	return nil
}

// GetJob returns one job with its attempts.
func (s *Store) GetJob(ctx context.Context, id string) (berth.Job, error) {
	var j berth.Job
	err := s.readTx(ctx, "get job "+id, func(tx *sql.Tx) error {
		var err error
		j, err = getJobBy(ctx, tx, "id = ?", id)
		if err != nil {
			return s.failGet(ctx, "get job "+id, "job "+id, err)
		}
		return nil
	})
	return j, err
}

// getJobBy reads the one job matching where, with its attempts. A missing
// job is sql.ErrNoRows, for the caller to translate.
func getJobBy(ctx context.Context, q querier, where string, args ...any) (berth.Job, error) {
	j, err := scanJob(q.QueryRowContext(ctx, `SELECT `+jobCols+` FROM jobs WHERE `+where, args...))
	if err != nil || j.StartedAt.IsZero() {
		return j, err // a job that never started has no attempts
	}
	as, err := readAttempts(ctx, q, `job_id = ?`, j.ID)
	if err != nil {
		return berth.Job{}, err
	}
	if a := as[j.ID]; a != nil {
		j.Attempts = a
	}
	return j, nil
}

// readAttempts reads the attempts matching where, grouped by job and
// ordered by n. Their JobID is cleared: inside a job it says nothing.
func readAttempts(ctx context.Context, q querier, where string, args ...any) (map[string][]berth.Attempt, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+attemptCols+` FROM attempts WHERE `+where+` ORDER BY job_id, n`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]berth.Attempt{}
	for rows.Next() {
		a, err := scanAttempt(rows)
		if err != nil {
			return nil, err
		}
		id := a.JobID
		a.JobID = ""
		out[id] = append(out[id], a)
	}
	return out, rows.Err()
}

// readJobs reads the jobs a query selects (its columns must be jobCols),
// about n of them, and attaches their attempts, read in one more query for
// the jobs that ever started: the place that makes a job's first attempt
// sets its started_at in the same commit.
func readJobs(ctx context.Context, q querier, n int, query string, args ...any) ([]berth.Job, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	jobs := make([]berth.Job, 0, n)
	ids := []string{}
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		jobs = append(jobs, j)
		if !j.StartedAt.IsZero() {
			ids = append(ids, j.ID)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return jobs, nil
	}
	idJSON, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	as, err := readAttempts(ctx, q, `job_id IN (SELECT value FROM json_each(?))`, string(idJSON))
	if err != nil {
		return nil, err
	}
	attach(jobs, as)
	return jobs, nil
}

func attach(jobs []berth.Job, as map[string][]berth.Attempt) {
	for i := range jobs {
		if a := as[jobs[i].ID]; a != nil {
			jobs[i].Attempts = a
		}
	}
}

// GetJobs reads the jobs of ids with their attempts, in the order of ids.
func (s *Store) GetJobs(ctx context.Context, ids []string) ([]berth.Job, error) {
	if len(ids) == 0 {
		return []berth.Job{}, nil
	}
	var jobs []berth.Job
	err := s.readTx(ctx, "get jobs", func(tx *sql.Tx) error {
		idJSON, err := json.Marshal(ids)
		if err != nil {
			return err
		}
		jobs, err = readJobs(ctx, tx, len(ids), `SELECT `+jobCols+` FROM jobs WHERE id IN (SELECT value FROM json_each(?))`, string(idJSON))
		if err != nil {
			return s.fail(ctx, fmt.Sprintf("get %d jobs", len(ids)), err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	at := make(map[string]int, len(ids))
	for i, id := range ids {
		if _, dup := at[id]; !dup {
			at[id] = i
		}
	}
	slices.SortFunc(jobs, func(a, b berth.Job) int { return at[a.ID] - at[b.ID] })
	return jobs, nil
}

// ListJobs pages through jobs newest first. The cursor is the Seq of the
// last job of the previous page; callers treat it as opaque.
func (s *Store) ListJobs(ctx context.Context, f store.JobFilter) ([]berth.Job, string, error) {
	limit := f.Limit
	switch {
	case limit < 0:
		return nil, "", &berth.Error{Kind: berth.ErrInvalid, Op: "sqlite: list jobs", Public: fmt.Sprintf("limit %d is negative", limit)}
	case limit == 0:
		limit = store.DefaultLimit
	case limit > store.MaxLimit:
		limit = store.MaxLimit
	}
	var (
		where []string
		args  []any
	)
	if f.Cursor != "" {
		before, err := strconv.ParseInt(f.Cursor, 10, 64)
		if err != nil || before <= 0 {
			return nil, "", &berth.Error{Kind: berth.ErrInvalid, Op: "sqlite: list jobs", Public: fmt.Sprintf("cursor %q is not one a listing of jobs handed out", f.Cursor)}
		}
		where, args = append(where, "seq < ?"), append(args, before)
	}
	if f.State != "" {
		where, args = append(where, "state = ?"), append(args, string(f.State))
	}
	if f.Pool != "" {
		where, args = append(where, "pool = ?"), append(args, f.Pool)
	}
	for _, k := range sortedKeys(f.Labels) {
		where = append(where, "id IN (SELECT job_id FROM job_labels WHERE key = ? AND value = ?)")
		args = append(args, k, f.Labels[k])
	}
	query := `SELECT ` + jobCols + ` FROM jobs`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	// One row more than the page tells whether there is a next page, so
	// the last page never hands out a cursor to an empty one.
	query += ` ORDER BY seq DESC LIMIT ?`
	args = append(args, limit+1)

	var jobs []berth.Job
	err := s.readTx(ctx, "list jobs", func(tx *sql.Tx) error {
		var err error
		jobs, err = readJobs(ctx, tx, 0, query, args...)
		if err != nil {
			return s.fail(ctx, "list jobs", err)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(jobs) > limit {
		jobs = jobs[:limit]
		next = strconv.FormatInt(jobs[limit-1].Seq, 10)
	}
	return jobs, next, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// RequestCancel marks a job that has not ended as to be cancelled, and
// records that in the job's events the first time it is asked. Asking again
// returns the job unchanged.
func (s *Store) RequestCancel(ctx context.Context, id string, at time.Time) (berth.Job, error) {
	op := "request cancel of job " + id
	var (
		enc   encoder
		atArg = enc.time(at)
	)
	if enc.err != nil {
		return berth.Job{}, fmt.Errorf("sqlite: %s: %w", op, enc.err)
	}
	var (
		j     berth.Job
		ended bool
	)
	err := s.writeTx(ctx, op, func(tx *sql.Tx) error {
		var err error
		j, err = getJobBy(ctx, tx, "id = ?", id)
		if err != nil {
			return s.failGet(ctx, op, "job "+id, err)
		}
		if j.State.Terminal() {
			ended = true
			return errSkip
		}
		if j.CancelRequested {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET cancel_requested = 1 WHERE id = ?`, id); err != nil {
			return s.fail(ctx, op, err)
		}
		if err := s.stmt.insertEvents.exec(ctx, tx, [][]any{{atArg, id, "", store.EventCancelRequested, "cancel requested"}}); err != nil {
			return s.fail(ctx, op+": event", err)
		}
		j.CancelRequested = true
		return nil
	})
	if ended {
		return j, &berth.Error{Kind: berth.ErrConflict, Op: "sqlite: " + op, Public: fmt.Sprintf("job %s has already ended (%s)", id, j.State)}
	}
	if err != nil {
		return berth.Job{}, err
	}
	return j, nil
}

// JobsAfter returns jobs with Seq > seq in Seq order. A limit of 0 means
// store.DefaultLimit; larger limits are not clamped to store.MaxLimit, as
// the loop sizes its own batches.
func (s *Store) JobsAfter(ctx context.Context, seq int64, limit int) ([]berth.Job, error) {
	if limit < 0 {
		return nil, fmt.Errorf("sqlite: jobs after %d: %w: limit %d is negative", seq, berth.ErrInvalid, limit)
	}
	if limit == 0 {
		limit = store.DefaultLimit
	}
	var jobs []berth.Job
	err := s.readTx(ctx, "jobs after", func(tx *sql.Tx) error {
		var err error
		jobs, err = readJobs(ctx, tx, 0, `SELECT `+jobCols+` FROM jobs WHERE seq > ? ORDER BY seq LIMIT ?`, seq, limit)
		if err != nil {
			return s.fail(ctx, fmt.Sprintf("jobs after %d", seq), err)
		}
		return nil
	})
	return jobs, err
}

// CancelRequests returns, in Seq order, the ids of live jobs with a cancel
// request.
func (s *Store) CancelRequests(ctx context.Context) ([]string, error) {
	// INDEXED BY: without statistics SQLite would pick jobs_state_seq and
	// read the whole queue; the partial index holds just the pending
	// requests.
	rows, err := s.read.QueryContext(ctx, `SELECT id FROM jobs INDEXED BY jobs_cancel_pending WHERE cancel_requested = 1 AND state IN `+liveJobStates+` ORDER BY seq`)
	if err != nil {
		return nil, s.fail(ctx, "list cancel requests", err)
	}
	defer rows.Close()
	ids := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, s.fail(ctx, "list cancel requests", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(ctx, "list cancel requests", err)
	}
	return ids, nil
}

// Load reads, in one snapshot, what the loop starts from: live jobs in Seq
// order, live clusters oldest first, pool state by pool name, the affinity
// map and the highest Seq.
func (s *Store) Load(ctx context.Context) (store.State, error) {
	st := store.State{Affinity: map[string]string{}}
	err := s.readTx(ctx, "load", func(tx *sql.Tx) error {
		var err error
		st.Jobs, st.Dormant, err = readLiveJobs(ctx, tx)
		if err != nil {
			return s.fail(ctx, "load jobs", err)
		}
		st.Clusters, err = readClusters(ctx, tx, `SELECT `+clusterCols+` FROM clusters WHERE state IN `+liveClusterStates+` ORDER BY created_at, id`)
		if err != nil {
			return s.fail(ctx, "load clusters", err)
		}
		st.Pools, err = readPools(ctx, tx)
		if err != nil {
			return s.fail(ctx, "load pool state", err)
		}
		if err := readAffinity(ctx, tx, st.Affinity); err != nil {
			return s.fail(ctx, "load affinity", err)
		}
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM jobs`).Scan(&st.MaxSeq); err != nil {
			return s.fail(ctx, "load max seq", err)
		}
		return nil
	})
	if err != nil {
		return store.State{}, err
	}
	return st, nil
}

// readLiveJobs reads the live jobs: the dormant ones as what placement
// needs of them, the rest whole.
func readLiveJobs(ctx context.Context, q querier) ([]berth.Job, []berth.DormantJob, error) {
	// Counted first: a million queued jobs appended to a growing slice
	// would be copied over and over.
	var n int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM jobs WHERE state IN `+liveJobStates).Scan(&n); err != nil {
		return nil, nil, err
	}
	ds, err := readDormant(ctx, q, n)
	if err != nil {
		return nil, nil, err
	}
	jobs, err := readJobs(ctx, q, max(n-len(ds), 0), liveJobsSQL)
	return jobs, ds, err
}

func readDormant(ctx context.Context, q querier, n int) ([]berth.DormantJob, error) {
	rows, err := q.QueryContext(ctx, dormantJobsSQL)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]berth.DormantJob, 0, n)
	// A queue has few pools: each name is kept once, not once a job.
	pools := map[string]string{}
	var (
		pool    sql.RawBytes
		created sql.NullInt64
	)
	for rows.Next() {
		var d berth.DormantJob
		if err := rows.Scan(&d.ID, &pool, &d.Priority, &created); err != nil {
			return nil, err
		}
		name, ok := pools[string(pool)]
		if !ok {
			name = string(pool)
			pools[name] = name
		}
		d.Pool, d.CreatedAt = name, decodeTime(created)
		out = append(out, d)
	}
	return out, rows.Err()
}

func readPools(ctx context.Context, q querier) ([]berth.PoolState, error) {
	rows, err := q.QueryContext(ctx, `SELECT pool, capacity_failures, first_failure_at, fallback_until, blocked_at, blocked_reason, blocked_spec, unblocked_at FROM pool_state ORDER BY pool`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	pools := []berth.PoolState{}
	for rows.Next() {
		var (
			p                                berth.PoolState
			first, until, blocked, unblocked sql.NullInt64
		)
		if err := rows.Scan(&p.Pool, &p.CapacityFailures, &first, &until, &blocked, &p.BlockedReason, &p.BlockedSpec, &unblocked); err != nil {
			return nil, err
		}
		p.FirstFailureAt, p.FallbackUntil, p.BlockedAt, p.UnblockedAt = decodeTime(first), decodeTime(until), decodeTime(blocked), decodeTime(unblocked)
		pools = append(pools, p)
	}
	return pools, rows.Err()
}

func readAffinity(ctx context.Context, q querier, into map[string]string) error {
	rows, err := q.QueryContext(ctx, `SELECT key, cluster_id FROM affinity`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k, c string
		if err := rows.Scan(&k, &c); err != nil {
			return err
		}
		into[k] = c
	}
	return rows.Err()
}
