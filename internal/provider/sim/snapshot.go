package sim

import (
	"maps"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider"
)

// Snapshot is what the provider knows at one moment, for a harness that
// checks invariants from the provider's side: no step name started twice,
// no cluster left running that Berth does not know, what it all cost.
type Snapshot struct {
	At time.Time
	// Clusters are every cluster the provider created, in creation order.
	Clusters []ClusterInfo
	// Started counts, per step name, the SubmitSteps that started a new
	// step (not those that returned an existing one). It is the caller's.
	Started map[string]int
	// Calls counts the API calls made (KillCluster aside), per provider
	// cluster id; creations and lookups by Berth's cluster id are keyed
	// "create:ID" and "find:ID". It is the caller's.
	Calls map[string]int
	// Live counts the clusters not ended at At.
	Live int
	// StepsStarted is the sum of Started.
	StepsStarted int
	// Refused counts the CreateClusters the model refused (capacity
	// shortage, validation); API faults are not counted.
	Refused int
	// Cost is the sum of the clusters' costs.
	Cost float64
}

// ClusterInfo is one cluster in a Snapshot.
type ClusterInfo struct {
	// ClusterID is Berth's id for it, ID the provider's.
	ClusterID string
	ID        string
	Pool      string
	Fallback  bool
	Slots     int
	State     berth.ClusterState
	Class     provider.Class
	Reason    string
	// TerminateAsked is set once TerminateCluster was called for it.
	TerminateAsked bool
	CreatedAt      time.Time
	// EndedAt is when it was terminated or lost; zero while it lives.
	EndedAt time.Time
	// Running is how many of its steps run at At.
	Running int
	Cost    float64
}

// Snapshot returns what the provider knows now. It costs in proportion to
// the clusters created, the step names started and the steps running, not
// to the steps that have ended.
func (p *Provider) Snapshot() Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.snapshot()
	s.Started = maps.Clone(p.started)
	s.Calls = maps.Clone(p.calls)
	return s
}

// Clusters is Snapshot without the step counts, for checks that run after
// every event of a simulation and need only the clusters.
func (p *Provider) Clusters() Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.snapshot()
}

func (p *Provider) snapshot() Snapshot {
	now := p.clock.Now()
	s := Snapshot{
		At:           now,
		Clusters:     make([]ClusterInfo, len(p.clusters)),
		StepsStarted: p.stepsStarted,
		Refused:      p.refused,
	}
	for i, c := range p.clusters {
		// The truth, not what DescribeCluster says: a loss counts at once,
		// whatever the model's LossReportLag.
		d := p.describe(c.id)
		d.State = c.state(now)
		if d.State == berth.ClusterLost {
			d.Reason, d.Class = c.lossReason, c.lossClass
		}
		info := ClusterInfo{
			ClusterID:      c.berthID,
			ID:             c.id,
			Pool:           c.pool,
			Fallback:       c.fallback,
			Slots:          c.slots,
			State:          d.State,
			Class:          d.Class,
			Reason:         d.Reason,
			TerminateAsked: c.termAsked,
			CreatedAt:      c.created,
			Running:        c.running(now),
			Cost:           c.cost(now, p.price),
		}
		if d.State.Terminal() {
			info.EndedAt, _ = c.endAt()
		} else {
			s.Live++
		}
		s.Cost += info.Cost
		s.Clusters[i] = info
	}
	return s
}

// running counts the cluster's running steps, forgetting those that have
// ended.
func (c *cluster) running(now time.Time) int {
	kept := c.active[:0]
	for _, s := range c.active {
		if !s.ended(c, now) {
			kept = append(kept, s)
		}
	}
	clear(c.active[len(kept):])
	c.active = kept
	return len(kept)
}

// Cost is what every cluster has cost by now: per second, at least a
// minute each, from creation to its end (or to now while it lives), at
// Options.PricePerHour.
func (p *Provider) Cost(now time.Time) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var total float64
	for _, c := range p.clusters {
		total += c.cost(now, p.price)
	}
	return total
}

// ClusterCost is what the cluster with the provider's id has cost by now,
// and false for an id the provider never issued.
func (p *Provider) ClusterCost(id string, now time.Time) (float64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.byID[id]
	if c == nil {
		return 0, false
	}
	return c.cost(now, p.price), true
}
