package client_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/api"
	"github.com/berthhq/berth/internal/api/apitest"
	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/client"
	"github.com/berthhq/berth/internal/clock"
	"github.com/berthhq/berth/internal/wait"
)

var t0 = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)

const token = "s3cret"

// setup serves the real API over the fake service and returns a client of
// it.
func setup(t *testing.T) (*client.Client, *apitest.Service, *httptest.Server) {
	t.Helper()
	svc := apitest.New(clock.NewFake(t0))
	svc.Seed()
	srv := httptest.NewServer(api.New(api.Options{
		Service: svc,
		Token:   token,
		Log:     slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}))
	t.Cleanup(srv.Close)
	return client.New(srv.URL+"/", token, srv.Client()), svc, srv
}

func spec(key string) berth.JobSpec {
	return berth.JobSpec{
		Pool:           "small",
		Name:           "phase-3",
		Steps:          []berth.Step{{Name: "t", Args: []string{"echo", "hi"}}},
		Timeout:        berth.Duration(2 * time.Hour),
		IdempotencyKey: key,
		Labels:         map[string]string{"dag_id": "nightly"},
	}
}

func TestJobs(t *testing.T) {
	c, svc, _ := setup(t)
	ctx := context.Background()

	j, created, err := c.Submit(ctx, spec("k1"))
	if err != nil || !created || j.ID == "" || j.State != berth.JobQueued || j.Timeout.Std() != 2*time.Hour {
		t.Fatalf("Submit = %+v, %v, %v", j, created, err)
	}
	again, created, err := c.Submit(ctx, spec("k1"))
	if err != nil || created || again.ID != j.ID {
		t.Errorf("resubmission = %s, created %v, %v; want %s, false", again.ID, created, err, j.ID)
	}
	other, _, err := c.Submit(ctx, berth.JobSpec{Pool: "spark", Steps: []berth.Step{{Args: []string{"x"}}}, Labels: map[string]string{"a": "1", "b": "2"}})
	if err != nil {
		t.Fatal(err)
	}

	got, err := c.Job(ctx, j.ID)
	if err != nil || got.ID != j.ID || got.Labels["dag_id"] != "nightly" {
		t.Errorf("Job = %+v, %v", got, err)
	}

	ids := func(jobs []berth.Job) []string {
		var out []string
		for _, j := range jobs {
			out = append(out, j.ID)
		}
		return out
	}
	for _, tt := range []struct {
		q    client.JobsQuery
		want []string
		next string
	}{
		{client.JobsQuery{}, []string{other.ID, j.ID}, ""},
		{client.JobsQuery{Pool: "small"}, []string{j.ID}, ""},
		{client.JobsQuery{State: berth.JobQueued, Labels: map[string]string{"b": "2", "a": "1"}}, []string{other.ID}, ""},
		{client.JobsQuery{Limit: 1}, []string{other.ID}, other.ID},
		{client.JobsQuery{Limit: 1, Cursor: other.ID}, []string{j.ID}, ""},
	} {
		jobs, next, err := c.Jobs(ctx, tt.q)
		if err != nil || !slices.Equal(ids(jobs), tt.want) || next != tt.next {
			t.Errorf("Jobs(%+v) = %v, %q, %v; want %v, %q", tt.q, ids(jobs), next, err, tt.want, tt.next)
		}
	}

	events, err := c.Events(ctx, j.ID)
	if err != nil || len(events) != 1 || events[0].Kind != "queued" {
		t.Errorf("Events = %+v, %v", events, err)
	}

	svc.SetLogs(berth.Logs{JobID: j.ID, Attempt: 1, Step: 1, Stdout: "out", Stderr: "err"})
	l, err := c.Logs(ctx, j.ID, 1, 1)
	if err != nil || l.Stdout != "out" || l.Stderr != "err" {
		t.Errorf("Logs = %+v, %v", l, err)
	}

	cancelled, err := c.Cancel(ctx, j.ID)
	if err != nil || cancelled.State != berth.JobCancelled {
		t.Errorf("Cancel = %q, %v", cancelled.State, err)
	}
	if _, err := c.Cancel(ctx, j.ID); !errors.Is(err, berth.ErrConflict) {
		t.Errorf("second Cancel: %v, want ErrConflict", err)
	}
}

