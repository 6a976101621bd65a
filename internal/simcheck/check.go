package simcheck

import (
	"maps"
	"math"
	"slices"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider/sim"
	"github.com/berthhq/berth/internal/service"
	"github.com/berthhq/berth/internal/store"
)

// checker holds what the invariants need to remember between checks.
type checker struct {
	r *run
	// acked are the jobs the service acknowledged, with what was sent;
	// keys maps idempotency keys to the job they gave.
	acked map[string]berth.JobSpec
	keys  map[string]string
	// live are the unfinished jobs at the last check, by id.
	live map[string]bool
	// passed is set by a pass since the last check.
	passed *service.Pass
	// ended are the jobs checked once they ended.
	ended map[string]bool
	// jobs and clusters are what the store holds, as every write that
	// reached it left it; dirty says the store took a write since the
	// last check.
	jobs     map[string]berth.Job
	clusters map[string]berth.Cluster
	dirty    bool
	// blocked holds, for each pool the store has blocked, the Berth
	// cluster ids it knew then: no other may be created until the pool is
	// unblocked.
	blocked map[string]map[string]bool
	// queued are the jobs written queued since the last pass: their waits
	// are checked after it.
	queued []string
}

// written mirrors a batch the store took. Jobs are copied deep: the
// loop's own copies share their attempts and go on changing.
func (c *checker) written(b store.Batch) {
	for _, j := range b.Jobs {
		j = cloneJob(j)
		old := c.jobs[j.ID]
		j.CreatedAt, j.Seq, j.CancelRequested = old.CreatedAt, old.Seq, old.CancelRequested
		c.jobs[j.ID] = j
		if j.State == berth.JobQueued {
			c.queued = append(c.queued, j.ID)
		}
	}
	for _, cl := range b.Clusters {
		c.clusters[cl.ID] = cl
	}
	for _, ps := range b.Pools {
		switch _, was := c.blocked[ps.Pool]; {
		case ps.Blocked() && !was:
			known := map[string]bool{}
			for id := range c.clusters {
				known[id] = true
			}
			c.blocked[ps.Pool] = known
			c.r.logf("pool %s blocked: %s", ps.Pool, ps.BlockedReason)
		case !ps.Blocked() && was:
			delete(c.blocked, ps.Pool)
			c.r.logf("pool %s unblocked", ps.Pool)
		}
	}
	c.dirty = true
}

// created mirrors a job the store took.
func (c *checker) created(j berth.Job) {
	c.jobs[j.ID] = cloneJob(j)
	c.queued = append(c.queued, j.ID)
	c.dirty = true
}

func (c *checker) onPass(p service.Pass) {
	c.passed = &p
	if p.Illegal > 0 {
		c.r.failf("the pass refused %d illegal state changes", p.Illegal)
	}
}

func (c *checker) init() {
	c.acked, c.keys, c.live, c.ended = map[string]berth.JobSpec{}, map[string]string{}, map[string]bool{}, map[string]bool{}
	c.jobs, c.clusters = map[string]berth.Job{}, map[string]berth.Cluster{}
	c.blocked = map[string]map[string]bool{}
}

// afterStep checks what can be checked after every event: the provider's
// side always, the store's side after a pass.
func (c *checker) afterStep() {
	c.providerSide()
	p := c.passed
	c.passed = nil
	if c.dirty {
		c.dirty = false
		at := time.Time{}
		if p != nil && p.Err == nil {
			at = p.At
		}
		c.storeSide(at)
	}
	if p != nil && p.Err == nil {
		c.waits(p.At)
	}
}

// waits: a queued job, as the service shows it after a pass, says why it
// waits; its estimated start is not before that pass, a cluster it waits
// for is one of its pool, and a backoff lasts until its not_before. The
// jobs written queued since the last pass are checked: those that just
// came, went back to the queue, or were retried.
func (c *checker) waits(at time.Time) {
	r := c.r
	if r.svc == nil || r.down {
		return
	}
	for _, id := range c.queued {
		j, err := r.svc.Job(r.ctx, id)
		if err != nil || j.State != berth.JobQueued {
			continue
		}
		cl, known := c.clusters[j.WaitCluster]
		switch {
		case j.WaitReason == "":
			r.failf("queued job %s shows no wait_reason", id)
		case !j.ETA.IsZero() && j.ETA.Before(at):
			r.failf("job %s's eta %s is before the pass at %s that made it", id, j.ETA.Format(time.RFC3339Nano), at.Format(time.RFC3339Nano))
		case j.WaitCluster != "" && (!known || cl.Pool != j.Pool):
			r.failf("job %s of pool %s waits for cluster %s, which is not of its pool", id, j.Pool, j.WaitCluster)
		case j.WaitReason == berth.WaitBackoff && !j.WaitUntil.Equal(j.NotBefore):
			r.failf("job %s waits out a backoff until %s, but its not_before is %s", id, j.WaitUntil, j.NotBefore)
		}
	}
	c.queued = c.queued[:0]
}

