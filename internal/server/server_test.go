package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/client"
	"github.com/berthhq/berth/internal/config"
)

const token = "s3cret-token"

// testConfig is a server on a free port with its store and one local pool
// in dir, and the token.
func testConfig(t *testing.T, dir string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(fmt.Appendf(nil, `
listen: 127.0.0.1:0
store: sqlite://%[1]s/berth.db
token: %[2]s
pools:
  - {name: p, provider: local, slots: 2, max_clusters: 1, idle_timeout: 1h, price_per_hour: 10, local: {boot_time: 100ms, dir: %[1]s/local}}
`, filepath.ToSlash(dir), token))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func testOptions(t *testing.T) Options {
	return Options{Log: slog.New(slog.NewTextHandler(t.Output(), nil))}
}

// newTestServer starts a real server with one local pool and the token.
func newTestServer(t *testing.T) (*Server, *client.Client) {
	t.Helper()
	srv, err := New(context.Background(), testConfig(t, t.TempDir()), testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := client.New(srv.URL(), token, nil)
	t.Cleanup(func() {
		terminateAll(t, c)
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
	})
	return srv, c
}

// A real server end to end over HTTP: auth, a job on the local provider,
// its logs and events, the pool's counts and the metrics.
func TestServerRunsAJobOverHTTP(t *testing.T) {
	srv, c := newTestServer(t)
	ctx := context.Background()
	if _, _, err := client.New(srv.URL(), "", nil).Jobs(ctx, client.JobsQuery{}); !isStatus(err, http.StatusUnauthorized) {
		t.Fatalf("no token: %v, want 401", err)
	}
	job, created, err := c.Submit(ctx, berth.JobSpec{Pool: "p", Steps: []berth.Step{
		{Name: "hello", Args: []string{"sh", "-c", "echo hello-from-step; echo oops >&2"}},
	}})
	if err != nil || !created {
		t.Fatalf("submit: %v", err)
	}
	for !job.State.Terminal() {
		if job, err = c.WaitJob(ctx, job.ID, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if job.State != berth.JobSucceeded || job.Cost <= 0 {
		t.Fatalf("job %s, cost %v", job.State, job.Cost)
	}
	logs, err := c.Logs(ctx, job.ID, 0, 0)
	if err != nil || !strings.Contains(logs.Stdout, "hello-from-step") || !strings.Contains(logs.Stderr, "oops") {
		t.Fatalf("logs = %+v, %v", logs, err)
	}
	events, err := c.Events(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, e := range events {
		kinds[e.Kind] = true
	}
	for _, k := range []string{"queued", "placed", "succeeded"} {
		if !kinds[k] {
			t.Errorf("events lack %q: %+v", k, events)
		}
	}
	cl, err := c.Cluster(ctx, job.ClusterID)
	if err != nil || len(cl.Attempts) != 1 || cl.Attempts[0].JobID != job.ID {
		t.Fatalf("cluster detail = %+v, %v", cl, err)
	}
	ps, err := c.Pool(ctx, "p")
	if err != nil || ps.Clusters[berth.ClusterReady] != 1 || ps.FreeSlots != 2 {
		t.Fatalf("pool = %+v, %v", ps, err)
	}

	body := get(t, srv.URL()+"/metrics")
	for _, want := range []string{
		`berth_attempts_total{pool="p",reason="succeeded"} 1`,
		`berth_job_start_latency_seconds_count{pool="p"} 1`,
		`berth_clusters{pool="p",state="ready"} 1`,
		`berth_jobs{pool="p",state="queued"} 0`,
		`berth_cluster_cost_live{pool="p"}`,
		`berth_loop_pass_seconds_count`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func isStatus(err error, status int) bool {
	var ce *client.Error
	return errors.As(err, &ce) && ce.Status == status
}

func get(t *testing.T, url string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

// terminateAll ends every cluster so the test leaves no process behind.
func terminateAll(t *testing.T, c *client.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.TerminateAll(ctx, 20*time.Millisecond); err != nil {
		t.Error(err)
	}
}

// No input makes the real server answer 5xx, and bad input changes
// nothing.
func TestBadInputGetsA4xxAndChangesNothing(t *testing.T) {
	srv, c := newTestServer(t)
	big := `{"pool": "p", "name": "` + strings.Repeat("x", 2<<20) + `", "steps": [{"args": ["true"]}]}`
	many := `{"pool": "p", "steps": [` + strings.TrimSuffix(strings.Repeat(`{"args": ["true"]},`, 300), ",") + `]}`
	tests := []struct {
		method, path, body, contentType string
		want                            int
	}{
		{"POST", "/v1/jobs", `{`, "", 400},
		{"POST", "/v1/jobs", `[]`, "", 400},
		{"POST", "/v1/jobs", `null`, "", 400},
		{"POST", "/v1/jobs", ``, "", 400},
		{"POST", "/v1/jobs", `{"pool": "p", "steps": [{"args": ["true"]}]}{}`, "", 400},
		{"POST", "/v1/jobs", `{"pool": "p", "steps": [{"args": ["true"]}], "stepz": 1}`, "", 400},
		{"POST", "/v1/jobs", `{"pool": 5, "steps": [{"args": ["true"]}]}`, "", 400},
		{"POST", "/v1/jobs", `{"pool": "nope", "steps": [{"args": ["true"]}]}`, "", 422},
		{"POST", "/v1/jobs", `{"pool": "p", "steps": []}`, "", 400},
		{"POST", "/v1/jobs", `{"pool": "p", "steps": [{"args": []}]}`, "", 400},
		{"POST", "/v1/jobs", `{"pool": "p", "steps": [{"args": ["a\u0000b"]}]}`, "", 400},
		{"POST", "/v1/jobs", `{"pool": "p", "steps": [{"args": ["true"]}], "retries": -1}`, "", 400},
		{"POST", "/v1/jobs", `{"pool": "p", "steps": [{"args": ["true"]}], "priority": 1e12}`, "", 400},
		{"POST", "/v1/jobs", `{"pool": "p", "steps": [{"args": ["true"]}], "timeout": "forever"}`, "", 400},
		{"POST", "/v1/jobs", `{"pool": "p", "steps": [{"args": ["true"]}], "timeout": 5}`, "", 400},
		{"POST", "/v1/jobs", `{"pool": "p", "steps": [{"args": ["true"]}], "timeout": "-1s"}`, "", 400},
		{"POST", "/v1/jobs", `{"pool": "p", "steps": [{"args": ["true"]}], "resume": "later"}`, "", 400},
		{"POST", "/v1/jobs", `{"pool": "p", "steps": [{"args": ["true"]}], "labels": {"a=b": "c"}}`, "", 400},
		{"POST", "/v1/jobs", `{"pool": "p", "steps": [{"args": ["true"]}], "affinity_required": true}`, "", 400},
		{"POST", "/v1/jobs", `{"pool": "p", "steps": [{"args": ["true"], "env": {"A=B": "c"}}]}`, "", 400},
		{"POST", "/v1/jobs", many, "", 400},
		{"POST", "/v1/jobs", `{"pool": "p", "steps": [{"jar": "s3://b/x.jar", "args": ["a"]}]}`, "", 422},
		{"POST", "/v1/jobs", big, "", 413},
		{"POST", "/v1/jobs", `{"pool": "p", "steps": [{"args": ["true"]}]}`, "text/plain", 415},
		{"PUT", "/v1/jobs", `{}`, "", 405},
		{"GET", "/v1/jobs?limit=0", "", "", 400},
		{"GET", "/v1/jobs?limit=abc", "", "", 400},
		{"GET", "/v1/jobs?state=sleeping", "", "", 400},
		{"GET", "/v1/jobs?cursor=%00garbage", "", "", 400},
		{"GET", "/v1/jobs?label=novalue", "", "", 400},
		{"GET", "/v1/jobs/job-nope", "", "", 404},
		{"GET", "/v1/jobs/job-nope?wait=abc", "", "", 400},
		{"GET", "/v1/jobs/job-nope?wait=1h", "", "", 400},
		{"GET", "/v1/jobs/job-nope/logs?attempt=x", "", "", 400},
		{"GET", "/v1/jobs/job-nope/logs", "", "", 404},
		{"GET", "/v1/jobs/job-nope/events", "", "", 404},
		{"POST", "/v1/jobs/job-nope/cancel", "", "", 404},
		{"GET", "/v1/pools/nope", "", "", 404},
		{"GET", "/v1/clusters?state=melting", "", "", 400},
		{"GET", "/v1/clusters/cl-nope", "", "", 404},
		{"POST", "/v1/clusters/cl-nope/drain", "", "", 404},
		{"POST", "/v1/clusters/cl-nope/terminate", "", "", 404},
		{"POST", "/v1/clusters/cl-nope/kill", "", "", 404},
		{"GET", "/v1/nothing", "", "", 404},
	}
	for _, tt := range tests {
		name := tt.method + " " + tt.path + " " + tt.body
		if len(name) > 80 {
			name = name[:80]
		}
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL()+tt.path, strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+token)
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tt.want, b)
			}
			if !strings.Contains(string(b), `"error"`) || !strings.Contains(string(b), `"message"`) {
				t.Errorf("body is not the error shape: %s", b)
			}
		})
	}
	jobs, _, err := c.Jobs(context.Background(), client.JobsQuery{})
	if err != nil || len(jobs) != 0 {
		t.Fatalf("bad input stored %d jobs (%v)", len(jobs), err)
	}
	if cs, err := c.Clusters(context.Background(), "", ""); err != nil || len(cs) != 0 {
		t.Fatalf("bad input started %d clusters (%v)", len(cs), err)
	}
}

// Two servers on one database: the second refuses to start, saying why,
// and the first goes on serving. Once the first has stopped, the second
// starts and finds the first one's work.
func TestSecondServerOnOneStoreRefusesToStart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	first, err := New(ctx, cfg, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(ctx); err != nil {
		t.Fatal(err)
	}
	c := client.New(first.URL(), token, nil)
	firstUp := true
	t.Cleanup(func() {
		if firstUp {
			terminateAll(t, c)
			_ = first.Stop()
		}
	})

	second, err := New(ctx, cfg, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	secondUp := false
	t.Cleanup(func() {
		if secondUp {
			terminateAll(t, client.New(second.URL(), token, nil))
			_ = second.Stop()
		} else {
			_ = second.store.Close()
		}
	})
	err = second.Start(ctx)
	if err == nil {
		secondUp = true
		t.Fatal("a second server started on a store in use")
	}
	db := filepath.Join(dir, "berth.db")
	if !errors.Is(err, berth.ErrConflict) || !strings.Contains(err.Error(), "another berth server holds the store "+db) {
		t.Fatalf("second server: %v, want berth.ErrConflict saying another server holds %s", err, db)
	}

	job, _, err := c.Submit(ctx, berth.JobSpec{Pool: "p", Steps: []berth.Step{{Args: []string{"true"}}}})
	if err != nil {
		t.Fatalf("submit to the first server: %v", err)
	}
	for !job.State.Terminal() {
		if job, err = c.WaitJob(ctx, job.ID, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if job.State != berth.JobSucceeded {
		t.Fatalf("job on the first server %s, want succeeded", job.State)
	}

	terminateAll(t, c)
	firstUp = false
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := second.Start(ctx); err != nil {
		t.Fatalf("second server once the first stopped: %v", err)
	}
	secondUp = true
	got, err := client.New(second.URL(), token, nil).Job(ctx, job.ID)
	if err != nil || got.State != berth.JobSucceeded {
		t.Fatalf("the first server's job on the second: %+v, %v", got, err)
	}
}

// A negative EMR rate scale is refused before anything is opened.
func TestNegativeEMRRateScaleIsRefused(t *testing.T) {
	dir := t.TempDir()
	_, err := New(context.Background(), testConfig(t, dir), Options{EMRRateScale: -1})
	if err == nil || !strings.Contains(err.Error(), "EMR rate scale -1: must not be negative") {
		t.Fatalf("New with EMRRateScale -1: %v, want an error naming the scale", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "berth.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused server made its store (%v)", err)
	}
}
