package service

import (
	"context"
	"slices"
	"testing"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider/sim"
	"github.com/berthhq/berth/internal/store"
)

// readsWhole counts the jobs the loop reads whole by id (Store.GetJobs).
type readsWhole struct {
	store.Store
	ids *[]string
}

func (r readsWhole) GetJobs(ctx context.Context, ids []string) ([]berth.Job, error) {
	*r.ids = append(*r.ids, ids...)
	return r.Store.GetJobs(ctx, ids)
}

// A long queue keeps most of its jobs dormant, as their place only, and
// reads each whole as it nears the head. Every job still runs once and in
// placement order, a restart loses none, and a dormant job's cancel is
// seen at once.
func TestDormantQueue(t *testing.T) {
	var read []string
	pool := simPool()
	pool.Slots = 20
	h := newVirtual(t, pool, booting, withStore(func(s store.Store) store.Store { return readsWhole{s, &read} }),
		func(h *vharness, _ *sim.Options) { h.keepWhole = 2 })
	// More than a pass reads whole at the head: headMargin and
	// forecastJobs past the free slots, and readAhead more.
	const n = 1500
	var jobs []berth.Job
	for range n {
		jobs = append(jobs, h.submit(berth.JobSpec{Steps: sleepSteps("1m")}))
	}
	urgent := h.submit(berth.JobSpec{Steps: sleepSteps("1m"), Priority: 5})
	cancelled := jobs[n-10]
	h.untilJob(jobs[0].ID, berth.JobRunning)
	if slices.Contains(read, cancelled.ID) {
		t.Fatalf("job %d was read whole before it neared the head", n-10)
	}
	if _, err := h.svc.RequestCancel(context.Background(), cancelled.ID); err != nil {
		t.Fatal(err)
	}
	h.untilJob(cancelled.ID, berth.JobCancelled)
	// Seen at once, not only once the job neared the head.
	if k := 2 * pool.Slots; h.job(jobs[k].ID).State != berth.JobQueued {
		t.Fatalf("the cancel of a dormant job was seen only after job %d, behind the first clusters' slots, left the queue", k)
	}
	h.untilJob(jobs[100].ID, berth.JobSucceeded)
	h.crash()
	h.start()
	for _, j := range append(jobs, urgent) {
		if j.ID == cancelled.ID {
			continue
		}
		h.untilJob(j.ID, berth.JobSucceeded)
		if n := h.started(berth.StepName(j.ID, 1, 0)); n != 1 {
			t.Errorf("job %s's step started %d times", j.ID, n)
		}
	}
	if n := h.started(berth.StepName(cancelled.ID, 1, 0)); n != 0 {
		t.Errorf("the cancelled job's step started %d times", n)
	}
	// The urgent job, submitted last, starts with the first that start.
	u := h.job(urgent.ID)
	for _, j := range jobs[2*pool.Slots:] {
		if s := h.job(j.ID).StartedAt; !s.IsZero() && s.Before(u.StartedAt) {
			t.Errorf("job %s started at %s, before the urgent job at %s", j.ID, s, u.StartedAt)
		}
	}
}
