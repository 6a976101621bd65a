package simulate

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/executor"
	"github.com/berthhq/berth/internal/provider/sim"
	"github.com/berthhq/berth/internal/server"
	"github.com/berthhq/berth/internal/service"
	"github.com/berthhq/berth/internal/store"
	"github.com/berthhq/berth/internal/store/memory"
	"github.com/berthhq/berth/internal/workload"
)

// Epoch is where every simulated run's clock starts.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// simPollInterval is how often the service looks at a simulated cluster
// unless the pool's sim block says otherwise: EMR's pace, not the sim
// provider's default of a second.
const simPollInterval = 30 * time.Second

// afterWork bounds how long the run goes on once every instance ended,
// for the idle clusters to be terminated.
const afterWork = 48 * time.Hour

// berthRun is the berth policy in progress: the real service in virtual
// time, fed one phase at a time as a workflow engine would.
type berthRun struct {
	ctx   context.Context
	w     *workload.Workload
	exec  *executor.Sim
	svc   *service.Service
	provs map[string]*sim.Provider
	ids   int

	instances []workload.Instance
	// phase is the phase each instance is at, left the jobs of that
	// phase still to succeed.
	phase, left []int
	ended       int
	// jobs maps a job id to its record in the trace.
	jobs  map[string]*Job
	index map[string]int // job id → instance
	trace *Trace
	ready map[string]time.Time // cluster id → when it was ready
	// lastEnd is when the last instance ended.
	lastEnd time.Time
	// eta holds, by job id, the start the service estimated a moment
	// after the job was submitted, for the jobs that were waiting then.
	eta map[string]time.Time
}

// runBerth runs the workload through the real service: its loop, policy
// and scheduler on the simulated executor, with a sim provider per pool
// whose n-th cluster meets the fate every policy's n-th cluster meets.
func runBerth(ctx context.Context, w *workload.Workload) (*Trace, error) {
	r := &berthRun{
		ctx: ctx, w: w,
		exec:  executor.NewSim(Epoch, w.Seed),
		provs: map[string]*sim.Provider{},
		jobs:  map[string]*Job{},
		index: map[string]int{},
		trace: &Trace{Policy: PolicyBerth},
		ready: map[string]time.Time{},
		eta:   map[string]time.Time{},
	}
	r.exec.Latency = func(rng *rand.Rand) time.Duration { return time.Duration(rng.IntN(400)) * time.Millisecond }
	var pools []service.Pool
	for _, p := range w.Pools {
		opts := server.SimOptions(p)
		if opts.PollInterval == 0 {
			opts.PollInterval = simPollInterval
		}
		opts.Seed, opts.Clock, opts.IDPrefix = w.Seed, r.exec, "sim-"+p.Name
		opts.LossAfter = func(n int) time.Duration { return w.LossAfter(p.Name, n) }
		prov, err := sim.New(opts)
		if err != nil {
			return nil, fmt.Errorf("pool %s: %w", p.Name, err)
		}
		r.provs[p.Name] = prov
		pools = append(pools, service.Pool{Pool: p.Domain(), Provider: prov})
	}
	st := &recorder{Store: memory.New().Open(), r: r}
	svc, err := service.New(service.Options{
		Store: st, Pools: pools, Executor: r.exec, Tick: time.Minute,
		Log: slog.New(slog.DiscardHandler),
		NewID: func(prefix string, _ time.Time) string {
			r.ids++
			return prefix + "-" + strconv.Itoa(r.ids)
		},
	})
	if err != nil {
		return nil, err
	}
	if err := svc.Start(ctx); err != nil {
		return nil, err
	}
	defer svc.Abandon()
	r.svc = svc
	r.instances = w.Instances()
	r.phase = make([]int, len(r.instances))
	r.left = make([]int, len(r.instances))
	for i, in := range r.instances {
		r.trace.Instances = append(r.trace.Instances, InstanceSpan{Pipeline: in.Pipeline, N: in.N, Arrival: in.Arrival, End: -1})
		r.exec.AfterFunc(in.Arrival, func() { r.startPhase(i) })
	}
	if err := r.run(); err != nil {
		return nil, err
	}
	r.finish()
	r.trace.ETAErrors = r.etaErrors()
	return r.trace, nil
}

// run moves virtual time forward until every instance ended and the
// clusters the service no longer needs are gone, an hour at a time.
func (r *berthRun) run() error {
	horizon := time.Time{}
	for {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		if _, ok := r.exec.Next(); !ok {
			return nil
		}
		r.exec.RunUntil(r.exec.Now().Add(time.Hour))
		if r.ended < len(r.instances) {
			continue
		}
		if horizon.IsZero() {
			horizon = r.lastEnd.Add(afterWork)
		}
		if r.idle() || r.exec.Now().After(horizon) {
			return nil
		}
	}
}

// idle reports whether every pool is down to the clusters it keeps.
func (r *berthRun) idle() bool {
	for _, p := range r.w.Pools {
		if r.provs[p.Name].Clusters().Live > p.MinClusters {
			return false
		}
	}
	return true
}

