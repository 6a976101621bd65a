package sqlite

import (
	"context"
	"database/sql"
	"strings"
)

// statements are the writer's hot statements, prepared once on its single
// connection; a transaction borrows them with Tx.StmtContext at no cost.
type statements struct {
	updateJob     *sql.Stmt
	insertLabels  *sql.Stmt
	upsertCluster *sql.Stmt
	// Jobs, attempts and events go in multi-row statements, a batch's
	// or a commit's many at a time.
	insertJobs, upsertAttempts, insertEvents rowStmts
}

// rowStmts is one INSERT prepared for several counts of rows, so that a
// batch of rows takes few executions: an execution costs as much again in
// binding and in the driver's and database/sql's bookkeeping as the B-tree
// work of its row.
type rowStmts struct {
	cols  int
	sizes []int // descending, ending in 1
	stmts map[int]*sql.Stmt
}

// rowSizes are the row counts a rowStmts is prepared for.
var rowSizes = []int{64, 16, 4, 1}

// prepareRows prepares head VALUES (…), (…) tail for each of rowSizes.
func prepareRows(ctx context.Context, db *sql.DB, head string, cols int, tail string) (rowStmts, error) {
	r := rowStmts{cols: cols, sizes: rowSizes, stmts: map[int]*sql.Stmt{}}
	row := "(" + placeholders(cols) + ")"
	for _, n := range r.sizes {
		st, err := db.PrepareContext(ctx, head+" VALUES "+strings.Repeat(row+", ", n-1)+row+" "+tail)
		if err != nil {
			r.close()
			return rowStmts{}, err
		}
		r.stmts[n] = st
	}
	return r, nil
}

// exec writes rows, each of r.cols values, in order, in as few executions
// as r's sizes allow.
func (r *rowStmts) exec(ctx context.Context, tx *sql.Tx, rows [][]any) error {
	return r.each(rows, func(st *sql.Stmt, args []any) error {
		_, err := tx.StmtContext(ctx, st).ExecContext(ctx, args...)
		return err
	})
}

// query is exec for a statement with RETURNING: scan sees each row it
// returns, in no promised order.
func (r *rowStmts) query(ctx context.Context, tx *sql.Tx, rows [][]any, scan func(*sql.Rows) error) error {
	return r.each(rows, func(st *sql.Stmt, args []any) error {
		res, err := tx.StmtContext(ctx, st).QueryContext(ctx, args...)
		if err != nil {
			return err
		}
		defer res.Close()
		for res.Next() {
			if err := scan(res); err != nil {
				return err
			}
		}
		return res.Err()
	})
}

// each splits rows into the executions of r's sizes, in order, and hands
// each its statement and its arguments, row after row.
func (r *rowStmts) each(rows [][]any, run func(st *sql.Stmt, args []any) error) error {
	args := make([]any, 0, min(len(rows), r.sizes[0])*r.cols)
	for len(rows) > 0 {
		n := r.sizes[len(r.sizes)-1]
		for _, size := range r.sizes {
			if size <= len(rows) {
				n = size
				break
			}
		}
		args = args[:0]
		for _, row := range rows[:n] {
			args = append(args, row...)
		}
		if err := run(r.stmts[n], args); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

func (r *rowStmts) close() {
	for _, st := range r.stmts {
		_ = st.Close()
	}
}

var (
	// The conflict target names the partial unique index, so only a
	// repeated idempotency key is absorbed; a repeated id still fails.
	insertJobHead = `INSERT INTO jobs (id, created_at, ` + strings.Join(jobWriteCols, ", ") + `)`
	insertJobTail = `ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
		RETURNING id, coalesce(idempotency_key, ''), seq`
	updateJobSQL = updateJobQuery()

	// The argument maps job ids to their labels (see appendLabels).
	insertLabelsSQL = `INSERT INTO job_labels (job_id, key, value)
		SELECT j.key, l.key, l.value FROM json_each(?) AS j, json_each(j.value) AS l`

	upsertAttemptTail = `ON CONFLICT (job_id, n) DO UPDATE SET
			cluster_id = excluded.cluster_id, state = excluded.state, reason = excluded.reason,
			started_at = excluded.started_at, ended_at = excluded.ended_at,
			first_step = excluded.first_step, steps = excluded.steps, cost = excluded.cost`

	upsertClusterSQL = `INSERT INTO clusters (` + clusterCols + `) VALUES (` + placeholders(14) + `)
		ON CONFLICT (id) DO UPDATE SET
			pool = excluded.pool, state = excluded.state, provider_id = excluded.provider_id,
			fallback = excluded.fallback, slots = excluded.slots, price_per_hour = excluded.price_per_hour,
			created_at = excluded.created_at, ready_at = excluded.ready_at, idle_since = excluded.idle_since,
			ended_at = excluded.ended_at, reason = excluded.reason, capacity = excluded.capacity,
			ends_lost = excluded.ends_lost`

	insertEventHead = `INSERT INTO events (at, job_id, cluster_id, kind, message)`
)

func (st *statements) prepare(ctx context.Context, db *sql.DB) error {
	for _, p := range []struct {
		dst  **sql.Stmt
		text string
	}{
		{&st.updateJob, updateJobSQL},
		{&st.insertLabels, insertLabelsSQL},
		{&st.upsertCluster, upsertClusterSQL},
	} {
		s, err := db.PrepareContext(ctx, p.text)
		if err != nil {
			return err
		}
		*p.dst = s
	}
	var err error
	if st.insertJobs, err = prepareRows(ctx, db, insertJobHead, 2+len(jobWriteCols), insertJobTail); err != nil {
		return err
	}
	if st.upsertAttempts, err = prepareRows(ctx, db, `INSERT INTO attempts (`+attemptCols+`)`, 10, upsertAttemptTail); err != nil {
		return err
	}
	st.insertEvents, err = prepareRows(ctx, db, insertEventHead, 5, "")
	return err
}

func (st *statements) close() {
	for _, s := range []*sql.Stmt{st.updateJob, st.insertLabels, st.upsertCluster} {
		if s != nil {
			_ = s.Close()
		}
	}
	st.insertJobs.close()
	st.upsertAttempts.close()
	st.insertEvents.close()
}

// updateJobQuery sets jobRunCols, but a started_at given as none keeps the
// one stored: a job's start, once made, stays (see store.CheckStarted).
func updateJobQuery() string {
	set := make([]string, len(jobRunCols))
	for i, c := range jobRunCols {
		set[i] = c + " = ?"
		if c == "started_at" {
			set[i] = "started_at = coalesce(?, started_at)"
		}
	}
	return `UPDATE jobs SET ` + strings.Join(set, ", ") + ` WHERE id = ?`
}
