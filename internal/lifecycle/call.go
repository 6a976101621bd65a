package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider"
)

// CallKind is what a provider call does.
type CallKind int

// The provider calls, in the order a pass makes them: creations first,
// terminations last.
const (
	CallCreate CallKind = iota
	CallSubmit
	CallCancel
	CallTerminate
	CallFind
)

// Call is one provider call the policy decided on. It is made only after
// the pass that decided it has committed.
type Call struct {
	Kind      CallKind
	ClusterID string
	// For steps:
	JobID   string
	Attempt int
	Step    int
	Name    string
	Spec    berth.Step
	StepID  string
	// Since is when the attempt started: a step submitted for it cannot
	// be older, so a provider looking for it need look no further back.
	Since time.Time
	// ExecutionRoleArn is the job's, for the step to run as (EMR's runtime
	// roles); "" for none. Only EMR pools use it.
	ExecutionRoleArn string
}

// Result is what a provider call returned.
type Result struct {
	Call
	// ID is the provider's id of what it created, submitted or found ("":
	// found nothing).
	ID  string
	Err error
}

// Key names the call for the bookkeeping of calls in flight and retries.
func (a Call) Key() string {
	switch a.Kind {
	case CallCreate:
		return "create:" + a.ClusterID
	case CallTerminate:
		return "terminate:" + a.ClusterID
	case CallSubmit:
		return "submit:" + a.Name
	case CallFind:
		return "find:" + a.ClusterID
	default:
		return "cancel:" + a.Name
	}
}

func submitKey(j *berth.Job, a *berth.Attempt, st *berth.AttemptStep) string {
	return "submit:" + berth.StepName(j.ID, a.N, st.Index)
}

// queueActions derives the provider calls the state asks for. Calls are
// derived from state rather than remembered, so after a restart the same
// state asks for the same calls, which the providers make idempotent.
func (s *State) deriveCalls(now time.Time) {
	for _, c := range s.Clusters() {
		switch {
		case c.C.State == berth.ClusterStarting && c.C.ProviderID == "":
			s.fx.Calls = append(s.fx.Calls, Call{Kind: CallCreate, ClusterID: c.C.ID})
		case c.C.State == berth.ClusterTerminating && c.C.ProviderID != "":
			s.fx.Calls = append(s.fx.Calls, Call{Kind: CallTerminate, ClusterID: c.C.ID})
		case c.C.State == berth.ClusterTerminating:
			s.resolveUncreated(c, now)
		}
	}
	for _, j := range s.runningJobs() {
		a := j.CurrentAttempt()
		c, ok := s.clusters[a.ClusterID]
		if !ok {
			continue
		}
		cur := a.Steps[len(a.Steps)-1]
		_, stop := s.stopping[j.ID]
		if !stop && (cur.ProviderID != "" || !c.Observed) {
			continue // the common case, a step under way: nothing to call
		}
		name := berth.StepName(j.ID, a.N, cur.Index)
		if stop {
			if cur.ProviderID != "" && !cur.State.Terminal() {
				s.fx.Calls = append(s.fx.Calls, Call{Kind: CallCancel, ClusterID: c.C.ID, JobID: j.ID, Attempt: a.N, Step: cur.Index, Name: name, StepID: cur.ProviderID})
			}
			continue
		}
		if _, seen := c.Steps[name]; seen {
			continue
		}
		if c.C.State == berth.ClusterReady || c.C.State == berth.ClusterDraining {
			s.fx.Calls = append(s.fx.Calls, Call{Kind: CallSubmit, ClusterID: c.C.ID, JobID: j.ID, Attempt: a.N, Step: cur.Index, Name: name, Spec: j.Steps[cur.Index].Step, Since: a.StartedAt, ExecutionRoleArn: j.ExecutionRoleArn})
		}
	}
}

// resolveUncreated ends a terminating cluster the provider never gave an
// id for. A creation still in flight may yet return one: wait for it. A
// provider that can look the cluster up is asked; otherwise it was never
// created.
func (s *State) resolveUncreated(c *Cluster, now time.Time) {
	if s.inflight[Call{Kind: CallCreate, ClusterID: c.C.ID}.Key()] {
		return
	}
	if c.Pool.CanFind {
		s.fx.Calls = append(s.fx.Calls, Call{Kind: CallFind, ClusterID: c.C.ID})
		return
	}
	s.endCluster(c, now)
}

