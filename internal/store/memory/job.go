package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/store"
)

// CreateJob stores a new job: CreateJobs with one.
func (s *Store) CreateJob(ctx context.Context, job berth.Job) (berth.Job, bool, error) {
	out, err := s.CreateJobs(ctx, []berth.Job{job}, nil)
	if err != nil {
		return berth.Job{}, false, err
	}
	return out[0].Job, out[0].Created, nil
}

// CreateJobs stores new jobs with their queued events, all or none, or
// returns the ones that hold their idempotency keys. A job with an id that
// exists already is berth.ErrConflict. The jobs are durable when it
// returns, as far as memory is: until the process ends.
func (s *Store) CreateJobs(ctx context.Context, jobs []berth.Job, held func(int, *berth.Job) error) ([]berth.Submitted, error) {
	for _, job := range jobs {
		if job.ID == "" {
			return nil, fmt.Errorf("memory: create job: %w: empty id", berth.ErrInvalid)
		}
		if err := store.CheckStarted(&job); err != nil {
			return nil, fmt.Errorf("memory: create job: %w", err)
		}
	}
	if len(jobs) == 0 {
		return nil, nil
	}
	if err := s.enter(ctx); err != nil {
		return nil, failed("create job "+jobs[0].ID, err)
	}
	db := s.db
	defer db.mu.Unlock()
	// Every job is checked before any is stored: all or none. A used key
	// wins over a used id, as in the sqlite driver.
	ids, keys := map[string]bool{}, map[string]int{}
	hit := make([]int, len(jobs)) // 1 + the index of the job of the same key in this call
	for i, job := range jobs {
		if k := job.IdempotencyKey; k != "" {
			var holder *berth.Job
			if e := db.keys[k]; e != nil {
				holder = &e.job
			} else if first, ok := keys[k]; ok {
				hit[i], holder = first+1, &jobs[first]
			}
			if holder != nil {
				if held != nil {
					if err := held(i, holder); err != nil {
						return nil, err
					}
				}
				continue
			}
			keys[k] = i
		}
		if db.jobs[job.ID] != nil || ids[job.ID] {
			// No public message, as from the sqlite driver: ids are the
			// service's, so this is its bug, not the user's.
			return nil, &berth.Error{Kind: berth.ErrConflict, Op: "memory: create job " + job.ID,
				Err: fmt.Errorf("a job with id %s exists", job.ID)}
		}
		ids[job.ID] = true
	}
	out := make([]berth.Submitted, len(jobs))
	for i, job := range jobs {
		if hit[i] > 0 {
			out[i] = berth.Submitted{Job: out[hit[i]-1].Job}
			out[i].Job = cloneJob(&out[i].Job)
			continue
		}
		if job.IdempotencyKey != "" {
			if e := db.keys[job.IdempotencyKey]; e != nil {
				out[i] = berth.Submitted{Job: cloneJob(&e.job)}
				continue
			}
		}
		e := &jobEntry{job: cloneJob(&job)}
		if e.job.State == "" {
			e.job.State = berth.JobQueued
		}
		e.job.CancelRequested = false
		e.job.Seq = int64(len(db.bySeq)) + 1
		db.bySeq = append(db.bySeq, e)
		db.jobs[job.ID] = e
		db.reindex(e, nil)
		if !e.job.State.Terminal() {
			db.appendEvent(store.QueuedEvent(&e.job))
		}
		out[i] = berth.Submitted{Job: cloneJob(&e.job), Created: true}
	}
	return out, nil
}

// reindex brings the indexes up to date with e.job, which was old before
// (nil for a new job). It touches only what changed, so rewriting a job
// that stays live on the same clusters costs no index writes.
func (db *DB) reindex(e *jobEntry, old *berth.Job) {
	j := &e.job
	oldKey := ""
	if old != nil {
		oldKey = old.IdempotencyKey
	}
	if old == nil || oldKey != j.IdempotencyKey {
		if oldKey != "" && db.keys[oldKey] == e {
			delete(db.keys, oldKey)
		}
		if j.IdempotencyKey != "" {
			db.keys[j.IdempotencyKey] = e
		}
	}

	wasLive := old != nil && !old.State.Terminal()
	switch isLive := !j.State.Terminal(); {
	case isLive && !wasLive:
		db.live[e] = struct{}{}
		if j.CancelRequested {
			db.cancels[e] = struct{}{}
		}
	case !isLive && wasLive:
		delete(db.live, e)
		delete(db.cancels, e)
	}

	if old != nil && sameClusters(old.Attempts, j.Attempts) {
		return
	}
	if old != nil {
		for _, a := range old.Attempts {
			if !onClusterOf(j.Attempts, a.ClusterID) {
				set := db.onCluster[a.ClusterID]
				delete(set, e)
				if len(set) == 0 {
					delete(db.onCluster, a.ClusterID)
				}
			}
		}
	}
	for _, a := range j.Attempts {
		set := db.onCluster[a.ClusterID]
		if set == nil {
			set = map[*jobEntry]struct{}{}
			db.onCluster[a.ClusterID] = set
		}
		set[e] = struct{}{}
	}
}

func sameClusters(a, b []berth.Attempt) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ClusterID != b[i].ClusterID {
			return false
		}
	}
	return true
}

func onClusterOf(as []berth.Attempt, cluster string) bool {
	for i := range as {
		if as[i].ClusterID == cluster {
			return true
		}
	}
	return false
}

// GetJob returns one job with its attempts.
func (s *Store) GetJob(ctx context.Context, id string) (berth.Job, error) {
	if err := s.enter(ctx); err != nil {
		return berth.Job{}, failed("get job "+id, err)
	}
	defer s.db.mu.Unlock()
	e := s.db.jobs[id]
	if e == nil {
		return berth.Job{}, notFound("get job "+id, "job "+id)
	}
	return cloneJob(&e.job), nil
}

