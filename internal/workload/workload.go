// Package workload reads the files `berth sim` runs: pools, as in the
// configuration (provider sim), and pipelines, which stand for workflow
// DAGs: instances arriving over time, each a chain of phases whose jobs run
// in parallel. It also draws everything random about a run — each job's
// duration, each cluster's time to loss — as a pure function of the seed
// and of what is drawn, so that every policy that runs the workload sees
// the same draws.
package workload

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/config"
)

// Defaults of the baselines' parameters.
const (
	DefaultStaticClusters = 2
	DefaultManualResponse = 30 * time.Minute
)

// Workload is one parsed, validated file.
type Workload struct {
	Seed  uint64
	Pools []config.Pool
	// Pipelines in the file's order.
	Pipelines []Pipeline
	// StaticClusters is how many clusters a static DAG splits a parallel
	// phase over; ManualResponse how long a person takes to recreate a
	// lost cluster and clear its tasks.
	StaticClusters int
	ManualResponse time.Duration
	// Replay, when not nil, holds the workload's instances as they are, in
	// place of those the pipelines give: a history read back from a store
	// (FromStore). A workload file never sets it.
	Replay []Instance
}

// Pipeline is one kind of workflow: Count instances, arriving Every apart
// from the start or at the times At gives.
type Pipeline struct {
	Name   string
	Count  int
	Every  time.Duration
	At     []time.Duration
	Phases []Phase
}

// Phase is a set of jobs that run in parallel; the next phase starts when
// every job of this one has succeeded.
type Phase struct {
	Pool     string
	Jobs     int
	Duration time.Duration
	// Jitter spreads each job's duration uniformly over Duration × (1 ±
	// Jitter), 0 ≤ Jitter < 1.
	Jitter float64
}

// file is the YAML form.
type file struct {
	Seed           uint64          `yaml:"seed"`
	Pools          yaml.Node       `yaml:"pools"`
	Pipelines      []filePipeline  `yaml:"pipelines"`
	StaticClusters *int            `yaml:"static_clusters"`
	ManualResponse config.Duration `yaml:"manual_response"`
}

type filePipeline struct {
	Name   string            `yaml:"name"`
	Count  int               `yaml:"count"`
	Every  config.Duration   `yaml:"every"`
	At     []config.Duration `yaml:"at"`
	Phases []filePhase       `yaml:"phases"`
}

type filePhase struct {
	Pool     string          `yaml:"pool"`
	Jobs     int             `yaml:"jobs"`
	Duration config.Duration `yaml:"duration"`
	Jitter   string          `yaml:"jitter"`
}

// Limits that keep a workload one machine can simulate.
const (
	maxInstances = 10_000_000
	maxPhaseJobs = 100_000
)

