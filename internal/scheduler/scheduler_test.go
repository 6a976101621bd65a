package scheduler

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

const (
	starting    = berth.ClusterStarting
	ready       = berth.ClusterReady
	draining    = berth.ClusterDraining
	terminating = berth.ClusterTerminating
)

func pool(name string, slots, minClusters, maxClusters int, opts ...func(*PoolView)) PoolView {
	pv := PoolView{Pool: berth.Pool{Name: name, Provider: "local", Slots: slots, MinClusters: minClusters, MaxClusters: maxClusters}}
	for _, o := range opts {
		o(&pv)
	}
	return pv
}

func idleTimeout(d time.Duration) func(*PoolView) {
	return func(p *PoolView) { p.Pool.IdleTimeout = d }
}
func bootTimeout(d time.Duration) func(*PoolView) {
	return func(p *PoolView) { p.Pool.BootTimeout = d }
}
func maxLifetime(d time.Duration) func(*PoolView) {
	return func(p *PoolView) { p.Pool.MaxLifetime = d }
}
func onFallback(p *PoolView) { p.Fallback = true }
func blocked(p *PoolView)    { p.Blocked = true }
func startAfter(t time.Time) func(*PoolView) {
	return func(p *PoolView) { p.StartAfter = t }
}
func spared(c *ClusterView) { c.Spared = true }

// cl is a cluster of the pool created an hour before t0.
func cl(id, poolName string, state berth.ClusterState, slots, running int, opts ...func(*ClusterView)) ClusterView {
	c := ClusterView{ID: id, Pool: poolName, State: state, Slots: slots, Running: running, CreatedAt: t0.Add(-time.Hour)}
	for _, o := range opts {
		o(&c)
	}
	return c
}

func createdAgo(d time.Duration) func(*ClusterView) {
	return func(c *ClusterView) { c.CreatedAt = t0.Add(-d) }
}
func idleFor(d time.Duration) func(*ClusterView) {
	return func(c *ClusterView) { c.IdleSince = t0.Add(-d) }
}

// queued is a job of priority 0 submitted a minute before t0.
func queued(id, poolName string, opts ...func(*JobView)) JobView {
	j := JobView{ID: id, Pool: poolName, CreatedAt: t0.Add(-time.Minute)}
	for _, o := range opts {
		o(&j)
	}
	return j
}

func priority(n int) func(*JobView)            { return func(j *JobView) { j.Priority = n } }
func age(d time.Duration) func(*JobView)       { return func(j *JobView) { j.CreatedAt = t0.Add(-d) } }
func notBefore(d time.Duration) func(*JobView) { return func(j *JobView) { j.NotBefore = t0.Add(d) } }
func affinity(key string) func(*JobView)       { return func(j *JobView) { j.Affinity = key } }
func required(key string) func(*JobView) {
	return func(j *JobView) { j.Affinity, j.AffinityRequired = key, true }
}

func jobs(poolName string, n int) []JobView {
	var out []JobView
	for i := range n {
		out = append(out, queued(fmt.Sprintf("j%02d", i), poolName, age(time.Duration(n-i)*time.Second)))
	}
	return out
}

func place(job, cl string) Placement { return Placement{JobID: job, ClusterID: cl} }

func starts(n int, poolName, reason string) []Start {
	var out []Start
	for range n {
		out = append(out, Start{Pool: poolName, Reason: reason})
	}
	return out
}

func affinityLost(job, msg string) Fail {
	return Fail{JobID: job, Reason: berth.ReasonAffinityLost, Message: msg}
}

// planLines writes a plan as one sorted line per decision, so two plans
// compare regardless of the order of their lists.
func planLines(p Plan) []string {
	var l []string
	for _, x := range p.Place {
		l = append(l, fmt.Sprintf("place %s on %s", x.JobID, x.ClusterID))
	}
	for _, x := range p.Start {
		l = append(l, fmt.Sprintf("start %s fallback=%t (%s)", x.Pool, x.Fallback, x.Reason))
	}
	for _, x := range p.Drain {
		l = append(l, fmt.Sprintf("drain %s (%s)", x.ClusterID, x.Reason))
	}
	for _, x := range p.Terminate {
		l = append(l, "terminate "+x)
	}
	for _, x := range p.Lose {
		l = append(l, fmt.Sprintf("lose %s (%s)", x.ClusterID, x.Reason))
	}
	for _, x := range p.Fail {
		l = append(l, fmt.Sprintf("fail %s %s: %s", x.JobID, x.Reason, x.Message))
	}
	if !p.WakeAt.IsZero() {
		l = append(l, "wake_at "+p.WakeAt.Format(time.RFC3339Nano))
	}
	slices.Sort(l)
	return l
}

