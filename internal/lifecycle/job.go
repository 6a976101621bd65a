package lifecycle

import (
	"fmt"
	"time"

	"github.com/berthhq/berth/internal/berth"
)

func (s *State) place(j *berth.Job, c *Cluster, now time.Time) {
	first := j.NextStep()
	if first >= len(j.Steps) {
		// Every step succeeded before the last cluster was lost. The loss
		// ends such a job, so this is a bug the table refuses and counts.
		s.endJob(j, berth.JobSucceeded, berth.ReasonSucceeded, now)
		return
	}
	if j.StartedAt.IsZero() {
		j.StartedAt = now
		s.fx.Started = append(s.fx.Started, j)
	}
	for i := first; i < len(j.Steps); i++ {
		j.Steps[i].State = berth.StepPending
	}
	n := len(j.Attempts) + 1
	j.Attempts = append(j.Attempts, berth.Attempt{
		N: n, ClusterID: c.C.ID, State: berth.AttemptRunning, StartedAt: now, FirstStep: first,
		Steps: []berth.AttemptStep{{Index: first, State: berth.StepPending}},
	})
	j.ClusterID, j.NotBefore = c.C.ID, time.Time{}
	if !s.moveJob(j, berth.JobRunning) {
		return
	}
	c.C.IdleSince = time.Time{}
	s.fx.DirtyClusters[c.C.ID] = true
	if j.Affinity != "" && s.affinity[j.Affinity] != c.C.ID {
		s.affinity[j.Affinity] = c.C.ID
		s.fx.DirtyAffinity[j.Affinity] = c.C.ID
	}
	s.fx.DirtyJobs[j.ID] = true
	s.event(j.ID, c.C.ID, "placed", fmt.Sprintf("attempt %d on cluster %s from step %d", n, c.C.ID, first))
}

// infraFailure ends a job's attempt for a reason that is not the job's
// fault and queues it again from its infrastructure budget, ahead of newer
// work: it keeps its creation time.
func (s *State) infraFailure(j *berth.Job, reason berth.Reason, why string, now time.Time) {
	a := j.CurrentAttempt()
	// The attempt's end reason decides what it is charged to, whatever it
	// was being stopped for: a timeout the loss came before is no user
	// failure. A cancel stands: the job ends cancelled, its loss counted.
	stop, stopping := s.stopping[j.ID]
	delete(s.stopping, j.ID)
	delete(s.held, j.ID)
	s.endAttempt(j, a, berth.AttemptFailed, reason, now)
	j.InfraFailures++
	switch {
	case stopping && stop == berth.ReasonCancelled:
		s.endJob(j, berth.JobCancelled, berth.ReasonCancelled, now)
	case j.NextStep() >= len(j.Steps):
		// Every step succeeded before the loss (resume: unfinished).
		s.endJob(j, berth.JobSucceeded, berth.ReasonSucceeded, now)
	case j.InfraFailures > j.MaxInfraRetries:
		s.endJob(j, berth.JobFailed, berth.ReasonInfraRetries, now)
		s.event(j.ID, a.ClusterID, "failed", fmt.Sprintf("%s; %d infrastructure failures exceed max_infra_retries %d", why, j.InfraFailures, j.MaxInfraRetries))
	case s.moveJob(j, berth.JobQueued):
		s.event(j.ID, a.ClusterID, "requeued", fmt.Sprintf("%s during attempt %d; queued again (infrastructure retry %d of %d)", why, a.N, j.InfraFailures, j.MaxInfraRetries))
	}
}

// endAttempt closes a job's running attempt.
func (s *State) endAttempt(j *berth.Job, a *berth.Attempt, state berth.AttemptState, reason berth.Reason, now time.Time) {
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
	if c, ok := s.clusters[a.ClusterID]; ok {
		a.Cost = berth.SlotCost(now.Sub(a.StartedAt), c.C.PricePerHour, c.C.Slots)
	}
	j.Cost += a.Cost
	s.fx.DirtyJobs[j.ID] = true
	s.fx.AttemptsEnded = append(s.fx.AttemptsEnded, AttemptEnd{Pool: j.Pool, Reason: reason})
	s.event(j.ID, a.ClusterID, "attempt_ended", fmt.Sprintf("attempt %d ended: %s", a.N, reason))
}

// endJob ends a job for good.
func (s *State) endJob(j *berth.Job, state berth.JobState, reason berth.Reason, now time.Time) {
	if !j.State.CanMove(state) {
		s.illegal("job", j.ID, string(j.State), string(state))
		return
	}
	if state == berth.JobSucceeded {
		s.foresee.succeeded(j, now)
		s.expectVer++
	} else {
		s.foresee.stopped(j)
		s.expectVer++
	}
	if a := j.CurrentAttempt(); a != nil {
		as := berth.AttemptFailed
		switch state {
		case berth.JobSucceeded:
			as = berth.AttemptSucceeded
		case berth.JobCancelled:
			as = berth.AttemptCancelled
		}
		s.endAttempt(j, a, as, reason, now)
	}
	s.moveJob(j, state)
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
	delete(s.stopping, j.ID)
	s.fx.DirtyJobs[j.ID] = true
	s.fx.EndedJobs = append(s.fx.EndedJobs, j)
	s.event(j.ID, j.ClusterID, string(state), fmt.Sprintf("job %s", state))
}

