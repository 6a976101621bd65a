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

// errorStatus maps an error to its HTTP status and code, and says whether
// its message may be shown. It is the only place that does: the package
// comment lists its table. Only berth's sentinel errors and the API's own
// errors are shown; anything else is an internal error whose text could
// carry file paths, SQL or provider details, so it is logged instead.
func errorStatus(err error) (status int, code string, public bool) {
	var he *httpError
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		return he.status, he.code, true
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, "too_large", true
	case errors.Is(err, berth.ErrInvalid):
		return http.StatusBadRequest, "invalid", true
	case errors.Is(err, berth.ErrUnprocessable):
		return http.StatusUnprocessableEntity, "unprocessable", true
	case errors.Is(err, berth.ErrNotFound):
		return http.StatusNotFound, "not_found", true
	case errors.Is(err, berth.ErrConflict):
		return http.StatusConflict, "conflict", true
	case errors.Is(err, berth.ErrUnsupported):
		return http.StatusUnprocessableEntity, "unsupported", true
	case errors.Is(err, berth.ErrUnavailable):
		return http.StatusServiceUnavailable, "unavailable", true
	case errors.Is(err, berth.ErrThrottled):
		return http.StatusServiceUnavailable, "throttled", true
	default:
		return http.StatusInternalServerError, "internal", false
	}
}

// writeError answers err in the API's error shape.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code, public := errorStatus(err)
	msg := err.Error()
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		msg = fmt.Sprintf("request body larger than %d bytes", tooLarge.Limit)
	}
	switch {
	case public:
	case r.Context().Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		// The client went away or gave up: not the server's fault, and
		// nobody reads the answer.
		s.log.Debug("request cancelled", "method", r.Method, "path", r.URL.Path, "err", err)
		status, code, msg = http.StatusServiceUnavailable, "unavailable", "request cancelled"
	default:
		if err != errPanic { // ServeHTTP logged the panic with its stack
			s.log.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		msg = "internal error"
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
