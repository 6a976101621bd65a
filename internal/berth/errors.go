package berth

import "errors"

// Sentinel errors. Every layer wraps them with what it was doing; the API
// maps them, and only them, to HTTP statuses.
var (
	// ErrInvalid: the input is malformed or out of range.
	ErrInvalid = errors.New("invalid")
	// ErrUnprocessable: well-formed input that names something impossible,
	// such as an unknown pool.
	ErrUnprocessable = errors.New("unprocessable")
	ErrNotFound      = errors.New("not found")
	// ErrConflict: the thing is not in a state that allows the request.
	ErrConflict = errors.New("conflict")
	// ErrUnsupported: the provider lacks the capability asked for.
	ErrUnsupported = errors.New("unsupported")
	// ErrUnavailable: the service cannot answer now (starting, stopping,
	// or its store cannot write: a full disk).
	ErrUnavailable = errors.New("unavailable")
	// ErrThrottled: the provider asked us to slow down; try again later.
	ErrThrottled = errors.New("throttled")
)
