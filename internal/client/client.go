// Package client is the Go client of Berth's HTTP API (v1). It speaks the
// contract of the api package and nothing more: typed methods in, berth's
// domain types out, and API errors as *Error values that errors.Is matches
// against berth's sentinel errors, so a caller handles berth.ErrNotFound the
// same on either side of the wire.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berthhq/berth/internal/berth"
)

// MaxWait is the longest long poll the API accepts; WaitJob asks for no
// more.
const MaxWait = 10 * time.Minute

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// Client calls one Berth server. It is safe for concurrent use.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// New returns a client of the server at base (such as
// "http://127.0.0.1:8080"; a path prefix is kept). token, when set, is sent
// as a bearer token. hc nil means a client without an overall timeout:
// long polls last up to MaxWait, so bound calls with their context instead.
func New(base, token string, hc *http.Client) *Client {
	if hc == nil {
		// Workflow workers submit and long-poll many jobs at once: keep
		// their connections instead of the default two per host.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		hc = &http.Client{Transport: tr}
	}
	return &Client{base: strings.TrimRight(base, "/"), token: token, hc: hc}
}

// Error is an error answer of the API.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	if e.Message != "" {
		return e.Message
	}
	return fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
}

// sentinels maps the API's error codes to berth's sentinel errors. Codes
// of bad input the API decides itself (too_large, unsupported_media_type)
// count as berth.ErrInvalid; unauthorized and internal match none.
var sentinels = map[string]error{
	"invalid":                berth.ErrInvalid,
	"too_large":              berth.ErrInvalid,
	"unsupported_media_type": berth.ErrInvalid,
	"unprocessable":          berth.ErrUnprocessable,
	"not_found":              berth.ErrNotFound,
	"conflict":               berth.ErrConflict,
	"unsupported":            berth.ErrUnsupported,
	"unavailable":            berth.ErrUnavailable,
	"throttled":              berth.ErrThrottled,
}

// Is reports whether the error's code stands for target, one of berth's
// sentinel errors.
func (e *Error) Is(target error) bool {
	s, ok := sentinels[e.Code]
	return ok && s == target
}

// codeFor names the code of an error answer that did not carry one (a
// proxy's page, say), from its status.
func codeFor(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusConflict:
		return "conflict"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusUnprocessableEntity:
		return "unprocessable"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	if status >= 500 {
		return "internal"
	}
	return "http_" + strconv.Itoa(status)
}

