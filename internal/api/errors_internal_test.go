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
	tests := []struct {
		err    error
		status int
		code   string
		public bool
	}{
		{wrap(berth.ErrInvalid), 400, "invalid", true},
		{wrap(berth.ErrUnprocessable), 422, "unprocessable", true},
		{wrap(berth.ErrNotFound), 404, "not_found", true},
		{wrap(berth.ErrConflict), 409, "conflict", true},
		{wrap(berth.ErrUnsupported), 422, "unsupported", true},
		{wrap(berth.ErrUnavailable), 503, "unavailable", true},
		{wrap(berth.ErrThrottled), 503, "throttled", true},
		{wrap(&http.MaxBytesError{Limit: 10}), 413, "too_large", true},
		{errUnauthorized, 401, "unauthorized", true},
		{badRequest("parameter %q: bad", "x"), 400, "invalid", true},
		{&httpError{405, "method_not_allowed", "no"}, 405, "method_not_allowed", true},
		{errors.New("database is locked"), 500, "internal", false},
		{wrap(context.Canceled), 500, "internal", false},
		{errPanic, 500, "internal", false},
	}
	for _, tt := range tests {
		status, code, public := errorStatus(tt.err)
		if status != tt.status || code != tt.code || public != tt.public {
			t.Errorf("errorStatus(%v) = %d %q %v, want %d %q %v", tt.err, status, code, public, tt.status, tt.code, tt.public)
		}
	}
}
