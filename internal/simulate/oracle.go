package simulate

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/berthhq/berth/internal/config"
	"github.com/berthhq/berth/internal/provider/sim"
	"github.com/berthhq/berth/internal/workload"
)

// runOracle is the clairvoyant yardstick: no losses and no waiting. Every
// job starts the moment its phase can (the first at the instance's
// arrival, the next when the last job of the one before has ended), on a
// cluster that was booted for it in time: a cluster may be requested
// before the run starts, so its Requested can be negative.
//
// Its clusters are levels of the pools' need. A job takes the lowest
// level with a free slot when it starts and stays on it; level k runs
// while it has a job. A level's busy spans that lie at most boot plus
// terminate time apart are one cluster (keeping it through the gap costs
// no more than ending it and booting another), booted just before its
// first job and terminated after its last. So the oracle has the
// shortest latency possible, not the lowest cost: it runs everything at
// once, and each extra cluster pays a boot, where a static DAG queues
// jobs on fewer clusters. It ignores max_clusters, as the Airflow
// baselines do.
func runOracle(w *workload.Workload) *Trace {
	p := newPlan(w, PolicyOracle)
	byPool := map[string][]int{}
	for i, in := range p.ins {
		start := in.Arrival
		for k, ph := range in.Phases {
			p.submit(i, k, start)
			end := start
			for _, x := range p.jobs(i, k) {
				j := &p.t.Jobs[x]
				j.Attempts = []Attempt{{Start: start, End: start + p.dur[x]}}
				j.Succeeded = true
				end = max(end, start+p.dur[x])
				byPool[ph.Pool] = append(byPool[ph.Pool], x)
			}
			start = end
		}
		p.t.Instances[i].End = start
	}
	var clusters []oracleCluster
	for n, pool := range w.Pools {
		clusters = append(clusters, p.levels(pool, n, byPool[pool.Name])...)
	}
	slices.SortStableFunc(clusters, func(a, b oracleCluster) int {
		return cmp.Or(cmp.Compare(a.Requested, b.Requested), cmp.Compare(a.pool, b.pool), cmp.Compare(a.level, b.level))
	})
	made := map[string]int{}
	for _, c := range clusters {
		c.ID = fmt.Sprintf("%s-%d", c.Pool, made[c.Pool])
		made[c.Pool]++
		for _, x := range c.jobs {
			p.t.Jobs[x].Attempts[0].Cluster = c.ID
		}
		p.t.Clusters = append(p.t.Clusters, c.Cluster)
	}
	return p.t
}

// oracleCluster is a cluster of the oracle with the jobs it runs; pool
// is the pool's place in the workload, level the cluster's.
type oracleCluster struct {
	Cluster
	pool, level int
	jobs        []int
}

// levels are the oracle's clusters for the pool's jobs, whose attempts
// are set already.
func (p *plan) levels(pool config.Pool, poolN int, jobs []int) []oracleCluster {
	type edge struct {
		at    time.Duration
		start bool
		job   int
	}
	var edges []edge
	for _, x := range jobs {
		a := p.t.Jobs[x].Attempts[0]
		edges = append(edges, edge{a.Start, true, x}, edge{a.End, false, x})
	}
	// A job ending frees its slot for one starting at the same instant.
	slices.SortFunc(edges, func(a, b edge) int {
		if a.at != b.at {
			return cmp.Compare(a.at, b.at)
		}
		if a.start != b.start {
			if a.start {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.job, b.job)
	})
	type span struct{ from, to time.Duration }
	type level struct {
		running int
		since   time.Duration
		busy    []span
	}
	slots := max(pool.Slots, 1)
	var lv []*level
	on := map[int]int{} // job to level
	for _, e := range edges {
		if !e.start {
			l := lv[on[e.job]]
			if l.running--; l.running == 0 {
				l.busy = append(l.busy, span{l.since, e.at})
			}
			continue
		}
		n := slices.IndexFunc(lv, func(l *level) bool { return l.running < slots })
		if n < 0 {
			n = len(lv)
			lv = append(lv, &level{})
		}
		if lv[n].running == 0 {
			lv[n].since = e.at
		}
		lv[n].running++
		on[e.job] = n
	}

	spec := simSpec(pool)
	boot, term := spec.BootTime.Std(), spec.TerminateTime.Std()
	var out []oracleCluster
	first := make([]int, len(lv), len(lv)+1) // each level's first cluster in out
	for n, l := range lv {
		first[n] = len(out)
		for _, s := range l.busy {
			if k := len(out) - 1; k >= first[n] && s.from-(out[k].Ended-term) <= boot+term {
				out[k].Ended = s.to + term
				continue
			}
			out = append(out, oracleCluster{
				Cluster: Cluster{Pool: pool.Name, Requested: s.from - boot, Ready: s.from, Ended: s.to + term, Slots: slots},
				pool:    poolN,
				level:   n,
			})
		}
	}
	first = append(first, len(out))
	for _, x := range jobs {
		mine := out[first[on[x]]:first[on[x]+1]]
		start := p.t.Jobs[x].Attempts[0].Start
		k := sort.Search(len(mine), func(k int) bool { return mine[k].Ended > start })
		mine[k].jobs = append(mine[k].jobs, x)
	}
	for k := range out {
		out[k].Cost = sim.Bill(out[k].Ended-out[k].Requested, pool.PricePerHour)
	}
	return out
}
