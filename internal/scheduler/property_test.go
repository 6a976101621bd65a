package scheduler

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
)

// propertySeeds is how many random snapshots each property run checks. The
// seeds are fixed so a failure reproduces; the failing seed is in the
// message.
const propertySeeds = 2000

// randomSnapshot builds a snapshot with a few pools and clusters in every
// live state, queued jobs of mixed priorities, not_before, affinities and
// required affinities, an affinity map pointing at live, dead and foreign
// clusters, and now and then a cluster or job of a pool that does not exist.
func randomSnapshot(r *rand.Rand) Snapshot {
	now := t0
	s := Snapshot{Now: now, Affinity: map[string]string{}}
	minutes := func(n int) time.Duration { return time.Duration(r.IntN(n)) * time.Minute }

	nPools := 1 + r.IntN(3)
	var names []string
	for i := range nPools {
		pv := PoolView{Pool: berth.Pool{
			Name:        fmt.Sprintf("p%d", i),
			Slots:       1 + r.IntN(4),
			MinClusters: r.IntN(3),
		}, Fallback: r.IntN(2) == 0}
		pv.Pool.MaxClusters = pv.Pool.MinClusters + r.IntN(5)
		if r.IntN(3) > 0 {
			pv.Pool.IdleTimeout = time.Duration(1+r.IntN(5)) * time.Minute
		}
		if r.IntN(2) == 0 {
			pv.Pool.BootTimeout = 20 * time.Minute
		}
		if r.IntN(2) == 0 {
			pv.Pool.MaxLifetime = 3 * time.Hour
		}
		// Now and then idle_timeout: auto, and work expected ahead.
		if r.IntN(4) == 0 {
			pv.Pool.IdleTimeout, pv.Pool.IdleAuto = 0, true
		}
		pv.Foreseen = r.IntN(2) == 0
		if r.IntN(2) == 0 {
			pv.BootTime = time.Duration(r.IntN(12)) * time.Minute
		}
		for range r.IntN(3) {
			pv.Expected = append(pv.Expected, Arrival{Pool: pv.Pool.Name, At: now.Add(minutes(30)), Jobs: 1 + r.IntN(6)})
		}
		for range r.IntN(3) {
			pv.Ends = append(pv.Ends, now.Add(minutes(20)))
		}
		// Now and then blocked, or holding back starts.
		pv.Blocked = r.IntN(8) == 0
		if r.IntN(8) == 0 {
			pv.StartAfter = now.Add(time.Duration(r.IntN(3)-1) * time.Minute)
		}
		s.Pools = append(s.Pools, pv)
		names = append(names, pv.Pool.Name)
	}
	poolOf := func() string {
		if r.IntN(20) == 0 {
			return "ghost"
		}
		return names[r.IntN(len(names))]
	}

	states := []berth.ClusterState{starting, ready, ready, ready, draining, terminating}
	nClusters := r.IntN(4 * nPools * 3)
	var ids []string
	for i := range nClusters {
		c := ClusterView{
			ID:        fmt.Sprintf("c%02d", i),
			Pool:      poolOf(),
			State:     states[r.IntN(len(states))],
			Slots:     1 + r.IntN(4),
			CreatedAt: now.Add(-minutes(240)),
		}
		if c.State != starting {
			c.Running = r.IntN(c.Slots + 1)
		}
		// A restored starting cluster not heard of yet, and a terminating
		// one the provider has let go.
		c.Spared = c.State == starting && r.IntN(4) == 0
		c.Released = c.State == terminating && r.IntN(2) == 0
		if c.Running == 0 && c.State != starting && r.IntN(3) > 0 {
			c.IdleSince = now.Add(-minutes(8))
		}
		s.Clusters = append(s.Clusters, c)
		ids = append(ids, c.ID)
	}

	keys := []string{"k0", "k1", "k2", "k3", "k4", "k5"}
	for _, k := range keys {
		switch n := r.IntN(4); {
		case n == 0:
			// no entry: the first placement establishes it
		case n == 1 || len(ids) == 0:
			s.Affinity[k] = "gone-" + k
		default:
			s.Affinity[k] = ids[r.IntN(len(ids))]
		}
	}

	nJobs := r.IntN(60)
	for i := range nJobs {
		j := JobView{
			ID:        fmt.Sprintf("j%03d", i),
			Pool:      poolOf(),
			Priority:  r.IntN(3),
			CreatedAt: now.Add(-minutes(30)),
		}
		switch r.IntN(8) {
		case 0:
			j.NotBefore = now.Add(minutes(10) + time.Second)
		case 1:
			j.NotBefore = now.Add(-minutes(10))
		case 2:
			j.NotBefore = now
		}
		if r.IntN(2) == 0 {
			j.Affinity = keys[r.IntN(len(keys))]
			j.AffinityRequired = r.IntN(3) == 0
		}
		s.Queued = append(s.Queued, j)
	}
	return s
}

