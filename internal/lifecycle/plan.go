package lifecycle

import (
	"sort"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/scheduler"
)

// Up to wholeQueue eligible jobs of a pool go to the scheduler whole.
// Beyond that it sees the head of the queue, in placement order: enough
// jobs to fill the pool's free slots, and headMargin more; the rest is only
// counted, as Backlog. A pass then costs what it can place, not what is
// queued.
const (
	wholeQueue = 2048
	headMargin = 64
)

// snapshot is the scheduler's view of the state.
func (s *State) snapshot(now time.Time) scheduler.Snapshot {
	snap := scheduler.Snapshot{Now: now, Affinity: s.affinity}
	clusters := s.Clusters()
	snap.Clusters = make([]scheduler.ClusterView, 0, len(clusters))
	free := make(map[string]int, len(s.poolNames)) // as freeSlots, in the same walk
	for _, c := range clusters {
		if c.C.State.Terminal() {
			continue
		}
		running := s.runningOn(c.C.ID)
		free[c.C.Pool] += c.C.FreeSlots(running)
		snap.Clusters = append(snap.Clusters, scheduler.ClusterView{
			ID: c.C.ID, Pool: c.C.Pool, State: c.C.State, Slots: c.C.Slots,
			Running: running, CreatedAt: c.C.CreatedAt, IdleSince: c.C.IdleSince,
			Spared: s.spared(c, now), Released: c.Released,
		})
	}
	expected, ends := s.expected(now)
	for _, name := range s.poolNames {
		p := s.pools[name]
		guess := expected[name]
		if now.Before(p.GuessAfter) {
			guess = nil
		}
		pv := scheduler.PoolView{
			Pool: p.Pool, Fallback: p.State.FallbackActive(now), Blocked: p.State.Blocked(), StartAfter: p.StartAfter,
			Expected: guess, BootTime: s.learned().Boot(name), Ends: ends[name], Foreseen: s.foresee.foreseen[name],
		}
		if q := s.queues[name]; q != nil {
			pv.Backlog = s.head(name, q, free[name], &snap)
		}
		snap.Pools = append(snap.Pools, pv)
	}
	return snap
}

// head adds a pool's eligible jobs to the snapshot, or the head of them
// when there are many, and returns how many it left out that count as
// demand (those not affinity_required). Deferred affinity_required jobs go
// too: the clusters they will need are kept from scale-down.
func (s *State) head(pool string, q *queue, free int, snap *scheduler.Snapshot) (backlog int) {
	view := func(j *berth.Job) scheduler.JobView {
		return scheduler.JobView{
			ID: j.ID, Pool: j.Pool, Priority: j.Priority, CreatedAt: j.CreatedAt,
			NotBefore: j.NotBefore, Affinity: j.Affinity, AffinityRequired: j.AffinityRequired,
		}
	}
	whole := q.ready.Len() <= wholeQueue
	taken, flexible, required := 0, 0, 0
	q.ready.Ascend(func(e entry) bool {
		if !whole && (flexible >= free+headMargin || taken >= free+headMargin+wholeQueue) {
			return false
		}
		j := e.job
		if j == nil {
			// A dormant job has its place and nothing more; it is read
			// whole before it can be placed (dormant.go).
			snap.Queued = append(snap.Queued, scheduler.JobView{ID: e.id, Pool: pool, Priority: e.priority, CreatedAt: e.createdAt()})
			taken++
			flexible++
			return true
		}
		snap.Queued = append(snap.Queued, view(j))
		taken++
		if j.AffinityRequired {
			required++
		} else {
			flexible++
		}
		return true
	})
	n := 0
	q.deferred.Ascend(func(j *berth.Job) bool {
		if j.AffinityRequired && j.Affinity != "" {
			snap.Queued = append(snap.Queued, view(j))
		}
		n++
		return n < wholeQueue
	})
	return (q.ready.Len() - taken) - (q.required - required)
}

// spared reports whether a cluster restored from the store is not to be
// judged by its boot_timeout yet: it may have come up while the service was
// down, so its first report is waited for, but not forever if the provider
// never answers about it.
func (s *State) spared(c *Cluster, now time.Time) bool {
	return c.C.State == berth.ClusterStarting && c.C.ProviderID != "" && !c.Observed && now.Sub(c.RestoredAt) < unobservedGrace
}

// freeSlots counts each pool's free slots on ready clusters, from each
// cluster's count of running jobs.
func (s *State) freeSlots() map[string]int {
	free := make(map[string]int, len(s.poolNames))
	for _, c := range s.clusters {
		free[c.C.Pool] += c.C.FreeSlots(s.runningOn(c.C.ID))
	}
	return free
}

// runningOn counts a cluster's running jobs: they are indexed by it, so
// a pass asks each cluster rather than build a count of all.
func (s *State) runningOn(cluster string) int { return len(s.running[cluster]) }

// apply carries a plan out in memory; the actions it implies are queued
// by queueActions after it.
func (s *State) apply(plan scheduler.Plan, now time.Time) {
	for _, f := range plan.Fail {
		if j, ok := s.jobs[f.JobID]; ok {
			s.endJob(j, berth.JobFailed, f.Reason, now)
			s.event(j.ID, "", "failed", f.Message)
		}
	}
	for _, lo := range plan.Lose {
		if c, ok := s.clusters[lo.ClusterID]; ok {
			s.abandon(c, lo.Reason, now)
		}
	}
	for _, d := range plan.Drain {
		if c, ok := s.clusters[d.ClusterID]; ok && c.C.State == berth.ClusterReady {
			s.setClusterState(c, berth.ClusterDraining, d.Reason)
		}
	}
	for _, id := range plan.Terminate {
		if c, ok := s.clusters[id]; ok && c.C.State == berth.ClusterDraining {
			s.setClusterState(c, berth.ClusterTerminating, "drained")
		}
	}
	for _, st := range plan.Start {
		s.startCluster(st, now)
	}
	for _, p := range plan.Place {
		j, jok := s.jobs[p.JobID]
		c, cok := s.clusters[p.ClusterID]
		if !jok || !cok {
			continue
		}
		s.place(j, c, now)
	}
}

// Decide finishes a pass at now, once the reports, results and commands
// that came in are applied: it ends the attempts that were cancelled or
// timed out, asks the scheduler for a plan and carries it out, keeps idle
// clocks true, derives the provider calls the state asks for, and says
// when the next pass is due.
func (s *State) Decide(now time.Time) {
	s.now = now
	s.promote(now)
	s.chargeHeld(now)
	s.stopAttempts(now)
	plan := scheduler.Schedule(s.snapshot(now))
	s.apply(plan, now)
	s.noteWaits(plan)
	s.settleIdle(now)
	s.deriveCalls(now)
	// Creations first, terminations last.
	sort.SliceStable(s.fx.Calls, func(a, b int) bool { return s.fx.Calls[a].Kind < s.fx.Calls[b].Kind })
	s.fx.WakeAt = plan.WakeAt
	if w := s.nextDue(now); !w.IsZero() && (s.fx.WakeAt.IsZero() || w.Before(s.fx.WakeAt)) {
		s.fx.WakeAt = w
	}
}
