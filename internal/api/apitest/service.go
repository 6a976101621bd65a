// Package apitest provides Service, an in-memory api.Service for the tests
// of the API, its Go client and the CLI. It keeps jobs, pools and clusters
// in maps, enforces idempotency keys, answers with berth's errors and the
// same public messages as the real service, and lets a test drive jobs and
// clusters through their states (Update, Finish) the way the real
// service's loop would.
//
// It is a test double, not a model of scheduling: nothing runs by itself.
package apitest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/berthhq/berth/internal/api"
	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/clock"
	"github.com/berthhq/berth/internal/store"
)

var _ api.Service = (*Service)(nil)

// Service is an in-memory api.Service. The zero value is not usable; call
// New.
type Service struct {
	clk clock.Clock

	mu           sync.Mutex
	ids          int
	jobs         map[string]*berth.Job
	jobOrder     []string // oldest first
	keys         map[string]string
	pools        map[string]berth.PoolStatus
	poolOrder    []string
	clusters     map[string]*berth.ClusterDetail
	clusterOrder []string
	events       []berth.Event
	logs         map[logKey]berth.Logs
	ready        error
	mutations    int
	waiters      int
	// changed is closed, and replaced, whenever anything changes; WaitJob
	// waits on it.
	changed chan struct{}
}

type logKey struct {
	job           string
	attempt, step int
}

// New returns an empty service whose timestamps and WaitJob timeouts come
// from clk.
func New(clk clock.Clock) *Service {
	return &Service{
		clk:      clk,
		jobs:     map[string]*berth.Job{},
		keys:     map[string]string{},
		pools:    map[string]berth.PoolStatus{},
		clusters: map[string]*berth.ClusterDetail{},
		logs:     map[logKey]berth.Logs{},
		changed:  make(chan struct{}),
	}
}

// changedLocked counts a mutation and wakes the waiters.
func (s *Service) changedLocked() {
	s.mutations++
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Service) eventLocked(jobID, clusterID, kind, msg string) {
	s.events = append(s.events, berth.Event{
		Seq: int64(len(s.events) + 1), At: s.clk.Now(),
		JobID: jobID, ClusterID: clusterID, Kind: kind, Message: msg,
	})
}

// AddPool adds or replaces a pool. Its provider decides whether its
// clusters can be killed: "local" and "sim" can, others cannot.
func (s *Service) AddPool(p berth.PoolStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pools[p.Name]; !ok {
		s.poolOrder = append(s.poolOrder, p.Name)
	}
	s.pools[p.Name] = p
	s.changedLocked()
}

// AddCluster adds or replaces a cluster.
func (s *Service) AddCluster(c berth.ClusterDetail) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clusters[c.ID]; !ok {
		s.clusterOrder = append(s.clusterOrder, c.ID)
	}
	c = cloneCluster(c)
	s.clusters[c.ID] = &c
	s.changedLocked()
}

// SetLogs stores what JobLogs answers for l.JobID, l.Attempt, l.Step.
func (s *Service) SetLogs(l berth.Logs) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logs[logKey{l.JobID, l.Attempt, l.Step}] = l
	s.changedLocked()
}

// SetReady sets what Ready returns.
func (s *Service) SetReady(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ready = err
}

// Update changes a job in place, as the loop would, and wakes its waiters.
func (s *Service) Update(id string, f func(*berth.Job)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return notFound("job " + id)
	}
	f(j)
	s.changedLocked()
	return nil
}

// Finish ends a job in state with reason, as the loop would.
func (s *Service) Finish(id string, state berth.JobState, reason berth.Reason) error {
	return s.Update(id, func(j *berth.Job) {
		j.State, j.Reason, j.EndedAt = state, reason, s.clk.Now()
		s.eventLocked(id, j.ClusterID, string(state), "job "+string(state))
	})
}

// Mutations counts the changes made so far, so a test can tell that a
// request changed nothing.
func (s *Service) Mutations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mutations
}