func shuffled(r *rand.Rand, s Snapshot) Snapshot {
	s.Pools, s.Clusters, s.Queued = slices.Clone(s.Pools), slices.Clone(s.Clusters), slices.Clone(s.Queued)
	r.Shuffle(len(s.Pools), func(i, j int) { s.Pools[i], s.Pools[j] = s.Pools[j], s.Pools[i] })
	r.Shuffle(len(s.Clusters), func(i, j int) { s.Clusters[i], s.Clusters[j] = s.Clusters[j], s.Clusters[i] })
	r.Shuffle(len(s.Queued), func(i, j int) { s.Queued[i], s.Queued[j] = s.Queued[j], s.Queued[i] })
	return s
}

func forEachSeed(t *testing.T, check func(t *testing.T, r *rand.Rand, s Snapshot, plan Plan)) {
	t.Helper()
	for seed := range uint64(propertySeeds) {
		r := rand.New(rand.NewPCG(seed, 0x6265727468))
		s := randomSnapshot(r)
		plan := Schedule(s)
		t.Run("", func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("seed %d\nsnapshot: %+v\nplan: %+v", seed, s, plan)
				}
			}()
			check(t, r, s, plan)
		})
		if t.Failed() {
			return
		}
	}
}

// facts indexes a snapshot and its plan for the property checks.
type facts struct {
	pools      map[string]berth.Pool
	clusters   map[string]ClusterView
	jobs       map[string]JobView
	placed     map[string]string // job → cluster
	placements map[string]int    // cluster → jobs placed on it
	drained    map[string]bool
	terminated map[string]bool
	lost       map[string]bool
	failed     map[string]bool
	starts     map[string]int // pool → clusters started
}

func factsOf(t *testing.T, s Snapshot, plan Plan) facts {
	t.Helper()
	f := facts{
		pools: map[string]berth.Pool{}, clusters: map[string]ClusterView{}, jobs: map[string]JobView{},
		placed: map[string]string{}, placements: map[string]int{}, drained: map[string]bool{},
		terminated: map[string]bool{}, lost: map[string]bool{}, failed: map[string]bool{}, starts: map[string]int{},
	}
	for _, p := range s.Pools {
		f.pools[p.Pool.Name] = p.Pool
	}
	for _, c := range s.Clusters {
		f.clusters[c.ID] = c
	}
	for _, j := range s.Queued {
		f.jobs[j.ID] = j
	}
	for _, p := range plan.Place {
		if prev, dup := f.placed[p.JobID]; dup {
			t.Errorf("job %s placed twice: on %s and %s", p.JobID, prev, p.ClusterID)
		}
		f.placed[p.JobID] = p.ClusterID
		f.placements[p.ClusterID]++
	}
	for _, d := range plan.Drain {
		if f.drained[d.ClusterID] {
			t.Errorf("cluster %s drained twice", d.ClusterID)
		}
		f.drained[d.ClusterID] = true
	}
	for _, id := range plan.Terminate {
		if f.terminated[id] {
			t.Errorf("cluster %s terminated twice", id)
		}
		f.terminated[id] = true
	}
	for _, l := range plan.Lose {
		f.lost[l.ClusterID] = true
		if c := f.clusters[l.ClusterID]; c.Spared {
			t.Errorf("cluster %s lost to boot_timeout while spared", l.ClusterID)
		}
	}
	for _, fl := range plan.Fail {
		if f.failed[fl.JobID] {
			t.Errorf("job %s failed twice", fl.JobID)
		}
		f.failed[fl.JobID] = true
	}
	for _, st := range plan.Start {
		f.starts[st.Pool]++
	}
	return f
}

