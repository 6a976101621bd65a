package forecast

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
)

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return now.Add(d) }

const m = time.Minute

func ready(id string, slots int, running ...Running) Cluster {
	return Cluster{ID: id, State: berth.ClusterReady, Slots: slots, Running: running}
}

// run is a job running since d ago (negative: d in the past) expected to
// take exp.
func run(ago, exp time.Duration) Running { return Running{StartedAt: now.Add(-ago), Expected: exp} }

func jobs(n int, exp time.Duration) []Job {
	var out []Job
	for i := range n {
		out = append(out, Job{ID: fmt.Sprint("j", i), Expected: exp})
	}
	return out
}

// est is the estimate of a job starting at now+d on cluster c.
func est(d time.Duration, c string, starting bool) Estimate {
	return Estimate{Start: at(d), Cluster: c, Starting: starting}
}

var never = Estimate{}

func TestRun(t *testing.T) {
	tests := []struct {
		name string
		in   Input
		want []Estimate
	}{
		{
			name: "a free slot now",
			in:   Input{Slots: 2, MaxClusters: 1, Clusters: []Cluster{ready("a", 2, run(m, 10*m))}, Queue: jobs(1, 10*m)},
			want: []Estimate{est(0, "a", false)},
		},
		{
			name: "slots free as running jobs end, in order",
			in: Input{Slots: 2, MaxClusters: 1, Clusters: []Cluster{ready("a", 2, run(5*m, 10*m), run(m, 10*m))},
				Queue: jobs(3, 10*m)},
			want: []Estimate{est(5*m, "a", false), est(9*m, "a", false), est(15*m, "a", false)},
		},
		{
			name: "a job past its expected end ends in a tenth of it",
			in:   Input{Slots: 1, MaxClusters: 1, Clusters: []Cluster{ready("a", 1, run(20*m, 10*m))}, Queue: jobs(1, 10*m)},
			want: []Estimate{est(m, "a", false)},
		},
		{
			name: "a starting cluster takes jobs when it is ready",
			in: Input{Slots: 2, MaxClusters: 1, Boot: 7 * m,
				Clusters: []Cluster{{ID: "s", State: berth.ClusterStarting, Slots: 2, ReadyAt: at(3 * m)}}, Queue: jobs(3, 10*m)},
			want: []Estimate{est(3*m, "s", true), est(3*m, "s", true), est(13*m, "s", true)},
		},
		{
			name: "a late starting cluster is ready in a tenth of the boot time",
			in: Input{Slots: 1, MaxClusters: 1, Boot: 10 * m,
				Clusters: []Cluster{{ID: "s", State: berth.ClusterStarting, Slots: 1, ReadyAt: at(-m)}}, Queue: jobs(1, 10*m)},
			want: []Estimate{est(m, "s", true)},
		},
		{
			name: "the pool starts clusters for the backlog, up to max_clusters",
			in:   Input{Slots: 1, MaxClusters: 2, Boot: 7 * m, Queue: jobs(3, 10*m)},
			want: []Estimate{est(7*m, "", false), est(7*m, "", false), est(17*m, "", false)},
		},
		{
			name: "the jobs behind the forecast are demand too",
			in:   Input{Slots: 2, MaxClusters: 3, Boot: 7 * m, Clusters: []Cluster{ready("a", 2, run(0, 30*m), run(0, 30*m))}, Queue: jobs(3, 10*m), Behind: 2},
			// 5 jobs for 2 slots each: 3 clusters wanted, 2 allowed.
			want: []Estimate{est(7*m, "", false), est(7*m, "", false), est(7*m, "", false)},
		},
		{
			name: "a blocked pool with no cluster starts nothing",
			in:   Input{Slots: 1, MaxClusters: 2, Boot: 7 * m, Blocked: true, Queue: jobs(2, 10*m)},
			want: []Estimate{never, never},
		},
		{
			name: "a blocked pool's jobs wait for its clusters' slots",
			in:   Input{Slots: 1, MaxClusters: 2, Boot: 7 * m, Blocked: true, Clusters: []Cluster{ready("a", 1, run(0, 4*m))}, Queue: jobs(2, 10*m)},
			want: []Estimate{est(4*m, "a", false), est(14*m, "a", false)},
		},
		{
			name: "new clusters held back start when the hold ends",
			in:   Input{Slots: 1, MaxClusters: 1, Boot: 5 * m, StartAfter: at(2 * m), Queue: jobs(1, 10*m)},
			want: []Estimate{est(7*m, "", false)},
		},
		{
			name: "a slot freed before a deferred job is due goes to the next",
			in: Input{Slots: 1, MaxClusters: 1, Clusters: []Cluster{ready("a", 1)},
				Queue: []Job{{ID: "late", Expected: 10 * m, NotBefore: at(5 * m)}, {ID: "now", Expected: 10 * m}}},
			want: []Estimate{est(10*m, "a", false), est(0, "a", false)},
		},
		{
			name: "a deferred job due keeps its place in the order",
			in: Input{Slots: 1, MaxClusters: 1, Clusters: []Cluster{ready("a", 1, run(0, 5*m))},
				Queue: []Job{{ID: "late", Expected: 10 * m, NotBefore: at(3 * m)}, {ID: "now", Expected: 10 * m}}},
			want: []Estimate{est(5*m, "a", false), est(15*m, "a", false)},
		},
		{
			name: "a required affinity cluster is waited for, the others run on",
			in: Input{Slots: 1, MaxClusters: 2, Clusters: []Cluster{ready("a", 1, run(0, 4*m)), ready("b", 1)},
				Queue: []Job{{ID: "needs-a", Expected: 10 * m, Affinity: "a", Required: true}, {ID: "any", Expected: 10 * m}}},
			want: []Estimate{est(4*m, "a", false), est(0, "b", false)},
		},
		{
			name: "a preferred affinity cluster that is full is passed over",
			in: Input{Slots: 1, MaxClusters: 2, Clusters: []Cluster{ready("a", 1, run(0, 4*m)), ready("b", 1)},
				Queue: []Job{{ID: "likes-a", Expected: 10 * m, Affinity: "a"}}},
			want: []Estimate{est(0, "b", false)},
		},
		{
			name: "a required cluster that is gone or draining is never there",
			in: Input{Slots: 1, MaxClusters: 3, Clusters: []Cluster{{ID: "d", State: berth.ClusterDraining, Slots: 1, Running: []Running{run(0, m)}}, ready("b", 1)},
				Queue: []Job{{ID: "x", Affinity: "gone", Required: true}, {ID: "y", Affinity: "d", Required: true}}},
			want: []Estimate{never, never},
		},
		{
			name: "a draining cluster counts against max_clusters until its jobs end",
			in: Input{Slots: 1, MaxClusters: 1, Boot: 2 * m,
				Clusters: []Cluster{{ID: "d", State: berth.ClusterDraining, Slots: 1, Running: []Running{run(0, 6*m)}}}, Queue: jobs(1, 10*m)},
			want: []Estimate{est(8*m, "", false)},
		},
		{
			name: "jobs pack onto the busiest cluster",
			in:   Input{Slots: 2, MaxClusters: 2, Clusters: []Cluster{ready("a", 2), ready("b", 2, run(0, 30*m))}, Queue: jobs(2, 10*m)},
			want: []Estimate{est(0, "b", false), est(0, "a", false)},
		},
		{
			name: "max_clusters 0 starts nothing",
			in:   Input{Slots: 1, MaxClusters: 0, Boot: m, Queue: jobs(1, 10*m)},
			want: []Estimate{never},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Now = now
			got := Run(tt.in)
			if len(got) != len(tt.want) {
				t.Fatalf("%d estimates for %d jobs", len(got), len(tt.in.Queue))
			}
			for i := range got {
				if !got[i].Start.Equal(tt.want[i].Start) || got[i].Cluster != tt.want[i].Cluster || got[i].Starting != tt.want[i].Starting {
					t.Errorf("job %s: %s, want %s", tt.in.Queue[i].ID, show(got[i]), show(tt.want[i]))
				}
			}
		})
	}
}

