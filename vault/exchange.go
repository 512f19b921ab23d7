package vault

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"time"

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
	RequestID string `json:"request_id"`
	Interval  int64  `json:"interval"`
	ExpiresIn int64  `json:"expires_in"`
}

// Request is an access request as the owner sees it.
type Request struct {
	ID              string                       `json:"id"`
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
	Signed          string                       `json:"signed_request"` // the organization's signed acceptance
	RelationshipID  string                       `json:"relationship_id"`
	// ClaimsPreview says what each derived claim asked for would reveal
	// now (owner views of pending requests only).
	ClaimsPreview []ClaimAnswer `json:"claims_preview,omitempty"`
}

// SubmitRequest receives an organization's signed access request. It
// checks the signature, shape and freshness, then the owner's terms; a
// request that breaks the terms is refused with every reason and logged.
func (v *Vault) SubmitRequest(ctx context.Context, signed string) (RequestTicket, error) {
	now := v.opts.Now()
	req, err := policy.ParseRequest(signed, v.Issuer(), now)
	if err != nil {
		return RequestTicket{}, err
	}
	terms := v.CurrentTerms()
	reasons := policy.CheckTerms(terms.Terms, terms.Hash, req.RequestClaims)
	base := AuditEntry{Actor: req.ClientID, ClientID: req.ClientID, ClientName: req.ClientName, Scope: policy.Scope(req.AuthorizationDetails)}
	if len(reasons) > 0 {
		e := base
		e.Event, e.Outcome, e.Reason = EvRequestRefused, OutcomeDenied, strings.Join(reasons, "; ")
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
	t := RequestTicket{RequestID: id, Interval: int64(PollInterval / time.Second), ExpiresIn: int64(RequestLifetime / time.Second)}
	nowU := v.now().Unix()
	err = v.db.tx(ctx, func(tx *sql.Tx) error {
		var retention sql.NullInt64
		if req.Retention != nil {
			retention = sql.NullInt64{Int64: *req.Retention, Valid: true}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO requests (id, client_id, jwk, client_name, client_uri, callback_uri, purpose, purpose_text,
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
		e := base
		e.Event, e.Outcome, e.RequestID = EvRequestReceived, OutcomeAllowed, id
		return v.appendAudit(ctx, tx, e)
	})
	if err != nil {
		return RequestTicket{}, err
	}
	v.log.Info("access request received", "request", id, "client", req.ClientID)
	return t, nil
}

func isUniqueViolation(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique
}

const requestColumns = `id, status, client_id, client_name, client_uri, callback_uri, purpose, purpose_text, details, duration,
	retention, terms_hash, created, expires, decided, granted_details, granted_duration, deny_reason, grant_id, signed, poll_interval, last_poll,
	coalesce((SELECT relationship_id FROM relationship_keys k WHERE k.client_id = requests.client_id), '')`

type requestRow struct {
	Request
	interval, lastPoll int64
}

func scanRequest(row rowScanner) (requestRow, error) {
	var (
		r                                   requestRow
		details                             string
		retention, decided, grantedDur      sql.NullInt64
		grantedDetails, denyReason, grantID sql.NullString
		created, expires                    int64
	)
	err := row.Scan(&r.ID, &r.Status, &r.ClientID, &r.ClientName, &r.ClientURI, &r.CallbackURI, &r.Purpose, &r.PurposeText, &details, &r.Duration,
		&retention, &r.TermsHash, &created, &expires, &decided, &grantedDetails, &grantedDur, &denyReason, &grantID, &r.Signed, &r.interval, &r.lastPoll, &r.RelationshipID)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(details), &r.Details); err != nil {
		return r, err
	}
	if retention.Valid {
		r.Retention = &retention.Int64
	}
	r.Created, r.Expires = time.Unix(created, 0).UTC(), time.Unix(expires, 0).UTC()
	if decided.Valid {
		d := time.Unix(decided.Int64, 0).UTC()
		r.Decided = &d
	}
	if grantedDetails.Valid {
		if err := json.Unmarshal([]byte(grantedDetails.String), &r.GrantedDetails); err != nil {
			return r, err
		}
	}
	r.GrantedDuration, r.DenyReason, r.GrantID = grantedDur.Int64, denyReason.String, grantID.String
	return r, nil
}

func (v *Vault) loadRequest(ctx context.Context, q querier, id string) (requestRow, error) {
	if !policy.ValidateRecordID(id) {
		return requestRow{}, ErrRequestNotFound
	}
	r, err := scanRequest(q.QueryRowContext(ctx, `SELECT `+requestColumns+` FROM requests WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrRequestNotFound
	}
	if err != nil {
		return r, storageError("read request", err)
	}
	// A pending request past its window reads as expired.
	if r.Status == StatusPending && !v.opts.Now().Before(r.Expires) {
		r.Status = StatusExpired
	}
	return r, nil
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
	return r.Request, nil
}

// ListRequests returns requests newest first; status "" means all.
func (v *Vault) ListRequests(ctx context.Context, status string) ([]Request, error) {
	switch status {
	case "", StatusPending, StatusApproved, StatusDenied, StatusCollected, StatusExpired:
	default:
		return nil, policy.E(policy.KindInvalid, "invalid_status", "status is one of pending, approved, denied, collected, expired")
	}
	rows, err := v.db.r.QueryContext(ctx, `SELECT `+requestColumns+` FROM requests ORDER BY created DESC, id LIMIT 1000`)
	if err != nil {
		return nil, storageError("list requests", err)
	}
	defer rows.Close()
	out := []Request{}
	now := v.opts.Now()
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, storageError("list requests", err)
		}
		if r.Status == StatusPending && !now.Before(r.Expires) {
			r.Status = StatusExpired
		}
		if status == "" || r.Status == status {
			out = append(out, r.Request)
		}
	}
	return out, storageError0("list requests", rows.Err())
}

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
		if _, err := tx.ExecContext(ctx, `UPDATE requests SET status = ?, decided = ?, granted_details = ?, granted_duration = ? WHERE id = ?`,
			StatusApproved, now, string(dj), dur, id); err != nil {
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
		if _, err := tx.ExecContext(ctx, `UPDATE requests SET status = ?, decided = ?, deny_reason = ? WHERE id = ?`, StatusDenied, now, reason, id); err != nil {
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
			outErr = v.offerPollStatus(ctx, tx, requestID, p.JKT)
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
			_, err := tx.ExecContext(ctx, `UPDATE requests SET last_poll = ?, poll_interval = ? WHERE id = ?`, now, interval, r.ID)
			return err
		case StatusExpired:
			_, err := tx.ExecContext(ctx, `UPDATE requests SET status = ? WHERE id = ?`, StatusExpired, r.ID)
			outErr = ErrExpiredToken
			return err
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
	s := v.signer()
	g := policy.GrantClaims{
		Issuer: v.Issuer(), Subject: v.pairwiseSubject(r.RelationshipID), Audience: v.Issuer(), ClientID: r.ClientID,
		ID: newID(), IssuedAt: now.Unix(), NotBefore: now.Unix(),
		// The time the owner granted runs from the decision, not from
		// whenever the organization collects.
		Expiry:               decided.Add(time.Duration(r.GrantedDuration) * time.Second).Unix(),
		AuthorizationDetails: r.GrantedDetails, Purpose: r.Purpose, TermsHash: r.TermsHash,
		Confirmation: policy.Confirmation{JKT: r.ClientID},
	}
	tok, err := policy.SignGrant(s, g)
	if err != nil {
		return "", g, policy.Internal("sign grant", err)
	}
	// How long the organization may keep the data after the end: what it
	// promised, or else the most the terms it accepted allow.
	var retention int64
	if r.Retention != nil {
		retention = *r.Retention
	} else {
		var body string
		if err := tx.QueryRowContext(ctx, `SELECT body FROM terms WHERE hash = ?`, r.TermsHash).Scan(&body); err != nil {
			return "", g, err
		}
		var t policy.Terms
		if err := json.Unmarshal([]byte(body), &t); err != nil {
			return "", g, ErrTampered.WithDetail("terms " + r.TermsHash)
		}
		retention = int64(time.Duration(t.MaxRetention) / time.Second)
	}
	dj, _ := json.Marshal(g.AuthorizationDetails)
	if _, err := tx.ExecContext(ctx, `INSERT INTO grants (id, request_id, client_id, client_name, subject, details, purpose, terms_hash, kid, issued, expires, retention)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		g.ID, r.ID, r.ClientID, r.ClientName, g.Subject, string(dj), g.Purpose, g.TermsHash, s.kid, g.IssuedAt, g.Expiry, retention); err != nil {
		return "", g, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE requests SET status = ?, grant_id = ? WHERE id = ?`, StatusCollected, g.ID, r.ID); err != nil {
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

const grantColumns = `id, request_id, client_id, client_name, subject, details, purpose, terms_hash, issued, expires, revoked`

func (v *Vault) scanGrant(row rowScanner) (Grant, error) {
	var g Grant
	err := v.scanGrantInto(row, &g)
	return g, err
}

// scanGrantInto reads grantColumns and then any extra columns into extra.
func (v *Vault) scanGrantInto(row rowScanner, g *Grant, extra ...any) error {
	var (
		details         string
		issued, expires int64
		revoked         sql.NullInt64
	)
	dest := append([]any{&g.ID, &g.RequestID, &g.ClientID, &g.ClientName, &g.Subject, &details, &g.Purpose, &g.TermsHash, &issued, &expires, &revoked}, extra...)
	if err := row.Scan(dest...); err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(details), &g.Details); err != nil {
		return err
	}
	g.Issued, g.Expires = time.Unix(issued, 0).UTC(), time.Unix(expires, 0).UTC()
	switch {
	case revoked.Valid:
		t := time.Unix(revoked.Int64, 0).UTC()
		g.Revoked, g.Status = &t, "revoked"
	case !v.opts.Now().Before(g.Expires):
		g.Status = "expired"
	default:
		g.Status = "active"
	}
	return nil
}

// ListGrants returns every grant, newest first.
func (v *Vault) ListGrants(ctx context.Context) ([]Grant, error) {
	rows, err := v.db.r.QueryContext(ctx, `SELECT `+grantColumns+` FROM grants ORDER BY issued DESC, id LIMIT 1000`)
	if err != nil {
		return nil, storageError("list grants", err)
	}
	defer rows.Close()
	out := []Grant{}
	for rows.Next() {
		g, err := v.scanGrant(rows)
		if err != nil {
			return nil, storageError("list grants", err)
		}
		out = append(out, g)
	}
	return out, storageError0("list grants", rows.Err())
}

// GetGrant returns one grant.
func (v *Vault) GetGrant(ctx context.Context, id string) (Grant, error) {
	if !policy.ValidateRecordID(id) {
		return Grant{}, ErrGrantNotFound
	}
	g, err := v.scanGrant(v.db.r.QueryRowContext(ctx, `SELECT `+grantColumns+` FROM grants WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Grant{}, ErrGrantNotFound
	}
	if err != nil {
		return Grant{}, storageError("get grant", err)
	}
	return g, nil
}

// Revoke ends a grant now. Every read checks revocation inside the same
// serialized transaction that logs it, so no read that commits after the
// revocation can succeed.
func (v *Vault) Revoke(ctx context.Context, id string) (Grant, error) {
	if !policy.ValidateRecordID(id) {
		return Grant{}, ErrGrantNotFound
	}
	var g Grant
	err := v.db.tx(ctx, func(tx *sql.Tx) error {
		var err error
		g, err = v.scanGrant(tx.QueryRowContext(ctx, `SELECT `+grantColumns+` FROM grants WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrGrantNotFound
		}
		if err != nil {
			return err
		}
		if g.Revoked != nil {
			return ErrAlreadyRevoked
		}
		now := v.now()
		if _, err := tx.ExecContext(ctx, `UPDATE grants SET revoked = ?, ended_by = 'owner' WHERE id = ?`, now.Unix(), id); err != nil {
			return err
		}
		g.Revoked, g.Status = &now, "revoked"
		if err := v.appendAudit(ctx, tx, AuditEntry{Event: EvGrantRevoked, Actor: "owner", ClientID: g.ClientID, ClientName: g.ClientName,
			RequestID: g.RequestID, GrantID: id, Scope: policy.Scope(g.Details)}); err != nil {
			return err
		}
		// Tell the organization, if it gave a callback: a signed notice
		// with the deadline for its deletion receipt.
		var callback string
		var retention int64
		if err := tx.QueryRowContext(ctx, `SELECT r.callback_uri, g.retention FROM grants g JOIN requests r ON r.id = g.request_id WHERE g.id = ?`, id).
			Scan(&callback, &retention); err != nil {
			return err
		}
		if callback == "" {
			return nil
		}
		rel, err := relationshipOf(ctx, tx, g.ClientID)
		if err != nil {
			return err
		}
		_, err = v.queueNotice(ctx, tx, rel, g.ClientID, callback, policy.NoticeClaims{Event: policy.NoticeGrantRevoked, GrantID: id,
			DeletionDeadline: now.Add(time.Duration(retention) * time.Second).Unix()})
		return err
	})
	if err != nil {
		return Grant{}, err
	}
	v.forgetGrant(id)
	v.log.Info("grant revoked", "grant", id)
	return g, nil
}