// Parse reads and validates a workload file. Its errors wrap
// berth.ErrInvalid and name the pipeline, phase or pool at fault.
func Parse(data []byte) (*Workload, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, invalid(fmt.Errorf("parse: %w", err))
	}
	cfg, err := config.Parse(poolsOnly(data))
	if err != nil {
		return nil, invalid(err)
	}
	w := &Workload{Seed: f.Seed, Pools: cfg.Pools, StaticClusters: DefaultStaticClusters, ManualResponse: DefaultManualResponse}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	pools := map[string]config.Pool{}
	for _, p := range cfg.Pools {
		pools[p.Name] = p
		if p.Provider != config.ProviderSim {
			bad("pool %q: provider must be %q in a workload, not %q", p.Name, config.ProviderSim, p.Provider)
		}
	}
	if f.StaticClusters != nil {
		w.StaticClusters = *f.StaticClusters
		if w.StaticClusters < 1 || w.StaticClusters > 1000 {
			bad("static_clusters: must be 1 to 1000, not %d", w.StaticClusters)
		}
	}
	if f.ManualResponse != 0 {
		w.ManualResponse = f.ManualResponse.Std()
		if w.ManualResponse < 0 {
			bad("manual_response: must not be negative")
		}
	}
	if len(f.Pipelines) == 0 {
		bad("pipelines: a workload needs at least one")
	}
	names := map[string]bool{}
	instances := 0
	for i, fp := range f.Pipelines {
		where := fmt.Sprintf("pipeline %q", fp.Name)
		if fp.Name == "" {
			where = fmt.Sprintf("pipeline[%d]", i)
			bad("%s: name: required", where)
		} else if names[fp.Name] {
			bad("%s: name: given twice", where)
		}
		names[fp.Name] = true
		p := Pipeline{Name: fp.Name, Count: fp.Count, Every: fp.Every.Std()}
		for _, at := range fp.At {
			p.At = append(p.At, at.Std())
		}
		switch {
		case len(p.At) > 0 && (p.Count != 0 || p.Every != 0):
			bad("%s: give either at or count and every, not both", where)
		case len(p.At) > 0:
			p.Count = len(p.At)
			for k, at := range p.At {
				if at < 0 {
					bad("%s: at[%d]: must not be negative", where, k)
				}
			}
		case p.Count < 1:
			bad("%s: count: must be at least 1 (or give at)", where)
		case p.Every < 0 || p.Count > 1 && p.Every == 0:
			bad("%s: every: required and above 0 when count is above 1", where)
		}
		instances += p.Count
		if len(fp.Phases) == 0 {
			bad("%s: phases: at least one", where)
		}
		for k, fph := range fp.Phases {
			at := fmt.Sprintf("%s: phases[%d]", where, k)
			ph := Phase{Pool: fph.Pool, Jobs: fph.Jobs, Duration: fph.Duration.Std()}
			if ph.Jobs == 0 {
				ph.Jobs = 1
			}
			if _, ok := pools[ph.Pool]; !ok {
				bad("%s: pool: %q is not a pool of the workload", at, ph.Pool)
			}
			if ph.Jobs < 1 || ph.Jobs > maxPhaseJobs {
				bad("%s: jobs: must be 1 to %d, not %d", at, maxPhaseJobs, ph.Jobs)
			}
			if ph.Duration <= 0 {
				bad("%s: duration: required and above 0", at)
			}
			j, err := parseShare(fph.Jitter)
			if err != nil {
				bad("%s: jitter: %v", at, err)
			}
			ph.Jitter = j
			p.Phases = append(p.Phases, ph)
		}
		w.Pipelines = append(w.Pipelines, p)
	}
	if instances > maxInstances {
		bad("pipelines: %d instances in all, at most %d", instances, maxInstances)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, invalid(err)
	}
	return w, nil
}

// parseShare reads "50%" or "0.5" as 0.5; it must lie in [0, 1).
func parseShare(s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	var v float64
	var err error
	if num, ok := strings.CutSuffix(s, "%"); ok {
		_, err = fmt.Sscanf(num, "%g", &v)
		v /= 100
	} else {
		_, err = fmt.Sscanf(s, "%g", &v)
	}
	if err != nil || !(v >= 0 && v < 1) {
		return 0, fmt.Errorf("must be a share from 0 to below 1, as \"50%%\" or 0.5, not %q", s)
	}
	return v, nil
}

// poolsOnly is the file with every top-level key but pools blanked out,
// line for line, so that the configuration's parser reads the pools and
// its errors give the lines of the workload file.
func poolsOnly(data []byte) []byte {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode || doc.Content[0].Style&yaml.FlowStyle != 0 {
		return data
	}
	m := doc.Content[0]
	lines := strings.SplitAfter(string(data), "\n")
	starts := []int{}
	keep := map[int]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		starts = append(starts, m.Content[i].Line-1)
		keep[m.Content[i].Line-1] = m.Content[i].Value == "pools"
	}
	slices.Sort(starts)
	for k, from := range starts {
		to := len(lines)
		if k+1 < len(starts) {
			to = starts[k+1]
		}
		if keep[from] {
			continue
		}
		for l := from; l < to && l < len(lines); l++ {
			lines[l] = "\n"
		}
	}
	return []byte(strings.Join(lines, ""))
}

// Pool returns the pool of that name.
func (w *Workload) Pool(name string) (config.Pool, bool) {
	for _, p := range w.Pools {
		if p.Name == name {
			return p, true
		}
	}
	return config.Pool{}, false
}

// SetLoss sets every pool's loss_per_cluster_hour.
func (w *Workload) SetLoss(rate float64) error {
	if !(rate >= 0) || rate > 1000 {
		return fmt.Errorf("a loss rate per cluster-hour must be from 0 to 1000, not %v", rate)
	}
	for i := range w.Pools {
		sim := *w.Pools[i].Sim
		sim.LossPerClusterHour = rate
		w.Pools[i].Sim = &sim
	}
	return nil
}

type invalidError struct{ err error }

func invalid(err error) error          { return invalidError{err} }
func (e invalidError) Error() string   { return e.err.Error() }
func (e invalidError) Unwrap() []error { return []error{e.err, berth.ErrInvalid} }
