package scheduler

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/berthhq/berth/internal/berth"
)

// Schedule decides what the loop should do next for the snapshot s. It is a
// pure function: the same snapshot, in whatever order its slices come,
// gives the same plan. See the package documentation for the pipeline and
// the rules each step follows.
func Schedule(s Snapshot) Plan {
	var plan Plan
	seen := make(map[string]struct{}, len(s.Queued))
	passes := newPasses(s, &plan)
	for _, p := range passes {
		p.admit(seen)
		p.loseBootTimeouts()
		p.recycle()
		p.failLostAffinity()
		p.place()
		p.scaleUp()
		p.scaleDown()
		p.terminate()
		p.wake()
		if !p.wakeAt.IsZero() && (plan.WakeAt.IsZero() || p.wakeAt.Before(plan.WakeAt)) {
			plan.WakeAt = p.wakeAt
		}
	}
	explain(passes, &plan)
	return plan
}

// cluster is the working copy of one ClusterView: state and running change
// as the steps of a pass decide things, so later steps see earlier
// decisions.
type cluster struct {
	ClusterView
	state   berth.ClusterState
	running int
	// heapIndex is the cluster's place in its pass's roomHeap, -1 when it
	// is not there.
	heapIndex int
}

func (c *cluster) hasRoom() bool { return c.running < c.Slots }

// outcome is what a pass decided for an eligible job.
type outcome uint8

const (
	// unplaced: no cluster could take the job now; it is demand.
	unplaced outcome = iota
	placed
	failed
	// waiting: the job's required affinity cluster is full or starting;
	// it is not demand, since a new cluster cannot help it.
	waiting
)

type job struct {
	*JobView
	outcome outcome
}

// pass is the working view of one pool: its clusters and queued jobs, and
// what the steps have decided so far.
type pass struct {
	now  time.Time
	pool PoolView
	plan *Plan

	// clusters are the pool's clusters, ordered by ID.
	clusters []*cluster
	// byID indexes every cluster of the snapshot, whatever its pool, so an
	// affinity pointing elsewhere can be told apart from one pointing
	// nowhere. A pass changes only the clusters of its own pool.
	byID     map[string]*cluster
	affinity map[string]string
	// established holds the affinity keys that had no entry in the
	// snapshot and were given one by a placement in this pass.
	established map[string]string

	// jobs are the pool's eligible queued jobs in placement order, once
	// admit has run; before that, every queued job of the pool.
	jobs []job
	// pinned holds the clusters that a deferred (not_before in the future)
	// affinity_required job will need; they are kept from idle scale-down.
	pinned map[string]bool

	room    roomHeap
	demand  int
	started int
	wakeAt  time.Time
}

// newPasses indexes the snapshot: one pass per known pool in name order,
// each with its clusters in ID order and its queued jobs. Clusters and jobs
// of unknown pools get no pass and so are ignored, except that clusters stay
// in the shared index for affinity lookups.
func newPasses(s Snapshot, plan *Plan) []*pass {
	byPool := make(map[string]*pass, len(s.Pools))
	passes := make([]*pass, 0, len(s.Pools))
	for _, pv := range s.Pools {
		// Configuration validation keeps names unique; should two pools
		// share one anyway, the first wins.
		if _, dup := byPool[pv.Pool.Name]; dup {
			continue
		}
		p := &pass{now: s.Now, pool: pv, plan: plan, affinity: s.Affinity}
		byPool[pv.Pool.Name] = p
		passes = append(passes, p)
	}
	slices.SortFunc(passes, func(a, b *pass) int { return strings.Compare(a.pool.Pool.Name, b.pool.Pool.Name) })

	// One allocation for all the clusters. A snapshot whose clusters come
	// in ID order (the loop's do) costs the sort one pass: pdqsort finds
	// sorted input in one.
	cs := make([]cluster, len(s.Clusters))
	all := make([]*cluster, len(s.Clusters))
	for i, cv := range s.Clusters {
		cs[i] = cluster{ClusterView: cv, state: cv.State, running: cv.Running, heapIndex: -1}
		all[i] = &cs[i]
	}
	slices.SortFunc(all, func(a, b *cluster) int { return compareClusters(&a.ClusterView, &b.ClusterView) })
	byID := make(map[string]*cluster, len(all))
	for _, c := range all {
		if _, dup := byID[c.ID]; dup {
			continue
		}
		byID[c.ID] = c
		if p := byPool[c.Pool]; p != nil {
			p.clusters = append(p.clusters, c)
		}
	}

	for i := range s.Queued {
		j := &s.Queued[i]
		if p := byPool[j.Pool]; p != nil {
			p.jobs = append(p.jobs, job{JobView: j})
		}
	}
	for _, p := range passes {
		p.byID = byID
	}
	return passes
}

