package service

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider"
)

// maxPollBackoff caps how far a watcher slows down after errors and
// throttling.
const maxPollBackoff = 2 * time.Minute

// report is what a watcher saw of its cluster.
type report struct {
	clusterID string
	// from is the poke channel of the watcher that sent it: after a
	// reload, reports of a replaced watcher are ignored.
	from    chan struct{}
	cluster provider.Cluster
	// steps is set when listed is; a starting cluster's steps are not
	// listed.
	steps  []provider.Step
	listed bool
}

// watch starts the cluster's watcher: the one goroutine that polls the
// provider about it. It sends a report when something changed, so an
// unchanged cluster costs the loop nothing.
func (l *loop) watch(c *clusterRT) {
	ctx, cancel := context.WithCancel(l.ctx)
	c.stop, c.poke = cancel, make(chan struct{}, 1)
	prov, id, pid, poke := c.pool.prov, c.c.ID, c.c.ProviderID, c.poke
	interval := provider.DefaultPollInterval
	if p, ok := prov.(provider.Poller); ok {
		interval = p.PollInterval()
	}
	log := l.s.log.With("cluster_id", id, "provider_id", pid)
	clk := l.s.clock
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		last, wait, starting := "", interval, false
		for {
			r, err := poll(ctx, prov, id, pid, !starting)
			r.from = poke
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				wait = min(2*wait, maxPollBackoff)
				lvl := "provider poll failed"
				if errors.Is(err, berth.ErrThrottled) {
					lvl = "provider throttled the poll; slowing down"
				}
				log.Warn(lvl, "err", err, "next_poll", wait)
			default:
				wait, starting = interval, r.cluster.State == berth.ClusterStarting
				if fp := r.fingerprint(); fp != last {
					select {
					case l.s.reports <- r:
						last = fp
					case <-ctx.Done():
						return
					}
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-poke:
			case <-clk.After(wait):
			}
		}
	}()
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
	if !ok || r.from != c.poke {
		return
	}
	now := l.s.clock.Now()
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
			l.setClusterState(c, berth.ClusterReady, "")
			l.s.log.Info("cluster ready", "cluster_id", c.c.ID, "pool", c.c.Pool, "boot", now.Sub(c.c.CreatedAt))
		}
	case berth.ClusterLost:
		l.loseCluster(c, r.cluster.Reason, r.cluster.Class == provider.ClassCapacity, now)
	case berth.ClusterTerminated:
		if c.c.State != berth.ClusterTerminating {
			l.loseCluster(c, "terminated outside Berth: "+r.cluster.Reason, r.cluster.Class == provider.ClassCapacity, now)
			return
		}
		l.endCluster(c, now)
	}
}

// endCluster records that a cluster we were terminating is gone.
func (l *loop) endCluster(c *clusterRT, now time.Time) {
	c.c.State, c.c.EndedAt = berth.ClusterTerminated, now
	if c.c.EndsLost {
		c.c.State = berth.ClusterLost
	}
	l.dirtyClusters[c.c.ID] = true
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
