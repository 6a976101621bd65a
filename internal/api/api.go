// Package api serves Berth's HTTP API (v1), the contract that clients such
// as Airflow operators and the berth CLI are written against (see "The HTTP
// API (v1)" in the design).
//
// The package owns the HTTP side only: routing, authentication, decoding and
// checking requests, and mapping errors to statuses. Everything it serves comes
// from a Service, so the same handler runs over the real service and over the
// in-memory fake in apitest.
//
// Every answer is JSON, errors included: {"error": {"code", "message"}}. The
// mapping from errors to statuses lives in one function, errorStatus; its
// table is the list of codes clients may rely on:
//
//	400 invalid                 malformed or out-of-range input (berth.ErrInvalid)
//	401 unauthorized            missing or wrong bearer token
//	404 not_found               unknown job, cluster, pool or path (berth.ErrNotFound)
//	405 method_not_allowed      known path, wrong method (the Allow header lists the right ones)
//	409 conflict                the thing is not in a state that allows it (berth.ErrConflict)
//	413 too_large               request body over Options.MaxBodyBytes
//	415 unsupported_media_type  a Content-Type other than application/json
//	422 unprocessable           well-formed but impossible, e.g. an unknown pool (berth.ErrUnprocessable)
//	422 unsupported             the provider lacks the capability, e.g. kill (berth.ErrUnsupported)
//	503 unavailable             not ready, the store cannot write (disk full), or the request was cancelled (berth.ErrUnavailable)
//	503 throttled               the provider asked us to slow down (berth.ErrThrottled)
//	500 internal                anything else; the real error is logged, never shown
//
// A message is what berth.Public finds in the error: a sentence for the
// user that names the job, pool or field at fault. The operation chain
// ("sqlite: get job ...") and any underlying error go to the log only; an
// error of a known kind without a public message shows a generic one for
// its kind.
//
// Unsupported is 422 rather than 501 because the server does implement the
// endpoint: it is the named cluster's provider that cannot do it, a property
// of the request, not of the server.
package api

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"strings"
	"time"

	"github.com/berthhq/berth/internal/clock"
)

// DefaultMaxBodyBytes bounds a request body when Options.MaxBodyBytes is 0.
const DefaultMaxBodyBytes = 1 << 20

// batchBodyFactor is how many times the bound of one submission's body a
// batch's may be: a batch of berth.MaxBatch jobs of a few hundred bytes
// each fits well, one that carries large specs gets a 413 and can be cut.
const batchBodyFactor = 16

// MaxWait is the longest long poll GET /v1/jobs/{id}?wait= accepts. A server
// in front of the handler needs a WriteTimeout above it, or none: the handler
// clears the write deadline of a long poll where it can.
const MaxWait = 10 * time.Minute

// Options configures the handler New returns.
type Options struct {
	Service Service
	// Token, when set, is the bearer token every /v1 call and /metrics must
	// carry. /healthz and /readyz stay open so that probes need no secret.
	Token string
	// Log receives request logs (debug), panics and internal errors; nil
	// discards them.
	Log *slog.Logger
	// Metrics is served at GET /metrics; nil answers 404.
	Metrics http.Handler
	// MaxBodyBytes bounds a request body; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Pprof serves net/http/pprof's handlers under /debug/pprof/, behind
	// the token like /metrics; off, those paths answer 404.
	Pprof bool
}

type server struct {
	svc     Service
	log     *slog.Logger
	maxBody int64
	metrics http.Handler
	// tokenSum is the SHA-256 of the token: comparing fixed-size digests in
	// constant time does not leak the token's length either.
	tokenSum [sha256.Size]byte
	auth     bool
	mux      *http.ServeMux
}

