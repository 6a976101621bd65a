package workload

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/config"
	"github.com/berthhq/berth/internal/store"
)

// ReplaySeed is the seed of a workload read from a store. A replay draws
// only the clusters' fates; a fixed seed makes two runs over the same
// history lose the same clusters. The caller may set another.
const ReplaySeed = 1

// What a replayed pool's clusters take when none of the pool's clusters
// showed it: EMR's usual time to boot a cluster, and to terminate one.
const (
	ReplayBootTimeEMR   = 8 * time.Minute
	ReplayTerminateTime = time.Minute
)

// Summary says what FromStore read and what it left out, for the caller
// to show beside the replay's results.
type Summary struct {
	// From and To are the window read: To is now; From is now − since,
	// or zero when since is 0 (the whole store).
	From, To time.Time
	// Start is the time the replay's zero stands for: its first
	// instance's arrival.
	Start time.Time
	// Jobs counts the jobs created in the window, Replayed those the
	// workload's instances run.
	Jobs, Replayed int
	// Instances counts the workload's instances.
	Instances int
	// NotRun counts the jobs left out because none of their attempts had
	// ended: they never ran, or were still running at To.
	NotRun int
	// Superseded counts the jobs left out because another try of the same
	// task instance (dag_id, run_id, task_id, map_index), the last that
	// ran, stands for them.
	Superseded int
	// Pools tells what was observed of each pool's clusters, in the
	// configuration's order.
	Pools []PoolHistory
}

// PoolHistory is what a pool's clusters showed in the window.
type PoolHistory struct {
	Name string
	// Clusters counts those that lived in the window, Lost those of them
	// lost in it; ClusterHours is their time in it.
	Clusters, Lost int
	ClusterHours   float64
	// Boots and Terminations count the clusters whose time to boot and to
	// terminate was observed; where they are 0, the replay's pool takes
	// its configured or default times.
	Boots, Terminations int
}

// FromStore reads back the jobs a Berth service ran in the since before
// now (0: all of them) and the clusters it ran them on, as a workload that
// replays them against the pools of cfg, turned into sim pools.
//
// Jobs the Airflow provider submitted (labels dag_id and run_id) form one
// instance per DAG run, of a pipeline named after the DAG; its phases are
// its tasks (task_id, and pool, should a task use two) in the order their
// first job was created, and a phase's jobs are the task's map indexes,
// each run by the last of its tries that ran. Every other job is an
// instance of its own, one phase of one job, of the pipeline "pool/NAME".
// An instance arrives when its first job was created. The replay runs a
// phase once the one before it has ended, as a workload does: a DAG whose
// tasks ran side by side, or whose branches joined, is replayed as a
// chain, which only approximates it.
//
// A job runs as long as its last attempt that succeeded ran (with the
// steps an unfinished resume skipped, as long as they last took), or,
// when none succeeded, as long as its longest attempt; a job none of whose
// attempts ended is left out and counted.
//
// Each pool keeps its slots, cluster bounds, timeouts and price; its sim
// spec is what its clusters showed in the window: the median time from
// creation to ready, the median time from terminating to terminated, and
// the clusters lost per cluster-hour. A pool whose clusters did not show
// one of them keeps what its configuration gives a sim pool (a local
// pool's boot_time), or else ReplayBootTimeEMR, ReplayTerminateTime and no
// loss. A fallback's spec is drawn from the clusters built from it.
//
// Jobs or clusters of pools cfg does not have are an error naming them:
// their work could not be replayed, and cfg is likely not the
// configuration they ran under.
func FromStore(ctx context.Context, st store.Store, cfg *config.Config, since time.Duration, now time.Time) (*Workload, *Summary, error) {
	sum := &Summary{To: now}
	if since > 0 {
		sum.From = now.Add(-since)
	}
	jobs, err := readJobs(ctx, st, sum.From, now)
	if err != nil {
		return nil, nil, err
	}
	sum.Jobs = len(jobs)
	clusters, err := st.ListClusters(ctx, store.ClusterFilter{})
	if err != nil {
		return nil, nil, fmt.Errorf("list clusters: %w", err)
	}
	clusters = slices.DeleteFunc(clusters, func(c berth.Cluster) bool { return !livedIn(c, sum.From, now) })
	if err := checkPools(cfg, jobs, clusters); err != nil {
		return nil, nil, err
	}
	pools, err := replayPools(ctx, st, cfg, clusters, sum)
	if err != nil {
		return nil, nil, err
	}
	w := &Workload{
		Seed:           ReplaySeed,
		Pools:          pools,
		StaticClusters: DefaultStaticClusters,
		ManualResponse: DefaultManualResponse,
		Replay:         replayInstances(jobs, sum),
	}
	if len(w.Replay) == 0 {
		if sum.Jobs == 0 {
			return nil, sum, berth.Errorf(berth.ErrNotFound, "the store has no job created in the window")
		}
		return nil, sum, berth.Errorf(berth.ErrNotFound, "none of the %d jobs created in the window ran", sum.Jobs)
	}
	return w, sum, nil
}