// before reports whether a comes before b in placement order.
func before(a, b JobView) bool {
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.Before(b.CreatedAt)
	}
	return a.ID < b.ID
}

func eligible(s Snapshot, j JobView) bool { return !j.NotBefore.After(s.Now) }

func TestPropertyPlacement(t *testing.T) {
	forEachSeed(t, func(t *testing.T, _ *rand.Rand, s Snapshot, plan Plan) {
		f := factsOf(t, s, plan)
		for jobID, clusterID := range f.placed {
			j, ok := f.jobs[jobID]
			if !ok {
				t.Errorf("placed job %s is not queued", jobID)
				continue
			}
			c, ok := f.clusters[clusterID]
			switch {
			case !ok:
				t.Errorf("job %s placed on unknown cluster %s", jobID, clusterID)
			case c.State != ready:
				t.Errorf("job %s placed on %s cluster %s", jobID, c.State, clusterID)
			case c.Pool != j.Pool:
				t.Errorf("job %s of pool %s placed on cluster %s of pool %s", jobID, j.Pool, clusterID, c.Pool)
			case f.drained[clusterID] || f.lost[clusterID] || f.terminated[clusterID]:
				t.Errorf("job %s placed on cluster %s, which the plan drains, loses or terminates", jobID, clusterID)
			}
			if !eligible(s, j) {
				t.Errorf("job %s placed before its not_before %v", jobID, j.NotBefore)
			}
			if f.failed[jobID] {
				t.Errorf("job %s both placed and failed", jobID)
			}
		}
		for id, n := range f.placements {
			if c := f.clusters[id]; c.Running+n > c.Slots {
				t.Errorf("cluster %s over-committed: %d running + %d placed > %d slots", id, c.Running, n, c.Slots)
			}
		}
	})
}

// TestPropertyOrder checks that placement follows priority and age: a job
// is passed over for a later one only when it waits for its required
// cluster, and no ready cluster keeps a free slot while a job that could
// use it stays queued.
func TestPropertyOrder(t *testing.T) {
	forEachSeed(t, func(t *testing.T, _ *rand.Rand, s Snapshot, plan Plan) {
		f := factsOf(t, s, plan)
		if _, ok := f.pools["ghost"]; ok {
			t.Fatal("generator made a pool named ghost")
		}
		for _, a := range s.Queued {
			if _, known := f.pools[a.Pool]; !known || !eligible(s, a) || f.failed[a.ID] {
				continue
			}
			if _, ok := f.placed[a.ID]; ok || a.AffinityRequired {
				continue
			}
			for _, b := range s.Queued {
				if _, ok := f.placed[b.ID]; ok && b.Pool == a.Pool && before(a, b) {
					t.Errorf("job %s left queued while later job %s of pool %s was placed", a.ID, b.ID, a.Pool)
				}
			}
			for _, c := range s.Clusters {
				if c.Pool == a.Pool && c.State == ready && !f.drained[c.ID] && c.Running+f.placements[c.ID] < c.Slots {
					t.Errorf("job %s left queued while cluster %s of its pool has a free slot", a.ID, c.ID)
				}
			}
		}
	})
}

