package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/pdvault/pdvault/policy"
)

// errorBody is the OAuth 2.0 error shape (RFC 6749 §5.2), with the list of
// reasons when a request breaks several rules at once.
type errorBody struct {
	Error       string   `json:"error"`
	Description string   `json:"error_description,omitempty"`
	Reasons     []string `json:"reasons,omitempty"`
}

// status maps an error kind to an HTTP status. This is the only place in
// pdvault where kinds meet status codes.
func status(k policy.Kind) int {
	switch k {
	case policy.KindInvalid:
		return http.StatusBadRequest
	case policy.KindUnauthenticated:
		return http.StatusUnauthorized
	case policy.KindForbidden:
		return http.StatusForbidden
	case policy.KindNotFound:
		return http.StatusNotFound
	case policy.KindConflict:
		return http.StatusConflict
	case policy.KindExists:
		return http.StatusConflict
	case policy.KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case policy.KindUnprocessable:
		return http.StatusUnprocessableEntity
	case policy.KindThrottled:
		return http.StatusTooManyRequests
	case policy.KindUnavailable:
		return http.StatusServiceUnavailable
	case policy.KindNoSpace:
		return http.StatusInsufficientStorage
	case policy.KindPending:
		return http.StatusBadRequest // RFC 8628 §3.5: polling errors are 400
	case policy.KindMisdirected:
		return http.StatusMisdirectedRequest
	case policy.KindGone:
		return http.StatusGone // the token endpoint still answers 400 (writeTokenError)
	}
	return http.StatusInternalServerError
}

// writeError answers with the error's kind and code. The description is the
// error's own client-safe message; the cause is logged, never sent.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var pe *policy.Error
	if !errors.As(err, &pe) {
		pe = policy.Internal("unclassified", err)
	}
	code := status(pe.Kind)
	noteError(r, pe.Code)
	// A client that went away is not a server fault worth an error line.
	if code >= 500 && r.Context().Err() == nil {
		log.Error("request failed", "method", r.Method, "route", routeName(r), "code", pe.Code, "err", err)
	}
	if pe.RetryAfter > 0 {
		w.Header().Set("Retry-After", retryAfter(pe.RetryAfter))
	}
	// Handlers for DPoP-protected resources set their own challenge first.
	if pe.Kind == policy.KindUnauthenticated && w.Header().Get("WWW-Authenticate") == "" {
		w.Header().Set("WWW-Authenticate", `Bearer error="`+pe.Code+`"`)
	}
	writeJSON(w, code, errorBodyOf(pe))
}

// errorBodyOf is the body writeError would send for err (never an
// internal error's text).
func errorBodyOf(err error) errorBody {
	var pe *policy.Error
	if !errors.As(err, &pe) {
		pe = policy.Internal("unclassified", err)
	}
	return errorBody{Error: pe.Code, Description: pe.Msg, Reasons: pe.Reasons}
}

// writeTokenError answers a token-endpoint error. RFC 6749 §5.2 and RFC
// 8628 §3.5 put every client error there, pending and denied included, on
// 400; throttling and server faults keep their own status.
func writeTokenError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	switch policy.KindOf(err) {
	case policy.KindInvalid, policy.KindUnauthenticated, policy.KindForbidden, policy.KindNotFound, policy.KindPending, policy.KindGone:
		var pe *policy.Error
		errors.As(err, &pe)
		if pe.RetryAfter > 0 {
			w.Header().Set("Retry-After", retryAfter(pe.RetryAfter))
		}
		noteError(r, pe.Code)
		writeJSON(w, http.StatusBadRequest, errorBody{Error: pe.Code, Description: pe.Msg, Reasons: pe.Reasons})
		return
	}
	writeError(w, r, log, err)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	writeJSONRaw(w, code, v)
}

// writeJSONRaw writes JSON under whatever Content-Type the handler set.
func writeJSONRaw(w http.ResponseWriter, code int, v any) {
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// Errors of the HTTP layer itself: malformed requests that never reach the
// vault.
var (
	errNotFound       = policy.E(policy.KindNotFound, "not_found", "no such endpoint")
	errMethod         = policy.E(policy.KindInvalid, "method_not_allowed", "this endpoint does not accept that method")
	errTooLarge       = policy.E(policy.KindTooLarge, "request_too_large", "the request body is larger than the limit")
	errBadJSON        = policy.E(policy.KindInvalid, "invalid_json", "request body is not valid JSON")
	errUnknownMember  = policy.E(policy.KindInvalid, "invalid_request", "the request body has a member this endpoint does not take")
	errBadIfMatch     = policy.E(policy.KindInvalid, "invalid_request", `If-Match must be a record version in quotes, e.g. "3"`)
	errBadLimitParam  = policy.E(policy.KindInvalid, "invalid_limit", "limit must be a whole number from 1 to 500")
	errBadPassphrase  = policy.E(policy.KindInvalid, "invalid_request", "send {\"passphrase\": \"...\"} with a passphrase of at most 1024 bytes")
	errBadForm        = policy.E(policy.KindInvalid, "invalid_request", "send the body as application/x-www-form-urlencoded")
	errGrantType      = policy.E(policy.KindInvalid, "unsupported_grant_type", "grant_type must be urn:ietf:params:oauth:grant-type:device_code")
	errNoDeviceCode   = policy.E(policy.KindInvalid, "invalid_request", "device_code (the request_id) is required")
	errTwoProofs      = policy.E(policy.KindInvalid, "invalid_dpop_proof", "send exactly one DPoP header")
	errNeedDPoP       = policy.E(policy.KindUnauthenticated, "invalid_token", "send the grant as Authorization: DPoP <grant>, with a DPoP proof")
	errNoToken        = policy.E(policy.KindInvalid, "invalid_request", "token is required")
	errCrossSiteLogin = policy.E(policy.KindForbidden, "cross_site", "a login must come from the vault's own pages or from a client that is not a browser")
	errBadSeq         = policy.E(policy.KindInvalid, "invalid_request", "seq must be the number of an audit entry")
	errBadFrom        = policy.E(policy.KindInvalid, "invalid_request", "from must be a tree size: a whole number from 1 to the log's size")
)

// retryAfter is a Retry-After value: whole seconds, rounded up.
func retryAfter(d time.Duration) string { return strconv.Itoa(int(math.Ceil(d.Seconds()))) }
