package lifecycle

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider"
	"github.com/berthhq/berth/internal/scheduler"
)

func (s *State) startCluster(st scheduler.Start, now time.Time) {
	p := s.pools[st.Pool]
	c := &Cluster{Pool: p, C: berth.Cluster{
		ID:           s.cfg.NewID("cl", now),
		Pool:         p.Pool.Name,
		State:        berth.ClusterStarting,
		Fallback:     st.Fallback,
		Slots:        p.Pool.Slots,
		PricePerHour: p.Pool.PricePerHour,
		CreatedAt:    now,
	}}
	s.clusters[c.C.ID] = c
	s.clusterList = nil
	s.fx.DirtyClusters[c.C.ID] = true
	s.started = append(s.started, c.C.ID)
	spec := "primary"
	if st.Fallback {
		spec = "fallback"
	}
	s.event("", c.C.ID, "starting", fmt.Sprintf("starting a cluster of pool %s (%s spec): %s", p.Pool.Name, spec, st.Reason))
}

// settleIdle keeps each cluster's IdleSince true to its load.
func (s *State) settleIdle(now time.Time) {
	for _, c := range s.clusters {
		if c.C.State != berth.ClusterReady && c.C.State != berth.ClusterDraining {
			continue
		}
		busy := s.runningOn(c.C.ID) > 0
		if busy && !c.C.IdleSince.IsZero() {
			c.C.IdleSince = time.Time{}
			s.fx.DirtyClusters[c.C.ID] = true
		} else if !busy && c.C.IdleSince.IsZero() {
			c.C.IdleSince = now
			s.fx.DirtyClusters[c.C.ID] = true
		}
	}
}

// setClusterState moves a cluster, recording why.
func (s *State) setClusterState(c *Cluster, to berth.ClusterState, reason string) {
	if !s.moveCluster(c, to) {
		return
	}
	c.C.Reason = reason
	s.event("", c.C.ID, string(to), reason)
	if to == berth.ClusterDraining {
		// A draining cluster whose jobs ended is terminated by the next
		// plan.
		s.fx.Wake = true
	}
}

// loseCluster records a cluster as lost and requeues the jobs it ran. The
// loss's class decides what else follows: a capacity loss counts towards
// the pool's fallback, a permanent one (a bootstrap that always fails)
// blocks the pool, and a cluster lost before it was ever ready holds the
// pool's next start back as a failed creation does.
func (s *State) loseCluster(c *Cluster, reason string, class provider.Class, now time.Time) {
	if c.C.State.Terminal() || !s.moveCluster(c, berth.ClusterLost) {
		return
	}
	c.C.Reason, c.C.Capacity, c.C.EndedAt = reason, class == provider.ClassCapacity, now
	s.fx.EndedClusters = append(s.fx.EndedClusters, c)
	s.event("", c.C.ID, "lost", reason)
	s.fx.ClustersEnded = append(s.fx.ClustersEnded, c.C)
	switch class {
	case provider.ClassCapacity:
		s.capacityFailure(c, now)
	case provider.ClassPermanent:
		s.block(c, reason, now)
	}
	if c.C.ReadyAt.IsZero() {
		s.holdStarts(c.Pool, now)
	}
	s.requeueFrom(c, now)
}

// capacityFailure counts a capacity failure of one of the pool's clusters
// towards its switch to the fallback spec.
func (s *State) capacityFailure(c *Cluster, now time.Time) {
	p := c.Pool
	if p.State.RecordCapacityFailure(p.Pool.Fallback, now) {
		s.event("", c.C.ID, "fallback", fmt.Sprintf("pool %s uses its fallback spec until %s after repeated capacity failures", p.Pool.Name, p.State.FallbackUntil.Format(time.RFC3339)))
		s.log(slog.LevelWarn, "pool switched to its fallback spec", "pool", p.Pool.Name, "until", p.State.FallbackUntil)
	}
	s.fx.DirtyPools[p.Pool.Name] = true
}

