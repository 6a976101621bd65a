package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/berthhq/berth/internal/berth"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// fail translates a driver error into one that names what was being done
// (its Op, for logs) and has one of berth's kinds where one fits. The
// driver's own error is flattened to text so its type never leaks to
// callers; only a context's error survives as itself, so callers can tell
// a cancellation. Public messages are left to callers that know what the
// user asked for (see failGet), except where the store itself is at fault.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("sqlite: %s: %w", op, ctxErr)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	op = "sqlite: " + op
	if errors.Is(err, sql.ErrNoRows) {
		return &berth.Error{Kind: berth.ErrNotFound, Op: op}
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		flat := errors.New(se.Error())
		switch code := se.Code(); {
		case code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return &berth.Error{Kind: berth.ErrConflict, Op: op, Err: flat}
		case code == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return &berth.Error{Kind: berth.ErrNotFound, Op: op, Err: flat}
		case code&0xff == sqlite3.SQLITE_BUSY || code&0xff == sqlite3.SQLITE_LOCKED:
			return &berth.Error{Kind: berth.ErrUnavailable, Op: op, Public: "the store is busy; try again", Err: flat}
		case code == sqlite3.SQLITE_FULL:
			return cannotWriteErr(op, &writeError{"disk full"})
		case cannotWrite[code]:
			return cannotWriteErr(op, &writeError{se.Error()})
		}
	}
	return fmt.Errorf("%s: %v", op, err)
}

// failGet is fail for a read of one named thing ("job job-1"): a missing
// row is the thing not found, in words a user may be shown.
func (s *Store) failGet(ctx context.Context, op, thing string, err error) error {
	if errors.Is(err, sql.ErrNoRows) && ctx.Err() == nil {
		return &berth.Error{Kind: berth.ErrNotFound, Op: "sqlite: " + op, Public: thing + " not found"}
	}
	return s.fail(ctx, op, err)
}

// cannotWrite lists the I/O errors that say the disk did not take a write
// (SQLite reports a full disk itself as SQLITE_FULL): writing, syncing, or
// growing the WAL index failed.
var cannotWrite = map[int]bool{
	sqlite3.SQLITE_IOERR_WRITE:     true,
	sqlite3.SQLITE_IOERR_FSYNC:     true,
	sqlite3.SQLITE_IOERR_DIR_FSYNC: true,
	sqlite3.SQLITE_IOERR_SHMSIZE:   true,
}

// writeError is a write the disk did not take. It wraps
// berth.ErrUnavailable: nothing is wrong with the request, and the same
// write succeeds once the disk takes it again, with no restart. Its text
// is shown to API clients, so it says what is wrong and nothing of the
// machine.
type writeError struct{ why string }

func (e *writeError) Error() string { return "the store cannot write: " + e.why }
func (e *writeError) Unwrap() error { return berth.ErrUnavailable }

// cannotWriteErr is a write the disk did not take, with its text as the
// public message.
func cannotWriteErr(op string, we *writeError) error {
	return &berth.Error{Kind: berth.ErrUnavailable, Op: "sqlite: " + op, Public: we.Error(), Err: we}
}

// The range of times a unix-nanosecond int64 can hold (1677 to 2262).
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// encoder turns domain values into column values, keeping the first error
// so that an argument list can be built in one expression and checked once.
type encoder struct{ err error }

// time stores t as unix nanoseconds, and the zero time as NULL so that it
// comes back as the zero time rather than 1970.
func (e *encoder) time(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	if t.Before(minTime) || t.After(maxTime) {
		if e.err == nil {
			e.err = berth.Errorf(berth.ErrInvalid, "time %s is outside the range the store keeps (1678-2262)", t.Format(time.RFC3339))
		}
		return nil
	}
	return t.UnixNano()
}

// json stores v as JSON text.
func (e *encoder) json(v any) string {
	b, err := json.Marshal(v)
	if err != nil && e.err == nil {
		e.err = fmt.Errorf("encode %T: %w", v, err)
	}
	return string(b)
}

// labels stores a label map as JSON, or NULL when it is empty. The JSON of
// a map has sorted keys, so equal maps give equal text.
func (e *encoder) labels(m map[string]string) any {
	if len(m) == 0 {
		return nil
	}
	return e.json(m)
}

// hints stores a job's then list as JSON, or NULL when it is empty: an
// empty list says no more than an absent one.
func (e *encoder) hints(h []berth.Hint) any {
	if len(h) == 0 {
		return nil
	}
	return e.json(h)
}

