package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/store"
)

// BenchCreateJob is a driver's CreateJob benchmark: one submission at a
// time, each with an idempotency key.
func BenchCreateJob(b *testing.B, s store.Store) {
	ctx := b.Context()
	i := 0
	for b.Loop() {
		j := newJob(fmt.Sprintf("job-%d", i))
		j.IdempotencyKey = fmt.Sprintf("bench/%d", i)
		if _, _, err := s.CreateJob(ctx, j); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchCommit is a driver's Commit benchmark: one loop pass that moves 100
// jobs along, each getting a running attempt and the next batch ending it,
// with an event each.
func BenchCommit(b *testing.B, s store.Store) {
	const n = 100
	ctx := b.Context()
	jobs := make([]berth.Job, n)
	for i := range jobs {
		j, _, err := s.CreateJob(ctx, newJob(fmt.Sprintf("job-%d", i)))
		if err != nil {
			b.Fatal(err)
		}
		jobs[i] = j
	}
	code := 0
	round := 0
	for b.Loop() {
		round++
		batch := store.Batch{Jobs: make([]berth.Job, n), Events: make([]berth.Event, 0, n)}
		for i, j := range jobs {
			at := t0.Add(time.Duration(round) * time.Second)
			j.State, j.ClusterID, j.StartedAt = berth.JobRunning, "cl-1", at
			j.Attempts = []berth.Attempt{{
				N: 1, ClusterID: "cl-1", State: berth.AttemptRunning, StartedAt: at,
				Steps: []berth.AttemptStep{{Index: 0, State: berth.StepRunning, ProviderID: "s-1", StartedAt: at, ExitCode: &code}},
			}}
			if round%2 == 0 {
				j.State, j.EndedAt = berth.JobQueued, at
				j.Attempts[0].State, j.Attempts[0].EndedAt = berth.AttemptFailed, at
			}
			batch.Jobs[i] = j
			batch.Events = append(batch.Events, berth.Event{At: at, JobID: j.ID, ClusterID: "cl-1", Kind: "placed"})
		}
		if err := s.Commit(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
}