// ranJob is what a replay needs of one job.
type ranJob struct {
	pool                     string
	dag, run, task, mapIndex string
	created                  time.Time
	// ran is false when none of the job's attempts ended; duration is
	// then 0.
	ran      bool
	duration time.Duration
}

// readJobs returns the jobs created from from to now, oldest first. The
// store lists jobs newest first, in submission order, which is the order
// of their creation: the first job created before from ends the reading.
func readJobs(ctx context.Context, st store.Store, from, now time.Time) ([]ranJob, error) {
	var out []ranJob
	f := store.JobFilter{Limit: store.MaxLimit}
	for {
		page, next, err := st.ListJobs(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("list jobs: %w", err)
		}
		for _, j := range page {
			if j.CreatedAt.Before(from) {
				next = ""
				break
			}
			if j.CreatedAt.After(now) {
				continue
			}
			d, ran := runTime(j)
			out = append(out, ranJob{
				pool: j.Pool, dag: j.Labels[berth.LabelDAG], run: j.Labels[berth.LabelRun],
				task: j.Labels[berth.LabelTask], mapIndex: j.Labels[berth.LabelMapIndex],
				created: j.CreatedAt, ran: ran, duration: d,
			})
		}
		if next == "" {
			break
		}
		f.Cursor = next
	}
	slices.Reverse(out)
	return out, nil
}

// runTime is how long a job ran, in whole milliseconds and at least one,
// and false when none of its attempts ended.
func runTime(j berth.Job) (time.Duration, bool) {
	var longest time.Duration
	ran := false
	for i, a := range slices.Backward(j.Attempts) {
		if a.StartedAt.IsZero() || a.EndedAt.IsZero() {
			continue
		}
		d := a.EndedAt.Sub(a.StartedAt)
		if a.State == berth.AttemptSucceeded {
			return roundRun(d + skippedSteps(j.Attempts[:i], a.FirstStep)), true
		}
		ran, longest = true, max(longest, d)
	}
	if !ran {
		return 0, false
	}
	return roundRun(longest), true
}

func roundRun(d time.Duration) time.Duration {
	return max(d.Round(time.Millisecond), time.Millisecond)
}

// skippedSteps is how long the steps before first took when they last
// succeeded in the earlier attempts: an attempt that resumed at step first
// ran only the rest of the job, which a replay runs whole.
func skippedSteps(earlier []berth.Attempt, first int) time.Duration {
	var total time.Duration
	for step := range first {
	attempts:
		for _, a := range slices.Backward(earlier) {
			for _, s := range a.Steps {
				if s.Index == step && s.State == berth.StepSucceeded && !s.StartedAt.IsZero() && !s.EndedAt.IsZero() {
					total += s.EndedAt.Sub(s.StartedAt)
					break attempts
				}
			}
		}
	}
	return total
}

