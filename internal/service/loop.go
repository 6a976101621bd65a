package service

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/clock"
	"github.com/berthhq/berth/internal/lifecycle"
	"github.com/berthhq/berth/internal/provider"
	"github.com/berthhq/berth/internal/store"
)

// pickupBatch is how many new submissions one store read picks up.
const pickupBatch = 1000

// poolRT is a configured pool and the provider that runs its clusters.
type poolRT struct {
	pool berth.Pool
	prov provider.Provider
	// rt is what the policy keeps about the pool.
	rt              *lifecycle.Pool
	terminateStrays bool
}

// command is a request from the API that must run on the loop. Its reply,
// if any, gets fn's error, or once the pass that follows it has committed,
// the commit's.
type command struct {
	fn    func(l *loop) error
	reply chan error
}

// loop is the state owned by the loop: the policy's state, the watchers,
// and the bookkeeping of passes. Only passes touch it, one at a time.
type loop struct {
	s   *Service
	ctx context.Context
	st  *lifecycle.State
	// watchers poll the live clusters that have a provider id.
	watchers map[string]*watcher
	lastSeq  int64
	wakeAt   time.Time
	// commitWait is how long the loop holds back after a failed commit;
	// zero after a good one.
	commitWait time.Duration
	// pending holds inputs received but not yet applied.
	pending []any
	// replies wait for the pass's commit.
	replies []chan error
	// broken is set when a commit failed and the state could not be
	// reloaded: the in-memory state is then not the stored one.
	broken bool
	// strays keeps the stray scans of the pools whose provider lists
	// its clusters.
	strays map[string]*strayScan
	// outlooks are filled in turn after each pass: readers may still hold
	// the one published last.
	outlooks [2]lifecycle.Outlook
	flip     int
	// forecastAt is when the outlook was last made; forecastDue is set
	// while a pass since has left it as it was.
	forecastAt  time.Time
	forecastDue bool
	// lastRunning is the running counts the last view published.
	lastRunning map[string]int
}

// forecastEvery is how often at most the loop makes the outlook: it runs
// the head of every queue forward in time, a millisecond or two that a
// pass of a busy loop must not pay each time. A pass that skips it asks
// for one when it comes due, so the last outlook is never older than this
// after the work settles.
const forecastEvery = 250 * time.Millisecond