// startPhase submits the jobs of an instance's current phase, each
// saying what follows it, as the Airflow provider does.
func (r *berthRun) startPhase(i int) {
	in := r.instances[i]
	k := r.phase[i]
	ph := in.Phases[k]
	r.left[i] = len(ph.Durations)
	var then []berth.Hint
	if k+1 < len(in.Phases) {
		next := in.Phases[k+1]
		then = []berth.Hint{{Pool: next.Pool, Jobs: len(next.Durations)}}
	}
	now := r.exec.Now().Sub(Epoch)
	for j, d := range ph.Durations {
		spec := berth.JobSpec{
			Pool:  ph.Pool,
			Steps: []berth.Step{{Name: "run", Args: []string{"sleep", d.String()}}},
			Labels: map[string]string{
				berth.LabelDAG: in.Pipeline, berth.LabelTask: "phase-" + strconv.Itoa(k+1),
				berth.LabelRun: strconv.Itoa(in.N), berth.LabelMapIndex: strconv.Itoa(j),
			},
			Then: then,
		}
		job, _, err := r.svc.Submit(r.ctx, spec)
		if err != nil {
			// The service is in virtual time and in memory: nothing but a
			// bug refuses a submission the workload validated.
			panic(fmt.Sprintf("simulate: submission refused: %v", err))
		}
		rec := &Job{Key: workload.JobKey{Pipeline: in.Pipeline, Instance: in.N, Phase: k, Job: j}, Pool: ph.Pool, Submitted: now}
		r.jobs[job.ID] = rec
		r.index[job.ID] = i
		r.exec.AfterFunc(etaLook, func() { r.lookAtETA(job.ID) })
	}
}

// etaLook is how long after a submission its estimated start is read:
// after the pass that picked it up, as a user who asks at once would.
const etaLook = time.Second

// lookAtETA keeps the estimated start of a job that is still waiting.
func (r *berthRun) lookAtETA(id string) {
	j, err := r.svc.Job(r.ctx, id)
	if err == nil && j.State == berth.JobQueued && !j.ETA.IsZero() {
		r.eta[id] = j.ETA
	}
}

// etaErrors are how far each estimated start was from the real one.
func (r *berthRun) etaErrors() []time.Duration {
	var errs []time.Duration
	for id, at := range r.eta {
		rec := r.jobs[id]
		if len(rec.Attempts) == 0 {
			continue
		}
		d := rec.Attempts[0].Start - at.Sub(Epoch)
		errs = append(errs, max(d, -d))
	}
	slices.Sort(errs)
	return errs
}

// observe takes one committed job: its attempts into the trace, and on
// its success the next phase when its phase is done.
func (r *berthRun) observe(j *berth.Job) {
	rec := r.jobs[j.ID]
	if rec == nil || rec.Succeeded {
		return
	}
	rec.Attempts = rec.Attempts[:0]
	for _, a := range j.Attempts {
		at := Attempt{Cluster: a.ClusterID, Start: a.StartedAt.Sub(Epoch), End: -1, Lost: a.Reason == berth.ReasonClusterLost}
		if !a.EndedAt.IsZero() {
			at.End = a.EndedAt.Sub(Epoch)
		}
		rec.Attempts = append(rec.Attempts, at)
	}
	if j.State != berth.JobSucceeded {
		return
	}
	rec.Succeeded = true
	i := r.index[j.ID]
	r.left[i]--
	if r.left[i] > 0 {
		return
	}
	r.phase[i]++
	if r.phase[i] < len(r.instances[i].Phases) {
		// Not within the store's commit: the next phase is submitted as a
		// workflow engine would, after it heard of the end.
		r.exec.AfterFunc(0, func() { r.startPhase(i) })
		return
	}
	r.trace.Instances[i].End = j.EndedAt.Sub(Epoch)
	r.ended++
	r.lastEnd = j.EndedAt
}

// finish fills the trace's clusters from the providers, which bill them,
// and its jobs from the records.
func (r *berthRun) finish() {
	end := r.exec.Now()
	if r.ended == len(r.instances) {
		// Clusters the pools keep up (min_clusters) are billed until the
		// work ended, not for the time the run went on looking.
		end = r.lastEnd
	}
	for _, p := range r.w.Pools {
		for _, c := range r.provs[p.Name].Snapshot().Clusters {
			ended := c.EndedAt
			if ended.IsZero() || ended.After(end) {
				ended = end
				if ended.Before(c.CreatedAt) {
					ended = c.CreatedAt
				}
			}
			cl := Cluster{
				ID: c.ClusterID, Pool: p.Name, Slots: c.Slots,
				Requested: c.CreatedAt.Sub(Epoch), Ready: -1, Ended: ended.Sub(Epoch),
				Lost: c.State == berth.ClusterLost && c.Reason != sim.ReasonTerminated,
				Cost: sim.Bill(ended.Sub(c.CreatedAt), p.PricePerHour),
			}
			if at, ok := r.ready[c.ClusterID]; ok {
				cl.Ready = at.Sub(Epoch)
			}
			r.trace.Clusters = append(r.trace.Clusters, cl)
		}
	}
	r.trace.Jobs = r.trace.Jobs[:0]
	for _, rec := range r.jobs {
		r.trace.Jobs = append(r.trace.Jobs, *rec)
	}
	sortJobs(r.trace.Jobs)
	for i := range r.trace.Jobs {
		for k := range r.trace.Jobs[i].Attempts {
			if a := &r.trace.Jobs[i].Attempts[k]; a.End < 0 {
				a.End = end.Sub(Epoch)
			}
		}
	}
}

// recorder is the real store, with each committed batch shown to the run
// first: what is durable is what the run measures.
type recorder struct {
	store.Store
	r *berthRun
}

func (s *recorder) Commit(ctx context.Context, b store.Batch) error {
	if err := s.Store.Commit(ctx, b); err != nil {
		return err
	}
	for i := range b.Jobs {
		s.r.observe(&b.Jobs[i])
	}
	for _, c := range b.Clusters {
		if !c.ReadyAt.IsZero() {
			s.r.ready[c.ID] = c.ReadyAt
		}
	}
	return nil
}
