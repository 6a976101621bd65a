package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/clock"
	"github.com/berthhq/berth/internal/provider"
)

// maxPollBackoff caps how far a watcher slows down after errors and
// throttling.
const maxPollBackoff = 2 * time.Minute

// report is what a watcher saw of its cluster.
type report struct {
	clusterID string
	// from is the watcher that sent it: after a reload, reports of a
	// replaced watcher are ignored.
	from    *watcher
	cluster provider.Cluster
	// steps is set when listed is; a starting cluster's steps are not
	// listed.
	steps  []provider.Step
	listed bool
}

// watcher is the one poller of a cluster: it asks the provider about it
// every poll interval (or at once when poked) and reports to the loop only
// when something changed, so an unchanged cluster costs the loop nothing.
// It is a chain of tasks on the executor, a poll then a timer then a poll,
// never more than one poll in flight, and never blocks.
type watcher struct {
	s        *Service
	id, pid  string
	prov     provider.Provider
	interval time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	stopped bool
	polling bool
	poked   bool
	timer   clock.Timer

	// Touched only by the poll in flight:
	last     string
	wait     time.Duration
	starting bool
}

// watch starts the cluster's watcher.
func (l *loop) watch(c *clusterRT) {
	if c.watcher != nil {
		c.watcher.stop()
	}
	interval := provider.DefaultPollInterval
	if p, ok := c.pool.prov.(provider.Poller); ok {
		interval = p.PollInterval()
	}
	w := &watcher{
		s: l.s, id: c.c.ID, pid: c.c.ProviderID, prov: c.pool.prov, interval: interval,
		log: l.s.log.With("cluster_id", c.c.ID, "provider_id", c.c.ProviderID), wait: interval,
	}
	c.watcher = w
	w.mu.Lock()
	w.polling = true
	w.mu.Unlock()
	if !l.s.spawn(w.poll) {
		w.stop()
	}
}

func (w *watcher) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
}

// poke asks for a poll now rather than at the next interval.
func (w *watcher) poke() {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.stopped:
	case w.polling:
		w.poked = true
	case w.timer != nil && w.timer.Stop():
		w.timer = nil
		w.polling = true
		if !w.s.spawn(w.poll) {
			w.polling = false
		}
	}
}

// fire is the timer's end: the next poll.
func (w *watcher) fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped || w.polling {
		return
	}
	w.timer = nil
	w.polling = true
	if !w.s.spawn(w.poll) {
		w.polling = false
	}
}