// A job's execution role and a jar step's properties reach the server and
// come back; a bad role is the server's ErrInvalid, with its message.
func TestSubmitExecutionRoleAndProperties(t *testing.T) {
	c, svc, _ := setup(t)
	ctx := context.Background()
	const role = "arn:aws:iam::123456789012:role/nightly-runtime"
	props := map[string]string{"mapreduce.job.maps": "4"}
	s := berth.JobSpec{Pool: "spark", ExecutionRoleArn: role,
		Steps: []berth.Step{{Jar: "s3://bucket/load.jar", MainClass: "com.example.Load", Properties: props}}}
	j, created, err := c.Submit(ctx, s)
	if err != nil || !created {
		t.Fatalf("Submit: created %v, %v", created, err)
	}
	got, err := c.Job(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	for what, got := range map[string]berth.Job{"Submit": j, "Job": got} {
		if got.ExecutionRoleArn != role || len(got.Steps) != 1 || !maps.Equal(got.Steps[0].Properties, props) {
			t.Errorf("%s: role %q, steps %+v; want %q and properties %v", what, got.ExecutionRoleArn, got.Steps, role, props)
		}
	}
	if stored, err := svc.Job(ctx, j.ID); err != nil || stored.ExecutionRoleArn != role {
		t.Errorf("the service has role %q (%v), want %q", stored.ExecutionRoleArn, err, role)
	}

	s.ExecutionRoleArn = "arn:aws:iam::123456789012:group/g"
	_, _, err = c.Submit(ctx, s)
	if !errors.Is(err, berth.ErrInvalid) || !strings.Contains(err.Error(), "execution_role_arn") {
		t.Errorf("Submit with a group's ARN: %v, want ErrInvalid naming execution_role_arn", err)
	}
}

// A job's then list reaches the server and comes back; a hint on a pool
// the server does not have is its ErrUnprocessable, naming the hint.
func TestSubmitThen(t *testing.T) {
	c, svc, _ := setup(t)
	ctx := context.Background()
	then := []berth.Hint{{Pool: "spark", Jobs: 8}, {Pool: "small", Jobs: 1}}
	s := spec("")
	s.Then = then
	j, created, err := c.Submit(ctx, s)
	if err != nil || !created {
		t.Fatalf("Submit: created %v, %v", created, err)
	}
	got, err := c.Job(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	for what, got := range map[string]berth.Job{"Submit": j, "Job": got} {
		if !slices.Equal(got.Then, then) {
			t.Errorf("%s: then %v, want %v", what, got.Then, then)
		}
	}
	if stored, err := svc.Job(ctx, j.ID); err != nil || !slices.Equal(stored.Then, then) {
		t.Errorf("the service has then %v (%v), want %v", stored.Then, err, then)
	}

	s.Then = []berth.Hint{{Pool: "huge", Jobs: 1}}
	_, _, err = c.Submit(ctx, s)
	if !errors.Is(err, berth.ErrUnprocessable) || !strings.Contains(err.Error(), `then[0].pool: unknown pool "huge"`) {
		t.Errorf("Submit with a hint on an unknown pool: %v, want ErrUnprocessable naming then[0].pool", err)
	}
}

func TestWaitJob(t *testing.T) {
	c, svc, _ := setup(t)
	ctx := context.Background()
	j, _, err := c.Submit(ctx, spec(""))
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		job berth.Job
		err error
	}
	done := make(chan result, 1)
	go func() {
		j, err := c.WaitJob(ctx, j.ID, time.Hour) // more than MaxWait: capped, not refused
		done <- result{j, err}
	}()
	wait.For(t, 10*time.Second, "WaitJob to reach the service", func() bool { return svc.Waiters() > 0 })
	if err := svc.Finish(j.ID, berth.JobFailed, berth.ReasonStepFailed); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || r.job.State != berth.JobFailed || r.job.Reason != berth.ReasonStepFailed {
			t.Errorf("WaitJob = %q %q, %v; want failed step_failed", r.job.State, r.job.Reason, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitJob did not return when the job ended")
	}

	// No wait is a plain get.
	got, err := c.WaitJob(ctx, j.ID, 0)
	if err != nil || got.ID != j.ID {
		t.Errorf("WaitJob(0) = %s, %v", got.ID, err)
	}
}

func TestPoolsAndClusters(t *testing.T) {
	c, svc, _ := setup(t)
	ctx := context.Background()

	pools, err := c.Pools(ctx)
	if err != nil || len(pools) != 2 || pools[1].Name != "spark" || pools[1].Fallback == nil || pools[1].IdleTimeout.Std() != 10*time.Minute {
		t.Errorf("Pools = %+v, %v", pools, err)
	}
	p, err := c.Pool(ctx, "small")
	if err != nil || p.Provider != "local" || p.Clusters[berth.ClusterReady] != 1 {
		t.Errorf("Pool = %+v, %v", p, err)
	}
	if err := svc.Block("spark", "bootstrap failed", t0); err != nil {
		t.Fatal(err)
	}
	if p, err := c.Pool(ctx, "spark"); err != nil || !p.Blocked || p.BlockedReason != "bootstrap failed" || !p.BlockedAt.Equal(t0) {
		t.Errorf("Pool of a blocked pool = %+v, %v", p, err)
	}
	if p, err := c.Unblock(ctx, "spark"); err != nil || p.Name != "spark" || p.Blocked || p.BlockedReason != "" {
		t.Errorf("Unblock = %+v, %v", p, err)
	}
	if p, err := c.Pool(ctx, "spark"); err != nil || p.Blocked {
		t.Errorf("Pool after Unblock = %+v, %v", p, err)
	}

	cls, err := c.Clusters(ctx, "small", berth.ClusterReady)
	if err != nil || len(cls) != 1 || cls[0].ID != "cl-0001" {
		t.Errorf("Clusters(small, ready) = %+v, %v", cls, err)
	}
	cls, err = c.Clusters(ctx, "", "")
	if err != nil || len(cls) != 3 {
		t.Errorf("Clusters() = %d clusters, %v; want 3", len(cls), err)
	}
	d, err := c.Cluster(ctx, "cl-0001")
	if err != nil || len(d.Attempts) != 1 || len(d.Events) != 1 || d.Running != 1 {
		t.Errorf("Cluster = %+v, %v", d, err)
	}

	for _, tt := range []struct {
		name string
		do   func(context.Context, string) (berth.Cluster, error)
		id   string
		want berth.ClusterState
		err  error
	}{
		{"drain", c.Drain, "cl-0001", berth.ClusterDraining, nil},
		{"kill", c.Kill, "cl-0001", berth.ClusterLost, nil},
		{"kill emr", c.Kill, "cl-0002", "", berth.ErrUnsupported},
		{"terminate", c.Terminate, "cl-0002", berth.ClusterTerminating, nil},
		{"terminate ended", c.Terminate, "cl-0003", "", berth.ErrConflict},
		{"drain unknown", c.Drain, "cl-4242", "", berth.ErrNotFound},
	} {
		cl, err := tt.do(ctx, tt.id)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("%s: %v, want %v", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || cl.State != tt.want {
			t.Errorf("%s = %q, %v; want %q", tt.name, cl.State, err, tt.want)
		}
	}
}

func TestErrors(t *testing.T) {
	c, svc, srv := setup(t)
	ctx := context.Background()

	tests := []struct {
		name   string
		call   func() error
		status int
		code   string
		is     error
	}{
		{"unknown job", func() error { _, err := c.Job(ctx, "job-4242"); return err }, 404, "not_found", berth.ErrNotFound},
		{"id with a slash", func() error { _, err := c.Job(ctx, "a/b"); return err }, 404, "not_found", berth.ErrNotFound},
		{"unknown pool", func() error { _, err := c.Pool(ctx, "huge"); return err }, 404, "not_found", berth.ErrNotFound},
		{"unknown cluster", func() error { _, err := c.Cluster(ctx, "cl-4242"); return err }, 404, "not_found", berth.ErrNotFound},
		{"unblock of an unknown pool", func() error { _, err := c.Unblock(ctx, "huge"); return err }, 404, "not_found", berth.ErrNotFound},
		{"idempotency key with another spec", func() error {
			if _, _, err := c.Submit(ctx, spec("k-conflict")); err != nil {
				return err
			}
			other := spec("k-conflict")
			other.Priority = 9
			_, _, err := c.Submit(ctx, other)
			return err
		}, 409, "conflict", berth.ErrConflict},
		{"invalid spec", func() error { _, _, err := c.Submit(ctx, berth.JobSpec{Pool: "small"}); return err }, 400, "invalid", berth.ErrInvalid},
		{"submit to an unknown pool", func() error {
			_, _, err := c.Submit(ctx, berth.JobSpec{Pool: "huge", Steps: []berth.Step{{Args: []string{"x"}}}})
			return err
		}, 422, "unprocessable", berth.ErrUnprocessable},
		{"bad state filter", func() error { _, _, err := c.Jobs(ctx, client.JobsQuery{State: "sleeping"}); return err }, 400, "invalid", berth.ErrInvalid},
		{"bad limit", func() error { _, _, err := c.Jobs(ctx, client.JobsQuery{Limit: 5000}); return err }, 400, "invalid", berth.ErrInvalid},
		{"bad cluster state", func() error { _, err := c.Clusters(ctx, "", "asleep"); return err }, 400, "invalid", berth.ErrInvalid},
		{"negative step", func() error { _, err := c.Logs(ctx, "job-0001", 0, -1); return err }, 400, "invalid", berth.ErrInvalid},
		{"wrong token", func() error {
			_, err := client.New(srv.URL, "nope", srv.Client()).Pools(ctx)
			return err
		}, 401, "unauthorized", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var e *client.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not a *client.Error", err, err)
			}
			if e.Status != tt.status || e.Code != tt.code || e.Message == "" {
				t.Errorf("error %+v, want status %d code %q and a message", e, tt.status, tt.code)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) is false", err, tt.is)
			}
			for _, s := range []error{berth.ErrNotFound, berth.ErrInvalid, berth.ErrConflict, berth.ErrUnprocessable} {
				if s != tt.is && errors.Is(err, s) {
					t.Errorf("errors.Is(%v, %v) is true", err, s)
				}
			}
		})
	}

	if err := c.Healthz(ctx); err != nil {
		t.Errorf("Healthz: %v", err)
	}
	if err := c.Readyz(ctx); err != nil {
		t.Errorf("Readyz: %v", err)
	}
	svc.SetReady(berth.ErrUnavailable)
	if err := c.Readyz(ctx); !errors.Is(err, berth.ErrUnavailable) {
		t.Errorf("Readyz when not ready: %v, want ErrUnavailable", err)
	}
}

