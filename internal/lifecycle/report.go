package lifecycle

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider"
)

// Report is what a watcher saw of its cluster at the provider.
type Report struct {
	ClusterID string
	Cluster   provider.Cluster
	// Steps is set when Listed is; a starting cluster's steps are not
	// listed.
	Steps  []provider.Step
	Listed bool
}

// applyReport folds a watcher's report into the loop's state.
// ApplyReport folds a watcher's report into the state.
func (s *State) ApplyReport(r Report) {
	c, ok := s.clusters[r.ClusterID]
	if !ok {
		return
	}
	now := s.now
	c.Observed = true
	// A cluster the provider is tearing down, or that we asked to
	// terminate, is as good as gone: its steps fail because it ends.
	gone := r.Cluster.State.Terminal() || r.Cluster.State == berth.ClusterTerminating || c.C.State == berth.ClusterTerminating
	if r.Listed {
		c.Steps = make(map[string]provider.Step, len(r.Steps))
		for _, st := range r.Steps {
			c.Steps[st.Name] = st
		}
		for _, j := range s.jobsOn(c.C.ID) {
			s.advance(j, c, gone, now)
		}
		if !gone {
			s.cancelOrphans(c, r.Steps)
		}
	}
	switch r.Cluster.State {
	case berth.ClusterReady:
		if c.C.ReadyAt.IsZero() {
			c.C.ReadyAt, c.C.IdleSince = now, now
			s.fx.DirtyClusters[c.C.ID] = true
		}
		if c.C.State == berth.ClusterStarting {
			c.Pool.CreateFailures, c.Pool.StartAfter = 0, time.Time{}
			s.setClusterState(c, berth.ClusterReady, "")
			s.fx.Readied = append(s.fx.Readied, c)
			s.log(slog.LevelInfo, "cluster ready", "cluster_id", c.C.ID, "pool", c.C.Pool, "boot", now.Sub(c.C.CreatedAt))
		}
	case berth.ClusterLost:
		s.loseCluster(c, r.Cluster.Reason, r.Cluster.Class, now)
	case berth.ClusterTerminated:
		if c.C.State != berth.ClusterTerminating {
			s.loseCluster(c, "terminated outside Berth: "+r.Cluster.Reason, r.Cluster.Class, now)
			return
		}
		s.endCluster(c, now)
	}
	if !gone {
		s.confirmHeld(c)
	}
}

// cancelOrphans cancels running steps of ours that no running attempt owns:
// the step of an attempt that ended while its submission's fate was
// unknown (a timed-out call, a cancel or timeout that came first). Without
// this such a step would run on beside the job's next attempt.
func (s *State) cancelOrphans(c *Cluster, steps []provider.Step) {
	for _, st := range steps {
		if st.State.Terminal() {
			continue
		}
		jobID, n, idx, ok := berth.ParseStepName(st.Name)
		if !ok {
			continue
		}
		if j, live := s.jobs[jobID]; live {
			if a := j.CurrentAttempt(); a != nil && a.N == n && a.ClusterID == c.C.ID && a.Steps[len(a.Steps)-1].Index == idx {
				continue
			}
		}
		s.fx.Calls = append(s.fx.Calls, Call{Kind: CallCancel, ClusterID: c.C.ID, JobID: jobID, Attempt: n, Step: idx, Name: st.Name, StepID: st.ID})
	}
}

// clusterStep finds the provider's report of an attempt's step by its name.
func (s *State) clusterStep(jobID string, a *berth.Attempt, cur *berth.AttemptStep) (provider.Step, bool) {
	c, ok := s.clusters[a.ClusterID]
	if !ok {
		return provider.Step{}, false
	}
	st, ok := c.Steps[berth.StepName(jobID, a.N, cur.Index)]
	return st, ok
}

// advance moves a job's running attempt along what the provider reported
// of its current step. When the cluster is gone only a success counts:
// whatever else its steps say is the loss, not the job.
func (s *State) advance(j *berth.Job, c *Cluster, gone bool, now time.Time) {
	a := j.CurrentAttempt()
	cur := &a.Steps[len(a.Steps)-1]
	ps, ok := c.Steps[berth.StepName(j.ID, a.N, cur.Index)]
	if !ok || (gone && ps.State != berth.StepSucceeded) {
		return
	}
	if s.hold(j, c, a, ps, now) {
		return
	}
	s.applyStep(j, c, a, cur, ps, now)
}

// hold keeps a step's failure from being charged to the job for the
// pool's attribution grace: a provider whose step failures can come before
// its cluster's loss (EMR) would otherwise bill the user for the
// infrastructure. A loss reported within the grace takes the blame
// (infraFailure drops the hold); at its end, chargeHeld charges the job.
// It reports whether the failure is held.
func (s *State) hold(j *berth.Job, c *Cluster, a *berth.Attempt, ps provider.Step, now time.Time) bool {
	grace := c.Pool.Grace
	if grace <= 0 || (ps.State != berth.StepFailed && ps.State != berth.StepCancelled) {
		return false
	}
	if _, stopping := s.stopping[j.ID]; stopping || j.CancelRequested {
		return false
	}
	if h, ok := s.held[j.ID]; ok && h.attempt == a.N {
		return true
	}
	s.held[j.ID] = held{attempt: a.N, cluster: c.C.ID, step: ps, until: now.Add(grace)}
	return true
}

