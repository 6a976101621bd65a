package service

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider"
	"github.com/berthhq/berth/internal/provider/sim"
	"github.com/berthhq/berth/internal/store"
	"github.com/berthhq/berth/internal/wait"
)

// looks is a sim provider that is polled every few milliseconds until
// slow is set and every hour after, and that notes the first ListSteps
// after a SubmitStep has returned.
type looks struct {
	*sim.Provider
	slow      atomic.Bool
	describes atomic.Int64

	mu        sync.Mutex
	submitted bool
	once      sync.Once
	looked    chan struct{} // closed by that ListSteps
}

func (p *looks) PollInterval() time.Duration {
	if p.slow.Load() {
		return time.Hour
	}
	return 5 * time.Millisecond
}

func (p *looks) DescribeCluster(ctx context.Context, id string) (provider.Cluster, error) {
	p.describes.Add(1)
	return p.Provider.DescribeCluster(ctx, id)
}

func (p *looks) SubmitStep(ctx context.Context, clusterID string, req provider.StepRequest) (string, error) {
	id, err := p.Provider.SubmitStep(ctx, clusterID, req)
	if err == nil {
		p.mu.Lock()
		p.submitted = true
		p.mu.Unlock()
	}
	return id, err
}

func (p *looks) ListSteps(ctx context.Context, clusterID string) ([]provider.Step, error) {
	p.mu.Lock()
	if p.submitted {
		p.once.Do(func() { close(p.looked) })
	}
	p.mu.Unlock()
	return p.Provider.ListSteps(ctx, clusterID)
}

// holdsSubmissions holds the commit that records a step's submission until
// the provider has been asked about the cluster since, or until a
// deadline; late says which it was.
type holdsSubmissions struct {
	store.Store
	looked <-chan struct{}
	late   *atomic.Bool
}

func (s holdsSubmissions) Commit(ctx context.Context, b store.Batch) error {
	if slices.ContainsFunc(b.Events, func(ev berth.Event) bool { return ev.Kind == "step_submitted" }) {
		select {
		case <-s.looked:
		case <-time.After(deadline / 2):
			s.late.Store(true)
		}
	}
	return s.Store.Commit(ctx, b)
}

// A submitted step's cluster is looked at as the submission returns, while
// the loop commits it, not after: a step that ends at once is then seen
// ended in the pass after the one that records it. Here the watcher would
// otherwise not look for an hour, and the commit waits for the look.
func TestSubmittedStepIsLookedAtAtOnce(t *testing.T) {
	pool := simPool()
	pool.MinClusters, pool.MaxClusters, pool.Slots = 1, 1, 1
	p := &looks{looked: make(chan struct{})}
	var late atomic.Bool
	h := newWallClock(t, pool, sim.Options{Script: func(string, berth.Step) (time.Duration, bool) { return 0, true }},
		func(h *wharness) {
			p.Provider = h.prov
			h.use = p
			h.wrap = func(st store.Store) store.Store { return holdsSubmissions{st, p.looked, &late} }
		})
	h.waitReady(1)
	// From the next poll on, the watcher looks only every hour.
	p.slow.Store(true)
	n := p.describes.Load()
	wait.For(t, deadline, "a poll after the switch", func() bool { return p.describes.Load() > n })

	j := h.submit(berth.JobSpec{Steps: []berth.Step{{Name: "s", Args: []string{"true"}}}})
	h.waitJob(j.ID, berth.JobSucceeded)
	if late.Load() {
		t.Fatal("the cluster was not looked at while its step's submission was committed; only after")
	}
}
