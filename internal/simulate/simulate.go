package simulate

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/berthhq/berth/internal/workload"
)

// The policies, by the names the table and the JSON give them.
const (
	PolicyBerth           = "berth"
	PolicyAirflowStatic   = "airflow-static"
	PolicyClusterPerPhase = "cluster-per-phase"
	PolicyOracle          = "oracle"
)

// Policies are every policy's name, in the table's order.
var Policies = []string{PolicyBerth, PolicyAirflowStatic, PolicyClusterPerPhase, PolicyOracle}

// policy runs a workload one way and says what it did.
type policy func(ctx context.Context, w *workload.Workload) (*Trace, error)

func policyOf(name string) (policy, bool) {
	switch name {
	case PolicyBerth:
		return runBerth, true
	case PolicyAirflowStatic:
		return pure(runAirflowStatic), true
	case PolicyClusterPerPhase:
		return pure(runClusterPerPhase), true
	case PolicyOracle:
		return pure(runOracle), true
	}
	return nil, false
}

// pure makes a baseline, a computation over the workload, a policy.
func pure(f func(w *workload.Workload) *Trace) policy {
	return func(_ context.Context, w *workload.Workload) (*Trace, error) { return f(w), nil }
}

// Report is what Run found: one trace and one result per policy.
type Report struct {
	Policies []string
	Traces   map[string]*Trace
	Results  map[string]Result
	// Jobs is how many jobs the workload holds.
	Jobs int
}

// Run runs the workload under each named policy, side by side on the same
// draws, each in its own goroutine (they share nothing but the workload,
// which they only read).
func Run(ctx context.Context, w *workload.Workload, names []string) (*Report, error) {
	rep := &Report{Policies: names, Traces: map[string]*Trace{}, Results: map[string]Result{}}
	for _, in := range w.Instances() {
		for _, ph := range in.Phases {
			rep.Jobs += len(ph.Durations)
		}
	}
	runs := make([]policy, len(names))
	for i, name := range names {
		run, ok := policyOf(name)
		if !ok {
			return nil, fmt.Errorf("unknown policy %q", name)
		}
		runs[i] = run
	}
	traces := make([]*Trace, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		run := runs[i]
		wg.Go(func() {
			traces[i], errs[i] = run(ctx, w)
			if errs[i] == nil {
				traces[i].Policy = name
			}
		})
	}
	wg.Wait()
	for i, name := range names {
		if errs[i] != nil {
			return nil, fmt.Errorf("policy %s: %w", name, errs[i])
		}
		rep.Traces[name] = traces[i]
		rep.Results[name] = traces[i].Measure()
	}
	return rep, nil
}

// sortJobs puts jobs in workload order, so that traces read the same in
// every run.
func sortJobs(js []Job) {
	slices.SortFunc(js, func(a, b Job) int {
		return cmp.Or(cmp.Compare(a.Key.Pipeline, b.Key.Pipeline), cmp.Compare(a.Key.Instance, b.Key.Instance),
			cmp.Compare(a.Key.Phase, b.Key.Phase), cmp.Compare(a.Key.Job, b.Key.Job))
	})
}
