package lifecycle

import (
	"cmp"
	"slices"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/forecast"
	"github.com/berthhq/berth/internal/learn"
	"github.com/berthhq/berth/internal/scheduler"
)

// Why a queued job waits and when it should start, for the API (package
// service shows it on every queued job it reads):
//
//   - the reason is the scheduler's, from the last plan (scheduler.Wait),
//     with the clusters it started named;
//   - the start is estimated by package forecast from the live state, with
//     run and boot times learned (package learn) from the jobs and
//     clusters of this State as they end and come up, and from the
//     store's recent successes when it is loaded (Seed).
//
// The forecast of a pool covers the head of its queue: its first
// forecastJobs eligible jobs and its first forecastJobs deferred ones, so
// that a pass over a queue of a million costs what a thousand do. Jobs
// further back are given their pool's reason, and no estimate.
const forecastJobs = 1000

// SeedJobs is how many of the store's latest successes a State learns
// from when it is loaded.
const SeedJobs = 1000

// Outlook is what the last pass expects of the queued jobs.
type Outlook struct {
	// Jobs holds, by id, the wait of every queued job the last plan
	// explained or the forecast covers.
	Jobs map[string]berth.Wait
	// Rest holds, by pool, the wait of the eligible jobs that are too far
	// back in the queue for either: their reason, with no cluster or ETA.
	Rest map[string]berth.Wait
}

// learned is the model of run and boot times, made on first use with
// each pool's configured boot time.
func (s *State) learned() *learn.Model {
	if s.model == nil {
		s.model = learn.New()
		for _, name := range s.poolNames {
			if b := s.pools[name].BootTime; b > 0 {
				s.model.Configure(name, b)
			}
		}
	}
	return s.model
}

