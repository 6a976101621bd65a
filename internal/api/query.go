package api

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/store"
)

// maxParamBytes bounds a free-form query value (pool, cursor, label).
const maxParamBytes = 1024

// query reads a request's query parameters and keeps the first thing wrong
// with them, so a handler reads every parameter and checks once.
type query struct {
	v   url.Values
	err error
}

func parseQuery(r *http.Request) *query {
	v, err := url.ParseQuery(r.URL.RawQuery)
	q := &query{v: v}
	if err != nil {
		q.err = badRequest("malformed query string: %v", err)
	}
	return q
}

func (q *query) fail(name, format string, args ...any) {
	if q.err == nil {
		q.err = badRequest("parameter %q: "+format, append([]any{name}, args...)...)
	}
}

// str returns a single-valued parameter, "" when absent.
func (q *query) str(name string) string {
	vs := q.v[name]
	switch {
	case len(vs) == 0:
		return ""
	case len(vs) > 1:
		q.fail(name, "given %d times, at most once allowed", len(vs))
		return ""
	case len(vs[0]) > maxParamBytes:
		q.fail(name, "longer than %d bytes", maxParamBytes)
		return ""
	}
	return vs[0]
}

// integer returns a parameter in min..max, def when absent.
func (q *query) integer(name string, def, min, max int) int {
	s := q.str(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < min || n > max {
		q.fail(name, "must be an integer in %d..%d, got %q", min, max, s)
		return def
	}
	return n
}

// duration returns a Go duration parameter in 0..max, 0 when absent.
func (q *query) duration(name string, max time.Duration) time.Duration {
	s := q.str(name)
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > max {
		q.fail(name, "must be a duration such as \"30s\" between 0 and %s, got %q", max, s)
		return 0
	}
	return d
}

// state reads a job or cluster state; what names the kind in the error.
func state[S interface {
	~string
	Valid() bool
}](q *query, name, what string, all []S) S {
	s := S(q.str(name))
	if s != "" && !s.Valid() {
		q.fail(name, "unknown %s state %q (one of %v)", what, s, all)
		return ""
	}
	return s
}

// labels reads a repeatable k=v parameter.
func (q *query) labels(name string) map[string]string {
	vs := q.v[name]
	if len(vs) == 0 {
		return nil
	}
	if len(vs) > berth.MaxLabels {
		q.fail(name, "given more than %d times", berth.MaxLabels)
		return nil
	}
	m := make(map[string]string, len(vs))
	for _, kv := range vs {
		k, v, ok := strings.Cut(kv, "=")
		switch {
		case !ok || k == "":
			q.fail(name, "must be key=value, got %q", kv)
			return nil
		case len(kv) > maxParamBytes:
			q.fail(name, "longer than %d bytes", maxParamBytes)
			return nil
		}
		if old, dup := m[k]; dup && old != v {
			q.fail(name, "key %q given twice with different values", k)
			return nil
		}
		m[k] = v
	}
	return m
}

func (q *query) jobFilter() store.JobFilter {
	return store.JobFilter{
		State:  state(q, "state", "job", berth.JobStates),
		Pool:   q.str("pool"),
		Labels: q.labels("label"),
		Limit:  q.integer("limit", 0, 1, store.MaxLimit),
		Cursor: q.str("cursor"),
	}
}

// decodeBody reads one JSON value into v: no unknown fields, nothing after
// it, at most the configured number of bytes.
func (s *server) decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	return s.decodeBodyMax(w, r, v, s.maxBody)
}

// decodeBodyMax is decodeBody with a bound of its own.
func (s *server) decodeBodyMax(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return &httpError{http.StatusUnsupportedMediaType, "unsupported_media_type",
				"Content-Type must be application/json, got " + strconv.Quote(ct)}
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	var extra json.RawMessage
	switch err := dec.Decode(&extra); {
	case err == io.EOF:
		return nil
	case isTooLarge(err):
		return err
	default:
		return badRequest("request body: unexpected data after the JSON value")
	}
}

func isTooLarge(err error) bool {
	var e *http.MaxBytesError
	return errors.As(err, &e)
}

// bodyError explains a decoding error in the request's terms.
func bodyError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case isTooLarge(err):
		return err
	case err == io.EOF:
		return badRequest("request body: empty, a JSON object is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("request body: malformed JSON: unexpected end of input")
	case errors.As(err, &syntax):
		return badRequest("request body: malformed JSON at byte %d: %v", syntax.Offset, syntax)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return badRequest("request body: field %q: a JSON %s cannot be a %s", typ.Field, typ.Value, typ.Type)
		}
		return badRequest("request body: a JSON %s cannot be a %s", typ.Value, typ.Type)
	default:
		return badRequest("request body: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
}