func TestPropertyLifecycle(t *testing.T) {
	forEachSeed(t, func(t *testing.T, _ *rand.Rand, s Snapshot, plan Plan) {
		f := factsOf(t, s, plan)
		for id := range f.terminated {
			c, ok := f.clusters[id]
			switch {
			case !ok:
				t.Errorf("terminated unknown cluster %s", id)
			case c.State != draining && !f.drained[id]:
				t.Errorf("terminated %s cluster %s that the plan does not drain", c.State, id)
			case c.Running > 0 || f.placements[id] > 0:
				t.Errorf("terminated cluster %s with jobs (%d running, %d placed)", id, c.Running, f.placements[id])
			}
		}
		for id := range f.drained {
			c, ok := f.clusters[id]
			if !ok || c.State != ready {
				t.Errorf("drained cluster %s is not a ready cluster", id)
			}
			if f.placements[id] > 0 {
				t.Errorf("cluster %s both drained and placed on", id)
			}
			if _, known := f.pools[c.Pool]; !known {
				t.Errorf("drained cluster %s of unknown pool %s", id, c.Pool)
			}
		}
		for id := range f.lost {
			c, ok := f.clusters[id]
			if !ok || c.State != starting {
				t.Errorf("lost cluster %s is not a starting cluster", id)
				continue
			}
			if p := f.pools[c.Pool]; p.BootTimeout <= 0 || s.Now.Sub(c.CreatedAt) < p.BootTimeout {
				t.Errorf("lost cluster %s before its boot_timeout", id)
			}
		}
		for _, c := range s.Clusters {
			if c.State == draining && c.Running == 0 && !f.terminated[c.ID] {
				if _, known := f.pools[c.Pool]; known {
					t.Errorf("draining cluster %s with no job not terminated", c.ID)
				}
			}
		}
		for id := range f.failed {
			j, ok := f.jobs[id]
			if !ok {
				t.Errorf("failed unknown job %s", id)
				continue
			}
			if _, pinned := s.Affinity[j.Affinity]; !j.AffinityRequired || j.Affinity == "" || !pinned || !eligible(s, j) {
				t.Errorf("failed job %s has no required affinity entry, or is not eligible", id)
			}
		}
	})
}

// TestPropertyScale checks the cluster counts of every pool as they will be
// once the plan is carried out.
func TestPropertyScale(t *testing.T) {
	forEachSeed(t, func(t *testing.T, _ *rand.Rand, s Snapshot, plan Plan) {
		f := factsOf(t, s, plan)
		for pool := range f.starts {
			if _, known := f.pools[pool]; !known {
				t.Errorf("started a cluster of unknown pool %s", pool)
			}
		}
		for name, pool := range f.pools {
			var before, live, up, supply int
			for _, c := range s.Clusters {
				if c.Pool != name {
					continue
				}
				switch {
				case c.State == starting, c.State == ready, c.State == draining:
					before++
				case c.State == berth.ClusterTerminating && !c.Released:
					// The provider has not taken the termination: it
					// still counts.
					before++
				default:
					continue
				}
				// Whatever the plan does to it, it counts until its
				// provider let it go.
				live++
				if f.lost[c.ID] || f.terminated[c.ID] {
					continue
				}
				if c.State == starting {
					supply += c.Slots
				}
				if (c.State == starting || c.State == ready) && !f.drained[c.ID] {
					up++
				}
			}
			started := f.starts[name]
			if pv := poolView(s, name); (pv.Blocked || s.Now.Before(pv.StartAfter)) && started > 0 {
				t.Errorf("pool %s started %d clusters while blocked (%v) or holding back until %s", name, started, pv.Blocked, pv.StartAfter)
			}
			if pv := poolView(s, name); pv.Blocked || s.Now.Before(pv.StartAfter) {
				continue
			}
			if before <= pool.MaxClusters && live+started > pool.MaxClusters {
				t.Errorf("pool %s: %d live + %d started > max_clusters %d", name, live, started, pool.MaxClusters)
			}
			if up+started < pool.MinClusters && live+started < pool.MaxClusters {
				t.Errorf("pool %s: %d up + %d started < min_clusters %d with room under max", name, up, started, pool.MinClusters)
			}
			var waiting int
			for _, j := range s.Queued {
				_, placed := f.placed[j.ID]
				if j.Pool == name && eligible(s, j) && !placed && !j.AffinityRequired {
					waiting++
				}
			}
			if waiting > supply && started == 0 && live < pool.MaxClusters {
				t.Errorf("pool %s: %d jobs wait for %d starting slots, and nothing starts under max_clusters", name, waiting, supply)
			}
			if waiting > 0 {
				for _, d := range plan.Drain {
					if c := f.clusters[d.ClusterID]; c.Pool == name && d.Reason != "max_lifetime" {
						t.Errorf("pool %s: cluster %s drained for idleness while %d jobs wait", name, c.ID, waiting)
					}
				}
			}
		}
	})
}