func (s *Service) newLoop(ctx context.Context) (*loop, error) {
	var pools []*lifecycle.Pool
	for _, name := range s.poolNames {
		pools = append(pools, s.pools[name].rt)
	}
	l := &loop{s: s, ctx: ctx, watchers: map[string]*watcher{}, strays: map[string]*strayScan{}, st: lifecycle.New(lifecycle.Config{
		RetryBackoff: s.backoff, CallRetry: s.callRetry, NewID: s.newID, KeepWhole: s.keepWhole,
	}, pools)}
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
	if err := l.checkPools(st); err != nil {
		return err
	}
	l.lastSeq = st.MaxSeq
	for _, id := range l.st.Restore(st.Jobs, st.Dormant, st.Clusters, st.Pools, st.Affinity, l.s.clock.Now()) {
		l.watch(id)
	}
	// What the loop learned in memory may not be what the store has:
	// learning starts again from the store's latest successes. Without
	// them, forecasts only start from defaults.
	ended, _, err := l.s.store.ListJobs(ctx, store.JobFilter{State: berth.JobSucceeded, Limit: lifecycle.SeedJobs})
	if err != nil {
		l.s.log.Warn("read recent jobs to learn run times from", "err", err)
	}
	l.st.Seed(ended)
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
	for _, d := range st.Dormant {
		if _, ok := l.s.pools[d.Pool]; !ok {
			jobs[d.Pool]++
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

func (l *loop) shutdown() {
	for id, w := range l.watchers {
		w.stop()
		delete(l.watchers, id)
	}
}

// applyInputs applies the inputs that came in since the last pass, in
// arrival order, so one pass handles a burst. Reports of a watcher that
// was replaced (after a reload) are dropped.
func (l *loop) applyInputs() {
	for _, in := range l.pending {
		switch in := in.(type) {
		case report:
			if w := l.watchers[in.ClusterID]; w != nil && in.from == w {
				l.st.ApplyReport(in.Report)
			}
		case lifecycle.Result:
			l.st.ApplyResult(in)
		case strayList:
			l.applyStrays(in)
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
	start := clock.Real{}.Now()
	p.Err = l.runOnce(l.ctx, p.At, &p)
	p.Took = clock.Real{}.Now().Sub(start)
	l.s.metrics.pass(p.Took)
	return p
}

// runOnce is one pass of the loop at now; see the package comment. It
// returns the commit's error, if any.
func (l *loop) runOnce(ctx context.Context, now time.Time, p *Pass) error {
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
	l.st.Begin(now)
	// Cancel requests first, so that reports about a step we are stopping
	// are read as the stop they are, not as a failure.
	if err := l.pickUp(ctx, l.s.pickUpDue(now)); err != nil {
		l.s.log.Error("pick up submissions", "err", err)
		l.s.newsPending() // again at the next pass
	}
	l.applyInputs()
	if ids := l.st.Wanted(); len(ids) > 0 {
		l.fill(ctx, ids)
	}
	l.st.Decide(now)
	if since, err := l.s.commitFailure(); err != nil {
		// Every pass while the store fails writes at least this, so the
		// loop finds out, at its backoff's pace, when the store takes
		// writes again; only then is the service ready again.
		why := berth.Public(err)
		if why == "" {
			why = "a store error"
		}
		l.st.Record("store_recovered", fmt.Sprintf("the store takes writes again; it failed them from %s (%s)", since.Format(time.RFC3339), why))
	}
	fx := l.st.Effects()
	p.Jobs, p.Clusters, p.Events, p.Illegal = len(fx.DirtyJobs), len(fx.DirtyClusters), len(fx.Events), len(fx.Illegal)
	calls, err := l.commit(ctx, now)
	if err != nil {
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
	p.Calls = l.act(ctx, calls)
	l.scanStrays(now)
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

// pickUp takes in new submissions, and when due (pickUpDue) reads new
// submissions and cancel requests from the store.
func (l *loop) pickUp(ctx context.Context, due bool) error {
	// The jobs the API stored come with its word, and need no read while
	// they follow each other in Seq. A gap is a job stored without a word
	// or whose word is still on its way: the rest is read from the store,
	// as it is when due.
	read := due
	for _, j := range l.s.takeFresh() {
		if j.Seq <= l.lastSeq {
			continue // loaded or read already
		}
		if j.Seq != l.lastSeq+1 {
			read = true
			break
		}
		l.lastSeq = j.Seq
		l.st.Submitted(j)
	}
	for read {
		jobs, err := l.s.store.JobsAfter(ctx, l.lastSeq, pickupBatch)
		if err != nil {
			return err
		}
		for i := range jobs {
			l.lastSeq = max(l.lastSeq, jobs[i].Seq)
			l.st.Submitted(jobs[i])
		}
		if len(jobs) < pickupBatch {
			break
		}
	}
	if !due {
		return nil // a word of new jobs says nothing of cancel requests
	}
	ids, err := l.s.store.CancelRequests(ctx)
	if err != nil {
		return err
	}
	// A job the state does not hold whole is dormant (or not picked up
	// yet): it is read whole first, so that its cancel is seen.
	var dormant []string
	for _, id := range ids {
		if l.st.Job(id) == nil {
			dormant = append(dormant, id)
		}
	}
	if len(dormant) > 0 {
		l.fill(ctx, dormant)
	}
	for _, id := range ids {
		l.st.CancelRequested(id)
	}
	return nil
}

// fill reads whole the dormant jobs of ids (lifecycle's dormant.go). When
// the read fails they stay dormant, to be read at a later pass: a pass
// places no job it does not hold whole.
func (l *loop) fill(ctx context.Context, ids []string) {
	jobs, err := l.s.store.GetJobs(ctx, ids)
	if err != nil {
		l.s.log.Error("read queued jobs", "jobs", len(ids), "err", err)
		return
	}
	l.st.Fill(jobs)
}

// commit writes the pass's changes in one transaction; only once they are
// written are the metrics, the log and the published view told, and the
// watchers started or poked. It returns the provider calls to make.
func (l *loop) commit(ctx context.Context, now time.Time) ([]lifecycle.Call, error) {
	fx := l.st.Effects()
	var b store.Batch
	for _, id := range keys(fx.DirtyJobs) {
		if j := l.st.Job(id); j != nil {
			b.Jobs = append(b.Jobs, *j)
		}
	}
	for _, id := range keys(fx.DirtyClusters) {
		if c := l.st.Cluster(id); c != nil {
			b.Clusters = append(b.Clusters, c.C)
		}
	}
	for _, name := range keys(fx.DirtyPools) {
		b.Pools = append(b.Pools, l.s.pools[name].rt.State)
	}
	if len(fx.DirtyAffinity) > 0 {
		b.Affinity = fx.DirtyAffinity
	}
	b.Events = fx.Events
	if !b.Empty() {
		// The write must finish even while the service stops.
		if err := l.s.store.Commit(context.WithoutCancel(ctx), b); err != nil {
			return nil, err
		}
	}
	m := l.s.metrics
	for _, pool := range fx.Submitted {
		m.submitted(pool)
	}
	for _, j := range fx.Started {
		m.jobStarted(j.Pool, now.Sub(j.CreatedAt))
	}
	for _, a := range fx.AttemptsEnded {
		m.attemptEnded(a.Pool, a.Reason)
	}
	for _, c := range fx.ClustersEnded {
		m.clusterEnded(c, now)
	}
	for _, pool := range fx.Blocked {
		m.poolBlocked(pool)
	}
	for _, kind := range fx.Illegal {
		m.illegalMove(kind)
	}
	for _, line := range fx.Logs {
		l.s.log.Log(ctx, line.Level, line.Msg, line.Args...)
	}
	for _, c := range fx.EndedClusters {
		if w := l.watchers[c.C.ID]; w != nil {
			w.stop()
			delete(l.watchers, c.C.ID)
		}
	}
	written := make(map[string]bool, len(b.Jobs))
	for _, j := range b.Jobs {
		written[j.ID] = true
	}
	l.forgetSteps(fx.StepsEnded)
	l.wakeAt = fx.WakeAt
	calls, watch, poke, wake := fx.Calls, fx.Watch, fx.Poke, fx.Wake
	l.st.Committed()
	for _, id := range watch {
		l.watch(id)
	}
	for _, id := range poke {
		if w := l.watchers[id]; w != nil {
			w.poke()
		}
	}
	if wake {
		l.s.Wake()
	}
	l.publish(now, written)
	return calls, nil
}

// forgetSteps tells the providers that can forget (provider.Forgetter)
// the steps whose end the commit recorded.
func (l *loop) forgetSteps(ended map[string][]string) {
	for _, id := range keys(ended) {
		c := l.st.Cluster(id)
		if c == nil || c.C.ProviderID == "" {
			continue
		}
		if f, ok := l.s.pools[c.C.Pool].prov.(provider.Forgetter); ok {
			f.ForgetSteps(c.C.ProviderID, ended[id])
		}
	}
}

// publish hands readers a copy of the live counts and tells long polls
// which jobs the commit wrote.
func (l *loop) publish(now time.Time, jobs map[string]bool) {
	clusters := l.st.Clusters()
	v := view{pools: make(map[string]berth.PoolStatus, len(l.s.poolNames)), running: l.running(clusters)}
	pools := make(map[string]*berth.PoolStatus, len(l.s.poolNames))
	live := make(map[string]float64, len(l.s.poolNames))
	for _, name := range l.s.poolNames {
		p := l.s.pools[name].rt
		ps := poolStatus(p.Pool)
		ps.FallbackActive = p.State.FallbackActive(now)
		if p.State.Blocked() {
			ps.Blocked, ps.BlockedReason, ps.BlockedAt = true, p.State.BlockedReason, p.State.BlockedAt
		}
		if sc := l.strays[name]; sc != nil {
			for _, c := range sc.found {
				ps.Strays = append(ps.Strays, c.ID)
			}
		}
		for st, n := range p.Ended {
			ps.Clusters[st] = n
		}
		ps.Queued, ps.Running = l.st.QueueLen(name), l.st.RunningIn(name)
		pools[name] = &ps
	}
	for _, c := range clusters {
		cc := &c.C
		ps := pools[cc.Pool]
		if ps == nil {
			continue // a pool no longer configured
		}
		live[cc.Pool] += cc.CostAt(now)
		ps.Clusters[cc.State]++
		ps.FreeSlots += cc.FreeSlots(v.running[cc.ID])
	}
	for name, ps := range pools {
		v.pools[name] = *ps
	}
	v.seq = l.lastSeq
	if next := l.forecastAt.Add(forecastEvery); l.forecastAt.IsZero() || !now.Before(next) {
		v.outlook = &l.outlooks[l.flip]
		l.flip ^= 1
		l.st.Forecast(now, v.outlook)
		l.forecastAt, l.forecastDue = now, false
	} else {
		v.outlook = &l.outlooks[l.flip^1]
		if !l.forecastDue {
			l.forecastDue = true
			l.s.exec.AfterFunc(next.Sub(now), l.s.Wake)
		}
	}
	l.s.metrics.observe(v, live)
	l.s.publish(v, jobs)
}

// running counts the running jobs of each live cluster for the view. Jobs
// start and end on few clusters in a pass, and on none in most, so while
// the counts are those the last view published, that view's map serves
// again: a pass over a thousand clusters allocates no new one.
func (l *loop) running(clusters []*lifecycle.Cluster) map[string]int {
	last := l.lastRunning
	same := len(last) == len(clusters)
	for _, c := range clusters {
		if n, ok := last[c.C.ID]; !ok || n != l.st.RunningOn(c.C.ID) {
			same = false
			break
		}
	}
	if same {
		return last
	}
	m := make(map[string]int, len(clusters))
	for _, c := range clusters {
		m[c.C.ID] = l.st.RunningOn(c.C.ID)
	}
	l.lastRunning = m
	return m
}

func poolStatus(p berth.Pool) berth.PoolStatus {
	return berth.PoolStatus{
		Pool:        p,
		IdleTimeout: berth.Duration(p.IdleTimeout), IdleTimeoutAuto: p.IdleAuto,
		BootTimeout: berth.Duration(p.BootTimeout),
		MaxLifetime: berth.Duration(p.MaxLifetime),
		Clusters:    map[berth.ClusterState]int{},
	}
}

// keys returns a map's keys in order: whatever the loop does for many
// jobs or clusters, it does in id order, so that a simulation replays.
func keys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// clusterCommand runs fn on the loop against a live cluster and returns
// the cluster after the pass that follows it has committed.
func (s *Service) clusterCommand(ctx context.Context, id string, fn func(st *lifecycle.State, id string) error) (berth.Cluster, error) {
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
func onCluster(id string, fn func(st *lifecycle.State, id string) error) func(l *loop) error {
	return func(l *loop) error { return fn(l.st, id) }
}
