package bench

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider"
	"github.com/berthhq/berth/internal/provider/local"
	"github.com/berthhq/berth/internal/wait"
)

// benchLog is the level benchmarks log at: warnings and errors still show,
// the info line per step and cluster does not cost the measurement.
const benchLog = slog.LevelWarn

// submitters is how many goroutines submit at once in the parallel case,
// whatever GOMAXPROCS is.
const submitters = 16

// BenchmarkSubmit measures POST /v1/jobs: encode, HTTP on loopback,
// validate, group commit to SQLite with synchronous=FULL, 201. The pool's
// one cluster takes 10 minutes to boot, so nothing is placed and the
// numbers are submission alone (plus the loop picking each job up, as it
// does in production). The queue grows by one job per submission.
func BenchmarkSubmit(b *testing.B) {
	pool := poolSpec{
		Slots: 8, MaxClusters: 1, IdleTimeout: time.Hour,
		BootTime: 10 * time.Minute, BootTimeout: 11 * time.Minute,
	}
	b.Run("serial", func(b *testing.B) {
		h := startServer(b, pool, benchLog)
		ctx := b.Context()
		i := 0
		for b.Loop() {
			i++
			if _, created, err := h.c.Submit(ctx, job(fmt.Sprintf("serial/%d", i), "true")); err != nil || !created {
				b.Fatalf("submit %d: created %v, %v", i, created, err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "submits/s")
	})
	b.Run(fmt.Sprintf("parallel-%d", submitters), func(b *testing.B) {
		h := startServer(b, pool, benchLog)
		ctx := b.Context()
		var n atomic.Int64
		b.SetParallelism((submitters + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1)
				if _, created, err := h.c.Submit(ctx, job(fmt.Sprintf("parallel/%d", i), "true")); err != nil || !created {
					b.Errorf("submit %d: created %v, %v", i, created, err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "submits/s")
	})
}

// BenchmarkDispatchLatency submits one trivial job at a time to a pool
// with a warm ready cluster and long-polls it to success. Per job it
// reports, from the server's own timestamps, the time from submission
// (job created_at) to placement (the job turns running) and to its first
// step's process starting; and, from the client's clock, the time from
// calling Submit to WaitJob returning it succeeded, and fast-pct, the share
// of jobs that succeeded within 100ms (the rest wait for the provider's
// next poll).
func BenchmarkDispatchLatency(b *testing.B) {
	h := startServer(b, poolSpec{
		Slots: 8, MinClusters: 1, MaxClusters: 1, IdleTimeout: time.Hour,
		BootTime: 100 * time.Millisecond, BootTimeout: time.Minute,
	}, benchLog)
	ctx := b.Context()
	h.waitReady(b, 1)
	warm, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	// One job first, so the cluster's watcher is past its first report
	// and lists steps.
	if j, _, err := h.c.Submit(warm, job("warmup", "true")); err != nil {
		b.Fatal(err)
	} else if j, err = h.waitEnded(warm, j.ID); err != nil || j.State != berth.JobSucceeded {
		b.Fatalf("warm-up job %s: %v", j.State, err)
	}

	var placed, running, succeeded, ended []time.Duration
	i := 0
	for b.Loop() {
		i++
		t0 := time.Now()
		j, _, err := h.c.Submit(ctx, job(fmt.Sprintf("dispatch/%d", i), "true"))
		if err != nil {
			b.Fatal(err)
		}
		if j, err = h.waitEnded(ctx, j.ID); err != nil {
			b.Fatal(err)
		}
		succeeded = append(succeeded, time.Since(t0))
		if j.State != berth.JobSucceeded || len(j.Attempts) != 1 {
			b.Fatalf("job %s: %s after %d attempts", j.ID, j.State, len(j.Attempts))
		}
		a := j.Attempts[0]
		placed = append(placed, a.StartedAt.Sub(j.CreatedAt))
		running = append(running, a.Steps[0].StartedAt.Sub(j.CreatedAt))
		ended = append(ended, j.EndedAt.Sub(j.CreatedAt))
	}
	fast := 0
	for _, d := range succeeded {
		if d < 100*time.Millisecond {
			fast++
		}
	}
	b.ReportMetric(100*float64(fast)/float64(len(succeeded)), "fast-pct")
	b.ReportMetric(ms(quantile(placed, 0.5)), "placed-p50-ms")
	b.ReportMetric(ms(quantile(running, 0.5)), "running-p50-ms")
	b.ReportMetric(ms(quantile(running, 0.99)), "running-p99-ms")
	b.ReportMetric(ms(quantile(ended, 0.5)), "ended-p50-ms")
	b.ReportMetric(ms(quantile(succeeded, 0.5)), "succeeded-p50-ms")
	b.ReportMetric(ms(quantile(succeeded, 0.9)), "succeeded-p90-ms")
	b.ReportMetric(ms(quantile(succeeded, 0.99)), "succeeded-p99-ms")
}

// throughputJobs is the size of one batch of BenchmarkThroughput.
const throughputJobs = 200

// BenchmarkThroughput runs batches of 200 trivial jobs on a pool that
// starts cold (no cluster) and may grow to 4 clusters of 8 slots. Each of
// the 200 callers submits its job and long-polls it to success, as 200
// workflow tasks would; one op is one batch, from the first submission to
// the last success. Every batch gets a fresh server, whose start and
// cleanup are not timed.
func BenchmarkThroughput(b *testing.B) {
	pool := poolSpec{
		Slots: 8, MaxClusters: 4, IdleTimeout: time.Hour,
		BootTime: 100 * time.Millisecond, BootTimeout: time.Minute,
	}
	var total time.Duration
	clusters := 0
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		h := startServer(b, pool, benchLog)
		ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
		b.StartTimer()

		t0 := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, throughputJobs)
		for k := range throughputJobs {
			wg.Go(func() {
				j, _, err := h.c.Submit(ctx, job(fmt.Sprintf("batch/%d/%d", i, k), "true"))
				if err == nil {
					j, err = h.waitEnded(ctx, j.ID)
				}
				if err == nil && j.State != berth.JobSucceeded {
					err = fmt.Errorf("job %s %s", j.ID, j.State)
				}
				if err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		total += time.Since(t0)

		b.StopTimer()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		if cs, err := h.c.Clusters(ctx, poolName, ""); err == nil {
			clusters += len(cs)
		}
		h.close()
		cancel()
		b.StartTimer()
	}
	b.ReportMetric(float64(throughputJobs*b.N)/total.Seconds(), "jobs/s")
	b.ReportMetric(float64(clusters)/float64(b.N), "clusters/op")
}

// BenchmarkLocalListSteps is one watcher poll's ListSteps on a local
// cluster that has already run n steps, all ended. The service polls every
// live cluster this way every 200ms. "warm" is a Provider that has listed
// the cluster before and keeps its finished steps: it reads the steps
// directory and nothing else. "cold" is a new Provider each time (New
// included), as after a restart: it reads every step the cluster ever ran,
// which is what every poll cost before finished steps were kept.
func BenchmarkLocalListSteps(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		ctx := b.Context()
		dir := b.TempDir()
		prov, id := newLocalCluster(b, dir)
		for i := range n {
			req := provider.StepRequest{Name: fmt.Sprintf("berth:job-%d:1:0", i), Step: berth.Step{Name: "s", Args: []string{"true"}}}
			if _, err := prov.SubmitStep(ctx, id, req); err != nil {
				b.Fatal(err)
			}
		}
		wait.For(b, time.Minute, fmt.Sprintf("%d steps to end", n), func() bool {
			steps, err := prov.ListSteps(ctx, id)
			if err != nil {
				b.Fatal(err)
			}
			ended := 0
			for _, s := range steps {
				if s.State.Terminal() {
					ended++
				}
			}
			return ended == n
		})
		b.Run(fmt.Sprintf("steps=%d/warm", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := prov.ListSteps(ctx, id); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("steps=%d/cold", n), func(b *testing.B) {
			for b.Loop() {
				cold, err := local.New(local.Options{Dir: dir})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := cold.ListSteps(ctx, id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLocalSubmitStep is one SubmitStep of a trivial step on a ready
// local cluster: the step's directory built and synced, the detached
// process started, its pid record synced. Submissions to one cluster hold
// its lock, so this is also the most one cluster can start per second.
func BenchmarkLocalSubmitStep(b *testing.B) {
	ctx := b.Context()
	prov, id := newLocalCluster(b, b.TempDir())
	i := 0
	for b.Loop() {
		i++
		req := provider.StepRequest{Name: fmt.Sprintf("berth:job-%d:1:0", i), Step: berth.Step{Name: "s", Args: []string{"true"}}}
		if _, err := prov.SubmitStep(ctx, id, req); err != nil {
			b.Fatal(err)
		}
	}
}

// newLocalCluster makes a local provider on dir with one cluster of one
// slot, terminated when the benchmark ends.
func newLocalCluster(b *testing.B, dir string) (*local.Provider, string) {
	b.Helper()
	prov, err := local.New(local.Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	id, err := prov.CreateCluster(b.Context(), provider.CreateRequest{ClusterID: berth.NewID("cl", time.Now()), Pool: poolName, Slots: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := prov.TerminateCluster(context.Background(), id); err != nil {
			b.Error(err)
		}
	})
	return prov, id
}
