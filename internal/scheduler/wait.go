package scheduler

import (
	"cmp"
	"slices"

	"github.com/berthhq/berth/internal/berth"
)

// Wait says why the plan leaves an eligible queued job unplaced. Jobs
// deferred by a backoff get none: their not_before says why they wait.
type Wait struct {
	Pool string
	// JobID is "" for the pool's eligible jobs left out of the snapshot
	// (PoolView.Backlog): they all get the reason of the last of them.
	JobID  string
	Reason berth.WaitReason
	// ClusterID is the cluster the job waits for: the starting cluster
	// that will take it, or the affinity cluster it requires. It is ""
	// for a cluster this plan starts: then Start is that start's index in
	// Plan.Start.
	ClusterID string
	Start     int
}

// explain gives every eligible job the passes left unplaced its reason,
// once every pass has run, so that the clusters each started count. The
// starting clusters' slots go to the unplaced jobs in placement order, as
// they will when those clusters are ready: first the clusters already
// starting, oldest first, then the ones this plan starts. A job beyond
// them waits because the pool starts no more: it is blocked, or at
// max_clusters, or holding starts back after failed creations (then it
// waits for a slot to free).
//
// The counts follow scaleUp's: the slots of starting clusters are supply,
// whoever they will go to, and jobs waiting for their required cluster
// are not demand.
func explain(passes []*pass, plan *Plan) {
	n := 0
	for _, p := range passes {
		for i := range p.jobs {
			if o := p.jobs[i].outcome; o == unplaced || o == waiting {
				n++
			}
		}
		if p.pool.Backlog > 0 {
			n++
		}
	}
	// A long queue leaves many jobs unplaced: one allocation for them all.
	plan.Waits = make([]Wait, 0, n)
	for _, p := range passes {
		p.explain()
	}
}

func (p *pass) explain() {
	var starting []*cluster
	live := 0
	for _, c := range p.clusters {
		if c.live() {
			live++
		}
		if c.state == berth.ClusterStarting {
			starting = append(starting, c)
		}
	}
	// Clusters boot in the order they were started.
	slices.SortFunc(starting, func(a, b *cluster) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	// ends[i] is how many of the demand the first i+1 starting clusters
	// take.
	ends := make([]int, len(starting))
	supply := 0
	for i, c := range starting {
		supply += max(c.Slots, 0)
		ends[i] = supply
	}
	pool := p.pool.Pool
	slots := max(pool.Slots, 1)
	// The plan's starts of this pool, in the order their clusters will be
	// made.
	var starts []int
	for i, st := range p.plan.Start {
		if st.Pool == pool.Name {
			starts = append(starts, i)
		}
	}
	atMax := live+len(starts) >= pool.MaxClusters

	// reason is the wait of the k-th job (from 0) of the demand, in
	// placement order.
	reason := func(k int) Wait {
		w := Wait{Pool: pool.Name, Start: -1}
		switch {
		case k < supply:
			i, _ := slices.BinarySearch(ends, k+1)
			w.Reason, w.ClusterID = berth.WaitClusterStarting, starting[i].ID
		case p.pool.Blocked:
			w.Reason = berth.WaitPoolBlocked
		case k-supply < len(starts)*slots:
			w.Reason, w.Start = berth.WaitClusterStarting, starts[(k-supply)/slots]
		case atMax:
			w.Reason = berth.WaitPoolAtMax
		default:
			w.Reason = berth.WaitNoFreeSlot
		}
		return w
	}

	k := 0
	for i := range p.jobs {
		j := &p.jobs[i]
		switch j.outcome {
		case unplaced:
			w := reason(k)
			k++
			w.JobID = j.ID
			p.plan.Waits = append(p.plan.Waits, w)
		case waiting:
			w := Wait{Pool: pool.Name, JobID: j.ID, Reason: berth.WaitAffinityBusy, Start: -1}
			if home := p.home(j); home != nil {
				w.ClusterID = home.ID
				if home.state == berth.ClusterStarting {
					w.Reason = berth.WaitClusterStarting
				}
			}
			p.plan.Waits = append(p.plan.Waits, w)
		}
	}
	if backlog := max(p.pool.Backlog, 0); backlog > 0 {
		// The backlog is given the reason of its last job: the one most
		// of it shares when the pool is at a limit. It is too long to say
		// which cluster each of its jobs waits for.
		w := reason(k + backlog - 1)
		w.ClusterID, w.Start = "", -1
		p.plan.Waits = append(p.plan.Waits, w)
	}
}

// home is the cluster a waiting job requires; place found it in this pool.
func (p *pass) home(j *job) *cluster {
	id, ok := p.affinity[j.Affinity]
	if !ok {
		id = p.established[j.Affinity]
	}
	return p.byID[id]
}
