package server

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/client"
	"github.com/berthhq/berth/internal/clock"
	"github.com/berthhq/berth/internal/config"
)

// A sim pool in a real server runs on the wall clock: sleep steps succeed
// and fail steps fail after their time, with no process behind them.
func TestServerRunsASimPool(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse(fmt.Appendf(nil, `
listen: 127.0.0.1:0
store: sqlite://%s/berth.db
pools:
  - name: s
    provider: sim
    slots: 2
    max_clusters: 1
    idle_timeout: 1h
    price_per_hour: 36
    sim: {boot_time: 100ms, terminate_time: 50ms, poll_interval: 50ms}
`, filepath.ToSlash(dir)))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(context.Background(), cfg, Options{Log: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := client.New(srv.URL(), "", nil)
	t.Cleanup(func() {
		terminateAll(t, c)
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
	})

	ctx := context.Background()
	tests := []struct {
		name   string
		args   []string
		want   berth.JobState
		reason berth.Reason
	}{
		{"sleep", []string{"sleep", "1s"}, berth.JobSucceeded, ""},
		{"fail", []string{"fail", "1s"}, berth.JobFailed, berth.ReasonStepFailed},
	}
	jobs := make([]berth.Job, len(tests))
	for i, tt := range tests {
		job, _, err := c.Submit(ctx, berth.JobSpec{Pool: "s", Name: tt.name, Steps: []berth.Step{{Name: tt.name, Args: tt.args}}})
		if err != nil {
			t.Fatalf("submit %s: %v", tt.name, err)
		}
		jobs[i] = job
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := jobs[i]
			deadline := time.Now().Add(30 * time.Second)
			for !job.State.Terminal() && time.Now().Before(deadline) {
				if job, err = c.WaitJob(ctx, job.ID, 10*time.Second); err != nil {
					t.Fatal(err)
				}
			}
			if job.State != tt.want || job.Reason != tt.reason {
				t.Fatalf("job %s (%s), want %s (%s)", job.State, job.Reason, tt.want, tt.reason)
			}
			a := job.Attempts[len(job.Attempts)-1]
			if ran := a.EndedAt.Sub(a.StartedAt); ran < time.Second {
				t.Errorf("the attempt ran %s, less than its step's 1s", ran)
			}
			if job.Cost <= 0 {
				t.Errorf("job cost %v", job.Cost)
			}
			logs, err := c.Logs(ctx, job.ID, 0, 0)
			if err != nil || !strings.Contains(logs.Stdout, "sim step") {
				t.Errorf("logs = %+v, %v", logs, err)
			}
		})
	}
	// A sim step that cannot run is refused at submission.
	if _, _, err := c.Submit(ctx, berth.JobSpec{Pool: "s", Steps: []berth.Step{{Args: []string{"sleep", "90"}}}}); !isStatus(err, 422) {
		t.Fatalf("submit of sleep without a unit: %v, want 422", err)
	}
}

// Forecasts start from the boot time a pool is configured with, seen
// through a poll; an EMR pool has none until its clusters show one.
func TestExpectedBoot(t *testing.T) {
	cfg, err := config.Parse([]byte(`
pools:
  - {name: l, provider: local, local: {boot_time: 2s, poll_interval: 300ms}}
  - {name: s, provider: sim, sim: {boot_time: 7m, poll_interval: 5s}}
  - {name: z, provider: sim}
`))
	if err != nil {
		t.Fatal(err)
	}
	b := &builder{o: Options{Clock: clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), Log: slog.New(slog.DiscardHandler)}}
	want := map[string]time.Duration{"l": 2*time.Second + 300*time.Millisecond, "s": 7*time.Minute + 5*time.Second, "z": time.Second}
	for _, p := range cfg.Pools {
		if p.Provider == config.ProviderLocal {
			p.Local.Dir = t.TempDir()
		}
		prov, err := b.provider(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		if got := expectedBoot(p, prov); got != want[p.Name] {
			t.Errorf("pool %s: expected boot %s, want %s", p.Name, got, want[p.Name])
		}
	}
	if got := expectedBoot(config.Pool{Provider: config.ProviderEMR}, nil); got != 0 {
		t.Errorf("an EMR pool: expected boot %s, want 0 (unknown)", got)
	}
}