// A server that is not Berth's API (a proxy's error page, say) still gives
// an *Error with a code derived from the status.
func TestForeignErrors(t *testing.T) {
	tests := []struct {
		status int
		body   string
		code   string
		is     error
		msg    string
	}{
		{502, "<html>bad gateway</html>", "internal", nil, "502 Bad Gateway"},
		{503, "upstream overloaded", "unavailable", berth.ErrUnavailable, "503 Service Unavailable: upstream overloaded"},
		{404, "", "not_found", berth.ErrNotFound, "404 Not Found"},
		{418, `{"error": "teapot"}`, "http_418", nil, `418 I'm a teapot: {"error": "teapot"}`},
	}
	for _, tt := range tests {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tt.status)
			io.WriteString(w, tt.body)
		}))
		_, err := client.New(srv.URL, "", nil).Job(context.Background(), "job-1")
		srv.Close()
		var e *client.Error
		if !errors.As(err, &e) {
			t.Fatalf("%d: error %v is not a *client.Error", tt.status, err)
		}
		if e.Status != tt.status || e.Code != tt.code || e.Error() != tt.msg {
			t.Errorf("%d: error %+v (%q), want code %q message %q", tt.status, e, e.Error(), tt.code, tt.msg)
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("%d: errors.Is(%v) is false", tt.status, tt.is)
		}
	}
}

func TestContextCancel(t *testing.T) {
	c, svc, _ := setup(t)
	j, _, err := c.Submit(context.Background(), spec(""))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.WaitJob(ctx, j.ID, time.Minute)
		done <- err
	}()
	wait.For(t, 10*time.Second, "WaitJob to reach the service", func() bool { return svc.Waiters() > 0 })
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("WaitJob after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitJob did not return when its context was cancelled")
	}
}
