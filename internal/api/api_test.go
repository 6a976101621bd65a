package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/api"
	"github.com/berthhq/berth/internal/api/apitest"
	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/clock"
	"github.com/berthhq/berth/internal/store"
	"github.com/berthhq/berth/internal/wait"
)

var t0 = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)

// harness is the API over a service, served on loopback: over the
// stand-in (newHarness), or over the real service (newRealHarness).
type harness struct {
	t testing.TB
	// service is what the API serves.
	service api.Service
	// svc and clk are the stand-in and its clock; nil over the real
	// service.
	svc *apitest.Service
	clk *clock.Fake
	// st is the real service's store; nil over the stand-in.
	st  store.Store
	srv *httptest.Server
	log *syncBuffer
}

// syncBuffer collects log output so a test can look for a line; it also
// copies it to the test's output.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	out io.Writer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	return b.out.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogs(t testing.TB) *syncBuffer { return &syncBuffer{out: t.Output()} }

// newHarness serves the API over the seeded stand-in.
func newHarness(t testing.TB, opts ...func(*api.Options)) *harness {
	t.Helper()
	clk := clock.NewFake(t0)
	svc := apitest.New(clk)
	svc.Seed()
	logs := newLogs(t)
	o := api.Options{
		Service: svc,
		Log:     slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, f := range opts {
		f(&o)
	}
	srv := httptest.NewServer(api.New(o))
	t.Cleanup(srv.Close)
	return &harness{t: t, service: o.Service, svc: svc, clk: clk, srv: srv, log: logs}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request; headers come in name, value pairs.
func (h *harness) do(method, path, body string, headers ...string) response {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func (h *harness) submit(spec string) berth.Job {
	h.t.Helper()
	r := h.do("POST", "/v1/jobs", spec, "Content-Type", "application/json")
	if r.status != http.StatusCreated {
		h.t.Fatalf("submit: status %d: %s", r.status, r.body)
	}
	var j berth.Job
	r.decode(h.t, &j)
	return j
}

func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json; body %s", ct, r.body)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// wantError checks an error answer's status, code, that its message
// contains msg, and that the message is for users: no store, no operation
// chain.
func (r response) wantError(t testing.TB, status int, code, msg string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	var e apiError
	r.decode(t, &e)
	if e.Error.Code != code {
		t.Errorf("code %q, want %q (message %q)", e.Error.Code, code, e.Error.Message)
	}
	if !strings.Contains(e.Error.Message, msg) {
		t.Errorf("message %q does not contain %q", e.Error.Message, msg)
	}
	if e.Error.Message == "" {
		t.Error("empty message")
	}
	if l := leak(e.Error.Message); l != "" {
		t.Errorf("message %q shows %s", e.Error.Message, l)
	}
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	wait.For(t, 10*time.Second, what, cond)
}

const goodSpec = `{"pool": "small", "name": "phase-3", "steps": [{"name": "t", "args": ["echo", "hi"]}],
	"priority": 3, "retries": 2, "timeout": "2h", "labels": {"dag_id": "nightly"}}`

func TestSubmit(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		contentType string
		status      int
		code        string // for errors
		msg         string // part of the error message
	}{
		{"created", goodSpec, "application/json", 201, "", ""},
		{"content type with charset", goodSpec, "application/json; charset=utf-8", 201, "", ""},
		{"no content type", goodSpec, "", 201, "", ""},
		{"trailing whitespace", goodSpec + "\n\t ", "application/json", 201, "", ""},
		{"malformed JSON", `{"pool": "small",`, "application/json", 400, "invalid", "malformed JSON"},
		{"syntax error", `{"pool" "small"}`, "application/json", 400, "invalid", "malformed JSON"},
		{"empty body", ``, "application/json", 400, "invalid", "empty"},
		{"not an object", `[1, 2]`, "application/json", 400, "invalid", "array"},
		{"unknown field", `{"pool": "small", "steps": [{"args": ["x"]}], "colour": "red"}`, "application/json", 400, "invalid", `unknown field "colour"`},
		{"unknown nested field", `{"pool": "small", "steps": [{"args": ["x"], "cmd": "x"}]}`, "application/json", 400, "invalid", `unknown field "cmd"`},
		{"trailing data", goodSpec + `{}`, "application/json", 400, "invalid", "after the JSON value"},
		{"trailing garbage", goodSpec + `x`, "application/json", 400, "invalid", "after the JSON value"},
		{"priority as string", `{"pool": "small", "steps": [{"args": ["x"]}], "priority": "high"}`, "application/json", 400, "invalid", "priority"},
		{"args as string", `{"pool": "small", "steps": [{"args": "echo hi"}]}`, "application/json", 400, "invalid", "args"},
		{"timeout as number", `{"pool": "small", "steps": [{"args": ["x"]}], "timeout": 7200}`, "application/json", 400, "invalid", "duration"},
		{"timeout unparsable", `{"pool": "small", "steps": [{"args": ["x"]}], "timeout": "two hours"}`, "application/json", 400, "invalid", "two hours"},
		{"no steps", `{"pool": "small", "steps": []}`, "application/json", 400, "invalid", "steps"},
		{"retries out of range", `{"pool": "small", "steps": [{"args": ["x"]}], "retries": 1000}`, "application/json", 400, "invalid", "retries"},
		{"unknown pool", `{"pool": "huge", "steps": [{"args": ["x"]}]}`, "application/json", 422, "unprocessable", `"huge"`},
		{"wrong content type", goodSpec, "text/plain", 415, "unsupported_media_type", "application/json"},
		{"bad content type", goodSpec, "application/", 415, "unsupported_media_type", "application/json"},
		{"oversized", `{"pool": "small", "name": "` + strings.Repeat("x", 2<<20) + `"}`, "application/json", 413, "too_large", "larger than"},
		{"oversized trailing data", goodSpec + strings.Repeat(" ", 2<<20) + "{}", "application/json", 413, "too_large", "larger than"},
	}
	backends(t, func(t *testing.T, h *harness) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := h.state()
				var hdr []string
				if tt.contentType != "" {
					hdr = []string{"Content-Type", tt.contentType}
				}
				r := h.do("POST", "/v1/jobs", tt.body, hdr...)
				if tt.code != "" {
					r.wantError(t, tt.status, tt.code, tt.msg)
					if got := h.state(); got != before {
						t.Errorf("a rejected submission changed the service: %s, was %s", got, before)
					}
					return
				}
				if r.status != tt.status {
					t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
				}
				var j berth.Job
				r.decode(t, &j)
				if j.ID == "" || j.Pool != "small" || j.State != berth.JobQueued || j.Priority != 3 || j.Timeout.Std() != 2*time.Hour || j.Labels["dag_id"] != "nightly" {
					t.Errorf("job %+v does not reflect the spec", j)
				}
				if loc := r.header.Get("Location"); loc != "/v1/jobs/"+j.ID {
					t.Errorf("Location %q, want /v1/jobs/%s", loc, j.ID)
				}
				if _, err := h.service.Job(context.Background(), j.ID); err != nil {
					t.Errorf("the job is not in the service: %v", err)
				}
			})
		}
	})
}

// A batch is stored whole, answered in its order with created true or
// false per job, and a bad job anywhere in it is an error that names it
// and stores none.
func TestSubmitBatch(t *testing.T) {
	backends(t, testSubmitBatch)
}

