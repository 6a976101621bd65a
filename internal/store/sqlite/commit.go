package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/store"
)

// Commit writes a batch in one transaction, one prepared statement per
// row: a job's run state, each of its attempts, each cluster and event. A
// job that does not exist fails the batch, which then writes nothing.
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
	for i := range b.Jobs {
		if err := store.CheckStarted(&b.Jobs[i]); err != nil {
			return fmt.Errorf("sqlite: commit: %w", err)
		}
	}
	return s.writeTx(ctx, "commit", func(tx *sql.Tx) error {
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
		var attempts [][]any
		for i := range b.Jobs {
			j := &b.Jobs[i]
			if err := s.writeJob(ctx, tx, &enc, j); err != nil {
				return err
			}
			for k := range j.Attempts {
				attempts = append(attempts, attemptArgs(&enc, j.ID, &j.Attempts[k]))
			}
		}
		// An attempt it does not list stays: the loop never drops one.
		if err := s.stmt.upsertAttempts.exec(ctx, tx, attempts); err != nil {
			return s.fail(ctx, "commit: attempts", err)
		}
		events := make([][]any, len(b.Events))
		for i, ev := range b.Events {
			events[i] = []any{enc.time(ev.At), ev.JobID, ev.ClusterID, ev.Kind, ev.Message}
		}
		if err := s.stmt.insertEvents.exec(ctx, tx, events); err != nil {
			return s.fail(ctx, "commit: events", err)
		}
		if enc.err != nil {
			return fmt.Errorf("sqlite: commit: %w", enc.err)
		}
		return nil
	})
}

// writeJob writes one job's run state.
func (s *Store) writeJob(ctx context.Context, tx *sql.Tx, enc *encoder, j *berth.Job) error {
	op := "commit: job " + j.ID
	res, err := tx.StmtContext(ctx, s.stmt.updateJob).ExecContext(ctx, append(jobRunArgs(enc, j), j.ID)...)
	if err != nil {
		return s.fail(ctx, op, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return s.fail(ctx, op, err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: commit: job %q: %w", j.ID, berth.ErrNotFound)
	}
	return nil
}
