package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// backlogBatch is how many jobs one POST /v1/jobs/batch carries when the
// suite queues a backlog: the endpoint's most.
const backlogBatch = 1000

// startServer starts a berth serve of these pools and waits until each has
// its min_clusters ready.
func (s *suite) startServer(ctx context.Context, name string, pools ...pool) (*server, error) {
	srv, err := newServer(s.work, s.bin, s.pids, name, pools...)
	if err != nil {
		return nil, err
	}
	if _, err := srv.start(ctx); err != nil {
		srv.close()
		return nil, err
	}
	for _, p := range pools {
		if p.bootTime != "0s" {
			continue // a pool that is meant never to be ready
		}
		err := srv.api.waitPool(ctx, p.name, 5*time.Minute, fmt.Sprintf("%d clusters ready", p.clusters), func(ps poolStatus) bool {
			return ps.Clusters["ready"] >= p.clusters
		})
		if err != nil {
			srv.close()
			return nil, err
		}
	}
	return srv, nil
}

// queue submits n copies of spec as fast as the server takes them: in
// batches from a few clients where POST /v1/jobs/batch exists, else one
// POST /v1/jobs each from many clients.
func (s *suite) queue(ctx context.Context, a *api, spec jobSpec, n int) error {
	t0 := time.Now()
	how := fmt.Sprintf("batches of %d from 4 clients", backlogBatch)
	full := batchBody(spec, backlogBatch)
	err := parallel(ctx, 4, (n+backlogBatch-1)/backlogBatch, func(ctx context.Context, i int) error {
		k := min(backlogBatch, n-i*backlogBatch)
		body := full
		if k < backlogBatch {
			body = batchBody(spec, k)
		}
		return a.submitBatch(ctx, body, k)
	})
	if errors.Is(err, errNoBatch) {
		how = fmt.Sprintf("single POSTs from %d clients (no batch endpoint)", s.opt.clients)
		one := mustJSON(spec)
		err = parallel(ctx, s.opt.clients, n, func(ctx context.Context, _ int) error {
			_, err := a.submit(ctx, one)
			return err
		})
	}
	if err != nil {
		return err
	}
	d := time.Since(t0)
	s.logf("  queued %d jobs in %s (%.0f jobs/s), %s", n, d.Round(time.Millisecond), perSecond(n, d), how)
	return nil
}

// burnDown is B1: n one-step jobs queued behind a fleet whose every slot is
// taken, then timed from the release of the slots until the last job has
// succeeded. The slots are held by jobs that sleep an hour, cancelled to
// release them: so the clusters are up and the queue is full when the clock
// starts, as River's table is full when its client starts.
func (s *suite) burnDown(ctx context.Context, slots, clusters int) error {
	total := slots * clusters
	key := fmt.Sprintf("berth.burn%d", total)
	n := s.opt.burnJobs
	s.logf("Berth burn-down, %d slots (%d clusters of %d)", total, clusters, slots)
	p := pool{name: "burn", provider: "sim", slots: slots, clusters: clusters, bootTime: "0s"}
	srv, err := s.startServer(ctx, "b1", p)
	if err != nil {
		return err
	}
	defer srv.close()
	a := srv.api

	blockers := make([]string, total)
	hold := mustJSON(oneStep(p.name, "sleep", "1h"))
	err = parallel(ctx, s.opt.clients, total, func(ctx context.Context, i int) error {
		j, err := a.submit(ctx, hold)
		blockers[i] = j.ID
		return err
	})
	if err != nil {
		return err
	}
	if err := a.waitPool(ctx, p.name, 5*time.Minute, "full", func(ps poolStatus) bool { return ps.Running == total }); err != nil {
		return err
	}
	if err := s.queue(ctx, a, oneStep(p.name, "true"), n); err != nil {
		return err
	}
	if err := a.waitPool(ctx, p.name, 5*time.Minute, "queued", func(ps poolStatus) bool { return ps.Queued == n }); err != nil {
		return err
	}

	t0 := time.Now()
	err = parallel(ctx, s.opt.clients, total, func(ctx context.Context, i int) error {
		return a.cancel(ctx, blockers[i])
	})
	if err != nil {
		return err
	}
	err = a.waitPool(ctx, p.name, s.opt.burnLimit, "empty", func(ps poolStatus) bool { return ps.Queued == 0 && ps.Running == 0 })
	d := time.Since(t0)
	if err != nil {
		return err
	}
	m, err := a.metrics(ctx)
	if err != nil {
		return err
	}
	if ok, _ := m.sum("berth_attempts_total", map[string]string{"pool": p.name, "reason": "succeeded"}); int(ok) != n {
		return fmt.Errorf("berth burn-down: %d of %d jobs succeeded", int(ok), n)
	}
	s.res.set(key+".jobs_per_s", perSecond(n, d))
	s.logf("  %d jobs in %s, %.0f jobs/s", n, d.Round(time.Millisecond), perSecond(n, d))
	return nil
}

