package service

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider"
	"github.com/berthhq/berth/internal/scheduler"
	"github.com/berthhq/berth/internal/store"
)

// pickupBatch is how many new submissions one store read picks up.
const pickupBatch = 1000

// unobservedGrace is how long a cluster restored from the store past its
// boot_timeout is spared while its watcher has not reported.
const unobservedGrace = 2 * time.Minute

// Failed creations hold a pool's next cluster back this long, doubling.
const (
	startBackoffMin = 30 * time.Second
	startBackoffMax = 30 * time.Minute
)

// poolRT is a pool at run time.
type poolRT struct {
	pool  berth.Pool
	prov  provider.Provider
	state berth.PoolState
	// spec fingerprints the pool's configuration: a pool blocked under
	// another one is unblocked.
	spec string
	// createFailures counts the failed creations in a row, and startAfter
	// is when the next cluster may start; both are reset when a cluster
	// comes up.
	createFailures int
	startAfter     time.Time
	// liftedAt is when this service last unblocked the pool: clusters
	// started before then do not block it again.
	liftedAt time.Time
	// ended counts the pool's clusters that ended since the service
	// started, by terminal state.
	ended map[berth.ClusterState]int
}

// clusterRT is a live cluster at run time.
type clusterRT struct {
	c    berth.Cluster
	pool *poolRT
	// observed is set once the cluster's watcher has reported since this
	// service started. Nothing is submitted to a cluster before that, so a
	// step submitted before a crash is adopted by name, not started again.
	observed bool
	// restoredAt is when the cluster was loaded from the store; zero for
	// clusters this service started.
	restoredAt time.Time
	// released is set once the provider took the cluster's termination:
	// until then a terminating cluster counts against max_clusters.
	released bool
	// steps is the latest report's steps by name.
	steps map[string]provider.Step
	// watcher polls the cluster at its provider; nil until it has a
	// provider id.
	watcher *watcher
}

func (c *clusterRT) pokeWatcher() {
	if c.watcher != nil {
		c.watcher.poke()
	}
}

// command is a request from the API that must run on the loop. Its reply,
// if any, gets fn's error, or once the pass that follows it has committed,
// the commit's.
type command struct {
	fn    func(l *loop) error
	reply chan error
}

// loop is the state owned by the loop goroutine. Nothing else touches it.
type loop struct {
	s        *Service
	ctx      context.Context
	jobs     map[string]*berth.Job // jobs that have not ended
	clusters map[string]*clusterRT // clusters that are not terminated or lost
	affinity map[string]string
	lastSeq  int64
	// stopping holds running jobs whose attempt is being stopped, and why.
	stopping map[string]berth.Reason
	inflight map[string]bool
	retryAt  map[string]time.Time
	tries    map[string]int
	wakeAt   time.Time
	// now is the time of the pass in progress: everything it decides and
	// records is stamped with it.
	now time.Time
	// commitWait is how long the loop holds back after a failed commit;
	// zero after a good one.
	commitWait time.Duration
	// pending holds inputs received but not yet applied.
	pending []any
	// replies wait for the pass's commit.
	replies []chan error
	// illegalMoves counts the state changes refused in this pass.
	illegalMoves int
	// broken is set when a commit failed and the state could not be
	// reloaded: the in-memory state is then not the stored one.
	broken bool

	// The pass's changes, committed together.
	dirtyJobs     map[string]bool
	dirtyClusters map[string]bool
	dirtyPools    map[string]bool
	dirtyAffinity map[string]string
	events        []berth.Event
	// ended are jobs and clusters that ended this pass; they leave the
	// maps after the commit.
	endedJobs     []*berth.Job
	endedClusters []*clusterRT
	actions       []action
	// started records placements for the submit-to-start metric.
	started []*berth.Job
}

