package scheduler

import (
	"cmp"
	"fmt"
	"slices"
	"time"

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
		if c.live() {
			live++
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
	n = max(n, 0)
	// Work expected within a boot gets its clusters now, so that they
	// are ready when it comes; what the pool has free by then counts.
	ahead := 0
	if soon := p.soon(); soon > 0 && n == 0 && !p.pool.Blocked {
		spare := supply - p.demand + p.freeBy(p.now.Add(p.lead()))
		if soon > spare {
			ahead = min(ceilDiv(soon-spare, max(pool.Slots, 1)), pool.MaxClusters-live)
		}
		if ahead > 0 && p.now.Before(p.pool.StartAfter) {
			p.considerWake(p.pool.StartAfter)
			ahead = 0
		}
	}
	p.wakeForExpected()
	for i := range n + max(ahead, 0) {
		reason := "min_clusters"
		switch {
		case i >= n:
			reason = fmt.Sprintf("expected: %d jobs within %s", p.soon(), shortDuration(p.lead()))
		case i < backlog:
			reason = fmt.Sprintf("backlog: %d queued, %d slots starting", p.demand, supply)
		}
		p.plan.Start = append(p.plan.Start, Start{Pool: pool.Name, Fallback: p.pool.Fallback, Reason: reason})
	}
	p.started = n + max(ahead, 0)
}

// DefaultBootTime is assumed for a pool none of whose clusters has been
// seen booting.
const DefaultBootTime = 10 * time.Minute

// anticipationSlack is added to the boot time when looking ahead: the
// time to see a cluster ready and to hear of the work.
const anticipationSlack = time.Minute

// lead is how far ahead the pool looks for work: a boot and the slack.
func (p *pass) lead() time.Duration {
	boot := p.pool.BootTime
	if boot <= 0 {
		boot = DefaultBootTime
	}
	return boot + anticipationSlack
}

// soon is how many jobs are expected within the lead.
func (p *pass) soon() int {
	n := 0
	horizon := p.now.Add(p.lead())
	for _, a := range p.pool.Expected {
		if !a.At.After(horizon) {
			n += max(a.Jobs, 0)
		}
	}
	return n
}

// freeBy counts the slots of ready clusters free now or expected to be
// free by t.
func (p *pass) freeBy(t time.Time) int {
	n := 0
	for _, c := range p.clusters {
		if c.state == berth.ClusterReady {
			n += max(c.Slots-c.running, 0)
		}
	}
	return n + p.endingBy(t)
}

// endingBy counts the running jobs expected to end by t.
func (p *pass) endingBy(t time.Time) int {
	n := 0
	for _, e := range p.pool.Ends {
		if !e.After(t) {
			n++
		}
	}
	return n
}

// wakeForExpected wakes the loop when the next expected work comes
// within the lead, to start its cluster in time, and, while work is
// expected, when the next running job's end does: its slot then counts.
func (p *pass) wakeForExpected() {
	horizon := p.now.Add(p.lead())
	for _, a := range p.pool.Expected {
		if a.At.After(horizon) {
			p.considerWake(a.At.Add(-p.lead()))
		}
	}
	if p.soon() == 0 {
		return
	}
	for _, e := range p.pool.Ends {
		if e.After(horizon) {
			p.considerWake(e.Add(-p.lead()))
		}
	}
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
	timeout := p.idleTimeout()
	if timeout < 0 || p.demand > 0 {
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
			if c.running == 0 && !c.IdleSince.IsZero() && !p.now.Before(c.IdleSince.Add(timeout)) && !p.pinned[c.ID] {
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
	// Idle clusters that expected work will need are kept, the most
	// recently idle first, but not beyond a lead past their timeout: a
	// wrong guess costs at most that.
	if keep := p.keepForExpected(); keep > 0 {
		kept := 0
		for i := len(idle) - 1; i >= 0 && kept < keep; i-- {
			if p.now.Before(idle[i].IdleSince.Add(timeout + p.lead())) {
				p.considerWake(idle[i].IdleSince.Add(timeout + p.lead()))
				idle = append(idle[:i], idle[i+1:]...)
				kept++
			}
		}
	}
	for _, c := range idle {
		if up <= pool.MinClusters {
			return
		}
		up--
		c.state = berth.ClusterDraining
		reason := "idle for " + shortDuration(timeout)
		if pool.IdleAuto {
			reason = "idle, no work expected within " + shortDuration(p.lead())
			if timeout > 0 {
				reason = "idle for a boot time (" + shortDuration(timeout) + ")"
			}
		}
		p.plan.Drain = append(p.plan.Drain, Drain{ClusterID: c.ID, Reason: reason})
	}
}

// idleTimeout is how long a cluster of the pool may be idle; -1 when
// idleness never drains it. With idle_timeout: auto it is 0 when no work
// is expected within a boot and the pool's work foretells what follows
// it, and a boot time otherwise: keeping a cluster idle for as long as a
// new one takes to boot costs at most twice the best choice made knowing
// the future.
func (p *pass) idleTimeout() time.Duration {
	pool := p.pool.Pool
	switch {
	case pool.IdleAuto && p.pool.Foreseen && p.soon() == 0:
		return 0
	case pool.IdleAuto:
		return p.lead() - anticipationSlack
	case pool.IdleTimeout <= 0:
		return -1
	}
	return pool.IdleTimeout
}

// keepForExpected is how many idle clusters the work expected within the
// lead needs beyond the slots busy clusters will have free.
func (p *pass) keepForExpected() int {
	soon := p.soon()
	if soon == 0 {
		return 0
	}
	spare := 0
	for _, c := range p.clusters {
		switch {
		case c.state == berth.ClusterStarting:
			spare += c.Slots
		case c.state == berth.ClusterReady && c.running > 0:
			spare += c.Slots - c.running
		}
	}
	spare += p.endingBy(p.now.Add(p.lead()))
	return ceilDiv(max(soon-spare, 0), max(p.pool.Pool.Slots, 1))
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// live reports whether the cluster counts against max_clusters, as the
// snapshot has it: starting, ready and draining clusters, and terminating
// ones the provider has not let go of yet.
func (c *cluster) live() bool {
	switch c.State {
	case berth.ClusterStarting, berth.ClusterReady, berth.ClusterDraining:
		return true
	case berth.ClusterTerminating:
		return !c.Released
	}
	return false
}
