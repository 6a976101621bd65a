package scheduler

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/berthhq/berth/internal/berth"
)

// scaleUp starts clusters for the demand that the starting clusters will
// not absorb, and up to min_clusters, never past max_clusters, and none
// for a blocked pool or one backing off after failed creations.
//
// max_clusters holds at the provider, not only in Berth's state: every
// cluster counts against it until its provider has taken its termination.
// So starting, ready and draining clusters count, and so do those this
// same plan gives up on (boot timeout) or terminates, and terminating ones
// not yet Released: their replacements start once the provider let them
// go.
func (p *pass) scaleUp() {
	var up, live, supply int
	for _, c := range p.clusters {
		switch c.State {
		case berth.ClusterStarting, berth.ClusterReady, berth.ClusterDraining:
			live++
		case berth.ClusterTerminating:
			if !c.Released {
				live++
			}
		}
		switch c.state {
		case berth.ClusterStarting:
			up++
			supply += max(c.Slots, 0)
		case berth.ClusterReady:
			up++
		}
	}
	pool := p.pool.Pool
	p.demand += max(p.pool.Backlog, 0)
	backlog := 0
	if p.demand > supply {
		backlog = ceilDiv(p.demand-supply, max(pool.Slots, 1))
	}
	n := min(max(backlog, pool.MinClusters-up), pool.MaxClusters-live)
	switch {
	case p.pool.Blocked:
		n = 0
	case p.now.Before(p.pool.StartAfter):
		if n > 0 {
			p.considerWake(p.pool.StartAfter)
		}
		n = 0
	}
	for i := range n {
		reason := "min_clusters"
		if i < backlog {
			reason = fmt.Sprintf("backlog: %d queued, %d slots starting", p.demand, supply)
		}
		p.plan.Start = append(p.plan.Start, Start{Pool: pool.Name, Fallback: p.pool.Fallback, Reason: reason})
	}
	p.started = max(n, 0)
}

// scaleDown drains ready clusters idle for the pool's idle_timeout, the
// longest idle first, while starting and ready clusters (counting those
// started by this plan) stay at or above min_clusters.
//
// A cluster is kept while eligible work could use it, and while a deferred
// affinity_required job names it: draining it then would fail that job as
// soon as its retry backoff ends.
func (p *pass) scaleDown() {
	pool := p.pool.Pool
	if pool.IdleTimeout <= 0 || p.demand > 0 {
		return
	}
	up := p.started
	var idle []*cluster
	for _, c := range p.clusters {
		switch c.state {
		case berth.ClusterStarting:
			up++
		case berth.ClusterReady:
			up++
			if c.running == 0 && !c.IdleSince.IsZero() && !p.now.Before(c.IdleSince.Add(pool.IdleTimeout)) && !p.pinned[c.ID] {
				idle = append(idle, c)
			}
		}
	}
	slices.SortFunc(idle, func(a, b *cluster) int {
		if c := a.IdleSince.Compare(b.IdleSince); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	for _, c := range idle {
		if up <= pool.MinClusters {
			return
		}
		up--
		c.state = berth.ClusterDraining
		p.plan.Drain = append(p.plan.Drain, Drain{ClusterID: c.ID, Reason: "idle for " + shortDuration(pool.IdleTimeout)})
	}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