// Seed starts learning afresh from the jobs that ended (the store's latest
// successes; the rest are ignored) and the live clusters that came up, as
// at start or after a reload, when what was learned in memory may not be
// what the store has.
func (s *State) Seed(ended []berth.Job) {
	s.model = nil
	m := s.learned()
	jobs := make([]*berth.Job, 0, len(ended))
	for i := range ended {
		jobs = append(jobs, &ended[i])
	}
	// The latest last, as they came: the averages weigh them most.
	slices.SortFunc(jobs, func(a, b *berth.Job) int {
		if c := a.EndedAt.Compare(b.EndedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	for _, j := range jobs {
		m.ObserveJob(j)
	}
	s.foresee = newForesight()
	s.foresee.replay(jobs)
	s.expectVer++
	var up []*Cluster
	for _, c := range s.Clusters() {
		if !c.C.ReadyAt.IsZero() {
			up = append(up, c)
		}
	}
	slices.SortStableFunc(up, func(a, b *Cluster) int { return a.C.ReadyAt.Compare(b.C.ReadyAt) })
	for _, c := range up {
		m.ObserveBoot(c.C.Pool, c.C.ReadyAt.Sub(c.C.CreatedAt))
	}
}

// learnCommitted learns from what the pass that just committed ended and
// brought up: only what is durable, so a pass thrown away teaches nothing.
func (s *State) learnCommitted() {
	if len(s.fx.EndedJobs) > 0 || len(s.fx.Readied) > 0 {
		s.expectVer++
	}
	m := s.learned()
	for _, j := range s.fx.EndedJobs {
		m.ObserveJob(j)
	}
	for _, c := range s.fx.Readied {
		m.ObserveBoot(c.C.Pool, c.C.ReadyAt.Sub(c.C.CreatedAt))
	}
}

// noteWaits keeps the plan's waits for the forecast, naming the clusters
// the plan started: apply made them in the order of the plan's starts.
func (s *State) noteWaits(plan scheduler.Plan) {
	s.waits = plan.Waits
	for i := range s.waits {
		if w := &s.waits[i]; w.ClusterID == "" && w.Start >= 0 && w.Start < len(s.started) {
			w.ClusterID = s.started[w.Start]
		}
	}
	s.started = s.started[:0]
}

// scratch is what Forecast keeps from one call to the next, so that once
// its buffers have grown a forecast after every pass allocates little.
type scratch struct {
	run                  forecast.Forecaster
	head, deferred, jobs []*berth.Job
	queue                []forecast.Job
}

// Forecast fills out with the outlook of the queued jobs at now, after the
// pass at now committed. Whatever out held is cleared: a caller that
// publishes outlooks to readers alternates between two.
func (s *State) Forecast(now time.Time, out *Outlook) {
	if out.Jobs == nil {
		n := len(s.waits)
		for _, q := range s.queues {
			n += min(q.ready.Len(), forecastJobs) + min(q.deferred.Len(), forecastJobs)
		}
		out.Jobs, out.Rest = make(map[string]berth.Wait, n), map[string]berth.Wait{}
	}
	clear(out.Jobs)
	clear(out.Rest)
	m := s.learned()
	byPool := map[string][]*Cluster{}
	for _, c := range s.Clusters() {
		byPool[c.C.Pool] = append(byPool[c.C.Pool], c)
	}
	// The plan's reasons first; the forecast adds its estimates to them.
	for _, w := range s.waits {
		p := s.pools[w.Pool]
		if p == nil {
			continue
		}
		bw := berth.Wait{WaitReason: w.Reason, WaitCluster: w.ClusterID}
		if w.JobID == "" {
			bw.WaitCluster = ""
			s.finishWait(&bw, p, now)
			out.Rest[w.Pool] = bw
			continue
		}
		if j := s.jobs[w.JobID]; j == nil || j.State != berth.JobQueued {
			continue
		}
		s.finishWait(&bw, p, now)
		out.Jobs[w.JobID] = bw
	}
	for _, name := range s.poolNames {
		if q := s.queues[name]; q != nil && q.n > 0 {
			s.forecastPool(s.pools[name], q, byPool[name], m, now, out)
		}
	}
}

// forecastPool runs the forecast of one pool's queue head.
func (s *State) forecastPool(p *Pool, q *queue, clusters []*Cluster, m *learn.Model, now time.Time, out *Outlook) {
	name := p.Pool.Name
	boot := m.Boot(name)
	in := forecast.Input{
		Now: now, Slots: p.Pool.Slots, MaxClusters: p.Pool.MaxClusters, Boot: boot,
		Blocked: p.State.Blocked(), StartAfter: p.StartAfter,
	}
	// Oldest first, as the scheduler breaks ties between equally busy
	// clusters.
	slices.SortStableFunc(clusters, func(a, b *Cluster) int { return a.C.CreatedAt.Compare(b.C.CreatedAt) })
	for _, c := range clusters {
		fc := forecast.Cluster{ID: c.C.ID, State: c.C.State, Slots: c.C.Slots}
		switch c.C.State {
		case berth.ClusterStarting:
			fc.ReadyAt = c.C.CreatedAt.Add(boot)
		case berth.ClusterReady, berth.ClusterDraining:
			for _, j := range s.jobsOn(c.C.ID) {
				fc.Running = append(fc.Running, forecast.Running{StartedAt: j.CurrentAttempt().StartedAt, Expected: m.Run(j)})
			}
		default:
			continue
		}
		in.Clusters = append(in.Clusters, fc)
	}

	sc := &s.scratch
	head := sc.head[:0]
	required := 0
	q.ready.Ascend(func(e entry) bool {
		// The forecast stops at a dormant job: the pass reads those at
		// the head whole first (dormant.go), so one is reached only when
		// that read failed.
		j := e.job
		if len(head) == forecastJobs || j == nil {
			return false
		}
		head = append(head, j)
		if j.AffinityRequired {
			required++
		}
		return true
	})
	// Jobs behind the head are demand, as the scheduler counts them.
	in.Behind = (q.ready.Len() - len(head)) - (q.required - required)
	deferred := sc.deferred[:0]
	q.deferred.Ascend(func(j *berth.Job) bool {
		if len(deferred) == forecastJobs {
			return false
		}
		deferred = append(deferred, j)
		return true
	})
	slices.SortFunc(deferred, comparePlacement)
	jobs := mergeOrdered(sc.jobs[:0], head, deferred)
	in.Queue = sc.queue[:0]
	for _, j := range jobs {
		fj := forecast.Job{ID: j.ID, Expected: m.Run(j), NotBefore: j.NotBefore}
		if j.Affinity != "" {
			fj.Affinity, fj.Required = s.affinity[j.Affinity], j.AffinityRequired
		}
		in.Queue = append(in.Queue, fj)
	}
	// Kept for the next call, which overwrites them.
	sc.head, sc.deferred, sc.jobs, sc.queue = head, deferred, jobs, in.Queue

	for i, e := range sc.run.Run(in) {
		j := jobs[i]
		w, explained := out.Jobs[j.ID]
		switch {
		case j.NotBefore.After(now):
			w = berth.Wait{WaitReason: berth.WaitBackoff, WaitUntil: j.NotBefore}
		case explained:
		case j.AffinityRequired && j.Affinity != "":
			// Too far back for the scheduler's head, which is short of
			// jobs that cannot use a new cluster.
			w = berth.Wait{WaitReason: berth.WaitAffinityBusy, WaitCluster: s.affinity[j.Affinity]}
			if c := s.clusters[w.WaitCluster]; c != nil && c.C.State == berth.ClusterStarting {
				w.WaitReason = berth.WaitClusterStarting
			}
		default:
			w = out.Rest[name]
			if w.WaitReason == "" {
				w = berth.Wait{WaitReason: berth.WaitPending}
			}
		}
		if w.WaitReason == berth.WaitClusterStarting && w.WaitCluster == "" && e.Starting {
			w.WaitCluster = e.Cluster
		}
		s.finishWait(&w, p, now)
		w.ETA = e.Start
		out.Jobs[j.ID] = w
	}
}

// finishWait fills in the time a wait depends on. Its message is left to
// the reader (berth.Wait.Describe): most waits are never read.
func (s *State) finishWait(w *berth.Wait, p *Pool, now time.Time) {
	switch w.WaitReason {
	case berth.WaitClusterStarting:
		if c := s.clusters[w.WaitCluster]; c != nil && c.C.State == berth.ClusterStarting {
			boot := s.learned().Boot(p.Pool.Name)
			w.WaitUntil = forecast.ReadyAt(c.C.CreatedAt.Add(boot), now, boot)
		}
	case berth.WaitNoFreeSlot:
		if p.StartAfter.After(now) {
			w.WaitUntil = p.StartAfter
		}
	}
}

// comparePlacement is placementLess as a comparison.
func comparePlacement(a, b *berth.Job) int {
	switch {
	case placementLess(a, b):
		return -1
	case placementLess(b, a):
		return 1
	}
	return 0
}

// mergeOrdered appends to out the merge of two lists in placement order.
func mergeOrdered(out, a, b []*berth.Job) []*berth.Job {
	for len(a) > 0 && len(b) > 0 {
		if placementLess(b[0], a[0]) {
			out, b = append(out, b[0]), b[1:]
		} else {
			out, a = append(out, a[0]), a[1:]
		}
	}
	return append(append(out, a...), b...)
}
