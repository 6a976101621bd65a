package service

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/clock"
	"github.com/berthhq/berth/internal/executor"
	"github.com/berthhq/berth/internal/lifecycle"
	"github.com/berthhq/berth/internal/provider"
	"github.com/berthhq/berth/internal/store"
)

// Defaults for Options.
const (
	DefaultTick = 5 * time.Second
	// cancelWait is how long Cancel waits for the job to end before it
	// answers with the job as it is.
	cancelWait = 10 * time.Second
	// commandWait is how long a cluster command waits for the loop.
	commandWait = 30 * time.Second
)

// Pool is one configured pool and the provider that runs its clusters.
type Pool struct {
	Pool     berth.Pool
	Provider provider.Provider
	// TerminateStrays ends the clusters the provider lists (provider.Lister)
	// that Berth does not know, instead of only reporting them.
	TerminateStrays bool
	// Spec fingerprints the pool's whole configuration, provider spec
	// included: a pool blocked by a permanent failure is unblocked when it
	// changes. Empty means the fingerprint of Pool alone.
	Spec string
	// BootTime is how long a new cluster is expected to take until Berth
	// sees it ready, as configured (local and sim pools): what forecasts
	// use until a cluster of the pool has come up. Zero when unknown.
	BootTime time.Duration
}

// Options configures a Service.
type Options struct {
	Store store.Store
	Pools []Pool
	Clock clock.Clock
	Log   *slog.Logger
	// Registry receives the service's Prometheus metrics; nil registers
	// none.
	Registry prometheus.Registerer
	// Tick is the safety-net period of the loop; 0 means DefaultTick.
	Tick time.Duration
	// RetryBackoff is the wait before the first retry after a step failure;
	// it doubles with each further failure up to
	// lifecycle.MaxRetryBackoff. 0 means lifecycle.DefaultRetryBackoff.
	RetryBackoff time.Duration
	// Executor runs the loop's passes, provider calls, watchers and timers,
	// and is its clock. Nil means executor.NewReal on Clock; when set,
	// Clock is ignored.
	Executor executor.Executor
	// NewID makes the ids of jobs and clusters; nil means berth.NewID. A
	// simulation passes one that does not draw on the system's randomness.
	NewID func(prefix string, now time.Time) string
	// OnPass, when set, is called after each pass of the loop with what it
	// did. Tests and the simulator step on it.
	OnPass func(Pass)
	// KeepWhole is how many ready jobs of a pool the loop keeps whole in
	// memory before it keeps further dormant ones as their place only
	// (lifecycle.Config.KeepWhole); 0 means the default. Tests lower it.
	KeepWhole int
}

// Service runs the loop and answers the API.
type Service struct {
	store   store.Store
	clock   clock.Clock
	exec    executor.Executor
	newID   func(prefix string, now time.Time) string
	onPass  func(Pass)
	log     *slog.Logger
	tick    time.Duration
	backoff time.Duration
	// callRetry is the first wait before a failed provider call is tried
	// again (tests shorten it).
	callRetry time.Duration
	keepWhole int
	metrics   *metrics

	pools     map[string]*poolRT
	poolNames []string

	run runner
	// notices lead providers' notices to the watchers (see watch.go).
	notices notices

	mu sync.Mutex
	// next is the commit to come; long polls wait for it.
	next    *commitNote
	view    view
	running bool

	// commitErr is the last commit's error, nil once a commit succeeded,
	// and commitErrAt when the failures began: a service whose store
	// cannot write is not ready.
	commitErr   error
	commitErrAt time.Time

	ctx    context.Context
	cancel context.CancelFunc
	l      *loop
	// unlock gives up the store's Lock, held from Start to Stop.
	unlock func() error
	// waitsEnd is closed by EndWaits: long polls answer at once.
	waitsEnd     chan struct{}
	waitsEndOnce sync.Once
}

// view is what the loop publishes for readers after each pass.
type view struct {
	pools map[string]berth.PoolStatus
	// running counts each live cluster's running jobs; the loop may hand
	// the same map to many views (loop.running), so no one changes it.
	running map[string]int
	// outlook says why queued jobs wait and when they should start; the
	// loop fills it again two passes later, so it is read only under mu.
	outlook *lifecycle.Outlook
	// seq is the last submission the loop had picked up.
	seq int64
}