// submissions is B2: POST /v1/jobs from many clients and from one, then
// POST /v1/jobs/batch, each on a fresh server whose pool never has a
// cluster ready, so that nothing but submission is measured (and the
// queue grows, as River's table does).
func (s *suite) submissions(ctx context.Context) error {
	hold := pool{name: "hold", provider: "sim", slots: 1, clusters: 1, bootTime: "10m"}
	one := mustJSON(oneStep(hold.name, "true"))
	runs := []struct {
		key     string
		clients int
		d       time.Duration
	}{
		{fmt.Sprintf("berth.submit%d", s.opt.clients), s.opt.clients, s.opt.submitFor},
		{"berth.submit1", 1, s.opt.serialFor},
	}
	for _, r := range runs {
		s.logf("Berth submissions, %d clients for %s", r.clients, r.d)
		srv, err := s.startServer(ctx, "b2", hold)
		if err != nil {
			return err
		}
		lat, n, d, err := forDuration(ctx, r.clients, r.d, func(ctx context.Context) error {
			_, err := srv.api.submit(ctx, one)
			return err
		})
		srv.close()
		if err != nil {
			return err
		}
		s.setRate(r.key, n, d, lat)
	}

	s.logf("Berth batch submissions, %d jobs in batches of %d", s.opt.batchJobs, backlogBatch)
	srv, err := s.startServer(ctx, "b2", hold)
	if err != nil {
		return err
	}
	defer srv.close()
	spec := oneStep(hold.name, "true")
	full := batchBody(spec, backlogBatch)
	t0 := time.Now()
	for done := 0; done < s.opt.batchJobs; {
		k := min(backlogBatch, s.opt.batchJobs-done)
		body := full
		if k < backlogBatch {
			body = batchBody(spec, k)
		}
		if err := srv.api.submitBatch(ctx, body, k); errors.Is(err, errNoBatch) {
			s.res.na("berth.batch.jobs_per_s", "n/a (no batch endpoint)")
			s.logf("  no batch endpoint")
			return nil
		} else if err != nil {
			return err
		}
		done += k
	}
	d := time.Since(t0)
	s.res.set("berth.batch.jobs_per_s", perSecond(s.opt.batchJobs, d))
	s.logf("  %d jobs in %s, %.0f jobs/s", s.opt.batchJobs, d.Round(time.Millisecond), perSecond(s.opt.batchJobs, d))
	return nil
}

// setRate records a timed run of calls: calls a second and their latency.
func (s *suite) setRate(key string, n int, d time.Duration, lat *latencies) {
	s.res.set(key+".jobs_per_s", perSecond(n, d))
	s.res.set(key+".p50_ms", ms(lat.quantile(0.5)))
	s.res.set(key+".p99_ms", ms(lat.quantile(0.99)))
	s.logf("%s: %d in %s, %.0f/s, p50 %.2f ms, p99 %.2f ms", key, n, d.Round(time.Millisecond),
		perSecond(n, d), ms(lat.quantile(0.5)), ms(lat.quantile(0.99)))
}

// dispatch is B3: one `true` job at a time on a warm local cluster with
// free slots, long-polled to success.
func (s *suite) dispatch(ctx context.Context) error {
	s.logf("Berth dispatch, %d jobs one at a time on a warm local cluster", s.opt.dispatchJobs)
	p := pool{name: "warm", provider: "local", slots: 8, clusters: 1, bootTime: "0s"}
	srv, err := s.startServer(ctx, "b3", p)
	if err != nil {
		return err
	}
	defer srv.close()
	a := srv.api
	spec := mustJSON(oneStep(p.name, "true"))
	var started, succeeded latencies
	// The first job is not counted: it finds the cluster's watcher before
	// its first look at the steps.
	for i := -1; i < s.opt.dispatchJobs; i++ {
		t0 := time.Now()
		j, err := a.submit(ctx, spec)
		if err == nil {
			j, err = a.wait(ctx, j.ID)
		}
		if err != nil {
			return err
		}
		d := time.Since(t0)
		if j.State != "succeeded" || len(j.Attempts) != 1 || len(j.Attempts[0].Steps) != 1 {
			return fmt.Errorf("dispatch: job %s %s after %d attempts", j.ID, j.State, len(j.Attempts))
		}
		if i < 0 {
			continue
		}
		started.add(j.Attempts[0].Steps[0].StartedAt.Sub(j.CreatedAt))
		succeeded.add(d)
	}
	for k, l := range map[string]*latencies{"berth.dispatch.started": &started, "berth.dispatch.succeeded": &succeeded} {
		s.res.set(k+".p50_ms", ms(l.quantile(0.5)))
		s.res.set(k+".p99_ms", ms(l.quantile(0.99)))
	}
	s.logf("  submit → step started p50 %.1f ms p99 %.1f ms; submit → succeeded p50 %.1f ms p99 %.1f ms",
		ms(started.quantile(0.5)), ms(started.quantile(0.99)), ms(succeeded.quantile(0.5)), ms(succeeded.quantile(0.99)))
	return nil
}

