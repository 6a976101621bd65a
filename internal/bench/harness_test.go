// Package bench measures Berth end to end: a real server (SQLite on disk
// with synchronous=FULL, local provider pools, the service's loop) driven
// through the Go client over HTTP on loopback. It holds only tests and
// benchmarks; BENCHMARKS.md at the repository root says how to run them
// and what they measured.
package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/client"
	"github.com/berthhq/berth/internal/config"
	"github.com/berthhq/berth/internal/provider/local"
	"github.com/berthhq/berth/internal/server"
	"github.com/berthhq/berth/internal/wait"
)

// poolName is the one pool every harness configures.
const poolName = "bench"

// tick is how often cleanup looks again while it waits for clusters to
// end. Cleanup cannot use wait.For: it must go on to stop the server even
// when a step fails.
const tick = 20 * time.Millisecond

// cleanupTimeout bounds the whole cleanup of one harness.
const cleanupTimeout = 2 * time.Minute

// poolSpec is the scaling policy of the harness's pool.
type poolSpec struct {
	Slots, MinClusters, MaxClusters int
	IdleTimeout, BootTimeout        time.Duration
	// BootTime is the local provider's simulated provisioning delay.
	BootTime time.Duration
}

// harness is one running server and a client of it.
type harness struct {
	tb       testing.TB
	srv      *server.Server
	c        *client.Client
	tr       *http.Transport
	localDir string
	// check runs after the server stopped and reports what is left
	// running at the provider; checkNoStepRuns for local pools.
	check func(context.Context) error
	once  sync.Once
}

// startServer assembles a server the way `berth serve` does, from a parsed
// configuration, with its store and local clusters in tb's temporary
// directory, and starts it on a free loopback port. Logs at level and above
// go to tb's output. The server is cleaned up with tb, or earlier by
// close.
func startServer(tb testing.TB, p poolSpec, level slog.Level) *harness {
	tb.Helper()
	dir := tb.TempDir()
	localDir := filepath.Join(dir, "local")
	cfg, err := config.Parse(fmt.Appendf(nil, `
listen: 127.0.0.1:0
store: sqlite://%s
pools:
  - name: %s
    provider: local
    slots: %d
    min_clusters: %d
    max_clusters: %d
    idle_timeout: %s
    boot_timeout: %s
    price_per_hour: 1.0
    local: {boot_time: %s, dir: %s}
`, filepath.ToSlash(filepath.Join(dir, "berth.db")), poolName, p.Slots, p.MinClusters, p.MaxClusters,
		p.IdleTimeout, p.BootTimeout, p.BootTime, filepath.ToSlash(localDir)))
	if err != nil {
		tb.Fatalf("parse configuration: %v", err)
	}
	log := slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: level}))
	srv, err := server.New(context.Background(), cfg, server.Options{Log: log})
	if err != nil {
		tb.Fatalf("new server: %v", err)
	}
	h := newHarness(tb, srv)
	h.localDir, h.check = localDir, h.checkNoStepRuns
	return h
}

// newHarness starts srv and makes a client of it, cleaned up with tb.
func newHarness(tb testing.TB, srv *server.Server) *harness {
	tb.Helper()
	if err := srv.Start(context.Background()); err != nil {
		tb.Fatalf("start server: %v", err)
	}
	// A transport of our own: Throughput's 200 callers stand for 200
	// workers with a connection each, more than the 64 that client.New
	// keeps; and close can close its idle connections (see there).
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 512, 512
	h := &harness{tb: tb, srv: srv, tr: tr, c: client.New(srv.URL(), "", &http.Client{Transport: tr})}
	tb.Cleanup(h.close)
	return h
}

// job is a submission of one step running argv.
func job(key string, argv ...string) berth.JobSpec {
	return berth.JobSpec{
		Pool:           poolName,
		Name:           "bench",
		Steps:          []berth.Step{{Name: "step", Args: argv}},
		IdempotencyKey: key,
		Labels:         map[string]string{"dag_id": "bench", "task_id": "t"},
	}
}

// waitEnded long-polls the job until it has ended.
func (h *harness) waitEnded(ctx context.Context, id string) (berth.Job, error) {
	for {
		j, err := h.c.WaitJob(ctx, id, time.Minute)
		if err != nil || j.State.Terminal() {
			return j, err
		}
	}
}

// waitReady waits until the pool has n ready clusters.
func (h *harness) waitReady(tb testing.TB, n int) {
	tb.Helper()
	wait.For(tb, time.Minute, fmt.Sprintf("%d ready clusters", n), func() bool {
		p, err := h.c.Pool(tb.Context(), poolName)
		if err != nil {
			tb.Fatal(err)
		}
		return p.Clusters[berth.ClusterReady] >= n
	})
}