// held is a step failure waiting out its attribution grace.
type held struct {
	attempt int
	cluster string
	step    provider.Step
	until   time.Time
	// confirming is set once the grace is over: the failure is charged on
	// the next report that shows the cluster alive, so that polls failing
	// meanwhile cannot hide a loss.
	confirming bool
}

// chargeHeld asks for a fresh look at the clusters of the held failures
// whose grace has passed, in job id order; the report that follows
// charges them (confirmHeld) unless it shows the cluster lost.
func (s *State) chargeHeld(now time.Time) {
	for _, id := range keys(s.held) {
		h := s.held[id]
		j := s.jobs[id]
		var a *berth.Attempt
		if j != nil {
			a = j.CurrentAttempt()
		}
		switch {
		case a == nil || a.N != h.attempt || s.clusters[h.cluster] == nil:
			delete(s.held, id)
		case !h.confirming && !now.Before(h.until):
			h.confirming = true
			s.held[id] = h
			s.fx.Poke = append(s.fx.Poke, h.cluster)
		}
	}
}

// confirmHeld charges the held failures on a cluster just reported alive
// whose grace is over.
func (s *State) confirmHeld(c *Cluster) {
	for _, id := range keys(s.held) {
		h := s.held[id]
		if h.cluster != c.C.ID || !h.confirming {
			continue
		}
		delete(s.held, id)
		j := s.jobs[id]
		if a := j.CurrentAttempt(); a != nil && a.N == h.attempt {
			s.applyStep(j, c, a, &a.Steps[len(a.Steps)-1], h.step, s.now)
		}
	}
}

// applyStep moves a job's running attempt along what the provider reported
// of its current step.
func (s *State) applyStep(j *berth.Job, c *Cluster, a *berth.Attempt, cur *berth.AttemptStep, ps provider.Step, now time.Time) {
	if cur.ProviderID == "" {
		if !s.inflight[submitKey(j, a, cur)] {
			// Found by name though never recorded: submitted before a crash.
			s.event(j.ID, c.C.ID, "step_adopted", fmt.Sprintf("attempt %d step %d found at the provider as %s and adopted", a.N, cur.Index, ps.ID))
		}
		cur.ProviderID = ps.ID
		s.fx.DirtyJobs[j.ID] = true
	}
	if ps.State == cur.State {
		return
	}
	s.fx.DirtyJobs[j.ID] = true
	cur.State = ps.State
	if cur.StartedAt.IsZero() && ps.State != berth.StepPending {
		cur.StartedAt = or(ps.StartedAt, now)
	}
	j.Steps[cur.Index].State = ps.State
	if !ps.State.Terminal() {
		return
	}
	cur.EndedAt, cur.ExitCode, cur.Message = or(ps.EndedAt, now), ps.ExitCode, ps.Message
	if s.fx.StepsEnded == nil {
		s.fx.StepsEnded = map[string][]string{}
	}
	s.fx.StepsEnded[c.C.ID] = append(s.fx.StepsEnded[c.C.ID], ps.ID)
	stop, stopping := s.stopReason(j, now)
	switch ps.State {
	case berth.StepSucceeded:
		last := cur.Index+1 >= len(j.Steps)
		switch {
		case last:
			s.endJob(j, berth.JobSucceeded, berth.ReasonSucceeded, now)
		case stopping:
			s.finishStopped(j, stop, now)
		default:
			s.event(j.ID, c.C.ID, "step_succeeded", fmt.Sprintf("attempt %d step %d succeeded", a.N, cur.Index))
			a.Steps = append(a.Steps, berth.AttemptStep{Index: cur.Index + 1, State: berth.StepPending})
		}
	case berth.StepFailed, berth.StepCancelled:
		if stopping {
			s.finishStopped(j, stop, now)
			return
		}
		if ps.State == berth.StepFailed && ps.Lost {
			s.infraFailure(j, berth.ReasonClusterLost, fmt.Sprintf("attempt %d step %d failed with a node of its cluster lost: %s", a.N, cur.Index, strings.TrimSpace(ps.Message)), now)
			return
		}
		msg := ps.Message
		if ps.ExitCode != nil {
			msg = fmt.Sprintf("exit code %d %s", *ps.ExitCode, msg)
		}
		s.event(j.ID, c.C.ID, "step_failed", fmt.Sprintf("attempt %d step %d %s: %s", a.N, cur.Index, ps.State, strings.TrimSpace(msg)))
		s.userFailure(j, berth.ReasonStepFailed, now)
	}
}

func or(t, def time.Time) time.Time {
	if t.IsZero() {
		return def
	}
	return t
}
