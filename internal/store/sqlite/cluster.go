package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/store"
)

// GetCluster returns one cluster. Running and Cost are derived by the
// service and come back zero.
func (s *Store) GetCluster(ctx context.Context, id string) (berth.Cluster, error) {
	c, err := scanCluster(s.read.QueryRowContext(ctx, `SELECT `+clusterCols+` FROM clusters WHERE id = ?`, id))
	if err != nil {
		return berth.Cluster{}, s.failGet(ctx, "get cluster "+id, "cluster "+id, err)
	}
	return c, nil
}

// ListClusters returns clusters oldest first (by CreatedAt, then id).
func (s *Store) ListClusters(ctx context.Context, f store.ClusterFilter) ([]berth.Cluster, error) {
	var (
		where []string
		args  []any
	)
	if f.Pool != "" {
		where, args = append(where, "pool = ?"), append(args, f.Pool)
	}
	if f.State != "" {
		where, args = append(where, "state = ?"), append(args, string(f.State))
	}
	query := `SELECT ` + clusterCols + ` FROM clusters`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY created_at, id`
	cs, err := readClusters(ctx, s.read, query, args...)
	if err != nil {
		return nil, s.fail(ctx, "list clusters", err)
	}
	return cs, nil
}

func readClusters(ctx context.Context, q querier, query string, args ...any) ([]berth.Cluster, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cs := []berth.Cluster{}
	for rows.Next() {
		c, err := scanCluster(rows)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, rows.Err()
}

// ClusterAttempts returns the attempts that ran on a cluster, oldest first
// (by start, then job submission order and attempt number), with JobID
// set. An unknown cluster has none.
func (s *Store) ClusterAttempts(ctx context.Context, clusterID string) ([]berth.Attempt, error) {
	op := "list attempts on cluster " + clusterID
	rows, err := s.read.QueryContext(ctx, `SELECT a.job_id, a.n, a.cluster_id, a.state, a.reason, a.started_at, a.ended_at, a.first_step, a.steps, a.cost
		FROM attempts a JOIN jobs j ON j.id = a.job_id
		WHERE a.cluster_id = ?
		ORDER BY a.started_at, j.seq, a.n`, clusterID)
	if err != nil {
		return nil, s.fail(ctx, op, err)
	}
	defer rows.Close()
	as := []berth.Attempt{}
	for rows.Next() {
		a, err := scanAttempt(rows)
		if err != nil {
			return nil, s.fail(ctx, op, err)
		}
		as = append(as, a)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(ctx, op, err)
	}
	return as, nil
}

// ListEvents returns events oldest first (in the order they were
// appended); with a Limit, the oldest Limit of them.
func (s *Store) ListEvents(ctx context.Context, f store.EventFilter) ([]berth.Event, error) {
	if f.Limit < 0 {
		return nil, &berth.Error{Kind: berth.ErrInvalid, Op: "sqlite: list events", Public: fmt.Sprintf("limit %d is negative", f.Limit)}
	}
	var (
		where []string
		args  []any
	)
	if f.JobID != "" {
		where, args = append(where, "job_id = ?"), append(args, f.JobID)
	}
	if f.ClusterID != "" {
		where, args = append(where, "cluster_id = ?"), append(args, f.ClusterID)
	}
	query := `SELECT ` + eventCols + ` FROM events`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY seq`
	if f.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	rows, err := s.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.fail(ctx, "list events", err)
	}
	defer rows.Close()
	evs := []berth.Event{}
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			return nil, s.fail(ctx, "list events", err)
		}
		evs = append(evs, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(ctx, "list events", err)
	}
	return evs, nil
}
