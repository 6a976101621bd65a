package berth

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors: the kinds of error every layer speaks. Every layer wraps
// them with what it was doing; the API maps them, and only them, to HTTP
// statuses.
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

// kinds lists the sentinels in the order KindOf tries them on an error
// that is not an *Error.
var kinds = []error{ErrInvalid, ErrUnprocessable, ErrNotFound, ErrConflict, ErrUnsupported, ErrUnavailable, ErrThrottled}

// Error is an error that keeps apart what a user is told from what a log
// needs (the idea of upspin's errors package). Its Kind says what sort of
// failure it is, so that errors.Is(err, ErrNotFound) holds through it; its
// Public message is what the API shows; Op and Err are the operation chain
// and the cause, which only logs see: they may name files, SQL or a
// provider's internals.
//
// An *Error with an empty Public wraps Err with an Op and leaves the public
// message to Err; one with a nil Kind takes its kind from Err.
type Error struct {
	// Kind is one of the sentinel errors of this package, or nil.
	Kind error
	// Public is the message for users: specific ("job job-1 not found",
	// "retries: must be 0..100") and free of internal detail.
	Public string
	// Op is what was being attempted ("sqlite: get job job-1"), for logs.
	Op string
	// Err is the underlying error, for logs; nil when there is none.
	Err error
}

// Errorf returns an *Error of kind with a public message and no cause.
func Errorf(kind error, format string, args ...any) *Error {
	return &Error{Kind: kind, Public: fmt.Sprintf(format, args...)}
}

// Error is the whole chain, for logs: op, public message (or kind), cause.
func (e *Error) Error() string {
	parts := make([]string, 0, 3)
	if e.Op != "" {
		parts = append(parts, e.Op)
	}
	switch {
	case e.Public != "":
		parts = append(parts, e.Public)
	case e.Kind != nil:
		parts = append(parts, e.Kind.Error())
	}
	if e.Err != nil {
		parts = append(parts, e.Err.Error())
	}
	return strings.Join(parts, ": ")
}

// Unwrap lets errors.Is and errors.As see both the kind and the cause.
func (e *Error) Unwrap() []error {
	var out []error
	if e.Kind != nil {
		out = append(out, e.Kind)
	}
	if e.Err != nil {
		out = append(out, e.Err)
	}
	return out
}

// Within says where in a request err happened: its public message gets
// where as a prefix ("jobs[3]: ..."), its kind stays.
func Within(err error, where string) error {
	if err == nil {
		return nil
	}
	msg := Public(err)
	if msg == "" {
		return fmt.Errorf("%s: %w", where, err)
	}
	return &Error{Kind: KindOf(err), Public: where + ": " + msg, Err: err}
}

// Public returns the public message of err: that of the outermost *Error
// in its chain that has one, "" when none has.
func Public(err error) string {
	var msg string
	walk(err, func(e *Error) bool {
		msg = e.Public
		return msg != ""
	})
	return msg
}

// KindOf returns the kind of err: the Kind of the outermost *Error in its
// chain that has one, else the first sentinel errors.Is finds in it, else
// nil.
func KindOf(err error) error {
	var kind error
	walk(err, func(e *Error) bool {
		kind = e.Kind
		return kind != nil
	})
	if kind != nil {
		return kind
	}
	for _, k := range kinds {
		if errors.Is(err, k) {
			return k
		}
	}
	return nil
}

// walk visits the *Error values of err's chain, outermost first and
// depth first as errors.As does, until visit returns true.
func walk(err error, visit func(*Error) bool) bool {
	if err == nil {
		return false
	}
	if e, ok := err.(*Error); ok && visit(e) {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return walk(u.Unwrap(), visit)
	case interface{ Unwrap() []error }:
		for _, inner := range u.Unwrap() {
			if walk(inner, visit) {
				return true
			}
		}
	}
	return false
}
