package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/berthhq/berth/internal/berth"
)

// httpError is an error the API makes itself, with its status and code
// decided where it is made (bad query parameters, auth, unknown routes).
type httpError struct {
	status  int
	code    string
	message string
}

func (e *httpError) Error() string { return e.message }

var (
	errUnauthorized = &httpError{http.StatusUnauthorized, "unauthorized", "missing or invalid bearer token"}
	errPanic        = errors.New("handler panicked")
)

// badRequest is a 400 for input the API itself rejects.
func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, "invalid", fmt.Sprintf(format, args...)}
}

// errorBody is the JSON shape of every error answer.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// kindStatus is the status, code and generic message of each of berth's
// kinds of error. The message is shown for an error of the kind that
// carries no public message of its own.
var kindStatus = map[error]struct {
	status        int
	code, message string
}{
	berth.ErrInvalid:       {http.StatusBadRequest, "invalid", "the request is invalid"},
	berth.ErrUnprocessable: {http.StatusUnprocessableEntity, "unprocessable", "the request names something that cannot be done"},
	berth.ErrNotFound:      {http.StatusNotFound, "not_found", "not found"},
	berth.ErrConflict:      {http.StatusConflict, "conflict", "the request conflicts with the current state"},
	berth.ErrUnsupported:   {http.StatusUnprocessableEntity, "unsupported", "the provider does not support this"},
	berth.ErrUnavailable:   {http.StatusServiceUnavailable, "unavailable", "the service is unavailable; try again"},
	berth.ErrThrottled:     {http.StatusServiceUnavailable, "throttled", "the provider is throttling requests; try again"},
}

// errorStatus maps an error to its HTTP status, code and the message that
// may be shown. It is the only place that does: the package comment lists
// its table. The API's own errors are shown as they are; an error of one of
// berth's kinds shows its public message (berth.Public), or the kind's
// generic one, never its operation chain; anything else is an internal
// error whose text could carry file paths, SQL or provider details, so
// public is false and it is logged instead.
func errorStatus(err error) (status int, code, message string, public bool) {
	var he *httpError
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		return he.status, he.code, he.message, true
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body larger than %d bytes", tooLarge.Limit), true
	}
	ks, ok := kindStatus[berth.KindOf(err)]
	if !ok {
		return http.StatusInternalServerError, "internal", "internal error", false
	}
	message = berth.Public(err)
	if message == "" {
		message = ks.message
	}
	return ks.status, ks.code, message, true
}

// writeError answers err in the API's error shape. The whole error, with
// its operation chain, goes to the log: at debug for the client's own
// mistakes and the states it ran into, at error for internal errors.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code, msg, public := errorStatus(err)
	switch {
	case public:
		s.log.Debug("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	case r.Context().Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		// The client went away or gave up: not the server's fault, and
		// nobody reads the answer.
		s.log.Debug("request cancelled", "method", r.Method, "path", r.URL.Path, "err", err)
		status, code, msg = http.StatusServiceUnavailable, "unavailable", "request cancelled"
	default:
		if err != errPanic { // ServeHTTP logged the panic with its stack
			s.log.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		}
	}
	if status == http.StatusServiceUnavailable && code == "throttled" {
		w.Header().Set("Retry-After", "1")
	}
	b, _ := json.Marshal(errorBody{errorDetail{Code: code, Message: msg}})
	writeJSON(w, status, b)
}

// reply answers v as JSON with status.
func (s *server) reply(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	writeJSON(w, status, b)
	return nil
}

func writeJSON(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
