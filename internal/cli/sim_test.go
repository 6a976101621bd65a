package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/store"
	"github.com/berthhq/berth/internal/store/sqlite"
)

const tinyWorkload = `
seed: 2
pools:
  - {name: a, provider: sim, slots: 2, max_clusters: 2, idle_timeout: 5m, price_per_hour: 6, sim: {boot_time: 5m}}
pipelines:
  - {name: p, count: 2, every: 30m, phases: [{pool: a, jobs: 3, duration: 10m}, {pool: a, duration: 5m}]}
`

// berth sim -o json prints exactly the documented keys for every policy.
func TestSimJSON(t *testing.T) {
	h := newHarness(t)
	path := filepath.Join(t.TempDir(), "w.yaml")
	if err := os.WriteFile(path, []byte(tinyWorkload), 0o600); err != nil {
		t.Fatal(err)
	}
	svg := filepath.Join(t.TempDir(), "t.svg")
	r := h.mustRun(t, "sim", path, "-o", "json", "--timeline", svg)
	var out map[string]map[string]map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out) != 1 {
		t.Fatalf("not {\"policies\": ...}: %v\n%s", err, r.stdout)
	}
	want := []string{"cluster_hours", "cost", "idle_fraction", "interventions", "jobs_lost", "latency_mean", "latency_p95", "makespan", "wait_p50", "wait_p95"}
	for _, p := range []string{"berth", "airflow-static", "cluster-per-phase", "oracle"} {
		res, ok := out["policies"][p]
		if !ok {
			t.Fatalf("no policy %s in %s", p, r.stdout)
		}
		var keys []string
		for k := range res {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, want) {
			t.Errorf("%s keys %v, want %v", p, keys, want)
		}
		if _, ok := res["cost"].(float64); !ok {
			t.Errorf("%s cost %v is not a number", p, res["cost"])
		}
		if s, _ := res["latency_mean"].(string); !strings.HasSuffix(s, "s") {
			t.Errorf("%s latency_mean %v is not a duration string", p, res["latency_mean"])
		}
	}
	if _, err := os.Stat(svg); err != nil {
		t.Errorf("no timeline: %v", err)
	}
	r = h.mustRun(t, "sim", path, "--policies", "berth,oracle")
	if !strings.Contains(r.stdout, "berth ") || strings.Contains(r.stdout, "airflow-static") {
		t.Errorf("--policies berth,oracle printed:\n%s", r.stdout)
	}
}

// A bad workload or flag is a clear error, exit 2 for usage and 1 for
// the file.
func TestSimErrors(t *testing.T) {
	h := newHarness(t)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte(strings.Replace(tinyWorkload, "pool: a, jobs: 3", "pool: z, jobs: 3", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"sim"}, 2, "want one workload file"},
		{[]string{"sim", bad, "--policies", "fifo"}, 2, `unknown policy "fifo"`},
		{[]string{"sim", bad}, 1, `"z" is not a pool of the workload`},
		{[]string{"sim", bad + ".missing"}, 1, "read workload"},
	} {
		r := h.run(t.Context(), "", tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("berth %v: exit %d, stderr %q; want %d and %q", tt.args, r.code, r.stderr, tt.code, tt.want)
		}
	}
}

// --from-store replays a store's jobs against the configuration's pools,
// changed by --pool and --set; a missing store is an error, not a new one.
func TestSimFromStore(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "berth.db")
	st, err := sqlite.Open(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, task := range []string{"extract", "load", "load"} {
		created := t0.Add(-2*time.Hour + time.Duration(i/2)*30*time.Minute)
		j := berth.Job{
			ID: fmt.Sprintf("job-%d", i), Pool: "default", State: berth.JobQueued, Resume: berth.ResumeFromStart,
			MaxInfraRetries: berth.DefaultInfraRetry, CreatedAt: created, Attempts: []berth.Attempt{},
			Labels: map[string]string{"dag_id": "d", "run_id": "r1", "task_id": task, "map_index": fmt.Sprint(i)},
			Steps:  []berth.JobStep{{Step: berth.Step{Name: "s", Args: []string{"true"}}, State: berth.StepPending}},
		}
		if j, _, err = st.CreateJob(t.Context(), j); err != nil {
			t.Fatal(err)
		}
		start := created.Add(time.Minute)
		j.Attempts = []berth.Attempt{{N: 1, ClusterID: "cl-1", State: berth.AttemptSucceeded, Reason: berth.ReasonSucceeded,
			StartedAt: start, EndedAt: start.Add(20 * time.Minute), Steps: []berth.AttemptStep{{Index: 0, State: berth.StepSucceeded}}}}
		j.State, j.Reason, j.ClusterID, j.StartedAt, j.EndedAt = berth.JobSucceeded, berth.ReasonSucceeded, "cl-1", start, start.Add(20*time.Minute)
		j.Steps[0].State = berth.StepSucceeded
		if err := st.Commit(t.Context(), store.Batch{Jobs: []berth.Job{j}}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	r := h.mustRun(t, "sim", "--from-store", path, "--pool", "default", "--set", "max_clusters=2,idle_timeout=auto", "-o", "json")
	var out struct {
		Policies map[string]struct {
			JobsLost    int    `json:"jobs_lost"`
			LatencyMean string `json:"latency_mean"`
		} `json:"policies"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if b := out.Policies["berth"]; b.JobsLost != 0 || b.LatencyMean == "" || b.LatencyMean == "0s" {
		t.Errorf("berth replay %+v from %s", b, r.stdout)
	}
	if !strings.Contains(r.stderr, "replaying 3 jobs in 1 pipeline runs") {
		t.Errorf("stderr %q does not say what it replays", r.stderr)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"sim", "--from-store", filepath.Join(dir, "none.db")}, "--from-store"},
		{[]string{"sim", "--from-store", path, "--pool", "default"}, "--pool and --set go together"},
		{[]string{"sim", "--from-store", path, "--pool", "nope", "--set", "slots=2"}, `"nope"`},
		{[]string{"sim", "--from-store", path, "--pool", "default", "--set", "colour=red"}, `unknown key "colour"`},
	} {
		if r := h.run(t.Context(), "", tt.args...); r.code == 0 || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("berth %v: exit %d, stderr %q; want an error with %q", tt.args, r.code, r.stderr, tt.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "none.db")); err == nil {
		t.Error("--from-store made a store where there was none")
	}
}
