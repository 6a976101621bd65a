package scheduler

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
)

func waitLine(w Wait) string {
	s := fmt.Sprintf("%s/%s %s", w.Pool, w.JobID, w.Reason)
	if w.ClusterID != "" {
		s += " on " + w.ClusterID
	}
	if w.Start >= 0 {
		s += fmt.Sprintf(" start %d", w.Start)
	}
	return s
}

func TestWaits(t *testing.T) {
	full := func(id string) ClusterView { return cl(id, "p", ready, 2, 2) }
	tests := []struct {
		name string
		snap Snapshot
		want []string
	}{
		{
			name: "every slot busy at max_clusters",
			snap: Snapshot{Pools: []PoolView{pool("p", 2, 0, 2)}, Clusters: []ClusterView{full("c1"), full("c2")}, Queued: jobs("p", 2)},
			want: []string{"p/j00 pool_at_max_clusters", "p/j01 pool_at_max_clusters"},
		},
		{
			name: "a starting cluster's slots, then the one the plan starts, then max_clusters",
			snap: Snapshot{Pools: []PoolView{pool("p", 2, 0, 3)},
				Clusters: []ClusterView{full("c1"), cl("c2", "p", starting, 2, 0)}, Queued: jobs("p", 5)},
			want: []string{
				"p/j00 cluster_starting on c2", "p/j01 cluster_starting on c2",
				"p/j02 cluster_starting start 0", "p/j03 cluster_starting start 0",
				"p/j04 pool_at_max_clusters",
			},
		},
		{
			name: "starting clusters give their slots oldest first",
			snap: Snapshot{Pools: []PoolView{pool("p", 1, 0, 2)},
				Clusters: []ClusterView{cl("c1", "p", starting, 1, 0, createdAgo(time.Minute)), cl("c2", "p", starting, 1, 0, createdAgo(2*time.Minute))},
				Queued:   jobs("p", 3)},
			want: []string{"p/j00 cluster_starting on c2", "p/j01 cluster_starting on c1", "p/j02 pool_at_max_clusters"},
		},
		{
			name: "new clusters held back after failed creations: waiting for a slot",
			snap: Snapshot{Now: t0, Pools: []PoolView{pool("p", 2, 0, 3, startAfter(t0.Add(time.Minute)))}, Clusters: []ClusterView{full("c1")}, Queued: jobs("p", 1)},
			want: []string{"p/j00 no_free_slot"},
		},
		{
			name: "a blocked pool: what starts already, then blocked",
			snap: Snapshot{Pools: []PoolView{pool("p", 1, 0, 3, blocked)}, Clusters: []ClusterView{cl("c1", "p", starting, 1, 0)}, Queued: jobs("p", 2)},
			want: []string{"p/j00 cluster_starting on c1", "p/j01 pool_blocked"},
		},
		{
			name: "a required affinity cluster full or starting",
			snap: Snapshot{Pools: []PoolView{pool("p", 2, 0, 3)},
				Clusters: []ClusterView{full("c1"), cl("c2", "p", starting, 2, 0)},
				Queued:   []JobView{queued("a", "p", required("k1"), age(2*time.Minute)), queued("b", "p", required("k2"))},
				Affinity: map[string]string{"k1": "c1", "k2": "c2"}},
			want: []string{"p/a affinity_cluster_busy on c1", "p/b cluster_starting on c2"},
		},
		{
			name: "placed and deferred jobs get no wait",
			snap: Snapshot{Now: t0, Pools: []PoolView{pool("p", 2, 0, 1)}, Clusters: []ClusterView{cl("c1", "p", ready, 2, 1)},
				Queued: []JobView{queued("a", "p"), queued("b", "p", notBefore(time.Minute)), queued("c", "p", age(time.Second))}},
			want: []string{"p/c pool_at_max_clusters"},
		},
		{
			name: "the backlog gets its last job's reason",
			snap: Snapshot{Pools: []PoolView{func() PoolView { pv := pool("p", 2, 0, 2); pv.Backlog = 3; return pv }()},
				Clusters: []ClusterView{full("c1")}, Queued: jobs("p", 1)},
			// 4 jobs of demand: j00 and the first of the backlog on the
			// started cluster, the rest at max_clusters.
			want: []string{"p/j00 cluster_starting start 0", "p/ pool_at_max_clusters"},
		},
		{
			name: "a start's index is into the whole plan's starts",
			snap: Snapshot{Pools: []PoolView{pool("a", 1, 0, 1), pool("b", 1, 0, 2)},
				Queued: []JobView{queued("x", "a"), queued("y", "b", age(2*time.Minute)), queued("z", "b")}},
			want: []string{"a/x cluster_starting start 0", "b/y cluster_starting start 1", "b/z cluster_starting start 2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := Schedule(tt.snap)
			var got []string
			for _, w := range plan.Waits {
				got = append(got, waitLine(w))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("waits:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for _, w := range plan.Waits {
				if w.Start >= len(plan.Start) || (w.Start >= 0 && plan.Start[w.Start].Pool != w.Pool) {
					t.Errorf("wait %s names start %d of %+v", waitLine(w), w.Start, plan.Start)
				}
			}
		})
	}
}

// On random snapshots: every eligible job left unplaced has exactly one
// wait, and nothing else has one; a job waiting for a starting cluster
// names one of its pool, or a start of its pool, and the starting
// clusters and starts are not promised more jobs than they have slots.
func TestPropertyWaits(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for range 2000 {
		s := randomSnapshot(r)
		for i := range s.Pools {
			if r.IntN(3) == 0 {
				s.Pools[i].Backlog = r.IntN(10)
			}
		}
		plan := Schedule(s)
		lost := map[string]bool{}
		for _, l := range plan.Lose {
			lost[l.ClusterID] = true
		}
		placed := map[string]bool{}
		for _, pl := range plan.Place {
			placed[pl.JobID] = true
		}
		for _, f := range plan.Fail {
			placed[f.JobID] = true
		}
		pools := map[string]PoolView{}
		for _, p := range s.Pools {
			if _, dup := pools[p.Pool.Name]; !dup {
				pools[p.Pool.Name] = p
			}
		}
		clusters := map[string]ClusterView{}
		for _, c := range s.Clusters {
			if _, dup := clusters[c.ID]; !dup {
				clusters[c.ID] = c
			}
		}
		want := map[string]bool{}
		requires := map[string]bool{}
		for _, j := range s.Queued {
			requires[j.ID] = j.AffinityRequired && j.Affinity != ""
			if _, ok := pools[j.Pool]; ok && !placed[j.ID] && !j.NotBefore.After(s.Now) {
				want[j.ID] = true
			}
		}
		got := map[string]bool{}
		promised := map[string]int{}
		for _, w := range plan.Waits {
			if w.JobID == "" {
				if pools[w.Pool].Backlog <= 0 {
					t.Fatalf("a backlog wait for pool %s, which has none: %s", w.Pool, waitLine(w))
				}
				continue
			}
			if got[w.JobID] {
				t.Fatalf("job %s has two waits", w.JobID)
			}
			got[w.JobID] = true
			if !want[w.JobID] {
				t.Fatalf("job %s has a wait but is placed, failed, deferred or of no pool: %s", w.JobID, waitLine(w))
			}
			if w.Reason != berth.WaitClusterStarting {
				continue
			}
			switch {
			case w.ClusterID != "":
				c := clusters[w.ClusterID]
				if c.Pool != w.Pool || c.State != berth.ClusterStarting || lost[c.ID] {
					t.Fatalf("%s waits for a cluster that is not a starting one of its pool: %+v", waitLine(w), c)
				}
				if requires[w.JobID] {
					continue
				}
				promised[w.ClusterID]++
				if promised[w.ClusterID] > c.Slots {
					t.Fatalf("cluster %s promised to more jobs than its %d slots", c.ID, c.Slots)
				}
			case w.Start < 0 || w.Start >= len(plan.Start) || plan.Start[w.Start].Pool != w.Pool:
				t.Fatalf("%s names no start of its pool in %+v", waitLine(w), plan.Start)
			}
		}
		for id := range want {
			if !got[id] {
				t.Fatalf("job %s is left queued without a wait", id)
			}
		}
	}
}