func testSubmitBatch(t *testing.T, h *harness) {
	used := h.submit(`{"pool": "small", "steps": [{"args": ["x"]}], "idempotency_key": "used"}`)
	keyed := func(key, args string) string {
		return `{"pool": "small", "steps": [{"args": ["` + args + `"]}], "idempotency_key": "` + key + `"}`
	}
	batch := func(specs ...string) string { return `{"jobs": [` + strings.Join(specs, ",") + `]}` }

	r := h.do("POST", "/v1/jobs/batch", batch(goodSpec, keyed("used", "x"), keyed("new", "y"), keyed("new", "y")), "Content-Type", "application/json")
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", r.status, r.body)
	}
	var got struct {
		Jobs []berth.Submitted `json:"jobs"`
	}
	r.decode(t, &got)
	if len(got.Jobs) != 4 {
		t.Fatalf("%d jobs answered, want 4: %s", len(got.Jobs), r.body)
	}
	first, again, fresh, repeat := got.Jobs[0], got.Jobs[1], got.Jobs[2], got.Jobs[3]
	if !first.Created || first.Job.Name != "phase-3" || first.Job.State != berth.JobQueued || first.Job.Priority != 3 {
		t.Errorf("first job %+v does not reflect its spec", first)
	}
	if again.Created || again.Job.ID != used.ID {
		t.Errorf("job of a used key: created %v, id %s; want false and %s", again.Created, again.Job.ID, used.ID)
	}
	if !fresh.Created || repeat.Created || repeat.Job.ID != fresh.Job.ID || fresh.Job.ID == first.Job.ID {
		t.Errorf("a key twice in one batch: %v %s, then %v %s; want one job, created once", fresh.Created, fresh.Job.ID, repeat.Created, repeat.Job.ID)
	}
	for _, s := range []berth.Submitted{first, fresh} {
		if _, err := h.service.Job(context.Background(), s.Job.ID); err != nil {
			t.Errorf("job %s is not in the service: %v", s.Job.ID, err)
		}
	}

	many := make([]string, berth.MaxBatch+1)
	for i := range many {
		many[i] = `{"pool": "small", "steps": [{"args": ["x"]}]}`
	}
	for _, tt := range []struct {
		name, body string
		status     int
		code, msg  string
	}{
		{"no jobs", `{"jobs": []}`, 400, "invalid", "jobs: 0 given, want 1 to 1000"},
		{"jobs missing", `{}`, 400, "invalid", "jobs: 0 given"},
		{"too many", batch(many...), 400, "invalid", "jobs: 1001 given"},
		{"a bad job", batch(goodSpec, goodSpec, `{"pool": "small", "steps": []}`), 400, "invalid", "jobs[2]: steps"},
		{"an unknown pool", batch(goodSpec, `{"pool": "huge", "steps": [{"args": ["x"]}]}`), 422, "unprocessable", `jobs[1]: `},
		{"a used key with another spec", batch(goodSpec, keyed("used", "other")), 409, "conflict", `jobs[1]: idempotency_key "used" was used for job ` + used.ID},
		{"a key twice with two specs", batch(keyed("twice", "a"), goodSpec, keyed("twice", "b")), 409, "conflict", `jobs[2]: idempotency_key "twice"`},
		{"unknown field", `{"jobs": [], "colour": "red"}`, 400, "invalid", `unknown field "colour"`},
		{"not a list", `{"jobs": {"pool": "small"}}`, 400, "invalid", "jobs"},
		{"malformed", `{"jobs": [`, 400, "invalid", "malformed JSON"},
		{"oversized", `{"jobs": [{"pool": "small", "name": "` + strings.Repeat("x", 17<<20) + `"}]}`, 413, "too_large", "larger than"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := h.state()
			h.do("POST", "/v1/jobs/batch", tt.body).wantError(t, tt.status, tt.code, tt.msg)
			if got := h.state(); got != before {
				t.Errorf("a rejected batch changed the service: %s, was %s", got, before)
			}
		})
	}
}

func TestSubmitIdempotent(t *testing.T) {
	backends(t, testSubmitIdempotent)
}

func testSubmitIdempotent(t *testing.T, h *harness) {
	spec := `{"pool": "small", "steps": [{"args": ["x"]}], "labels": {"a": "1"}, "idempotency_key": "nightly/phase_3/7"}`
	first := h.submit(spec)
	for _, again := range []string{
		spec,
		// Defaults spelled out, fields in another order: the same job.
		`{"idempotency_key": "nightly/phase_3/7", "labels": {"a": "1"}, "steps": [{"args": ["x"], "env": {}}],
			"pool": "small", "resume": "from_start", "max_infra_retries": 5, "priority": 0, "retries": 0}`,
	} {
		r := h.do("POST", "/v1/jobs", again)
		if r.status != http.StatusOK {
			t.Fatalf("resubmission: status %d, want 200: %s", r.status, r.body)
		}
		var j berth.Job
		r.decode(t, &j)
		if j.ID != first.ID {
			t.Errorf("resubmission made job %s, want the existing %s", j.ID, first.ID)
		}
	}
	other := h.submit(`{"pool": "small", "steps": [{"args": ["x"]}], "idempotency_key": "nightly/phase_3/8"}`)
	if other.ID == first.ID {
		t.Errorf("a different key returned the same job %s", other.ID)
	}

	for _, tt := range []struct{ body, field string }{
		{`{"pool": "small", "steps": [{"args": ["y"]}], "labels": {"a": "1"}, "idempotency_key": "nightly/phase_3/7"}`, "steps"},
		{`{"pool": "small", "steps": [{"args": ["x"]}], "labels": {"a": "1"}, "retries": 2, "idempotency_key": "nightly/phase_3/7"}`, "retries"},
		{`{"pool": "small", "steps": [{"args": ["x"]}], "idempotency_key": "nightly/phase_3/7"}`, "labels"},
		{`{"pool": "spark", "steps": [{"args": ["x"]}], "labels": {"a": "1"}, "idempotency_key": "nightly/phase_3/7"}`, "pool"},
	} {
		t.Run("different "+tt.field, func(t *testing.T) {
			before := h.state()
			h.do("POST", "/v1/jobs", tt.body).wantError(t, 409, "conflict",
				`idempotency_key "nightly/phase_3/7" was used for job `+first.ID+` with a different spec (`+tt.field+` differs)`)
			if h.state() != before {
				t.Error("a conflicting resubmission changed the service")
			}
		})
	}
}

// A job's execution role and a jar step's properties go in with the
// submission and come back with the job, in the API's own names, from the
// submission and from GET; a bad value is a 400 that names the field and
// changes nothing.
func TestSubmitExecutionRoleAndProperties(t *testing.T) {
	backends(t, testSubmitExecutionRoleAndProperties)
}

