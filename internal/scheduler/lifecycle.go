package scheduler

import (
	"github.com/berthhq/berth/internal/berth"
)

// loseBootTimeouts gives up on starting clusters that took longer than the
// pool's boot_timeout. They run first so that a lost cluster neither counts
// as supply nor keeps an affinity_required job waiting.
func (p *pass) loseBootTimeouts() {
	timeout := p.pool.Pool.BootTimeout
	if timeout <= 0 {
		return
	}
	for _, c := range p.clusters {
		if c.state != berth.ClusterStarting || c.Spared || p.now.Before(c.CreatedAt.Add(timeout)) {
			continue
		}
		c.state = berth.ClusterLost
		p.plan.Lose = append(p.plan.Lose, Lose{ClusterID: c.ID, Reason: "boot_timeout: not ready after " + shortDuration(timeout)})
	}
}

// recycle drains ready clusters past the pool's max_lifetime. It runs
// before placement so a cluster on its way out takes no new job; its
// replacement, if the backlog or min_clusters wants one, comes from
// scaleUp.
func (p *pass) recycle() {
	lifetime := p.pool.Pool.MaxLifetime
	if lifetime <= 0 {
		return
	}
	for _, c := range p.clusters {
		if c.state != berth.ClusterReady || p.now.Before(c.CreatedAt.Add(lifetime)) {
			continue
		}
		c.state = berth.ClusterDraining
		p.plan.Drain = append(p.plan.Drain, Drain{ClusterID: c.ID, Reason: "max_lifetime"})
	}
}

// terminate ends the draining clusters that have no job left, including
// those drained earlier in this pass: draining is the only way to
// termination, so a job placed a moment ago is never terminated under.
func (p *pass) terminate() {
	for _, c := range p.clusters {
		if c.state == berth.ClusterDraining && c.running == 0 {
			p.plan.Terminate = append(p.plan.Terminate, c.ID)
		}
	}
}