// userFailure charges a failed or timed-out attempt to the job's retries.
func (s *State) userFailure(j *berth.Job, reason berth.Reason, now time.Time) {
	n := len(j.Attempts)
	if a := j.CurrentAttempt(); a != nil {
		s.endAttempt(j, a, berth.AttemptFailed, reason, now)
	}
	delete(s.stopping, j.ID)
	j.UserFailures++
	if j.UserFailures > j.Retries {
		s.endJob(j, berth.JobFailed, reason, now)
		return
	}
	wait := s.cfg.RetryBackoff << (j.UserFailures - 1)
	if wait > MaxRetryBackoff || wait <= 0 {
		wait = MaxRetryBackoff
	}
	// Set before the move, so that the job waits among the deferred.
	j.NotBefore = now.Add(wait)
	if !s.moveJob(j, berth.JobQueued) {
		return
	}
	s.event(j.ID, j.ClusterID, "retry", fmt.Sprintf("attempt %d: %s; retry %d of %d after %s", n, reason, j.UserFailures, j.Retries, wait))
}

// finishStopped ends a job whose attempt was stopped for reason r.
func (s *State) finishStopped(j *berth.Job, r berth.Reason, now time.Time) {
	if r == berth.ReasonTimeout {
		// The attempt ran past its timeout and its step has stopped: the
		// job's failure. (A loss that came first is charged as a loss by
		// infraFailure, which never comes here.)
		s.userFailure(j, r, now)
		return
	}
	s.endJob(j, berth.JobCancelled, berth.ReasonCancelled, now)
}

// stopAttempts acts on cancel requests and timeouts.
func (s *State) stopAttempts(now time.Time) {
	// Each list is as it was when the pass came here: ending a job does
	// not change the one being walked.
	for _, j := range s.cancelledQueued() {
		s.stopAttempt(j, now)
	}
	for _, j := range s.runningJobs() {
		s.stopAttempt(j, now)
	}
}

// stopAttempt is stopAttempts for one job.
func (s *State) stopAttempt(j *berth.Job, now time.Time) {
	if j.State.Terminal() {
		return
	}
	if j.State == berth.JobQueued && j.CancelRequested {
		s.endJob(j, berth.JobCancelled, berth.ReasonCancelled, now)
		return
	}
	a := j.CurrentAttempt()
	if a == nil {
		return
	}
	if _, stop := s.stopReason(j, now); !stop {
		return
	}
	// A step not yet accepted by the provider, and not being
	// submitted, runs nowhere: the attempt can end at once.
	cur := &a.Steps[len(a.Steps)-1]
	if cur.ProviderID == "" && !s.inflight[submitKey(j, a, cur)] {
		if c, ok := s.clusters[a.ClusterID]; !ok || c.Observed {
			if _, seen := s.clusterStep(j.ID, a, cur); !seen {
				s.finishStopped(j, s.stopping[j.ID], now)
			}
		}
	}
}

// stopReason reports whether a running job's attempt is to be stopped, and
// why, marking it so the first time it finds out.
func (s *State) stopReason(j *berth.Job, now time.Time) (berth.Reason, bool) {
	if r, ok := s.stopping[j.ID]; ok {
		return r, true
	}
	a := j.CurrentAttempt()
	switch {
	case a == nil:
		return "", false
	case j.CancelRequested:
		s.stopping[j.ID] = berth.ReasonCancelled
	case j.Timeout > 0 && !now.Before(a.StartedAt.Add(j.Timeout.Std())):
		s.stopping[j.ID] = berth.ReasonTimeout
		s.event(j.ID, a.ClusterID, "timeout", fmt.Sprintf("attempt %d ran past its timeout of %s", a.N, j.Timeout.Std()))
	default:
		return "", false
	}
	return s.stopping[j.ID], true
}

// nextDue is the earliest time a running job times out or a provider call
// may be retried.
func (s *State) nextDue(now time.Time) time.Time {
	var next time.Time
	earlier := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, j := range s.runningJobs() {
		if a := j.CurrentAttempt(); a != nil && j.Timeout > 0 {
			earlier(a.StartedAt.Add(j.Timeout.Std()))
		}
	}
	earlier(s.nextDeferred())
	for _, t := range s.retryAt {
		earlier(t)
	}
	for _, h := range s.held {
		if !h.confirming {
			earlier(h.until)
		}
	}
	for _, c := range s.clusters {
		if s.spared(c, now) {
			earlier(c.RestoredAt.Add(unobservedGrace))
		}
	}
	return next
}