func testSubmitExecutionRoleAndProperties(t *testing.T, h *harness) {
	const (
		role = "arn:aws:iam::123456789012:role/berth/nightly-runtime"
		spec = `{"pool": "spark", "execution_role_arn": "` + role + `", "idempotency_key": "nightly/load/1",
			"steps": [{"name": "load", "jar": "s3://bucket/load.jar", "main_class": "com.example.Load", "args": ["--day", "1"],
				"properties": {"mapreduce.job.maps": "4", "empty": ""}}]}`
	)
	props := map[string]any{"mapreduce.job.maps": "4", "empty": ""}
	check := func(what string, r response) string {
		t.Helper()
		var j struct {
			ID    string `json:"id"`
			Role  any    `json:"execution_role_arn"`
			Steps []struct {
				Jar        string         `json:"jar"`
				MainClass  string         `json:"main_class"`
				Properties map[string]any `json:"properties"`
			} `json:"steps"`
		}
		r.decode(t, &j)
		if j.Role != role {
			t.Errorf("%s: execution_role_arn %v, want %q", what, j.Role, role)
		}
		if len(j.Steps) != 1 || j.Steps[0].Jar != "s3://bucket/load.jar" || j.Steps[0].MainClass != "com.example.Load" ||
			!reflect.DeepEqual(j.Steps[0].Properties, props) {
			t.Errorf("%s: steps %+v, want the jar step with properties %v", what, j.Steps, props)
		}
		return j.ID
	}

	r := h.do("POST", "/v1/jobs", spec, "Content-Type", "application/json")
	if r.status != http.StatusCreated {
		t.Fatalf("submit: status %d: %s", r.status, r.body)
	}
	id := check("submission", r)
	check("GET", h.do("GET", "/v1/jobs/"+id, ""))
	if r := h.do("POST", "/v1/jobs", spec); r.status != http.StatusOK {
		t.Errorf("the same submission again: status %d, want 200: %s", r.status, r.body)
	}

	// Another role, or other properties, under the same key is another job.
	for _, tt := range []struct{ name, body, field string }{
		{"another role", strings.Replace(spec, "nightly-runtime", "other", 1), "execution_role_arn"},
		{"no role", strings.Replace(spec, `"execution_role_arn": "`+role+`",`, "", 1), "execution_role_arn"},
		{"other properties", strings.Replace(spec, `"4"`, `"8"`, 1), "steps"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := h.state()
			h.do("POST", "/v1/jobs", tt.body).wantError(t, 409, "conflict",
				`idempotency_key "nightly/load/1" was used for job `+id+` with a different spec (`+tt.field+` differs)`)
			if h.state() != before {
				t.Error("a conflicting resubmission changed the service")
			}
		})
	}

	for _, tt := range []struct{ name, body, msg string }{
		{"a short account", `{"pool": "spark", "steps": [{"args": ["x"]}], "execution_role_arn": "arn:aws:iam::1234:role/r"}`,
			`execution_role_arn: "arn:aws:iam::1234:role/r": account "1234" is not 12 digits`},
		{"a user, not a role", `{"pool": "spark", "steps": [{"args": ["x"]}], "execution_role_arn": "arn:aws:iam::123456789012:user/alice"}`,
			`execution_role_arn: "arn:aws:iam::123456789012:user/alice" does not name a role`},
		{"a role name, not an ARN", `{"pool": "spark", "steps": [{"args": ["x"]}], "execution_role_arn": "nightly-runtime"}`,
			`execution_role_arn: "nightly-runtime" is not an ARN`},
		{"a role as a number", `{"pool": "spark", "steps": [{"args": ["x"]}], "execution_role_arn": 7}`,
			"execution_role_arn"},
		{"properties without a jar", `{"pool": "spark", "steps": [{"args": ["x"], "properties": {"k": "v"}}]}`,
			"steps[0].properties: needs a jar"},
		{"an empty property name", `{"pool": "spark", "steps": [{"jar": "s3://b/x.jar", "properties": {"": "v"}}]}`,
			`steps[0].properties: bad property name ""`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := h.state()
			h.do("POST", "/v1/jobs", tt.body).wantError(t, 400, "invalid", tt.msg)
			if h.state() != before {
				t.Error("a rejected submission changed the service")
			}
		})
	}

	if h.svc == nil {
		// The real service asks the pool's provider: the local provider
		// runs no jar step, and says so.
		t.Run("a jar step on the local provider", func(t *testing.T) {
			before := h.state()
			h.do("POST", "/v1/jobs", strings.Replace(spec, `"pool": "spark"`, `"pool": "small"`, 1)).wantError(t, 422, "unprocessable",
				"steps[0]: pool small (provider local) cannot run it: the local provider runs argv steps; jar and main_class are for EMR")
			if h.state() != before {
				t.Error("a rejected submission changed the service")
			}
		})
	}
}

// A job's then list goes in with the submission and comes back with the
// job, from the submission, GET and the listing; an empty one is shown as
// none. Another list under the same idempotency key is another job. A
// hint naming a pool Berth does not have is a 422 naming the hint, a
// malformed hint a 400 naming it; neither changes anything.
func TestSubmitThen(t *testing.T) {
	backends(t, testSubmitThen)
}

func testSubmitThen(t *testing.T, h *harness) {
	const spec = `{"pool": "small", "steps": [{"args": ["x"]}], "idempotency_key": "nightly/phase_4/1",
		"then": [{"pool": "spark", "jobs": 3}, {"pool": "small", "jobs": 1}]}`
	want := []any{map[string]any{"pool": "spark", "jobs": 3.0}, map[string]any{"pool": "small", "jobs": 1.0}}
	// then is the id and the then list of the job an answer shows.
	then := func(r response) (string, any) {
		t.Helper()
		var j map[string]any
		r.decode(t, &j)
		id, _ := j["id"].(string)
		return id, j["then"]
	}

	r := h.do("POST", "/v1/jobs", spec, "Content-Type", "application/json")
	if r.status != http.StatusCreated {
		t.Fatalf("submit: status %d: %s", r.status, r.body)
	}
	id, got := then(r)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("submission: then %v, want %v", got, want)
	}
	if _, got := then(h.do("GET", "/v1/jobs/"+id, "")); !reflect.DeepEqual(got, want) {
		t.Errorf("GET: then %v, want %v", got, want)
	}
	var list struct {
		Jobs []map[string]any `json:"jobs"`
	}
	h.do("GET", "/v1/jobs", "").decode(t, &list)
	if len(list.Jobs) != 1 || !reflect.DeepEqual(list.Jobs[0]["then"], want) {
		t.Errorf("listing: %v, want one job with then %v", list.Jobs, want)
	}
	if r := h.do("POST", "/v1/jobs", spec); r.status != http.StatusOK {
		t.Errorf("the same submission again: status %d, want 200: %s", r.status, r.body)
	}

	for _, body := range []string{
		`{"pool": "small", "steps": [{"args": ["x"]}], "then": []}`,
		`{"pool": "small", "steps": [{"args": ["x"]}]}`,
	} {
		id, got := then(h.do("POST", "/v1/jobs", body))
		if _, again := then(h.do("GET", "/v1/jobs/"+id, "")); got != nil || again != nil {
			t.Errorf("%s: then %v, and %v from GET; want none", body, got, again)
		}
	}

	for _, tt := range []struct{ name, body string }{
		{"other jobs", strings.Replace(spec, `"jobs": 3`, `"jobs": 4`, 1)},
		{"another pool", strings.Replace(spec, `"pool": "spark", "jobs": 3`, `"pool": "small", "jobs": 3`, 1)},
		{"no then", strings.Replace(spec, `"then": [{"pool": "spark", "jobs": 3}, {"pool": "small", "jobs": 1}]`, `"then": []`, 1)},
	} {
		t.Run("different then: "+tt.name, func(t *testing.T) {
			before := h.state()
			h.do("POST", "/v1/jobs", tt.body).wantError(t, 409, "conflict",
				`idempotency_key "nightly/phase_4/1" was used for job `+id+` with a different spec (then differs)`)
			if h.state() != before {
				t.Error("a conflicting resubmission changed the service")
			}
		})
	}

	for _, tt := range []struct {
		name, body string
		status     int
		code, msg  string
	}{
		{"a hint on an unknown pool", `{"pool": "small", "steps": [{"args": ["x"]}], "then": [{"pool": "spark", "jobs": 1}, {"pool": "huge", "jobs": 1}]}`,
			422, "unprocessable", `then[1].pool: unknown pool "huge" (configured: small, spark)`},
		{"a hint without a pool", `{"pool": "small", "steps": [{"args": ["x"]}], "then": [{"jobs": 1}]}`,
			400, "invalid", "then[0].pool: is required"},
		{"a hint without jobs", `{"pool": "small", "steps": [{"args": ["x"]}], "then": [{"pool": "spark"}]}`,
			400, "invalid", "then[0].jobs: must be 1..10000"},
		{"a hint with an unknown field", `{"pool": "small", "steps": [{"args": ["x"]}], "then": [{"pool": "spark", "jobs": 1, "when": "soon"}]}`,
			400, "invalid", `unknown field "when"`},
		{"then as an object", `{"pool": "small", "steps": [{"args": ["x"]}], "then": {"pool": "spark", "jobs": 1}}`,
			400, "invalid", "then"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := h.state()
			h.do("POST", "/v1/jobs", tt.body).wantError(t, tt.status, tt.code, tt.msg)
			if h.state() != before {
				t.Error("a rejected submission changed the service")
			}
		})
	}
}

