package vault

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mattn/go-sqlite3"

	"github.com/pdvault/pdvault/policy"
)

// The exchange with organizations: an organization signs a request, the
// owner decides, the organization collects a grant bound to its key.

// Request lifetimes (RFC 8628 §3.2 expires_in and interval).
const (
	RequestLifetime = 72 * time.Hour
	PollInterval    = 5 * time.Second
	slowDownStep    = 5 * time.Second
)

// Request statuses.
const (
	StatusPending   = "pending"
	StatusApproved  = "approved"
	StatusDenied    = "denied"
	StatusCollected = "collected"
	StatusExpired   = "expired"
)

var (
	ErrRequestNotFound   = policy.E(policy.KindNotFound, "not_found", "no such request")
	ErrRequestDecided    = policy.E(policy.KindConflict, "already_decided", "the request has already been decided")
	ErrRequestReplayed   = policy.E(policy.KindInvalid, "invalid_request_object", "a request with this jti was already received from this organization")
	ErrDurationTooLong   = policy.E(policy.KindInvalid, "invalid_duration", "the approved duration must be more than 0 and at most what was asked")
	ErrGrantNotFound     = policy.E(policy.KindNotFound, "not_found", "no such grant")
	ErrAlreadyRevoked    = policy.E(policy.KindConflict, "already_revoked", "the grant is already revoked")
	ErrUnknownDeviceCode = policy.E(policy.KindInvalid, "invalid_grant", "unknown or already used request id")
	ErrPending           = policy.E(policy.KindPending, "authorization_pending", "the owner has not decided yet")
	ErrSlowDown          = policy.E(policy.KindPending, "slow_down", "polling too fast; wait longer between polls")
	ErrAccessDenied      = policy.E(policy.KindForbidden, "access_denied", "the owner denied the request")
	ErrExpiredToken      = policy.E(policy.KindGone, "expired_token", "the request expired before the owner decided")
)

// RequestTicket is what an organization gets back for a request: the RFC
// 8628 device-authorization response, with the request id as device code.
type RequestTicket struct {
	// DeviceCode is what the organization polls the token endpoint with
	// (RFC 8628 §3.2); RequestID is the same value under pdvault's
	// original name.
	DeviceCode string `json:"device_code"`
	RequestID  string `json:"request_id"`
	// UserCode is a short code the owner sees on the request, so that the
	// organization can say "approve WDJB-MJHT" (RFC 8628 §6.1 alphabet).
	UserCode string `json:"user_code"`
	// VerificationURI is where the owner decides; it needs her login.
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	Interval                int64  `json:"interval"`
	ExpiresIn               int64  `json:"expires_in"`
	// AgreementRecord is the vault's countersignature of the IEEE 7012
	// exchange (typ myterms-agreement+jwt), when the owner proffers
	// agreements or the request answers them.
	AgreementRecord string `json:"myterms_agreement_record,omitempty"`
}

// Request is an access request as the owner sees it.
type Request struct {
	ID              string                       `json:"id"`
	UserCode        string                       `json:"user_code"`           // as the organization was told (RFC 8628)
	Agreement       *Agreement                   `json:"agreement,omitempty"` // the IEEE 7012 exchange, if any (GetRequest)
	Status          string                       `json:"status"`
	ClientID        string                       `json:"client_id"`
	ClientName      string                       `json:"client_name"`
	ClientURI       string                       `json:"client_uri"`
	CallbackURI     string                       `json:"callback_uri,omitempty"`
	Purpose         string                       `json:"purpose"`
	PurposeText     string                       `json:"purpose_text,omitempty"`
	Details         []policy.AuthorizationDetail `json:"authorization_details"`
	Duration        int64                        `json:"duration"`
	Retention       *int64                       `json:"retention,omitempty"`
	TermsHash       string                       `json:"terms_hash"`
	Created         time.Time                    `json:"created"`
	Expires         time.Time                    `json:"expires"`
	Decided         *time.Time                   `json:"decided,omitempty"`
	GrantedDetails  []policy.AuthorizationDetail `json:"granted_authorization_details,omitempty"`
	GrantedDuration int64                        `json:"granted_duration,omitempty"`
	DenyReason      string                       `json:"deny_reason,omitempty"`
	GrantID         string                       `json:"grant_id,omitempty"`
	Signed          string                       `json:"signed_request,omitempty"` // the organization's signed acceptance (GET of one request)
	RelationshipID  string                       `json:"relationship_id"`
	// ClaimsPreview says what each derived claim asked for would reveal
	// now (owner views of pending requests only).
	ClaimsPreview []ClaimAnswer `json:"claims_preview,omitempty"`
}

