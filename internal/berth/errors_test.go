package berth

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestError(t *testing.T) {
	cause := errors.New("UNIQUE constraint failed: jobs.id")
	notFound := &Error{Kind: ErrNotFound, Op: "sqlite: get job job-1", Public: "job job-1 not found"}
	tests := []struct {
		name   string
		err    error
		text   string // Error(): the chain, for logs
		public string
		kind   error
	}{
		{"public with op", notFound, "sqlite: get job job-1: job job-1 not found", "job job-1 not found", ErrNotFound},
		{"wrapped by fmt", fmt.Errorf("submit: %w", notFound), "submit: sqlite: get job job-1: job job-1 not found", "job job-1 not found", ErrNotFound},
		{"op only: kind and message from inside", &Error{Op: "cancel job job-1", Err: notFound},
			"cancel job job-1: sqlite: get job job-1: job job-1 not found", "job job-1 not found", ErrNotFound},
		{"outer message wins", &Error{Kind: ErrConflict, Public: "job job-1 has ended", Err: notFound},
			"job job-1 has ended: sqlite: get job job-1: job job-1 not found", "job job-1 has ended", ErrConflict},
		{"no message: the kind in the text", &Error{Kind: ErrConflict, Op: "sqlite: create job job-1", Err: cause},
			"sqlite: create job job-1: conflict: UNIQUE constraint failed: jobs.id", "", ErrConflict},
		{"Errorf", Errorf(ErrInvalid, "retries: must be 0..%d", 100), "retries: must be 0..100", "retries: must be 0..100", ErrInvalid},
		{"plain sentinel wrap", fmt.Errorf("%w: bad cursor", ErrInvalid), "invalid: bad cursor", "", ErrInvalid},
		{"joined", errors.Join(errors.New("x"), notFound), "x\nsqlite: get job job-1: job job-1 not found", "job job-1 not found", ErrNotFound},
		{"no kind", errors.New("disk I/O error"), "disk I/O error", "", nil},
		{"cause without a kind", &Error{Op: "load", Public: "the store cannot be read", Err: context.Canceled},
			"load: the store cannot be read: context canceled", "the store cannot be read", nil},
		{"nil", nil, "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err != nil && tt.err.Error() != tt.text {
				t.Errorf("Error() = %q, want %q", tt.err.Error(), tt.text)
			}
			if got := Public(tt.err); got != tt.public {
				t.Errorf("Public = %q, want %q", got, tt.public)
			}
			if got := KindOf(tt.err); got != tt.kind {
				t.Errorf("KindOf = %v, want %v", got, tt.kind)
			}
			if tt.kind != nil && !errors.Is(tt.err, tt.kind) {
				t.Errorf("errors.Is(err, %v) is false", tt.kind)
			}
		})
	}
	// The cause stays reachable for callers that look for it.
	if err := (&Error{Kind: ErrUnavailable, Err: context.DeadlineExceeded}); !errors.Is(err, context.DeadlineExceeded) {
		t.Error("errors.Is does not reach the cause")
	}
}

func TestValidateErrorsArePublic(t *testing.T) {
	spec := JobSpec{Pool: "p", Steps: []Step{{Args: []string{"x"}}}, Retries: -1}
	err := spec.Validate()
	if !errors.Is(err, ErrInvalid) || Public(err) != "retries: must be 0..100" {
		t.Errorf("Validate() = %v (public %q), want ErrInvalid with the field first", err, Public(err))
	}
}