func TestGetJob(t *testing.T) {
	backends(t, testGetJob)
}

func testGetJob(t *testing.T, h *harness) {
	j := h.submit(goodSpec)

	r := h.do("GET", "/v1/jobs/"+j.ID, "")
	var got berth.Job
	r.decode(t, &got)
	if r.status != 200 || got.ID != j.ID || got.State != berth.JobQueued || len(got.Steps) != 1 || got.Steps[0].State != berth.StepPending {
		t.Errorf("GET: status %d, job %+v", r.status, got)
	}

	tests := []struct {
		path   string
		status int
		code   string
		msg    string
	}{
		{"/v1/jobs/job-4242", 404, "not_found", "job-4242"},
		{"/v1/jobs/NOT_AN_ID", 404, "not_found", "NOT_AN_ID"},
		{"/v1/jobs/" + j.ID + "?wait=soon", 400, "invalid", `"wait"`},
		{"/v1/jobs/" + j.ID + "?wait=-1s", 400, "invalid", `"wait"`},
		{"/v1/jobs/" + j.ID + "?wait=11m", 400, "invalid", `"wait"`},
		{"/v1/jobs/" + j.ID + "?wait=1s&wait=2s", 400, "invalid", `"wait"`},
		{"/v1/jobs/job-4242?wait=1s", 404, "not_found", "job-4242"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			h.do("GET", tt.path, "").wantError(t, tt.status, tt.code, tt.msg)
		})
	}
}

// longPoll starts GET /v1/jobs/{id}?wait=... and returns its answer on a
// channel.
func (h *harness) longPoll(id, wait string) <-chan response {
	ch := make(chan response, 1)
	go func() {
		req, _ := http.NewRequest("GET", h.srv.URL+"/v1/jobs/"+id+"?wait="+wait, nil)
		resp, err := h.srv.Client().Do(req)
		if err != nil {
			ch <- response{status: -1, body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		ch <- response{resp.StatusCode, resp.Header, b}
	}()
	return ch
}

func receive(t *testing.T, ch <-chan response) response {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the long poll did not return")
		return response{}
	}
}

func TestLongPoll(t *testing.T) {
	t.Run("returns when the job ends", func(t *testing.T) {
		h := newHarness(t)
		j := h.submit(goodSpec)
		ch := h.longPoll(j.ID, "10m")
		waitFor(t, "the long poll to wait", func() bool { return h.svc.Waiters() == 1 })
		// A change that does not end the job keeps the poll waiting.
		if err := h.svc.Update(j.ID, func(j *berth.Job) { j.State = berth.JobRunning }); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-ch:
			t.Fatalf("the long poll returned before the job ended: %d %s", r.status, r.body)
		default:
		}
		if err := h.svc.Finish(j.ID, berth.JobSucceeded, berth.ReasonSucceeded); err != nil {
			t.Fatal(err)
		}
		r := receive(t, ch)
		var got berth.Job
		r.decode(t, &got)
		if r.status != 200 || got.State != berth.JobSucceeded {
			t.Errorf("status %d, state %q; want 200 succeeded", r.status, got.State)
		}
	})
	t.Run("returns the job as it is when the wait runs out", func(t *testing.T) {
		h := newHarness(t)
		j := h.submit(goodSpec)
		ch := h.longPoll(j.ID, "30s")
		waitFor(t, "the long poll to wait", func() bool { return h.svc.Waiters() == 1 })
		h.clk.Advance(30 * time.Second)
		r := receive(t, ch)
		var got berth.Job
		r.decode(t, &got)
		if r.status != 200 || got.State != berth.JobQueued {
			t.Errorf("status %d, state %q; want 200 queued", r.status, got.State)
		}
	})
	t.Run("an ended job answers at once", func(t *testing.T) {
		h := newHarness(t)
		j := h.submit(goodSpec)
		if err := h.svc.Finish(j.ID, berth.JobFailed, berth.ReasonStepFailed); err != nil {
			t.Fatal(err)
		}
		r := receive(t, h.longPoll(j.ID, "10m"))
		var got berth.Job
		r.decode(t, &got)
		if got.State != berth.JobFailed {
			t.Errorf("state %q, want failed", got.State)
		}
	})
}

func TestListJobs(t *testing.T) {
	h := newHarness(t)
	a := h.submit(`{"pool": "small", "steps": [{"args": ["x"]}], "labels": {"dag_id": "nightly", "task": "a"}}`)
	b := h.submit(`{"pool": "spark", "steps": [{"args": ["x"]}], "labels": {"dag_id": "nightly", "task": "b"}}`)
	c := h.submit(`{"pool": "small", "steps": [{"args": ["x"]}], "labels": {"dag_id": "hourly"}}`)
	if err := h.svc.Finish(c.ID, berth.JobSucceeded, berth.ReasonSucceeded); err != nil {
		t.Fatal(err)
	}

	type list struct {
		Jobs       []berth.Job `json:"jobs"`
		NextCursor *string     `json:"next_cursor"`
	}
	ids := func(l list) []string {
		var out []string
		for _, j := range l.Jobs {
			out = append(out, j.ID)
		}
		return out
	}
	tests := []struct {
		query string
		want  []string
		next  string
	}{
		{"", []string{c.ID, b.ID, a.ID}, ""},
		{"?state=queued", []string{b.ID, a.ID}, ""},
		{"?state=succeeded", []string{c.ID}, ""},
		{"?state=failed", nil, ""},
		{"?pool=small", []string{c.ID, a.ID}, ""},
		{"?label=dag_id%3Dnightly", []string{b.ID, a.ID}, ""},
		{"?label=dag_id=nightly&label=task=a", []string{a.ID}, ""},
		{"?limit=2", []string{c.ID, b.ID}, b.ID},
		{"?limit=2&cursor=" + b.ID, []string{a.ID}, ""},
		{"?pool=small&state=queued&limit=1", []string{a.ID}, ""},
		{"?unknown=ignored", []string{c.ID, b.ID, a.ID}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			r := h.do("GET", "/v1/jobs"+tt.query, "")
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			var l list
			r.decode(t, &l)
			if l.Jobs == nil {
				t.Errorf("jobs is null or missing in %s, want a list", r.body)
			}
			if got := ids(l); strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("jobs %v, want %v", got, tt.want)
			}
			if l.NextCursor == nil || *l.NextCursor != tt.next {
				t.Errorf("next_cursor in %s, want %q", r.body, tt.next)
			}
		})
	}
}

// Bad query parameters are a 400 that names the parameter, from either
// service.
func TestListJobsBadQuery(t *testing.T) {
	bad := []struct{ query, param string }{
		{"?state=sleeping", "state"},
		{"?state=queued&state=running", "state"},
		{"?limit=0", "limit"},
		{"?limit=1001", "limit"},
		{"?limit=ten", "limit"},
		{"?label=dag_id", "label"},
		{"?label==nightly", "label"},
		{"?label=a=1&label=a=2", "label"},
		{"?cursor=job-nope", "cursor"}, // rejected by the service
		{"?pool=%zz", "malformed query"},
		{"?pool=" + strings.Repeat("p", 2000), "pool"},
	}
	backends(t, func(t *testing.T, h *harness) {
		h.submit(goodSpec)
		for _, tt := range bad {
			t.Run(tt.query[:min(len(tt.query), 40)], func(t *testing.T) {
				h.do("GET", "/v1/jobs"+tt.query, "").wantError(t, 400, "invalid", tt.param)
			})
		}
	})
}

func TestCancel(t *testing.T) {
	backends(t, testCancel)
}