// TestPropertyDeterminism checks that the plan depends on the snapshot
// only, not on the order of its slices.
func TestPropertyDeterminism(t *testing.T) {
	forEachSeed(t, func(t *testing.T, r *rand.Rand, s Snapshot, plan Plan) {
		if again := Schedule(s); !reflect.DeepEqual(plan, again) {
			t.Errorf("same snapshot, different plan:\n%+v\n%+v", plan, again)
		}
		if other := Schedule(shuffled(r, s)); !reflect.DeepEqual(plan, other) {
			t.Errorf("shuffled snapshot, different plan: %s", diffPlans(plan, other))
		}
	})
}

// TestPropertyWakeAt checks that WakeAt is never late: at any instant
// before it, with nothing else changed, the plan is the same.
func TestPropertyWakeAt(t *testing.T) {
	forEachSeed(t, func(t *testing.T, _ *rand.Rand, s Snapshot, plan Plan) {
		if !plan.WakeAt.IsZero() && !plan.WakeAt.After(s.Now) {
			t.Fatalf("WakeAt %v is not after now %v", plan.WakeAt, s.Now)
		}
		var laters []time.Time
		if plan.WakeAt.IsZero() {
			laters = []time.Time{s.Now.Add(1000 * time.Hour)}
		} else {
			gap := plan.WakeAt.Sub(s.Now)
			laters = []time.Time{s.Now.Add(gap / 2), plan.WakeAt.Add(-time.Nanosecond)}
		}
		for _, at := range laters {
			later := s
			later.Now = at
			if d := diffPlans(plan, Schedule(later)); d != "" {
				t.Errorf("plan changed at %v, before WakeAt %v:\n%s", at, plan.WakeAt, d)
			}
		}
	})
}

// TestPropertyGeneratorReach guards the properties against going vacuous:
// over all seeds the random snapshots must lead to every kind of decision,
// and to jobs waiting for their required cluster.
func TestPropertyGeneratorReach(t *testing.T) {
	seen := map[string]int{}
	for seed := range uint64(propertySeeds) {
		r := rand.New(rand.NewPCG(seed, 0x6265727468))
		s := randomSnapshot(r)
		plan := Schedule(s)
		seen["place"] += len(plan.Place)
		seen["start"] += len(plan.Start)
		seen["fail"] += len(plan.Fail)
		seen["lose"] += len(plan.Lose)
		seen["terminate"] += len(plan.Terminate)
		if !plan.WakeAt.IsZero() {
			seen["wake"]++
		}
		for _, d := range plan.Drain {
			seen["drain "+d.Reason[:4]]++
		}
		placed := map[string]bool{}
		for _, p := range plan.Place {
			placed[p.JobID] = true
		}
		failed := map[string]bool{}
		for _, f := range plan.Fail {
			failed[f.JobID] = true
		}
		for _, j := range s.Queued {
			if j.AffinityRequired && eligible(s, j) && !placed[j.ID] && !failed[j.ID] && j.Pool != "ghost" {
				seen["required waits"]++
			}
		}
	}
	for _, kind := range []string{"place", "start", "fail", "lose", "terminate", "wake", "drain idle", "drain max_", "required waits"} {
		if seen[kind] < propertySeeds/50 {
			t.Errorf("random snapshots led to %d %q decisions in %d seeds; the generator no longer reaches them", seen[kind], kind, propertySeeds)
		}
	}
	t.Logf("decisions over %d seeds: %v", propertySeeds, seen)
}

func poolView(s Snapshot, name string) PoolView {
	for _, pv := range s.Pools {
		if pv.Pool.Name == name {
			return pv
		}
	}
	return PoolView{}
}
