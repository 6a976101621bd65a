package simcheck

import (
	"errors"
	"slices"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider/sim"
	"github.com/berthhq/berth/internal/store"
)

// plan schedules the workload's submissions, the operators' commands and
// the faults, all within the active part of the run.
func (r *run) plan() {
	for _, a := range r.w.arrivals {
		r.exec.AfterFunc(a.at, func() { r.submit(a, false) })
		if a.again > 0 {
			r.exec.AfterFunc(a.at+a.again, func() { r.submit(a, true) })
		}
	}
	r.every(45*time.Minute, "operator", r.operate)
	r.every(40*time.Minute, "kill", r.kill)
	r.every(90*time.Minute, "crash", r.crash)
	r.every(60*time.Minute, "api faults", r.apiFaults)
	r.every(80*time.Minute, "store faults", r.storeFaults)
	r.every(70*time.Minute, "capacity shortage", r.shortage)
	r.every(150*time.Minute, "broken spec", r.breakSpec)
	r.exec.AfterFunc(r.active, func() {
		r.faulty = false
		r.st.failP = 0
		for _, name := range r.poolNames() {
			_ = r.provs[name].SetFaults(sim.Faults{})
			r.mend(name)
		}
		if r.down {
			r.restart()
		}
		r.logf("faults stop; quiet until the end")
	})
}

// every runs fn at times drawn as a Poisson process with the mean gap
// given, until the active time ends.
func (r *run) every(mean time.Duration, what string, fn func()) {
	var next func()
	at := time.Duration(0)
	next = func() {
		at += time.Duration(r.rng.ExpFloat64() * float64(mean))
		if at >= r.active {
			return
		}
		r.exec.AfterFunc(at-r.exec.Now().Sub(epoch), func() {
			r.res.Faults[what]++
			fn()
			next()
		})
	}
	next()
}