// Waiters is the number of WaitJob calls blocked now.
func (s *Service) Waiters() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiters
}

// Submit implements api.Service.
func (s *Service) Submit(ctx context.Context, spec berth.JobSpec) (berth.Job, bool, error) {
	if err := spec.Validate(); err != nil {
		return berth.Job{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := spec.CheckPools(slices.Sorted(maps.Keys(s.pools))); err != nil {
		return berth.Job{}, false, err
	}
	if spec.IdempotencyKey != "" {
		if id, ok := s.keys[spec.IdempotencyKey]; ok {
			j := s.jobs[id]
			if field := spec.Mismatch(j); field != "" {
				return berth.Job{}, false, berth.IdempotencyConflict(spec.IdempotencyKey, id, field)
			}
			return cloneJob(*j), false, nil
		}
	}
	return s.createLocked(spec), true, nil
}

// createLocked makes the job of a spec that passed every check.
func (s *Service) createLocked(spec berth.JobSpec) berth.Job {
	s.ids++
	j := spec.NewJob(fmt.Sprintf("job-%04d", s.ids), s.clk.Now())
	j.Seq = int64(s.ids)
	s.jobs[j.ID] = &j
	s.jobOrder = append(s.jobOrder, j.ID)
	if spec.IdempotencyKey != "" {
		s.keys[spec.IdempotencyKey] = j.ID
	}
	s.eventLocked(j.ID, "", "queued", "submitted to pool "+j.Pool)
	s.changedLocked()
	return cloneJob(j)
}

// SubmitBatch implements api.Service: every spec is checked, taken keys
// included, before any job is made.
func (s *Service) SubmitBatch(ctx context.Context, specs []berth.JobSpec) ([]berth.Submitted, error) {
	if len(specs) == 0 || len(specs) > berth.MaxBatch {
		return nil, berth.Errorf(berth.ErrInvalid, "jobs: %d given, want 1 to %d", len(specs), berth.MaxBatch)
	}
	at := func(i int) string { return fmt.Sprintf("jobs[%d]", i) }
	for i := range specs {
		if err := specs[i].Validate(); err != nil {
			return nil, berth.Within(err, at(i))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clk.Now()
	held := make([]*berth.Job, len(specs))
	first := map[string]int{}
	for i, spec := range specs {
		if err := spec.CheckPools(slices.Sorted(maps.Keys(s.pools))); err != nil {
			return nil, berth.Within(err, at(i))
		}
		k := spec.IdempotencyKey
		if k == "" {
			continue
		}
		if id, ok := s.keys[k]; ok {
			held[i] = s.jobs[id]
		} else if f, ok := first[k]; ok {
			j := specs[f].NewJob("", now)
			held[i] = &j
		} else {
			first[k] = i
			continue
		}
		if field := spec.Mismatch(held[i]); field != "" {
			return nil, berth.Within(berth.IdempotencyConflict(k, held[i].ID, field), at(i))
		}
	}
	out := make([]berth.Submitted, len(specs))
	for i, spec := range specs {
		if held[i] != nil {
			out[i] = berth.Submitted{Job: cloneJob(*s.jobs[s.keys[spec.IdempotencyKey]])}
			continue
		}
		out[i] = berth.Submitted{Job: s.createLocked(spec), Created: true}
	}
	return out, nil
}

// Job implements api.Service.
func (s *Service) Job(ctx context.Context, id string) (berth.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return berth.Job{}, notFound("job " + id)
	}
	return cloneJob(*j), nil
}

// WaitJob implements api.Service.
func (s *Service) WaitJob(ctx context.Context, id string, wait time.Duration) (berth.Job, error) {
	timeout := s.clk.After(wait)
	for {
		s.mu.Lock()
		j, ok := s.jobs[id]
		if !ok {
			s.mu.Unlock()
			return berth.Job{}, notFound("job " + id)
		}
		if j.State.Terminal() {
			c := cloneJob(*j)
			s.mu.Unlock()
			return c, nil
		}
		changed := s.changed
		s.waiters++
		s.mu.Unlock()

		var timedOut bool
		var err error
		select {
		case <-changed:
		case <-timeout:
			timedOut = true
		case <-ctx.Done():
			err = ctx.Err()
		}
		s.mu.Lock()
		s.waiters--
		s.mu.Unlock()
		if err != nil {
			return berth.Job{}, fmt.Errorf("wait for job %s: %w", id, err)
		}
		if timedOut {
			return s.Job(ctx, id)
		}
	}
}

// Jobs implements api.Service: newest first; the cursor is the id of the
// last job of the previous page.
func (s *Service) Jobs(ctx context.Context, f store.JobFilter) ([]berth.Job, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	limit := f.Limit
	if limit == 0 {
		limit = store.DefaultLimit
	}
	i := len(s.jobOrder) - 1
	if f.Cursor != "" {
		i = slices.Index(s.jobOrder, f.Cursor) - 1
		if i < -1 {
			return nil, "", berth.Errorf(berth.ErrInvalid, "cursor %q is not one a listing of jobs handed out", f.Cursor)
		}
	}
	var out []berth.Job
	for ; i >= 0; i-- {
		j := s.jobs[s.jobOrder[i]]
		if f.State != "" && j.State != f.State || f.Pool != "" && j.Pool != f.Pool {
			continue
		}
		match := true
		for k, v := range f.Labels {
			if got, ok := j.Labels[k]; !ok || got != v {
				match = false
			}
		}
		if !match {
			continue
		}
		if len(out) == limit {
			return out, out[len(out)-1].ID, nil
		}
		out = append(out, cloneJob(*j))
	}
	return out, "", nil
}

// Cancel implements api.Service. The fake cancels at once.
func (s *Service) Cancel(ctx context.Context, id string) (berth.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return berth.Job{}, notFound("job " + id)
	}
	if j.State.Terminal() {
		return cloneJob(*j), berth.Errorf(berth.ErrConflict, "job %s has already ended (%s)", id, j.State)
	}
	j.CancelRequested = true
	j.State, j.Reason, j.EndedAt = berth.JobCancelled, berth.ReasonCancelled, s.clk.Now()
	s.eventLocked(id, j.ClusterID, "cancelled", "job cancelled")
	s.changedLocked()
	return cloneJob(*j), nil
}

// JobLogs implements api.Service.
func (s *Service) JobLogs(ctx context.Context, id string, attempt, step int) (berth.Logs, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return berth.Logs{}, notFound("job " + id)
	}
	if attempt == 0 {
		attempt = len(j.Attempts)
	}
	l, ok := s.logs[logKey{id, attempt, step}]
	if !ok {
		return berth.Logs{}, berth.Errorf(berth.ErrNotFound, "step %d of job %s did not run in attempt %d", step, id, attempt)
	}
	return l, nil
}

// JobEvents implements api.Service.
func (s *Service) JobEvents(ctx context.Context, id string) ([]berth.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.jobs[id]; !ok {
		return nil, notFound("job " + id)
	}
	var out []berth.Event
	for _, e := range s.events {
		if e.JobID == id {
			out = append(out, e)
		}
	}
	return out, nil
}

// Pools implements api.Service.
func (s *Service) Pools(ctx context.Context) ([]berth.PoolStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []berth.PoolStatus
	for _, name := range s.poolOrder {
		out = append(out, s.pools[name])
	}
	return out, nil
}

// Pool implements api.Service.
func (s *Service) Pool(ctx context.Context, name string) (berth.PoolStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pools[name]
	if !ok {
		return berth.PoolStatus{}, berth.Errorf(berth.ErrNotFound, "pool %q not found", name)
	}
	return p, nil
}

// Unblock implements api.Service.
func (s *Service) Unblock(ctx context.Context, name string) (berth.PoolStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pools[name]
	if !ok {
		return berth.PoolStatus{}, berth.Errorf(berth.ErrNotFound, "pool %q not found", name)
	}
	if p.Blocked {
		p.Blocked, p.BlockedReason, p.BlockedAt = false, "", time.Time{}
		s.pools[name] = p
		s.eventLocked("", "", "pool_unblocked", "pool "+name+" unblocked by request")
		s.changedLocked()
	}
	return p, nil
}

// Block blocks a pool at a time as a permanent provider failure would,
// with the provider's message as the reason.
func (s *Service) Block(name, reason string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pools[name]
	if !ok {
		return berth.Errorf(berth.ErrNotFound, "pool %q not found", name)
	}
	p.Blocked, p.BlockedReason, p.BlockedAt = true, reason, at
	s.pools[name] = p
	s.changedLocked()
	return nil
}

// SetStrays sets the stray clusters a pool reports.
func (s *Service) SetStrays(name string, ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pools[name]
	p.Strays = ids
	s.pools[name] = p
	s.changedLocked()
}

// Clusters implements api.Service.
func (s *Service) Clusters(ctx context.Context, f store.ClusterFilter) ([]berth.Cluster, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []berth.Cluster
	for _, id := range s.clusterOrder {
		c := s.clusters[id]
		if f.Pool != "" && c.Pool != f.Pool || f.State != "" && c.State != f.State {
			continue
		}
		out = append(out, c.Cluster)
	}
	return out, nil
}

// Cluster implements api.Service.
func (s *Service) Cluster(ctx context.Context, id string) (berth.ClusterDetail, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clusters[id]
	if !ok {
		return berth.ClusterDetail{}, notFound("cluster " + id)
	}
	return cloneCluster(*c), nil
}

// Drain implements api.Service.
func (s *Service) Drain(ctx context.Context, id string) (berth.Cluster, error) {
	return s.moveCluster(id, "drain", berth.ClusterDraining, "drained by request")
}

// Terminate implements api.Service.
func (s *Service) Terminate(ctx context.Context, id string) (berth.Cluster, error) {
	return s.moveCluster(id, "terminate", berth.ClusterTerminating, "terminated by request")
}

// Kill implements api.Service: clusters of "local" and "sim" pools can be
// killed, others are berth.ErrUnsupported.
func (s *Service) Kill(ctx context.Context, id string) (berth.Cluster, error) {
	s.mu.Lock()
	c, ok := s.clusters[id]
	if ok {
		switch s.pools[c.Pool].Provider {
		case "local", "sim":
		default:
			s.mu.Unlock()
			return berth.Cluster{}, berth.Errorf(berth.ErrUnsupported, "cluster %s: provider %q cannot inject faults", id, s.pools[c.Pool].Provider)
		}
	}
	s.mu.Unlock()
	return s.moveCluster(id, "kill", berth.ClusterLost, "killed by request")
}

func (s *Service) moveCluster(id, verb string, to berth.ClusterState, reason string) (berth.Cluster, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clusters[id]
	if !ok {
		return berth.Cluster{}, notFound("cluster " + id)
	}
	if !c.State.CanMove(to) {
		return berth.Cluster{}, &berth.Error{Kind: berth.ErrConflict, Op: verb + " cluster " + id, Public: fmt.Sprintf("cluster %s is already %s", id, c.State)}
	}
	c.State, c.Reason = to, reason
	if to.Terminal() {
		c.EndedAt = s.clk.Now()
	}
	s.eventLocked("", id, string(to), reason)
	c.Events = append(c.Events, s.events[len(s.events)-1])
	s.changedLocked()
	return c.Cluster, nil
}

// Ready implements api.Service.
func (s *Service) Ready(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
}

// notFound is the real service's answer for an unknown job or cluster
// (what is "job job-1").
func notFound(what string) error {
	return berth.Errorf(berth.ErrNotFound, "%s not found", what)
}

// cloneJob copies a job deeply enough that the caller may read it while the
// fake changes the original.
func cloneJob(j berth.Job) berth.Job {
	j.Steps = slices.Clone(j.Steps)
	j.Labels = maps.Clone(j.Labels)
	j.Then = slices.Clone(j.Then)
	j.Attempts = slices.Clone(j.Attempts)
	for i := range j.Attempts {
		j.Attempts[i].Steps = slices.Clone(j.Attempts[i].Steps)
	}
	// As the real service: a wait is shown only on a queued job, whatever
	// a test set before the job moved on, and a queued job no "loop" has
	// looked at (no test set its wait) is pending.
	switch {
	case j.State != berth.JobQueued:
		j.Wait = berth.Wait{}
	case j.WaitReason == "":
		j.Wait = berth.Wait{WaitReason: berth.WaitPending}
		j.WaitMessage = j.Wait.Describe(j.Pool, 0, "")
	}
	return j
}

func cloneCluster(c berth.ClusterDetail) berth.ClusterDetail {
	c.Attempts = slices.Clone(c.Attempts)
	c.Events = slices.Clone(c.Events)
	return c
}

// Seed gives the service a fixed fleet that tests can name, stamped with
// the clock's time:
//
//	pool small  provider local (its clusters can be killed), 2 slots, 0..3 clusters
//	pool spark  provider emr (they cannot), 8 slots, 0..10 clusters, a fallback
//	cl-0001     ready in small, one job running, with one attempt and one event
//	cl-0002     ready in spark, idle
//	cl-0003     terminated in small
func (s *Service) Seed() {
	now := s.clk.Now()
	s.AddPool(berth.PoolStatus{
		Pool:        berth.Pool{Name: "small", Provider: "local", Slots: 2, MaxClusters: 3, PricePerHour: 1},
		IdleTimeout: berth.Duration(30 * time.Second),
		Clusters:    map[berth.ClusterState]int{berth.ClusterReady: 1, berth.ClusterTerminated: 1},
		Queued:      1,
		Running:     1,
		FreeSlots:   1,
	})
	s.AddPool(berth.PoolStatus{
		Pool: berth.Pool{Name: "spark", Provider: "emr", Slots: 8, MaxClusters: 10, PricePerHour: 12.5,
			Fallback: &berth.Fallback{AfterFailures: 2, For: time.Hour}},
		IdleTimeout: berth.Duration(10 * time.Minute),
		Clusters:    map[berth.ClusterState]int{berth.ClusterReady: 1},
		FreeSlots:   8,
	})
	s.AddCluster(berth.ClusterDetail{
		Cluster: berth.Cluster{ID: "cl-0001", Pool: "small", State: berth.ClusterReady, Slots: 2,
			PricePerHour: 1, CreatedAt: now, ReadyAt: now, Running: 1, Cost: 0.5},
		Attempts: []berth.Attempt{{N: 1, JobID: "job-9999", ClusterID: "cl-0001", State: berth.AttemptSucceeded,
			Reason: berth.ReasonSucceeded, StartedAt: now, EndedAt: now, Cost: 0.25}},
		Events: []berth.Event{{Seq: 1, At: now, ClusterID: "cl-0001", Kind: "ready", Message: "cluster ready"}},
	})
	s.AddCluster(berth.ClusterDetail{Cluster: berth.Cluster{ID: "cl-0002", Pool: "spark", State: berth.ClusterReady,
		ProviderID: "j-2AXXXXXXGAPLF", Slots: 8, PricePerHour: 12.5, CreatedAt: now, ReadyAt: now, IdleSince: now}})
	s.AddCluster(berth.ClusterDetail{Cluster: berth.Cluster{ID: "cl-0003", Pool: "small", State: berth.ClusterTerminated,
		Slots: 2, PricePerHour: 1, CreatedAt: now, EndedAt: now, Reason: "idle", Cost: 0.01}})
}