// do sends one request and decodes a 2xx answer into out (when not nil).
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) (status int, err error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return 0, fmt.Errorf("make request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "berth-client")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, err // *url.Error names the method and URL
	}
	defer func() {
		// Drain what is left so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, decodeError(resp)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	e := &Error{Status: resp.StatusCode}
	if json.Unmarshal(b, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message = body.Error.Code, body.Error.Message
		return e
	}
	e.Code = codeFor(resp.StatusCode)
	if s := strings.TrimSpace(string(b)); s != "" && len(s) <= 200 && !strings.ContainsAny(s, "<\n") {
		e.Message = fmt.Sprintf("%d %s: %s", resp.StatusCode, http.StatusText(resp.StatusCode), s)
	}
	return e
}

func jobPath(id string) string     { return "/v1/jobs/" + url.PathEscape(id) }
func clusterPath(id string) string { return "/v1/clusters/" + url.PathEscape(id) }

// Submit submits a job. created is false when the idempotency key matched
// an existing job, which is returned instead.
func (c *Client) Submit(ctx context.Context, spec berth.JobSpec) (job berth.Job, created bool, err error) {
	status, err := c.do(ctx, http.MethodPost, "/v1/jobs", nil, spec, &job)
	return job, status == http.StatusCreated, err
}

// SubmitBatch submits up to berth.MaxBatch jobs in one request: all are
// stored or, on an error, none. The answer is in the specs' order.
func (c *Client) SubmitBatch(ctx context.Context, specs []berth.JobSpec) ([]berth.Submitted, error) {
	var out struct {
		Jobs []berth.Submitted `json:"jobs"`
	}
	_, err := c.do(ctx, http.MethodPost, "/v1/jobs/batch", nil, struct {
		Jobs []berth.JobSpec `json:"jobs"`
	}{specs}, &out)
	return out.Jobs, err
}

// Job returns one job.
func (c *Client) Job(ctx context.Context, id string) (berth.Job, error) {
	var j berth.Job
	_, err := c.do(ctx, http.MethodGet, jobPath(id), nil, nil, &j)
	return j, err
}

// WaitJob is one long poll: it returns the job once it has ended or wait
// (at most MaxWait) has passed. Callers loop on it until the job's state is
// terminal.
func (c *Client) WaitJob(ctx context.Context, id string, wait time.Duration) (berth.Job, error) {
	if wait <= 0 {
		return c.Job(ctx, id)
	}
	wait = min(wait, MaxWait)
	var j berth.Job
	_, err := c.do(ctx, http.MethodGet, jobPath(id), url.Values{"wait": {wait.String()}}, nil, &j)
	return j, err
}

// JobsQuery narrows Jobs. Zero fields do not filter.
type JobsQuery struct {
	State  berth.JobState
	Pool   string
	Labels map[string]string
	// Limit is 1..1000; 0 leaves the server's default.
	Limit int
	// Cursor is the next cursor of the previous page.
	Cursor string
}

// Jobs lists jobs newest first; next is the cursor of the next page, ""
// on the last.
func (c *Client) Jobs(ctx context.Context, q JobsQuery) (jobs []berth.Job, next string, err error) {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("state", string(q.State))
	set("pool", q.Pool)
	set("cursor", q.Cursor)
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	for _, k := range slices.Sorted(maps.Keys(q.Labels)) {
		v.Add("label", k+"="+q.Labels[k])
	}
	var out struct {
		Jobs       []berth.Job `json:"jobs"`
		NextCursor string      `json:"next_cursor"`
	}
	_, err = c.do(ctx, http.MethodGet, "/v1/jobs", v, nil, &out)
	return out.Jobs, out.NextCursor, err
}

// Cancel cancels a job. A job that has already ended is berth.ErrConflict.
func (c *Client) Cancel(ctx context.Context, id string) (berth.Job, error) {
	var j berth.Job
	_, err := c.do(ctx, http.MethodPost, jobPath(id)+"/cancel", nil, nil, &j)
	return j, err
}

// Logs returns one step's logs of one attempt of a job; attempt 0 is the
// latest attempt, step the 0-based index of the step.
func (c *Client) Logs(ctx context.Context, id string, attempt, step int) (berth.Logs, error) {
	v := url.Values{}
	if attempt != 0 {
		v.Set("attempt", strconv.Itoa(attempt))
	}
	if step != 0 {
		v.Set("step", strconv.Itoa(step))
	}
	var l berth.Logs
	_, err := c.do(ctx, http.MethodGet, jobPath(id)+"/logs", v, nil, &l)
	return l, err
}

// Events returns a job's history, oldest first.
func (c *Client) Events(ctx context.Context, id string) ([]berth.Event, error) {
	var out struct {
		Events []berth.Event `json:"events"`
	}
	_, err := c.do(ctx, http.MethodGet, jobPath(id)+"/events", nil, nil, &out)
	return out.Events, err
}

// Pools returns every pool with its live counts.
func (c *Client) Pools(ctx context.Context) ([]berth.PoolStatus, error) {
	var out struct {
		Pools []berth.PoolStatus `json:"pools"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/pools", nil, nil, &out)
	return out.Pools, err
}

// Pool returns one pool with its live counts.
func (c *Client) Pool(ctx context.Context, name string) (berth.PoolStatus, error) {
	var p berth.PoolStatus
	_, err := c.do(ctx, http.MethodGet, "/v1/pools/"+url.PathEscape(name), nil, nil, &p)
	return p, err
}

// Unblock lifts the block a permanent provider failure put on a pool and
// returns the pool; a pool that was not blocked is returned as it is.
func (c *Client) Unblock(ctx context.Context, name string) (berth.PoolStatus, error) {
	var p berth.PoolStatus
	_, err := c.do(ctx, http.MethodPost, "/v1/pools/"+url.PathEscape(name)+"/unblock", nil, nil, &p)
	return p, err
}

// Clusters lists clusters, of one pool and in one state when those are not
// empty.
func (c *Client) Clusters(ctx context.Context, pool string, state berth.ClusterState) ([]berth.Cluster, error) {
	v := url.Values{}
	if pool != "" {
		v.Set("pool", pool)
	}
	if state != "" {
		v.Set("state", string(state))
	}
	var out struct {
		Clusters []berth.Cluster `json:"clusters"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/clusters", v, nil, &out)
	return out.Clusters, err
}

// Cluster returns one cluster with its attempts and events.
func (c *Client) Cluster(ctx context.Context, id string) (berth.ClusterDetail, error) {
	var d berth.ClusterDetail
	_, err := c.do(ctx, http.MethodGet, clusterPath(id), nil, nil, &d)
	return d, err
}

// Drain stops placing jobs on a cluster; it is terminated when its jobs
// end.
func (c *Client) Drain(ctx context.Context, id string) (berth.Cluster, error) {
	return c.clusterAction(ctx, id, "drain")
}

// Terminate terminates a cluster now.
func (c *Client) Terminate(ctx context.Context, id string) (berth.Cluster, error) {
	return c.clusterAction(ctx, id, "terminate")
}

// Kill makes a cluster die as if its capacity were reclaimed (fault
// injection); berth.ErrUnsupported when its provider cannot.
func (c *Client) Kill(ctx context.Context, id string) (berth.Cluster, error) {
	return c.clusterAction(ctx, id, "kill")
}

// TerminateAll terminates every live cluster and waits, polling every
// tick, until those are gone or ctx ends. Demos, tests and benchmarks end
// with it, so that they leave nothing running. (A pool with min_clusters
// above 0 starts replacements, which it leaves alone.)
func (c *Client) TerminateAll(ctx context.Context, tick time.Duration) error {
	cs, err := c.Clusters(ctx, "", "")
	if err != nil {
		return err
	}
	asked := map[string]bool{}
	for _, cl := range cs {
		if cl.State.Terminal() {
			continue
		}
		if _, err := c.Terminate(ctx, cl.ID); err != nil && !errors.Is(err, berth.ErrConflict) {
			return fmt.Errorf("terminate %s: %w", cl.ID, err)
		}
		asked[cl.ID] = true
	}
	for {
		cs, err := c.Clusters(ctx, "", "")
		if err != nil {
			return err
		}
		live := 0
		for _, cl := range cs {
			if asked[cl.ID] && !cl.State.Terminal() {
				live++
			}
		}
		if live == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d clusters still live: %w", live, ctx.Err())
		case <-time.After(tick):
		}
	}
}

func (c *Client) clusterAction(ctx context.Context, id, action string) (berth.Cluster, error) {
	var cl berth.Cluster
	_, err := c.do(ctx, http.MethodPost, clusterPath(id)+"/"+action, nil, nil, &cl)
	return cl, err
}

// Healthz returns nil while the server serves.
func (c *Client) Healthz(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodGet, "/healthz", nil, nil, nil)
	return err
}

// Readyz returns nil when the server is ready, an *Error matching
// berth.ErrUnavailable when it is not.
func (c *Client) Readyz(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodGet, "/readyz", nil, nil, nil)
	return err
}