func (s *Service) newLoop(ctx context.Context) (*loop, error) {
	l := &loop{s: s, ctx: ctx}
	if err := l.load(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// load (re)builds the loop's state from the store.
func (l *loop) load(ctx context.Context) error {
	l.shutdown()
	st, err := l.s.store.Load(ctx)
	if err != nil {
		return fmt.Errorf("load state: %w", err)
	}
	l.jobs = map[string]*berth.Job{}
	l.clusters = map[string]*clusterRT{}
	l.affinity = st.Affinity
	if l.affinity == nil {
		l.affinity = map[string]string{}
	}
	l.lastSeq = st.MaxSeq
	l.stopping = map[string]berth.Reason{}
	// Calls still in flight stay counted across a reload: they are real,
	// and their results still come back.
	if l.inflight == nil {
		l.inflight = map[string]bool{}
	}
	l.retryAt = map[string]time.Time{}
	l.tries = map[string]int{}
	l.reset()
	if err := l.checkPools(st); err != nil {
		return err
	}
	for i := range st.Jobs {
		j := st.Jobs[i]
		l.jobs[j.ID] = &j
	}
	// Pool state is what the store has, and nothing a failed pass left
	// behind.
	for _, p := range l.s.pools {
		p.state = berth.PoolState{Pool: p.pool.Name}
	}
	for _, ps := range st.Pools {
		if p, ok := l.s.pools[ps.Pool]; ok {
			p.state = ps
		}
	}
	for _, name := range l.s.poolNames {
		p := l.s.pools[name]
		if p.state.Blocked() && p.state.BlockedSpec != p.spec {
			l.event("", "", "pool_unblocked", fmt.Sprintf("pool %s unblocked: its configuration changed since it was blocked (%s)", name, p.state.BlockedReason))
			p.state.BlockedAt, p.state.BlockedReason, p.state.BlockedSpec = time.Time{}, "", ""
			p.liftedAt = l.s.clock.Now()
			l.dirtyPools[name] = true
		}
	}
	for _, c := range st.Clusters {
		rt := &clusterRT{c: c, pool: l.s.pools[c.Pool], restoredAt: l.s.clock.Now()}
		l.clusters[c.ID] = rt
		if c.ProviderID != "" {
			l.watch(rt)
		}
	}
	return nil
}

// checkPools refuses state that names pools the configuration lacks: their
// clusters would run on, unwatched and billed, and their jobs would wait
// forever.
func (l *loop) checkPools(st store.State) error {
	live := map[string]int{}
	for _, c := range st.Clusters {
		if _, ok := l.s.pools[c.Pool]; !ok {
			live[c.Pool]++
		}
	}
	jobs := map[string]int{}
	for _, j := range st.Jobs {
		if _, ok := l.s.pools[j.Pool]; !ok {
			jobs[j.Pool]++
		}
	}
	var errs []error
	for _, name := range keys(mergeKeys(live, jobs)) {
		errs = append(errs, fmt.Errorf("pool %q is not configured but has %d live clusters and %d unfinished jobs: put it back in the configuration, drain its clusters and let its jobs end (or cancel them) before removing it", name, live[name], jobs[name]))
	}
	return errors.Join(errs...)
}

func mergeKeys(a, b map[string]int) map[string]int {
	out := map[string]int{}
	for k := range a {
		out[k]++
	}
	for k := range b {
		out[k]++
	}
	return out
}

func (l *loop) reset() {
	l.dirtyJobs = map[string]bool{}
	l.dirtyClusters = map[string]bool{}
	l.dirtyPools = map[string]bool{}
	l.dirtyAffinity = map[string]string{}
	l.events = nil
	l.endedJobs = nil
	l.endedClusters = nil
	l.actions = nil
	l.started = nil
}

func (l *loop) shutdown() {
	for _, c := range l.clusters {
		if c.watcher != nil {
			c.watcher.stop()
		}
	}
}

// applyInputs applies the inputs that came in since the last pass, in
// arrival order, so one pass handles a burst.
func (l *loop) applyInputs() {
	for _, in := range l.pending {
		switch in := in.(type) {
		case report:
			l.applyReport(in)
		case result:
			l.applyResult(in)
		case command:
			if err := in.fn(l); err != nil {
				in.answer(err)
			} else if in.reply != nil {
				l.replies = append(l.replies, in.reply)
			}
		}
	}
	l.pending = l.pending[:0]
}

func (c command) answer(err error) {
	if c.reply != nil {
		c.reply <- err
	}
}

// pass is one pass of the loop over the inputs that woke it.
func (l *loop) pass(inputs []any) Pass {
	l.pending = append(l.pending, inputs...)
	p := Pass{At: l.s.clock.Now(), Inputs: len(l.pending)}
	p.Err = l.runOnce(l.ctx, p.At, &p)
	return p
}

// runOnce is one pass of the loop at now; see the package comment. It
// returns the commit's error, if any.
func (l *loop) runOnce(ctx context.Context, now time.Time, p *Pass) error {
	l.now = now
	if l.broken {
		// The last commit failed and the state could not be read back:
		// nothing may be decided or acted on until it is.
		if err := l.load(ctx); err != nil {
			l.s.log.Error("reload state", "err", err)
			l.failCommands(err)
			return err
		}
		l.broken = false
	}
	// Cancel requests first, so that reports about a step we are stopping
	// are read as the stop they are, not as a failure.
	if l.s.pickUpDue(now) {
		if err := l.pickUp(ctx); err != nil {
			l.s.log.Error("pick up submissions", "err", err)
			l.s.run.mu.Lock()
			l.s.run.news = true // again at the next pass
			l.s.run.mu.Unlock()
		}
	}
	l.applyInputs()
	l.stopAttempts(now)
	plan := scheduler.Schedule(l.snapshot(now))
	l.apply(plan, now)
	l.settleIdle(now)
	l.queueActions(now)
	if since, err := l.s.commitFailure(); err != nil {
		// Every pass while the store fails writes at least this, so the
		// loop finds out, at its backoff's pace, when the store takes
		// writes again; only then is the service ready again.
		l.event("", "", "store_recovered", fmt.Sprintf("the store takes writes again; it failed them from %s (%s)", since.Format(time.RFC3339), berth.Public(err)))
	}
	p.Jobs, p.Clusters, p.Events, p.Illegal = len(l.dirtyJobs), len(l.dirtyClusters), len(l.events), l.illegalMoves
	l.illegalMoves = 0
	if err := l.commit(ctx, now); err != nil {
		l.s.log.Error("commit failed; reloading state and acting on nothing", "err", err)
		l.s.setCommitErr(err)
		l.failCommands(err)
		if lerr := l.load(ctx); lerr != nil {
			l.s.log.Error("reload state", "err", lerr)
			l.broken = true
		}
		return err
	}
	l.s.setCommitErr(nil)
	for _, r := range l.replies {
		r <- nil
	}
	l.replies = l.replies[:0]
	l.wakeAt = plan.WakeAt
	if w := l.nextDue(now); !w.IsZero() && (l.wakeAt.IsZero() || w.Before(l.wakeAt)) {
		l.wakeAt = w
	}
	p.Calls = l.act(ctx)
	return nil
}

// failCommands answers the commands waiting for this pass's commit, and
// those not yet applied, with the store's failure.
func (l *loop) failCommands(err error) {
	err = &berth.Error{Kind: berth.ErrUnavailable, Public: "the store cannot commit; try again", Err: err}
	for _, r := range l.replies {
		r <- err
	}
	l.replies = l.replies[:0]
	kept := l.pending[:0]
	for _, in := range l.pending {
		if c, ok := in.(command); ok {
			c.answer(err)
			continue
		}
		kept = append(kept, in)
	}
	l.pending = kept
}

// pickUp reads new submissions and cancel requests from the store.
func (l *loop) pickUp(ctx context.Context) error {
	for {
		jobs, err := l.s.store.JobsAfter(ctx, l.lastSeq, pickupBatch)
		if err != nil {
			return err
		}
		for i := range jobs {
			j := jobs[i]
			l.lastSeq = max(l.lastSeq, j.Seq)
			if j.State.Terminal() {
				continue
			}
			if _, ok := l.jobs[j.ID]; !ok {
				l.jobs[j.ID] = &j
				l.event(j.ID, "", "queued", fmt.Sprintf("submitted to pool %s", j.Pool))
				l.s.metrics.submitted(j.Pool)
			}
		}
		if len(jobs) < pickupBatch {
			break
		}
	}
	ids, err := l.s.store.CancelRequests(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if j, ok := l.jobs[id]; ok {
			j.CancelRequested = true
		}
	}
	return nil
}

// snapshot is the scheduler's view of the loop's state.
func (l *loop) snapshot(now time.Time) scheduler.Snapshot {
	snap := scheduler.Snapshot{Now: now, Affinity: l.affinity}
	for _, name := range l.s.poolNames {
		p := l.s.pools[name]
		snap.Pools = append(snap.Pools, scheduler.PoolView{
			Pool: p.pool, Fallback: p.state.FallbackActive(now), Blocked: p.state.Blocked(), StartAfter: p.startAfter,
		})
	}
	running := l.runningByCluster()
	for _, c := range l.clusters {
		if c.c.State.Terminal() {
			continue
		}
		snap.Clusters = append(snap.Clusters, scheduler.ClusterView{
			ID: c.c.ID, Pool: c.c.Pool, State: c.c.State, Slots: c.c.Slots,
			Running: running[c.c.ID], CreatedAt: c.c.CreatedAt, IdleSince: c.c.IdleSince,
			Spared: l.spared(c, now), Released: c.released,
		})
	}
	for _, j := range l.jobs {
		if j.State != berth.JobQueued || j.CancelRequested {
			continue
		}
		snap.Queued = append(snap.Queued, scheduler.JobView{
			ID: j.ID, Pool: j.Pool, Priority: j.Priority, CreatedAt: j.CreatedAt,
			NotBefore: j.NotBefore, Affinity: j.Affinity, AffinityRequired: j.AffinityRequired,
		})
	}
	return snap
}

// spared reports whether a cluster restored from the store is not to be
// judged by its boot_timeout yet: it may have come up while the service was
// down, so its first report is waited for, but not forever if the provider
// never answers about it.
func (l *loop) spared(c *clusterRT, now time.Time) bool {
	return c.c.State == berth.ClusterStarting && c.c.ProviderID != "" && !c.observed && now.Sub(c.restoredAt) < unobservedGrace
}

// runningByCluster counts the running jobs of each cluster.
func (l *loop) runningByCluster() map[string]int {
	n := map[string]int{}
	for _, j := range l.jobs {
		if a := j.CurrentAttempt(); a != nil {
			n[a.ClusterID]++
		}
	}
	return n
}

// apply carries a plan out in memory; the actions it implies are queued
// by queueActions after it.
func (l *loop) apply(plan scheduler.Plan, now time.Time) {
	for _, f := range plan.Fail {
		if j, ok := l.jobs[f.JobID]; ok {
			l.endJob(j, berth.JobFailed, f.Reason, now)
			l.event(j.ID, "", "failed", f.Message)
		}
	}
	for _, lo := range plan.Lose {
		if c, ok := l.clusters[lo.ClusterID]; ok {
			l.abandon(c, lo.Reason, now)
		}
	}
	for _, d := range plan.Drain {
		if c, ok := l.clusters[d.ClusterID]; ok && c.c.State == berth.ClusterReady {
			l.setClusterState(c, berth.ClusterDraining, d.Reason)
		}
	}
	for _, id := range plan.Terminate {
		if c, ok := l.clusters[id]; ok && c.c.State == berth.ClusterDraining {
			l.setClusterState(c, berth.ClusterTerminating, "drained")
		}
	}
	for _, st := range plan.Start {
		l.startCluster(st, now)
	}
	for _, p := range plan.Place {
		j, jok := l.jobs[p.JobID]
		c, cok := l.clusters[p.ClusterID]
		if !jok || !cok {
			continue
		}
		l.place(j, c, now)
	}
}

func (l *loop) startCluster(st scheduler.Start, now time.Time) {
	p := l.s.pools[st.Pool]
	c := &clusterRT{pool: p, c: berth.Cluster{
		ID:           l.s.newID("cl", now),
		Pool:         p.pool.Name,
		State:        berth.ClusterStarting,
		Fallback:     st.Fallback,
		Slots:        p.pool.Slots,
		PricePerHour: p.pool.PricePerHour,
		CreatedAt:    now,
	}}
	l.clusters[c.c.ID] = c
	l.dirtyClusters[c.c.ID] = true
	spec := "primary"
	if st.Fallback {
		spec = "fallback"
	}
	l.event("", c.c.ID, "starting", fmt.Sprintf("starting a cluster of pool %s (%s spec): %s", p.pool.Name, spec, st.Reason))
}

func (l *loop) place(j *berth.Job, c *clusterRT, now time.Time) {
	first := j.NextStep()
	if first >= len(j.Steps) {
		// Every step succeeded before the last cluster was lost. The loss
		// ends such a job, so this is a bug the table refuses and counts.
		l.endJob(j, berth.JobSucceeded, berth.ReasonSucceeded, now)
		return
	}
	if j.StartedAt.IsZero() {
		j.StartedAt = now
		l.started = append(l.started, j)
	}
	for i := first; i < len(j.Steps); i++ {
		j.Steps[i].State = berth.StepPending
	}
	n := len(j.Attempts) + 1
	j.Attempts = append(j.Attempts, berth.Attempt{
		N: n, ClusterID: c.c.ID, State: berth.AttemptRunning, StartedAt: now, FirstStep: first,
		Steps: []berth.AttemptStep{{Index: first, State: berth.StepPending}},
	})
	if !l.moveJob(j, berth.JobRunning) {
		return
	}
	j.ClusterID, j.NotBefore = c.c.ID, time.Time{}
	c.c.IdleSince = time.Time{}
	l.dirtyClusters[c.c.ID] = true
	if j.Affinity != "" && l.affinity[j.Affinity] != c.c.ID {
		l.affinity[j.Affinity] = c.c.ID
		l.dirtyAffinity[j.Affinity] = c.c.ID
	}
	l.dirtyJobs[j.ID] = true
	l.event(j.ID, c.c.ID, "placed", fmt.Sprintf("attempt %d on cluster %s from step %d", n, c.c.ID, first))
}

// settleIdle keeps each cluster's IdleSince true to its load.
func (l *loop) settleIdle(now time.Time) {
	running := l.runningByCluster()
	for _, c := range l.clusters {
		if c.c.State != berth.ClusterReady && c.c.State != berth.ClusterDraining {
			continue
		}
		busy := running[c.c.ID] > 0
		if busy && !c.c.IdleSince.IsZero() {
			c.c.IdleSince = time.Time{}
			l.dirtyClusters[c.c.ID] = true
		} else if !busy && c.c.IdleSince.IsZero() {
			c.c.IdleSince = now
			l.dirtyClusters[c.c.ID] = true
		}
	}
}

// setClusterState moves a cluster, recording why.
func (l *loop) setClusterState(c *clusterRT, to berth.ClusterState, reason string) {
	if !l.moveCluster(c, to) {
		return
	}
	c.c.Reason = reason
	l.event("", c.c.ID, string(to), reason)
	if to == berth.ClusterDraining {
		// A draining cluster whose jobs ended is terminated by the next
		// plan.
		l.s.Wake()
	}
}

// loseCluster records a cluster as lost and requeues the jobs it ran. The
// loss's class decides what else follows: a capacity loss counts towards
// the pool's fallback, a permanent one (a bootstrap that always fails)
// blocks the pool, and a cluster lost before it was ever ready holds the
// pool's next start back as a failed creation does.
func (l *loop) loseCluster(c *clusterRT, reason string, class provider.Class, now time.Time) {
	if c.c.State.Terminal() || !l.moveCluster(c, berth.ClusterLost) {
		return
	}
	c.c.Reason, c.c.Capacity, c.c.EndedAt = reason, class == provider.ClassCapacity, now
	l.endedClusters = append(l.endedClusters, c)
	l.event("", c.c.ID, "lost", reason)
	l.s.metrics.clusterEnded(c.c, now)
	switch class {
	case provider.ClassCapacity:
		l.capacityFailure(c, now)
	case provider.ClassPermanent:
		l.block(c, reason, now)
	}
	if c.c.ReadyAt.IsZero() {
		l.holdStarts(c.pool, now)
	}
	l.requeueFrom(c, now)
}

// capacityFailure counts a capacity failure of one of the pool's clusters
// towards its switch to the fallback spec.
func (l *loop) capacityFailure(c *clusterRT, now time.Time) {
	p := c.pool
	if p.state.RecordCapacityFailure(p.pool.Fallback, now) {
		l.event("", c.c.ID, "fallback", fmt.Sprintf("pool %s uses its fallback spec until %s after repeated capacity failures", p.pool.Name, p.state.FallbackUntil.Format(time.RFC3339)))
		l.s.log.Warn("pool switched to its fallback spec", "pool", p.pool.Name, "until", p.state.FallbackUntil)
	}
	l.dirtyPools[p.pool.Name] = true
}

// block stops a pool from starting clusters after a permanent failure of
// one of them: its spec cannot work, and every new cluster would only be
// billed. A configuration change or an unblock lifts it.
func (l *loop) block(c *clusterRT, why string, now time.Time) {
	p := c.pool
	if p.state.Blocked() {
		return
	}
	if c.c.CreatedAt.Before(p.liftedAt) {
		// It was made before its pool was last unblocked: its failure
		// says nothing of the spec as it is now.
		l.event("", c.c.ID, "permanent_failure", fmt.Sprintf("%s; the cluster was started before pool %s was unblocked, so the pool stays unblocked", why, p.pool.Name))
		return
	}
	p.state.BlockedAt, p.state.BlockedReason, p.state.BlockedSpec = now, why, p.spec
	l.dirtyPools[p.pool.Name] = true
	l.event("", c.c.ID, "pool_blocked", fmt.Sprintf("pool %s is blocked and starts no cluster: %s; change its configuration or unblock it", p.pool.Name, why))
	l.s.log.Error("pool blocked by a permanent provider failure", "pool", p.pool.Name, "cluster_id", c.c.ID, "reason", why)
	l.s.metrics.poolBlocked(p.pool.Name)
}

// holdStarts holds the pool's next cluster back after a failed creation,
// doubling from startBackoffMin to startBackoffMax with each failure in a
// row: a creation that keeps failing must not start a cluster every few
// seconds forever.
func (l *loop) holdStarts(p *poolRT, now time.Time) {
	p.createFailures++
	wait := min(startBackoffMin<<min(p.createFailures-1, 16), startBackoffMax)
	p.startAfter = now.Add(wait)
	l.s.log.Warn("pool holds back new clusters after a failed creation", "pool", p.pool.Name, "failures", p.createFailures, "until", p.startAfter)
}

// abandon gives up on a cluster that never became useful (boot timeout,
// failed creation): it is terminated at the provider and then ends lost.
// The termination is stored state, so it is carried on after errors and
// restarts, and a cluster that comes up late is not left running unbilled
// and unused.
func (l *loop) abandon(c *clusterRT, reason string, now time.Time) {
	c.c.EndsLost = true
	l.setClusterState(c, berth.ClusterTerminating, reason)
	l.requeueFrom(c, now)
}

// requeueFrom ends the attempts still running on a cluster that is gone.
func (l *loop) requeueFrom(c *clusterRT, now time.Time) {
	for _, j := range l.jobsOn(c.c.ID) {
		l.infraFailure(j, berth.ReasonClusterLost, fmt.Sprintf("cluster %s lost", c.c.ID), now)
	}
}

// infraFailure ends a job's attempt for a reason that is not the job's
// fault and queues it again from its infrastructure budget, ahead of newer
// work: it keeps its creation time.
func (l *loop) infraFailure(j *berth.Job, reason berth.Reason, why string, now time.Time) {
	a := j.CurrentAttempt()
	// The attempt's end reason decides what it is charged to, whatever it
	// was being stopped for: a timeout the loss came before is no user
	// failure. A cancel stands: the job ends cancelled, its loss counted.
	stop, stopping := l.stopping[j.ID]
	delete(l.stopping, j.ID)
	l.endAttempt(j, a, berth.AttemptFailed, reason, now)
	j.InfraFailures++
	switch {
	case stopping && stop == berth.ReasonCancelled:
		l.endJob(j, berth.JobCancelled, berth.ReasonCancelled, now)
	case j.NextStep() >= len(j.Steps):
		// Every step succeeded before the loss (resume: unfinished).
		l.endJob(j, berth.JobSucceeded, berth.ReasonSucceeded, now)
	case j.InfraFailures > j.MaxInfraRetries:
		l.endJob(j, berth.JobFailed, berth.ReasonInfraRetries, now)
		l.event(j.ID, a.ClusterID, "failed", fmt.Sprintf("%s; %d infrastructure failures exceed max_infra_retries %d", why, j.InfraFailures, j.MaxInfraRetries))
	case l.moveJob(j, berth.JobQueued):
		l.event(j.ID, a.ClusterID, "requeued", fmt.Sprintf("%s during attempt %d; queued again (infrastructure retry %d of %d)", why, a.N, j.InfraFailures, j.MaxInfraRetries))
	}
}

// moveJob moves a job to another state, checked against the domain's one
// table of moves. An illegal move is a bug: it is logged and counted, and
// not made.
func (l *loop) moveJob(j *berth.Job, to berth.JobState) bool {
	if !j.State.CanMove(to) {
		l.illegal("job", j.ID, string(j.State), string(to))
		return false
	}
	j.State = to
	l.dirtyJobs[j.ID] = true
	return true
}

// moveCluster is moveJob for a cluster.
func (l *loop) moveCluster(c *clusterRT, to berth.ClusterState) bool {
	if !c.c.State.CanMove(to) {
		l.illegal("cluster", c.c.ID, string(c.c.State), string(to))
		return false
	}
	c.c.State = to
	l.dirtyClusters[c.c.ID] = true
	return true
}

func (l *loop) illegal(kind, id, from, to string) {
	l.s.log.Error("illegal state change refused; this is a bug", "kind", kind, "id", id, "from", from, "to", to)
	l.s.metrics.illegalMove(kind)
	l.illegalMoves++
}

// jobsWhere returns the live jobs that keep, in id order, so that what the
// loop does with them does not depend on map order and a simulation
// replays.
func (l *loop) jobsWhere(keep func(*berth.Job) bool) []*berth.Job {
	var out []*berth.Job
	for _, j := range l.jobs {
		if keep(j) {
			out = append(out, j)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}

// jobsOn returns the jobs with a running attempt on a cluster, in a stable
// order.
func (l *loop) jobsOn(clusterID string) []*berth.Job {
	return l.jobsWhere(func(j *berth.Job) bool {
		a := j.CurrentAttempt()
		return a != nil && a.ClusterID == clusterID
	})
}

// endAttempt closes a job's running attempt.
func (l *loop) endAttempt(j *berth.Job, a *berth.Attempt, state berth.AttemptState, reason berth.Reason, now time.Time) {
	a.State, a.Reason, a.EndedAt = state, reason, now
	for i := range a.Steps {
		if !a.Steps[i].State.Terminal() {
			a.Steps[i].State = berth.StepCancelled
			if reason == berth.ReasonClusterLost || reason == berth.ReasonStepFailed {
				a.Steps[i].State = berth.StepFailed
			}
			a.Steps[i].EndedAt = now
			// The job's view of the step is its latest attempt's.
			j.Steps[a.Steps[i].Index].State = a.Steps[i].State
		}
	}
	if c, ok := l.clusters[a.ClusterID]; ok {
		a.Cost = berth.SlotCost(now.Sub(a.StartedAt), c.c.PricePerHour, c.c.Slots)
	}
	j.Cost += a.Cost
	l.dirtyJobs[j.ID] = true
	l.s.metrics.attemptEnded(j.Pool, reason)
	l.event(j.ID, a.ClusterID, "attempt_ended", fmt.Sprintf("attempt %d ended: %s", a.N, reason))
}

// endJob ends a job for good.
func (l *loop) endJob(j *berth.Job, state berth.JobState, reason berth.Reason, now time.Time) {
	if !j.State.CanMove(state) {
		l.illegal("job", j.ID, string(j.State), string(state))
		return
	}
	if a := j.CurrentAttempt(); a != nil {
		as := berth.AttemptFailed
		switch state {
		case berth.JobSucceeded:
			as = berth.AttemptSucceeded
		case berth.JobCancelled:
			as = berth.AttemptCancelled
		}
		l.endAttempt(j, a, as, reason, now)
	}
	l.moveJob(j, state)
	j.EndedAt = now
	if state != berth.JobSucceeded {
		j.Reason = reason
	}
	// Steps the job will never run again show that they did not run.
	for i := range j.Steps {
		if !j.Steps[i].State.Terminal() {
			j.Steps[i].State = berth.StepCancelled
		}
	}
	delete(l.stopping, j.ID)
	l.dirtyJobs[j.ID] = true
	l.endedJobs = append(l.endedJobs, j)
	l.event(j.ID, j.ClusterID, string(state), fmt.Sprintf("job %s", state))
}

// userFailure charges a failed or timed-out attempt to the job's retries.
func (l *loop) userFailure(j *berth.Job, reason berth.Reason, now time.Time) {
	n := len(j.Attempts)
	if a := j.CurrentAttempt(); a != nil {
		l.endAttempt(j, a, berth.AttemptFailed, reason, now)
	}
	delete(l.stopping, j.ID)
	j.UserFailures++
	if j.UserFailures > j.Retries {
		l.endJob(j, berth.JobFailed, reason, now)
		return
	}
	wait := l.s.backoff << (j.UserFailures - 1)
	if wait > MaxRetryBackoff || wait <= 0 {
		wait = MaxRetryBackoff
	}
	if !l.moveJob(j, berth.JobQueued) {
		return
	}
	j.NotBefore = now.Add(wait)
	l.event(j.ID, j.ClusterID, "retry", fmt.Sprintf("attempt %d: %s; retry %d of %d after %s", n, reason, j.UserFailures, j.Retries, wait))
}

// finishStopped ends a job whose attempt was stopped for reason r.
func (l *loop) finishStopped(j *berth.Job, r berth.Reason, now time.Time) {
	if r == berth.ReasonTimeout {
		// The attempt ran past its timeout and its step has stopped: the
		// job's failure. (A loss that came first is charged as a loss by
		// infraFailure, which never comes here.)
		l.userFailure(j, r, now)
		return
	}
	l.endJob(j, berth.JobCancelled, berth.ReasonCancelled, now)
}

// stopAttempts acts on cancel requests and timeouts.
func (l *loop) stopAttempts(now time.Time) {
	for _, j := range l.jobsWhere(func(j *berth.Job) bool {
		return j.CurrentAttempt() != nil || j.State == berth.JobQueued && j.CancelRequested
	}) {
		if j.State.Terminal() {
			continue
		}
		if j.State == berth.JobQueued && j.CancelRequested {
			l.endJob(j, berth.JobCancelled, berth.ReasonCancelled, now)
			continue
		}
		a := j.CurrentAttempt()
		if a == nil {
			continue
		}
		if _, stop := l.stopReason(j, now); !stop {
			continue
		}
		// A step not yet accepted by the provider, and not being
		// submitted, runs nowhere: the attempt can end at once.
		cur := &a.Steps[len(a.Steps)-1]
		if cur.ProviderID == "" && !l.inflight[submitKey(j, a, cur)] {
			if c, ok := l.clusters[a.ClusterID]; !ok || c.observed {
				if _, seen := l.clusterStep(j.ID, a, cur); !seen {
					l.finishStopped(j, l.stopping[j.ID], now)
				}
			}
		}
	}
}

// stopReason reports whether a running job's attempt is to be stopped, and
// why, marking it so the first time it finds out.
func (l *loop) stopReason(j *berth.Job, now time.Time) (berth.Reason, bool) {
	if r, ok := l.stopping[j.ID]; ok {
		return r, true
	}
	a := j.CurrentAttempt()
	switch {
	case a == nil:
		return "", false
	case j.CancelRequested:
		l.stopping[j.ID] = berth.ReasonCancelled
	case j.Timeout > 0 && !now.Before(a.StartedAt.Add(j.Timeout.Std())):
		l.stopping[j.ID] = berth.ReasonTimeout
		l.event(j.ID, a.ClusterID, "timeout", fmt.Sprintf("attempt %d ran past its timeout of %s", a.N, j.Timeout.Std()))
	default:
		return "", false
	}
	return l.stopping[j.ID], true
}

// nextDue is the earliest time a running job times out or a provider call
// may be retried.
func (l *loop) nextDue(now time.Time) time.Time {
	var next time.Time
	earlier := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, j := range l.jobs {
		if a := j.CurrentAttempt(); a != nil && j.Timeout > 0 {
			earlier(a.StartedAt.Add(j.Timeout.Std()))
		}
	}
	for _, t := range l.retryAt {
		earlier(t)
	}
	for _, c := range l.clusters {
		if l.spared(c, now) {
			earlier(c.restoredAt.Add(unobservedGrace))
		}
	}
	return next
}

// event records one entry of history, committed with the pass.
func (l *loop) event(jobID, clusterID, kind, msg string) {
	l.events = append(l.events, berth.Event{At: l.now, JobID: jobID, ClusterID: clusterID, Kind: kind, Message: msg})
}

// commit writes the pass's changes in one transaction and publishes the
// new view.
func (l *loop) commit(ctx context.Context, now time.Time) error {
	var b store.Batch
	ids := keys(l.dirtyJobs)
	for _, id := range ids {
		if j, ok := l.jobs[id]; ok {
			b.Jobs = append(b.Jobs, *j)
		}
	}
	for _, id := range keys(l.dirtyClusters) {
		if c, ok := l.clusters[id]; ok {
			b.Clusters = append(b.Clusters, c.c)
		}
	}
	for _, name := range keys(l.dirtyPools) {
		b.Pools = append(b.Pools, l.s.pools[name].state)
	}
	if len(l.dirtyAffinity) > 0 {
		b.Affinity = l.dirtyAffinity
	}
	b.Events = l.events
	if !b.Empty() {
		// The write must finish even while the service stops.
		if err := l.s.store.Commit(context.WithoutCancel(ctx), b); err != nil {
			l.reset()
			return err
		}
	}
	for _, j := range l.started {
		l.s.metrics.jobStarted(j.Pool, now.Sub(j.CreatedAt))
	}
	for _, j := range l.endedJobs {
		delete(l.jobs, j.ID)
		delete(l.stopping, j.ID)
	}
	for _, c := range l.endedClusters {
		c.pool.ended[c.c.State]++
		if c.watcher != nil {
			c.watcher.stop()
		}
		delete(l.clusters, c.c.ID)
	}
	written := make(map[string]bool, len(b.Jobs))
	for _, j := range b.Jobs {
		written[j.ID] = true
	}
	actions := l.actions
	l.reset()
	l.actions = actions
	l.publish(now, written)
	return nil
}

// publish hands readers a copy of the live counts and tells long polls
// which jobs the commit wrote.
func (l *loop) publish(now time.Time, jobs map[string]bool) {
	running := l.runningByCluster()
	v := view{pools: map[string]berth.PoolStatus{}, clusters: map[string]berth.Cluster{}}
	for _, name := range l.s.poolNames {
		p := l.s.pools[name]
		ps := poolStatus(p.pool)
		ps.FallbackActive = p.state.FallbackActive(now)
		if p.state.Blocked() {
			ps.Blocked, ps.BlockedReason, ps.BlockedAt = true, p.state.BlockedReason, p.state.BlockedAt
		}
		for st, n := range p.ended {
			ps.Clusters[st] = n
		}
		v.pools[name] = ps
	}
	for _, c := range l.clusters {
		cc := c.c
		cc.Running = running[cc.ID]
		cc.Cost = cc.CostAt(now)
		v.clusters[cc.ID] = cc
		ps := v.pools[cc.Pool]
		ps.Clusters[cc.State]++
		if cc.State == berth.ClusterReady {
			ps.FreeSlots += max(cc.Slots-cc.Running, 0)
		}
		v.pools[cc.Pool] = ps
	}
	for _, j := range l.jobs {
		ps, ok := v.pools[j.Pool]
		if !ok {
			continue
		}
		switch j.State {
		case berth.JobQueued:
			ps.Queued++
		case berth.JobRunning:
			ps.Running++
		}
		v.pools[j.Pool] = ps
	}
	l.s.metrics.observe(v, now)
	l.s.publish(v, jobs)
}

func poolStatus(p berth.Pool) berth.PoolStatus {
	return berth.PoolStatus{
		Pool:        p,
		IdleTimeout: berth.Duration(p.IdleTimeout),
		BootTimeout: berth.Duration(p.BootTimeout),
		MaxLifetime: berth.Duration(p.MaxLifetime),
		Clusters:    map[berth.ClusterState]int{},
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// clusterCommand runs fn on the loop against a live cluster and returns
// the cluster after the pass that follows it has committed.
func (s *Service) clusterCommand(ctx context.Context, id string, fn func(l *loop, c *clusterRT) error) (berth.Cluster, error) {
	c, err := s.store.GetCluster(ctx, id)
	if err != nil {
		return berth.Cluster{}, err
	}
	if c.State.Terminal() {
		s.fill(&c)
		return c, berth.Errorf(berth.ErrConflict, "cluster %s is already %s", id, c.State)
	}
	if err := s.onLoop(ctx, onCluster(id, fn)); err != nil {
		return berth.Cluster{}, err
	}
	c, err = s.store.GetCluster(ctx, id)
	if err != nil {
		return berth.Cluster{}, err
	}
	s.fill(&c)
	return c, nil
}

// onCluster makes fn a command on one live cluster.
func onCluster(id string, fn func(l *loop, c *clusterRT) error) func(l *loop) error {
	return func(l *loop) error {
		rt, ok := l.clusters[id]
		if !ok {
			return berth.Errorf(berth.ErrConflict, "cluster %s has ended", id)
		}
		return fn(l, rt)
	}
}