// applyResult records what a provider call returned.
// ApplyResult records what a provider call returned.
func (s *State) ApplyResult(r Result) {
	key := r.Key()
	delete(s.inflight, key)
	now := s.now
	c, live := s.clusters[r.ClusterID]
	if r.Err != nil {
		s.failedCall(r, c, live, now)
		return
	}
	delete(s.tries, key)
	delete(s.retryAt, key)
	if !live {
		return
	}
	switch r.Kind {
	case CallCreate:
		if c.C.ProviderID == "" {
			c.C.ProviderID = r.ID
			s.fx.DirtyClusters[c.C.ID] = true
			s.event("", c.C.ID, "created", fmt.Sprintf("provider id %s", r.ID))
			s.fx.Watch = append(s.fx.Watch, c.C.ID)
		}
	case CallSubmit:
		j, ok := s.jobs[r.JobID]
		if !ok {
			return
		}
		a := j.CurrentAttempt()
		if a == nil || a.N != r.Attempt {
			return
		}
		cur := &a.Steps[len(a.Steps)-1]
		if cur.Index == r.Step && cur.ProviderID == "" {
			cur.ProviderID = r.ID
			s.fx.DirtyJobs[j.ID] = true
			s.event(j.ID, c.C.ID, "step_submitted", fmt.Sprintf("attempt %d step %d submitted as %s", a.N, cur.Index, r.ID))
		}
		// The service has the cluster's watcher look as the call returns
		// (service's act), sooner than a poke after this commit could.
	case CallCancel:
		// Sent; send again only if the step still runs a while from now.
		s.retryAt[key] = now.Add(cancelResend)
		s.fx.Poke = append(s.fx.Poke, c.C.ID)
	case CallTerminate:
		// Taken: a cluster that takes minutes to end (EMR) is asked
		// again only if it is still there a while from now.
		c.Released = true
		s.retryAt[key] = now.Add(terminateResend)
		s.fx.Poke = append(s.fx.Poke, c.C.ID)
	case CallFind:
		if r.ID == "" {
			s.endCluster(c, now)
			return
		}
		if c.C.ProviderID == "" {
			c.C.ProviderID = r.ID
			s.fx.DirtyClusters[c.C.ID] = true
			s.event("", c.C.ID, "found", fmt.Sprintf("found at the provider as %s; terminating it", r.ID))
			s.fx.Watch = append(s.fx.Watch, c.C.ID)
		}
	}
}

// failedCall schedules a retry, or gives up on what the call was for.
func (s *State) failedCall(r Result, c *Cluster, live bool, now time.Time) {
	key := r.Key()
	if errors.Is(r.Err, context.Canceled) || !live {
		return
	}
	if r.Kind == CallSubmit && errors.Is(r.Err, berth.ErrInvalid) {
		// The provider says the step itself is wrong: the job's failure,
		// and no retry of the call will change it.
		if j, ok := s.jobs[r.JobID]; ok {
			if a := j.CurrentAttempt(); a != nil && a.N == r.Attempt {
				s.event(j.ID, c.C.ID, "step_failed", fmt.Sprintf("attempt %d step %d refused by the provider: %v", a.N, r.Step, r.Err))
				s.userFailure(j, berth.ReasonStepFailed, now)
			}
		}
		return
	}
	if r.Kind == CallCreate {
		switch provider.ClassOf(r.Err) {
		case provider.ClassPermanent:
			// The spec can never work: trying again, or another cluster,
			// would only spend.
			s.block(c, r.Err.Error(), now)
			s.holdStarts(c.Pool, now)
			s.abandon(c, "create refused: "+r.Err.Error(), now)
			return
		case provider.ClassCapacity:
			s.capacityFailure(c, now)
			s.holdStarts(c.Pool, now)
			s.abandon(c, "no capacity: "+r.Err.Error(), now)
			return
		}
	}
	throttled := errors.Is(r.Err, berth.ErrThrottled) || errors.Is(r.Err, provider.ErrNotReady)
	if !throttled {
		s.tries[key]++
	}
	n := s.tries[key]
	wait := min(s.cfg.CallRetry<<min(n, 10), callRetryMax)
	s.retryAt[key] = now.Add(wait)
	s.log(slog.LevelWarn, "provider call failed", "call", key, "cluster_id", c.C.ID, "err", r.Err, "tries", n, "retry_in", wait)
	if n < giveUpAfter {
		return
	}
	delete(s.tries, key)
	delete(s.retryAt, key)
	switch r.Kind {
	case CallCreate:
		s.holdStarts(c.Pool, now)
		s.abandon(c, fmt.Sprintf("create failed %d times: %v", n, r.Err), now)
	case CallSubmit:
		j, ok := s.jobs[r.JobID]
		if !ok {
			return
		}
		if a := j.CurrentAttempt(); a != nil && a.N == r.Attempt {
			// The provider's trouble, not the job's: charged to the
			// infrastructure budget. Should the step exist after all, the
			// watcher's orphan check cancels it.
			s.infraFailure(j, berth.ReasonProviderError, fmt.Sprintf("step %d could not be submitted (%v)", r.Step, r.Err), now)
		}
	}
}
