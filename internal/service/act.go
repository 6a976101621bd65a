package service

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider"
)

const (
	// maxCalls bounds the provider calls in flight at once.
	maxCalls = 32
	// callTimeout bounds one provider call.
	callTimeout = 2 * time.Minute
	// giveUpAfter failed tries of a create or submit end the cluster or
	// attempt; throttling does not count.
	giveUpAfter = 5
	retryBase   = time.Second
	retryMax    = time.Minute
	// cancelResend is how long a cancelled step may keep running before
	// the cancel is sent again.
	cancelResend = 30 * time.Second
)

type actionKind int

const (
	actCreate actionKind = iota
	actSubmit
	actCancel
	actTerminate
	actFind
)

// action is one provider call the loop decided on and committed.
type action struct {
	kind    actionKind
	cluster *clusterRT
	// For steps:
	jobID   string
	attempt int
	step    int
	name    string
	spec    berth.Step
	stepID  string
	// Copied when queued, so the call does not read loop state.
	providerID string
	req        provider.CreateRequest
	prov       provider.Provider
}

func (a action) key() string {
	switch a.kind {
	case actCreate:
		return "create:" + a.cluster.c.ID
	case actTerminate:
		return "terminate:" + a.cluster.c.ID
	case actSubmit:
		return "submit:" + a.name
	case actFind:
		return "find:" + a.cluster.c.ID
	default:
		return "cancel:" + a.name
	}
}

// result is a finished provider call.
type result struct {
	action
	id  string
	err error
}

func submitKey(j *berth.Job, a *berth.Attempt, st *berth.AttemptStep) string {
	return "submit:" + berth.StepName(j.ID, a.N, st.Index)
}

// queueActions derives the provider calls the state asks for. Calls are
// derived from state rather than remembered, so after a restart the same
// state asks for the same calls, which the providers make idempotent.
func (l *loop) queueActions(now time.Time) {
	for _, id := range keys(l.clusters) {
		c := l.clusters[id]
		switch {
		case c.c.State == berth.ClusterStarting && c.c.ProviderID == "":
			l.actions = append(l.actions, action{kind: actCreate, cluster: c})
		case c.c.State == berth.ClusterTerminating && c.c.ProviderID != "":
			l.actions = append(l.actions, action{kind: actTerminate, cluster: c})
		case c.c.State == berth.ClusterTerminating:
			l.resolveUncreated(c, now)
		}
	}
	for _, j := range l.jobsWhere(func(j *berth.Job) bool { return j.CurrentAttempt() != nil }) {
		a := j.CurrentAttempt()
		c, ok := l.clusters[a.ClusterID]
		if !ok {
			continue
		}
		cur := a.Steps[len(a.Steps)-1]
		name := berth.StepName(j.ID, a.N, cur.Index)
		if _, stop := l.stopping[j.ID]; stop {
			if cur.ProviderID != "" && !cur.State.Terminal() {
				l.actions = append(l.actions, action{kind: actCancel, cluster: c, jobID: j.ID, attempt: a.N, step: cur.Index, name: name, stepID: cur.ProviderID})
			}
			continue
		}
		if cur.ProviderID != "" || !c.observed {
			continue
		}
		if _, seen := c.steps[name]; seen {
			continue
		}
		if c.c.State == berth.ClusterReady || c.c.State == berth.ClusterDraining {
			l.actions = append(l.actions, action{kind: actSubmit, cluster: c, jobID: j.ID, attempt: a.N, step: cur.Index, name: name, spec: j.Steps[cur.Index].Step})
		}
	}
}

// resolveUncreated ends a terminating cluster the provider never gave an
// id for. A creation still in flight may yet return one: wait for it. A
// provider that can look the cluster up is asked; otherwise it was never
// created.
func (l *loop) resolveUncreated(c *clusterRT, now time.Time) {
	if l.inflight[action{kind: actCreate, cluster: c}.key()] {
		return
	}
	if _, ok := c.pool.prov.(provider.Finder); ok {
		l.actions = append(l.actions, action{kind: actFind, cluster: c})
		return
	}
	l.endCluster(c, now)
}

// act starts the committed actions as provider calls on the executor;
// results come back to the loop as inputs. It returns how many it started.
func (l *loop) act(ctx context.Context) int {
	now := l.now
	actions := l.actions
	l.actions = nil
	sort.SliceStable(actions, func(a, b int) bool { return actions[a].kind < actions[b].kind })
	n := 0
	for _, a := range actions {
		key := a.key()
		if l.inflight[key] || now.Before(l.retryAt[key]) {
			continue
		}
		a.prov = a.cluster.pool.prov
		a.providerID = a.cluster.c.ProviderID
		a.req = provider.CreateRequest{ClusterID: a.cluster.c.ID, Pool: a.cluster.c.Pool, Slots: a.cluster.c.Slots, Fallback: a.cluster.c.Fallback}
		if !l.s.spawn(func() { l.s.post(call(ctx, a)) }) {
			// Stopping: the state on disk asks for this call again after
			// the restart, and the provider makes it idempotent.
			continue
		}
		l.inflight[key] = true
		n++
	}
	return n
}

