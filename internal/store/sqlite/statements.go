package sqlite

import (
	"context"
	"database/sql"
	"strings"
)

// statements are the writer's hot statements, prepared once on its single
// connection; a transaction borrows them with Tx.StmtContext at no cost.
type statements struct {
	insertJob     *sql.Stmt
	updateJob     *sql.Stmt
	insertLabels  *sql.Stmt
	upsertAttempt *sql.Stmt
	upsertCluster *sql.Stmt
	insertEvent   *sql.Stmt
}

var (
	// The conflict target names the partial unique index, so only a
	// repeated idempotency key is absorbed; a repeated id still fails.
	insertJobSQL = `INSERT INTO jobs (id, created_at, ` + strings.Join(jobWriteCols, ", ") + `)
		VALUES (?, ?, ` + placeholders(len(jobWriteCols)) + `)
		ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
		RETURNING seq`
	updateJobSQL = updateJobQuery()

	insertLabelsSQL = `INSERT INTO job_labels (job_id, key, value) SELECT ?, key, value FROM json_each(?)`

	upsertAttemptSQL = `INSERT INTO attempts (` + attemptCols + `) VALUES (` + placeholders(10) + `)
		ON CONFLICT (job_id, n) DO UPDATE SET
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

	insertEventSQL = `INSERT INTO events (at, job_id, cluster_id, kind, message) VALUES (?, ?, ?, ?, ?)`
)

func (st *statements) prepare(ctx context.Context, db *sql.DB) error {
	for _, p := range []struct {
		dst  **sql.Stmt
		text string
	}{
		{&st.insertJob, insertJobSQL},
		{&st.updateJob, updateJobSQL},
		{&st.insertLabels, insertLabelsSQL},
		{&st.upsertAttempt, upsertAttemptSQL},
		{&st.upsertCluster, upsertClusterSQL},
		{&st.insertEvent, insertEventSQL},
	} {
		s, err := db.PrepareContext(ctx, p.text)
		if err != nil {
			return err
		}
		*p.dst = s
	}
	return nil
}

func (st *statements) close() {
	for _, s := range []*sql.Stmt{st.insertJob, st.updateJob, st.insertLabels, st.upsertAttempt, st.upsertCluster, st.insertEvent} {
		if s != nil {
			_ = s.Close()
		}
	}
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