// diffPlans returns "" when the plans hold the same decisions, else the
// lines missing from got (-) and the lines got has in excess (+).
func diffPlans(want, got Plan) string {
	w, g := planLines(want), planLines(got)
	var b strings.Builder
	i, j := 0, 0
	for i < len(w) || j < len(g) {
		switch {
		case j == len(g) || (i < len(w) && w[i] < g[j]):
			fmt.Fprintf(&b, "- %s\n", w[i])
			i++
		case i == len(w) || g[j] < w[i]:
			fmt.Fprintf(&b, "+ %s\n", g[j])
			j++
		default:
			i++
			j++
		}
	}
	return b.String()
}

func TestSchedule(t *testing.T) {
	p := pool("p", 2, 0, 5)
	tests := []struct {
		name string
		snap Snapshot
		want Plan
	}{
		{
			name: "empty snapshot, empty plan",
			snap: Snapshot{},
		},

		// Rule 1: placement order and not_before.
		{
			name: "higher priority first",
			snap: Snapshot{
				Pools:    []PoolView{pool("p", 1, 0, 1)},
				Clusters: []ClusterView{cl("c1", "p", ready, 1, 0)},
				Queued:   []JobView{queued("lo", "p", age(time.Hour)), queued("hi", "p", priority(5))},
			},
			want: Plan{Place: []Placement{place("hi", "c1")}},
		},
		{
			name: "same priority: oldest first",
			snap: Snapshot{
				Pools:    []PoolView{pool("p", 1, 0, 1)},
				Clusters: []ClusterView{cl("c1", "p", ready, 1, 0)},
				Queued:   []JobView{queued("new", "p", age(time.Minute)), queued("old", "p", age(10*time.Minute))},
			},
			want: Plan{Place: []Placement{place("old", "c1")}},
		},
		{
			name: "same priority and age: lowest ID first",
			snap: Snapshot{
				Pools:    []PoolView{pool("p", 1, 0, 1)},
				Clusters: []ClusterView{cl("c1", "p", ready, 1, 0)},
				Queued:   []JobView{queued("b", "p"), queued("a", "p")},
			},
			want: Plan{Place: []Placement{place("a", "c1")}},
		},
		{
			name: "not_before ahead: not placed, not demand, wakes at it",
			snap: Snapshot{
				Pools:  []PoolView{p},
				Queued: []JobView{queued("later", "p", notBefore(time.Minute)), queued("now", "p")},
			},
			want: Plan{Start: starts(1, "p", "backlog: 1 queued, 0 slots starting"), WakeAt: t0.Add(time.Minute)},
		},
		{
			name: "not_before at now is eligible",
			snap: Snapshot{
				Pools:    []PoolView{p},
				Clusters: []ClusterView{cl("c1", "p", ready, 1, 0)},
				Queued:   []JobView{queued("a", "p", notBefore(0))},
			},
			want: Plan{Place: []Placement{place("a", "c1")}},
		},
		{
			name: "a job listed twice is placed once",
			snap: Snapshot{
				Pools:    []PoolView{p},
				Clusters: []ClusterView{cl("c1", "p", ready, 2, 0)},
				Queued:   []JobView{queued("a", "p"), queued("a", "p")},
			},
			want: Plan{Place: []Placement{place("a", "c1")}},
		},

		// Rule 2: where a job goes.
		{
			name: "affinity cluster over the busiest",
			snap: Snapshot{
				Pools:    []PoolView{p},
				Clusters: []ClusterView{cl("c1", "p", ready, 4, 0), cl("c2", "p", ready, 4, 3)},
				Queued:   []JobView{queued("a", "p", affinity("k"))},
				Affinity: map[string]string{"k": "c1"},
			},
			want: Plan{Place: []Placement{place("a", "c1")}},
		},
		{
			name: "affinity cluster full: the busiest with room",
			snap: Snapshot{
				Pools: []PoolView{p},
				Clusters: []ClusterView{
					cl("c1", "p", ready, 2, 2), cl("c2", "p", ready, 4, 1), cl("c3", "p", ready, 4, 2),
				},
				Queued:   []JobView{queued("a", "p", affinity("k"))},
				Affinity: map[string]string{"k": "c1"},
			},
			want: Plan{Place: []Placement{place("a", "c3")}},
		},
		{
			name: "packing: busiest with room, counting this plan's placements",
			snap: Snapshot{
				Pools: []PoolView{p},
				Clusters: []ClusterView{
					cl("c1", "p", ready, 4, 1), cl("c2", "p", ready, 4, 3), cl("c3", "p", ready, 3, 3),
				},
				Queued: []JobView{
					queued("a", "p", age(3*time.Minute)), queued("b", "p", age(2*time.Minute)), queued("c", "p", age(time.Minute)),
				},
			},
			want: Plan{Place: []Placement{place("a", "c2"), place("b", "c1"), place("c", "c1")}},
		},
		{
			name: "busiest tie: oldest, then lowest ID",
			snap: Snapshot{
				Pools: []PoolView{p},
				Clusters: []ClusterView{
					cl("c1", "p", ready, 2, 1),
					cl("c2", "p", ready, 2, 1, createdAgo(2*time.Hour)),
					cl("c3", "p", ready, 2, 1, createdAgo(2*time.Hour)),
				},
				Queued: []JobView{queued("a", "p", age(2*time.Minute)), queued("b", "p")},
			},
			want: Plan{Place: []Placement{place("a", "c2"), place("b", "c3")}},
		},
		{
			name: "never on starting, draining or terminating clusters",
			snap: Snapshot{
				Pools: []PoolView{p},
				Clusters: []ClusterView{
					cl("s1", "p", starting, 2, 0), cl("d1", "p", draining, 2, 1), cl("t1", "p", terminating, 2, 1),
				},
				Queued: []JobView{queued("a", "p")},
			},
			want: Plan{},
		},
		{
			name: "affinity cluster starting, not required: busiest ready",
			snap: Snapshot{
				Pools:    []PoolView{p},
				Clusters: []ClusterView{cl("s1", "p", starting, 2, 0), cl("c1", "p", ready, 2, 0)},
				Queued:   []JobView{queued("a", "p", affinity("k"))},
				Affinity: map[string]string{"k": "s1"},
			},
			want: Plan{Place: []Placement{place("a", "c1")}},
		},
		{
			name: "never over-commit a slot",
			snap: Snapshot{
				Pools:    []PoolView{pool("p", 2, 0, 1)},
				Clusters: []ClusterView{cl("c1", "p", ready, 2, 1)},
				Queued:   jobs("p", 3),
			},
			want: Plan{Place: []Placement{place("j00", "c1")}},
		},

		// Rule 3: affinity_required.
		{
			name: "required with no entry places like any other",
			snap: Snapshot{
				Pools:    []PoolView{p},
				Clusters: []ClusterView{cl("c1", "p", ready, 2, 1)},
				Queued:   []JobView{queued("a", "p", required("k"))},
			},
			want: Plan{Place: []Placement{place("a", "c1")}},
		},
		{
			name: "the first placement establishes the key for the rest of the plan",
			snap: Snapshot{
				Pools:    []PoolView{p},
				Clusters: []ClusterView{cl("c1", "p", ready, 2, 1), cl("c2", "p", ready, 2, 0)},
				Queued: []JobView{
					queued("a", "p", required("k"), age(3*time.Minute)),
					queued("b", "p", required("k"), age(2*time.Minute)),
					queued("c", "p", age(time.Minute)),
				},
			},
			want: Plan{Place: []Placement{place("a", "c1"), place("c", "c2")}},
		},
		{
			name: "required cluster gone: failed",
			snap: Snapshot{
				Pools:    []PoolView{p},
				Clusters: []ClusterView{cl("c1", "p", ready, 2, 0)},
				Queued:   []JobView{queued("a", "p", required("k"))},
				Affinity: map[string]string{"k": "gone"},
			},
			want: Plan{Fail: []Fail{affinityLost("a", `affinity "k" requires cluster gone, which no longer exists`)}},
		},
		{
			name: "required cluster draining or terminating: failed",
			snap: Snapshot{
				Pools:    []PoolView{p},
				Clusters: []ClusterView{cl("d1", "p", draining, 2, 1), cl("t1", "p", terminating, 2, 1)},
				Queued:   []JobView{queued("a", "p", required("kd")), queued("b", "p", required("kt"))},
				Affinity: map[string]string{"kd": "d1", "kt": "t1"},
			},
			want: Plan{Fail: []Fail{
				affinityLost("a", `affinity "kd" requires cluster d1, which is draining`),
				affinityLost("b", `affinity "kt" requires cluster t1, which is terminating`),
			}},
		},
		{
			name: "required cluster of another pool: failed",
			snap: Snapshot{
				Pools:    []PoolView{p, pool("q", 2, 0, 5)},
				Clusters: []ClusterView{cl("q1", "q", ready, 2, 0)},
				Queued:   []JobView{queued("a", "p", required("k"))},
				Affinity: map[string]string{"k": "q1"},
			},
			want: Plan{Fail: []Fail{affinityLost("a", `affinity "k" requires cluster q1, which belongs to pool q`)}},
		},
		{
			name: "required cluster ready but full: waits, not demand",
			snap: Snapshot{
				Pools:    []PoolView{p},
				Clusters: []ClusterView{cl("c1", "p", ready, 1, 1)},
				Queued:   []JobView{queued("a", "p", required("k"))},
				Affinity: map[string]string{"k": "c1"},
			},
			want: Plan{},
		},
		{
			name: "required cluster starting: waits while others place",
			snap: Snapshot{
				Pools:    []PoolView{p},
				Clusters: []ClusterView{cl("s1", "p", starting, 2, 0), cl("c1", "p", ready, 2, 0)},
				Queued:   []JobView{queued("a", "p", required("k"), age(time.Hour)), queued("b", "p")},
				Affinity: map[string]string{"k": "s1"},
			},
			want: Plan{Place: []Placement{place("b", "c1")}},
		},
		{
			name: "required cluster recycled by this plan: failed",
			snap: Snapshot{
				Pools:    []PoolView{pool("p", 2, 0, 5, maxLifetime(time.Hour))},
				Clusters: []ClusterView{cl("c1", "p", ready, 2, 1, createdAgo(2*time.Hour))},
				Queued:   []JobView{queued("a", "p", required("k"))},
				Affinity: map[string]string{"k": "c1"},
			},
			want: Plan{
				Drain: []Drain{{ClusterID: "c1", Reason: "max_lifetime"}},
				Fail:  []Fail{affinityLost("a", `affinity "k" requires cluster c1, which is draining`)},
			},
		},
		{
			name: "required cluster lost to boot_timeout by this plan: failed",
			snap: Snapshot{
				Pools:    []PoolView{pool("p", 2, 0, 5, bootTimeout(20*time.Minute))},
				Clusters: []ClusterView{cl("s1", "p", starting, 2, 0, createdAgo(30*time.Minute))},
				Queued:   []JobView{queued("a", "p", required("k"))},
				Affinity: map[string]string{"k": "s1"},
			},
			want: Plan{
				Lose: []Lose{{ClusterID: "s1", Reason: "boot_timeout: not ready after 20m"}},
				Fail: []Fail{affinityLost("a", `affinity "k" requires cluster s1, which was lost`)},
			},
		},
		{
			name: "required job deferred by not_before is not judged yet",
			snap: Snapshot{
				Pools:    []PoolView{p},
				Queued:   []JobView{queued("a", "p", required("k"), notBefore(time.Minute))},
				Affinity: map[string]string{"k": "gone"},
			},
			want: Plan{WakeAt: t0.Add(time.Minute)},
		},
		{
			name: "not required, affinity cluster gone: placed anywhere",
			snap: Snapshot{
				Pools:    []PoolView{p},
				Clusters: []ClusterView{cl("c1", "p", ready, 2, 0)},
				Queued:   []JobView{queued("a", "p", affinity("k"))},
				Affinity: map[string]string{"k": "gone"},
			},
			want: Plan{Place: []Placement{place("a", "c1")}},
		},

		// Rule 4: scale up.
		{
			name: "backlog: one cluster per pool slots of unmet demand",
			snap: Snapshot{Pools: []PoolView{p}, Queued: jobs("p", 5)},
			want: Plan{Start: starts(3, "p", "backlog: 5 queued, 0 slots starting")},
		},
		{
			name: "starting slots are supply",
			snap: Snapshot{
				Pools:    []PoolView{p},
				Clusters: []ClusterView{cl("s1", "p", starting, 2, 0)},
				Queued:   jobs("p", 5),
			},
			want: Plan{Start: starts(2, "p", "backlog: 5 queued, 2 slots starting")},
		},
		{
			name: "demand within supply: nothing starts",
			snap: Snapshot{
				Pools:    []PoolView{p},
				Clusters: []ClusterView{cl("s1", "p", starting, 2, 0)},
				Queued:   jobs("p", 2),
			},
			want: Plan{},
		},
		{
			name: "ready room is used before counting demand",
			snap: Snapshot{
				Pools:    []PoolView{p},
				Clusters: []ClusterView{cl("c1", "p", ready, 2, 0)},
				Queued:   jobs("p", 3),
			},
			want: Plan{
				Place: []Placement{place("j00", "c1"), place("j01", "c1")},
				Start: starts(1, "p", "backlog: 1 queued, 0 slots starting"),
			},
		},
		{
			name: "max_clusters caps starts; draining with jobs counts",
			snap: Snapshot{
				Pools:    []PoolView{pool("p", 2, 0, 3)},
				Clusters: []ClusterView{cl("c1", "p", ready, 2, 2), cl("d1", "p", draining, 2, 1)},
				Queued:   jobs("p", 10),
			},
			want: Plan{Start: starts(1, "p", "backlog: 10 queued, 0 slots starting")},
		},
		{
			name: "draining with no job is terminated, and counts until its provider let it go",
			snap: Snapshot{
				Pools:    []PoolView{pool("p", 2, 0, 2)},
				Clusters: []ClusterView{cl("c1", "p", ready, 2, 2), cl("d1", "p", draining, 2, 0)},
				Queued:   jobs("p", 4),
			},
			want: Plan{Terminate: []string{"d1"}},
		},
		{
			name: "terminating, not yet let go: counts against max_clusters",
			snap: Snapshot{
				Pools:    []PoolView{pool("p", 2, 0, 2)},
				Clusters: []ClusterView{cl("c1", "p", ready, 2, 2), cl("d1", "p", terminating, 2, 0)},
				Queued:   jobs("p", 4),
			},
			want: Plan{},
		},
		{
			name: "terminating and let go by its provider: a replacement starts",
			snap: Snapshot{
				Pools:    []PoolView{pool("p", 2, 0, 2)},
				Clusters: []ClusterView{cl("c1", "p", ready, 2, 2), released(cl("d1", "p", terminating, 2, 0))},
				Queued:   jobs("p", 4),
			},
			want: Plan{Start: starts(1, "p", "backlog: 4 queued, 0 slots starting")},
		},
		{
			name: "already at max_clusters: nothing starts",
			snap: Snapshot{
				Pools:    []PoolView{pool("p", 2, 0, 1)},
				Clusters: []ClusterView{cl("c1", "p", ready, 2, 2), cl("c2", "p", ready, 2, 2)},
				Queued:   jobs("p", 3),
			},
			want: Plan{},
		},
		{
			name: "min_clusters",
			snap: Snapshot{Pools: []PoolView{pool("p", 2, 2, 5)}},
			want: Plan{Start: starts(2, "p", "min_clusters")},
		},
		{
			name: "min_clusters counts starting clusters",
			snap: Snapshot{
				Pools:    []PoolView{pool("p", 2, 2, 5)},
				Clusters: []ClusterView{cl("s1", "p", starting, 2, 0)},
			},
			want: Plan{Start: starts(1, "p", "min_clusters")},
		},
		{
			name: "backlog and min_clusters together",
			snap: Snapshot{Pools: []PoolView{pool("p", 4, 3, 5)}, Queued: jobs("p", 5)},
			want: Plan{Start: append(starts(2, "p", "backlog: 5 queued, 0 slots starting"), starts(1, "p", "min_clusters")...)},
		},
		{
			name: "min_clusters above max_clusters: max wins",
			snap: Snapshot{Pools: []PoolView{pool("p", 2, 3, 1)}},
			want: Plan{Start: starts(1, "p", "min_clusters")},
		},
		{
			name: "starts carry the fallback flag",
			snap: Snapshot{Pools: []PoolView{pool("p", 2, 0, 5, onFallback)}, Queued: jobs("p", 1)},
			want: Plan{Start: []Start{{Pool: "p", Fallback: true, Reason: "backlog: 1 queued, 0 slots starting"}}},
		},

		// Rule 5: scale down.
		{
			name: "idle for idle_timeout: drained and terminated",
			snap: Snapshot{
				Pools:    []PoolView{pool("p", 2, 0, 5, idleTimeout(30*time.Second))},
				Clusters: []ClusterView{cl("c1", "p", ready, 2, 0, idleFor(30*time.Second))},
			},
			want: Plan{Drain: []Drain{{ClusterID: "c1", Reason: "idle for 30s"}}, Terminate: []string{"c1"}},
		},
		{
			name: "idle less than idle_timeout: wakes when it is due",
			snap: Snapshot{
				Pools:    []PoolView{pool("p", 2, 0, 5, idleTimeout(30*time.Second))},
				Clusters: []ClusterView{cl("c1", "p", ready, 2, 0, idleFor(10*time.Second))},
			},
			want: Plan{WakeAt: t0.Add(20 * time.Second)},
		},
		{
			name: "idle_timeout 0 never scales down",
			snap: Snapshot{
				Pools:    []PoolView{p},
				Clusters: []ClusterView{cl("c1", "p", ready, 2, 0, idleFor(time.Hour))},
			},
			want: Plan{},
		},
		{
			name: "no IdleSince, not idle",
			snap: Snapshot{
				Pools:    []PoolView{pool("p", 2, 0, 5, idleTimeout(30*time.Second))},
				Clusters: []ClusterView{cl("c1", "p", ready, 2, 0)},
			},
			want: Plan{},
		},
		{
			name: "longest idle first, never below min_clusters",
			snap: Snapshot{
				Pools: []PoolView{pool("p", 2, 1, 5, idleTimeout(30*time.Second))},
				Clusters: []ClusterView{
					cl("c1", "p", ready, 2, 0, idleFor(time.Minute)),
					cl("c2", "p", ready, 2, 0, idleFor(5*time.Minute)),
					cl("c3", "p", ready, 2, 0, idleFor(2*time.Minute)),
				},
			},
			want: Plan{
				Drain: []Drain{
					{ClusterID: "c2", Reason: "idle for 30s"},
					{ClusterID: "c3", Reason: "idle for 30s"},
				},
				Terminate: []string{"c2", "c3"},
			},
		},
		{
			name: "starting clusters count toward min_clusters",
			snap: Snapshot{
				Pools:    []PoolView{pool("p", 2, 1, 5, idleTimeout(30*time.Second))},
				Clusters: []ClusterView{cl("s1", "p", starting, 2, 0), cl("c1", "p", ready, 2, 0, idleFor(time.Minute))},
			},
			want: Plan{Drain: []Drain{{ClusterID: "c1", Reason: "idle for 30s"}}, Terminate: []string{"c1"}},
		},
		{
			name: "a placement saves an idle cluster",
			snap: Snapshot{
				Pools:    []PoolView{pool("p", 2, 0, 5, idleTimeout(30*time.Second))},
				Clusters: []ClusterView{cl("c1", "p", ready, 2, 0, idleFor(time.Minute))},
				Queued:   []JobView{queued("a", "p")},
			},
			want: Plan{Place: []Placement{place("a", "c1")}},
		},
		{
			name: "a job waiting for its required cluster does not keep another",
			snap: Snapshot{
				Pools:    []PoolView{pool("p", 2, 0, 5, idleTimeout(30*time.Second))},
				Clusters: []ClusterView{cl("c1", "p", ready, 1, 1), cl("c2", "p", ready, 2, 0, idleFor(time.Minute))},
				Queued:   []JobView{queued("a", "p", required("k"))},
				Affinity: map[string]string{"k": "c1"},
			},
			want: Plan{Drain: []Drain{{ClusterID: "c2", Reason: "idle for 30s"}}, Terminate: []string{"c2"}},
		},
		{
			name: "a deferred job's required cluster is kept",
			snap: Snapshot{
				Pools:    []PoolView{pool("p", 2, 0, 5, idleTimeout(30*time.Second))},
				Clusters: []ClusterView{cl("c1", "p", ready, 2, 0, idleFor(time.Minute))},
				Queued:   []JobView{queued("a", "p", required("k"), notBefore(5*time.Minute))},
				Affinity: map[string]string{"k": "c1"},
			},
			want: Plan{WakeAt: t0.Add(5 * time.Minute)},
		},

		// Rule 6: max_lifetime.
		{
			name: "past max_lifetime: drained, takes no job, backlog replaces it",
			snap: Snapshot{
				Pools:    []PoolView{pool("p", 2, 0, 5, maxLifetime(24*time.Hour))},
				Clusters: []ClusterView{cl("c1", "p", ready, 2, 1, createdAgo(25*time.Hour))},
				Queued:   []JobView{queued("a", "p")},
			},
			want: Plan{
				Drain: []Drain{{ClusterID: "c1", Reason: "max_lifetime"}},
				Start: starts(1, "p", "backlog: 1 queued, 0 slots starting"),
			},
		},
		{
			name: "recycled with no job: drained and terminated; at max_clusters it is replaced once let go",
			snap: Snapshot{
				Pools:    []PoolView{pool("p", 2, 1, 1, maxLifetime(24*time.Hour))},
				Clusters: []ClusterView{cl("c1", "p", ready, 2, 0, createdAgo(24*time.Hour))},
			},
			want: Plan{
				Drain:     []Drain{{ClusterID: "c1", Reason: "max_lifetime"}},
				Terminate: []string{"c1"},
			},
		},
		{
			name: "recycled with no job, room under max_clusters: min_clusters replaces it at once",
			snap: Snapshot{
				Pools:    []PoolView{pool("p", 2, 1, 2, maxLifetime(24*time.Hour))},
				Clusters: []ClusterView{cl("c1", "p", ready, 2, 0, createdAgo(24*time.Hour))},
			},
			want: Plan{
				Drain:     []Drain{{ClusterID: "c1", Reason: "max_lifetime"}},
				Terminate: []string{"c1"},
				Start:     starts(1, "p", "min_clusters"),
			},
		},
		{
			name: "under max_lifetime: wakes when it is reached",
			snap: Snapshot{
				Pools:    []PoolView{pool("p", 2, 0, 5, maxLifetime(24*time.Hour))},
				Clusters: []ClusterView{cl("c1", "p", ready, 2, 1, createdAgo(23*time.Hour))},
			},
			want: Plan{WakeAt: t0.Add(time.Hour)},
		},
		{
			name: "max_lifetime 0 never recycles",
			snap: Snapshot{
				Pools:    []PoolView{p},
				Clusters: []ClusterView{cl("c1", "p", ready, 2, 1, createdAgo(1000*time.Hour))},
			},
			want: Plan{},
		},

		// Rule 7: terminate.
		{
			name: "draining clusters are terminated once they have no job",
			snap: Snapshot{
				Pools:    []PoolView{p},
				Clusters: []ClusterView{cl("d1", "p", draining, 2, 0), cl("d2", "p", draining, 2, 1)},
			},
			want: Plan{Terminate: []string{"d1"}},
		},

		// Rule 8: boot_timeout.
		{
			name: "past boot_timeout: lost, and its slots are not supply",
			snap: Snapshot{
				Pools:    []PoolView{pool("p", 2, 0, 5, bootTimeout(20*time.Minute))},
				Clusters: []ClusterView{cl("s1", "p", starting, 2, 0, createdAgo(20*time.Minute))},
				Queued:   jobs("p", 2),
			},
			want: Plan{
				Lose:  []Lose{{ClusterID: "s1", Reason: "boot_timeout: not ready after 20m"}},
				Start: starts(1, "p", "backlog: 2 queued, 0 slots starting"),
			},
		},
		{
			name: "past boot_timeout but spared (restored, not heard of yet): kept, and no replacement at max_clusters",
			snap: Snapshot{
				Pools:    []PoolView{pool("p", 2, 0, 1, bootTimeout(20*time.Minute))},
				Clusters: []ClusterView{cl("s1", "p", starting, 2, 0, createdAgo(30*time.Minute), spared)},
				Queued:   jobs("p", 4),
			},
			want: Plan{},
		},
		{
			name: "blocked pool: no cluster starts, however much is queued",
			snap: Snapshot{
				Pools:  []PoolView{pool("p", 2, 1, 5, blocked)},
				Queued: jobs("p", 6),
			},
			want: Plan{},
		},
		{
			name: "after failed creations: nothing starts before StartAfter, and it wakes then",
			snap: Snapshot{
				Pools:  []PoolView{pool("p", 2, 0, 5, startAfter(t0.Add(time.Minute)))},
				Queued: jobs("p", 2),
			},
			want: Plan{WakeAt: t0.Add(time.Minute)},
		},
		{
			name: "StartAfter passed: starts again",
			snap: Snapshot{
				Pools:  []PoolView{pool("p", 2, 0, 5, startAfter(t0))},
				Queued: jobs("p", 2),
			},
			want: Plan{Start: starts(1, "p", "backlog: 2 queued, 0 slots starting")},
		},
		{
			name: "within boot_timeout: supply, wakes at the deadline",
			snap: Snapshot{
				Pools:    []PoolView{pool("p", 2, 0, 5, bootTimeout(20*time.Minute))},
				Clusters: []ClusterView{cl("s1", "p", starting, 2, 0, createdAgo(5*time.Minute))},
				Queued:   jobs("p", 2),
			},
			want: Plan{WakeAt: t0.Add(15 * time.Minute)},
		},

		// Rule 9: unknown pools.
		{
			name: "clusters and jobs of unknown pools are ignored",
			snap: Snapshot{
				Pools: []PoolView{p},
				Clusters: []ClusterView{
					cl("c1", "p", ready, 2, 0),
					cl("g1", "ghost", ready, 2, 0), cl("g2", "ghost", draining, 2, 0),
				},
				Queued: []JobView{queued("a", "p"), queued("g", "ghost", age(time.Hour))},
			},
			want: Plan{Place: []Placement{place("a", "c1")}},
		},

		// Rule 10: WakeAt.
		{
			name: "WakeAt is the earliest deadline ahead over all pools",
			snap: Snapshot{
				Pools: []PoolView{
					pool("p", 2, 0, 5, idleTimeout(30*time.Second), maxLifetime(24*time.Hour)),
					pool("q", 2, 0, 5, bootTimeout(20*time.Minute)),
				},
				Clusters: []ClusterView{
					cl("c1", "p", ready, 2, 0, createdAgo(time.Hour), idleFor(10*time.Second)),
					cl("s1", "q", starting, 2, 0, createdAgo(19*time.Minute)),
				},
				Queued: []JobView{queued("a", "p", notBefore(time.Hour))},
			},
			want: Plan{WakeAt: t0.Add(20 * time.Second)},
		},
	}
	names := map[string]bool{}
	for _, tt := range tests {
		if names[tt.name] {
			t.Fatalf("duplicate case name %q", tt.name)
		}
		names[tt.name] = true
		t.Run(tt.name, func(t *testing.T) {
			snap := tt.snap
			snap.Now = t0
			got := Schedule(snap)
			if d := diffPlans(tt.want, got); d != "" {
				t.Errorf("plan differs (-want +got):\n%s", d)
			}
		})
	}
}

func TestShortDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{30 * time.Second, "30s"},
		{20 * time.Minute, "20m"},
		{90 * time.Second, "1m30s"},
		{2 * time.Hour, "2h"},
		{90 * time.Minute, "1h30m"},
		{time.Hour + time.Second, "1h0m1s"},
		{1500 * time.Millisecond, "1.5s"},
	}
	for _, tt := range tests {
		if got := shortDuration(tt.in); got != tt.want {
			t.Errorf("shortDuration(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func released(c ClusterView) ClusterView {
	c.Released = true
	return c
}