// providerSide: never more clusters at a provider than the pool allows,
// counting every cluster Berth has not asked to terminate.
func (c *checker) providerSide() {
	r := c.r
	for _, name := range r.poolNames() {
		n := 0
		snap := r.provs[name].Clusters()
		for _, cl := range snap.Clusters {
			if !cl.State.Terminal() && !cl.TerminateAsked {
				n++
			}
		}
		if max := r.limits[name].MaxClusters; n > max {
			r.failf("pool %s has %d live clusters at its provider, max_clusters %d", name, n, max)
		}
		if known, ok := c.blocked[name]; ok {
			for _, cl := range snap.Clusters {
				if !known[cl.ClusterID] {
					r.failf("blocked pool %s started cluster %s (%s)", name, cl.ClusterID, cl.ID)
				}
			}
		}
	}
}

// storeSide checks what the store holds after a write; placedAt is the
// time of the pass that wrote it, whose new placements must be on ready
// clusters.
func (c *checker) storeSide(placedAt time.Time) {
	r := c.r
	running := map[string]int{}
	// In id order: what it logs is part of the seed's replay.
	for _, id := range slices.Sorted(maps.Keys(c.jobs)) {
		j := c.jobs[id]
		if _, ok := c.acked[id]; !ok && !c.adopted(j) {
			r.failf("job %s is in the store but was never acknowledged", id)
		}
		if j.State.Terminal() {
			c.endedJob(j)
			continue
		}
		nrun := 0
		for i, a := range j.Attempts {
			if a.State == berth.AttemptRunning {
				nrun++
				if i != len(j.Attempts)-1 {
					r.failf("job %s: attempt %d runs but is not its last", id, a.N)
				}
			}
		}
		cur := j.CurrentAttempt()
		switch {
		case nrun > 1:
			r.failf("job %s has %d running attempts", id, nrun)
		case (cur != nil) != (j.State == berth.JobRunning):
			r.failf("job %s is %s with running attempt %v", id, j.State, cur != nil)
		}
		if cur == nil {
			continue
		}
		running[cur.ClusterID]++
		cl, ok := c.clusters[cur.ClusterID]
		switch {
		case !ok || cl.State.Terminal():
			r.failf("job %s runs on cluster %s, which is not live", id, cur.ClusterID)
		case cur.StartedAt.Equal(placedAt) && cl.State != berth.ClusterReady:
			r.failf("job %s placed on cluster %s, which is %s", id, cl.ID, cl.State)
		}
	}
	live := map[string]int{}
	for id, cl := range c.clusters {
		if cl.State.Terminal() {
			continue
		}
		if running[id] > cl.Slots {
			r.failf("cluster %s runs %d jobs on %d slots", id, running[id], cl.Slots)
		}
		switch cl.State {
		case berth.ClusterStarting, berth.ClusterReady:
			live[cl.Pool]++
		case berth.ClusterDraining:
			if running[id] > 0 {
				live[cl.Pool]++
			}
		}
	}
	for pool, n := range live {
		if max := r.limits[pool].MaxClusters; n > max {
			r.failf("pool %s has %d live clusters in Berth's state, max_clusters %d", pool, n, max)
		}
	}
}

// adopted reports whether a job in the store that the harness never saw
// acknowledged is one whose acknowledgement was lost (a submission that was
// written and then failed): it must carry a key the harness sent.
func (c *checker) adopted(j berth.Job) bool {
	if j.IdempotencyKey == "" {
		return false
	}
	_, sent := c.keys[j.IdempotencyKey]
	return sent
}

