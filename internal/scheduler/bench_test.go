package scheduler

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
)

// largeSnapshot is a busy installation: 20 pools, 1,000 clusters in every
// live state, and 100,000 queued jobs with mixed priorities, backoffs and
// affinities.
func largeSnapshot() Snapshot {
	const (
		pools    = 20
		clusters = 1000
		jobs     = 100_000
	)
	r := rand.New(rand.NewPCG(1, 2))
	s := Snapshot{Now: t0, Affinity: map[string]string{}}
	for i := range pools {
		s.Pools = append(s.Pools, PoolView{Pool: berth.Pool{
			Name: fmt.Sprintf("pool-%02d", i), Slots: 8, MinClusters: 1, MaxClusters: 80,
			IdleTimeout: 10 * time.Minute, BootTimeout: 20 * time.Minute, MaxLifetime: 24 * time.Hour,
		}})
	}
	states := []berth.ClusterState{starting, ready, ready, ready, ready, ready, draining, terminating}
	for i := range clusters {
		c := ClusterView{
			ID:        fmt.Sprintf("cl-%04d", i),
			Pool:      s.Pools[i%pools].Pool.Name,
			State:     states[r.IntN(len(states))],
			Slots:     8,
			CreatedAt: t0.Add(-time.Duration(r.IntN(30*60)) * time.Minute),
		}
		if c.State != starting {
			c.Running = r.IntN(9)
		}
		if c.Running == 0 && c.State == ready {
			c.IdleSince = t0.Add(-time.Duration(r.IntN(20)) * time.Minute)
		}
		s.Clusters = append(s.Clusters, c)
	}
	for i := range 500 {
		s.Affinity[fmt.Sprintf("key-%03d", i)] = s.Clusters[r.IntN(clusters)].ID
	}
	for i := range jobs {
		j := JobView{
			ID:        fmt.Sprintf("job-%06d", i),
			Pool:      s.Pools[r.IntN(pools)].Pool.Name,
			Priority:  r.IntN(4),
			CreatedAt: t0.Add(-time.Duration(r.IntN(3600)) * time.Second),
		}
		if r.IntN(10) == 0 {
			j.NotBefore = t0.Add(time.Duration(r.IntN(600)) * time.Second)
		}
		if r.IntN(4) == 0 {
			j.Affinity = fmt.Sprintf("key-%03d", r.IntN(1000))
			j.AffinityRequired = r.IntN(5) == 0
		}
		s.Queued = append(s.Queued, j)
	}
	return s
}

func BenchmarkSchedule(b *testing.B) {
	s := largeSnapshot()
	b.ReportAllocs()
	for b.Loop() {
		Schedule(s)
	}
}

// TestScheduleLarge runs the benchmark's snapshot once, so the large case
// is exercised by every test run, and checks it decided something of
// every kind.
func TestScheduleLarge(t *testing.T) {
	plan := Schedule(largeSnapshot())
	if len(plan.Place) == 0 || len(plan.Start) == 0 || len(plan.Fail) == 0 || len(plan.Lose) == 0 ||
		len(plan.Drain) == 0 || len(plan.Terminate) == 0 || plan.WakeAt.IsZero() {
		t.Errorf("large snapshot: plan lacks a kind of decision: %d placed, %d started, %d failed, %d lost, %d drained, %d terminated, wake %v",
			len(plan.Place), len(plan.Start), len(plan.Fail), len(plan.Lose), len(plan.Drain), len(plan.Terminate), plan.WakeAt)
	}
}
