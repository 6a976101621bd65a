package service

import (
	"context"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/store"
)

// readsNews counts the loop's reads of what the API stored.
type readsNews struct {
	store.Store
	after, cancels *int
}

func (r readsNews) JobsAfter(ctx context.Context, seq int64, limit int) ([]berth.Job, error) {
	*r.after++
	return r.Store.JobsAfter(ctx, seq, limit)
}

func (r readsNews) CancelRequests(ctx context.Context) ([]string, error) {
	*r.cancels++
	return r.Store.CancelRequests(ctx)
}

// Jobs the API stored come with its word, which the loop takes without a
// read; a job stored without one is read at the gap it leaves in Seq, and
// a cancel request is read when the API says it stored one. All within
// less than the safety-net tick.
func TestPickUp(t *testing.T) {
	var after, cancels int
	h := newVirtual(t, simPool(), booting, withStore(func(s store.Store) store.Store { return readsNews{s, &after, &cancels} }))
	ctx := context.Background()
	queued := func(n int) func() bool {
		return func() bool {
			ps, err := h.svc.Pool(ctx, "p")
			return err == nil && ps.Queued == n
		}
	}
	h.run(time.Second) // the first pass reads all there is
	after, cancels = 0, 0
	for range 3 {
		h.submit(berth.JobSpec{Steps: sleepSteps("1m")})
	}
	h.until("3 jobs queued", time.Second, queued(3))
	if after != 0 || cancels != 0 {
		t.Errorf("jobs that came with a word cost %d reads of jobs and %d of cancel requests, want none", after, cancels)
	}

	// Stored behind the API's back: no word.
	spec := berth.JobSpec{Pool: "p", Steps: sleepSteps("1m")}
	if err := h.svc.check(&spec); err != nil {
		t.Fatal(err)
	}
	now := h.exec.Now()
	if _, _, err := h.st.CreateJob(ctx, spec.NewJob("job-unsaid", now)); err != nil {
		t.Fatal(err)
	}
	next := h.submit(berth.JobSpec{Steps: sleepSteps("1m")})
	h.until("5 jobs queued", time.Second, queued(5))
	if after == 0 {
		t.Errorf("the gap before job %s was not read", next.ID)
	}

	if _, err := h.svc.RequestCancel(ctx, "job-unsaid"); err != nil {
		t.Fatal(err)
	}
	h.untilJob("job-unsaid", berth.JobCancelled)
	if cancels == 0 {
		t.Error("the cancel request was not read")
	}
	if h.exec.Now().Sub(now) >= DefaultTick {
		t.Errorf("picked up only after %s, a tick or more", h.exec.Now().Sub(now))
	}
}