// GetJobs returns the jobs of ids that exist, each once, in the order of
// ids.
func (s *Store) GetJobs(ctx context.Context, ids []string) ([]berth.Job, error) {
	if err := s.enter(ctx); err != nil {
		return nil, failed(fmt.Sprintf("get %d jobs", len(ids)), err)
	}
	defer s.db.mu.Unlock()
	out := make([]berth.Job, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if e := s.db.jobs[id]; e != nil && !seen[id] {
			seen[id] = true
			out = append(out, cloneJob(&e.job))
		}
	}
	return out, nil
}

// ListJobs pages through jobs newest first. The cursor is the Seq of the
// last job of the previous page, as the sqlite driver's is, and is
// checked the same way. It walks the jobs from the cursor down and stops
// once it has a page and knows whether another follows.
func (s *Store) ListJobs(ctx context.Context, f store.JobFilter) ([]berth.Job, string, error) {
	limit := f.Limit
	switch {
	case limit < 0:
		return nil, "", &berth.Error{Kind: berth.ErrInvalid, Op: "memory: list jobs", Public: fmt.Sprintf("limit %d is negative", limit)}
	case limit == 0:
		limit = store.DefaultLimit
	case limit > store.MaxLimit:
		limit = store.MaxLimit
	}
	var before int64
	if f.Cursor != "" {
		var err error
		before, err = strconv.ParseInt(f.Cursor, 10, 64)
		if err != nil || before <= 0 {
			return nil, "", &berth.Error{Kind: berth.ErrInvalid, Op: "memory: list jobs", Public: fmt.Sprintf("cursor %q is not one a listing of jobs handed out", f.Cursor)}
		}
	}
	if err := s.enter(ctx); err != nil {
		return nil, "", failed("list jobs", err)
	}
	db := s.db
	defer db.mu.Unlock()
	// The job with Seq n is at index n-1, so those before the cursor are
	// below index before-1.
	i := len(db.bySeq)
	if f.Cursor != "" && before-1 < int64(i) {
		i = int(before - 1)
	}
	jobs := []berth.Job{}
	next := ""
	for i--; i >= 0; i-- {
		j := &db.bySeq[i].job
		if !matches(j, &f) {
			continue
		}
		if len(jobs) == limit {
			next = strconv.FormatInt(jobs[limit-1].Seq, 10)
			break
		}
		jobs = append(jobs, cloneJob(j))
	}
	return jobs, next, nil
}

func matches(j *berth.Job, f *store.JobFilter) bool {
	if f.State != "" && j.State != f.State || f.Pool != "" && j.Pool != f.Pool {
		return false
	}
	for k, v := range f.Labels {
		if got, ok := j.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// RequestCancel marks a job that has not ended as to be cancelled, and
// records that in the job's events the first time it is asked. Asking again
// returns the job unchanged.
func (s *Store) RequestCancel(ctx context.Context, id string, at time.Time) (berth.Job, error) {
	op := "request cancel of job "
	if err := s.enter(ctx); err != nil {
		return berth.Job{}, failed(op+id, err)
	}
	db := s.db
	defer db.mu.Unlock()
	e := db.jobs[id]
	if e == nil {
		return berth.Job{}, notFound(op+id, "job "+id)
	}
	if e.job.State.Terminal() {
		return cloneJob(&e.job), &berth.Error{Kind: berth.ErrConflict, Op: "memory: " + op + id,
			Public: fmt.Sprintf("job %s has already ended (%s)", id, e.job.State)}
	}
	if !e.job.CancelRequested {
		e.job.CancelRequested = true
		db.cancels[e] = struct{}{}
		db.appendEvent(berth.Event{At: at, JobID: id, Kind: store.EventCancelRequested, Message: "cancel requested"})
	}
	return cloneJob(&e.job), nil
}

// JobsAfter returns jobs with Seq > seq in Seq order: a slice of bySeq,
// copied. A limit of 0 means store.DefaultLimit; larger limits are not
// clamped, as the sqlite driver's are not.
func (s *Store) JobsAfter(ctx context.Context, seq int64, limit int) ([]berth.Job, error) {
	if limit < 0 {
		return nil, fmt.Errorf("memory: jobs after %d: %w: limit %d is negative", seq, berth.ErrInvalid, limit)
	}
	if limit == 0 {
		limit = store.DefaultLimit
	}
	if err := s.enter(ctx); err != nil {
		return nil, failed(fmt.Sprintf("jobs after %d", seq), err)
	}
	db := s.db
	defer db.mu.Unlock()
	// Jobs with Seq > seq start at index seq.
	start := int64(len(db.bySeq))
	if seq < start {
		start = max(seq, 0)
	}
	rest := db.bySeq[start:]
	if limit < len(rest) {
		rest = rest[:limit]
	}
	jobs := make([]berth.Job, len(rest))
	for i, e := range rest {
		jobs[i] = cloneJob(&e.job)
	}
	return jobs, nil
}

// CancelRequests returns, in Seq order, the ids of live jobs with a cancel
// request, from their own index: the loop asks every pass.
func (s *Store) CancelRequests(ctx context.Context) ([]string, error) {
	if err := s.enter(ctx); err != nil {
		return nil, failed("list cancel requests", err)
	}
	defer s.db.mu.Unlock()
	es := make([]*jobEntry, 0, len(s.db.cancels))
	for e := range s.db.cancels {
		es = append(es, e)
	}
	slices.SortFunc(es, bySeq)
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.job.ID
	}
	return ids, nil
}

func bySeq(a, b *jobEntry) int { return cmp.Compare(a.job.Seq, b.job.Seq) }