// New returns the API's handler.
func New(o Options) http.Handler {
	if o.Service == nil {
		panic("api: Options.Service is nil")
	}
	s := &server{
		svc:     o.Service,
		log:     o.Log,
		maxBody: o.MaxBodyBytes,
		metrics: o.Metrics,
		mux:     http.NewServeMux(),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	if o.Token != "" {
		s.auth = true
		s.tokenSum = sha256.Sum256([]byte(o.Token))
	}
	s.routes()
	if o.Pprof {
		s.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		s.mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		s.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		s.mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		s.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return s
}

func (s *server) routes() {
	h := func(pattern string, f func(http.ResponseWriter, *http.Request) error) {
		s.mux.Handle(pattern, s.handle(f))
	}
	h("POST /v1/jobs", s.submit)
	h("POST /v1/jobs/batch", s.submitBatch)
	h("GET /v1/jobs", s.listJobs)
	h("GET /v1/jobs/{id}", s.getJob)
	h("POST /v1/jobs/{id}/cancel", s.cancelJob)
	h("GET /v1/jobs/{id}/logs", s.jobLogs)
	h("GET /v1/jobs/{id}/events", s.jobEvents)

	h("GET /v1/pools", s.listPools)
	h("GET /v1/pools/{name}", s.getPool)
	h("POST /v1/pools/{name}/unblock", s.unblockPool)

	h("GET /v1/clusters", s.listClusters)
	h("GET /v1/clusters/{id}", s.getCluster)
	h("POST /v1/clusters/{id}/drain", s.clusterAction(Service.Drain))
	h("POST /v1/clusters/{id}/terminate", s.clusterAction(Service.Terminate))
	h("POST /v1/clusters/{id}/kill", s.clusterAction(Service.Kill))

	h("GET /healthz", s.healthz)
	h("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", s.handle(s.serveMetrics))
}

// handle adapts a handler that returns its error, so that every handler
// answers errors the same way.
func (s *server) handle(f func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := f(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// ServeHTTP logs the request, turns a panic into a 500, checks the token and
// routes.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := clock.Real{}.Now()
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path,
				"panic", v, "stack", string(debug.Stack()))
			if sw.status == 0 {
				s.writeError(sw, r, errPanic)
			}
		}
		status := sw.status
		if status == 0 { // nothing written: net/http answers 200
			status = http.StatusOK
		}
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path,
			"status", status, "duration", clock.Real{}.Now().Sub(start))
	}()
	if s.auth && needsToken(r.URL.Path) && !s.authorized(r) {
		sw.Header().Set("WWW-Authenticate", `Bearer realm="berth"`)
		s.writeError(sw, r, errUnauthorized)
		return
	}
	s.route(sw, r)
}

// route serves r through the mux, but answers the mux's own plain-text 404
// and 405 in the API's JSON shape.
func (s *server) route(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.mux.Handler(r); pattern != "" {
		s.mux.ServeHTTP(w, r)
		return
	}
	// No pattern: the mux answers 404, 405 or a redirect to a cleaned path.
	rec := &recorder{header: http.Header{}}
	s.mux.ServeHTTP(rec, r)
	switch rec.status {
	case http.StatusNotFound:
		s.writeError(w, r, &httpError{http.StatusNotFound, "not_found", "no such endpoint: " + r.Method + " " + r.URL.Path})
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", rec.header.Get("Allow"))
		s.writeError(w, r, &httpError{http.StatusMethodNotAllowed, "method_not_allowed",
			"method " + r.Method + " not allowed on " + r.URL.Path + "; allowed: " + rec.header.Get("Allow")})
	default:
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
		_, _ = w.Write(rec.body.Bytes())
	}
}

func needsToken(path string) bool {
	return path == "/v1" || strings.HasPrefix(path, "/v1/") || path == "/metrics" || strings.HasPrefix(path, "/debug/")
}

func (s *server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return false
	}
	sum := sha256.Sum256([]byte(h[len(prefix):]))
	return subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}

func (s *server) serveMetrics(w http.ResponseWriter, r *http.Request) error {
	if s.metrics == nil {
		return &httpError{http.StatusNotFound, "not_found", "metrics are not enabled"}
	}
	s.metrics.ServeHTTP(w, r)
	return nil
}

// statusWriter remembers the status written, for the request log and so
// that a panic after the header went out does not write a second one.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (to flush, or
// to lift the write deadline of a long poll).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// recorder captures what the mux answers for a request that matched no
// pattern.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