// SubmitRequest receives an organization's signed access request. It
// checks the signature, shape and freshness, then the owner's terms; a
// request that breaks the terms is refused with every reason and logged.
// clientID is the client_id sent beside the request object (a form
// parameter), or empty: if sent, it must be the signing key's thumbprint.
func (v *Vault) SubmitRequest(ctx context.Context, signed, clientID string) (RequestTicket, error) {
	now := v.opts.Now()
	req, err := policy.ParseRequest(signed, v.Issuer(), now)
	if err != nil {
		return RequestTicket{}, err
	}
	if clientID != "" && clientID != req.ClientID {
		return RequestTicket{}, policy.ErrInvalidRequestObject.WithReasons([]string{
			"client_id: the parameter must be the request object's client_id, the thumbprint of its signing key (RFC 9101 §5)"})
	}
	terms := v.CurrentTerms()
	reasons := policy.CheckTerms(terms.Terms, terms.Hash, req.RequestClaims)
	base := AuditEntry{Actor: req.ClientID, ClientID: req.ClientID, ClientName: req.ClientName, Scope: policy.Scope(req.AuthorizationDetails)}
	if len(reasons) > 0 {
		// A stranger's refusal is counted, not logged: anyone can send
		// requests that break the terms, and must not fill the owner's
		// log. An organization the owner deals with gets an entry, its
		// reasons cut to a bounded length.
		if _, err := v.relOf(ctx, req.ClientID); errors.Is(err, ErrNoRelationship) {
			v.strangerRefusals.Add(1)
			return RequestTicket{}, policy.ErrTermsViolation.WithReasons(reasons)
		}
		e := base
		e.Event, e.Outcome, e.Reason = EvRequestRefused, OutcomeDenied, clip(strings.Join(reasons, "; "), maxAuditReason)
		e.Scope = clip(e.Scope, maxAuditReason)
		if err := v.db.tx(ctx, func(tx *sql.Tx) error { return v.appendAudit(ctx, tx, e) }); err != nil {
			return RequestTicket{}, err
		}
		return RequestTicket{}, policy.ErrTermsViolation.WithReasons(reasons)
	}
	if req.CallbackURI != "" {
		if err := policy.CheckOutboundURL(req.CallbackURI, v.opts.AllowLoopbackHTTP); err != nil {
			var pe *policy.Error
			errors.As(err, &pe)
			return RequestTicket{}, policy.ErrInvalidRequestObject.WithReasons([]string{"callback_uri: " + pe.Msg}).WithCause(err)
		}
	}
	jwk, err := req.Key.MarshalJSON()
	if err != nil {
		return RequestTicket{}, policy.Internal("encode jwk", err)
	}
	details, _ := json.Marshal(req.AuthorizationDetails)
	id := newID()
	t := RequestTicket{DeviceCode: id, RequestID: id, UserCode: policy.UserCode(id),
		VerificationURI: v.Issuer() + "/ui/requests", VerificationURIComplete: v.Issuer() + "/ui/requests/" + id,
		Interval: int64(PollInterval / time.Second), ExpiresIn: int64(RequestLifetime / time.Second)}
	nowU := v.now().Unix()
	err = v.db.tx(ctx, func(tx *sql.Tx) error {
		if err := v.sweepRequests(ctx, tx, nowU); err != nil {
			return err
		}
		if err := v.admitRequest(ctx, tx, req.ClientID, nowU); err != nil {
			return err
		}
		var retention sql.NullInt64
		if req.Retention != nil {
			retention = sql.NullInt64{Int64: *req.Retention, Valid: true}
		}
		err := v.st.insert(ctx, tx, tRequests, id, `INSERT INTO requests (id, client_id, jwk, client_name, client_uri, callback_uri, purpose, purpose_text,
			details, duration, retention, terms_hash, jti, signed, status, created, expires, poll_interval)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id, req.ClientID, string(jwk), req.ClientName, req.ClientURI, req.CallbackURI, req.Purpose, req.PurposeText,
			string(details), req.Duration, retention, req.TermsHash, req.ID, signed, StatusPending, nowU, nowU+t.ExpiresIn, t.Interval)
		if isUniqueViolation(err) {
			return ErrRequestReplayed
		}
		if err != nil {
			return err
		}
		if _, err := v.touchRelationship(ctx, tx, req, jwk, nowU); err != nil {
			return err
		}
		if t.AgreementRecord, err = v.recordAgreement(ctx, tx, id, signed, req, terms.Terms, terms.Hash, nowU); err != nil {
			return err
		}
		e := base
		e.Event, e.Outcome, e.RequestID = EvRequestReceived, OutcomeAllowed, id
		if t.AgreementRecord != "" {
			// The log binds the record: its hash is in the entry, which an
			// inclusion proof can show (pdvault agreements export).
			e.Reason = "myterms agreement record " + agreementHash(t.AgreementRecord)
		}
		return v.appendAudit(ctx, tx, e)
	})
	if err != nil {
		return RequestTicket{}, err
	}
	v.log.Info("access request received", "request", id, "client", req.ClientID)
	v.Notify(ctx, Notification{Event: EventRequest, Title: "pdvault: " + quoteName(req.ClientName) + " asks for your data",
		Body: fmt.Sprintf("%s asks for %s, for %s, for %s. Approve, narrow or deny it.", quoteName(req.ClientName),
			policy.Scope(req.AuthorizationDetails), req.Purpose, time.Duration(req.Duration)*time.Second),
		Link: t.VerificationURIComplete})
	return t, nil
}

// Limits on pending requests (docs/security.md, "Limits against floods").
// Requests from keys of relationships that ever held a grant are not
// counted against strangers: a flood of fresh keys cannot crowd out an
// organization the owner already deals with.
const (
	MaxPendingPerKey   = 5
	MaxPendingStranger = 500 // default of Options.MaxPendingRequests
	maxAuditReason     = 500 // bytes of a refusal's reasons kept in the log
)

var (
	ErrTooManyPending = policy.E(policy.KindThrottled, "too_many_requests", "this key already has the most pending requests it may have; wait for the owner's decision")
	ErrVaultFull      = policy.E(policy.KindThrottled, "too_many_requests", "the vault has too many pending requests from new organizations; try again later")
)

// admitRequest refuses a request over the pending limits (counted in
// dropped, so the owner sees a flood without an entry per request).
func (v *Vault) admitRequest(ctx context.Context, tx *sql.Tx, clientID string, now int64) error {
	var perKey int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM requests WHERE client_id = ? AND status = ? AND expires > ?`,
		clientID, StatusPending, now).Scan(&perKey); err != nil {
		return err
	}
	if perKey >= MaxPendingPerKey {
		v.dropped.Add(1)
		return ErrTooManyPending.WithRetryAfter(time.Hour)
	}
	known := false
	if rel, err := v.relationshipOf(ctx, tx, clientID); err == nil {
		var grants int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM grants WHERE client_id IN (SELECT client_id FROM relationship_keys WHERE relationship_id = ?)`, rel).Scan(&grants); err != nil {
			return err
		}
		known = grants > 0
	} else if !errors.Is(err, ErrNoRelationship) {
		return err
	}
	if known {
		return nil
	}
	var pending int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM requests r WHERE status = ? AND expires > ?
		AND NOT EXISTS (SELECT 1 FROM grants g JOIN relationship_keys k ON k.client_id = g.client_id
			WHERE k.relationship_id = (SELECT relationship_id FROM relationship_keys WHERE client_id = r.client_id))`,
		StatusPending, now).Scan(&pending); err != nil {
		return err
	}
	if pending >= v.opts.MaxPendingRequests {
		v.dropped.Add(1)
		return ErrVaultFull.WithRetryAfter(time.Hour)
	}
	return nil
}

// sweepRequests deletes a bounded batch of requests that expired
// undecided, and the relationships they leave with nothing in them (no
// request, grant or notice): a stranger's request does not stay forever.
// Their request.received entries stay in the audit log.
func (v *Vault) sweepRequests(ctx context.Context, tx *sql.Tx, now int64) error {
	rows, err := tx.QueryContext(ctx, `SELECT id, client_id FROM requests WHERE status IN (?, ?) AND expires <= ? LIMIT 50`,
		StatusPending, StatusExpired, now)
	if err != nil {
		return err
	}
	var ids, clients []string
	for rows.Next() {
		var id, c string
		if err := rows.Scan(&id, &c); err != nil {
			rows.Close()
			return err
		}
		ids, clients = append(ids, id), append(clients, c)
	}
	rows.Close()
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, `DELETE FROM requests WHERE id = ?`, id); err != nil {
			return err
		}
	}
	for _, c := range clients {
		if _, err := tx.ExecContext(ctx, `DELETE FROM relationship_keys WHERE relationship_id = ?1
			AND NOT EXISTS (SELECT 1 FROM requests r JOIN relationship_keys k ON k.client_id = r.client_id WHERE k.relationship_id = ?1)
			AND NOT EXISTS (SELECT 1 FROM grants g JOIN relationship_keys k ON k.client_id = g.client_id WHERE k.relationship_id = ?1)
			AND NOT EXISTS (SELECT 1 FROM notices WHERE relationship_id = ?1)`, c); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM relationships WHERE id = ?1
			AND NOT EXISTS (SELECT 1 FROM relationship_keys WHERE relationship_id = ?1)`, c); err != nil {
			return err
		}
	}
	if len(ids) > 0 {
		v.forgetRelationships()
	}
	return nil
}

// clip cuts s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func isUniqueViolation(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique
}

type requestRow struct {
	Request
	interval, lastPoll int64
}

// requestFrom builds a request from its checked row.
func requestFrom(r row) (requestRow, error) {
	q := requestRow{Request: Request{
		ID: r.str("id"), UserCode: policy.UserCode(r.str("id")), Status: r.str("status"), ClientID: r.str("client_id"), ClientName: r.str("client_name"), ClientURI: r.str("client_uri"),
		CallbackURI: r.str("callback_uri"), Purpose: r.str("purpose"), PurposeText: r.str("purpose_text"), Duration: r.i64("duration"),
		TermsHash: r.str("terms_hash"), Signed: r.str("signed"),
		Created: time.Unix(r.i64("created"), 0).UTC(), Expires: time.Unix(r.i64("expires"), 0).UTC(),
		GrantedDuration: r.i64("granted_duration"), DenyReason: r.str("deny_reason"), GrantID: r.str("grant_id"),
	}, interval: r.i64("poll_interval"), lastPoll: r.i64("last_poll")}
	// A row that passed its MAC was written by this vault, so its JSON is
	// its own; an error here is still an error, never a guess.
	if err := json.Unmarshal(r.bytes("details"), &q.Details); err != nil {
		return q, ErrTampered.WithCause(err)
	}
	if !r.null("retention") {
		n := r.i64("retention")
		q.Retention = &n
	}
	if !r.null("decided") {
		d := time.Unix(r.i64("decided"), 0).UTC()
		q.Decided = &d
	}
	if !r.null("granted_details") {
		if err := json.Unmarshal(r.bytes("granted_details"), &q.GrantedDetails); err != nil {
			return q, ErrTampered.WithCause(err)
		}
	}
	return q, nil
}

// loadRequests reads checked request rows matching where and fills in
// their relationships (from checked key rows).
func (v *Vault) loadRequests(ctx context.Context, q queryer, where string, args ...any) ([]requestRow, error) {
	rs, err := v.st.rows(ctx, q, tRequests, where, args...)
	if err != nil {
		return nil, err
	}
	out := make([]requestRow, 0, len(rs))
	rels := map[string]string{}
	now := v.opts.Now()
	for _, r := range rs {
		req, err := requestFrom(r)
		if err != nil {
			return nil, err
		}
		rel, ok := rels[req.ClientID]
		if !ok {
			rel, err = v.relationshipOf(ctx, q, req.ClientID)
			if err != nil && !errors.Is(err, ErrNoRelationship) {
				return nil, err
			}
			rels[req.ClientID] = rel
		}
		req.RelationshipID = rel
		// A pending request past its window reads as expired.
		if req.Status == StatusPending && !now.Before(req.Expires) {
			req.Status = StatusExpired
		}
		out = append(out, req)
	}
	return out, nil
}

func (v *Vault) loadRequest(ctx context.Context, q queryer, id string) (requestRow, error) {
	if !policy.ValidateRecordID(id) {
		return requestRow{}, ErrRequestNotFound
	}
	rs, err := v.loadRequests(ctx, q, `id = ?`, id)
	if err != nil {
		return requestRow{}, storageError("read request", err)
	}
	if len(rs) == 0 {
		return requestRow{}, ErrRequestNotFound
	}
	return rs[0], nil
}

// GetRequest returns one request; a pending one with a preview of what
// its derived claims would reveal.
func (v *Vault) GetRequest(ctx context.Context, id string) (Request, error) {
	r, err := v.loadRequest(ctx, v.db.r, id)
	if err != nil {
		return Request{}, err
	}
	if r.Status == StatusPending {
		if r.ClaimsPreview, err = v.PreviewClaims(ctx, r.Details); err != nil {
			return Request{}, err
		}
	}
	if r.Agreement, err = v.agreementOfRequest(ctx, v.db.r, id); err != nil {
		return Request{}, err
	}
	return r.Request, nil
}

// RequestPage is a page of requests, newest first.
type RequestPage struct {
	Requests []Request `json:"requests"`
	Next     string    `json:"next_cursor,omitempty"`
	// Dropped counts requests refused since the vault was opened because
	// too many were pending (a flood): the owner hears of them without an
	// entry each.
	Dropped int64 `json:"dropped,omitempty"`
}

// ListRequests returns a page of requests, newest first; status "" means
// all.
func (v *Vault) ListRequests(ctx context.Context, status string, q PageQuery) (RequestPage, error) {
	now := v.opts.Now().Unix()
	var where string
	var args []any
	switch status {
	case "":
		where = "1"
	case StatusPending:
		// +expires: not an index column here, so that the planner walks
		// (status, created) newest first and stops after a page, instead of
		// (status, expires) and a sort of every pending row.
		where, args = "status = ? AND +expires > ?", []any{StatusPending, now}
	case StatusExpired:
		where, args = "status = ? OR (status = ? AND expires <= ?)", []any{StatusExpired, StatusPending, now}
	case StatusApproved, StatusDenied, StatusCollected:
		where, args = "status = ?", []any{status}
	default:
		return RequestPage{}, policy.E(policy.KindInvalid, "invalid_status", "status is one of pending, approved, denied, collected, expired")
	}
	n, err := q.size()
	if err != nil {
		return RequestPage{}, err
	}
	cur, err := decodeKeyCursor(q.Cursor)
	if err != nil {
		return RequestPage{}, err
	}
	// A page ends at n requests or at pageBytes of them, whichever comes
	// first: requests padded to the size limit (a flood) make shorter
	// pages, not slower ones. Rows are read in chunks sized from what the
	// earlier ones weighed.
	p := RequestPage{Requests: []Request{}, Dropped: v.dropped.Load()}
	size, chunk := 0, min(n, 8)
	for {
		tail, targs := pageWhere(where, args, cur, "created", "id", chunk)
		rs, err := v.loadRequests(ctx, v.db.r, tail, targs...)
		if err != nil {
			return RequestPage{}, storageError("list requests", err)
		}
		for _, r := range rs[:min(len(rs), chunk)] {
			size += len(r.Signed)
			// A listing leaves out the signed request (up to 64 KiB
			// each); GET of one request has it.
			r.Signed = ""
			p.Requests = append(p.Requests, r.Request)
			cur = &keyCursor{t: r.Created.Unix(), id: r.ID}
		}
		if len(rs) <= chunk {
			return p, nil // the last page
		}
		if len(p.Requests) >= n || size >= pageBytes {
			p.Next = encodeKeyCursor(cur.t, cur.id)
			return p, nil
		}
		per := max(size/len(p.Requests), 1)
		chunk = max(1, min(n-len(p.Requests), (pageBytes-size)/per))
	}
}

// pageBytes bounds the signed requests one page of a listing reads.
const pageBytes = 256 << 10

func storageError0(op string, err error) error {
	if err == nil {
		return nil
	}
	return storageError(op, err)
}

// Approval is the owner's yes, possibly smaller than what was asked.
type Approval struct {
	// Details, if set, replace the requested scope; they must lie within it.
	Details []policy.AuthorizationDetail `json:"authorization_details,omitempty"`
	// Duration, if set, is seconds: more than 0 and at most what was asked.
	Duration int64 `json:"duration,omitempty"`
}

// Approve says yes to a pending request, as asked or narrower.
func (v *Vault) Approve(ctx context.Context, id string, a Approval) (Request, error) {
	var out Request
	err := v.db.tx(ctx, func(tx *sql.Tx) error {
		r, err := v.loadRequest(ctx, tx, id)
		if err != nil {
			return err
		}
		if r.Status != StatusPending {
			return ErrRequestDecided.WithDetail("it is " + r.Status)
		}
		details := r.Details
		if a.Details != nil {
			for i := range a.Details {
				if a.Details[i].Type == "" {
					a.Details[i].Type = policy.DetailType
				}
				// The owner names records by their own ids; the grant holds
				// the organization's (pairwise) ids, which its token shows.
				if len(a.Details[i].IDs) > 0 && r.RelationshipID == "" {
					return policy.ErrNotNarrower.WithReasons([]string{"records can be named only once the organization has a relationship with the vault"})
				}
				for j, id := range a.Details[i].IDs {
					if org := v.orgRecordID(r.RelationshipID, id); org != "" && policy.ValidateRecordID(id) {
						a.Details[i].IDs[j] = org
					}
				}
			}
			if err := policy.Narrow(r.Details, a.Details); err != nil {
				return err
			}
			details = a.Details
		}
		dur := r.Duration
		if a.Duration != 0 {
			if a.Duration < 0 || a.Duration > r.Duration {
				return ErrDurationTooLong
			}
			dur = a.Duration
		}
		dj, _ := json.Marshal(details)
		now := v.now().Unix()
		if err := v.st.update(ctx, tx, tRequests, id, `status = ?, decided = ?, granted_details = ?, granted_duration = ?`,
			StatusApproved, now, string(dj), dur); err != nil {
			return err
		}
		if err := v.appendAudit(ctx, tx, AuditEntry{Event: EvRequestApproved, Actor: "owner", Outcome: OutcomeAllowed,
			ClientID: r.ClientID, ClientName: r.ClientName, RequestID: id, Scope: policy.Scope(details)}); err != nil {
			return err
		}
		r.Status, r.GrantedDetails, r.GrantedDuration = StatusApproved, details, dur
		d := time.Unix(now, 0).UTC()
		r.Decided = &d
		out = r.Request
		return nil
	})
	return out, err
}

// Deny says no to a pending request.
func (v *Vault) Deny(ctx context.Context, id, reason string) (Request, error) {
	if len(reason) > 500 {
		return Request{}, policy.E(policy.KindInvalid, "invalid_request", "the reason is at most 500 characters")
	}
	var out Request
	err := v.db.tx(ctx, func(tx *sql.Tx) error {
		r, err := v.loadRequest(ctx, tx, id)
		if err != nil {
			return err
		}
		if r.Status != StatusPending {
			return ErrRequestDecided.WithDetail("it is " + r.Status)
		}
		now := v.now().Unix()
		if err := v.st.update(ctx, tx, tRequests, id, `status = ?, decided = ?, deny_reason = ?`, StatusDenied, now, reason); err != nil {
			return err
		}
		if err := v.appendAudit(ctx, tx, AuditEntry{Event: EvRequestDenied, Actor: "owner", Outcome: OutcomeDenied,
			ClientID: r.ClientID, ClientName: r.ClientName, RequestID: id, Reason: reason}); err != nil {
			return err
		}
		r.Status, r.DenyReason = StatusDenied, reason
		d := time.Unix(now, 0).UTC()
		r.Decided = &d
		out = r.Request
		return nil
	})
	return out, err
}

// TokenResponse is a successful token response (RFC 6749 §5.1, RFC 9449).
type TokenResponse struct {
	AccessToken          string                       `json:"access_token"`
	TokenType            string                       `json:"token_type"`
	ExpiresIn            int64                        `json:"expires_in"`
	AuthorizationDetails []policy.AuthorizationDetail `json:"authorization_details"`
	GrantID              string                       `json:"grant_id"`
	// ConsentReceipt is the grant's consent receipt (Kantara v1.1, signed
	// by the vault, typ consent-receipt+jwt): the organization's copy.
	ConsentReceipt string `json:"consent_receipt,omitempty"`
}

// HTTPContext is what the vault needs to know of an HTTP request to check
// a DPoP proof: the method and the absolute URL the client addressed.
type HTTPContext struct {
	Method string
	URL    string
}

// CollectGrant is the token endpoint: an organization polls with the
// request id and a DPoP proof from the key that signed the request.
func (v *Vault) CollectGrant(ctx context.Context, requestID, proof string, hc HTTPContext) (TokenResponse, error) {
	p, err := v.checkProof(proof, hc, "")
	if err != nil {
		return TokenResponse{}, err
	}
	var out TokenResponse
	var outErr error
	err = v.db.tx(ctx, func(tx *sql.Tx) error {
		r, err := v.loadRequest(ctx, tx, requestID)
		if errors.Is(err, ErrRequestNotFound) {
			// Perhaps an offer the owner has not accepted yet.
			outErr = v.offerPollStatus(ctx, tx, requestID, p.JKT, func() error { return v.consumeProof(p) })
			return nil
		}
		// Another key polling for this request learns nothing about it.
		if err == nil && r.ClientID != p.JKT {
			outErr = ErrUnknownDeviceCode
			return nil
		}
		if err != nil {
			return err
		}
		if err := v.consumeProof(p); err != nil {
			outErr = err
			return nil
		}
		now := v.opts.Now().Unix()
		switch r.Status {
		case StatusPending:
			interval := r.interval
			tooSoon := now-r.lastPoll < interval
			if tooSoon {
				interval += int64(slowDownStep / time.Second)
				outErr = ErrSlowDown.WithRetryAfter(time.Duration(interval) * time.Second)
			} else {
				outErr = ErrPending
			}
			return v.st.update(ctx, tx, tRequests, r.ID, `last_poll = ?, poll_interval = ?`, now, interval)
		case StatusExpired:
			outErr = ErrExpiredToken
			return v.st.update(ctx, tx, tRequests, r.ID, `status = ?`, StatusExpired)
		case StatusDenied:
			outErr = ErrAccessDenied
			return nil
		case StatusCollected:
			outErr = ErrUnknownDeviceCode
			return nil
		}
		// Approved: mint the grant now, bound to the organization's key.
		tok, g, err := v.mintGrant(ctx, tx, r)
		if err != nil {
			return err
		}
		out = TokenResponse{AccessToken: tok, TokenType: "DPoP", ExpiresIn: max(0, g.Expiry-now), AuthorizationDetails: g.AuthorizationDetails, GrantID: g.ID}
		row, err := v.loadGrant(ctx, tx, g.ID)
		if err != nil {
			return err
		}
		rec, err := v.consentRecord(ctx, tx, row)
		if err != nil {
			return err
		}
		cr, err := v.consentReceipt(rec)
		if err != nil {
			return err
		}
		out.ConsentReceipt = cr.Signed
		return nil
	})
	if err != nil {
		return TokenResponse{}, err
	}
	return out, outErr
}

func (v *Vault) mintGrant(ctx context.Context, tx *sql.Tx, r requestRow) (string, policy.GrantClaims, error) {
	now := v.now()
	decided := now
	if r.Decided != nil {
		decided = *r.Decided
	}
	g := policy.GrantClaims{
		Issuer: v.Issuer(), Subject: v.pairwiseSubject(r.RelationshipID), Audience: v.Issuer(), ClientID: r.ClientID,
		ID: newID(), IssuedAt: now.Unix(), NotBefore: now.Unix(),
		// The time the owner granted runs from the decision, not from
		// whenever the organization collects.
		Expiry:               decided.Add(time.Duration(r.GrantedDuration) * time.Second).Unix(),
		AuthorizationDetails: r.GrantedDetails, Purpose: r.Purpose, TermsHash: r.TermsHash,
		Confirmation: policy.Confirmation{JKT: r.ClientID},
	}
	if a, err := v.agreementOfRequest(ctx, tx, r.ID); err != nil {
		return "", g, err
	} else if a != nil {
		g.Agreement = a.Hash
	}
	tok, kid, err := v.signGrant(g)
	if err != nil {
		return "", g, policy.Internal("sign grant", err)
	}
	// How long the organization may keep the data after the end: what it
	// promised, or else the most the terms it accepted allow.
	var retention int64
	if r.Retention != nil {
		retention = *r.Retention
	} else {
		doc, err := v.termsByHash(ctx, tx, r.TermsHash)
		if err != nil {
			return "", g, err
		}
		retention = int64(time.Duration(doc.Terms.MaxRetention) / time.Second)
	}
	// One request, one grant: a request row put back as it was before
	// collection (a rollback its MAC cannot see) mints nothing more.
	var prior int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM grants WHERE request_id = ?`, r.ID).Scan(&prior); err != nil {
		return "", g, err
	}
	if prior > 0 {
		return "", g, ErrTampered.WithCause(errors.New("request " + r.ID + " is approved but already has a grant"))
	}
	if err := v.recordIssuer(ctx, tx, g.Issuer, g.IssuedAt); err != nil {
		return "", g, err
	}
	dj, _ := json.Marshal(g.AuthorizationDetails)
	if err := v.st.insert(ctx, tx, tGrants, g.ID, `INSERT INTO grants (id, request_id, client_id, client_name, subject, details, purpose, terms_hash, kid, issued, expires, retention)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		g.ID, r.ID, r.ClientID, r.ClientName, g.Subject, string(dj), g.Purpose, g.TermsHash, kid, g.IssuedAt, g.Expiry, retention); err != nil {
		return "", g, err
	}
	if err := v.st.update(ctx, tx, tRequests, r.ID, `status = ?, grant_id = ?`, StatusCollected, g.ID); err != nil {
		return "", g, err
	}
	if err := v.appendAudit(ctx, tx, AuditEntry{Event: EvGrantIssued, Actor: "vault", Outcome: OutcomeAllowed, ClientID: r.ClientID,
		ClientName: r.ClientName, RequestID: r.ID, GrantID: g.ID, Scope: policy.Scope(g.AuthorizationDetails)}); err != nil {
		return "", g, err
	}
	return tok, g, nil
}

// Grant is a grant as the owner sees it.
type Grant struct {
	ID         string                       `json:"id"`
	RequestID  string                       `json:"request_id"`
	ClientID   string                       `json:"client_id"`
	ClientName string                       `json:"client_name"`
	Subject    string                       `json:"sub"`
	Details    []policy.AuthorizationDetail `json:"authorization_details"`
	Purpose    string                       `json:"purpose"`
	TermsHash  string                       `json:"terms_hash"`
	Issued     time.Time                    `json:"issued"`
	Expires    time.Time                    `json:"expires"`
	Revoked    *time.Time                   `json:"revoked,omitempty"`
	Status     string                       `json:"status"` // active, expired, revoked
}

// grantRow is a grant with the columns only the vault needs.
type grantRow struct {
	Grant
	kid       string
	retention int64
	endedBy   string
}

// grantFrom builds a grant from its checked row.
func (v *Vault) grantFrom(r row) (grantRow, error) {
	g := grantRow{Grant: Grant{ID: r.str("id"), RequestID: r.str("request_id"), ClientID: r.str("client_id"), ClientName: r.str("client_name"),
		Subject: r.str("subject"), Purpose: r.str("purpose"), TermsHash: r.str("terms_hash"),
		Issued: time.Unix(r.i64("issued"), 0).UTC(), Expires: time.Unix(r.i64("expires"), 0).UTC()},
		kid: r.str("kid"), retention: r.i64("retention"), endedBy: r.str("ended_by")}
	if err := json.Unmarshal(r.bytes("details"), &g.Details); err != nil {
		return g, ErrTampered.WithCause(err)
	}
	switch {
	case !r.null("revoked"):
		t := time.Unix(r.i64("revoked"), 0).UTC()
		g.Revoked, g.Status = &t, "revoked"
	case !v.opts.Now().Before(g.Expires):
		g.Status = "expired"
	default:
		g.Status = "active"
	}
	return g, nil
}

// loadGrants reads the checked grants matching where.
func (v *Vault) loadGrants(ctx context.Context, q queryer, where string, args ...any) ([]grantRow, error) {
	rs, err := v.st.rows(ctx, q, tGrants, where, args...)
	if err != nil {
		return nil, err
	}
	out := make([]grantRow, 0, len(rs))
	for _, r := range rs {
		g, err := v.grantFrom(r)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}

// loadGrant reads one checked grant; ErrGrantNotFound if there is none.
func (v *Vault) loadGrant(ctx context.Context, q queryer, id string) (grantRow, error) {
	if !policy.ValidateRecordID(id) {
		return grantRow{}, ErrGrantNotFound
	}
	gs, err := v.loadGrants(ctx, q, `id = ?`, id)
	if err != nil {
		return grantRow{}, err
	}
	if len(gs) == 0 {
		return grantRow{}, ErrGrantNotFound
	}
	return gs[0], nil
}

// GrantPage is a page of grants, newest first.
type GrantPage struct {
	Grants []Grant `json:"grants"`
	Next   string  `json:"next_cursor,omitempty"`
}

// ListGrants returns a page of grants, newest first.
func (v *Vault) ListGrants(ctx context.Context, q PageQuery) (GrantPage, error) {
	tail, args, n, err := q.plan("1", nil, "issued", "id")
	if err != nil {
		return GrantPage{}, err
	}
	gs, err := v.loadGrants(ctx, v.db.r, tail, args...)
	if err != nil {
		return GrantPage{}, storageError("list grants", err)
	}
	p := GrantPage{Grants: []Grant{}}
	for i, g := range gs {
		if i == n {
			p.Next = encodeKeyCursor(gs[n-1].Issued.Unix(), gs[n-1].ID)
			break
		}
		p.Grants = append(p.Grants, g.Grant)
	}
	return p, nil
}

// GetGrant returns one grant.
func (v *Vault) GetGrant(ctx context.Context, id string) (Grant, error) {
	g, err := v.loadGrant(ctx, v.db.r, id)
	if err != nil {
		return Grant{}, storageError("get grant", err)
	}
	return g.Grant, nil
}

// Revoke ends a grant now. Every read checks revocation inside the same
// serialized transaction that logs it, so no read that commits after the
// revocation can succeed.
func (v *Vault) Revoke(ctx context.Context, id string) (Grant, error) {
	var g grantRow
	err := v.db.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if g, err = v.loadGrant(ctx, tx, id); err != nil {
			return err
		}
		if g.Revoked != nil {
			return ErrAlreadyRevoked
		}
		now := v.now()
		if err := v.st.update(ctx, tx, tGrants, id, `revoked = ?, ended_by = 'owner'`, now.Unix()); err != nil {
			return err
		}
		g.Revoked, g.Status = &now, "revoked"
		if err := v.appendAudit(ctx, tx, AuditEntry{Event: EvGrantRevoked, Actor: "owner", ClientID: g.ClientID, ClientName: g.ClientName,
			RequestID: g.RequestID, GrantID: id, Scope: policy.Scope(g.Details)}); err != nil {
			return err
		}
		// Tell the organization, if it gave a callback: a signed notice
		// with the deadline for its deletion receipt.
		req, err := v.loadRequest(ctx, tx, g.RequestID)
		if err != nil {
			return err
		}
		if req.CallbackURI == "" {
			return nil
		}
		rel, err := v.relationshipOf(ctx, tx, g.ClientID)
		if err != nil {
			return err
		}
		_, err = v.queueNotice(ctx, tx, rel, g.ClientID, req.CallbackURI, policy.NoticeClaims{Event: policy.NoticeGrantRevoked, GrantID: id,
			DeletionDeadline: now.Add(time.Duration(g.retention) * time.Second).Unix()})
		return err
	})
	if err != nil {
		return Grant{}, err
	}
	v.forgetGrant(id)
	v.log.Info("grant revoked", "grant", id)
	return g.Grant, nil
}
