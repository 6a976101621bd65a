package simulate

import (
	"context"
	"testing"
	"time"
)

const berthPools = `
seed: 3
pools:
  - {name: a, provider: sim, slots: 2, max_clusters: 3, idle_timeout: 10m, price_per_hour: 6,
     sim: {boot_time: 5m, terminate_time: 1m}}
  - {name: b, provider: sim, slots: 1, max_clusters: 2, idle_timeout: 10m, price_per_hour: 3,
     sim: {boot_time: 5m, terminate_time: 1m}}
pipelines:
  - name: p
    count: 3
    every: 30m
    phases:
      - {pool: a, jobs: 4, duration: 10m}
      - {pool: b, duration: 20m}
`

// The berth policy is the real service: every job of every instance runs
// once to success, phases in order, and the clusters are paid for.
func TestBerthRunsTheWorkload(t *testing.T) {
	w := parse(t, berthPools)
	tr, err := runBerth(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Jobs) != 15 {
		t.Fatalf("%d jobs, want 15", len(tr.Jobs))
	}
	phaseEnd := map[[2]int]time.Duration{}
	for _, j := range tr.Jobs {
		if !j.Succeeded || len(j.Attempts) != 1 {
			t.Fatalf("job %+v: want one successful attempt", j)
		}
		a := j.Attempts[0]
		want := 10 * time.Minute
		if j.Key.Phase == 1 {
			want = 20 * time.Minute
		}
		// The step runs its drawn duration; its end is seen at the next
		// poll, within a poll interval and a call's latency.
		if run := a.End - a.Start; run < want || run > want+simPollInterval+time.Second {
			t.Errorf("job %+v ran %s, want %s plus at most a poll", j.Key, run, want)
		}
		k := [2]int{j.Key.Instance, j.Key.Phase}
		phaseEnd[k] = max(phaseEnd[k], a.End)
	}
	for _, j := range tr.Jobs {
		if j.Key.Phase == 1 && j.Submitted < phaseEnd[[2]int{j.Key.Instance, 0}] {
			t.Errorf("phase 2 of instance %d submitted at %s, before phase 1 ended at %s", j.Key.Instance, j.Submitted, phaseEnd[[2]int{j.Key.Instance, 0}])
		}
	}
	for _, in := range tr.Instances {
		if in.End < in.Arrival+30*time.Minute {
			t.Errorf("instance %d ended at %s, arrived %s: faster than its phases", in.N, in.End, in.Arrival)
		}
	}
	r := tr.Measure()
	if r.JobsLost != 0 || r.Interventions != 0 || r.Cost <= 0 || len(tr.Clusters) == 0 {
		t.Errorf("result %+v over %d clusters", r, len(tr.Clusters))
	}
	for _, c := range tr.Clusters {
		if c.Ended < c.Requested || c.Ready < c.Requested+5*time.Minute {
			t.Errorf("cluster %+v: ready before its boot, or ended before it began", c)
		}
	}
}

// Lost clusters are replaced and their jobs run again, by the service
// alone: nothing is lost and nobody intervenes.
func TestBerthRecoversFromLosses(t *testing.T) {
	w := parse(t, berthPools)
	if err := w.SetLoss(2); err != nil {
		t.Fatal(err)
	}
	tr, err := runBerth(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	lost, rerun := 0, 0
	for _, c := range tr.Clusters {
		if c.Lost {
			lost++
		}
	}
	for _, j := range tr.Jobs {
		if len(j.Attempts) > 1 {
			rerun++
		}
	}
	r := tr.Measure()
	if lost == 0 || rerun == 0 || r.JobsLost != 0 || r.Interventions != 0 {
		t.Fatalf("%d clusters lost, %d jobs re-run, result %+v: want losses recovered with nothing lost", lost, rerun, r)
	}
}

// The service's estimated start of a waiting job is read just after its
// submission and compared with its real start: with exact run times (no
// jitter, learned from the first run) the estimates are right within a
// poll or two.
func TestBerthETAAccuracy(t *testing.T) {
	w := parse(t, `
seed: 1
pools:
  - {name: a, provider: sim, slots: 1, max_clusters: 1, idle_timeout: 30m, price_per_hour: 1, sim: {boot_time: 5m}}
pipelines:
  - {name: p, count: 3, every: 2h, phases: [{pool: a, jobs: 4, duration: 10m}]}
`)
	tr, err := runBerth(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	p50, p90, n := tr.ETAAccuracy()
	// Every job but each run's first waits for the one before it.
	if n < 9 {
		t.Fatalf("%d jobs had an estimated start, want at least 9 of 12", n)
	}
	if p50 > 2*simPollInterval || p90 > 10*time.Minute {
		t.Errorf("ETA error p50 %s, p90 %s over %d jobs: want p50 within two polls", p50, p90, n)
	}
}

// Anticipation, end to end: once the first run taught how long phase 1
// runs, each later run's phase-2 cluster is booted while phase 1 still
// runs (its jobs' then hints name pool b), so phase 2 waits for no boot;
// the first run waits a whole one.
func TestBerthBootsAhead(t *testing.T) {
	w := parse(t, `
seed: 1
pools:
  - {name: a, provider: sim, slots: 1, max_clusters: 2, idle_timeout: auto, price_per_hour: 1, sim: {boot_time: 5m}}
  - {name: b, provider: sim, slots: 1, max_clusters: 2, idle_timeout: auto, price_per_hour: 1, sim: {boot_time: 5m}}
pipelines:
  - {name: p, count: 3, every: 3h, phases: [{pool: a, duration: 20m}, {pool: b, duration: 10m}]}
`)
	tr, err := runBerth(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range tr.Jobs {
		if j.Key.Phase != 1 {
			continue
		}
		wait := j.Attempts[0].Start - j.Submitted
		switch {
		case j.Key.Instance == 0 && wait < 5*time.Minute:
			t.Errorf("run 0 phase 2 waited %s: less than a boot, with nothing learned yet", wait)
		case j.Key.Instance > 0 && wait > time.Minute:
			t.Errorf("run %d phase 2 waited %s for its cluster: not booted ahead", j.Key.Instance, wait)
		}
	}
	for _, c := range tr.Clusters {
		// Between runs, nothing is expected within a boot: idle_timeout:
		// auto ends the clusters rather than keeping them for hours.
		if c.Ended-c.Requested > 90*time.Minute {
			t.Errorf("cluster %s of %s lived %s: kept idle between runs", c.ID, c.Pool, c.Ended-c.Requested)
		}
	}
}
