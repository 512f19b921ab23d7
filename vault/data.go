package vault

import (
	"context"
	"crypto/sha256"
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
	AuditSeq   int64                      `json:"-"` // the read's entry in the audit log
}

// DataPage is a page of a granted collection.
type DataPage struct {
	Collection string       `json:"collection"`
	Records    []DataRecord `json:"records"`
	Next       string       `json:"next_cursor,omitempty"`
	AuditSeq   int64        `json:"-"` // the read's entry in the audit log
}

// Access is what an organization presents with a read.
type Access struct {
	Grant string // the access token
	Proof string // the DPoP header
	HTTP  HTTPContext
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
	c, err := policy.VerifyGrant(tok, policy.GrantCheck{Issuer: v.Issuer(), Audience: v.Issuer(), Now: now, Skew: policy.ClockSkew, Key: v.publicKey,
		Former: func(iss string) bool { return v.formerIssuer(context.Background(), iss) }})
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

// checkProof verifies a DPoP proof for this HTTP request and its key's rate.
// The caller consumes it (consumeProof, the replay check) once the key is
// shown to belong here.
func (v *Vault) checkProof(proof string, hc HTTPContext, accessToken string) (*policy.Proof, error) {
	return v.checkProofOf(proof, hc, accessToken, "")
}

// checkProofOf is checkProof for a proof that must be by holder's key.
func (v *Vault) checkProofOf(proof string, hc HTTPContext, accessToken, holder string) (*policy.Proof, error) {
	now := v.opts.Now()
	p, err := policy.VerifyProof(proof, policy.ProofCheck{Method: hc.Method, URL: hc.URL, AccessToken: accessToken, Now: now, Skew: policy.ClockSkew,
		Cache: v.proofs, Holder: holder})
	if err != nil {
		return nil, err
	}
	// Each organization key has its quota; going over is not logged, so
	// that a flood cannot fill the owner's audit log.
	if ok, wait := v.orgLimit.Allow(p.JKT, now); !ok {
		return nil, policy.ErrRateLimited.WithRetryAfter(wait)
	}
	return p, nil
}

// authorize checks grant and proof and returns the grant's claims, the
// detail covering collection (with fields), and the relationship (for
// pairwise ids). Refusals of a genuine grant are logged.
func (v *Vault) authorize(ctx context.Context, a Access, collection string) (*policy.GrantClaims, policy.AuthorizationDetail, string, error) {
	g, rel, err := v.authenticate(ctx, a, collection)
	if err != nil {
		return nil, policy.AuthorizationDetail{}, "", err
	}
	d, ok := policy.Detail(g.AuthorizationDetails, collection)
	if !ok || len(d.Fields) == 0 || policy.ValidateCollection(collection) != nil {
		return nil, policy.AuthorizationDetail{}, "", v.refuse(ctx, g, collection, ErrDataNotFound)
	}
	return g, d, rel, nil
}

// authenticate checks the grant, the proof and that the proof's key holds
// the grant, and finds the relationship.
func (v *Vault) authenticate(ctx context.Context, a Access, collection string) (*policy.GrantClaims, string, error) {
	g, err := v.verifyGrant(a.Grant)
	if err != nil {
		// Not a genuine, current grant of ours: nothing to attribute it to.
		return nil, "", err
	}
	p, err := v.checkProofOf(a.Proof, a.HTTP, a.Grant, g.Confirmation.JKT)
	if errors.Is(err, policy.ErrRateLimited) {
		return nil, "", err
	}
	if err != nil {
		return nil, "", v.refuse(ctx, g, collection, err)
	}
	if p.JKT != g.Confirmation.JKT {
		return nil, "", v.refuse(ctx, g, collection, policy.ErrWrongHolder)
	}
	// Only now, with the proof's key shown to hold the grant, is its jti
	// remembered: a stranger's proofs never reach the replay cache.
	if err := v.consumeProof(p); err != nil {
		return nil, "", v.refuse(ctx, g, collection, err)
	}
	rel, err := v.relOf(ctx, g.ClientID)
	if err != nil {
		return nil, "", v.refuse(ctx, g, collection, policy.ErrGrantRevoked)
	}
	return g, rel, nil
}

// refuse logs a refusal of a genuine grant and returns err (or the audit
// failure, which must win: fail closed).
//
// Someone who copied a grant can make refusals as fast as they like, each
// with a fresh stranger's proof: refusals are logged at most
// refusalsPerGrant a second per grant (the rest are counted), and they
// ride the group committer like reads, not a transaction and fsync each.
func (v *Vault) refuse(ctx context.Context, g *policy.GrantClaims, collection string, err error) error {
	if ok, _ := v.refusalLimit.Allow(g.ID, v.opts.Now()); !ok {
		v.refusalsDropped.Add(1)
		return err
	}
	if _, aerr := v.commitEntry(ctx, g, v.refusal(g, collection, err)); aerr != nil {
		return aerr
	}
	return err
}

// refusalsPerGrant bounds the data.refused entries one grant can cause.
const refusalsPerGrant = 1

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

// commitRead is the linearization point of a read: the grant must not be
// revoked when the read's audit entry commits (group-committed, see
// commit.go). Only after that may the data leave.
func (v *Vault) commitRead(ctx context.Context, g *policy.GrantClaims, collection string, ids []string, fields []string) (int64, error) {
	return v.commitUse(ctx, g, AuditEntry{Event: EvDataRead, Actor: g.ClientID, Outcome: OutcomeAllowed, ClientID: g.ClientID,
		GrantID: g.ID, Collection: collection, RecordIDs: ids, Fields: fields})
}

// ReadCollection returns a page of a granted collection, granted fields
// only.
func (v *Vault) ReadCollection(ctx context.Context, a Access, collection string, limit int, cursor string) (DataPage, error) {
	g, d, rel, err := v.authorize(ctx, a, collection)
	if err != nil {
		return DataPage{}, err
	}
	real, err := v.realCursor(rel, g.ID, collection, cursor)
	if err != nil {
		return DataPage{}, err
	}
	page, err := v.ListRecords(ctx, collection, limit, real)
	if err != nil {
		return DataPage{}, err
	}
	out := DataPage{Collection: collection, Records: make([]DataRecord, 0, len(page.Records)), Next: v.orgCursor(rel, g.ID, collection, page.Next)}
	ids := make([]string, 0, len(page.Records))
	for _, r := range page.Records {
		orgID := v.orgRecordID(rel, r.ID)
		if !policy.Covers(d, orgID, r.Data) {
			continue // outside the grant's ids or kinds: as if absent
		}
		data, err := policy.Project(d, r.Data)
		if err != nil {
			return DataPage{}, policy.Internal("project", err)
		}
		out.Records = append(out.Records, DataRecord{ID: orgID, Collection: collection, Data: data})
		ids = append(ids, r.ID)
	}
	if out.AuditSeq, err = v.commitRead(ctx, g, collection, ids, d.Fields); err != nil {
		return DataPage{}, err
	}
	return out, nil
}

// ReadRecord returns one record of a granted collection, granted fields
// only.
func (v *Vault) ReadRecord(ctx context.Context, a Access, collection, id string) (DataRecord, error) {
	g, d, rel, err := v.authorize(ctx, a, collection)
	if err != nil {
		return DataRecord{}, err
	}
	orgID := id
	id, ok := v.realRecordID(rel, orgID)
	if !ok {
		return DataRecord{}, ErrDataNotFound
	}
	r, err := v.GetRecord(ctx, collection, id)
	if errors.Is(err, ErrRecordNotFound) {
		return DataRecord{}, ErrDataNotFound
	}
	if err != nil {
		return DataRecord{}, err
	}
	if !policy.Covers(d, orgID, r.Data) {
		return DataRecord{}, ErrDataNotFound
	}
	data, err := policy.Project(d, r.Data)
	if err != nil {
		return DataRecord{}, policy.Internal("project", err)
	}
	seq, err := v.commitRead(ctx, g, collection, []string{id}, d.Fields)
	if err != nil {
		return DataRecord{}, err
	}
	return DataRecord{ID: orgID, Collection: collection, Data: data, AuditSeq: seq}, nil
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
func (v *Vault) Introspect(ctx context.Context, token, auth, proof string, hc HTTPContext) (Introspection, error) {
	p, err := v.authenticateCaller(auth, proof, hc)
	if err != nil {
		return Introspection{}, err
	}
	g, err := v.verifyGrant(token)
	if err != nil || g.Confirmation.JKT != p.JKT {
		return Introspection{Active: false}, nil
	}
	if err := v.consumeProof(p); err != nil {
		return Introspection{}, err
	}
	row, err := v.loadGrant(ctx, v.db.r, g.ID)
	if errors.Is(err, ErrGrantNotFound) || (err == nil && row.Revoked != nil) {
		return Introspection{Active: false}, nil
	}
	if err != nil {
		return Introspection{}, storageError("introspect", err)
	}
	return Introspection{Active: true, TokenType: "DPoP", ClientID: g.ClientID, Subject: g.Subject, Issuer: g.Issuer, Audience: g.Audience,
		ID: g.ID, IssuedAt: g.IssuedAt, NotBefore: g.NotBefore, Expiry: g.Expiry, AuthorizationDetails: g.AuthorizationDetails,
		Purpose: g.Purpose, TermsHash: g.TermsHash, Confirmation: &g.Confirmation}, nil
}

// ErrInvalidClient is a failed authentication at the introspection or
// revocation endpoint (RFC 6749 §5.2, RFC 7662 §2.3).
var ErrInvalidClient = policy.E(policy.KindUnauthenticated, "invalid_client",
	"authenticate as the grant's holder: a DPoP proof of its key (DPoP: <proof>), with the grant as Authorization: DPoP <grant> or alone")

// authenticateCaller checks who calls introspection or revocation: a DPoP
// proof of a key, and, if the caller presents a grant as its access token
// (Authorization: DPoP <grant>, what OAuth libraries send), a proof bound
// to that grant (ath) by the grant's own key. Failures are invalid_client;
// a caller over its rate limit hears so.
func (v *Vault) authenticateCaller(auth, proof string, hc HTTPContext) (*policy.Proof, error) {
	if proof == "" {
		return nil, ErrInvalidClient
	}
	p, err := v.checkProof(proof, hc, auth)
	if err != nil {
		if policy.KindOf(err) == policy.KindUnauthenticated {
			return nil, ErrInvalidClient.WithReasons([]string{policy.CodeOf(err) + ": " + policy.MessageOf(err)}).WithCause(err)
		}
		return nil, err
	}
	if auth != "" {
		if g, err := v.verifyGrant(auth); err != nil || g.Confirmation.JKT != p.JKT {
			return nil, ErrInvalidClient.WithReasons([]string{"the grant in Authorization is not valid or not bound to the proof's key"})
		}
	}
	return p, nil
}

// ClaimsResult is the answer to GET /v1/claims: a statement signed by the
// vault, and the same answers in the clear for convenience.
type ClaimsResult struct {
	Statement string         `json:"statement"`
	Claims    map[string]any `json:"claims"`
	ExpiresIn int64          `json:"expires_in"`
}

// ClaimAnswer is one derived claim as the owner previews it.
type ClaimAnswer struct {
	Claim       string `json:"claim"`
	Collection  string `json:"collection"`
	Description string `json:"description"` // what it reveals, in words
	Answer      string `json:"answer"`      // what it would say now
}

// maxDerivationRecords bounds how many records one derivation reads.
const maxDerivationRecords = 10 * MaxPageSize

// collectionData returns the data of every record in a collection, up to
// maxDerivationRecords.
func (v *Vault) collectionData(ctx context.Context, collection string) ([]json.RawMessage, error) {
	var out []json.RawMessage
	cursor := ""
	for len(out) < maxDerivationRecords {
		p, err := v.ListRecords(ctx, collection, MaxPageSize, cursor)
		if err != nil {
			return nil, err
		}
		for _, r := range p.Records {
			out = append(out, r.Data)
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	return out, nil
}

// deriveAll computes the claims of details. A claim the records cannot
// answer is null: never a guess.
func (v *Vault) deriveAll(ctx context.Context, details []policy.AuthorizationDetail) (map[string]any, error) {
	out := map[string]any{}
	for _, d := range details {
		if len(d.Claims) == 0 {
			continue
		}
		data, err := v.collectionData(ctx, d.Collection)
		if err != nil {
			return nil, err
		}
		for _, c := range d.Claims {
			ans, err := policy.Derive(c, data, v.opts.Now())
			if err != nil {
				ans = nil
			}
			out[c] = ans
		}
	}
	return out, nil
}

// PreviewClaims says what each derived claim of a scope would reveal now,
// for the owner deciding on a request ("is at least 18 years old: yes").
func (v *Vault) PreviewClaims(ctx context.Context, details []policy.AuthorizationDetail) ([]ClaimAnswer, error) {
	answers, err := v.deriveAll(ctx, details)
	if err != nil {
		return nil, err
	}
	var out []ClaimAnswer
	for _, d := range details {
		for _, c := range d.Claims {
			a := "unknown (your records do not say)"
			if answers[c] != nil {
				a = policy.FormatAnswer(answers[c])
			}
			out = append(out, ClaimAnswer{Claim: c, Collection: d.Collection, Description: policy.Describe(c), Answer: a})
		}
	}
	return out, nil
}

// ReadClaims answers the derived claims a grant covers with a short-lived
// statement signed by the vault and bound to the organization. The values
// the answers come from never leave the vault.
func (v *Vault) ReadClaims(ctx context.Context, a Access) (ClaimsResult, error) {
	g, rel, err := v.authenticate(ctx, a, "")
	if err != nil {
		return ClaimsResult{}, err
	}
	claims := policy.ClaimsCovered(g.AuthorizationDetails)
	if len(claims) == 0 {
		return ClaimsResult{}, v.refuse(ctx, g, "", ErrDataNotFound)
	}
	answers, err := v.deriveAll(ctx, g.AuthorizationDetails)
	if err != nil {
		return ClaimsResult{}, err
	}
	now := v.now()
	st := policy.ClaimsStatement{
		Issuer: v.Issuer(), Subject: v.pairwiseSubject(rel), Audience: g.ClientID, ID: newID(),
		IssuedAt: now.Unix(), Expiry: now.Add(policy.ClaimsLifetime).Unix(), GrantID: g.ID, Claims: answers,
		Confirmation: policy.Confirmation{JKT: g.ClientID},
	}
	signed, err := v.signClaims(st)
	if err != nil {
		return ClaimsResult{}, policy.Internal("sign claims", err)
	}
	if _, err := v.commitClaims(ctx, g, claims); err != nil {
		return ClaimsResult{}, err
	}
	return ClaimsResult{Statement: signed, Claims: answers, ExpiresIn: int64(policy.ClaimsLifetime / time.Second)}, nil
}

// commitClaims is commitRead for derived claims.
func (v *Vault) commitClaims(ctx context.Context, g *policy.GrantClaims, claims []string) (int64, error) {
	return v.commitUse(ctx, g, AuditEntry{Event: EvClaimsRead, Actor: g.ClientID, Outcome: OutcomeAllowed, ClientID: g.ClientID,
		GrantID: g.ID, Fields: claims})
}
