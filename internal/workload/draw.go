package workload

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"time"
)

// Instance is one arrival of a pipeline, with every job's drawn duration.
type Instance struct {
	Pipeline string
	// N counts the pipeline's instances from 0.
	N       int
	Arrival time.Duration
	Phases  []InstancePhase
}

// InstancePhase is one phase of an instance: its pool and the duration
// of each of its jobs.
type InstancePhase struct {
	Pool      string
	Durations []time.Duration
}

// JobKey names one job of a run, the same in every policy.
type JobKey struct {
	Pipeline string
	Instance int
	Phase    int
	Job      int
}

// Instances are the workload's arrivals in time order (ties in file
// order), each job's duration drawn from the seed; or, when the workload
// replays a history, its Replay in time order.
func (w *Workload) Instances() []Instance {
	if w.Replay != nil {
		out := slices.Clone(w.Replay)
		sort.SliceStable(out, func(a, b int) bool { return out[a].Arrival < out[b].Arrival })
		return out
	}
	var out []Instance
	for _, p := range w.Pipelines {
		for n := range p.Count {
			in := Instance{Pipeline: p.Name, N: n, Arrival: time.Duration(n) * p.Every}
			if len(p.At) > 0 {
				in.Arrival = p.At[n]
			}
			for k, ph := range p.Phases {
				ip := InstancePhase{Pool: ph.Pool, Durations: make([]time.Duration, ph.Jobs)}
				for j := range ph.Jobs {
					ip.Durations[j] = w.duration(JobKey{p.Name, n, k, j}, ph)
				}
				in.Phases = append(in.Phases, ip)
			}
			out = append(out, in)
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Arrival < out[b].Arrival })
	return out
}

// duration draws one job's run time: the phase's, spread by its jitter,
// whole milliseconds, at least one.
func (w *Workload) duration(k JobKey, ph Phase) time.Duration {
	d := float64(ph.Duration)
	if ph.Jitter > 0 {
		r := w.rand("duration", k.Pipeline, uint64(k.Instance), uint64(k.Phase), uint64(k.Job))
		d *= 1 + ph.Jitter*(2*r.Float64()-1)
	}
	return max(time.Duration(d).Round(time.Millisecond), time.Millisecond)
}

// LossAfter is how long the n-th cluster a policy creates in the pool
// (from 0) lives before its spot capacity is reclaimed, from its creation;
// 0 when it is never lost. It is exponential with the pool's
// loss_per_cluster_hour, and the same for every policy.
func (w *Workload) LossAfter(pool string, n int) time.Duration {
	p, ok := w.Pool(pool)
	if !ok || p.Sim == nil || p.Sim.LossPerClusterHour <= 0 {
		return 0
	}
	r := w.rand("loss", pool, uint64(n))
	h := r.ExpFloat64() / p.Sim.LossPerClusterHour
	if h*float64(time.Hour) >= math.MaxInt64/2 {
		return 0
	}
	return max(time.Duration(h*float64(time.Hour)), time.Millisecond)
}

// rand is a source for one named draw, seeded by the workload's seed and
// the draw's name: one draw does not move another.
func (w *Workload) rand(kind, name string, ns ...uint64) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(name))
	for _, n := range ns {
		var b [8]byte
		for i := range b {
			b[i] = byte(n >> (8 * i))
		}
		h.Write(b[:])
	}
	return rand.New(rand.NewPCG(w.Seed, h.Sum64()))
}
