package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/store"
)

// stored is what Commit needs to know about a job row before it rewrites
// it: its labels as stored, and which attempts it has.
type stored struct {
	labels   sql.NullString
	attempts []int
}

// Commit writes a batch in one transaction. It first reads the batch's
// jobs in one query, so an unknown job fails the batch before anything is
// written, and so labels and attempts are only rewritten where they
// changed shape; the rest is one prepared statement per row.
func (s *Store) Commit(ctx context.Context, b store.Batch) error {
	if b.Empty() {
		return nil
	}
	for _, c := range b.Clusters {
		if c.ID == "" {
			return fmt.Errorf("sqlite: commit: %w: cluster with empty id", berth.ErrInvalid)
		}
	}
	for _, p := range b.Pools {
		if p.Pool == "" {
			return fmt.Errorf("sqlite: commit: %w: pool state with empty pool", berth.ErrInvalid)
		}
	}
	return s.writeTx(ctx, "commit", func(tx *sql.Tx) error {
		known, err := s.readStored(ctx, tx, b.Jobs)
		if err != nil {
			return err
		}
		var enc encoder
		for i := range b.Clusters {
			if _, err := tx.StmtContext(ctx, s.stmt.upsertCluster).ExecContext(ctx, clusterArgs(&enc, &b.Clusters[i])...); err != nil {
				return s.fail(ctx, "commit: cluster "+b.Clusters[i].ID, err)
			}
		}
		for _, p := range b.Pools {
			_, err := tx.ExecContext(ctx, `INSERT INTO pool_state (pool, capacity_failures, first_failure_at, fallback_until, blocked_at, blocked_reason, blocked_spec, unblocked_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (pool) DO UPDATE SET capacity_failures = excluded.capacity_failures,
					first_failure_at = excluded.first_failure_at, fallback_until = excluded.fallback_until,
					blocked_at = excluded.blocked_at, blocked_reason = excluded.blocked_reason, blocked_spec = excluded.blocked_spec,
					unblocked_at = excluded.unblocked_at`,
				p.Pool, p.CapacityFailures, enc.time(p.FirstFailureAt), enc.time(p.FallbackUntil),
				enc.time(p.BlockedAt), p.BlockedReason, p.BlockedSpec, enc.time(p.UnblockedAt))
			if err != nil {
				return s.fail(ctx, "commit: pool state "+p.Pool, err)
			}
		}
		for k, c := range b.Affinity {
			_, err := tx.ExecContext(ctx, `INSERT INTO affinity (key, cluster_id) VALUES (?, ?)
				ON CONFLICT (key) DO UPDATE SET cluster_id = excluded.cluster_id`, k, c)
			if err != nil {
				return s.fail(ctx, "commit: affinity "+k, err)
			}
		}
		for i := range b.Jobs {
			if err := s.writeJob(ctx, tx, &enc, &b.Jobs[i], known); err != nil {
				return err
			}
		}
		for _, ev := range b.Events {
			if _, err := tx.StmtContext(ctx, s.stmt.insertEvent).ExecContext(ctx, enc.time(ev.At), ev.JobID, ev.ClusterID, ev.Kind, ev.Message); err != nil {
				return s.fail(ctx, "commit: event", err)
			}
		}
		if enc.err != nil {
			return fmt.Errorf("sqlite: commit: %w", enc.err)
		}
		return nil
	})
}

// readStored reads what writeJob compares against, and fails with
// berth.ErrNotFound when a job of the batch does not exist.
func (s *Store) readStored(ctx context.Context, tx *sql.Tx, jobs []berth.Job) (map[string]*stored, error) {
	known := map[string]*stored{}
	if len(jobs) == 0 {
		return known, nil
	}
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	idJSON, err := json.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("sqlite: commit: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, labels, (SELECT json_group_array(n) FROM attempts a WHERE a.job_id = jobs.id)
		FROM jobs WHERE id IN (SELECT value FROM json_each(?))`, string(idJSON))
	if err != nil {
		return nil, s.fail(ctx, "commit: read jobs", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id, ns string
			st     stored
		)
		if err := rows.Scan(&id, &st.labels, &ns); err != nil {
			return nil, s.fail(ctx, "commit: read jobs", err)
		}
		if err := json.Unmarshal([]byte(ns), &st.attempts); err != nil {
			return nil, fmt.Errorf("sqlite: commit: read attempts of job %s: %w", id, err)
		}
		known[id] = &st
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(ctx, "commit: read jobs", err)
	}
	for _, id := range ids {
		if known[id] == nil {
			return nil, fmt.Errorf("sqlite: commit: job %q: %w", id, berth.ErrNotFound)
		}
	}
	return known, nil
}

// writeJob rewrites one job row and its attempts, leaving seq, created_at
// and cancel_requested as they are: those are the store's, and the loop's
// copy of cancel_requested may be older than a request the API recorded
// since.
func (s *Store) writeJob(ctx context.Context, tx *sql.Tx, enc *encoder, j *berth.Job, known map[string]*stored) error {
	op := "commit: job " + j.ID
	st := known[j.ID]
	labels := enc.labels(j.Labels)
	args := append(jobWriteArgs(enc, j, enc.json(j.Steps), labels), j.ID)
	if _, err := tx.StmtContext(ctx, s.stmt.updateJob).ExecContext(ctx, args...); err != nil {
		return s.fail(ctx, op, err)
	}

	newLabels := sql.NullString{}
	if labels != nil {
		newLabels = sql.NullString{String: labels.(string), Valid: true}
	}
	if newLabels != st.labels {
		if _, err := tx.StmtContext(ctx, s.stmt.deleteLabels).ExecContext(ctx, j.ID); err != nil {
			return s.fail(ctx, op+": labels", err)
		}
		if labels != nil {
			if _, err := tx.StmtContext(ctx, s.stmt.insertLabels).ExecContext(ctx, j.ID, labels); err != nil {
				return s.fail(ctx, op+": labels", err)
			}
		}
		st.labels = newLabels
	}

	ns := make([]int, len(j.Attempts))
	for i := range j.Attempts {
		ns[i] = j.Attempts[i].N
		if _, err := tx.StmtContext(ctx, s.stmt.upsertAttempt).ExecContext(ctx, attemptArgs(enc, j.ID, &j.Attempts[i])...); err != nil {
			return s.fail(ctx, fmt.Sprintf("%s: attempt %d", op, j.Attempts[i].N), err)
		}
	}
	// The job is written whole: attempts it no longer lists go. The loop
	// never drops one, so this is the rare path.
	for _, n := range st.attempts {
		if !slices.Contains(ns, n) {
			if _, err := tx.ExecContext(ctx, `DELETE FROM attempts WHERE job_id = ? AND n = ?`, j.ID, n); err != nil {
				return s.fail(ctx, fmt.Sprintf("%s: drop attempt %d", op, n), err)
			}
		}
	}
	st.attempts = ns
	return nil
}
