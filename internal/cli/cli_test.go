package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/api"
	"github.com/berthhq/berth/internal/api/apitest"
	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/clock"
	"github.com/berthhq/berth/internal/wait"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var t0 = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)

const token = "s3cret"

// harness is the CLI against the real API over the fake service.
type harness struct {
	svc *apitest.Service
	clk *clock.Fake
	srv *httptest.Server
	// terminal makes the CLI believe stdout is a terminal.
	terminal bool
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	clk := clock.NewFake(t0)
	svc := apitest.New(clk)
	svc.Seed()
	srv := httptest.NewServer(api.New(api.Options{
		Service: svc,
		Token:   token,
		Log:     slog.New(slog.NewTextHandler(t.Output(), nil)),
	}))
	t.Cleanup(srv.Close)
	return &harness{svc: svc, clk: clk, srv: srv}
}

type result struct {
	code           int
	stdout, stderr string
}

// syncBuffer lets a test read what a command running in another goroutine
// wrote so far.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// run runs berth with args; the server and token come from the
// environment, as a user would set them.
func (h *harness) run(ctx context.Context, stdin string, args ...string) result {
	var stdout, stderr syncBuffer
	e := &env{
		stdin:  strings.NewReader(stdin),
		stdout: &stdout,
		stderr: &stderr,
		getenv: func(k string) string {
			return map[string]string{"BERTH_SERVER": h.srv.URL, "BERTH_TOKEN": token}[k]
		},
		clock:    h.clk,
		terminal: h.terminal,
		hc:       h.srv.Client(),
	}
	code := e.main(ctx, args)
	return result{code, stdout.String(), stderr.String()}
}

