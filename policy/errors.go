// Package policy holds pdvault's rules: pure functions from inputs to
// verdicts, with no storage, no network and no clock it was not handed.
//
// This file defines the error kinds every floor above shares. A kind says
// what went wrong in terms a caller can act on; only api/ turns a kind into
// an HTTP status.
package policy

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies an error for callers that must tell failures apart.
type Kind int

const (
	KindInternal        Kind = iota // a fault of ours; details never leave the process
	KindInvalid                     // the caller sent something malformed
	KindUnauthenticated             // missing or wrong credentials
	KindForbidden                   // authenticated, but not allowed
	KindNotFound                    // no such thing, or withheld: callers cannot tell which
	KindConflict                    // the state changed under the caller (versions, duplicates)
	KindExists                      // refusing to overwrite something that exists
	KindTooLarge                    // input over a documented limit
	KindUnprocessable               // well-formed, but breaks the rules (e.g. the terms)
	KindThrottled                   // slow down; RetryAfter says for how long
	KindUnavailable                 // temporarily unable (disk, shutdown)
	KindNoSpace                     // storage full
	KindPending                     // not decided yet (RFC 8628 authorization_pending)
	KindGone                        // expired or ended
	KindMisdirected                 // a request for a host this server does not serve
)

func (k Kind) String() string {
	switch k {
	case KindInvalid:
		return "invalid"
	case KindUnauthenticated:
		return "unauthenticated"
	case KindForbidden:
		return "forbidden"
	case KindNotFound:
		return "not found"
	case KindConflict:
		return "conflict"
	case KindExists:
		return "exists"
	case KindTooLarge:
		return "too large"
	case KindUnprocessable:
		return "unprocessable"
	case KindThrottled:
		return "throttled"
	case KindUnavailable:
		return "unavailable"
	case KindNoSpace:
		return "no space"
	case KindPending:
		return "pending"
	case KindMisdirected:
		return "misdirected"
	case KindGone:
		return "gone"
	}
	return "internal"
}

// Error is the one error type that crosses floors. Code is a short
// machine-readable word (OAuth style, e.g. "invalid_token"); Msg is safe to
// show to whoever made the request. Err, the cause, is for logs only and must
// not be shown to a client.
type Error struct {
	Kind       Kind
	Code       string
	Msg        string
	Reasons    []string      // every reason, when there are several (e.g. terms violations)
	RetryAfter time.Duration // for KindThrottled and KindPending
	Err        error

	origin *Error // the sentinel this error was made from, for errors.Is
}

func (e *Error) Error() string {
	s := e.Code
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Is reports whether e was made from the sentinel target (errors.Is
// already matches the sentinel itself). Several sentinels may share a code
// (every grant failure is "invalid_token" on the wire) and still be told
// apart here.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && e.origin != nil && e.origin == t
}

func (e *Error) derive() *Error {
	c := *e
	if e.origin == nil {
		c.origin = e
	}
	return &c
}

// WithCause returns a copy of the sentinel e carrying a cause for the logs.
func (e *Error) WithCause(err error) *Error {
	c := e.derive()
	c.Err = err
	return c
}

// WithDetail returns a copy of e whose message ends with detail, which must
// be safe to show to the client.
func (e *Error) WithDetail(detail string) *Error {
	c := e.derive()
	c.Msg += ": " + detail
	return c
}

// WithReasons returns a copy of e listing every reason.
func (e *Error) WithReasons(reasons []string) *Error {
	c := e.derive()
	c.Reasons = reasons
	return c
}

// WithRetryAfter returns a copy of e that tells the client when to retry.
func (e *Error) WithRetryAfter(d time.Duration) *Error {
	c := e.derive()
	c.RetryAfter = d
	return c
}

// E builds an Error.
func E(kind Kind, code, msg string) *Error {
	return &Error{Kind: kind, Code: code, Msg: msg}
}

// Wrap builds an Error with a cause that stays out of client responses.
func Wrap(kind Kind, code, msg string, err error) *Error {
	return &Error{Kind: kind, Code: code, Msg: msg, Err: err}
}

// Internal wraps a fault that is ours, not the caller's.
func Internal(op string, err error) *Error {
	return &Error{Kind: KindInternal, Code: "server_error", Msg: "internal error", Err: fmt.Errorf("%s: %w", op, err)}
}

// KindOf reports the kind of err, KindInternal for anything unclassified.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// MessageOf reports the client-safe message of err, "internal error" for
// anything unclassified.
func MessageOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Msg
	}
	return "internal error"
}

// CodeOf reports the code of err, "server_error" for anything unclassified.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return "server_error"
}