func testCancel(t *testing.T, h *harness) {
	j := h.submit(goodSpec)
	r := h.do("POST", "/v1/jobs/"+j.ID+"/cancel", "")
	var got berth.Job
	r.decode(t, &got)
	if r.status != 200 || got.State != berth.JobCancelled {
		t.Errorf("cancel: status %d, state %q", r.status, got.State)
	}
	before := h.state()
	h.do("POST", "/v1/jobs/"+j.ID+"/cancel", "").wantError(t, 409, "conflict", "job "+j.ID+" has already ended (cancelled)")
	h.do("POST", "/v1/jobs/job-4242/cancel", "").wantError(t, 404, "not_found", "job-4242")
	h.do("POST", "/v1/jobs/BAD!/cancel", "").wantError(t, 404, "not_found", "")
	h.do("GET", "/v1/jobs/"+j.ID+"/cancel", "").wantError(t, 405, "method_not_allowed", "POST")
	if h.state() != before {
		t.Error("a refused cancel changed the service")
	}
}

func TestLogs(t *testing.T) {
	h := newHarness(t)
	j := h.submit(goodSpec)
	if err := h.svc.Update(j.ID, func(j *berth.Job) {
		j.Attempts = []berth.Attempt{{N: 1, ClusterID: "cl-0001"}, {N: 2, ClusterID: "cl-0001"}}
	}); err != nil {
		t.Fatal(err)
	}
	h.svc.SetLogs(berth.Logs{JobID: j.ID, Attempt: 2, Step: 0, Stdout: "latest out"})
	h.svc.SetLogs(berth.Logs{JobID: j.ID, Attempt: 1, Step: 0, Stdout: "first out", Stderr: "first err"})

	for _, tt := range []struct{ query, want string }{
		{"", "latest out"},
		{"?attempt=0&step=0", "latest out"},
		{"?attempt=1", "first out"},
	} {
		r := h.do("GET", "/v1/jobs/"+j.ID+"/logs"+tt.query, "")
		var l berth.Logs
		r.decode(t, &l)
		if r.status != 200 || l.Stdout != tt.want {
			t.Errorf("logs%s: status %d, stdout %q, want %q", tt.query, r.status, l.Stdout, tt.want)
		}
	}
	h.do("GET", "/v1/jobs/"+j.ID+"/logs?step=3", "").wantError(t, 404, "not_found", "step 3 of job "+j.ID+" did not run in attempt 2")
}

func TestLogsErrors(t *testing.T) {
	backends(t, func(t *testing.T, h *harness) {
		j := h.submit(goodSpec)
		for _, tt := range []struct {
			path   string
			status int
			code   string
			msg    string
		}{
			{"/v1/jobs/" + j.ID + "/logs?attempt=-1", 400, "invalid", `"attempt"`},
			{"/v1/jobs/" + j.ID + "/logs?attempt=one", 400, "invalid", `"attempt"`},
			{"/v1/jobs/" + j.ID + "/logs?step=x", 400, "invalid", `"step"`},
			{"/v1/jobs/" + j.ID + "/logs?step=-2", 400, "invalid", `"step"`},
			{"/v1/jobs/job-4242/logs", 404, "not_found", "job job-4242 not found"},
		} {
			h.do("GET", tt.path, "").wantError(t, tt.status, tt.code, tt.msg)
		}
	})
}

// A new job's history starts with its being queued. The real service's
// loop writes that event on its own, just after the submission.
func TestEvents(t *testing.T) {
	backends(t, func(t *testing.T, h *harness) {
		j := h.submit(goodSpec)
		var l struct {
			Events []berth.Event `json:"events"`
		}
		waitFor(t, "the job's first event", func() bool {
			r := h.do("GET", "/v1/jobs/"+j.ID+"/events", "")
			r.decode(t, &l)
			return r.status == 200 && len(l.Events) > 0
		})
		if e := l.Events[0]; len(l.Events) != 1 || e.Kind != "queued" || e.JobID != j.ID || e.Message != "submitted to pool small" {
			t.Errorf("events %+v, want one: queued, submitted to pool small", l.Events)
		}
	})
}

// The messages users see, word for word, from either service: they name
// what is at fault and nothing of how it was looked up.
func TestErrorMessages(t *testing.T) {
	tests := []struct {
		method, path, body string
		status             int
		message            string
	}{
		{"GET", "/v1/jobs/job-4242", "", 404, "job job-4242 not found"},
		{"GET", "/v1/jobs/job-4242?wait=1s", "", 404, "job job-4242 not found"},
		{"GET", "/v1/jobs/NOT_AN_ID", "", 404, "job NOT_AN_ID not found"},
		{"POST", "/v1/jobs/job-4242/cancel", "", 404, "job job-4242 not found"},
		{"GET", "/v1/jobs/job-4242/logs", "", 404, "job job-4242 not found"},
		{"GET", "/v1/jobs/job-4242/events", "", 404, "job job-4242 not found"},
		{"GET", "/v1/pools/huge", "", 404, `pool "huge" not found`},
		{"POST", "/v1/pools/huge/unblock", "", 404, `pool "huge" not found`},
		{"GET", "/v1/clusters/cl-4242", "", 404, "cluster cl-4242 not found"},
		{"POST", "/v1/clusters/cl-4242/drain", "", 404, "cluster cl-4242 not found"},
		{"POST", "/v1/clusters/cl-4242/terminate", "", 404, "cluster cl-4242 not found"},
		{"POST", "/v1/clusters/cl-4242/kill", "", 404, "cluster cl-4242 not found"},
		{"POST", "/v1/jobs", `{"pool": "huge", "steps": [{"args": ["x"]}]}`, 422, `pool: unknown pool "huge" (configured: small, spark)`},
		{"POST", "/v1/jobs", `{"pool": "small", "steps": [{"args": ["x"]}], "then": [{"pool": "huge", "jobs": 1}]}`, 422, `then[0].pool: unknown pool "huge" (configured: small, spark)`},
		{"POST", "/v1/jobs", `{"pool": "small", "steps": [{"args": ["x"]}], "retries": 1000}`, 400, "retries: must be 0..100"},
		{"POST", "/v1/jobs", `{"pool": "small", "steps": [{"args": ["x"], "env": {"A=B": "c"}}]}`, 400, `steps[0].env: bad variable name "A=B"`},
		{"POST", "/v1/jobs", `{"steps": [{"args": ["x"]}]}`, 400, "pool: is required"},
		{"GET", "/v1/jobs?cursor=job-nope", "", 400, `cursor "job-nope" is not one a listing of jobs handed out`},
	}
	backends(t, func(t *testing.T, h *harness) {
		for _, tt := range tests {
			t.Run(tt.method+" "+tt.path, func(t *testing.T) {
				before := h.state()
				r := h.do(tt.method, tt.path, tt.body)
				var e apiError
				r.decode(t, &e)
				if r.status != tt.status || e.Error.Message != tt.message {
					t.Errorf("%d %q, want %d %q", r.status, e.Error.Message, tt.status, tt.message)
				}
				if l := leak(e.Error.Message); l != "" {
					t.Errorf("message %q shows %s", e.Error.Message, l)
				}
				if h.state() != before {
					t.Error("the request changed the service")
				}
			})
		}
	})
}

func TestPools(t *testing.T) {
	h := newHarness(t)
	r := h.do("GET", "/v1/pools", "")
	var l struct {
		Pools []berth.PoolStatus `json:"pools"`
	}
	r.decode(t, &l)
	if r.status != 200 || len(l.Pools) != 2 || l.Pools[0].Name != "small" || l.Pools[1].Name != "spark" {
		t.Fatalf("pools: status %d, %+v", r.status, l.Pools)
	}
	if l.Pools[0].IdleTimeout.Std() != 30*time.Second || l.Pools[0].Clusters[berth.ClusterReady] != 1 || l.Pools[0].FreeSlots != 1 {
		t.Errorf("pool small %+v lost its fields", l.Pools[0])
	}
	if !bytes.Contains(r.body, []byte(`"idle_timeout":"30s"`)) {
		t.Errorf("idle_timeout is not a duration string in %s", r.body)
	}

	r = h.do("GET", "/v1/pools/spark", "")
	var p berth.PoolStatus
	r.decode(t, &p)
	if r.status != 200 || p.Name != "spark" || p.Provider != "emr" {
		t.Errorf("pool spark: status %d, %+v", r.status, p)
	}
}