// close drains the server (see drain), stops it, and then checks that no
// step is left running (check).
func (h *harness) close() {
	h.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := h.drain(ctx); err != nil {
			h.tb.Errorf("cleanup: %v", err)
		}
		// A connection the transport dialled but never used is "new" to
		// the server, and Stop waits for those as if they were busy until
		// its grace runs out: close them, as an exiting client would.
		h.tr.CloseIdleConnections()
		if err := h.srv.Stop(); err != nil {
			h.tb.Errorf("cleanup: stop server: %v", err)
		}
		if err := h.check(ctx); err != nil {
			h.tb.Errorf("cleanup: %v", err)
		}
	})
}

// drain cancels every unfinished job, then terminates every cluster
// through the API and waits until they are terminated. A pool with
// min_clusters above zero starts a replacement for what it loses; that one
// has no job, so no process, and is left to the check after the server
// stops.
func (h *harness) drain(ctx context.Context) error {
	if err := h.cancelUnfinished(ctx); err != nil {
		return fmt.Errorf("cancel jobs: %w", err)
	}
	if err := h.c.TerminateAll(ctx, tick); err != nil {
		return fmt.Errorf("terminate clusters: %w", err)
	}
	return nil
}

// cancelUnfinished cancels queued and running jobs, so the scheduler has
// no demand left to start clusters for.
func (h *harness) cancelUnfinished(ctx context.Context) error {
	for _, st := range []berth.JobState{berth.JobQueued, berth.JobRunning} {
		for {
			jobs, _, err := h.c.Jobs(ctx, client.JobsQuery{State: st, Limit: 1000})
			if err != nil {
				return err
			}
			if len(jobs) == 0 {
				break
			}
			ids := make(chan string)
			errs := make(chan error, 16)
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() {
					for id := range ids {
						if _, err := h.c.Cancel(ctx, id); err != nil && !errors.Is(err, berth.ErrConflict) {
							select {
							case errs <- fmt.Errorf("cancel %s: %w", id, err):
							default:
							}
						}
					}
				})
			}
			for _, j := range jobs {
				ids <- j.ID
			}
			close(ids)
			wg.Wait()
			select {
			case err := <-errs:
				return err
			default:
			}
		}
	}
	return nil
}

// checkNoStepRuns asks a new local provider, over the same directory,
// about every cluster on disk (a cluster with steps has a directory): none
// may still have a running step.
func (h *harness) checkNoStepRuns(ctx context.Context) error {
	prov, err := local.New(local.Options{Dir: h.localDir})
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(filepath.Join(h.localDir, "clusters"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, e := range entries {
		id := e.Name()
		steps, err := prov.ListSteps(ctx, id)
		if err != nil {
			return fmt.Errorf("list steps of %s: %w", id, err)
		}
		for _, s := range steps {
			if s.State == berth.StepRunning || s.State == berth.StepPending {
				return fmt.Errorf("cluster %s: step %s is still %s", id, s.Name, s.State)
			}
		}
	}
	return nil
}

// quantile returns the q-quantile (0..1) of ds by the nearest-rank method;
// ds is sorted in place.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(a, b int) bool { return ds[a] < ds[b] })
	i := int(q*float64(len(ds))+0.999999) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// TestHarness checks the benchmarks' server end to end: a job runs to
// success over HTTP, and cleanup leaves no cluster live and no step
// running.
func TestHarness(t *testing.T) {
	h := startServer(t, poolSpec{
		Slots: 2, MaxClusters: 1, IdleTimeout: time.Hour, BootTimeout: time.Minute, BootTime: 100 * time.Millisecond,
	}, slog.LevelInfo)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	j, created, err := h.c.Submit(ctx, job("harness/1", "true"))
	if err != nil || !created {
		t.Fatalf("submit: created %v, %v", created, err)
	}
	if j, err = h.waitEnded(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if j.State != berth.JobSucceeded || len(j.Attempts) != 1 || j.Attempts[0].Steps[0].StartedAt.IsZero() {
		t.Fatalf("job = %s, attempts %+v", j.State, j.Attempts)
	}
	// A job still running at cleanup is cancelled before its cluster is
	// terminated.
	left, _, err := h.c.Submit(ctx, job("harness/2", "sleep", "60"))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.drain(ctx); err != nil {
		t.Fatal(err)
	}
	if left, err = h.c.Job(ctx, left.ID); err != nil || left.State != berth.JobCancelled {
		t.Errorf("job left at cleanup: %s, %v; want cancelled", left.State, err)
	}
	cs, err := h.c.Clusters(ctx, "", "")
	if err != nil || len(cs) == 0 {
		t.Fatalf("clusters = %d, %v", len(cs), err)
	}
	for _, cl := range cs {
		if cl.State != berth.ClusterTerminated {
			t.Errorf("cluster %s is %s after drain, want terminated", cl.ID, cl.State)
		}
	}
	h.close()
	if _, err := h.c.Clusters(ctx, "", ""); err == nil {
		t.Error("the server still answers after close")
	}
}
