package memory

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/store"
)

// Commit writes a batch: all of it or none. It checks the whole batch
// first, and only then writes, which cannot fail; so a batch that fails
// has written nothing.
func (s *Store) Commit(ctx context.Context, b store.Batch) error {
	if err := s.enter(ctx); err != nil {
		return failed("commit", err)
	}
	db := s.db
	defer db.mu.Unlock()
	if err := db.check(&b); err != nil {
		return err
	}
	for i := range b.Clusters {
		db.putCluster(normCluster(b.Clusters[i]))
	}
	for _, p := range b.Pools {
		db.pools[p.Pool] = normPool(p)
	}
	maps.Copy(db.affinity, b.Affinity)
	for i := range b.Jobs {
		e := db.jobs[b.Jobs[i].ID]
		old := e.job
		given := cloneJobOver(&b.Jobs[i], &old)
		// The submission's fields stay, and so do the store's own (the
		// loop's copy of CancelRequested may be older than a request the
		// API recorded since).
		j := old
		j.SetRun(&given)
		if j.StartedAt.IsZero() {
			j.StartedAt = old.StartedAt // see store.CheckStarted
		}
		j.Attempts = mergeAttempts(old.Attempts, given.Attempts)
		e.job = j
		db.reindex(e, &old)
	}
	for _, ev := range b.Events {
		db.appendEvent(ev)
	}
	return nil
}

// mergeAttempts upserts given into old by number, in a new slice ordered
// by number.
func mergeAttempts(old, given []berth.Attempt) []berth.Attempt {
	out := slices.Clone(old)
	for _, a := range given {
		if i := slices.IndexFunc(out, func(o berth.Attempt) bool { return o.N == a.N }); i >= 0 {
			out[i] = a
		} else {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b berth.Attempt) int { return cmp.Compare(a.N, b.N) })
	if out == nil {
		out = []berth.Attempt{}
	}
	return out
}

// check finds what would make the sqlite driver fail the batch: an empty
// cluster id or pool, a job that does not exist.
func (db *DB) check(b *store.Batch) error {
	for _, c := range b.Clusters {
		if c.ID == "" {
			return fmt.Errorf("memory: commit: %w: cluster with empty id", berth.ErrInvalid)
		}
	}
	for _, p := range b.Pools {
		if p.Pool == "" {
			return fmt.Errorf("memory: commit: %w: pool state with empty pool", berth.ErrInvalid)
		}
	}
	for i := range b.Jobs {
		if db.jobs[b.Jobs[i].ID] == nil {
			return notFound("commit", "job "+b.Jobs[i].ID)
		}
		if err := store.CheckStarted(&b.Jobs[i]); err != nil {
			return fmt.Errorf("memory: commit: %w", err)
		}
	}
	return nil
}

// putCluster upserts a cluster, keeping clusterOrder sorted and the live
// index current. A new cluster is nearly always the newest, so it is
// appended; one whose CreatedAt changes (never, from the loop) moves.
func (db *DB) putCluster(c berth.Cluster) {
	e := db.clusters[c.ID]
	wasLive := false
	switch {
	case e == nil:
		e = &clusterEntry{c: c}
		db.clusters[c.ID] = e
		db.insertOrdered(e)
	case !e.c.CreatedAt.Equal(c.CreatedAt):
		wasLive = !e.c.State.Terminal()
		db.removeOrdered(e)
		e.c = c
		db.insertOrdered(e)
	default:
		wasLive = !e.c.State.Terminal()
		e.c = c
	}
	switch isLive := !c.State.Terminal(); {
	case isLive && !wasLive:
		db.liveClusters[e] = struct{}{}
	case !isLive && wasLive:
		delete(db.liveClusters, e)
	}
}

// byAge orders clusters oldest first, then by id: the order of
// ListClusters and Load.
func byAge(a, b *clusterEntry) int {
	if c := a.c.CreatedAt.Compare(b.c.CreatedAt); c != 0 {
		return c
	}
	return cmp.Compare(a.c.ID, b.c.ID)
}

func (db *DB) insertOrdered(e *clusterEntry) {
	n := len(db.clusterOrder)
	if n == 0 || byAge(db.clusterOrder[n-1], e) < 0 {
		db.clusterOrder = append(db.clusterOrder, e)
		return
	}
	i, _ := slices.BinarySearchFunc(db.clusterOrder, e, byAge)
	db.clusterOrder = slices.Insert(db.clusterOrder, i, e)
}

func (db *DB) removeOrdered(e *clusterEntry) {
	if i, found := slices.BinarySearchFunc(db.clusterOrder, e, byAge); found {
		db.clusterOrder = slices.Delete(db.clusterOrder, i, i+1)
	}
}

// eventChunk is how many events a chunk of the log holds.
const eventChunk = 512

// appendEvent appends one event with the next Seq, and indexes it by job
// and cluster for ListEvents.
func (db *DB) appendEvent(ev berth.Event) {
	i := db.nEvents
	ev.Seq = int64(i) + 1
	ev.At = utc(ev.At)
	if i%eventChunk == 0 {
		db.events = append(db.events, make([]berth.Event, 0, eventChunk))
	}
	last := len(db.events) - 1
	db.events[last] = append(db.events[last], ev)
	db.nEvents++
	if ev.JobID != "" {
		db.eventsByJob[ev.JobID] = append(db.eventsByJob[ev.JobID], i)
	}
	if ev.ClusterID != "" {
		db.eventsByCluster[ev.ClusterID] = append(db.eventsByCluster[ev.ClusterID], i)
	}
}

// event returns the event at index i of the log.
func (db *DB) event(i int) *berth.Event {
	return &db.events[i/eventChunk][i%eventChunk]
}

// Load returns, from the indexes of what is live, the jobs that have not
// ended in Seq order (the dormant ones as what placement needs of them), the live clusters oldest first, pool state by pool
// name, the affinity map and the highest Seq.
func (s *Store) Load(ctx context.Context) (store.State, error) {
	if err := s.enter(ctx); err != nil {
		return store.State{}, failed("load", err)
	}
	db := s.db
	defer db.mu.Unlock()

	live := make([]*jobEntry, 0, len(db.live))
	for e := range db.live {
		live = append(live, e)
	}
	slices.SortFunc(live, bySeq)
	st := store.State{
		Jobs:     make([]berth.Job, 0, len(live)),
		Dormant:  []berth.DormantJob{},
		Clusters: make([]berth.Cluster, 0, len(db.liveClusters)),
		Pools:    make([]berth.PoolState, 0, len(db.pools)),
		Affinity: maps.Clone(db.affinity),
		MaxSeq:   int64(len(db.bySeq)),
	}
	for _, e := range live {
		if j := &e.job; j.Dormant() {
			st.Dormant = append(st.Dormant, berth.DormantJob{ID: j.ID, Pool: j.Pool, Priority: j.Priority, CreatedAt: j.CreatedAt})
		} else {
			st.Jobs = append(st.Jobs, cloneJob(j))
		}
	}

	cs := make([]*clusterEntry, 0, len(db.liveClusters))
	for e := range db.liveClusters {
		cs = append(cs, e)
	}
	slices.SortFunc(cs, byAge)
	for _, e := range cs {
		st.Clusters = append(st.Clusters, e.c)
	}

	for _, p := range db.pools {
		st.Pools = append(st.Pools, p)
	}
	slices.SortFunc(st.Pools, func(a, b berth.PoolState) int { return cmp.Compare(a.Pool, b.Pool) })
	return st, nil
}
