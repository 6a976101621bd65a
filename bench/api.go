package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// api speaks Berth's HTTP API (v1) with the JSON shapes of internal/api,
// declared again here with only the fields the suite reads: this module may
// not import Berth's internal packages.
type api struct {
	base string
	hc   *http.Client
}

type jobSpec struct {
	Pool  string `json:"pool"`
	Steps []step `json:"steps"`
}

type step struct {
	Name string   `json:"name"`
	Args []string `json:"args"`
}

func oneStep(pool string, args ...string) jobSpec {
	return jobSpec{Pool: pool, Steps: []step{{Name: "s", Args: args}}}
}

type job struct {
	ID        string    `json:"id"`
	State     string    `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	Attempts  []struct {
		StartedAt time.Time `json:"started_at"`
		Steps     []struct {
			StartedAt time.Time `json:"started_at"`
		} `json:"steps"`
	} `json:"attempts"`
}

func (j job) ended() bool {
	return j.State == "succeeded" || j.State == "failed" || j.State == "cancelled"
}

type poolStatus struct {
	Clusters map[string]int `json:"clusters"`
	Queued   int            `json:"queued"`
	Running  int            `json:"running"`
}

// errNoBatch says the server has no POST /v1/jobs/batch yet.
var errNoBatch = errors.New("no batch endpoint")

func newAPI(base string) *api {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// Every concurrent client keeps its connection, as a fleet of workflow
	// workers would: no handshake per call.
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 2048, 2048
	tr.Proxy = nil // loopback only, whatever the environment says
	return &api{base: base, hc: &http.Client{Transport: tr}}
}

// call sends one request and decodes a 2xx answer into out. The body is
// bytes encoded once by the caller, so that the measuring client spends
// as little as it can of the two cores it shares with the server.
func (a *api) call(ctx context.Context, method, path string, body []byte, out any) (int, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, r)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, err
	}
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// submit is POST /v1/jobs of an encoded spec; only a 201 is a success.
func (a *api) submit(ctx context.Context, spec []byte) (job, error) {
	var j job
	status, err := a.call(ctx, http.MethodPost, "/v1/jobs", spec, &j)
	if err == nil && status != http.StatusCreated {
		err = fmt.Errorf("POST /v1/jobs: %d, want 201", status)
	}
	return j, err
}

// submitBatch is POST /v1/jobs/batch of an encoded {"jobs": [...]}, whose
// answer lists {"created", "job"} in request order. A 404 or 405 is
// errNoBatch: the endpoint is not there.
func (a *api) submitBatch(ctx context.Context, body []byte, n int) error {
	var out struct {
		Jobs []struct {
			Created bool `json:"created"`
			Job     job  `json:"job"`
		} `json:"jobs"`
	}
	status, err := a.call(ctx, http.MethodPost, "/v1/jobs/batch", body, &out)
	switch {
	case status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
		return errNoBatch
	case err != nil:
		return err
	case len(out.Jobs) != n:
		return fmt.Errorf("POST /v1/jobs/batch: %d jobs in the answer, want %d", len(out.Jobs), n)
	}
	for i, r := range out.Jobs {
		if !r.Created || r.Job.ID == "" {
			return fmt.Errorf("POST /v1/jobs/batch: job %d not created", i)
		}
	}
	return nil
}

func batchBody(spec jobSpec, n int) []byte {
	specs := make([]jobSpec, n)
	for i := range specs {
		specs[i] = spec
	}
	return mustJSON(map[string][]jobSpec{"jobs": specs})
}

// wait long-polls a job until it has ended.
func (a *api) wait(ctx context.Context, id string) (job, error) {
	for {
		var j job
		if _, err := a.call(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id)+"?wait=60s", nil, &j); err != nil {
			return j, err
		}
		if j.ended() {
			return j, nil
		}
	}
}

func (a *api) cancel(ctx context.Context, id string) error {
	_, err := a.call(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(id)+"/cancel", nil, nil)
	return err
}

func (a *api) pool(ctx context.Context, name string) (poolStatus, error) {
	var p poolStatus
	_, err := a.call(ctx, http.MethodGet, "/v1/pools/"+url.PathEscape(name), nil, &p)
	return p, err
}

// waitPool polls a pool's status until ok says it is as wanted.
func (a *api) waitPool(ctx context.Context, name string, limit time.Duration, what string, ok func(poolStatus) bool) error {
	deadline := time.Now().Add(limit)
	for {
		p, err := a.pool(ctx, name)
		if err == nil && ok(p) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pool %s: not %s after %s (last: %+v, %v)", name, what, limit, p, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (a *api) metrics(ctx context.Context) (metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %d", resp.StatusCode)
	}
	return parseMetrics(resp.Body)
}

// ready is whether GET /readyz answers 200.
func (a *api) ready(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	status, err := a.call(ctx, http.MethodGet, "/readyz", nil, nil)
	return err == nil && status == http.StatusOK
}