func call(ctx context.Context, a action) result {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	r := result{action: a}
	switch a.kind {
	case actCreate:
		r.id, r.err = a.prov.CreateCluster(ctx, a.req)
	case actSubmit:
		r.id, r.err = a.prov.SubmitStep(ctx, a.providerID, provider.StepRequest{Name: a.name, Step: a.spec})
	case actCancel:
		r.err = a.prov.CancelStep(ctx, a.providerID, a.stepID)
	case actTerminate:
		r.err = a.prov.TerminateCluster(ctx, a.providerID)
	case actFind:
		var found bool
		if r.id, found, r.err = a.prov.(provider.Finder).FindCluster(ctx, a.req.ClusterID); r.err == nil && !found {
			r.id = ""
		}
	}
	return r
}

// applyResult records what a provider call returned.
func (l *loop) applyResult(r result) {
	key := r.key()
	delete(l.inflight, key)
	now := l.now
	c, live := l.clusters[r.cluster.c.ID]
	if r.err != nil {
		l.failedCall(r, c, live, now)
		return
	}
	delete(l.tries, key)
	delete(l.retryAt, key)
	if !live {
		return
	}
	switch r.kind {
	case actCreate:
		if c.c.ProviderID == "" {
			c.c.ProviderID = r.id
			l.dirtyClusters[c.c.ID] = true
			l.event("", c.c.ID, "created", fmt.Sprintf("provider id %s", r.id))
			l.watch(c)
		}
	case actSubmit:
		j, ok := l.jobs[r.jobID]
		if !ok {
			return
		}
		a := j.CurrentAttempt()
		if a == nil || a.N != r.attempt {
			return
		}
		cur := &a.Steps[len(a.Steps)-1]
		if cur.Index == r.step && cur.ProviderID == "" {
			cur.ProviderID = r.id
			l.dirtyJobs[j.ID] = true
			l.event(j.ID, c.c.ID, "step_submitted", fmt.Sprintf("attempt %d step %d submitted as %s", a.N, cur.Index, r.id))
		}
		c.pokeWatcher()
	case actCancel:
		// Sent; send again only if the step still runs a while from now.
		l.retryAt[key] = now.Add(cancelResend)
		c.pokeWatcher()
	case actTerminate:
		c.released = true
		c.pokeWatcher()
	case actFind:
		if r.id == "" {
			l.endCluster(c, now)
			return
		}
		if c.c.ProviderID == "" {
			c.c.ProviderID = r.id
			l.dirtyClusters[c.c.ID] = true
			l.event("", c.c.ID, "found", fmt.Sprintf("found at the provider as %s; terminating it", r.id))
			l.watch(c)
		}
	}
}

// failedCall schedules a retry, or gives up on what the call was for.
func (l *loop) failedCall(r result, c *clusterRT, live bool, now time.Time) {
	key := r.key()
	if errors.Is(r.err, context.Canceled) || !live {
		return
	}
	if r.kind == actSubmit && errors.Is(r.err, berth.ErrInvalid) {
		// The provider says the step itself is wrong: the job's failure,
		// and no retry of the call will change it.
		if j, ok := l.jobs[r.jobID]; ok {
			if a := j.CurrentAttempt(); a != nil && a.N == r.attempt {
				l.event(j.ID, c.c.ID, "step_failed", fmt.Sprintf("attempt %d step %d refused by the provider: %v", a.N, r.step, r.err))
				l.userFailure(j, berth.ReasonStepFailed, now)
			}
		}
		return
	}
	if r.kind == actCreate {
		switch provider.ClassOf(r.err) {
		case provider.ClassPermanent:
			// The spec can never work: trying again, or another cluster,
			// would only spend.
			l.block(c, r.err.Error(), now)
			l.holdStarts(c.pool, now)
			l.abandon(c, "create refused: "+r.err.Error(), now)
			return
		case provider.ClassCapacity:
			l.capacityFailure(c, now)
			l.holdStarts(c.pool, now)
			l.abandon(c, "no capacity: "+r.err.Error(), now)
			return
		}
	}
	throttled := errors.Is(r.err, berth.ErrThrottled) || errors.Is(r.err, provider.ErrNotReady)
	if !throttled {
		l.tries[key]++
	}
	n := l.tries[key]
	wait := min(l.s.callRetry<<min(n, 10), retryMax)
	l.retryAt[key] = now.Add(wait)
	l.s.log.Warn("provider call failed", "call", key, "cluster_id", c.c.ID, "err", r.err, "tries", n, "retry_in", wait)
	if n < giveUpAfter {
		return
	}
	delete(l.tries, key)
	delete(l.retryAt, key)
	switch r.kind {
	case actCreate:
		l.holdStarts(c.pool, now)
		l.abandon(c, fmt.Sprintf("create failed %d times: %v", n, r.err), now)
	case actSubmit:
		j, ok := l.jobs[r.jobID]
		if !ok {
			return
		}
		if a := j.CurrentAttempt(); a != nil && a.N == r.attempt {
			// The provider's trouble, not the job's: charged to the
			// infrastructure budget. Should the step exist after all, the
			// watcher's orphan check cancels it.
			l.infraFailure(j, berth.ReasonProviderError, fmt.Sprintf("step %d could not be submitted (%v)", r.step, r.err), now)
		}
	}
}