func TestUnblock(t *testing.T) {
	h := newHarness(t)
	if err := h.svc.Block("spark", "bootstrap failed", t0); err != nil {
		t.Fatal(err)
	}
	r := h.do("GET", "/v1/pools/spark", "")
	var p berth.PoolStatus
	r.decode(t, &p)
	if !p.Blocked || p.BlockedReason != "bootstrap failed" || !p.BlockedAt.Equal(t0) {
		t.Fatalf("a blocked pool shows %s", r.body)
	}
	for range 2 { // the second time the pool is not blocked: still 200
		r = h.do("POST", "/v1/pools/spark/unblock", "")
		p = berth.PoolStatus{}
		r.decode(t, &p)
		if r.status != 200 || p.Name != "spark" || p.Blocked || p.BlockedReason != "" || !p.BlockedAt.IsZero() {
			t.Errorf("unblock: status %d, %s", r.status, r.body)
		}
	}
	got, _ := h.svc.Pool(context.Background(), "spark")
	if got.Blocked {
		t.Error("the service still has the pool blocked")
	}
}

// Unblocking a pool that is not blocked answers it as it is; an unknown
// pool is a 404 that changes nothing.
func TestUnblockIsIdempotent(t *testing.T) {
	backends(t, func(t *testing.T, h *harness) {
		r := h.do("POST", "/v1/pools/small/unblock", "")
		var p berth.PoolStatus
		r.decode(t, &p)
		if r.status != 200 || p.Name != "small" || p.Blocked {
			t.Errorf("unblock of a pool that is not blocked: status %d, %s", r.status, r.body)
		}
		before := h.state()
		h.do("POST", "/v1/pools/huge/unblock", "").wantError(t, 404, "not_found", `pool "huge" not found`)
		if h.state() != before {
			t.Error("a refused unblock changed the service")
		}
	})
}

func TestClusters(t *testing.T) {
	h := newHarness(t)
	type list struct {
		Clusters []berth.Cluster `json:"clusters"`
	}
	for _, tt := range []struct {
		query string
		want  string
	}{
		{"", "cl-0001,cl-0002,cl-0003"},
		{"?pool=small", "cl-0001,cl-0003"},
		{"?state=ready", "cl-0001,cl-0002"},
		{"?pool=small&state=terminated", "cl-0003"},
		{"?state=lost", ""},
	} {
		r := h.do("GET", "/v1/clusters"+tt.query, "")
		var l list
		r.decode(t, &l)
		var got []string
		for _, c := range l.Clusters {
			got = append(got, c.ID)
		}
		if r.status != 200 || l.Clusters == nil || strings.Join(got, ",") != tt.want {
			t.Errorf("clusters%s: status %d, %v, want %s (body %s)", tt.query, r.status, got, tt.want, r.body)
		}
	}

	r := h.do("GET", "/v1/clusters/cl-0001", "")
	var d berth.ClusterDetail
	r.decode(t, &d)
	if r.status != 200 || d.ID != "cl-0001" || len(d.Attempts) != 1 || d.Attempts[0].JobID != "job-9999" || len(d.Events) != 1 {
		t.Errorf("cluster detail: status %d, %+v", r.status, d)
	}
	r = h.do("GET", "/v1/clusters/cl-0002", "")
	if !bytes.Contains(r.body, []byte(`"attempts":[]`)) || !bytes.Contains(r.body, []byte(`"events":[]`)) {
		t.Errorf("a cluster without attempts or events should list them empty: %s", r.body)
	}
	h.do("GET", "/v1/clusters/cl-4242", "").wantError(t, 404, "not_found", "cl-4242")
}

func TestClusterActions(t *testing.T) {
	tests := []struct {
		action string
		id     string
		status int
		state  berth.ClusterState // on success
		code   string             // on error
	}{
		{"drain", "cl-0001", 200, berth.ClusterDraining, ""},
		{"drain", "cl-0003", 409, "", "conflict"},
		{"drain", "cl-4242", 404, "", "not_found"},
		{"terminate", "cl-0002", 200, berth.ClusterTerminating, ""},
		{"terminate", "cl-0003", 409, "", "conflict"},
		{"terminate", "cl-4242", 404, "", "not_found"},
		{"kill", "cl-0001", 200, berth.ClusterLost, ""},
		{"kill", "cl-0002", 422, "", "unsupported"},
		{"kill", "cl-0003", 409, "", "conflict"},
		{"kill", "cl-4242", 404, "", "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.action+" "+tt.id, func(t *testing.T) {
			h := newHarness(t)
			path := "/v1/clusters/" + tt.id + "/" + tt.action
			h.do("GET", path, "").wantError(t, 405, "method_not_allowed", "POST")
			before := h.svc.Mutations()
			r := h.do("POST", path, "")
			if tt.code != "" {
				r.wantError(t, tt.status, tt.code, tt.id)
				if h.svc.Mutations() != before {
					t.Error("a refused action changed the service")
				}
				return
			}
			var c berth.Cluster
			r.decode(t, &c)
			if r.status != tt.status || c.State != tt.state {
				t.Errorf("status %d, state %q; want %d %q", r.status, c.State, tt.status, tt.state)
			}
			d, err := h.svc.Cluster(context.Background(), tt.id)
			if err != nil || d.State != tt.state {
				t.Errorf("the service has the cluster %q (%v), want %q", d.State, err, tt.state)
			}
		})
	}
}

func TestClustersBadQuery(t *testing.T) {
	backends(t, func(t *testing.T, h *harness) {
		h.do("GET", "/v1/clusters?state=queued", "").wantError(t, 400, "invalid", `"state"`)
		h.do("GET", "/v1/clusters?pool=a&pool=b", "").wantError(t, 400, "invalid", `"pool"`)
	})
}

func TestHealthAndReady(t *testing.T) {
	h := newHarness(t, func(o *api.Options) { o.Token = "s3cret" })
	if r := h.do("GET", "/healthz", ""); r.status != 200 {
		t.Errorf("healthz: %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/readyz", ""); r.status != 200 {
		t.Errorf("readyz: %d %s", r.status, r.body)
	}
	h.svc.SetReady(&berth.Error{Kind: berth.ErrUnavailable, Public: "the store does not answer", Err: errors.New("open /var/lib/berth/berth.db: disk I/O error")})
	h.do("GET", "/readyz", "").wantError(t, 503, "unavailable", "the store does not answer")
	for _, err := range []error{
		fmt.Errorf("%w: store: open /var/lib/berth/berth.db: disk I/O error", berth.ErrUnavailable),
		errors.New("disk on fire at /var/lib/berth"),
	} {
		h.svc.SetReady(err)
		r := h.do("GET", "/readyz", "")
		r.wantError(t, 503, "unavailable", "not ready")
		if bytes.Contains(r.body, []byte("/var/lib")) {
			t.Errorf("readyz shows an internal error: %s", r.body)
		}
	}
	if r := h.do("GET", "/healthz", ""); r.status != 200 {
		t.Errorf("healthz while not ready: %d, want 200", r.status)
	}
}

func TestMetrics(t *testing.T) {
	h := newHarness(t)
	h.do("GET", "/metrics", "").wantError(t, 404, "not_found", "metrics")

	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "berth_jobs_queued 3\n")
	})
	h = newHarness(t, func(o *api.Options) { o.Metrics = metrics; o.Token = "s3cret" })
	h.do("GET", "/metrics", "").wantError(t, 401, "unauthorized", "token")
	r := h.do("GET", "/metrics", "", "Authorization", "Bearer s3cret")
	if r.status != 200 || string(r.body) != "berth_jobs_queued 3\n" {
		t.Errorf("metrics: %d %q", r.status, r.body)
	}
}

