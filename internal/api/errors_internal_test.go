package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/berthhq/berth/internal/berth"
)

func TestErrorStatus(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("get job job-1: %w", err) }
	notFound := &berth.Error{Kind: berth.ErrNotFound, Op: "sqlite: get job job-1", Public: "job job-1 not found"}
	tests := []struct {
		err     error
		status  int
		code    string
		message string
		public  bool
	}{
		// Errors with a public message show it, and only it.
		{notFound, 404, "not_found", "job job-1 not found", true},
		{wrap(notFound), 404, "not_found", "job job-1 not found", true},
		{&berth.Error{Op: "cancel job job-1", Err: notFound}, 404, "not_found", "job job-1 not found", true},
		{berth.Errorf(berth.ErrConflict, "job job-1 has already ended (succeeded)"), 409, "conflict", "job job-1 has already ended (succeeded)", true},
		{&berth.Error{Kind: berth.ErrUnavailable, Public: "the store is busy; try again", Err: errors.New("database is locked")}, 503, "unavailable", "the store is busy; try again", true},
		// A known kind without one shows the kind's generic message.
		{wrap(berth.ErrInvalid), 400, "invalid", "the request is invalid", true},
		{wrap(berth.ErrUnprocessable), 422, "unprocessable", "the request names something that cannot be done", true},
		{wrap(berth.ErrNotFound), 404, "not_found", "not found", true},
		{fmt.Errorf("sqlite: commit: %w: FOREIGN KEY constraint failed", berth.ErrConflict), 409, "conflict", "the request conflicts with the current state", true},
		{wrap(berth.ErrUnsupported), 422, "unsupported", "the provider does not support this", true},
		{wrap(berth.ErrUnavailable), 503, "unavailable", "the service is unavailable; try again", true},
		{wrap(berth.ErrThrottled), 503, "throttled", "the provider is throttling requests; try again", true},
		// A public message without a kind is still an internal error.
		{&berth.Error{Public: "something", Err: errors.New("disk full")}, 500, "internal", "internal error", false},
		// The API's own errors.
		{wrap(&http.MaxBytesError{Limit: 10}), 413, "too_large", "request body larger than 10 bytes", true},
		{errUnauthorized, 401, "unauthorized", "missing or invalid bearer token", true},
		{badRequest("parameter %q: bad", "x"), 400, "invalid", `parameter "x": bad`, true},
		{&httpError{405, "method_not_allowed", "no"}, 405, "method_not_allowed", "no", true},
		// Anything else.
		{errors.New("database is locked"), 500, "internal", "internal error", false},
		{wrap(context.Canceled), 500, "internal", "internal error", false},
		{errPanic, 500, "internal", "internal error", false},
	}
	for _, tt := range tests {
		status, code, message, public := errorStatus(tt.err)
		if status != tt.status || code != tt.code || message != tt.message || public != tt.public {
			t.Errorf("errorStatus(%v) = %d %q %q %v, want %d %q %q %v", tt.err, status, code, message, public, tt.status, tt.code, tt.message, tt.public)
		}
	}
}
