package lifecycle

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider"
)

// TestPropertyInvariants drives the policy with random inputs — the
// reports, call results and commands the loop could hand it, in any order
// — and checks after every pass what must always hold.
func TestPropertyInvariants(t *testing.T) {
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 1))
		w := newWorld(t, berth.Pool{Name: "p", Slots: 1 + r.IntN(3), MinClusters: r.IntN(2), MaxClusters: 1 + r.IntN(3),
			IdleTimeout: time.Duration(r.IntN(3)) * time.Minute, BootTimeout: time.Duration(r.IntN(2)) * 10 * time.Minute,
			Fallback: &berth.Fallback{AfterFailures: 2, For: time.Hour}})
		var outstanding []Call
		for step := range 200 {
			switch k := r.IntN(10); {
			case k < 2:
				infra := r.IntN(3)
				spec := berth.JobSpec{Retries: r.IntN(3), MaxInfraRetries: &infra, Priority: r.IntN(2)}
				for i := range 1 + r.IntN(3) {
					spec.Steps = append(spec.Steps, berth.Step{Name: fmt.Sprint(i), Args: []string{"x"}})
				}
				if r.IntN(3) == 0 {
					spec.Resume = berth.ResumeUnfinished
				}
				if r.IntN(4) == 0 {
					spec.Timeout = berth.Duration(time.Duration(1+r.IntN(5)) * time.Minute)
				}
				w.submit(spec)
			case k < 5 && len(outstanding) > 0:
				i := r.IntN(len(outstanding))
				c := outstanding[i]
				outstanding = append(outstanding[:i], outstanding[i+1:]...)
				w.s.ApplyResult(randomResult(r, c))
			case k < 8:
				cs := w.s.Clusters()
				if len(cs) > 0 {
					w.s.ApplyReport(randomReport(r, w.s, cs[r.IntN(len(cs))]))
				}
			case k < 9:
				var ids []string
				w.s.Jobs(func(j *berth.Job) { ids = append(ids, j.ID) })
				if len(ids) > 0 {
					w.s.CancelRequested(ids[r.IntN(len(ids))])
				}
				if cs := w.s.Clusters(); len(cs) > 0 && r.IntN(3) == 0 {
					_ = w.s.Drain(cs[r.IntN(len(cs))].C.ID)
				}
			default:
				w.at(time.Duration(r.IntN(120)) * time.Second)
			}
			fx := w.pass()
			outstanding = append(outstanding, fx.Calls...)
			if err := check(w, fx); err != nil {
				t.Fatalf("seed %d, step %d: %v", seed, step, err)
			}
		}
	}
}

func randomResult(r *rand.Rand, c Call) Result {
	res := Result{Call: c}
	switch r.IntN(6) {
	case 0:
		res.Err = errors.New("connection reset")
	case 1:
		res.Err = &provider.Error{Class: provider.Class([]string{"capacity", "permanent"}[r.IntN(2)]), Message: "refused"}
	case 2:
		res.Err = fmt.Errorf("%w: slow down", berth.ErrThrottled)
	default:
		if c.Kind == CallCreate || c.Kind == CallSubmit || c.Kind == CallFind && r.IntN(2) == 0 {
			res.ID = fmt.Sprintf("prov-%s-%d", c.Name+c.ClusterID, r.IntN(1000))
		}
	}
	return res
}

// randomReport says something plausible, or not, about a cluster and the
// steps of the attempts on it.
func randomReport(r *rand.Rand, s *State, c *Cluster) Report {
	states := []berth.ClusterState{berth.ClusterStarting, berth.ClusterReady, berth.ClusterReady, berth.ClusterReady, berth.ClusterTerminating, berth.ClusterTerminated, berth.ClusterLost}
	rep := Report{ClusterID: c.C.ID, Cluster: provider.Cluster{State: states[r.IntN(len(states))]}, Listed: r.IntN(5) > 0}
	if rep.Cluster.State == berth.ClusterLost {
		rep.Cluster.Class = provider.Class([]string{"", "capacity", "permanent"}[r.IntN(3)])
	}
	stepStates := []berth.StepState{berth.StepPending, berth.StepRunning, berth.StepSucceeded, berth.StepFailed, berth.StepCancelled}
	s.Jobs(func(j *berth.Job) {
		a := j.CurrentAttempt()
		if a == nil || a.ClusterID != c.C.ID || r.IntN(3) == 0 {
			return
		}
		cur := a.Steps[len(a.Steps)-1]
		rep.Steps = append(rep.Steps, provider.Step{ID: "s-" + j.ID, Name: berth.StepName(j.ID, a.N, cur.Index), State: stepStates[r.IntN(len(stepStates))]})
	})
	return rep
}

// check is what must hold after any pass.
func check(w *world, fx Effects) error {
	if len(fx.Illegal) > 0 {
		return fmt.Errorf("illegal moves %v: %v", fx.Illegal, fx.Logs)
	}
	running := map[string]int{}
	var err error
	w.s.Jobs(func(j *berth.Job) {
		n := 0
		for i, a := range j.Attempts {
			if a.State == berth.AttemptRunning {
				n++
				if i != len(j.Attempts)-1 {
					err = fmt.Errorf("job %s: attempt %d runs but is not the last", j.ID, a.N)
				}
			}
		}
		cur := j.CurrentAttempt()
		switch {
		case n > 1:
			err = fmt.Errorf("job %s has %d running attempts", j.ID, n)
		case (cur != nil) != (j.State == berth.JobRunning):
			err = fmt.Errorf("job %s is %s with a running attempt: %v", j.ID, j.State, cur != nil)
		case cur != nil:
			running[cur.ClusterID]++
			if w.s.Cluster(cur.ClusterID) == nil {
				err = fmt.Errorf("job %s runs on cluster %s, which is gone", j.ID, cur.ClusterID)
			}
		}
	})
	if err != nil {
		return err
	}
	// What this pass placed went onto ready clusters.
	for _, e := range fx.Events {
		if e.Kind != "placed" {
			continue
		}
		if c := w.s.Cluster(e.ClusterID); c != nil && c.C.State != berth.ClusterReady {
			return fmt.Errorf("job %s placed on cluster %s, which is %s", e.JobID, c.C.ID, c.C.State)
		}
	}
	for _, c := range w.s.Clusters() {
		if running[c.C.ID] > c.C.Slots {
			return fmt.Errorf("cluster %s runs %d jobs on %d slots", c.C.ID, running[c.C.ID], c.C.Slots)
		}
	}
	for _, j := range fx.EndedJobs {
		if !j.State.Terminal() {
			return fmt.Errorf("ended job %s is %s", j.ID, j.State)
		}
		user, infra := 0, 0
		for _, a := range j.Attempts {
			if a.State == berth.AttemptRunning {
				return fmt.Errorf("ended job %s has a running attempt", j.ID)
			}
			switch a.Reason {
			case berth.ReasonStepFailed, berth.ReasonTimeout:
				user++
			case berth.ReasonClusterLost, berth.ReasonProviderError:
				infra++
			}
		}
		if user != j.UserFailures || infra != j.InfraFailures {
			return fmt.Errorf("ended job %s counts user %d infra %d; its attempts say %d and %d", j.ID, j.UserFailures, j.InfraFailures, user, infra)
		}
		for i, st := range j.Steps {
			if !st.State.Terminal() {
				return fmt.Errorf("ended job %s: step %d is %s", j.ID, i, st.State)
			}
		}
	}
	return nil
}