// block stops a pool from starting clusters after a permanent failure of
// one of them: its spec cannot work, and every new cluster would only be
// billed. A configuration change or an unblock lifts it.
func (s *State) block(c *Cluster, why string, now time.Time) {
	p := c.Pool
	if p.State.Blocked() {
		return
	}
	if c.C.CreatedAt.Before(p.State.UnblockedAt) {
		// It was made before its pool was last unblocked: its failure
		// says nothing of the spec as it is now.
		s.event("", c.C.ID, "permanent_failure", fmt.Sprintf("%s; the cluster was started before pool %s was unblocked, so the pool stays unblocked", why, p.Pool.Name))
		return
	}
	p.State.BlockedAt, p.State.BlockedReason, p.State.BlockedSpec = now, why, p.Spec
	s.fx.DirtyPools[p.Pool.Name] = true
	s.event("", c.C.ID, "pool_blocked", fmt.Sprintf("pool %s is blocked and starts no cluster: %s; change its configuration or unblock it", p.Pool.Name, why))
	s.log(slog.LevelError, "pool blocked by a permanent provider failure", "pool", p.Pool.Name, "cluster_id", c.C.ID, "reason", why)
	s.fx.Blocked = append(s.fx.Blocked, p.Pool.Name)
}

// holdStarts holds the pool's next cluster back after a failed creation,
// doubling from startBackoffMin to startBackoffMax with each failure in a
// row: a creation that keeps failing must not start a cluster every few
// seconds forever.
func (s *State) holdStarts(p *Pool, now time.Time) {
	p.CreateFailures++
	wait := min(startBackoffMin<<min(p.CreateFailures-1, 16), startBackoffMax)
	p.StartAfter = now.Add(wait)
	s.log(slog.LevelWarn, "pool holds back new clusters after a failed creation", "pool", p.Pool.Name, "failures", p.CreateFailures, "until", p.StartAfter)
}

// abandon gives up on a cluster that never became useful (boot timeout,
// failed creation): it is terminated at the provider and then ends lost.
// The termination is stored state, so it is carried on after errors and
// restarts, and a cluster that comes up late is not left running unbilled
// and unused.
func (s *State) abandon(c *Cluster, reason string, now time.Time) {
	c.C.EndsLost = true
	s.fx.DirtyClusters[c.C.ID] = true
	if c.C.State != berth.ClusterTerminating {
		s.setClusterState(c, berth.ClusterTerminating, reason)
	}
	s.requeueFrom(c, now)
}

// requeueFrom ends the attempts still running on a cluster that is gone.
func (s *State) requeueFrom(c *Cluster, now time.Time) {
	for _, j := range s.jobsOn(c.C.ID) {
		s.infraFailure(j, berth.ReasonClusterLost, fmt.Sprintf("cluster %s lost", c.C.ID), now)
	}
}

// endCluster records that a cluster we were terminating is gone.
func (s *State) endCluster(c *Cluster, now time.Time) {
	to := berth.ClusterTerminated
	if c.C.EndsLost {
		to = berth.ClusterLost
	}
	if !s.moveCluster(c, to) {
		return
	}
	c.C.EndedAt = now
	s.fx.EndedClusters = append(s.fx.EndedClusters, c)
	s.event("", c.C.ID, string(c.C.State), c.C.Reason)
	s.fx.ClustersEnded = append(s.fx.ClustersEnded, c.C)
	s.requeueFrom(c, now)
}

// Drain stops a live cluster from taking new jobs, by request; it is
// terminated when its running jobs end.
func (s *State) Drain(id string) error {
	c, err := s.live(id)
	if err != nil {
		return err
	}
	switch c.C.State {
	case berth.ClusterStarting, berth.ClusterReady:
		s.setClusterState(c, berth.ClusterDraining, "drained by request")
	}
	s.byHand(c.Pool)
	return nil
}

// byHand notes that a person ended one of the pool's clusters: they mean
// it, so the pool starts none for work it only expects (anticipation) for
// a while. Queued work still gets its clusters.
func (s *State) byHand(p *Pool) {
	if p != nil {
		p.GuessAfter = s.now.Add(byHandQuiet)
		s.expectVer++
	}
}

// byHandQuiet is how long a pool whose cluster a person drained or
// terminated starts none for expected work.
const byHandQuiet = 10 * time.Minute

// Terminate ends a live cluster now, by request: its jobs are requeued as
// if it had been lost.
func (s *State) Terminate(id string) error {
	c, err := s.live(id)
	if err != nil {
		return err
	}
	if c.C.State != berth.ClusterTerminating {
		s.setClusterState(c, berth.ClusterTerminating, "terminated by request")
	}
	s.byHand(c.Pool)
	return nil
}

// Poke asks for a live cluster's watcher to look now.
func (s *State) Poke(id string) error {
	if _, err := s.live(id); err != nil {
		return err
	}
	s.fx.Poke = append(s.fx.Poke, id)
	return nil
}

func (s *State) live(id string) (*Cluster, error) {
	c, ok := s.clusters[id]
	if !ok {
		return nil, berth.Errorf(berth.ErrConflict, "cluster %s has ended", id)
	}
	return c, nil
}