// admit puts the pool's jobs in placement order, drops any job ID already
// seen in this snapshot, and sets aside the jobs whose not_before is still
// ahead: they only pin their required cluster and set a wake-up time.
func (p *pass) admit(seen map[string]struct{}) {
	slices.SortFunc(p.jobs, func(a, b job) int { return compareJobs(a.JobView, b.JobView) })
	eligible := p.jobs[:0]
	for _, j := range p.jobs {
		if _, dup := seen[j.ID]; dup {
			continue
		}
		seen[j.ID] = struct{}{}
		if j.NotBefore.After(p.now) {
			p.considerWake(j.NotBefore)
			if j.AffinityRequired && j.Affinity != "" {
				if id, ok := p.affinity[j.Affinity]; ok {
					if p.pinned == nil {
						p.pinned = map[string]bool{}
					}
					p.pinned[id] = true
				}
			}
			continue
		}
		eligible = append(eligible, j)
	}
	p.jobs = eligible
}

// compareJobs is placement order: highest priority, then oldest, then ID.
// The remaining fields only order duplicate IDs, so that which duplicate
// wins does not depend on the order of the snapshot.
func compareJobs(a, b *JobView) int {
	if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
		return c
	}
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	if c := strings.Compare(a.ID, b.ID); c != 0 {
		return c
	}
	if c := a.NotBefore.Compare(b.NotBefore); c != 0 {
		return c
	}
	if c := strings.Compare(a.Affinity, b.Affinity); c != 0 {
		return c
	}
	if a.AffinityRequired != b.AffinityRequired {
		if a.AffinityRequired {
			return 1
		}
		return -1
	}
	return strings.Compare(a.Pool, b.Pool)
}

// compareClusters orders by ID; the other fields only order duplicate IDs.
func compareClusters(a, b *ClusterView) int {
	if c := strings.Compare(a.ID, b.ID); c != 0 {
		return c
	}
	if c := strings.Compare(a.Pool, b.Pool); c != 0 {
		return c
	}
	if c := strings.Compare(string(a.State), string(b.State)); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Slots, b.Slots); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Running, b.Running); c != 0 {
		return c
	}
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	if c := a.IdleSince.Compare(b.IdleSince); c != 0 {
		return c
	}
	if a.Spared != b.Spared {
		if a.Spared {
			return 1
		}
		return -1
	}
	if a.Released != b.Released {
		if a.Released {
			return 1
		}
		return -1
	}
	return 0
}

// wake collects the pool's deadlines still ahead: a later pass with nothing
// else changed decides differently only once one of them has passed.
// Deferred jobs' not_before were collected by admit. The clusters are taken
// as the snapshot has them, not as this pass left them: a cluster drained
// for idleness now would, a little later, be drained for max_lifetime
// instead, and that is a different plan too.
func (p *pass) wake() {
	pool := p.pool.Pool
	for _, c := range p.clusters {
		switch c.State {
		case berth.ClusterStarting:
			if pool.BootTimeout > 0 && !c.Spared {
				p.considerWake(c.CreatedAt.Add(pool.BootTimeout))
			}
		case berth.ClusterReady:
			if pool.MaxLifetime > 0 {
				p.considerWake(c.CreatedAt.Add(pool.MaxLifetime))
			}
			if t := p.idleTimeout(); t >= 0 && c.Running == 0 && !c.IdleSince.IsZero() {
				p.considerWake(c.IdleSince.Add(t))
			}
		}
	}
}

func (p *pass) considerWake(t time.Time) {
	if t.After(p.now) && (p.wakeAt.IsZero() || t.Before(p.wakeAt)) {
		p.wakeAt = t
	}
}

// shortDuration writes d the way people write timeouts: "20m", "1h30m",
// "30s", without the trailing zero units of time.Duration.String.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