// endedJob checks a job that has ended, once: its steps and attempts say
// so, and its failure counters agree with its attempts' reasons.
func (c *checker) endedJob(j berth.Job) {
	r, id := c.r, j.ID
	if c.ended[id] {
		return
	}
	c.ended[id] = true
	r.logf("job %s %s %s after %d attempts (user %d, infra %d)", j.ID, j.State, j.Reason, len(j.Attempts), j.UserFailures, j.InfraFailures)
	if !j.State.Terminal() {
		r.failf("job %s left the live set but is %s", id, j.State)
		return
	}
	for i, s := range j.Steps {
		if s.State == berth.StepRunning {
			r.failf("job %s ended %s but its step %d is %s", id, j.State, i, s.State)
		}
	}
	user, infra := 0, 0
	for _, a := range j.Attempts {
		if a.State == berth.AttemptRunning {
			r.failf("job %s ended but attempt %d runs", id, a.N)
		}
		for _, s := range a.Steps {
			if !s.State.Terminal() {
				r.failf("job %s ended but attempt %d step %d is %s", id, a.N, s.Index, s.State)
			}
		}
		switch a.Reason {
		case berth.ReasonStepFailed, berth.ReasonTimeout:
			user++
		case berth.ReasonClusterLost, berth.ReasonProviderError:
			infra++
		}
	}
	// A failure charged to the job was the job's: its step was one that
	// fails, never one killed with its cluster.
	for _, a := range j.Attempts {
		if a.Reason != berth.ReasonStepFailed || len(a.Steps) == 0 {
			continue
		}
		idx := a.Steps[len(a.Steps)-1].Index
		if args := j.Steps[idx].Args; len(args) == 0 || args[0] != "fail" {
			r.failf("job %s: attempt %d ended step_failed, but its step %d (%v) does not fail: an infrastructure failure charged to the user", id, a.N, idx, args)
		}
	}
	if j.UserFailures != user || j.InfraFailures != infra {
		r.failf("job %s counts %d user and %d infrastructure failures; its attempts say %d and %d", id, j.UserFailures, j.InfraFailures, user, infra)
	}
	if j.State == berth.JobSucceeded && len(j.Attempts) > 0 && j.Attempts[len(j.Attempts)-1].State != berth.AttemptSucceeded {
		r.failf("job %s succeeded but its last attempt is %s", id, j.Attempts[len(j.Attempts)-1].State)
	}
}

// atEnd checks the run as a whole once the quiet time is over.
func (c *checker) atEnd() {
	r := c.r
	if r.down {
		r.failf("berth is down at the end")
		return
	}
	// Every acknowledged job has ended, as the store has it.
	ids := make([]string, 0, len(c.acked))
	for id := range c.acked {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var jobCost float64
	for _, id := range ids {
		j, err := r.st.GetJob(r.ctx, id)
		if err != nil {
			r.failf("acknowledged job %s: %v", id, err)
			continue
		}
		if !j.State.Terminal() {
			r.failf("acknowledged job %s is still %s at the end (%d attempts)", id, j.State, len(j.Attempts))
			continue
		}
		c.endedJob(j)
		jobCost += j.Cost
	}
	// At most one start of each attempt's step, counted at the provider;
	// no cluster left running that Berth has ended or never knew.
	st, err := r.st.Load(r.ctx)
	if err != nil {
		r.failf("load state at the end: %v", err)
		return
	}
	known := map[string]bool{}
	for _, cl := range st.Clusters {
		known[cl.ID] = true
	}
	for _, name := range r.poolNames() {
		snap := r.provs[name].Snapshot()
		for step, n := range snap.Started {
			if n > 1 {
				r.failf("step %s was started %d times at the provider", step, n)
			}
		}
		c.callBudget(name, snap)
		for _, cl := range snap.Clusters {
			if !cl.State.Terminal() && !cl.TerminateAsked && !known[cl.ClusterID] {
				r.failf("cluster %s (%s) of pool %s runs at the provider, but Berth has ended it or never knew it", cl.ID, cl.ClusterID, name)
			}
		}
	}
	// Costs add up: the jobs' shares never exceed the clusters' cost.
	all, err := r.st.ListClusters(r.ctx, store.ClusterFilter{})
	if err != nil {
		r.failf("list clusters: %v", err)
		return
	}
	var clusterCost float64
	for _, cl := range all {
		clusterCost += cl.CostAt(r.exec.Now())
	}
	if jobCost > clusterCost*(1+1e-9)+1e-9 || math.IsNaN(jobCost) {
		r.failf("jobs cost %.4f, more than their clusters' %.4f", jobCost, clusterCost)
	}
	r.logf("end: %d jobs, job cost %.2f of cluster cost %.2f", len(ids), jobCost, clusterCost)
}

func cloneJob(j berth.Job) berth.Job {
	j.Steps = slices.Clone(j.Steps)
	j.Attempts = slices.Clone(j.Attempts)
	for i := range j.Attempts {
		j.Attempts[i].Steps = slices.Clone(j.Attempts[i].Steps)
	}
	return j
}

// callBudget checks that the service stayed within a budget of provider
// API calls: a poll per cluster every poll interval (two calls), a few per
// step, a few per cluster. A call resent in a loop blows it.
func (c *checker) callBudget(pool string, snap sim.Snapshot) {
	r := c.r
	calls := 0
	for _, n := range snap.Calls {
		calls += n
	}
	var minutes float64
	for _, cl := range snap.Clusters {
		end := cl.EndedAt
		if end.IsZero() {
			end = snap.At
		}
		minutes += end.Sub(cl.CreatedAt).Minutes()
	}
	budget := int(6*minutes) + 15*snap.StepsStarted + 50*len(snap.Clusters) + 200
	if calls > budget {
		r.failf("pool %s made %d provider calls, over a budget of %d (%.0f cluster-minutes, %d steps, %d clusters)", pool, calls, budget, minutes, snap.StepsStarted, len(snap.Clusters))
	}
}