// replayInstances groups jobs, oldest first, into instances; arrivals are
// from the first instance's, which it records in sum as its Start.
func replayInstances(jobs []ranJob, sum *Summary) []Instance {
	type phaseKey struct{ task, pool string }
	type phase struct {
		pool string
		// tries holds each map index's jobs, oldest first; order the map
		// indexes in the order of their first job.
		tries map[string][]ranJob
		order []string
	}
	type run struct {
		pipeline string
		arrival  time.Time
		phases   []*phase
		byKey    map[phaseKey]*phase
	}
	var runs []*run
	byDAGRun := map[[2]string]*run{}
	for _, j := range jobs {
		dagRun := [2]string{j.dag, j.run}
		labelled := j.dag != "" && j.run != ""
		var r *run
		if labelled {
			r = byDAGRun[dagRun]
		}
		if r == nil {
			r = &run{pipeline: j.dag, arrival: j.created, byKey: map[phaseKey]*phase{}}
			if labelled {
				byDAGRun[dagRun] = r
			} else {
				r.pipeline = "pool/" + j.pool
			}
			runs = append(runs, r)
		}
		if j.created.Before(r.arrival) {
			r.arrival = j.created
		}
		k := phaseKey{j.task, j.pool}
		ph := r.byKey[k]
		if ph == nil {
			ph = &phase{pool: j.pool, tries: map[string][]ranJob{}}
			r.byKey[k] = ph
			r.phases = append(r.phases, ph)
		}
		if _, ok := ph.tries[j.mapIndex]; !ok {
			ph.order = append(ph.order, j.mapIndex)
		}
		ph.tries[j.mapIndex] = append(ph.tries[j.mapIndex], j)
	}
	// Submission order may put a job created a moment earlier after
	// another: arrivals are by creation.
	slices.SortStableFunc(runs, func(a, b *run) int { return a.arrival.Compare(b.arrival) })

	var out []Instance
	next := map[string]int{}
	for _, r := range runs {
		in := Instance{Pipeline: r.pipeline}
		for _, ph := range r.phases {
			ip := InstancePhase{Pool: ph.pool}
			for _, idx := range ph.order {
				tries := ph.tries[idx]
				k := len(tries) - 1
				for k >= 0 && !tries[k].ran {
					k--
				}
				if k < 0 {
					sum.NotRun += len(tries)
					continue
				}
				// The last try that ran stands for the task instance.
				sum.Replayed++
				sum.Superseded += len(tries) - 1
				ip.Durations = append(ip.Durations, tries[k].duration)
			}
			if len(ip.Durations) > 0 {
				in.Phases = append(in.Phases, ip)
			}
		}
		if len(in.Phases) == 0 {
			continue
		}
		if len(out) == 0 {
			sum.Start = r.arrival
		}
		in.N = next[in.Pipeline]
		next[in.Pipeline]++
		in.Arrival = r.arrival.Sub(sum.Start)
		out = append(out, in)
	}
	sum.Instances = len(out)
	return out
}

// livedIn reports whether a cluster existed at some time from from to now.
func livedIn(c berth.Cluster, from, now time.Time) bool {
	return !c.CreatedAt.After(now) && (c.EndedAt.IsZero() || !c.EndedAt.Before(from))
}

