package service

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider"
)

// fakeProvider is an in-memory provider the tests script: clusters become
// ready when told (or at once with autoReady), steps run until the test
// finishes them. It counts every step it started, by name, so tests can
// prove no step started twice.
type fakeProvider struct {
	mu        sync.Mutex
	autoReady bool
	clusters  map[string]*fakeCluster
	starts    map[string]int // step name → times started
	creates   []provider.CreateRequest
	// failCreate, failSubmit and failTerminate make those calls fail while
	// set; failTerminate counts down.
	failCreate    error
	failSubmit    error
	failTerminate int
}

type fakeCluster struct {
	id    string
	state berth.ClusterState
	req   provider.CreateRequest
	steps []*provider.Step
	lost  string
	cap   bool
}

func newFake(autoReady bool) *fakeProvider {
	return &fakeProvider{autoReady: autoReady, clusters: map[string]*fakeCluster{}, starts: map[string]int{}}
}

func (f *fakeProvider) PollInterval() time.Duration { return 10 * time.Millisecond }

func (f *fakeProvider) CreateCluster(ctx context.Context, req provider.CreateRequest) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failCreate != nil {
		return "", f.failCreate
	}
	id := "fake-" + req.ClusterID
	if _, ok := f.clusters[id]; ok {
		return id, nil
	}
	c := &fakeCluster{id: id, state: berth.ClusterStarting, req: req}
	if f.autoReady {
		c.state = berth.ClusterReady
	}
	f.clusters[id] = c
	f.creates = append(f.creates, req)
	return id, nil
}

func (f *fakeProvider) DescribeCluster(ctx context.Context, id string) (provider.Cluster, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.clusters[id]
	if !ok {
		return provider.Cluster{ID: id, State: berth.ClusterLost, Reason: "unknown"}, nil
	}
	return provider.Cluster{ID: id, State: c.state, Reason: c.lost, Class: lossClassOf(c.cap)}, nil
}

func (f *fakeProvider) TerminateCluster(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failTerminate > 0 {
		f.failTerminate--
		return fmt.Errorf("terminate: service unavailable")
	}
	if c, ok := f.clusters[id]; ok && !c.state.Terminal() {
		c.state = berth.ClusterTerminated
		c.lost = "terminated"
		for _, s := range c.steps {
			if !s.State.Terminal() {
				s.State = berth.StepCancelled
			}
		}
	}
	return nil
}

func (f *fakeProvider) SubmitStep(ctx context.Context, clusterID string, req provider.StepRequest) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failSubmit != nil {
		return "", f.failSubmit
	}
	c, ok := f.clusters[clusterID]
	if !ok || c.state != berth.ClusterReady {
		return "", provider.ErrNotReady
	}
	for _, s := range c.steps {
		if s.Name == req.Name {
			return s.ID, nil
		}
	}
	s := &provider.Step{ID: fmt.Sprintf("s-%d", len(c.steps)), Name: req.Name, State: berth.StepRunning}
	c.steps = append(c.steps, s)
	f.starts[req.Name]++
	return s.ID, nil
}

func (f *fakeProvider) ListSteps(ctx context.Context, clusterID string) ([]provider.Step, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.clusters[clusterID]
	if !ok {
		return nil, provider.ErrUnknownCluster
	}
	out := make([]provider.Step, len(c.steps))
	for i, s := range c.steps {
		out[i] = *s
	}
	return out, nil
}

func (f *fakeProvider) CancelStep(ctx context.Context, clusterID, stepID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.clusters[clusterID]; ok {
		for _, s := range c.steps {
			if s.ID == stepID && !s.State.Terminal() {
				s.State = berth.StepCancelled
			}
		}
	}
	return nil
}

func (f *fakeProvider) KillCluster(ctx context.Context, id string) error {
	f.lose(id, "spot capacity reclaimed", true)
	return nil
}

// lose makes a cluster die under Berth.
func (f *fakeProvider) lose(id, reason string, capacity bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.clusters[id]; ok {
		c.state, c.lost, c.cap = berth.ClusterLost, reason, capacity
		for _, s := range c.steps {
			if !s.State.Terminal() {
				s.State = berth.StepFailed
			}
		}
	}
}

// ready makes every starting cluster ready.
func (f *fakeProvider) readyAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.clusters {
		if c.state == berth.ClusterStarting {
			c.state = berth.ClusterReady
		}
	}
}

// finish ends the running step with this name, reporting whether it found
// one.
func (f *fakeProvider) finish(name string, exit int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.clusters {
		for _, s := range c.steps {
			if s.Name == name && s.State == berth.StepRunning {
				s.ExitCode = &exit
				s.State = berth.StepSucceeded
				if exit != 0 {
					s.State = berth.StepFailed
				}
				return true
			}
		}
	}
	return false
}

// running returns the names of the running steps.
func (f *fakeProvider) running() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.clusters {
		for _, s := range c.steps {
			if s.State == berth.StepRunning {
				out = append(out, s.Name)
			}
		}
	}
	return out
}

func (f *fakeProvider) started(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.starts[name]
}

func (f *fakeProvider) createRequests() []provider.CreateRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]provider.CreateRequest(nil), f.creates...)
}

// liveClusters counts the clusters not terminated or lost.
func (f *fakeProvider) liveClusters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.clusters {
		if !c.state.Terminal() {
			n++
		}
	}
	return n
}

// set changes the fake under its lock.
func (f *fakeProvider) set(fn func(f *fakeProvider)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// addStep puts a running step on a cluster behind Berth's back.
func (f *fakeProvider) addStep(clusterID, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.clusters[clusterID]
	c.steps = append(c.steps, &provider.Step{ID: fmt.Sprintf("s-%d", len(c.steps)), Name: name, State: berth.StepRunning})
}

// stepState returns the state of the step with this name.
func (f *fakeProvider) stepState(name string) berth.StepState {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.clusters {
		for _, s := range c.steps {
			if s.Name == name {
				return s.State
			}
		}
	}
	return ""
}

// clusterState returns what the provider says of a cluster.
func (f *fakeProvider) clusterState(id string) berth.ClusterState {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.clusters[id]; ok {
		return c.state
	}
	return ""
}

// cancelStep cancels a step behind Berth's back.
func (f *fakeProvider) cancelStep(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.clusters {
		for _, s := range c.steps {
			if s.Name == name {
				s.State = berth.StepCancelled
			}
		}
	}
}

func lossClassOf(capacity bool) provider.Class {
	if capacity {
		return provider.ClassCapacity
	}
	return ""
}
