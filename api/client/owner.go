package client

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/pdvault/pdvault/policy"
)

// Owner talks to the owner API of a vault.
type Owner struct {
	base
	token string
	// Device is this device's token from an earlier login: presented at
	// Login (it exempts the device from the vault's global login throttle)
	// and replaced by the one the vault returns. Keep it between runs.
	Device string
}

// NewOwner returns an owner client for the vault at baseURL (e.g.
// "http://127.0.0.1:8700"). token may be empty until Login.
func NewOwner(baseURL, token string, hc *http.Client) (*Owner, error) {
	b, err := newBase(baseURL, hc)
	if err != nil {
		return nil, err
	}
	return &Owner{base: b, token: token}, nil
}

// Record is an owner's record as the API returns it.
type Record struct {
	ID         string          `json:"id"`
	Collection string          `json:"collection"`
	Version    int64           `json:"version"`
	Created    time.Time       `json:"created"`
	Updated    time.Time       `json:"updated"`
	Data       json.RawMessage `json:"data"`
}

// Page is one page of a record listing.
type Page struct {
	Records    []Record `json:"records"`
	NextCursor string   `json:"next_cursor,omitempty"`
}

// Token returns the session token in use.
func (o *Owner) Token() string { return o.token }

func (o *Owner) send(ctx context.Context, method, path string, body any, out any, hdr ...string) error {
	req, err := o.newRequest(ctx, method, path, body)
	if err != nil {
		return err
	}
	if o.token != "" {
		req.Header.Set("Authorization", "Bearer "+o.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	_, err = o.do(req, out)
	return err
}

// Login exchanges the passphrase for a session token, which the client
// then uses.
func (o *Owner) Login(ctx context.Context, passphrase string) (token string, expiresIn time.Duration, err error) {
	var out struct {
		Token     string `json:"token"`
		ExpiresIn int64  `json:"expires_in"`
		Device    string `json:"device"`
	}
	body := map[string]string{"passphrase": passphrase}
	if o.Device != "" {
		body["device"] = o.Device
	}
	if err := o.send(ctx, http.MethodPost, "/v1/owner/session", body, &out); err != nil {
		return "", 0, err
	}
	o.token = out.Token
	if out.Device != "" {
		o.Device = out.Device
	}
	return out.Token, time.Duration(out.ExpiresIn) * time.Second, nil
}

// Logout ends the session.
func (o *Owner) Logout(ctx context.Context) error {
	return o.send(ctx, http.MethodDelete, "/v1/owner/session", nil, nil)
}

func recordPath(collection string, id ...string) string {
	p := "/v1/owner/records/" + url.PathEscape(collection)
	if len(id) > 0 {
		p += "/" + url.PathEscape(id[0])
	}
	return p
}

func ifMatch(version int64) []string {
	if version <= 0 {
		return nil
	}
	return []string{"If-Match", `"` + strconv.FormatInt(version, 10) + `"`}
}

// CreateRecord stores data (a JSON object) as a new record.
func (o *Owner) CreateRecord(ctx context.Context, collection string, data []byte) (Record, error) {
	var r Record
	err := o.send(ctx, http.MethodPost, recordPath(collection), data, &r)
	return r, err
}

// GetRecord reads one record.
func (o *Owner) GetRecord(ctx context.Context, collection, id string) (Record, error) {
	var r Record
	err := o.send(ctx, http.MethodGet, recordPath(collection, id), nil, &r)
	return r, err
}

// UpdateRecord replaces a record's data; with ifVersion > 0, only if the
// record is still at that version.
func (o *Owner) UpdateRecord(ctx context.Context, collection, id string, data []byte, ifVersion int64) (Record, error) {
	var r Record
	err := o.send(ctx, http.MethodPut, recordPath(collection, id), data, &r, ifMatch(ifVersion)...)
	return r, err
}

// DeleteRecord removes a record; with ifVersion > 0, only that version.
func (o *Owner) DeleteRecord(ctx context.Context, collection, id string, ifVersion int64) error {
	return o.send(ctx, http.MethodDelete, recordPath(collection, id), nil, nil, ifMatch(ifVersion)...)
}

// ListRecords reads one page of a collection. limit 0 means the server's
// default.
func (o *Owner) ListRecords(ctx context.Context, collection string, limit int, cursor string) (Page, error) {
	var page Page
	err := o.send(ctx, http.MethodGet, paged(recordPath(collection), limit, cursor), nil, &page)
	return page, err
}

// paged adds limit (unless 0) and cursor (unless empty) to a listing path.
func paged(path string, limit int, cursor string) string {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return path
}

// ChangePassphrase rewraps the vault's master key under a new passphrase.
// Every owner session, this one included, ends.
func (o *Owner) ChangePassphrase(ctx context.Context, old, new string) error {
	return o.send(ctx, http.MethodPost, "/v1/owner/passphrase", map[string]string{"old": old, "new": new}, nil)
}

// Export streams an encrypted backup of the vault to w.
func (o *Owner) Export(ctx context.Context, w io.Writer) error {
	req, err := o.newRequest(ctx, http.MethodGet, "/v1/owner/export", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+o.token)
	res, err := o.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		e := &Error{Status: res.StatusCode}
		json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(e)
		return e
	}
	_, err = io.Copy(w, res.Body)
	return err
}

// Request is an access request as the owner sees it.
type Request struct {
	ID              string                `json:"id"`
	Status          string                `json:"status"`
	ClientID        string                `json:"client_id"`
	ClientName      string                `json:"client_name"`
	ClientURI       string                `json:"client_uri"`
	CallbackURI     string                `json:"callback_uri,omitempty"`
	Purpose         string                `json:"purpose"`
	PurposeText     string                `json:"purpose_text,omitempty"`
	Details         []AuthorizationDetail `json:"authorization_details"`
	Duration        int64                 `json:"duration"`
	Retention       *int64                `json:"retention,omitempty"`
	TermsHash       string                `json:"terms_hash"`
	Created         time.Time             `json:"created"`
	Expires         time.Time             `json:"expires"`
	Decided         *time.Time            `json:"decided,omitempty"`
	GrantedDetails  []AuthorizationDetail `json:"granted_authorization_details,omitempty"`
	GrantedDuration int64                 `json:"granted_duration,omitempty"`
	DenyReason      string                `json:"deny_reason,omitempty"`
	GrantID         string                `json:"grant_id,omitempty"`
	Signed          string                `json:"signed_request"`
	RelationshipID  string                `json:"relationship_id"`
	// ClaimsPreview says what each derived claim would reveal now.
	ClaimsPreview []struct {
		Claim       string `json:"claim"`
		Collection  string `json:"collection"`
		Description string `json:"description"`
		Answer      string `json:"answer"`
	} `json:"claims_preview,omitempty"`
}

// PageQuery selects one page of an owner listing: Limit items (0: the
// vault's default, 50) after Cursor ("" for the first page).
type PageQuery struct {
	Limit  int
	Cursor string
}

func (p PageQuery) query(q url.Values) string {
	if p.Limit > 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if p.Cursor != "" {
		q.Set("cursor", p.Cursor)
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// RequestPage is a page of requests; Next is "" on the last page. Dropped
// counts requests the vault refused because too many were pending.
type RequestPage struct {
	Requests []Request `json:"requests"`
	Next     string    `json:"next_cursor,omitempty"`
	Dropped  int64     `json:"dropped,omitempty"`
}

// ListRequests lists a page of access requests, newest first; status ""
// for all.
func (o *Owner) ListRequests(ctx context.Context, status string, pg PageQuery) (RequestPage, error) {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	var out RequestPage
	err := o.send(ctx, http.MethodGet, "/v1/owner/requests"+pg.query(q), nil, &out)
	return out, err
}

// GetRequest reads one request.
func (o *Owner) GetRequest(ctx context.Context, id string) (Request, error) {
	var r Request
	err := o.send(ctx, http.MethodGet, "/v1/owner/requests/"+url.PathEscape(id), nil, &r)
	return r, err
}

// Approval narrows an approval: nil details and 0 duration approve as asked.
type Approval struct {
	Details  []AuthorizationDetail `json:"authorization_details,omitempty"`
	Duration int64                 `json:"duration,omitempty"`
}

// Approve says yes to a request, as asked or narrower.
func (o *Owner) Approve(ctx context.Context, id string, a Approval) (Request, error) {
	var r Request
	err := o.send(ctx, http.MethodPost, "/v1/owner/requests/"+url.PathEscape(id)+"/approve", a, &r)
	return r, err
}

// Deny says no to a request.
func (o *Owner) Deny(ctx context.Context, id, reason string) (Request, error) {
	var r Request
	err := o.send(ctx, http.MethodPost, "/v1/owner/requests/"+url.PathEscape(id)+"/deny", map[string]string{"reason": reason}, &r)
	return r, err
}

// Grant is a grant as the owner sees it.
type Grant struct {
	ID         string                `json:"id"`
	RequestID  string                `json:"request_id"`
	ClientID   string                `json:"client_id"`
	ClientName string                `json:"client_name"`
	Subject    string                `json:"sub"`
	Details    []AuthorizationDetail `json:"authorization_details"`
	Purpose    string                `json:"purpose"`
	TermsHash  string                `json:"terms_hash"`
	Issued     time.Time             `json:"issued"`
	Expires    time.Time             `json:"expires"`
	Revoked    *time.Time            `json:"revoked,omitempty"`
	Status     string                `json:"status"`
}

// GrantPage is a page of grants, newest first.
type GrantPage struct {
	Grants []Grant `json:"grants"`
	Next   string  `json:"next_cursor,omitempty"`
}

// ListGrants lists a page of grants, newest first.
func (o *Owner) ListGrants(ctx context.Context, pg PageQuery) (GrantPage, error) {
	var out GrantPage
	err := o.send(ctx, http.MethodGet, "/v1/owner/grants"+pg.query(url.Values{}), nil, &out)
	return out, err
}

// Revoke ends a grant now.
func (o *Owner) Revoke(ctx context.Context, id string) (Grant, error) {
	var g Grant
	err := o.send(ctx, http.MethodPost, "/v1/owner/grants/"+url.PathEscape(id)+"/revoke", nil, &g)
	return g, err
}

// ConsentReceipt is a grant's consent record (GET
// /v1/owner/grants/{id}/consent): its history, state, both standard shapes
// and the signed Kantara receipt.
type ConsentReceipt struct {
	Record struct {
		ID     string `json:"id"`
		Events []struct {
			Type string    `json:"type"`
			At   time.Time `json:"at"`
			Note string    `json:"note,omitempty"`
		} `json:"events"`
	} `json:"record"`
	State    string         `json:"state"`
	Kantara  map[string]any `json:"kantara"`
	ISO27560 map[string]any `json:"iso_27560"`
	Signed   string         `json:"signed"`
}

// ConsentReceipt reads a grant's consent receipt.
func (o *Owner) ConsentReceipt(ctx context.Context, grantID string) (ConsentReceipt, error) {
	var c ConsentReceipt
	err := o.send(ctx, http.MethodGet, "/v1/owner/grants/"+url.PathEscape(grantID)+"/consent", nil, &c)
	return c, err
}

// ExportAgreement returns the dispute bundle of an IEEE 7012 agreement
// record as the vault sends it (JSON).
func (o *Owner) ExportAgreement(ctx context.Context, id string) (json.RawMessage, error) {
	var b json.RawMessage
	err := o.send(ctx, http.MethodGet, "/v1/owner/agreements/"+url.PathEscape(id), nil, &b)
	return b, err
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	Seq        int64    `json:"seq"`
	Time       int64    `json:"time"`
	Event      string   `json:"event"`
	Actor      string   `json:"actor"`
	Outcome    string   `json:"outcome,omitempty"`
	ClientID   string   `json:"client_id,omitempty"`
	ClientName string   `json:"client_name,omitempty"`
	RequestID  string   `json:"request_id,omitempty"`
	GrantID    string   `json:"grant_id,omitempty"`
	Collection string   `json:"collection,omitempty"`
	RecordIDs  []string `json:"record_ids,omitempty"`
	Fields     []string `json:"fields,omitempty"`
	Scope      string   `json:"scope,omitempty"`
	Reason     string   `json:"reason,omitempty"`
}

// AuditPage is a page of the log, newest first.
type AuditPage struct {
	Entries    []AuditEntry `json:"entries"`
	NextCursor string       `json:"next_cursor,omitempty"`
}

// ListAudit reads the audit log, newest first.
func (o *Owner) ListAudit(ctx context.Context, limit int, cursor string) (AuditPage, error) {
	var page AuditPage
	err := o.send(ctx, http.MethodGet, paged("/v1/owner/audit", limit, cursor), nil, &page)
	return page, err
}

// AuditReport is the result of verifying the log.
type AuditReport struct {
	OK          bool   `json:"ok"`
	Entries     int64  `json:"entries"`
	Checkpoints int    `json:"checkpoints"`
	Head        string `json:"head,omitempty"`
	TreeHead    string `json:"tree_head,omitempty"` // signed head of the verified log
	Unlogged    struct {
		RequestsDropped  int64 `json:"requests_dropped"`
		StrangerRefusals int64 `json:"stranger_refusals"`
		ReadRefusals     int64 `json:"read_refusals"`
	} `json:"unlogged"`
	Problems []struct {
		Seq     int64  `json:"seq"`
		Problem string `json:"problem"`
	} `json:"problems,omitempty"`
}

// VerifyAudit asks the vault to verify its whole log.
func (o *Owner) VerifyAudit(ctx context.Context) (AuditReport, error) {
	var r AuditReport
	err := o.send(ctx, http.MethodGet, "/v1/owner/audit/verify", nil, &r)
	return r, err
}

// OwnerTerms is the terms document with its hash and rendering.
type OwnerTerms struct {
	Terms   json.RawMessage `json:"terms"`
	Hash    string          `json:"hash"`
	Text    string          `json:"text"`
	Created time.Time       `json:"created"`
}

// Terms reads the current terms.
func (o *Owner) Terms(ctx context.Context) (OwnerTerms, error) {
	var t OwnerTerms
	err := o.send(ctx, http.MethodGet, "/v1/owner/terms", nil, &t)
	return t, err
}

// SetTerms replaces the terms with the JSON document body.
func (o *Owner) SetTerms(ctx context.Context, body []byte) (OwnerTerms, error) {
	var t OwnerTerms
	err := o.send(ctx, http.MethodPut, "/v1/owner/terms", body, &t)
	return t, err
}

// Relationship is everything between the owner and one organization.
type Relationship struct {
	ID             string     `json:"id"`
	Name           string     `json:"name"`
	URI            string     `json:"uri"`
	FirstContact   time.Time  `json:"first_contact"`
	LastContact    time.Time  `json:"last_contact"`
	VerifiedDomain string     `json:"verified_domain,omitempty"`
	VerifiedAt     *time.Time `json:"verified_at,omitempty"`
	Keys           []struct {
		ClientID string    `json:"client_id"`
		Added    time.Time `json:"added"`
		Rotated  bool      `json:"rotated_in"`
	} `json:"keys"`
	Requests []Request `json:"requests"`
	Grants   []struct {
		Grant
		EndedBy  string     `json:"ended_by,omitempty"`
		Deletion string     `json:"deletion"`
		Deadline *time.Time `json:"deletion_deadline,omitempty"`
	} `json:"grants"`
	Reads    int64      `json:"reads"`
	LastRead *time.Time `json:"last_read,omitempty"`
	Notices  []struct {
		ID        string     `json:"id"`
		GrantID   string     `json:"grant_id,omitempty"`
		Event     string     `json:"event"`
		URL       string     `json:"url"`
		Status    string     `json:"status"`
		Attempts  int        `json:"attempts"`
		LastError string     `json:"last_error,omitempty"`
		Delivered *time.Time `json:"delivered,omitempty"`
	} `json:"notices"`
	Receipts []struct {
		ID        string    `json:"id"`
		GrantID   string    `json:"grant_id"`
		Deleted   []string  `json:"deleted"`
		DeletedAt time.Time `json:"deleted_at"`
		Statement string    `json:"statement,omitempty"`
		Complete  bool      `json:"complete"`
	} `json:"receipts"`
	TermsHashes    []string `json:"terms_hashes"`
	OnCurrentTerms bool     `json:"on_current_terms"`
	Deletion       string   `json:"deletion"`
	ActiveGrants   int      `json:"active_grants"`
}

// RelationshipPage is a page of relationships, most recent contact first.
type RelationshipPage struct {
	Relationships []Relationship `json:"relationships"`
	Next          string         `json:"next_cursor,omitempty"`
}

// ListRelationships lists a page of relationships, most recent first.
func (o *Owner) ListRelationships(ctx context.Context, pg PageQuery) (RelationshipPage, error) {
	var out RelationshipPage
	err := o.send(ctx, http.MethodGet, "/v1/owner/relationships"+pg.query(url.Values{}), nil, &out)
	return out, err
}

// GetRelationship reads one relationship.
func (o *Owner) GetRelationship(ctx context.Context, id string) (Relationship, error) {
	var r Relationship
	err := o.send(ctx, http.MethodGet, "/v1/owner/relationships/"+url.PathEscape(id), nil, &r)
	return r, err
}

// VerifyRelationship fetches the organization's published domain challenge.
func (o *Owner) VerifyRelationship(ctx context.Context, id string) (Relationship, error) {
	var r Relationship
	err := o.send(ctx, http.MethodPost, "/v1/owner/relationships/"+url.PathEscape(id)+"/verify", nil, &r)
	return r, err
}

// AskReaccept notifies the organization that the terms changed.
func (o *Owner) AskReaccept(ctx context.Context, id string) error {
	return o.send(ctx, http.MethodPost, "/v1/owner/relationships/"+url.PathEscape(id)+"/reaccept", nil, nil)
}

// IntentInput is what the owner publishes.
type IntentInput = policy.IntentInput

// Budget is an intent's budget.
type Budget = policy.Budget

// OwnerIntent is an intent with its offers.
type OwnerIntent struct {
	policy.Intent
	Signed string `json:"signed"`
	Status string `json:"status"`
	Offers []struct {
		ID         string                `json:"id"`
		ClientID   string                `json:"client_id"`
		ClientName string                `json:"client_name"`
		ClientURI  string                `json:"client_uri"`
		Offer      string                `json:"offer"`
		Price      *policy.Price         `json:"price,omitempty"`
		Purpose    string                `json:"purpose"`
		Needs      []AuthorizationDetail `json:"authorization_details"`
		Duration   int64                 `json:"duration"`
		Status     string                `json:"status"`
		Received   time.Time             `json:"received"`
	} `json:"offers"`
}

// PublishIntent states a need to the market.
func (o *Owner) PublishIntent(ctx context.Context, in IntentInput) (OwnerIntent, error) {
	var out OwnerIntent
	err := o.send(ctx, http.MethodPost, "/v1/owner/intents", in, &out)
	return out, err
}

// Intents lists the owner's intents with their offers.
func (o *Owner) Intents(ctx context.Context) ([]OwnerIntent, error) {
	var out struct {
		Intents []OwnerIntent `json:"intents"`
	}
	err := o.send(ctx, http.MethodGet, "/v1/owner/intents", nil, &out)
	return out.Intents, err
}

// Intent reads one intent with its offers.
func (o *Owner) Intent(ctx context.Context, id string) (OwnerIntent, error) {
	var out OwnerIntent
	err := o.send(ctx, http.MethodGet, "/v1/owner/intents/"+url.PathEscape(id), nil, &out)
	return out, err
}

// CloseIntent takes an intent off the feed.
func (o *Owner) CloseIntent(ctx context.Context, id string) (OwnerIntent, error) {
	var out OwnerIntent
	err := o.send(ctx, http.MethodPost, "/v1/owner/intents/"+url.PathEscape(id)+"/close", nil, &out)
	return out, err
}

// AcceptOffer turns an offer into a pending access request.
func (o *Owner) AcceptOffer(ctx context.Context, offerID string) (Request, error) {
	var r Request
	err := o.send(ctx, http.MethodPost, "/v1/owner/offers/"+url.PathEscape(offerID)+"/accept", nil, &r)
	return r, err
}

// DeclineOffer says no to an offer.
func (o *Owner) DeclineOffer(ctx context.Context, offerID string) error {
	return o.send(ctx, http.MethodPost, "/v1/owner/offers/"+url.PathEscape(offerID)+"/decline", nil, nil)
}

// KeyStatus describes the vault's keys.
type KeyStatus struct {
	SigningKey       string   `json:"signing_key"`
	PublishedKeys    []string `json:"published_keys"`
	RecordKeyID      uint32   `json:"record_key_id"`
	RecordsToRewrite int64    `json:"records_to_reencrypt"`
	// UnreadableRecords failed their integrity check during re-encryption.
	UnreadableRecords []string `json:"unreadable_records,omitempty"`
}

// RotationResult says what a rotation did.
type RotationResult struct {
	SigningKey       string `json:"signing_key,omitempty"`
	RetiredKey       string `json:"retired_key,omitempty"`
	RecordKeyID      uint32 `json:"record_key_id,omitempty"`
	RecordsToRewrite int64  `json:"records_to_reencrypt"`
}

// KeyStatus reads the vault's key status.
func (o *Owner) KeyStatus(ctx context.Context) (KeyStatus, error) {
	var st KeyStatus
	err := o.send(ctx, http.MethodGet, "/v1/owner/keys", nil, &st)
	return st, err
}

// RotateKeys rotates the signing key, the record key, or both.
func (o *Owner) RotateKeys(ctx context.Context, signing, records bool) (RotationResult, error) {
	var res RotationResult
	err := o.send(ctx, http.MethodPost, "/v1/owner/keys/rotate", map[string]bool{"signing": signing, "records": records}, &res)
	return res, err
}

// Channel is a notification channel (no secrets, except a webhook's
// signing secret, returned once when it is added).
type Channel struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Name      string    `json:"name,omitempty"`
	Target    string    `json:"target"`
	Created   time.Time `json:"created"`
	Delivered int64     `json:"delivered"`
	Pending   int64     `json:"pending"`
	Failed    int64     `json:"failed"`
	LastError string    `json:"last_error,omitempty"`
	Secret    string    `json:"secret,omitempty"`
}

// AddChannel adds a notification channel; config is its JSON settings
// (docs/api.md, "Notifications").
func (o *Owner) AddChannel(ctx context.Context, config json.RawMessage) (Channel, error) {
	var c Channel
	err := o.send(ctx, http.MethodPost, "/v1/owner/notifications/channels", config, &c)
	return c, err
}

// Channels lists the notification channels.
func (o *Owner) Channels(ctx context.Context) ([]Channel, error) {
	var out struct {
		Channels []Channel `json:"channels"`
	}
	err := o.send(ctx, http.MethodGet, "/v1/owner/notifications/channels", nil, &out)
	return out.Channels, err
}

// RemoveChannel deletes a channel.
func (o *Owner) RemoveChannel(ctx context.Context, id string) error {
	return o.send(ctx, http.MethodDelete, "/v1/owner/notifications/channels/"+url.PathEscape(id), nil, nil)
}

// TestChannel queues a test message on a channel.
func (o *Owner) TestChannel(ctx context.Context, id string) error {
	return o.send(ctx, http.MethodPost, "/v1/owner/notifications/channels/"+url.PathEscape(id)+"/test", nil, nil)
}
