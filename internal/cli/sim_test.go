package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
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
