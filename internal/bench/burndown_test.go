package bench

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/client"
	"github.com/berthhq/berth/internal/config"
	"github.com/berthhq/berth/internal/server"
	"github.com/berthhq/berth/internal/store/sqlite"
	"github.com/berthhq/berth/internal/wait"
)

// burnJobs is how many jobs BenchmarkBurnDown queues before it lets the
// pool run them (-burn.jobs=100000 for the figures in BENCHMARKS.md).
var burnJobsFlag = flag.Int("burn.jobs", 20_000, "jobs BenchmarkBurnDown queues")

// burnLimit is the most a burn-down may take, as in bench/run.
const burnLimit = 10 * time.Minute

// BenchmarkBurnDown queues burnJobs one-step jobs on a sim pool whose
// clusters are up and whose steps end at once, then measures how fast the
// loop runs them to success: every move (placed, running, succeeded) a
// commit to SQLite with synchronous=FULL. It is the service's own cost per
// job, with no provider time in it.
func BenchmarkBurnDown(b *testing.B) {
	for _, tt := range []struct{ slots, clusters int }{{32, 1}, {32, 32}} {
		b.Run(fmt.Sprintf("slots=%d", tt.slots*tt.clusters), func(b *testing.B) {
			for range b.N {
				burnDown(b, tt.slots, tt.clusters)
			}
		})
	}
}

func burnDown(b *testing.B, slots, clusters int) {
	b.StopTimer()
	burnJobs := *burnJobsFlag
	dir := b.TempDir()
	db := filepath.Join(dir, "berth.db")
	// The queue is filled in the store before the server starts, so the
	// clock starts with all jobs queued.
	st, err := sqlite.Open(context.Background(), db, discardLog())
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	batch := make([]berth.Job, 0, berth.MaxBatch)
	for i := range burnJobs {
		spec := job(fmt.Sprintf("burn/%d", i), "true")
		batch = append(batch, spec.NewJob(berth.NewID("job", now), now))
		if len(batch) == berth.MaxBatch || i == burnJobs-1 {
			if _, err := st.CreateJobs(context.Background(), batch, nil); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Parse(fmt.Appendf(nil, `
listen: 127.0.0.1:0
store: sqlite://%s
pools:
  - name: %s
    provider: sim
    slots: %d
    min_clusters: %d
    max_clusters: %d
    idle_timeout: 1h
    price_per_hour: 1.0
    sim: {boot_time: 0s, step_time: 0s, poll_interval: 1ms}
`, filepath.ToSlash(db), poolName, slots, clusters, clusters))
	if err != nil {
		b.Fatal(err)
	}
	srv, err := server.New(context.Background(), cfg, server.Options{Log: discardLog()})
	if err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	start := time.Now()
	h := newHarness(b, srv)
	h.check = func(context.Context) error { return nil }
	ctx := b.Context()
	// Until the loop's first pass the pool's status is empty: the burn is
	// over when its queue, once seen, is empty.
	seen := false
	wait.For(b, burnLimit, "every job to end", func() bool {
		p, err := h.c.Pool(ctx, poolName)
		if err != nil {
			b.Fatal(err)
		}
		left := p.Queued + p.Running
		seen = seen || left > 0
		return seen && left == 0
	})
	took := time.Since(start)
	b.StopTimer()
	passes, busy := passStats(b, h)
	b.ReportMetric(passes/float64(burnJobs), "passes/job")
	b.ReportMetric(busy/took.Seconds(), "loop-busy")
	var done int
	for q := (client.JobsQuery{State: berth.JobSucceeded, Limit: 1000}); ; {
		jobs, next, err := h.c.Jobs(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		done += len(jobs)
		if next == "" {
			break
		}
		q.Cursor = next
	}
	if done != burnJobs {
		b.Fatalf("%d jobs succeeded, want %d", done, burnJobs)
	}
	b.ReportMetric(float64(burnJobs)/took.Seconds(), "jobs/s")
	h.close()
	b.StartTimer()
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// passStats reads from the server's metrics how many passes the loop
// made and the seconds they took.
func passStats(b *testing.B, h *harness) (n, seconds float64) {
	resp, err := http.Get(h.srv.URL() + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	found := 0
	for sc.Scan() {
		for name, into := range map[string]*float64{"berth_loop_pass_seconds_count ": &n, "berth_loop_pass_seconds_sum ": &seconds} {
			if v, ok := strings.CutPrefix(sc.Text(), name); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					b.Fatal(err)
				}
				*into = f
				found++
			}
		}
	}
	if found != 2 {
		b.Fatal("no berth_loop_pass_seconds in the metrics")
	}
	return n, seconds
}