// nullString stores "" as NULL, for columns whose unique index must ignore
// the empty value.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// decodeTime is the inverse of encoder.time; times come back in UTC.
func decodeTime(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// jobCols lists the columns scanJob reads, in its order.
const jobCols = `seq, id, pool, name, steps, priority, affinity, affinity_required,
	retries, max_infra_retries, timeout_ns, resume, idempotency_key, labels,
	state, cluster_id, reason, created_at, started_at, ended_at, not_before,
	user_failures, infra_failures, cancel_requested, cost, execution_role_arn, then_hints`

func scanJob(sc scanner) (berth.Job, error) {
	var (
		j                                  berth.Job
		steps                              string
		key, labels, then                  sql.NullString
		timeout                            int64
		created, started, ended, notBefore sql.NullInt64
	)
	err := sc.Scan(&j.Seq, &j.ID, &j.Pool, &j.Name, &steps, &j.Priority, &j.Affinity, &j.AffinityRequired,
		&j.Retries, &j.MaxInfraRetries, &timeout, &j.Resume, &key, &labels,
		&j.State, &j.ClusterID, &j.Reason, &created, &started, &ended, &notBefore,
		&j.UserFailures, &j.InfraFailures, &j.CancelRequested, &j.Cost, &j.ExecutionRoleArn, &then)
	if err != nil {
		return berth.Job{}, err
	}
	if err := json.Unmarshal([]byte(steps), &j.Steps); err != nil {
		return berth.Job{}, fmt.Errorf("decode steps of job %s: %w", j.ID, err)
	}
	if labels.Valid {
		if err := json.Unmarshal([]byte(labels.String), &j.Labels); err != nil {
			return berth.Job{}, fmt.Errorf("decode labels of job %s: %w", j.ID, err)
		}
	}
	if then.Valid {
		if err := json.Unmarshal([]byte(then.String), &j.Then); err != nil {
			return berth.Job{}, fmt.Errorf("decode then of job %s: %w", j.ID, err)
		}
	}
	j.IdempotencyKey = key.String
	j.Timeout = berth.Duration(timeout)
	j.CreatedAt = decodeTime(created)
	j.StartedAt = decodeTime(started)
	j.EndedAt = decodeTime(ended)
	j.NotBefore = decodeTime(notBefore)
	j.Attempts = []berth.Attempt{}
	return j, nil
}

// jobWriteCols are the columns CreateJob writes from a job, in the order
// of appendJobWriteArgs: all but what only the store sets (seq, id, created_at
// and cancel_requested).
var jobWriteCols = []string{
	"pool", "name", "steps", "priority", "affinity", "affinity_required",
	"retries", "max_infra_retries", "timeout_ns", "resume", "idempotency_key", "labels",
	"state", "cluster_id", "reason", "started_at", "ended_at", "not_before",
	"user_failures", "infra_failures", "cost", "execution_role_arn", "then_hints",
}

// appendJobWriteArgs appends the values of jobWriteCols to args. Steps and
// labels come encoded: CreateJob needs their text too.
func appendJobWriteArgs(args []any, e *encoder, j *berth.Job, steps string, labels any) []any {
	return append(args,
		j.Pool, j.Name, steps, j.Priority, j.Affinity, j.AffinityRequired,
		j.Retries, j.MaxInfraRetries, int64(j.Timeout), string(j.Resume), nullString(j.IdempotencyKey), labels,
		string(j.State), j.ClusterID, string(j.Reason), e.time(j.StartedAt), e.time(j.EndedAt), e.time(j.NotBefore),
		j.UserFailures, j.InfraFailures, j.Cost, j.ExecutionRoleArn, e.hints(j.Then),
	)
}

// jobRunCols are the columns Commit writes: a job's run state, in the
// order of jobRunArgs. The rest of the row is the submission's and never
// changes; steps are written whole because they carry their states.
var jobRunCols = []string{
	"state", "cluster_id", "reason", "started_at", "ended_at", "not_before",
	"user_failures", "infra_failures", "cost", "steps",
}

func jobRunArgs(e *encoder, j *berth.Job) []any {
	return []any{
		string(j.State), j.ClusterID, string(j.Reason), e.time(j.StartedAt), e.time(j.EndedAt), e.time(j.NotBefore),
		j.UserFailures, j.InfraFailures, j.Cost, e.json(j.Steps),
	}
}

// attemptCols lists the columns scanAttempt reads, in its order.
const attemptCols = `job_id, n, cluster_id, state, reason, started_at, ended_at, first_step, steps, cost`

func scanAttempt(sc scanner) (berth.Attempt, error) {
	var (
		a              berth.Attempt
		steps          string
		started, ended sql.NullInt64
	)
	if err := sc.Scan(&a.JobID, &a.N, &a.ClusterID, &a.State, &a.Reason, &started, &ended, &a.FirstStep, &steps, &a.Cost); err != nil {
		return berth.Attempt{}, err
	}
	if err := json.Unmarshal([]byte(steps), &a.Steps); err != nil {
		return berth.Attempt{}, fmt.Errorf("decode steps of attempt %d of job %s: %w", a.N, a.JobID, err)
	}
	a.StartedAt = decodeTime(started)
	a.EndedAt = decodeTime(ended)
	return a, nil
}

// attemptArgs are the values of attemptCols for one attempt of a job.
func attemptArgs(e *encoder, jobID string, a *berth.Attempt) []any {
	return []any{
		jobID, a.N, a.ClusterID, string(a.State), string(a.Reason), e.time(a.StartedAt), e.time(a.EndedAt),
		a.FirstStep, e.json(utcSteps(a.Steps)), a.Cost,
	}
}

// utcSteps returns steps with their times in UTC, so that what is read back
// equals what the column times give: UTC.
func utcSteps(steps []berth.AttemptStep) []berth.AttemptStep {
	if steps == nil {
		return nil
	}
	out := make([]berth.AttemptStep, len(steps))
	for i, s := range steps {
		s.StartedAt, s.EndedAt = utc(s.StartedAt), utc(s.EndedAt)
		out[i] = s
	}
	return out
}

// utc is t in UTC, the zero time staying the zero time.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

const clusterCols = `id, pool, state, provider_id, fallback, slots, price_per_hour,
	created_at, ready_at, idle_since, ended_at, reason, capacity, ends_lost`

func scanCluster(sc scanner) (berth.Cluster, error) {
	var (
		c                                berth.Cluster
		created, ready, idleSince, ended sql.NullInt64
	)
	err := sc.Scan(&c.ID, &c.Pool, &c.State, &c.ProviderID, &c.Fallback, &c.Slots, &c.PricePerHour,
		&created, &ready, &idleSince, &ended, &c.Reason, &c.Capacity, &c.EndsLost)
	if err != nil {
		return berth.Cluster{}, err
	}
	c.CreatedAt = decodeTime(created)
	c.ReadyAt = decodeTime(ready)
	c.IdleSince = decodeTime(idleSince)
	c.EndedAt = decodeTime(ended)
	return c, nil
}

func clusterArgs(e *encoder, c *berth.Cluster) []any {
	return []any{
		c.ID, c.Pool, string(c.State), c.ProviderID, c.Fallback, c.Slots, c.PricePerHour,
		e.time(c.CreatedAt), e.time(c.ReadyAt), e.time(c.IdleSince), e.time(c.EndedAt), c.Reason, c.Capacity, c.EndsLost,
	}
}

const eventCols = `seq, at, job_id, cluster_id, kind, message`

func scanEvent(sc scanner) (berth.Event, error) {
	var (
		ev berth.Event
		at sql.NullInt64
	)
	if err := sc.Scan(&ev.Seq, &at, &ev.JobID, &ev.ClusterID, &ev.Kind, &ev.Message); err != nil {
		return berth.Event{}, err
	}
	ev.At = decodeTime(at)
	return ev, nil
}

// Job and cluster states listed in SQL: the ones that have not ended.
var (
	liveJobStates = sqlList(berth.JobStates, func(s berth.JobState) bool { return !s.Terminal() })
	// liveJobsSQL reads the live jobs that are not dormant in seq order:
	// one arm per state, each in the order of the (state, seq) index,
	// merged. With state IN (…) instead, SQLite sorts the whole queue in
	// a temporary B-tree.
	liveJobsSQL       = liveJobsQuery()
	liveClusterStates = sqlList(berth.ClusterStates, func(s berth.ClusterState) bool { return !s.Terminal() })
)

// sqlList renders the states that keep passes as an SQL list of literals.
// The states are the domain's own constants, never user input.
func sqlList[S ~string](states []S, keep func(S) bool) string {
	var b strings.Builder
	b.WriteByte('(')
	for _, s := range states {
		if !keep(s) {
			continue
		}
		if b.Len() > 1 {
			b.WriteString(", ")
		}
		b.WriteString("'" + strings.ReplaceAll(string(s), "'", "''") + "'")
	}
	b.WriteByte(')')
	return b.String()
}

// placeholders returns "?, ?, ?" for n values.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// dormantJob is berth.Job.Dormant in SQL, but for the state: attempts
// need a started_at (store.CheckStarted).
const dormantJob = `started_at IS NULL AND cancel_requested = 0 AND not_before IS NULL AND affinity = '' AND affinity_required = 0`

// dormantJobsSQL reads what Load returns of the dormant jobs, in seq order.
const dormantJobsSQL = `SELECT id, pool, priority, created_at FROM jobs WHERE state = '` + string(berth.JobQueued) + `' AND ` + dormantJob + ` ORDER BY seq`

func liveJobsQuery() string {
	var arms []string
	for _, st := range berth.JobStates {
		if st.Terminal() {
			continue
		}
		arm := `SELECT ` + jobCols + ` FROM jobs WHERE state = '` + string(st) + `'`
		if st == berth.JobQueued {
			arm += ` AND NOT (` + dormantJob + `)`
		}
		arms = append(arms, arm)
	}
	return strings.Join(arms, " UNION ALL ") + " ORDER BY seq"
}
