package vault

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/pdvault/pdvault/policy"
)

// Organizations read data with a grant and a fresh DPoP proof. The steps:
// verify the grant (once, then from a cache until it expires), verify the
// proof and that it comes from the grant's key, refuse a replayed proof,
// check the scope, read and project, and finally — in one serialized write
// transaction — check that the grant is not revoked and append the audit
// entry. Data leaves only after that transaction commits.

// ErrDataNotFound is the answer for a collection or record the grant does
// not cover and for one that does not exist: an organization cannot tell
// them apart.
var ErrDataNotFound = policy.E(policy.KindNotFound, "not_found", "no such collection or record")

// ErrReplayCacheFull means too many proofs arrived within their lifetime to
// remember them all; refusing is safer than forgetting.
var ErrReplayCacheFull = policy.E(policy.KindThrottled, "temporarily_unavailable", "too many requests; try again shortly")

// DataRecord is a record as an organization sees it: an id and only the
// granted fields.
type DataRecord struct {
	ID         string                     `json:"id"`
	Collection string                     `json:"collection"`
	Data       map[string]json.RawMessage `json:"data"`
}

// DataPage is a page of a granted collection.
type DataPage struct {
	Collection string       `json:"collection"`
	Records    []DataRecord `json:"records"`
	Next       string       `json:"next_cursor,omitempty"`
}

// Access is what an organization presents with a read.
type Access struct {
	Grant string // the access token
	Proof string // the DPoP header
	HTTP  HTTPContext
}

// replayCache remembers DPoP proof ids until they are too old to be
// accepted anyway.
type replayCache struct {
	mu   sync.Mutex
	seen map[string]int64 // jkt|jti -> unix time after which it may be forgotten
	max  int
	last int64
}

func newReplayCache(max int) *replayCache {
	return &replayCache{seen: map[string]int64{}, max: max}
}

// use records a proof id and reports whether it was new.
func (c *replayCache) use(key string, now time.Time, ttl time.Duration) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := now.Unix()
	if n != c.last && len(c.seen) > c.max/2 {
		for k, exp := range c.seen {
			if exp < n {
				delete(c.seen, k)
			}
		}
		c.last = n
	}
	if _, dup := c.seen[key]; dup {
		return false, nil
	}
	if len(c.seen) >= c.max {
		return false, ErrReplayCacheFull
	}
	c.seen[key] = now.Add(ttl).Unix()
	return true, nil
}

// grantCache keeps verified grants, so a signature is checked once per
// grant rather than once per read. Entries still pass the time checks on
// every use, and revocation is always read from the database.
type grantCache struct {
	mu sync.RWMutex
	m  map[[32]byte]*policy.GrantClaims
}

const grantCacheMax = 10000

func (v *Vault) verifyGrant(tok string) (*policy.GrantClaims, error) {
	key := sha256.Sum256([]byte(tok))
	v.grants.mu.RLock()
	c, ok := v.grants.m[key]
	v.grants.mu.RUnlock()
	now := v.opts.Now()
	if ok {
		if err := policy.CheckGrantTimes(c, now, policy.ClockSkew); err != nil {
			return nil, err
		}
		return c, nil
	}
	c, err := policy.VerifyGrant(tok, policy.GrantCheck{Issuer: v.Issuer(), Audience: v.Issuer(), Now: now, Skew: policy.ClockSkew, Key: v.publicKey})
	if err != nil {
		return nil, err
	}
	v.grants.mu.Lock()
	if len(v.grants.m) >= grantCacheMax {
		clear(v.grants.m)
	}
	v.grants.m[key] = c
	v.grants.mu.Unlock()
	return c, nil
}

// forgetGrant drops a grant from the cache (memory hygiene; correctness
// does not depend on it).
func (v *Vault) forgetGrant(id string) {
	v.grants.mu.Lock()
	for k, c := range v.grants.m {
		if c.ID == id {
			delete(v.grants.m, k)
		}
	}
	v.grants.mu.Unlock()
}

