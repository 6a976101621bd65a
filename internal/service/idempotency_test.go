package service

import (
	"context"
	"errors"
	"testing"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/store"
)

func TestIdempotentSubmitOfAnotherSpecIsAConflict(t *testing.T) {
	h := newVirtual(t, simPool(), booting)
	ctx := context.Background()
	spec := berth.JobSpec{Pool: "p", Steps: sleepSteps("1m"), IdempotencyKey: "dag/task/1"}
	first, _, err := h.svc.Submit(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	// The same spec with its defaults spelled out is the same job.
	five := berth.DefaultInfraRetry
	same := spec
	same.Resume, same.MaxInfraRetries = berth.ResumeFromStart, &five
	if j, created, err := h.svc.Submit(ctx, same); err != nil || created || j.ID != first.ID {
		t.Fatalf("submit of the same spec: job %s created=%v err=%v, want %s", j.ID, created, err, first.ID)
	}
	other := spec
	other.Retries = 3
	_, _, err = h.svc.Submit(ctx, other)
	want := `idempotency_key "dag/task/1" was used for job ` + first.ID + ` with a different spec (retries differs)`
	if !errors.Is(err, berth.ErrConflict) || berth.Public(err) != want {
		t.Fatalf("submit of another spec: %v (public %q), want a conflict saying %q", err, berth.Public(err), want)
	}
	if jobs, _, err := h.svc.Jobs(ctx, store.JobFilter{}); err != nil || len(jobs) != 1 {
		t.Fatalf("%d jobs stored (%v), want the first alone", len(jobs), err)
	}
}