// The profiler is off unless asked for, and then behind the token.
func TestPprof(t *testing.T) {
	h := newHarness(t)
	h.do("GET", "/debug/pprof/", "").wantError(t, 404, "not_found", "/debug/pprof/")

	h = newHarness(t, func(o *api.Options) { o.Pprof = true; o.Token = "s3cret" })
	h.do("GET", "/debug/pprof/", "").wantError(t, 401, "unauthorized", "token")
	h.do("GET", "/debug/pprof/heap?debug=1", "").wantError(t, 401, "unauthorized", "token")
	r := h.do("GET", "/debug/pprof/heap?debug=1", "", "Authorization", "Bearer s3cret")
	if r.status != 200 || !strings.Contains(string(r.body), "heap profile") {
		t.Errorf("heap profile: %d %.200q", r.status, r.body)
	}
	r = h.do("GET", "/debug/pprof/", "", "Authorization", "Bearer s3cret")
	if r.status != 200 || !strings.Contains(string(r.body), "goroutine") {
		t.Errorf("pprof index: %d %.200q", r.status, r.body)
	}
}

func TestAuth(t *testing.T) {
	backends(t, testAuth, func(o *api.Options) { o.Token = "s3cret" })
}

func testAuth(t *testing.T, h *harness) {
	tests := []struct {
		method, path, auth string
		status             int
	}{
		{"GET", "/v1/jobs", "", 401},
		{"GET", "/v1/jobs", "Bearer wrong", 401},
		{"GET", "/v1/jobs", "Bearer s3cret2", 401},
		{"GET", "/v1/jobs", "Basic czNjcmV0", 401},
		{"GET", "/v1/jobs", "s3cret", 401},
		{"GET", "/v1/jobs", "Bearer s3cret", 200},
		{"GET", "/v1/jobs", "bearer s3cret", 200},
		{"POST", "/v1/jobs", "", 401},
		{"GET", "/v1/clusters/cl-0001", "", 401},
		{"POST", "/v1/clusters/cl-0001/kill", "", 401},
		{"GET", "/v1/nowhere", "", 401},
		{"GET", "/v1/nowhere", "Bearer s3cret", 404},
		{"GET", "/healthz", "", 200},
		{"GET", "/readyz", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path+" "+tt.auth, func(t *testing.T) {
			before := h.state()
			var hdr []string
			if tt.auth != "" {
				hdr = []string{"Authorization", tt.auth}
			}
			r := h.do(tt.method, tt.path, "", hdr...)
			if tt.status == 401 {
				r.wantError(t, 401, "unauthorized", "token")
				if r.header.Get("WWW-Authenticate") == "" {
					t.Error("no WWW-Authenticate header on a 401")
				}
				if h.state() != before {
					t.Error("an unauthorized request changed the service")
				}
				return
			}
			if r.status != tt.status {
				t.Errorf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
		})
	}
}

func TestRouting(t *testing.T) {
	backends(t, testRouting)
}

func testRouting(t *testing.T, h *harness) {
	tests := []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{"DELETE", "/v1/jobs", 405, "method_not_allowed", "GET, HEAD, POST"},
		{"PUT", "/v1/jobs/job-0001", 405, "method_not_allowed", "GET, HEAD"},
		{"POST", "/v1/clusters/cl-0001", 405, "method_not_allowed", "GET, HEAD"},
		{"GET", "/v1/clusters/cl-0001/drain", 405, "method_not_allowed", "POST"},
		{"GET", "/v1/clusters/cl-0001/kill", 405, "method_not_allowed", "POST"},
		{"GET", "/v1/jobs/job-0001/cancel", 405, "method_not_allowed", "POST"},
		{"POST", "/v1/pools", 405, "method_not_allowed", "GET, HEAD"},
		{"GET", "/v1/pools/small/unblock", 405, "method_not_allowed", "POST"},
		{"POST", "/healthz", 405, "method_not_allowed", "GET, HEAD"},
		{"GET", "/v2/jobs", 404, "not_found", ""},
		{"GET", "/", 404, "not_found", ""},
		{"GET", "/v1/jobs/job-0001/nothing", 404, "not_found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := h.do(tt.method, tt.path, "")
			r.wantError(t, tt.status, tt.code, "")
			if got := r.header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
		})
	}
}