// checkProof verifies a DPoP proof for this HTTP request and refuses a
// replay of its jti.
func (v *Vault) checkProof(proof string, hc HTTPContext, accessToken string) (*policy.Proof, error) {
	now := v.opts.Now()
	p, err := policy.VerifyProof(proof, policy.ProofCheck{Method: hc.Method, URL: hc.URL, AccessToken: accessToken, Now: now, Skew: policy.ClockSkew})
	if err != nil {
		return nil, err
	}
	fresh, err := v.replay.use(p.JKT+"|"+p.ID, now, policy.ProofMaxAge+2*policy.ClockSkew)
	if err != nil {
		return nil, err
	}
	if !fresh {
		return nil, policy.ErrProofReplayed
	}
	return p, nil
}

// authorize checks grant and proof and returns the grant's claims and the
// detail covering collection. Refusals of a genuine grant are logged.
func (v *Vault) authorize(ctx context.Context, a Access, collection string) (*policy.GrantClaims, policy.AuthorizationDetail, error) {
	g, err := v.verifyGrant(a.Grant)
	if err != nil {
		// Not a genuine, current grant of ours: nothing to attribute it to.
		return nil, policy.AuthorizationDetail{}, err
	}
	refuse := func(err error) (*policy.GrantClaims, policy.AuthorizationDetail, error) {
		e := v.refusal(g, collection, err)
		aerr := v.db.tx(ctx, func(tx *sql.Tx) error {
			// The name makes the log readable; a grant without a row (one
			// from a restored backup, say) is logged without it.
			tx.QueryRowContext(ctx, `SELECT client_name FROM grants WHERE id = ?`, g.ID).Scan(&e.ClientName)
			return v.appendAudit(ctx, tx, e)
		})
		if aerr != nil {
			return nil, policy.AuthorizationDetail{}, aerr
		}
		return nil, policy.AuthorizationDetail{}, err
	}
	p, err := v.checkProof(a.Proof, a.HTTP, a.Grant)
	if err != nil {
		return refuse(err)
	}
	if p.JKT != g.Confirmation.JKT {
		return refuse(policy.ErrWrongHolder)
	}
	d, ok := policy.Detail(g.AuthorizationDetails, collection)
	if !ok || policy.ValidateCollection(collection) != nil {
		return refuse(ErrDataNotFound)
	}
	return g, d, nil
}

func (v *Vault) refusal(g *policy.GrantClaims, collection string, err error) AuditEntry {
	reason := "refused"
	var pe *policy.Error
	if errors.As(err, &pe) {
		reason = pe.Msg
	}
	if len(collection) > 63 {
		collection = collection[:63]
	}
	return AuditEntry{Event: EvDataRefused, Actor: g.ClientID, Outcome: OutcomeDenied, ClientID: g.ClientID,
		GrantID: g.ID, Collection: collection, Reason: reason}
}

// commitRead is the linearization point of a read: in one write
// transaction, refuse if the grant has been revoked (or is unknown), else
// log the read. Only after it commits may the data leave.
func (v *Vault) commitRead(ctx context.Context, g *policy.GrantClaims, collection string, ids []string, fields []string) error {
	var outErr error
	err := v.db.tx(ctx, func(tx *sql.Tx) error {
		var revoked sql.NullInt64
		var name string
		err := tx.QueryRowContext(ctx, `SELECT revoked, client_name FROM grants WHERE id = ?`, g.ID).Scan(&revoked, &name)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && revoked.Valid) {
			outErr = policy.ErrGrantRevoked
			e := v.refusal(g, collection, outErr)
			e.ClientName = name
			return v.appendAudit(ctx, tx, e)
		}
		if err != nil {
			return err
		}
		return v.appendAudit(ctx, tx, AuditEntry{Event: EvDataRead, Actor: g.ClientID, Outcome: OutcomeAllowed, ClientID: g.ClientID,
			ClientName: name, GrantID: g.ID, Collection: collection, RecordIDs: ids, Fields: fields})
	})
	if err != nil {
		return err
	}
	return outErr
}

