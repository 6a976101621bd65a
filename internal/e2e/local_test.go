package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/client"
	"github.com/berthhq/berth/internal/wait"
)

// localConfigYAML is the berth configuration of the local-provider test:
// SQLite and the pool's clusters in the berth's working directory, the API
// on a port of the system's choosing.
const localConfigYAML = `
listen: 127.0.0.1:0
store: sqlite://berth.db
log_level: debug
pools:
  - name: work
    provider: local
    slots: 2
    max_clusters: 3
    idle_timeout: 2s
    price_per_hour: 1.5
    local:
      boot_time: 300ms
      dir: clusters
`

// TestLocalCrashesLoseNoJobAndStartNoStepTwice runs a workload on a local
// pool, kills a cluster under a running job and kill -9s berth twice while
// work runs: every job succeeds, and no step starts twice in one attempt.
func TestLocalCrashesLoseNoJobAndStartNoStepTwice(t *testing.T) {
	t.Parallel()
	b := newBerths(t, localConfigYAML)
	markers := filepath.Join(b.dir, "markers")
	if err := os.Mkdir(markers, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p := b.startBerth()

	// Each step appends its provider name — job, attempt and step — to a
	// marker file when it starts, then works for a moment.
	// Job 0's first step works until the test has killed its cluster under
	// it (the release file), however loaded the machine, and a minute at
	// most.
	release := filepath.Join(b.dir, "release")
	step := func(i, s int) berth.Step {
		work := fmt.Sprintf("sleep 0.%d", 3+(i+s)%5)
		if i == 0 && s == 0 {
			work = fmt.Sprintf(`for _ in $(seq 600); do [ -e %s ] && break; sleep 0.1; done`, release)
		}
		script := fmt.Sprintf(`echo "$BERTH_STEP_NAME" >> %s/job-%d; %s`, markers, i, work)
		return berth.Step{Name: fmt.Sprintf("s%d", s), Args: []string{"sh", "-c", script}}
	}
	const jobs = 24
	ids := make([]string, jobs)
	spec := func(i int) berth.JobSpec {
		return berth.JobSpec{
			Pool: "work", Name: fmt.Sprintf("job-%d", i),
			Steps:          []berth.Step{step(i, 0), step(i, 1)},
			IdempotencyKey: fmt.Sprintf("e2e/%d", i),
		}
	}
	for i := range jobs {
		j, created, err := p.client.Submit(ctx, spec(i))
		if err != nil || !created {
			t.Fatalf("submit %d: created=%v err=%v", i, created, err)
		}
		ids[i] = j.ID
	}

	// Kill the cluster under job 0's long first step.
	var victim string
	wait.For(t, deadline, "job 0's first step running", func() bool {
		j, err := p.client.Job(ctx, ids[0])
		if a := j.CurrentAttempt(); err == nil && a != nil && a.Steps[len(a.Steps)-1].Index == 0 && a.Steps[len(a.Steps)-1].State == berth.StepRunning {
			victim = j.ClusterID
		}
		return victim != ""
	})
	if k, err := p.client.Kill(ctx, victim); err != nil || k.State != berth.ClusterLost {
		t.Fatalf("kill cluster %s: %+v %v", victim, k, err)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	// Crash berth twice while work runs, restarting it each time.
	for crash := range 2 {
		wait.For(t, deadline, "some progress before the crash", func() bool {
			return count(p.client, ids, isSucceeded) >= (crash+1)*jobs/4
		})
		p.kill()
		// Resubmitting after a crash, as a retried Airflow task would,
		// reattaches to the same job.
		p = b.startBerth()
		j, created, err := p.client.Submit(ctx, spec(0))
		if err != nil || created || j.ID != ids[0] {
			t.Fatalf("resubmit after crash: id=%s created=%v err=%v", j.ID, created, err)
		}
	}

	wait.For(t, deadline, "every job to end", func() bool {
		return count(p.client, ids, berth.JobState.Terminal) == jobs
	})

	lost := 0
	for i, id := range ids {
		j, err := p.client.Job(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State != berth.JobSucceeded {
			t.Errorf("job %d ended %s (%s)", i, j.State, j.Reason)
		}
		for _, a := range j.Attempts {
			if a.Reason == berth.ReasonClusterLost {
				lost++
			}
			if a.Reason != berth.ReasonClusterLost && a.Reason != berth.ReasonSucceeded {
				t.Errorf("job %d attempt %d ended %s", i, a.N, a.Reason)
			}
		}
		checkMarkers(t, filepath.Join(markers, fmt.Sprintf("job-%d", i)), j)
	}
	if lost == 0 {
		t.Errorf("no attempt was recorded as cluster_lost after a cluster was killed under a running job")
	}

	// Leave nothing running: terminate every cluster, then stop cleanly.
	tctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	if err := p.client.TerminateAll(tctx, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if clean := p.stop(); !clean || p.err != nil {
		t.Fatalf("berth #%d after SIGTERM: exited by itself %v, %v", p.n, clean, p.err)
	}
}

// checkMarkers asserts that no step started twice in one attempt and that
// the succeeded attempt ran each of its steps exactly once.
func checkMarkers(t *testing.T, path string, j berth.Job) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("job %s: %v", j.Name, err)
		return
	}
	seen := map[string]int{}
	for _, line := range strings.Fields(string(data)) {
		seen[line]++
		if seen[line] > 1 {
			t.Errorf("job %s: step %s started %d times", j.Name, line, seen[line])
		}
	}
	last := j.Attempts[len(j.Attempts)-1]
	for s := last.FirstStep; s < len(j.Steps); s++ {
		if name := berth.StepName(j.ID, last.N, s); seen[name] != 1 {
			t.Errorf("job %s: final attempt's step %s started %d times, want 1", j.Name, name, seen[name])
		}
	}
}

func isSucceeded(s berth.JobState) bool { return s == berth.JobSucceeded }

// count counts the jobs in a state ok accepts; a job berth does not
// answer for counts as in none.
func count(c *client.Client, ids []string, ok func(berth.JobState) bool) int {
	n := 0
	for _, id := range ids {
		j, err := c.Job(context.Background(), id)
		if err == nil && ok(j.State) {
			n++
		}
	}
	return n
}