func (w *watcher) poll() {
	w.mu.Lock()
	stopped := w.stopped
	w.mu.Unlock()
	if stopped {
		return
	}
	ctx, cancel := context.WithTimeout(w.s.ctx, callTimeout)
	r, err := poll(ctx, w.prov, w.id, w.pid, !w.starting)
	cancel()
	r.from = w
	switch {
	case w.s.ctx.Err() != nil:
		return
	case err != nil:
		w.wait = min(2*w.wait, maxPollBackoff)
		msg := "provider poll failed"
		if errors.Is(err, berth.ErrThrottled) {
			msg = "provider throttled the poll; slowing down"
		}
		w.log.Warn(msg, "err", err, "next_poll", w.wait)
	default:
		w.wait, w.starting = w.interval, r.cluster.State == berth.ClusterStarting
		if fp := r.fingerprint(); fp != w.last {
			w.last = fp
			w.s.post(r)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.polling = false
	if w.stopped {
		return
	}
	wait := w.wait
	if w.poked {
		w.poked, wait = false, 0
	}
	w.timer = w.s.after(wait, w.fire)
}

// poll asks the provider about one cluster: one ListSteps (unless the
// cluster was starting at the last poll, when it can have none) and one
// DescribeCluster — never a call per step.
//
// Steps are listed before the cluster is described, and a provider marks a
// cluster dead before it kills its steps. So a step that failed because its
// cluster died always comes in a report that also says the cluster died,
// and is charged to the loss, not to the job.
func poll(ctx context.Context, prov provider.Provider, id, pid string, list bool) (report, error) {
	r := report{clusterID: id}
	var listErr error
	if list {
		r.steps, listErr = prov.ListSteps(ctx, pid)
	}
	var err error
	if r.cluster, err = prov.DescribeCluster(ctx, pid); err != nil {
		return r, fmt.Errorf("describe cluster: %w", err)
	}
	switch {
	case !list || r.cluster.State == berth.ClusterStarting:
		r.steps = nil
	case listErr != nil && !r.cluster.State.Terminal():
		return r, fmt.Errorf("list steps: %w", listErr)
	case listErr == nil:
		r.listed = true
	}
	return r, nil
}

// fingerprint summarises a report so that a watcher sends only changes.
func (r report) fingerprint() string {
	var b strings.Builder
	b.WriteString(string(r.cluster.State))
	b.WriteString(r.cluster.Reason)
	b.WriteString(strconv.FormatBool(r.listed))
	for _, s := range r.steps {
		b.WriteString("|" + s.ID + "/" + s.Name + "/" + string(s.State))
		if s.ExitCode != nil {
			b.WriteString("/" + strconv.Itoa(*s.ExitCode))
		}
	}
	return b.String()
}

// applyReport folds a watcher's report into the loop's state.
func (l *loop) applyReport(r report) {
	c, ok := l.clusters[r.clusterID]
	if !ok || r.from != c.watcher {
		return
	}
	now := l.now
	c.observed = true
	// A cluster the provider is tearing down, or that we asked to
	// terminate, is as good as gone: its steps fail because it ends.
	gone := r.cluster.State.Terminal() || r.cluster.State == berth.ClusterTerminating || c.c.State == berth.ClusterTerminating
	if r.listed {
		c.steps = make(map[string]provider.Step, len(r.steps))
		for _, st := range r.steps {
			c.steps[st.Name] = st
		}
		for _, j := range l.jobsOn(c.c.ID) {
			l.advance(j, c, gone, now)
		}
		if !gone {
			l.cancelOrphans(c, r.steps)
		}
	}
	switch r.cluster.State {
	case berth.ClusterReady:
		if c.c.ReadyAt.IsZero() {
			c.c.ReadyAt, c.c.IdleSince = now, now
			l.dirtyClusters[c.c.ID] = true
		}
		if c.c.State == berth.ClusterStarting {
			c.pool.createFailures, c.pool.startAfter = 0, time.Time{}
			l.setClusterState(c, berth.ClusterReady, "")
			l.s.log.Info("cluster ready", "cluster_id", c.c.ID, "pool", c.c.Pool, "boot", now.Sub(c.c.CreatedAt))
		}
	case berth.ClusterLost:
		l.loseCluster(c, r.cluster.Reason, r.cluster.Class, now)
	case berth.ClusterTerminated:
		if c.c.State != berth.ClusterTerminating {
			l.loseCluster(c, "terminated outside Berth: "+r.cluster.Reason, r.cluster.Class, now)
			return
		}
		l.endCluster(c, now)
	}
}

// endCluster records that a cluster we were terminating is gone.
func (l *loop) endCluster(c *clusterRT, now time.Time) {
	to := berth.ClusterTerminated
	if c.c.EndsLost {
		to = berth.ClusterLost
	}
	if !l.moveCluster(c, to) {
		return
	}
	c.c.EndedAt = now
	l.endedClusters = append(l.endedClusters, c)
	l.event("", c.c.ID, string(c.c.State), c.c.Reason)
	l.s.metrics.clusterEnded(c.c, now)
	l.requeueFrom(c, now)
}

// cancelOrphans cancels running steps of ours that no running attempt owns:
// the step of an attempt that ended while its submission's fate was
// unknown (a timed-out call, a cancel or timeout that came first). Without
// this such a step would run on beside the job's next attempt.
func (l *loop) cancelOrphans(c *clusterRT, steps []provider.Step) {
	for _, st := range steps {
		if st.State.Terminal() {
			continue
		}
		jobID, n, idx, ok := berth.ParseStepName(st.Name)
		if !ok {
			continue
		}
		if j, live := l.jobs[jobID]; live {
			if a := j.CurrentAttempt(); a != nil && a.N == n && a.ClusterID == c.c.ID && a.Steps[len(a.Steps)-1].Index == idx {
				continue
			}
		}
		l.actions = append(l.actions, action{kind: actCancel, cluster: c, jobID: jobID, attempt: n, step: idx, name: st.Name, stepID: st.ID})
	}
}

// clusterStep finds the provider's report of an attempt's step by its name.
func (l *loop) clusterStep(jobID string, a *berth.Attempt, cur *berth.AttemptStep) (provider.Step, bool) {
	c, ok := l.clusters[a.ClusterID]
	if !ok {
		return provider.Step{}, false
	}
	st, ok := c.steps[berth.StepName(jobID, a.N, cur.Index)]
	return st, ok
}

// advance moves a job's running attempt along what the provider reported
// of its current step. When the cluster is gone only a success counts:
// whatever else its steps say is the loss, not the job.
func (l *loop) advance(j *berth.Job, c *clusterRT, gone bool, now time.Time) {
	a := j.CurrentAttempt()
	cur := &a.Steps[len(a.Steps)-1]
	ps, ok := c.steps[berth.StepName(j.ID, a.N, cur.Index)]
	if !ok || (gone && ps.State != berth.StepSucceeded) {
		return
	}
	if cur.ProviderID == "" {
		if !l.inflight[submitKey(j, a, cur)] {
			// Found by name though never recorded: submitted before a crash.
			l.event(j.ID, c.c.ID, "step_adopted", fmt.Sprintf("attempt %d step %d found at the provider as %s and adopted", a.N, cur.Index, ps.ID))
		}
		cur.ProviderID = ps.ID
		l.dirtyJobs[j.ID] = true
	}
	if ps.State == cur.State {
		return
	}
	l.dirtyJobs[j.ID] = true
	cur.State = ps.State
	if cur.StartedAt.IsZero() && ps.State != berth.StepPending {
		cur.StartedAt = or(ps.StartedAt, now)
	}
	j.Steps[cur.Index].State = ps.State
	if !ps.State.Terminal() {
		return
	}
	cur.EndedAt, cur.ExitCode, cur.Message = or(ps.EndedAt, now), ps.ExitCode, ps.Message
	stop, stopping := l.stopReason(j, now)
	switch ps.State {
	case berth.StepSucceeded:
		last := cur.Index+1 >= len(j.Steps)
		switch {
		case last:
			l.endJob(j, berth.JobSucceeded, berth.ReasonSucceeded, now)
		case stopping:
			l.finishStopped(j, stop, now)
		default:
			l.event(j.ID, c.c.ID, "step_succeeded", fmt.Sprintf("attempt %d step %d succeeded", a.N, cur.Index))
			a.Steps = append(a.Steps, berth.AttemptStep{Index: cur.Index + 1, State: berth.StepPending})
		}
	case berth.StepFailed, berth.StepCancelled:
		if stopping {
			l.finishStopped(j, stop, now)
			return
		}
		msg := ps.Message
		if ps.ExitCode != nil {
			msg = fmt.Sprintf("exit code %d %s", *ps.ExitCode, msg)
		}
		l.event(j.ID, c.c.ID, "step_failed", fmt.Sprintf("attempt %d step %d %s: %s", a.N, cur.Index, ps.State, strings.TrimSpace(msg)))
		l.userFailure(j, berth.ReasonStepFailed, now)
	}
}

func or(t, def time.Time) time.Time {
	if t.IsZero() {
		return def
	}
	return t
}