func (h *harness) mustRun(t *testing.T, args ...string) result {
	t.Helper()
	r := h.run(context.Background(), "", args...)
	if r.code != 0 {
		t.Fatalf("berth %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// fleet adds three jobs in three states to the seeded service, then moves
// the clock five minutes on:
//
//	job-0001  small, succeeded on cl-0001
//	job-0002  small, running its second step on cl-0001, after losing cl-0003
//	job-0003  spark, queued
func (h *harness) fleet(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, s := range []berth.JobSpec{
		{Pool: "small", Name: "phase-1", Steps: []berth.Step{{Name: "extract", Args: []string{"echo", "one"}}}, Labels: map[string]string{"dag_id": "nightly"}},
		{Pool: "small", Name: "phase-2", Steps: []berth.Step{
			{Name: "transform", Args: []string{"spark-submit", "s3://bucket/phase2.py", "--bin", "7"}},
			{Name: "load", Args: []string{"sh", "-c", "echo 'done'"}},
		}, Retries: 2, Priority: 5, Labels: map[string]string{"dag_id": "nightly", "task_id": "phase_2"},
			Then: []berth.Hint{{Pool: "spark", Jobs: 4}, {Pool: "small", Jobs: 1}}},
		{Pool: "spark", Steps: []berth.Step{{Jar: "s3://bucket/app.jar", MainClass: "com.example.Main", Args: []string{"--day", "2026-11-24"}}},
			ExecutionRoleArn: "arn:aws:iam::123456789012:role/nightly-runtime"},
	} {
		if _, _, err := h.svc.Submit(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(h.svc.Update("job-0001", func(j *berth.Job) {
		j.State, j.Reason, j.ClusterID = berth.JobSucceeded, berth.ReasonSucceeded, "cl-0001"
		j.StartedAt, j.EndedAt, j.Cost = at(10*time.Second), at(70*time.Second), 0.0083
		j.Steps[0].State = berth.StepSucceeded
		j.Attempts = []berth.Attempt{{N: 1, ClusterID: "cl-0001", State: berth.AttemptSucceeded, Reason: berth.ReasonSucceeded,
			StartedAt: at(10 * time.Second), EndedAt: at(70 * time.Second), Cost: 0.0083,
			Steps: []berth.AttemptStep{{Index: 0, State: berth.StepSucceeded}}}}
	}))
	must(h.svc.Update("job-0002", func(j *berth.Job) {
		j.State, j.ClusterID, j.InfraFailures = berth.JobRunning, "cl-0001", 1
		j.StartedAt, j.Cost = at(20*time.Second), 0.0125
		j.Steps[0].State, j.Steps[1].State = berth.StepSucceeded, berth.StepRunning
		j.Attempts = []berth.Attempt{
			{N: 1, ClusterID: "cl-0003", State: berth.AttemptFailed, Reason: berth.ReasonClusterLost,
				StartedAt: at(20 * time.Second), EndedAt: at(50 * time.Second), Cost: 0.0042,
				Steps: []berth.AttemptStep{{Index: 0, State: berth.StepCancelled}, {Index: 1, State: berth.StepPending}}},
			{N: 2, ClusterID: "cl-0001", State: berth.AttemptRunning, StartedAt: at(60 * time.Second), Cost: 0.0083,
				Steps: []berth.AttemptStep{{Index: 0, State: berth.StepSucceeded}, {Index: 1, State: berth.StepRunning}}},
		}
	}))
	h.clk.Advance(5 * time.Minute)
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run go test -update to accept it)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestGolden(t *testing.T) {
	h := newHarness(t)
	h.fleet(t)
	// spark is blocked, small is not: the pool goldens show both.
	if err := h.svc.Block("spark", "bootstrap action 1 failed: exit 3", t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	// job-0003 waits for spark, as the service says of a blocked pool.
	if err := h.svc.Update("job-0003", func(j *berth.Job) {
		j.Wait = berth.Wait{WaitReason: berth.WaitPoolBlocked, WaitMessage: "pool spark is blocked: bootstrap action 1 failed: exit 3"}
	}); err != nil {
		t.Fatal(err)
	}
	h.svc.SetStrays("spark", "j-2AXXXXXXGAPLF")
	tests := []struct {
		file string
		args []string
	}{
		{"jobs_ls.txt", []string{"jobs", "ls"}},
		{"jobs_ls_running.txt", []string{"jobs", "ls", "--state", "running", "--pool", "small"}},
		{"jobs_get.txt", []string{"jobs", "get", "job-0002"}},
		{"jobs_get_queued.txt", []string{"jobs", "get", "job-0003"}},
		{"jobs_events.txt", []string{"jobs", "events", "job-0001"}},
		{"clusters_ls.txt", []string{"clusters", "ls"}},
		{"clusters_get.txt", []string{"clusters", "get", "cl-0001"}},
		{"pools_ls.txt", []string{"pools", "ls"}},
		{"pools_get.txt", []string{"pools", "get", "spark"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			golden(t, tt.file, h.mustRun(t, tt.args...).stdout)
		})
	}
}

// A queued job's wait and estimated start show in jobs ls (the WAIT/ETA
// column) and jobs get (the Waiting and ETA lines).
func TestJobWaitShown(t *testing.T) {
	h := newHarness(t)
	h.fleet(t)
	// Five minutes in, a cluster starting for job-0003 is due in two.
	if err := h.svc.Update("job-0003", func(j *berth.Job) {
		j.Wait = berth.Wait{WaitReason: berth.WaitClusterStarting, WaitMessage: "cluster cl-0004 is starting for it, expected ready at 2026-11-24T09:07:00Z",
			WaitCluster: "cl-0004", WaitUntil: t0.Add(7 * time.Minute), ETA: t0.Add(7 * time.Minute)}
	}); err != nil {
		t.Fatal(err)
	}
	golden(t, "jobs_ls_waiting.txt", h.mustRun(t, "jobs", "ls").stdout)
	golden(t, "jobs_get_waiting.txt", h.mustRun(t, "jobs", "get", "job-0003").stdout)
	// The JSON is the API's.
	out := h.mustRun(t, "jobs", "get", "-o", "json", "job-0003").stdout
	for _, want := range []string{`"wait_reason": "cluster_starting"`, `"wait_cluster": "cl-0004"`, `"eta": "2026-11-24T09:07:00Z"`} {
		if !strings.Contains(out, want) {
			t.Errorf("jobs get -o json lacks %s:\n%s", want, out)
		}
	}
}

func TestJobsList(t *testing.T) {
	h := newHarness(t)
	h.fleet(t)
	for _, tt := range []struct {
		args []string
		want []string // job ids, in order
	}{
		{[]string{"jobs", "ls"}, []string{"job-0003", "job-0002", "job-0001"}},
		{[]string{"jobs", "ls", "--pool", "small"}, []string{"job-0002", "job-0001"}},
		{[]string{"jobs", "ls", "--state=queued"}, []string{"job-0003"}},
		{[]string{"jobs", "ls", "--label", "dag_id=nightly", "--label", "task_id=phase_2"}, []string{"job-0002"}},
		{[]string{"jobs", "ls", "--limit", "1"}, []string{"job-0003"}},
		{[]string{"jobs", "ls", "--limit", "1", "--cursor", "job-0003"}, []string{"job-0002"}},
	} {
		r := h.mustRun(t, tt.args...)
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n")[1:] {
			got = append(got, strings.Fields(line)[0])
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%v: rows %v, want %v\n%s", tt.args, got, tt.want, r.stdout)
		}
	}
	r := h.mustRun(t, "jobs", "ls", "--limit", "1")
	if !strings.Contains(r.stderr, "--cursor job-0003") {
		t.Errorf("no hint of the next page on stderr: %q", r.stderr)
	}
}

func TestJSONOutput(t *testing.T) {
	h := newHarness(t)
	h.fleet(t)
	tests := []struct {
		args []string
		key  string // a key the JSON must have
	}{
		{[]string{"jobs", "ls", "-o", "json"}, "jobs"},
		{[]string{"jobs", "ls", "-o", "json", "--state", "failed"}, "jobs"},
		{[]string{"jobs", "get", "-o", "json", "job-0002"}, "attempts"},
		{[]string{"jobs", "get", "job-0002", "-o", "json"}, "steps"},
		{[]string{"jobs", "events", "job-0001", "-o", "json"}, "events"},
		{[]string{"clusters", "ls", "-o", "json"}, "clusters"},
		{[]string{"clusters", "get", "cl-0002", "-o", "json"}, "events"},
		{[]string{"pools", "ls", "-o", "json"}, "pools"},
		{[]string{"pools", "get", "small", "-o", "json"}, "idle_timeout"},
		{[]string{"clusters", "drain", "cl-0001", "-o", "json"}, "state"},
		{[]string{"pools", "unblock", "small", "-o", "json"}, "blocked"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := h.mustRun(t, tt.args...)
			var m map[string]json.RawMessage
			if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
				t.Fatalf("not a JSON object: %v\n%s", err, r.stdout)
			}
			if v, ok := m[tt.key]; !ok || string(v) == "null" {
				t.Errorf("no %q in %s", tt.key, r.stdout)
			}
			if !strings.HasPrefix(r.stdout, "{\n  \"") {
				t.Errorf("not indented: %.40q", r.stdout)
			}
		})
	}
}

func TestSubmit(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "job.json")
	if err := os.WriteFile(file, []byte(`{"pool": "small", "name": "from-file", "steps": [{"args": ["echo", "hi"]}], "labels": {"a": "1"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		stdin string
		args  []string
		check func(t *testing.T, j berth.Job)
	}{
		{"file", "", []string{"submit", file}, func(t *testing.T, j berth.Job) {
			if j.Name != "from-file" || j.Pool != "small" || !slices.Equal(j.Steps[0].Args, []string{"echo", "hi"}) {
				t.Errorf("job %+v is not the file's", j)
			}
		}},
		{"stdin", `{"pool": "spark", "steps": [{"args": ["x"]}]}`, []string{"submit", "-"}, func(t *testing.T, j berth.Job) {
			if j.Pool != "spark" {
				t.Errorf("pool %q, want spark", j.Pool)
			}
		}},
		{"file with flags over it", "", []string{"submit", "--name", "renamed", file, "--label", "b=2", "--idempotency-key", "k7", "--timeout", "90s",
			"--execution-role-arn", "arn:aws:iam::123456789012:role/flag"}, func(t *testing.T, j berth.Job) {
			if j.Name != "renamed" || j.IdempotencyKey != "k7" || j.Labels["a"] != "1" || j.Labels["b"] != "2" || j.Timeout.Std() != 90*time.Second ||
				j.ExecutionRoleArn != "arn:aws:iam::123456789012:role/flag" {
				t.Errorf("job %+v does not have the flags over the file", j)
			}
		}},
		{"a jar step and a role from a file", `{"pool": "spark", "execution_role_arn": "arn:aws:iam::123456789012:role/file",
			"steps": [{"jar": "s3://bucket/app.jar", "properties": {"k": "v"}}]}`, []string{"submit", "-"}, func(t *testing.T, j berth.Job) {
			if j.ExecutionRoleArn != "arn:aws:iam::123456789012:role/file" || len(j.Steps) != 1 || j.Steps[0].Properties["k"] != "v" {
				t.Errorf("job %+v does not have the file's role and properties", j)
			}
		}},
		{"a role flag over the file's", `{"pool": "spark", "execution_role_arn": "arn:aws:iam::123456789012:role/file", "steps": [{"args": ["x"]}]}`,
			[]string{"submit", "--execution-role-arn", "arn:aws:iam::123456789012:role/flag", "-"}, func(t *testing.T, j berth.Job) {
				if j.ExecutionRoleArn != "arn:aws:iam::123456789012:role/flag" {
					t.Errorf("execution role %q, want the flag's", j.ExecutionRoleArn)
				}
			}},
		{"then flags", "", []string{"submit", "--pool", "small", "--then", "spark:3", "--then", "small", "--", "true"}, func(t *testing.T, j berth.Job) {
			if want := []berth.Hint{{Pool: "spark", Jobs: 3}, {Pool: "small", Jobs: 1}}; !slices.Equal(j.Then, want) {
				t.Errorf("then %v, want %v", j.Then, want)
			}
		}},
		{"then from a file", `{"pool": "small", "steps": [{"args": ["x"]}], "then": [{"pool": "spark", "jobs": 2}]}`, []string{"submit", "-"},
			func(t *testing.T, j berth.Job) {
				if want := []berth.Hint{{Pool: "spark", Jobs: 2}}; !slices.Equal(j.Then, want) {
					t.Errorf("then %v, want the file's %v", j.Then, want)
				}
			}},
		{"a then flag over the file's", `{"pool": "small", "steps": [{"args": ["x"]}], "then": [{"pool": "spark", "jobs": 2}, {"pool": "small", "jobs": 1}]}`,
			[]string{"submit", "--then", "small:5", "-"}, func(t *testing.T, j berth.Job) {
				if want := []berth.Hint{{Pool: "small", Jobs: 5}}; !slices.Equal(j.Then, want) {
					t.Errorf("then %v, want the flag's %v in place of the file's", j.Then, want)
				}
			}},
		{"command", "", []string{"submit", "--pool", "small", "--name", "n", "--priority", "5", "--retries", "2",
			"--affinity", "nightly", "--affinity-required", "--idempotency-key", "k", "--label", "a=1", "--label", "b=2",
			"--timeout", "2h", "--resume", "unfinished", "--max-infra-retries", "0", "--execution-role-arn", "arn:aws:iam::123456789012:role/r",
			"--", "echo", "hello world", "--not-a-flag"},
			func(t *testing.T, j berth.Job) {
				if len(j.Steps) != 1 || !slices.Equal(j.Steps[0].Args, []string{"echo", "hello world", "--not-a-flag"}) || j.Steps[0].Name != "echo" {
					t.Errorf("steps %+v, want one step with the command", j.Steps)
				}
				if j.Name != "n" || j.Priority != 5 || j.Retries != 2 || j.Affinity != "nightly" || !j.AffinityRequired ||
					j.IdempotencyKey != "k" || j.Labels["a"] != "1" || j.Labels["b"] != "2" || j.Timeout.Std() != 2*time.Hour ||
					j.Resume != berth.ResumeUnfinished || j.MaxInfraRetries != 0 || j.ExecutionRoleArn != "arn:aws:iam::123456789012:role/r" {
					t.Errorf("job %+v does not carry the flags", j)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			r := h.run(context.Background(), tt.stdin, tt.args...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			id := strings.TrimSpace(r.stdout)
			if !berth.ValidID(id) || strings.Count(r.stdout, "\n") != 1 {
				t.Fatalf("stdout %q, want the job id alone on a line", r.stdout)
			}
			j, err := h.svc.Job(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, j)
		})
	}

	t.Run("json and idempotency", func(t *testing.T) {
		h := newHarness(t)
		args := []string{"submit", "-o", "json", "--pool", "small", "--idempotency-key", "k", "--", "true"}
		first := h.mustRun(t, args...)
		var j berth.Job
		if err := json.Unmarshal([]byte(first.stdout), &j); err != nil || j.ID == "" {
			t.Fatalf("-o json printed %q: %v", first.stdout, err)
		}
		again := h.mustRun(t, args...)
		if again.stdout != first.stdout {
			t.Errorf("resubmission printed\n%s\nwant the same job\n%s", again.stdout, first.stdout)
		}
		if !strings.Contains(again.stderr, j.ID) || !strings.Contains(again.stderr, "idempotency") {
			t.Errorf("no note of the matched key on stderr: %q", again.stderr)
		}
	})
}

func TestUsageErrors(t *testing.T) {
	h := newHarness(t)
	before := h.svc.Mutations()
	tests := []struct {
		args []string
		msg  string
	}{
		{nil, "usage: berth <command>"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"submit"}, "want one FILE"},
		{[]string{"submit", "a.json", "b.json"}, "want one FILE"},
		{[]string{"submit", "--pool", "small", "--"}, "no command after --"},
		{[]string{"submit", "a.json", "--", "echo"}, "not both"},
		{[]string{"submit", "--", "echo"}, "--pool is required"},
		{[]string{"submit", "--priority", "high", "--", "echo"}, `invalid value "high"`},
		{[]string{"submit", "--label", "novalue", "--pool", "small", "--", "echo"}, "want key=value"},
		{[]string{"submit", "--timeout", "soon", "--pool", "small", "--", "echo"}, "want a duration"},
		{[]string{"submit", "--then", "spark:many", "--pool", "small", "--", "echo"}, `want POOL or POOL:JOBS with JOBS a number, got "spark:many"`},
		{[]string{"submit", "--then", ":2", "--pool", "small", "--", "echo"}, `want POOL or POOL:JOBS, got ":2"`},
		{[]string{"submit", "--then", "", "--pool", "small", "--", "echo"}, `want POOL or POOL:JOBS, got ""`},
		{[]string{"jobs"}, "usage: berth jobs <command>"},
		{[]string{"jobs", "list"}, `unknown command "jobs list"`},
		{[]string{"jobs", "get"}, "want one job id"},
		{[]string{"jobs", "get", "a", "b"}, "want one job id"},
		{[]string{"jobs", "ls", "extra"}, "no arguments expected"},
		{[]string{"jobs", "ls", "-o", "yaml"}, `-o "yaml": want table or json`},
		{[]string{"jobs", "ls", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"jobs", "ls", "--limit", "ten"}, `invalid value "ten"`},
		{[]string{"jobs", "logs", "job-0001", "--step", "-1"}, "cannot be negative"},
		{[]string{"clusters", "kill"}, "want one cluster id"},
		{[]string{"pools", "get"}, "want one pool name"},
		{[]string{"pools", "unblock"}, "want one pool name"},
		{[]string{"pools", "unblock", "a", "b"}, "want one pool name"},
		{[]string{"version", "now"}, "no arguments expected"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := h.run(context.Background(), "", tt.args...)
			if r.code != 2 {
				t.Errorf("exit %d, want 2\nstderr: %s", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.msg) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tt.msg)
			}
			if r.stdout != "" {
				t.Errorf("a usage error wrote to stdout: %q", r.stdout)
			}
		})
	}
	if h.svc.Mutations() != before {
		t.Errorf("usage errors changed the service: %d mutations", h.svc.Mutations())
	}
}

func TestAPIErrors(t *testing.T) {
	h := newHarness(t)
	h.fleet(t)
	gone := httptest.NewServer(nil)
	gone.Close()
	badConfig := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(badConfig, []byte("pools: [{name: tiny, provider: local, slots: 0}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		msg  string
	}{
		{[]string{"jobs", "get", "job-4242"}, "berth: job job-4242 not found\n"},
		{[]string{"jobs", "get", "NOT-AN-ID"}, "berth: job NOT-AN-ID not found\n"},
		{[]string{"jobs", "cancel", "job-0001"}, "berth: job job-0001 has already ended (succeeded)\n"},
		{[]string{"jobs", "logs", "job-0002", "--step", "1"}, "berth: step 1 of job job-0002 did not run in attempt 2\n"},
		{[]string{"jobs", "ls", "--state", "sleeping"}, `parameter "state"`},
		{[]string{"submit", "--pool", "huge", "--", "echo"}, `berth: pool: unknown pool "huge" (configured: small, spark)` + "\n"},
		{[]string{"submit", "--pool", "small", "--retries", "1000", "--", "echo"}, "retries"},
		{[]string{"submit", "--pool", "small", "--then", "huge:2", "--", "echo"}, `berth: then[0].pool: unknown pool "huge" (configured: small, spark)` + "\n"},
		{[]string{"submit", "--pool", "small", "--then", "spark", "--then", "spark:0", "--", "echo"}, "berth: then[1].jobs: must be 1..10000\n"},
		{[]string{"submit", "--pool", "spark", "--execution-role-arn", "nightly-runtime", "--", "echo"},
			`berth: execution_role_arn: "nightly-runtime" is not an ARN; want arn:<partition>:iam::<12-digit account>:role/<name>` + "\n"},
		{[]string{"clusters", "kill", "cl-0002"}, `berth: cluster cl-0002: provider "emr" cannot inject faults` + "\n"},
		{[]string{"clusters", "drain", "cl-0003"}, "berth: cluster cl-0003 is already terminated\n"},
		{[]string{"pools", "get", "huge"}, `berth: pool "huge" not found` + "\n"},
		{[]string{"pools", "unblock", "huge"}, `berth: pool "huge" not found` + "\n"},
		{[]string{"jobs", "ls", "--token", "wrong"}, "set --token or BERTH_TOKEN"},
		{[]string{"jobs", "ls", "--server", gone.URL}, "is the server running?"},
		{[]string{"serve", "--config", filepath.Join(t.TempDir(), "nope.yaml")}, "nope.yaml"},
		{[]string{"serve", "--config", badConfig}, `pool "tiny": slots`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := h.run(context.Background(), "", tt.args...)
			if r.code != 1 {
				t.Errorf("exit %d, want 1\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			if !strings.HasPrefix(r.stderr, "berth: ") || !strings.Contains(r.stderr, tt.msg) {
				t.Errorf("stderr %q, want berth: ... %q", r.stderr, tt.msg)
			}
		})
	}
	t.Run("submit of a file with an unknown field", func(t *testing.T) {
		r := h.run(context.Background(), `{"pool": "small", "step": []}`, "submit", "-")
		if r.code != 1 || !strings.Contains(r.stderr, `unknown field "step"`) {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("submit of a missing file", func(t *testing.T) {
		r := h.run(context.Background(), "", "submit", filepath.Join(t.TempDir(), "nope.json"))
		if r.code != 1 || !strings.Contains(r.stderr, "nope.json") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
}

// waitForWaiter returns once a long poll is blocked in the service.
func waitForWaiter(t *testing.T, svc *apitest.Service) {
	t.Helper()
	wait.For(t, 10*time.Second, "a long poll to reach the service", func() bool { return svc.Waiters() > 0 })
}

func TestWait(t *testing.T) {
	tests := []struct {
		name     string
		state    berth.JobState
		reason   berth.Reason
		code     int
		stderr   string
		terminal bool
	}{
		{"succeeded", berth.JobSucceeded, berth.ReasonSucceeded, 0, "", false},
		{"failed", berth.JobFailed, berth.ReasonStepFailed, 1, "berth: job job-0003 failed (step_failed)\n", false},
		{"cancelled", berth.JobCancelled, berth.ReasonCancelled, 1, "berth: job job-0003 cancelled\n", false},
		{"succeeded on a terminal", berth.JobSucceeded, berth.ReasonSucceeded, 0, "", true},
		{"failed on a terminal", berth.JobFailed, berth.ReasonTimeout, 1, "berth: job job-0003 failed (timeout)\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.fleet(t)
			h.terminal = tt.terminal
			done := make(chan result, 1)
			go func() { done <- h.run(context.Background(), "", "jobs", "wait", "job-0003") }()
			waitForWaiter(t, h.svc)
			if err := h.svc.Update("job-0003", func(j *berth.Job) {
				j.State, j.ClusterID, j.StartedAt = berth.JobRunning, "cl-0002", h.clk.Now()
				j.Attempts = []berth.Attempt{{N: 1, ClusterID: "cl-0002", State: berth.AttemptRunning}}
			}); err != nil {
				t.Fatal(err)
			}
			h.clk.Advance(time.Minute)
			if err := h.svc.Finish("job-0003", tt.state, tt.reason); err != nil {
				t.Fatal(err)
			}
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("jobs wait did not return when the job ended")
			}
			if r.code != tt.code || r.stderr != tt.stderr {
				t.Errorf("exit %d, stderr %q; want %d, %q", r.code, r.stderr, tt.code, tt.stderr)
			}
			if tt.terminal {
				if !strings.Contains(r.stdout, "\r\033[K") || !strings.HasSuffix(r.stdout, "\n") {
					t.Errorf("no rewritten progress line on a terminal: %q", r.stdout)
				}
			} else {
				// Whether the long poll also saw the job running depends on
				// when it returned; the first and last lines do not.
				lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
				last := lines[len(lines)-1]
				if len(lines) < 2 || len(lines) > 3 || !strings.HasPrefix(lines[0], "job-0003 queued") ||
					!strings.HasPrefix(last, "job-0003 "+string(tt.state)) || !strings.Contains(last, "cluster cl-0002") ||
					len(lines) == 3 && !strings.HasPrefix(lines[1], "job-0003 running") {
					t.Errorf("progress lines:\n%s\nwant queued, maybe running, then %s on cl-0002", r.stdout, tt.state)
				}
				if strings.Contains(r.stdout, "\r") {
					t.Errorf("terminal control characters in plain output: %q", r.stdout)
				}
			}
		})
	}

	t.Run("an ended job", func(t *testing.T) {
		h := newHarness(t)
		h.fleet(t)
		r := h.run(context.Background(), "", "jobs", "wait", "job-0001", "-o", "json")
		var j berth.Job
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &j) != nil || j.State != berth.JobSucceeded {
			t.Errorf("exit %d, stdout %q", r.code, r.stdout)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		h := newHarness(t)
		h.fleet(t)
		r := h.run(context.Background(), "", "jobs", "wait", "--timeout", "50ms", "job-0003")
		if r.code != 1 || !strings.Contains(r.stderr, "has not ended after 50ms") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("unknown job", func(t *testing.T) {
		h := newHarness(t)
		r := h.run(context.Background(), "", "jobs", "wait", "job-4242")
		if r.code != 1 || !strings.Contains(r.stderr, "not found") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("interrupted", func(t *testing.T) {
		h := newHarness(t)
		h.fleet(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan result, 1)
		go func() { done <- h.run(ctx, "", "jobs", "wait", "job-0003") }()
		waitForWaiter(t, h.svc)
		cancel()
		select {
		case r := <-done:
			if r.code != 130 || r.stderr != "berth: interrupted\n" {
				t.Errorf("exit %d, stderr %q; want 130", r.code, r.stderr)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("jobs wait did not return when interrupted")
		}
	})
	t.Run("submit --wait", func(t *testing.T) {
		h := newHarness(t)
		done := make(chan result, 1)
		go func() { done <- h.run(context.Background(), "", "submit", "--wait", "--pool", "small", "--", "true") }()
		waitForWaiter(t, h.svc)
		if err := h.svc.Finish("job-0001", berth.JobSucceeded, berth.ReasonSucceeded); err != nil {
			t.Fatal(err)
		}
		r := <-done
		if r.code != 0 || !strings.HasPrefix(r.stdout, "job-0001\njob-0001 queued\njob-0001 succeeded") {
			t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})
}

func TestActions(t *testing.T) {
	h := newHarness(t)
	h.fleet(t)
	h.svc.SetLogs(berth.Logs{JobID: "job-0002", Attempt: 2, Step: 0, Stdout: "rows: 42\n", Stderr: "warning: slow\n"})
	h.svc.SetLogs(berth.Logs{JobID: "job-0002", Attempt: 1, Step: 1, Location: "s3://bucket/logs/j-1/steps/s-1/"})
	if err := h.svc.Block("spark", "bootstrap failed", t0); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		args           []string
		stdout, stderr string
	}{
		{[]string{"jobs", "logs", "job-0002"}, "rows: 42\n", "warning: slow\n"},
		{[]string{"jobs", "logs", "--attempt", "1", "--step", "1", "job-0002"}, "logs: s3://bucket/logs/j-1/steps/s-1/\n", ""},
		{[]string{"jobs", "cancel", "job-0003"}, "job-0003 cancelled\n", ""},
		{[]string{"clusters", "drain", "cl-0001"}, "cl-0001 draining\n", ""},
		{[]string{"clusters", "terminate", "cl-0002"}, "cl-0002 terminating\n", ""},
		{[]string{"clusters", "kill", "cl-0001"}, "cl-0001 lost\n", ""},
		{[]string{"pools", "unblock", "spark"}, "spark unblocked\n", ""},
		{[]string{"pools", "unblock", "spark"}, "spark unblocked\n", ""}, // idempotent
	}
	for _, tt := range tests {
		r := h.mustRun(t, tt.args...)
		if r.stdout != tt.stdout || r.stderr != tt.stderr {
			t.Errorf("berth %s: stdout %q, stderr %q; want %q, %q", strings.Join(tt.args, " "), r.stdout, r.stderr, tt.stdout, tt.stderr)
		}
	}
	j, _ := h.svc.Job(context.Background(), "job-0003")
	if j.State != berth.JobCancelled {
		t.Errorf("job-0003 is %s after jobs cancel", j.State)
	}
	if p, _ := h.svc.Pool(context.Background(), "spark"); p.Blocked {
		t.Errorf("spark is still blocked after pools unblock: %+v", p)
	}
}

func TestHelp(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"help"}, "commands:"},
		{[]string{"-h"}, "commands:"},
		{[]string{"help", "jobs"}, "usage: berth jobs <command>"},
		{[]string{"jobs", "--help"}, "wait"},
		{[]string{"help", "jobs", "wait"}, "usage: berth jobs wait [flags] ID"},
		{[]string{"jobs", "ls", "-h"}, "-state state"},
		{[]string{"submit", "-h"}, "-- COMMAND [ARG...]"},
		{[]string{"clusters", "kill", "-h"}, "-server URL"},
		{[]string{"version"}, "berth dev ("},
	}
	for _, tt := range tests {
		r := h.mustRun(t, tt.args...)
		if !strings.Contains(r.stdout, tt.want) {
			t.Errorf("berth %s: stdout does not contain %q:\n%s", strings.Join(tt.args, " "), tt.want, r.stdout)
		}
	}
	if r := h.mustRun(t, "jobs", "ls", "-h"); strings.Contains(r.stdout, token) {
		t.Errorf("-h shows the token from BERTH_TOKEN:\n%s", r.stdout)
	}
	for _, c := range commands() {
		if c.name == "help" {
			continue
		}
		if r := h.run(context.Background(), "", c.name, "-h"); r.code != 0 {
			t.Errorf("berth %s -h: exit %d", c.name, r.code)
		}
	}
}

func TestMainExitCodes(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"version"}, strings.NewReader(""), &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "berth ") {
		t.Errorf("Main(version) = %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	if code := Main(context.Background(), nil, strings.NewReader(""), &stdout, &stderr); code != 2 || stdout.Len() != 0 {
		t.Errorf("Main() = %d, stdout %q; want 2 and the usage on stderr", code, stdout.String())
	}
}
