package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/store"
)

// GetCluster returns one cluster. Running and Cost are derived by the
// service and come back zero.
func (s *Store) GetCluster(ctx context.Context, id string) (berth.Cluster, error) {
	if err := s.enter(ctx); err != nil {
		return berth.Cluster{}, failed("get cluster "+id, err)
	}
	defer s.db.mu.Unlock()
	e := s.db.clusters[id]
	if e == nil {
		return berth.Cluster{}, notFound("get cluster "+id, "cluster "+id)
	}
	return e.c, nil
}

// ListClusters returns clusters oldest first (by CreatedAt, then id), the
// order they are kept in.
func (s *Store) ListClusters(ctx context.Context, f store.ClusterFilter) ([]berth.Cluster, error) {
	if err := s.enter(ctx); err != nil {
		return nil, failed("list clusters", err)
	}
	defer s.db.mu.Unlock()
	cs := []berth.Cluster{}
	for _, e := range s.db.clusterOrder {
		if f.Pool != "" && e.c.Pool != f.Pool || f.State != "" && e.c.State != f.State {
			continue
		}
		cs = append(cs, e.c)
	}
	return cs, nil
}

// ClusterAttempts returns the attempts that ran on a cluster, oldest first
// (by start, then job submission order and attempt number), with JobID
// set. It reads only the jobs the cluster index names. An unknown cluster
// has none.
func (s *Store) ClusterAttempts(ctx context.Context, clusterID string) ([]berth.Attempt, error) {
	if err := s.enter(ctx); err != nil {
		return nil, failed("list attempts on cluster "+clusterID, err)
	}
	defer s.db.mu.Unlock()
	type ran struct {
		job *berth.Job
		a   *berth.Attempt
	}
	var found []ran
	for e := range s.db.onCluster[clusterID] {
		for i := range e.job.Attempts {
			if a := &e.job.Attempts[i]; a.ClusterID == clusterID {
				found = append(found, ran{&e.job, a})
			}
		}
	}
	slices.SortFunc(found, func(x, y ran) int {
		if c := x.a.StartedAt.Compare(y.a.StartedAt); c != 0 {
			return c
		}
		if c := cmp.Compare(x.job.Seq, y.job.Seq); c != 0 {
			return c
		}
		return cmp.Compare(x.a.N, y.a.N)
	})
	as := make([]berth.Attempt, len(found))
	for i, r := range found {
		as[i] = cloneAttempts([]berth.Attempt{*r.a})[0]
		as[i].JobID = r.job.ID
	}
	return as, nil
}

// ListEvents returns events oldest first (in the order they were
// appended); with a Limit, the oldest Limit of them. A job or cluster
// filter reads that job's or cluster's events only.
func (s *Store) ListEvents(ctx context.Context, f store.EventFilter) ([]berth.Event, error) {
	if f.Limit < 0 {
		return nil, &berth.Error{Kind: berth.ErrInvalid, Op: "memory: list events", Public: fmt.Sprintf("limit %d is negative", f.Limit)}
	}
	if err := s.enter(ctx); err != nil {
		return nil, failed("list events", err)
	}
	db := s.db
	defer db.mu.Unlock()
	full := func(evs []berth.Event) bool { return f.Limit > 0 && len(evs) == f.Limit }
	evs := []berth.Event{}
	var idx []int
	switch {
	case f.JobID != "":
		idx = db.eventsByJob[f.JobID]
	case f.ClusterID != "":
		idx = db.eventsByCluster[f.ClusterID]
	default:
		n := db.nEvents
		if f.Limit > 0 && f.Limit < n {
			n = f.Limit
		}
		evs = make([]berth.Event, 0, n)
		for _, chunk := range db.events {
			if len(evs) == n {
				break
			}
			if len(evs)+len(chunk) > n {
				chunk = chunk[:n-len(evs)]
			}
			evs = append(evs, chunk...)
		}
		return evs, nil
	}
	for _, i := range idx {
		if full(evs) {
			break
		}
		if ev := db.event(i); f.ClusterID == "" || ev.ClusterID == f.ClusterID {
			evs = append(evs, *ev)
		}
	}
	return evs, nil
}