// New checks the options and makes a Service; Start runs it.
func New(o Options) (*Service, error) {
	if o.Store == nil {
		return nil, errors.New("service: no store")
	}
	if len(o.Pools) == 0 {
		return nil, errors.New("service: no pools")
	}
	if o.Executor == nil {
		o.Executor = executor.NewReal(o.Clock, maxCalls)
	}
	if o.NewID == nil {
		o.NewID = berth.NewID
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Tick <= 0 {
		o.Tick = DefaultTick
	}
	s := &Service{
		store:     o.Store,
		clock:     o.Executor,
		exec:      o.Executor,
		newID:     o.NewID,
		onPass:    o.OnPass,
		log:       o.Log,
		tick:      o.Tick,
		backoff:   o.RetryBackoff,
		keepWhole: o.KeepWhole,
		callRetry: lifecycle.DefaultCallRetry,
		pools:     map[string]*poolRT{},
		next:      newCommitNote(),
		waitsEnd:  make(chan struct{}),
	}
	for _, p := range o.Pools {
		if p.Provider == nil {
			return nil, fmt.Errorf("service: pool %q has no provider", p.Pool.Name)
		}
		if _, dup := s.pools[p.Pool.Name]; dup {
			return nil, fmt.Errorf("service: pool %q given twice", p.Pool.Name)
		}
		spec := p.Spec
		if spec == "" {
			spec = fingerprint(p.Pool)
		}
		_, canFind := p.Provider.(provider.Finder)
		s.pools[p.Pool.Name] = &poolRT{pool: p.Pool, prov: p.Provider, terminateStrays: p.TerminateStrays, rt: &lifecycle.Pool{
			Pool: p.Pool, State: berth.PoolState{Pool: p.Pool.Name}, Spec: spec, CanFind: canFind,
			Grace: attributionGrace(p.Provider), BootTime: p.BootTime,
		}}
		s.poolNames = append(s.poolNames, p.Pool.Name)
	}
	sort.Strings(s.poolNames)
	s.metrics = newMetrics(o.Registry)
	return s, nil
}

// Start takes the store's Lock, loads the state from the store, adopts
// what the providers run and starts the loop. It returns once the loop
// runs. When another server holds the store it fails with berth.ErrConflict
// and does nothing: a second loop would run every step again.
func (s *Service) Start(ctx context.Context) error {
	unlock, err := s.store.Lock(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.ctx, s.cancel = ctx, cancel
	l, err := s.newLoop(ctx)
	if err != nil {
		cancel()
		s.cancel = nil
		if uerr := unlock(); uerr != nil {
			s.log.Warn("release the store's lock", "err", uerr)
		}
		return err
	}
	s.unlock = unlock
	s.mu.Lock()
	s.running = true
	s.mu.Unlock()
	s.run.mu.Lock()
	s.l = l
	s.run.mu.Unlock()
	s.listen()
	s.Wake()
	return nil
}

// Stop ends the loop after the pass in progress (whose write completes) and
// waits for its provider calls and watchers, then gives up the store's
// Lock. Clusters and steps keep running, to be adopted by the next Start.
func (s *Service) Stop() {
	if !s.stopLoop() {
		return
	}
	s.run.wg.Wait()
	s.l.shutdown()
	s.release()
}

// Abandon drops the service at once, as a crash would: nothing it had
// scheduled runs any more, nothing is waited for, and the store's Lock is
// given up as a dead process's would be. Clusters and steps keep running
// at their providers, and what was committed stays in the store, for a new
// service to adopt. Simulations crash Berth with it; on the real executor,
// use Stop. Under Sim, call it from an event of its own, never from within
// a pass.
func (s *Service) Abandon() {
	if s.stopLoop() {
		s.l.shutdown()
		s.release()
	}
}

// release gives up the store's Lock: only now may another server's loop
// start.
func (s *Service) release() {
	if err := s.unlock(); err != nil {
		s.log.Warn("release the store's lock", "err", err)
	}
}

func (s *Service) stopLoop() bool {
	if s.cancel == nil || !s.close() {
		return false
	}
	s.mu.Lock()
	s.running = false
	s.mu.Unlock()
	s.cancel()
	return true
}

// commitNote tells long polls about one commit of the loop. Notes form a
// chain: a waiter holds the note of the commit to come, and once its done
// is closed, follows next through every commit it missed. Each note names
// the jobs its commit wrote, so a waiter reads the store again only when
// its own job changed, not on every commit.
type commitNote struct {
	done chan struct{}
	// Set before done is closed:
	jobs map[string]bool
	next *commitNote
}

func newCommitNote() *commitNote { return &commitNote{done: make(chan struct{})} }

// upcoming returns the note of the next commit.
func (s *Service) upcoming() *commitNote {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

// publish replaces the view and wakes everyone waiting for a commit.
func (s *Service) publish(v view, jobs map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.view = v
	n := s.next
	n.jobs, n.next = jobs, newCommitNote()
	s.next = n.next
	close(n.done)
}

// follow walks from a note whose commit happened to the next commit still
// to come, reporting whether any commit on the way wrote the job.
func follow(n *commitNote, jobID string) (*commitNote, bool) {
	wrote := false
	for {
		select {
		case <-n.done:
			wrote = wrote || n.jobs[jobID]
			n = n.next
		default:
			return n, wrote
		}
	}
}

// Ready reports whether the loop runs and the store answers.
func (s *Service) Ready(ctx context.Context) error {
	s.mu.Lock()
	running, commitErr := s.running, s.commitErr
	s.mu.Unlock()
	if !running {
		return berth.Errorf(berth.ErrUnavailable, "the loop is not running")
	}
	if commitErr != nil {
		return &berth.Error{Kind: berth.ErrUnavailable, Public: "the store cannot commit", Err: commitErr}
	}
	if err := s.store.Ping(ctx); err != nil {
		return &berth.Error{Kind: berth.ErrUnavailable, Op: "ping store", Public: "the store does not answer", Err: err}
	}
	return nil
}

// Submit validates and stores a job, then wakes the loop to place it.
func (s *Service) Submit(ctx context.Context, spec berth.JobSpec) (berth.Job, bool, error) {
	if err := s.check(&spec); err != nil {
		return berth.Job{}, false, err
	}
	now := s.clock.Now()
	job, created, err := s.store.CreateJob(ctx, spec.NewJob(s.newID("job", now), now))
	if err != nil {
		return berth.Job{}, false, fmt.Errorf("submit: %w", err)
	}
	if created {
		s.submitted(berth.Submitted{Job: job, Created: true})
	} else if field := spec.Mismatch(&job); field != "" {
		return berth.Job{}, false, berth.IdempotencyConflict(spec.IdempotencyKey, job.ID, field)
	}
	s.annotate(&job)
	return job, created, nil
}

// SubmitBatch validates and stores up to berth.MaxBatch jobs in one write:
// all of them, or on any error none. The answer is in the batch's order; a
// job whose idempotency key was taken, before or earlier in the batch, is
// answered with the job that holds it.
func (s *Service) SubmitBatch(ctx context.Context, specs []berth.JobSpec) ([]berth.Submitted, error) {
	if len(specs) == 0 || len(specs) > berth.MaxBatch {
		return nil, berth.Errorf(berth.ErrInvalid, "jobs: %d given, want 1 to %d", len(specs), berth.MaxBatch)
	}
	now := s.clock.Now()
	jobs := make([]berth.Job, len(specs))
	for i := range specs {
		if err := s.check(&specs[i]); err != nil {
			return nil, berth.Within(err, fmt.Sprintf("jobs[%d]", i))
		}
		jobs[i] = specs[i].NewJob(s.newID("job", now), now)
	}
	out, err := s.store.CreateJobs(ctx, jobs, func(i int, holder *berth.Job) error {
		if field := specs[i].Mismatch(holder); field != "" {
			return berth.Within(berth.IdempotencyConflict(specs[i].IdempotencyKey, holder.ID, field), fmt.Sprintf("jobs[%d]", i))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("submit batch: %w", err)
	}
	s.submitted(out...)
	for i := range out {
		s.annotate(&out[i].Job)
	}
	return out, nil
}

// check is what a submission must pass before it is stored: the spec on
// its own, its pool, and its steps as the pool's provider sees them.
func (s *Service) check(spec *berth.JobSpec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	if err := spec.CheckPools(s.poolNames); err != nil {
		return err
	}
	p := s.pools[spec.Pool]
	if sc, ok := p.prov.(provider.StepChecker); ok {
		for i, st := range spec.Steps {
			if err := sc.CheckStep(st); err != nil {
				return &berth.Error{Kind: berth.ErrUnprocessable, Err: err,
					Public: fmt.Sprintf("steps[%d]: pool %s (provider %s) cannot run it: %s", i, p.pool.Name, p.pool.Provider, cmp.Or(berth.Public(err), "not a step this provider runs"))}
			}
		}
	}
	return nil
}

// Job returns one job.
func (s *Service) Job(ctx context.Context, id string) (berth.Job, error) {
	j, err := s.store.GetJob(ctx, id)
	s.annotate(&j)
	return j, err
}

// annotate sets a queued job's wait from the loop's last published view:
// its own, when the last pass explained or forecast it; else its pool's,
// for a job too far back in the queue; else what the job itself says (a
// backoff), or that the loop has not picked it up yet.
func (s *Service) annotate(j *berth.Job) {
	if j.State != berth.JobQueued {
		j.Wait = berth.Wait{}
		return
	}
	s.mu.Lock()
	ps := s.view.pools[j.Pool]
	var w, rest berth.Wait
	known := false
	if o := s.view.outlook; o != nil {
		w, known = o.Jobs[j.ID]
		rest = o.Rest[j.Pool]
	}
	seen := j.Seq <= s.view.seq
	s.mu.Unlock()
	now := s.clock.Now()
	// The outlook is made at most every forecastEvery, so the job as read
	// may be newer: its own backoff comes first, one the outlook saw that
	// is over is not shown, and a start it foresaw that has passed while
	// the job still waits is due now.
	if known && w.WaitReason == berth.WaitBackoff && !w.WaitUntil.Equal(j.NotBefore) {
		known = false
	}
	if known && !w.ETA.IsZero() && w.ETA.Before(now) {
		w.ETA = now
	}
	if !known || (j.NotBefore.After(now) && w.WaitReason != berth.WaitBackoff) {
		switch {
		case j.NotBefore.After(now):
			w = berth.Wait{WaitReason: berth.WaitBackoff, WaitUntil: j.NotBefore}
		case ps.Blocked:
			w = berth.Wait{WaitReason: berth.WaitPoolBlocked}
		case seen && rest.WaitReason != "":
			w = rest
		default:
			w = berth.Wait{WaitReason: berth.WaitPending}
		}
	}
	w.WaitMessage = w.Describe(j.Pool, ps.MaxClusters, ps.BlockedReason)
	j.Wait = w
}

// WaitJob returns the job once it has ended or wait has passed.
func (s *Service) WaitJob(ctx context.Context, id string, wait time.Duration) (berth.Job, error) {
	select {
	case <-s.waitsEnd:
		wait = 0
	default:
	}
	deadline := s.clock.After(wait)
	next := s.upcoming()
	job, err := s.store.GetJob(ctx, id)
	for {
		if err != nil || job.State.Terminal() || wait <= 0 {
			s.annotate(&job)
			return job, err
		}
		select {
		case <-next.done:
			var wrote bool
			if next, wrote = follow(next, id); wrote {
				job, err = s.store.GetJob(ctx, id)
			}
		case <-deadline:
			return s.Job(ctx, id)
		case <-ctx.Done():
			s.annotate(&job)
			return job, nil
		case <-s.waitsEnd:
			s.annotate(&job)
			return job, nil
		}
	}
}

// EndWaits answers every long poll at once with its job as it is, and
// those that come later without waiting: a server that shuts down must
// not wait minutes for them. Clients poll again, elsewhere or after the
// restart.
func (s *Service) EndWaits() {
	s.waitsEndOnce.Do(func() { close(s.waitsEnd) })
}

// Jobs lists jobs.
func (s *Service) Jobs(ctx context.Context, f store.JobFilter) ([]berth.Job, string, error) {
	jobs, next, err := s.store.ListJobs(ctx, f)
	for i := range jobs {
		s.annotate(&jobs[i])
	}
	return jobs, next, err
}

// Cancel asks for a job to be cancelled and waits a little for it to end.
func (s *Service) Cancel(ctx context.Context, id string) (berth.Job, error) {
	if job, err := s.RequestCancel(ctx, id); err != nil {
		return job, err
	}
	return s.WaitJob(ctx, id, cancelWait)
}

// RequestCancel records that a job is to be cancelled, wakes the loop and
// returns without waiting.
func (s *Service) RequestCancel(ctx context.Context, id string) (berth.Job, error) {
	job, err := s.store.RequestCancel(ctx, id, s.clock.Now())
	if err != nil {
		return job, err
	}
	s.stored()
	return job, nil
}

// JobEvents returns a job's history.
func (s *Service) JobEvents(ctx context.Context, id string) ([]berth.Event, error) {
	if _, err := s.store.GetJob(ctx, id); err != nil {
		return nil, err
	}
	return s.store.ListEvents(ctx, store.EventFilter{JobID: id})
}

// JobLogs returns one step's logs of one attempt (0: the latest).
func (s *Service) JobLogs(ctx context.Context, id string, attempt, step int) (berth.Logs, error) {
	job, err := s.store.GetJob(ctx, id)
	if err != nil {
		return berth.Logs{}, err
	}
	if len(job.Attempts) == 0 {
		return berth.Logs{}, berth.Errorf(berth.ErrNotFound, "job %s has not run yet", id)
	}
	if attempt == 0 {
		attempt = len(job.Attempts)
	}
	if attempt < 1 || attempt > len(job.Attempts) {
		return berth.Logs{}, berth.Errorf(berth.ErrNotFound, "job %s has no attempt %d", id, attempt)
	}
	a := job.Attempts[attempt-1]
	var st *berth.AttemptStep
	for i := range a.Steps {
		if a.Steps[i].Index == step {
			st = &a.Steps[i]
		}
	}
	if st == nil || st.ProviderID == "" {
		return berth.Logs{}, berth.Errorf(berth.ErrNotFound, "step %d of job %s did not run in attempt %d", step, id, attempt)
	}
	c, p, err := s.clusterPool(ctx, a.ClusterID)
	if err != nil {
		return berth.Logs{}, fmt.Errorf("logs: %w", err)
	}
	lr, ok := p.prov.(provider.LogReader)
	if !ok {
		return berth.Logs{}, berth.Errorf(berth.ErrUnsupported, "provider %q keeps no logs", p.pool.Provider)
	}
	var logs berth.Logs
	err = s.callNow(ctx, func(ctx context.Context) error {
		var err error
		logs, err = lr.StepLogs(ctx, c.ProviderID, st.ProviderID)
		return err
	})
	if err != nil {
		return berth.Logs{}, &berth.Error{Op: fmt.Sprintf("logs of %s attempt %d step %d", id, attempt, step), Err: err,
			Public: fmt.Sprintf("the logs of job %s attempt %d step %d cannot be read from the provider", id, attempt, step)}
	}
	logs.JobID, logs.Attempt, logs.Step = id, attempt, step
	return logs, nil
}

// Pools returns every pool with its live counts.
func (s *Service) Pools(ctx context.Context) ([]berth.PoolStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]berth.PoolStatus, 0, len(s.poolNames))
	for _, name := range s.poolNames {
		out = append(out, s.poolStatusLocked(name))
	}
	return out, nil
}

// Pool returns one pool with its live counts.
func (s *Service) Pool(ctx context.Context, name string) (berth.PoolStatus, error) {
	if _, ok := s.pools[name]; !ok {
		return berth.PoolStatus{}, berth.Errorf(berth.ErrNotFound, "pool %q not found", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.poolStatusLocked(name), nil
}

func (s *Service) poolStatusLocked(name string) berth.PoolStatus {
	if ps, ok := s.view.pools[name]; ok {
		return ps
	}
	return poolStatus(s.pools[name].pool)
}

// Clusters lists clusters, live ones with their current load and cost.
func (s *Service) Clusters(ctx context.Context, f store.ClusterFilter) ([]berth.Cluster, error) {
	cs, err := s.store.ListClusters(ctx, f)
	if err != nil {
		return nil, err
	}
	for i := range cs {
		s.fill(&cs[i])
	}
	return cs, nil
}

// Cluster returns one cluster with its attempts and events.
func (s *Service) Cluster(ctx context.Context, id string) (berth.ClusterDetail, error) {
	c, err := s.store.GetCluster(ctx, id)
	if err != nil {
		return berth.ClusterDetail{}, err
	}
	s.fill(&c)
	attempts, err := s.store.ClusterAttempts(ctx, id)
	if err != nil {
		return berth.ClusterDetail{}, err
	}
	events, err := s.store.ListEvents(ctx, store.EventFilter{ClusterID: id})
	if err != nil {
		return berth.ClusterDetail{}, err
	}
	return berth.ClusterDetail{Cluster: c, Attempts: attempts, Events: events}, nil
}

// clusterPool returns a cluster and the configured pool it belongs to.
func (s *Service) clusterPool(ctx context.Context, id string) (berth.Cluster, *poolRT, error) {
	c, err := s.store.GetCluster(ctx, id)
	if err != nil {
		return c, nil, err
	}
	p, ok := s.pools[c.Pool]
	if !ok {
		return c, nil, berth.Errorf(berth.ErrConflict, "cluster %s belongs to pool %q, which is no longer configured", id, c.Pool)
	}
	return c, p, nil
}

// fill sets a cluster's derived fields.
func (s *Service) fill(c *berth.Cluster) {
	s.mu.Lock()
	n, ok := s.view.running[c.ID]
	s.mu.Unlock()
	if ok {
		c.Running = n
	}
	c.Cost = c.CostAt(s.clock.Now())
}

// Drain stops a cluster from taking new jobs; it is terminated when its
// running jobs end.
func (s *Service) Drain(ctx context.Context, id string) (berth.Cluster, error) {
	return s.clusterCommand(ctx, id, (*lifecycle.State).Drain)
}

// RequestDrain and RequestTerminate hand Drain's and Terminate's work to
// the loop and return without waiting for it: for callers that cannot
// wait, such as a simulation, which runs in the loop's own goroutine.
func (s *Service) RequestDrain(id string) {
	s.post(command{fn: onCluster(id, (*lifecycle.State).Drain)})
}

// RequestTerminate is Terminate without the wait; see RequestDrain.
func (s *Service) RequestTerminate(id string) {
	s.post(command{fn: onCluster(id, (*lifecycle.State).Terminate)})
}

// Terminate ends a cluster now. Jobs running on it go back to the queue as
// if the cluster had been lost.
func (s *Service) Terminate(ctx context.Context, id string) (berth.Cluster, error) {
	return s.clusterCommand(ctx, id, (*lifecycle.State).Terminate)
}

// Kill makes the cluster die as if its spot capacity were reclaimed, on
// providers that can, and waits until the loop has seen the loss.
func (s *Service) Kill(ctx context.Context, id string) (berth.Cluster, error) {
	c, p, err := s.clusterPool(ctx, id)
	if err != nil {
		return berth.Cluster{}, err
	}
	k, ok := p.prov.(provider.Killer)
	if !ok {
		return berth.Cluster{}, berth.Errorf(berth.ErrUnsupported, "cluster %s: provider %q cannot inject faults", id, p.pool.Provider)
	}
	if c.State.Terminal() {
		return c, berth.Errorf(berth.ErrConflict, "cluster %s is already %s", id, c.State)
	}
	if c.ProviderID == "" {
		return c, berth.Errorf(berth.ErrConflict, "cluster %s has not been created by its provider yet", id)
	}
	if err := s.callNow(ctx, func(ctx context.Context) error { return k.KillCluster(ctx, c.ProviderID) }); err != nil {
		return berth.Cluster{}, &berth.Error{Op: "kill cluster " + id, Public: "the provider could not kill cluster " + id, Err: err}
	}
	// Have its watcher look now rather than at its next poll, and wait
	// for the loss to be recorded.
	_, err = s.clusterCommand(ctx, id, (*lifecycle.State).Poke)
	if err != nil && !errors.Is(err, berth.ErrConflict) {
		return berth.Cluster{}, err
	}
	deadline := s.clock.After(commandWait)
	for {
		next := s.upcoming()
		c, err := s.store.GetCluster(ctx, id)
		if err != nil || c.State.Terminal() {
			s.fill(&c)
			return c, err
		}
		select {
		case <-next.done:
		case <-deadline:
			return c, nil
		case <-ctx.Done():
			return c, ctx.Err()
		}
	}
}

func (s *Service) setCommitErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil && s.commitErr == nil {
		s.commitErrAt = s.clock.Now()
	}
	s.commitErr = err
}

// commitFailure returns the commit error in force and since when.
func (s *Service) commitFailure() (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commitErrAt, s.commitErr
}

// attributionGrace is how long a step failure on the provider's clusters
// waits before it is charged to the job: the provider's own grace and two
// polls, the time for its loss, if any, to be seen.
func attributionGrace(p provider.Provider) time.Duration {
	a, ok := p.(provider.Attributor)
	if !ok || a.AttributionGrace() <= 0 {
		return 0
	}
	poll := provider.DefaultPollInterval
	if pp, ok := p.(provider.Poller); ok {
		poll = pp.PollInterval()
	}
	return a.AttributionGrace() + 2*poll
}

// fingerprint is a short digest of a value's JSON.
func fingerprint(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