func show(e Estimate) string {
	if e.Start.IsZero() {
		return "never"
	}
	return fmt.Sprintf("now+%s on %q (starting %v)", e.Start.Sub(now), e.Cluster, e.Starting)
}

// Random pools: every estimate is at or after now and the job's
// not_before, no two jobs share a slot at once, and the same input gives
// the same estimates, from a new forecaster or a used one.
func TestRunProperties(t *testing.T) {
	// One forecaster for every seed: what it keeps from a run must not
	// change the next.
	var f Forecaster
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 7))
		in := Input{Now: now, Slots: 1 + rng.IntN(4), MaxClusters: rng.IntN(5), Boot: time.Duration(rng.IntN(10)) * m,
			Blocked: rng.IntN(5) == 0, Behind: rng.IntN(20)}
		if rng.IntN(4) == 0 {
			in.StartAfter = at(time.Duration(rng.IntN(10)) * m)
		}
		for i := range rng.IntN(4) {
			c := Cluster{ID: fmt.Sprint("c", i), Slots: in.Slots, State: []berth.ClusterState{berth.ClusterStarting, berth.ClusterReady, berth.ClusterDraining}[rng.IntN(3)]}
			if c.State == berth.ClusterStarting {
				c.ReadyAt = at(time.Duration(rng.IntN(10)-3) * m)
			} else {
				for range rng.IntN(c.Slots + 1) {
					c.Running = append(c.Running, run(time.Duration(rng.IntN(30))*m, time.Duration(rng.IntN(20))*m))
				}
			}
			in.Clusters = append(in.Clusters, c)
		}
		for i := range rng.IntN(40) {
			j := Job{ID: fmt.Sprint("j", i), Expected: time.Duration(rng.IntN(20)) * m}
			if rng.IntN(4) == 0 {
				j.NotBefore = at(time.Duration(rng.IntN(30)) * m)
			}
			if rng.IntN(5) == 0 {
				j.Affinity, j.Required = fmt.Sprint("c", rng.IntN(5)), rng.IntN(2) == 0
			}
			in.Queue = append(in.Queue, j)
		}
		got := Run(in)
		again := f.Run(in)
		type slot struct {
			cluster string
			start   time.Time
		}
		for i, e := range got {
			if e != again[i] {
				t.Fatalf("seed %d: job %d estimated %s, then %s", seed, i, show(e), show(again[i]))
			}
			if e.Start.IsZero() {
				continue
			}
			if e.Start.Before(now) || e.Start.Before(in.Queue[i].NotBefore) {
				t.Fatalf("seed %d: job %d starts %s, before now or its not_before", seed, i, show(e))
			}
			if j := in.Queue[i]; j.Required && j.Affinity != "" && e.Cluster != j.Affinity {
				t.Fatalf("seed %d: job %d requires %s and starts on %q", seed, i, j.Affinity, e.Cluster)
			}
		}
		// No known cluster runs more jobs at once than its slots.
		for _, c := range in.Clusters {
			for _, e := range got {
				if e.Cluster != c.ID || e.Start.IsZero() {
					continue
				}
				n := 0
				for _, r := range c.Running {
					end := r.StartedAt.Add(r.Expected)
					if !end.After(now) {
						end = now.Add(r.Expected / 10)
					}
					if end.After(e.Start) {
						n++
					}
				}
				for k, o := range got {
					if o.Cluster == c.ID && !o.Start.After(e.Start) && o.Start.Add(in.Queue[k].Expected).After(e.Start) {
						n++
					}
				}
				if n > c.Slots {
					t.Fatalf("seed %d: cluster %s runs %d jobs at %s with %d slots", seed, c.ID, n, show(e), c.Slots)
				}
			}
		}
	}
}