// localThroughput runs trivial steps through a 32-slot local pool, end to
// end over HTTP: many clients, each submitting a job and long-polling it
// to success, then the next.
func (s *suite) localThroughput(ctx context.Context) error {
	// Callers enough that a free slot never waits for one.
	clients := 2 * s.opt.clients
	s.logf("Berth local throughput, %d jobs from %d clients on 32 slots", s.opt.localJobs, clients)
	p := pool{name: "local", provider: "local", slots: 8, clusters: 4, bootTime: "0s"}
	srv, err := s.startServer(ctx, "local", p)
	if err != nil {
		return err
	}
	defer srv.close()
	a := srv.api
	spec := mustJSON(oneStep(p.name, "true"))
	var failed atomic.Int64
	t0 := time.Now()
	err = parallel(ctx, clients, s.opt.localJobs, func(ctx context.Context, _ int) error {
		j, err := a.submit(ctx, spec)
		if err == nil {
			j, err = a.wait(ctx, j.ID)
		}
		if err == nil && j.State != "succeeded" {
			failed.Add(1)
		}
		return err
	})
	d := time.Since(t0)
	if err != nil {
		return err
	}
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("local throughput: %d of %d jobs did not succeed", f, s.opt.localJobs)
	}
	s.res.set("berth.local.jobs_per_s", perSecond(s.opt.localJobs, d))
	s.logf("  %d jobs in %s, %.0f jobs/s", s.opt.localJobs, d.Round(time.Millisecond), perSecond(s.opt.localJobs, d))
	return nil
}

// scale is B4: a large queue behind a large fleet of busy clusters, one
// slot each, whose jobs sleep an hour.
func (s *suite) scale(ctx context.Context) error {
	n, clusters, k := s.opt.scaleJobs, s.opt.scaleClusters, s.opt.scaleSamples
	s.logf("Berth scale: %d clusters, %d queued jobs", clusters, n)
	s.res.set("berth.scale.jobs", float64(n))
	s.res.set("berth.scale.clusters", float64(clusters))
	p := pool{name: "scale", provider: "sim", slots: 1, clusters: clusters, bootTime: "0s"}
	t0 := time.Now()
	srv, err := s.startServer(ctx, "b4", p)
	if err != nil {
		return err
	}
	defer srv.close()
	s.logf("  %d clusters ready in %s", clusters, time.Since(t0).Round(time.Millisecond))
	a := srv.api
	spec := oneStep(p.name, "sleep", "3600s")
	one := mustJSON(spec)

	// One client, one at a time: the latency of a submission alone, first
	// with the queue empty (these jobs take the fleet's slots), then full.
	timed := func(key string) error {
		lat, _, _, err := forCount(ctx, k, func(ctx context.Context) error {
			_, err := a.submit(ctx, one)
			return err
		})
		if err != nil {
			return err
		}
		s.res.set(key, ms(lat.quantile(0.99)))
		s.logf("  %s: p50 %.2f ms, p99 %.2f ms", key, ms(lat.quantile(0.5)), ms(lat.quantile(0.99)))
		return nil
	}
	if err := timed("berth.scale.submit_empty.p99_ms"); err != nil {
		return err
	}
	if err := s.queue(ctx, a, spec, n); err != nil {
		return err
	}
	queued := max(n+k-clusters, 0)
	if err := a.waitPool(ctx, p.name, 10*time.Minute, "queued", func(ps poolStatus) bool { return ps.Queued >= queued }); err != nil {
		return err
	}
	before, err := a.metrics(ctx)
	if err != nil {
		return err
	}
	if err := timed("berth.scale.submit_full.p99_ms"); err != nil {
		return err
	}
	after, err := a.metrics(ctx)
	if err != nil {
		return err
	}
	if h, ok := after.histogram("berth_loop_pass_seconds"); !ok {
		s.res.na("berth.scale.loop_pass.p99_ms", "n/a (no berth_loop_pass_seconds)")
	} else {
		hb, _ := before.histogram("berth_loop_pass_seconds")
		d := h.since(hb)
		if q := d.quantile(0.99); math.IsNaN(q) {
			s.res.na("berth.scale.loop_pass.p99_ms", "n/a (no pass while timed)")
		} else {
			s.res.set("berth.scale.loop_pass.p99_ms", q*1000)
			s.logf("  loop pass p99 %.2f ms over %.0f passes", q*1000, d.count())
		}
	}
	rss, hwm, err := srv.memory()
	if err != nil {
		return err
	}
	s.res.set("berth.scale.rss_mib", float64(rss)/(1<<20))
	s.res.set("berth.scale.hwm_mib", float64(hwm)/(1<<20))
	s.logf("  RSS %d MiB, peak %d MiB", rss>>20, hwm>>20)

	exit, err := srv.stop()
	if err != nil {
		return err
	}
	s.res.set("berth.scale.sigterm_exit_s", exit.Seconds())
	ready, err := srv.start(ctx)
	if err != nil {
		return err
	}
	s.res.set("berth.scale.restart_ready_s", ready.Seconds())
	s.logf("  SIGTERM to exit %s; restart to /readyz %s", exit.Round(time.Millisecond), ready.Round(time.Millisecond))
	return nil
}