func (r *run) poolNames() []string {
	names := make([]string, 0, len(r.provs))
	for n := range r.provs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// submit sends one submission, as a client that retries until it is
// answered.
func (r *run) submit(a arrival, again bool) {
	if r.down {
		r.exec.AfterFunc(time.Minute, func() { r.submit(a, again) })
		return
	}
	j, created, err := r.svc.Submit(r.ctx, a.spec)
	switch {
	case errors.Is(err, berth.ErrUnavailable):
		r.exec.AfterFunc(30*time.Second, func() { r.submit(a, again) })
		return
	case err != nil:
		r.failf("submission of %s refused: %v", a.spec.Name, err)
		return
	}
	r.logf("submit %s -> %s created=%v", a.spec.Name, j.ID, created)
	if k := a.spec.IdempotencyKey; k != "" {
		if id, ok := r.check.keys[k]; ok && id != j.ID {
			r.failf("idempotency key %s gave job %s, earlier %s", k, j.ID, id)
		}
		r.check.keys[k] = j.ID
	} else if !created {
		r.failf("submission %s without a key was not created", a.spec.Name)
	}
	if created {
		if _, dup := r.check.acked[j.ID]; dup {
			r.failf("job %s created twice", j.ID)
		}
		r.check.acked[j.ID] = a.spec
		r.res.Jobs++
	}
	if a.cancelAfter > 0 && !again {
		r.exec.AfterFunc(a.cancelAfter, func() { r.cancel(j.ID) })
	}
}

func (r *run) cancel(id string) {
	if r.down {
		r.exec.AfterFunc(time.Minute, func() { r.cancel(id) })
		return
	}
	_, err := r.svc.RequestCancel(r.ctx, id)
	r.logf("cancel %s: %v", id, err)
}

// operate drains or terminates a live cluster, as an operator would.
func (r *run) operate() {
	if r.down {
		return
	}
	cs, err := r.st.ListClusters(r.ctx, store.ClusterFilter{})
	if err != nil {
		return
	}
	cs = slices.DeleteFunc(cs, func(c berth.Cluster) bool { return c.State.Terminal() })
	if len(cs) == 0 {
		return
	}
	c := cs[r.rng.IntN(len(cs))]
	if r.rng.IntN(2) == 0 {
		r.logf("operator drains %s", c.ID)
		r.svc.RequestDrain(c.ID)
	} else {
		r.logf("operator terminates %s", c.ID)
		r.svc.RequestTerminate(c.ID)
	}
}

// kill reclaims a live cluster's capacity at its provider.
func (r *run) kill() {
	type target struct{ pool, id, berthID string }
	var live []target
	for _, name := range r.poolNames() {
		for _, c := range r.provs[name].Clusters().Clusters {
			if !c.State.Terminal() {
				live = append(live, target{name, c.ID, c.ClusterID})
			}
		}
	}
	if len(live) == 0 {
		return
	}
	t := live[r.rng.IntN(len(live))]
	r.logf("kill %s (%s) of pool %s", t.id, t.berthID, t.pool)
	_ = r.provs[t.pool].KillCluster(r.ctx, t.id)
}

// crash drops the service as a killed process would lose it, and starts a
// new one a little later over the same store and providers.
func (r *run) crash() {
	if r.down {
		return
	}
	r.logf("berth crashes")
	r.svc.Abandon()
	r.st.Close()
	r.down = true
	r.exec.AfterFunc(time.Duration(5+r.rng.IntN(300))*time.Second, r.restart)
}

func (r *run) restart() {
	if !r.down {
		return
	}
	if err := r.boot(); err != nil {
		r.failf("restart: %v", err)
		return
	}
	r.logf("berth restarted")
}

// apiFaults makes one provider's API fail now and then for a while.
func (r *run) apiFaults() {
	names := r.poolNames()
	name := names[r.rng.IntN(len(names))]
	f := sim.Faults{Transient: 0.1 * r.rng.Float64(), Throttle: 0.2 * r.rng.Float64(), LostReply: 0.1 * r.rng.Float64()}
	_ = r.provs[name].SetFaults(f)
	r.logf("provider of pool %s fails calls: %+v", name, f)
	r.exec.AfterFunc(time.Duration(1+r.rng.IntN(15))*time.Minute, func() {
		_ = r.provs[name].SetFaults(sim.Faults{})
		r.logf("provider of pool %s answers again", name)
	})
}

// storeFaults makes commits and submissions fail now and then for a while.
func (r *run) storeFaults() {
	r.st.failP = 0.1 + 0.5*r.rng.Float64()
	r.logf("store fails %.0f%% of writes", 100*r.st.failP)
	r.exec.AfterFunc(time.Duration(1+r.rng.IntN(5))*time.Minute, func() {
		r.st.failP = 0
		r.logf("store writes again")
	})
}

// shortage makes one pool's provider short of capacity for a while.
func (r *run) shortage() {
	name := pick(r.rng, r.poolNames()...)
	if r.changed[name] {
		return
	}
	primary, fallback := r.provs[name].Models()
	primary.CapacityShortage = 0.5 + 0.5*r.rng.Float64()
	_ = r.provs[name].SetModel(primary, &fallback)
	r.changed[name] = true
	r.logf("pool %s is short of capacity: %.0f%% of creations refused", name, 100*primary.CapacityShortage)
	r.exec.AfterFunc(time.Duration(5+r.rng.IntN(25))*time.Minute, func() { r.mend(name) })
}

// breakSpec makes one pool's spec one that can never work, as a bad
// bootstrap script or a validation error would, until someone fixes it
// and unblocks the pool.
func (r *run) breakSpec() {
	name := pick(r.rng, r.poolNames()...)
	if r.changed[name] {
		return
	}
	primary, fallback := r.provs[name].Models()
	primary.Broken = pick(r.rng, sim.BrokenValidation, sim.BrokenBootstrap)
	fallback.Broken = primary.Broken
	_ = r.provs[name].SetModel(primary, &fallback)
	r.changed[name] = true
	r.logf("pool %s's spec is broken (%s)", name, primary.Broken)
	r.exec.AfterFunc(time.Duration(10+r.rng.IntN(30))*time.Minute, func() { r.mend(name) })
}

// mend puts a pool's models back as generated and unblocks the pool, as
// a person fixing its spec would.
func (r *run) mend(name string) {
	if !r.changed[name] {
		return
	}
	r.changed[name] = false
	for _, pp := range r.w.pools {
		if pp.pool.Name == name {
			_ = r.provs[name].SetModel(pp.primary, pp.fallback)
		}
	}
	r.logf("pool %s mended", name)
	r.unblock(name)
}

// unblock asks for the pool to be unblocked, as the person who mended it
// would, and keeps an eye on it for half an hour: whenever the store has it
// blocked again (a request lost to a failing store or a crash, or a
// cluster from before the mend failing after it), and nothing broke it
// since, they ask again.
func (r *run) unblock(name string) {
	if !r.down {
		r.svc.RequestUnblock(name)
	}
	for m := 1; m <= 30; m++ {
		r.exec.AfterFunc(time.Duration(m)*time.Minute, func() {
			if _, blocked := r.check.blocked[name]; blocked && !r.changed[name] && !r.down {
				r.svc.RequestUnblock(name)
			}
		})
	}
}
