package simcheck

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider/sim"
)

// poolPlan is one generated pool: its policy, and how its clusters behave.
type poolPlan struct {
	pool     berth.Pool
	primary  sim.Model
	fallback *sim.Model
}

// arrival is one generated submission.
type arrival struct {
	at   time.Duration
	spec berth.JobSpec
	// again is set when the same submission is sent twice (a client
	// retrying), at again after the first.
	again time.Duration
	// cancelAfter, when set, cancels the job that long after it was
	// submitted.
	cancelAfter time.Duration
}

// workload is what one seed runs: pools and submissions over the first
// part of the run.
type workload struct {
	pools    []poolPlan
	arrivals []arrival
}

// genWorkload draws a workload of pools and jobs arriving over active.
func genWorkload(r *rand.Rand, active time.Duration) workload {
	var w workload
	npools := 1 + r.IntN(3)
	for i := range npools {
		slots := 1 + r.IntN(4)
		maxc := 1 + r.IntN(3)
		p := berth.Pool{
			Name:         string(rune('a' + i)),
			Provider:     "sim",
			Slots:        slots,
			MinClusters:  r.IntN(2) * r.IntN(2),
			MaxClusters:  maxc,
			IdleTimeout:  pick(r, 2*time.Minute, 10*time.Minute, 30*time.Minute),
			PricePerHour: float64(1 + r.IntN(12)),
		}
		p.MinClusters = min(p.MinClusters, p.MaxClusters)
		if r.IntN(3) == 0 {
			p.IdleTimeout, p.IdleAuto = 0, true
		}
		if r.IntN(2) == 0 {
			p.BootTimeout = pick(r, 8*time.Minute, 15*time.Minute)
		}
		if r.IntN(4) == 0 {
			p.MaxLifetime = pick(r, 90*time.Minute, 3*time.Hour)
		}
		pp := poolPlan{pool: p, primary: sim.Model{
			BootTime:      sim.Uniform(30*time.Second, pick(r, 3*time.Minute, 10*time.Minute)),
			TerminateTime: sim.Uniform(10*time.Second, 2*time.Minute),
			StepTime:      sim.Uniform(0, 2*time.Minute),
		}}
		if r.IntN(3) == 0 {
			// As EMR does: a lost cluster's steps fail before the cluster
			// is described as lost.
			pp.primary.LossReportLag = time.Duration(10+r.IntN(110)) * time.Second
		}
		if r.IntN(3) == 0 {
			p.Fallback = &berth.Fallback{AfterFailures: 1 + r.IntN(2), For: pick(r, 20*time.Minute, time.Hour)}
			fb := pp.primary
			fb.BootTime = sim.Uniform(time.Minute, 4*time.Minute)
			pp.fallback = &fb
			pp.pool = p
		}
		w.pools = append(w.pools, pp)
	}
	// Each pool gets as much work as keeps it busy for part of the
	// active time, so that every job can end in the quiet time after.
	var owner []int
	for i, pp := range w.pools {
		capacity := pp.pool.Slots * pp.pool.MaxClusters
		n := int(float64(capacity) * active.Hours() * (0.5 + 2*r.Float64()))
		for range max(n, 2) {
			owner = append(owner, i)
		}
	}
	if len(owner) > maxJobs {
		r.Shuffle(len(owner), func(a, b int) { owner[a], owner[b] = owner[b], owner[a] })
		owner = owner[:maxJobs]
	}
	for i, o := range owner {
		pp := w.pools[o]
		spec := berth.JobSpec{
			Pool:     pp.pool.Name,
			Name:     fmt.Sprintf("job%d", i),
			Priority: r.IntN(3) - 1,
			Labels:   map[string]string{"n": fmt.Sprint(i)},
		}
		for s := range 1 + r.IntN(3) {
			spec.Steps = append(spec.Steps, genStep(r, s))
		}
		spec.Retries = r.IntN(3)
		infra := 1 + r.IntN(5)
		spec.MaxInfraRetries = &infra
		if r.IntN(4) == 0 {
			spec.Timeout = berth.Duration(pick(r, 5*time.Minute, 20*time.Minute))
		}
		if r.IntN(3) == 0 {
			spec.Resume = berth.ResumeUnfinished
		}
		if r.IntN(3) == 0 {
			// A pipeline's task, as the Airflow provider labels it, so that
			// the scheduler learns and anticipates; sometimes with hints of
			// what follows.
			spec.Labels[berth.LabelDAG] = fmt.Sprintf("dag%d", r.IntN(2))
			spec.Labels[berth.LabelRun] = fmt.Sprintf("run%d", i/6)
			spec.Labels[berth.LabelTask] = fmt.Sprintf("task%d", r.IntN(4))
		}
		if r.IntN(4) == 0 {
			spec.Then = []berth.Hint{{Pool: w.pools[r.IntN(len(w.pools))].pool.Name, Jobs: 1 + r.IntN(8)}}
		}
		if r.IntN(4) == 0 {
			spec.Affinity = fmt.Sprintf("aff%d", r.IntN(3))
			spec.AffinityRequired = r.IntN(5) == 0
		}
		a := arrival{at: time.Duration(r.Int64N(int64(active))), spec: spec}
		if r.IntN(3) == 0 {
			spec.IdempotencyKey = fmt.Sprintf("key-%d", i)
			a.spec = spec
			if r.IntN(2) == 0 {
				a.again = time.Duration(r.Int64N(int64(10 * time.Minute)))
			}
		}
		if r.IntN(8) == 0 {
			a.cancelAfter = time.Duration(r.Int64N(int64(20 * time.Minute)))
		}
		w.arrivals = append(w.arrivals, a)
	}
	return w
}

// maxJobs bounds a seed's submissions.
const maxJobs = 120

// genStep draws one step: mostly a sleep, sometimes a failure.
func genStep(r *rand.Rand, i int) berth.Step {
	d := time.Duration(5+r.IntN(300)) * time.Second
	verb := "sleep"
	if r.IntN(6) == 0 {
		verb = "fail"
	}
	return berth.Step{Name: fmt.Sprintf("s%d", i), Args: []string{verb, d.String()}}
}

func pick[T any](r *rand.Rand, vs ...T) T { return vs[r.IntN(len(vs))] }