// An unclean path is redirected to its clean form, not refused.
func TestCleanPathRedirect(t *testing.T) {
	h := newHarness(t)
	req, err := http.NewRequest("GET", h.srv.URL+"/v1//pools", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := h.srv.Client().Transport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != "/v1/pools" {
		t.Errorf("status %d, Location %q; want 307 to /v1/pools", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// faulty is a service whose Job panics and whose Pools fails with an
// internal error.
type faulty struct{ *apitest.Service }

func (faulty) Job(context.Context, string) (berth.Job, error) { panic("boom") }

func (faulty) Pools(context.Context) ([]berth.PoolStatus, error) {
	return nil, errors.New("query pools: open /var/lib/berth/berth.db: disk I/O error")
}

// chained is a service whose errors carry an operation chain around their
// public message, or no public message at all.
type chained struct{ *apitest.Service }

func (chained) JobEvents(context.Context, string) ([]berth.Event, error) {
	return nil, fmt.Errorf("events: %w", &berth.Error{Kind: berth.ErrNotFound, Op: "sqlite: get job job-0001", Public: "job job-0001 not found"})
}

func (chained) Clusters(context.Context, store.ClusterFilter) ([]berth.Cluster, error) {
	return nil, fmt.Errorf("sqlite: list clusters: %w: UNIQUE constraint failed at /var/lib/berth", berth.ErrConflict)
}

func TestErrorsShowOnlyThePublicMessage(t *testing.T) {
	h := newHarness(t)
	h = newHarness(t, func(o *api.Options) { o.Service = chained{h.svc} })

	r := h.do("GET", "/v1/jobs/job-0001/events", "")
	r.wantError(t, 404, "not_found", "job job-0001 not found")
	var e apiError
	r.decode(t, &e)
	if e.Error.Message != "job job-0001 not found" {
		t.Errorf("message %q, want the public message alone", e.Error.Message)
	}
	if !strings.Contains(h.log.String(), "sqlite: get job job-0001") {
		t.Errorf("the operation chain was not logged:\n%s", h.log.String())
	}

	r = h.do("GET", "/v1/clusters", "")
	r.wantError(t, 409, "conflict", "the request conflicts with the current state")
	if bytes.Contains(r.body, []byte("sqlite")) || bytes.Contains(r.body, []byte("/var/lib")) {
		t.Errorf("an error without a public message showed its text: %s", r.body)
	}
}

func TestInternalErrors(t *testing.T) {
	h := newHarness(t)
	h = newHarness(t, func(o *api.Options) { o.Service = faulty{h.svc} })

	r := h.do("GET", "/v1/jobs/job-0001", "")
	r.wantError(t, 500, "internal", "internal error")
	if !strings.Contains(h.log.String(), "boom") {
		t.Error("the panic was not logged")
	}
	// The server survived the panic.
	if r := h.do("GET", "/healthz", ""); r.status != 200 {
		t.Errorf("healthz after a panic: %d", r.status)
	}

	r = h.do("GET", "/v1/pools", "")
	r.wantError(t, 500, "internal", "internal error")
	if bytes.Contains(r.body, []byte("/var/lib")) {
		t.Errorf("an internal error leaked to the client: %s", r.body)
	}
	if !strings.Contains(h.log.String(), "disk I/O error") {
		t.Error("the internal error was not logged")
	}
	if !strings.Contains(h.log.String(), "path=/v1/pools status=500") {
		t.Errorf("no request log line for GET /v1/pools in:\n%s", h.log.String())
	}
}

// FuzzSubmit posts arbitrary bodies to the API over the stand-in and over
// the real service: neither may answer 5xx or show a message meant for
// logs, and a rejected body must change nothing. The seed corpus runs in
// every go test.
func FuzzSubmit(f *testing.F) {
	for _, s := range []string{
		goodSpec,
		`{"pool": "small", "steps": [{"args": ["x"]}], "idempotency_key": "k"}`,
		`{"pool": "huge", "steps": [{"args": ["x"]}]}`,
		`{"pool": "small", "steps": [{"args": ["x"]}], "then": [{"pool": "spark", "jobs": 2}, {"pool": "huge", "jobs": 0}]}`,
		`{"pool": "small", "steps": [{"args": ["x"]}], "max_infra_retries": -1}`,
		`{"pool": "small", "steps": [{"args": ["x"]}], "timeout": "-5s"}`,
		`{"pool": "small", "steps": [{"args": ["a\u0000b"]}]}`,
		`{"pool": "small", "steps": [{"jar": "s3://x.jar", "main_class": "M"}]}`,
		`{"pool": "spark", "steps": [{"jar": "s3://x.jar", "properties": {"k": "v"}}], "execution_role_arn": "arn:aws:iam::123456789012:role/r"}`,
		`{"pool": "small", "steps": [{"args": ["x"], "properties": {"k": "v"}}]}`,
		`{"pool": "small", "steps": [{"args": ["x"]}], "execution_role_arn": "arn:aws:iam::12:role/r"}`,
		`{"pool": "small", "steps": [{"args": ["x"], "env": {"": "v"}}]}`,
		`{"pool": "small", "steps": null}`,
		`{"pool": "small", "steps": [{"args": ["x"]}], "labels": {"a=b": "c"}}`,
		`{"pool": "small", "priority": 1e400}`,
		`{"pool": "small", "priority": 9223372036854775808}`,
		`{"pool": "small", "resume": "sometimes", "steps": [{"args": ["x"]}]}`,
		`{"POOL": "small", "Steps": [{"ARGS": ["x"]}]}`,
		`null`, `""`, `[]`, `{}`, `{`, `}`, `{"pool": "small"} {"pool": "small"}`,
		"\xff\xfe", "\ufeff{}", strings.Repeat("[", 10000), strings.Repeat(`{"pool": "`, 500),
		`{"pool": "small", "name": "` + strings.Repeat("n", 5000) + `", "steps": [{"args": ["x"]}]}`,
	} {
		f.Add([]byte(s))
	}
	quiet := func(o *api.Options) { o.MaxBodyBytes = 4096; o.Log = slog.New(slog.DiscardHandler) }
	hs := []*harness{newHarness(f, quiet), newRealHarness(f, quiet)}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, h := range hs {
			before := h.stateIn(t)
			req, err := http.NewRequest("POST", h.srv.URL+"/v1/jobs", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := h.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch after := h.stateIn(t); {
			case resp.StatusCode >= 500:
				t.Fatalf("status %d for %q: %s", resp.StatusCode, body, b)
			case resp.StatusCode >= 400 && after != before:
				t.Fatalf("status %d for %q, yet the service changed", resp.StatusCode, body)
			case resp.StatusCode == 201 && after == before:
				t.Fatalf("201 for %q, yet the service did not change", body)
			case resp.StatusCode >= 400:
				var e apiError
				if err := json.Unmarshal(b, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
					t.Fatalf("status %d with a body not in the error shape: %s", resp.StatusCode, b)
				}
				if l := leak(e.Error.Message); l != "" {
					t.Fatalf("message %q shows %s", e.Error.Message, l)
				}
			}
		}
	})
}

// A queued job says why it waits and when it should start, on GET
// /v1/jobs/{id} and in the list: wait_reason, wait_message, wait_cluster,
// wait_until, eta, each left out when it has nothing to say. A job that is
// not queued carries none of them.
func TestJobWait(t *testing.T) {
	fields := func(t *testing.T, body []byte) map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		out := map[string]any{}
		for _, k := range []string{"wait_reason", "wait_message", "wait_cluster", "wait_until", "eta"} {
			if v, ok := m[k]; ok {
				out[k] = v
			}
		}
		return out
	}
	listed := func(t *testing.T, h *harness, id string) map[string]any {
		t.Helper()
		var l struct {
			Jobs []json.RawMessage `json:"jobs"`
		}
		h.do("GET", "/v1/jobs?state=queued", "").decode(t, &l)
		for _, raw := range l.Jobs {
			if f := fields(t, raw); strings.Contains(string(raw), `"id":"`+id+`"`) {
				return f
			}
		}
		t.Fatalf("job %s not in the list of queued jobs", id)
		return nil
	}

	t.Run("stand-in", func(t *testing.T) {
		h := newHarness(t)
		j := h.submit(goodSpec)
		if j.WaitReason != berth.WaitPending {
			t.Errorf("a new job waits for %q, want pending", j.WaitReason)
		}
		err := h.svc.Update(j.ID, func(j *berth.Job) {
			j.Wait = berth.Wait{WaitReason: berth.WaitClusterStarting, WaitMessage: "cluster cl-0004 is starting for it",
				WaitCluster: "cl-0004", WaitUntil: t0.Add(7 * time.Minute), ETA: t0.Add(7 * time.Minute)}
		})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"wait_reason": "cluster_starting", "wait_message": "cluster cl-0004 is starting for it",
			"wait_cluster": "cl-0004", "wait_until": "2026-11-24T09:07:00Z", "eta": "2026-11-24T09:07:00Z",
		}
		if got := fields(t, h.do("GET", "/v1/jobs/"+j.ID, "").body); !reflect.DeepEqual(got, want) {
			t.Errorf("GET: %v, want %v", got, want)
		}
		if got := listed(t, h, j.ID); !reflect.DeepEqual(got, want) {
			t.Errorf("list: %v, want %v", got, want)
		}
		if err := h.svc.Finish(j.ID, berth.JobSucceeded, berth.ReasonSucceeded); err != nil {
			t.Fatal(err)
		}
		if got := fields(t, h.do("GET", "/v1/jobs/"+j.ID, "").body); len(got) != 0 {
			t.Errorf("a succeeded job carries %v", got)
		}
	})
	t.Run("real", func(t *testing.T) {
		// Pool small may start no cluster: its jobs wait at max_clusters
		// (0), with no estimate.
		h := newRealHarness(t)
		j := h.submit(goodSpec)
		// The answer to the submission says why it waits too: pending,
		// unless the loop picked the job up already.
		if j.WaitReason != berth.WaitPending && j.WaitReason != berth.WaitPoolAtMax {
			t.Errorf("the submission's answer waits for %q", j.WaitReason)
		}
		var got map[string]any
		waitFor(t, "the job's wait", func() bool {
			got = fields(t, h.do("GET", "/v1/jobs/"+j.ID, "").body)
			return got["wait_reason"] == "pool_at_max_clusters"
		})
		want := map[string]any{"wait_reason": "pool_at_max_clusters", "wait_message": "pool small starts no cluster: its max_clusters is 0"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("GET: %v, want %v", got, want)
		}
		if got := listed(t, h, j.ID); !reflect.DeepEqual(got, want) {
			t.Errorf("list: %v, want %v", got, want)
		}
		var long map[string]any
		long = fields(t, h.do("GET", "/v1/jobs/"+j.ID+"?wait=1ms", "").body)
		if !reflect.DeepEqual(long, want) {
			t.Errorf("long poll: %v, want %v", long, want)
		}
	})
}