// ReadCollection returns a page of a granted collection, granted fields
// only.
func (v *Vault) ReadCollection(ctx context.Context, a Access, collection string, limit int, cursor string) (DataPage, error) {
	g, d, err := v.authorize(ctx, a, collection)
	if err != nil {
		return DataPage{}, err
	}
	page, err := v.ListRecords(ctx, collection, limit, cursor)
	if err != nil {
		return DataPage{}, err
	}
	out := DataPage{Collection: collection, Records: make([]DataRecord, 0, len(page.Records)), Next: page.Next}
	ids := make([]string, 0, len(page.Records))
	for _, r := range page.Records {
		data, err := policy.Project(d, r.Data)
		if err != nil {
			return DataPage{}, policy.Internal("project", err)
		}
		out.Records = append(out.Records, DataRecord{ID: r.ID, Collection: collection, Data: data})
		ids = append(ids, r.ID)
	}
	if err := v.commitRead(ctx, g, collection, ids, d.Fields); err != nil {
		return DataPage{}, err
	}
	return out, nil
}

// ReadRecord returns one record of a granted collection, granted fields
// only.
func (v *Vault) ReadRecord(ctx context.Context, a Access, collection, id string) (DataRecord, error) {
	g, d, err := v.authorize(ctx, a, collection)
	if err != nil {
		return DataRecord{}, err
	}
	r, err := v.GetRecord(ctx, collection, id)
	if errors.Is(err, ErrRecordNotFound) {
		return DataRecord{}, ErrDataNotFound
	}
	if err != nil {
		return DataRecord{}, err
	}
	data, err := policy.Project(d, r.Data)
	if err != nil {
		return DataRecord{}, policy.Internal("project", err)
	}
	if err := v.commitRead(ctx, g, collection, []string{id}, d.Fields); err != nil {
		return DataRecord{}, err
	}
	return DataRecord{ID: id, Collection: collection, Data: data}, nil
}

// Introspection is an RFC 7662 introspection response.
type Introspection struct {
	Active               bool                         `json:"active"`
	TokenType            string                       `json:"token_type,omitempty"`
	ClientID             string                       `json:"client_id,omitempty"`
	Subject              string                       `json:"sub,omitempty"`
	Issuer               string                       `json:"iss,omitempty"`
	Audience             string                       `json:"aud,omitempty"`
	ID                   string                       `json:"jti,omitempty"`
	IssuedAt             int64                        `json:"iat,omitempty"`
	NotBefore            int64                        `json:"nbf,omitempty"`
	Expiry               int64                        `json:"exp,omitempty"`
	AuthorizationDetails []policy.AuthorizationDetail `json:"authorization_details,omitempty"`
	Purpose              string                       `json:"purpose,omitempty"`
	TermsHash            string                       `json:"terms_hash,omitempty"`
	Confirmation         *policy.Confirmation         `json:"cnf,omitempty"`
}

// Introspect tells an organization whether its grant is active (RFC 7662).
// The caller authenticates with a DPoP proof from the grant's key; for
// anyone else, and for any grant that is not active, the answer is only
// {"active": false}.
func (v *Vault) Introspect(ctx context.Context, token, proof string, hc HTTPContext) (Introspection, error) {
	p, err := v.checkProof(proof, hc, "")
	if err != nil {
		return Introspection{}, err
	}
	g, err := v.verifyGrant(token)
	if err != nil || g.Confirmation.JKT != p.JKT {
		return Introspection{Active: false}, nil
	}
	var revoked sql.NullInt64
	err = v.db.r.QueryRowContext(ctx, `SELECT revoked FROM grants WHERE id = ?`, g.ID).Scan(&revoked)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && revoked.Valid) {
		return Introspection{Active: false}, nil
	}
	if err != nil {
		return Introspection{}, storageError("introspect", err)
	}
	return Introspection{Active: true, TokenType: "DPoP", ClientID: g.ClientID, Subject: g.Subject, Issuer: g.Issuer, Audience: g.Audience,
		ID: g.ID, IssuedAt: g.IssuedAt, NotBefore: g.NotBefore, Expiry: g.Expiry, AuthorizationDetails: g.AuthorizationDetails,
		Purpose: g.Purpose, TermsHash: g.TermsHash, Confirmation: &g.Confirmation}, nil
}