// checkPools names the pools of jobs and clusters that cfg does not have.
func checkPools(cfg *config.Config, jobs []ranJob, clusters []berth.Cluster) error {
	unknown := map[string]bool{}
	for _, j := range jobs {
		if _, ok := cfg.Pool(j.pool); !ok {
			unknown[j.pool] = true
		}
	}
	for _, c := range clusters {
		if _, ok := cfg.Pool(c.Pool); !ok {
			unknown[c.Pool] = true
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	names := slices.Sorted(maps.Keys(unknown))
	return invalid(fmt.Errorf("the store ran pools the configuration does not have: %s; give the configuration they ran under", strings.Join(names, ", ")))
}

// clusterStats is what some clusters of a pool showed in a window.
type clusterStats struct {
	clusters, lost    int
	hours             float64
	boots, terminates []time.Duration
}

// add counts c, which lived in the window from from to now; terminating is
// when it began to terminate, zero when that is not known.
func (s *clusterStats) add(c berth.Cluster, from, now, terminating time.Time) {
	s.clusters++
	start, end := c.CreatedAt, c.EndedAt
	if start.Before(from) {
		start = from
	}
	if end.IsZero() || end.After(now) {
		end = now
	}
	if end.After(start) {
		s.hours += end.Sub(start).Hours()
	}
	ended := !c.EndedAt.IsZero() && !c.EndedAt.After(now)
	if c.State == berth.ClusterLost && ended {
		s.lost++
	}
	if !c.ReadyAt.IsZero() && !c.ReadyAt.Before(c.CreatedAt) {
		s.boots = append(s.boots, c.ReadyAt.Sub(c.CreatedAt))
	}
	if c.State == berth.ClusterTerminated && ended && !terminating.IsZero() && !c.EndedAt.Before(terminating) {
		s.terminates = append(s.terminates, c.EndedAt.Sub(terminating))
	}
}

// spec is base with what the clusters showed in place of what it gives.
func (s *clusterStats) spec(base config.SimSpec) *config.SimSpec {
	if len(s.boots) > 0 {
		base.BootTime = config.Duration(median(s.boots))
	}
	if len(s.terminates) > 0 {
		base.TerminateTime = config.Duration(median(s.terminates))
	}
	if s.hours > 0 {
		base.LossPerClusterHour = float64(s.lost) / s.hours
	}
	return &base
}

// median is the middle one of ds, the mean of the two middle ones when
// they are even in number; ds is not empty.
func median(ds []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return s[n/2-1] + (s[n/2]-s[n/2-1])/2
}

// replayPools turns the pools of cfg into sim pools that behave as their
// clusters, those that lived in the window, did; it records what they
// showed in sum.
func replayPools(ctx context.Context, st store.Store, cfg *config.Config, clusters []berth.Cluster, sum *Summary) ([]config.Pool, error) {
	var pools []config.Pool
	for _, p := range cfg.Pools {
		var primary, fallback clusterStats
		for _, c := range clusters {
			if c.Pool != p.Name {
				continue
			}
			terminating, err := terminatingAt(ctx, st, c)
			if err != nil {
				return nil, err
			}
			if c.Fallback {
				fallback.add(c, sum.From, sum.To, terminating)
			} else {
				primary.add(c, sum.From, sum.To, terminating)
			}
		}
		sum.Pools = append(sum.Pools, PoolHistory{
			Name:         p.Name,
			Clusters:     primary.clusters + fallback.clusters,
			Lost:         primary.lost + fallback.lost,
			ClusterHours: primary.hours + fallback.hours,
			Boots:        len(primary.boots) + len(fallback.boots),
			Terminations: len(primary.terminates) + len(fallback.terminates),
		})
		sp := config.Pool{
			Name:         p.Name,
			Provider:     config.ProviderSim,
			Slots:        p.Slots,
			MinClusters:  p.MinClusters,
			MaxClusters:  p.MaxClusters,
			IdleTimeout:  p.IdleTimeout,
			BootTimeout:  p.BootTimeout,
			MaxLifetime:  p.MaxLifetime,
			PricePerHour: p.PricePerHour,
			Sim:          primary.spec(configuredSim(p)),
		}
		if f := p.Fallback; f != nil {
			// A fallback no cluster was built from boots and terminates as
			// the pool does, and, being on demand, is never lost.
			base := config.SimSpec{BootTime: sp.Sim.BootTime, TerminateTime: sp.Sim.TerminateTime}
			if fb := p.FallbackSim(); fb != nil {
				base = *fb
			}
			sp.Fallback = &config.Fallback{AfterFailures: f.AfterFailures, For: f.For, Sim: fallback.spec(base)}
		}
		pools = append(pools, sp)
	}
	if err := validatePools(pools); err != nil {
		return nil, fmt.Errorf("replay the configuration's pools: %w", err)
	}
	return pools, nil
}

// configuredSim is the sim spec a pool's configuration gives, for what its
// clusters did not show.
func configuredSim(p config.Pool) config.SimSpec {
	switch {
	case p.Sim != nil:
		return *p.Sim
	case p.Local != nil:
		return config.SimSpec{BootTime: p.Local.BootTime, TerminateTime: config.Duration(ReplayTerminateTime)}
	}
	return config.SimSpec{BootTime: config.Duration(ReplayBootTimeEMR), TerminateTime: config.Duration(ReplayTerminateTime)}
}

// terminatingAt is when a terminated cluster began to terminate, from its
// events; zero for a cluster that did not end terminated or whose events
// do not say.
func terminatingAt(ctx context.Context, st store.Store, c berth.Cluster) (time.Time, error) {
	if c.State != berth.ClusterTerminated {
		return time.Time{}, nil
	}
	evs, err := st.ListEvents(ctx, store.EventFilter{ClusterID: c.ID})
	if err != nil {
		return time.Time{}, fmt.Errorf("list the events of cluster %s: %w", c.ID, err)
	}
	for _, e := range slices.Backward(evs) {
		if e.Kind == string(berth.ClusterTerminating) {
			return e.At, nil
		}
	}
	return time.Time{}, nil
}

// validatePools checks pools as a configuration's; its errors name the
// pool and field and wrap berth.ErrInvalid.
func validatePools(pools []config.Pool) error {
	c := config.Config{Listen: config.DefaultListen, Store: config.DefaultStore, LogLevel: config.DefaultLogLevel, Pools: pools}
	if err := c.Validate(); err != nil {
		return invalid(err)
	}
	return nil
}
