package vault

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/pdvault/pdvault/policy"
)

// A relationship is everything between the owner and one organization:
// its keys, its verified domain, its requests and grants, the reads done
// under them, the notices sent to it and the deletion receipts it sent
// back. Its id is the thumbprint of the organization's first key.

var (
	ErrRelationshipNotFound = policy.E(policy.KindNotFound, "not_found", "no such relationship")
	ErrNoRelationship       = policy.E(policy.KindForbidden, "unknown_organization", "this key has no relationship with the vault; send an access request first")
	ErrKeyInUse             = policy.E(policy.KindConflict, "key_in_use", "the new key already belongs to a relationship")
	ErrKeyLinkMismatch      = policy.E(policy.KindInvalid, "invalid_key_link", "the DPoP proof must come from the new key the statement names")
	ErrNoCallback           = policy.E(policy.KindConflict, "no_callback", "the organization gave no callback URL to notify")
	ErrBadLocation          = policy.E(policy.KindInvalid, "invalid_location", "the new location is the vault's new address: an https URL with no path, query or fragment, other than its current one")
	ErrVerificationFailed   = policy.E(policy.KindUnprocessable, "verification_failed", "the domain could not be verified")
	ErrNoChallenge          = policy.E(policy.KindConflict, "no_challenge", "there is no open domain challenge; start one first")
	ErrGrantActive          = policy.E(policy.KindConflict, "grant_active", "the grant has not ended; a deletion receipt is for an ended grant (release it with /v1/revoke)")
	ErrReceiptReplayed      = policy.E(policy.KindConflict, "replayed", "this receipt (jti) was already received")
	ErrNoCourier            = policy.E(policy.KindUnavailable, "temporarily_unavailable", "the vault cannot make outbound requests")
)

var relIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// touchRelationship finds or starts the relationship of the key that
// signed a request, inside the request's transaction.
func (v *Vault) touchRelationship(ctx context.Context, tx *sql.Tx, req *policy.AccessRequest, jwk []byte, now int64) (string, error) {
	relID, err := v.relationshipOf(ctx, tx, req.ClientID)
	if errors.Is(err, ErrNoRelationship) {
		relID = req.ClientID
		if err := v.st.insert(ctx, tx, tRelationships, relID, `INSERT INTO relationships (id, name, uri, first_seen, last_seen) VALUES (?, ?, ?, ?, ?)`,
			relID, req.ClientName, req.ClientURI, now, now); err != nil {
			return "", err
		}
		err = v.st.insert(ctx, tx, tRelKeys, req.ClientID, `INSERT INTO relationship_keys (client_id, relationship_id, jwk, added) VALUES (?, ?, ?, ?)`,
			req.ClientID, relID, string(jwk), now)
		return relID, err
	}
	if err != nil {
		return "", err
	}
	// Keep the latest name and URL; a verified domain stays verified only
	// while the organization keeps claiming it.
	err = v.st.update(ctx, tx, tRelationships, relID, `name = ?, uri = ?, last_seen = ?,
		domain = CASE WHEN domain = ? THEN domain END, verified = CASE WHEN domain = ? THEN verified END`,
		req.ClientName, req.ClientURI, now, hostOf(req.ClientURI), hostOf(req.ClientURI))
	return relID, err
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Host)
}

// relationshipOf returns the relationship a key belongs to, from its
// checked key row.
func (v *Vault) relationshipOf(ctx context.Context, q queryer, clientID string) (string, error) {
	k, err := v.st.row(ctx, q, tRelKeys, clientID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNoRelationship
	}
	if err != nil {
		return "", err
	}
	return k.str("relationship_id"), nil
}

// MaxKeysPerRelationship bounds the keys one organization can link: each
// is a row every relationship view reads.
const MaxKeysPerRelationship = 16

var ErrTooManyKeys = policy.E(policy.KindConflict, "too_many_keys", "this relationship already has the most keys it may have (16); keep using a linked key")

// relationshipKeys returns the checked key rows of a relationship, oldest
// first, and their client ids as SQL arguments.
func (v *Vault) relationshipKeys(ctx context.Context, q queryer, relID string) ([]RelationshipKey, []any, error) {
	rs, err := v.st.rows(ctx, q, tRelKeys, `relationship_id = ? ORDER BY added, rowid`, relID)
	if err != nil {
		return nil, nil, err
	}
	keys := make([]RelationshipKey, 0, len(rs))
	clients := make([]any, 0, len(rs))
	for _, r := range rs {
		keys = append(keys, RelationshipKey{ClientID: r.str("client_id"), Added: time.Unix(r.i64("added"), 0).UTC(), Rotated: !r.null("link")})
		clients = append(clients, r.str("client_id"))
	}
	return keys, clients, nil
}

// inList is "(?,?,...)" for n arguments; for none, a list nothing is in.
func inList(n int) string {
	if n == 0 {
		return "(NULL)"
	}
	return "(?" + strings.Repeat(",?", n-1) + ")"
}

// Relationship is the owner's view of one organization.
type Relationship struct {
	ID             string              `json:"id"`
	Name           string              `json:"name"`
	URI            string              `json:"uri"`
	FirstContact   time.Time           `json:"first_contact"`
	LastContact    time.Time           `json:"last_contact"`
	VerifiedDomain string              `json:"verified_domain,omitempty"`
	VerifiedAt     *time.Time          `json:"verified_at,omitempty"`
	Keys           []RelationshipKey   `json:"keys"`
	Requests       []Request           `json:"requests"`
	Grants         []RelationshipGrant `json:"grants"`
	Reads          int64               `json:"reads"`
	LastRead       *time.Time          `json:"last_read,omitempty"`
	Notices        []Notice            `json:"notices"`
	Receipts       []Receipt           `json:"receipts"`
	// Agreements are its IEEE 7012 agreement records, newest last; the
	// last one's response and agreement are what it is under now.
	Agreements     []Agreement `json:"agreements"`
	TermsHashes    []string    `json:"terms_hashes"` // every version it accepted, newest first
	OnCurrentTerms bool        `json:"on_current_terms"`
	Deletion       string      `json:"deletion"` // worst state over its grants
	ActiveGrants   int         `json:"active_grants"`
}

// CurrentAgreement is the newest IEEE 7012 agreement record of the
// relationship: what it is under now (nil: none).
func (r Relationship) CurrentAgreement() *Agreement {
	if len(r.Agreements) == 0 {
		return nil
	}
	return &r.Agreements[len(r.Agreements)-1]
}

// RelationshipKey is one key of an organization.
type RelationshipKey struct {
	ClientID string    `json:"client_id"`
	Added    time.Time `json:"added"`
	Rotated  bool      `json:"rotated_in"`
}

// RelationshipGrant is a grant with its deletion state.
type RelationshipGrant struct {
	Grant
	EndedBy  string     `json:"ended_by,omitempty"`
	Deletion string     `json:"deletion"`
	Deadline *time.Time `json:"deletion_deadline,omitempty"`
}

// Notice is a message the vault sends an organization.
type Notice struct {
	ID        string     `json:"id"`
	GrantID   string     `json:"grant_id,omitempty"`
	Event     string     `json:"event"`
	URL       string     `json:"url"`
	Status    string     `json:"status"` // pending, delivered, failed
	Attempts  int        `json:"attempts"`
	LastError string     `json:"last_error,omitempty"`
	Created   time.Time  `json:"created"`
	Delivered *time.Time `json:"delivered,omitempty"`
}

// Receipt is an organization's deletion receipt as stored.
type Receipt struct {
	ID        string    `json:"id"`
	GrantID   string    `json:"grant_id"`
	ClientID  string    `json:"client_id"`
	Deleted   []string  `json:"deleted"`
	DeletedAt time.Time `json:"deleted_at"`
	Statement string    `json:"statement,omitempty"`
	Received  time.Time `json:"received"`
	Complete  bool      `json:"complete"`
	Signed    string    `json:"signed_receipt"`
}

// deletionRank orders states from best to worst.
var deletionRank = map[string]int{"": 0, policy.DeletionReceived: 1, policy.DeletionNotDue: 2, policy.DeletionDue: 3, policy.DeletionOverdue: 4}

// RelationshipPage is a page of relationships, most recent contact first.
type RelationshipPage struct {
	Relationships []Relationship `json:"relationships"`
	Next          string         `json:"next_cursor,omitempty"`
}

// ListRelationships returns a page of relationships, most recent contact
// first.
func (v *Vault) ListRelationships(ctx context.Context, q PageQuery) (RelationshipPage, error) {
	tail, args, n, err := q.plan("1", nil, "last_seen", "id")
	if err != nil {
		return RelationshipPage{}, err
	}
	rs, err := v.st.rows(ctx, v.db.r, tRelationships, tail, args...)
	if err != nil {
		return RelationshipPage{}, storageError("list relationships", err)
	}
	p := RelationshipPage{Relationships: make([]Relationship, 0, len(rs))}
	size := 0
	for i, row := range rs {
		// A page ends at n relationships or once it has read pageBytes of
		// signed requests (a flood of padded ones), like request pages.
		if i == n || (i > 0 && size >= pageBytes) {
			p.Next = encodeKeyCursor(rs[i-1].i64("last_seen"), rs[i-1].str("id"))
			break
		}
		r, err := v.GetRelationship(ctx, row.str("id"))
		if err != nil {
			return RelationshipPage{}, err
		}
		for j := range r.Requests {
			size += len(r.Requests[j].Signed)
			r.Requests[j].Signed = "" // in GET of the one relationship or request
		}
		p.Relationships = append(p.Relationships, r)
	}
	return p, nil
}

// GetRelationship assembles one relationship from one read snapshot.
func (v *Vault) GetRelationship(ctx context.Context, id string) (Relationship, error) {
	if !relIDRE.MatchString(id) {
		return Relationship{}, ErrRelationshipNotFound
	}
	tx, err := v.db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Relationship{}, storageError("read relationship", err)
	}
	defer tx.Rollback()
	r, err := v.loadRelationship(ctx, tx, id)
	if err != nil {
		return Relationship{}, storageError("read relationship", err)
	}
	return r, nil
}

func (v *Vault) loadRelationship(ctx context.Context, tx *sql.Tx, id string) (Relationship, error) {
	var r Relationship
	rr, err := v.st.row(ctx, tx, tRelationships, id)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrRelationshipNotFound
	}
	if err != nil {
		return r, err
	}
	r.ID, r.Name, r.URI = rr.str("id"), rr.str("name"), rr.str("uri")
	r.FirstContact, r.LastContact = time.Unix(rr.i64("first_seen"), 0).UTC(), time.Unix(rr.i64("last_seen"), 0).UTC()
	if !rr.null("domain") && !rr.null("verified") {
		t := time.Unix(rr.i64("verified"), 0).UTC()
		r.VerifiedDomain, r.VerifiedAt = rr.str("domain"), &t
	}

	// Keys.
	keys, clients, err := v.relationshipKeys(ctx, tx, id)
	if err != nil {
		return r, err
	}
	r.Keys = keys
	in := inList(len(clients))

	// Requests, newest first.
	reqs, err := v.loadRequests(ctx, tx, `client_id IN `+in+` ORDER BY created DESC, rowid DESC`, clients...)
	if err != nil {
		return r, err
	}
	r.Requests = []Request{}
	seenTerms := map[string]bool{}
	now := v.opts.Now()
	for _, q := range reqs {
		r.Requests = append(r.Requests, q.Request)
		if !seenTerms[q.TermsHash] {
			seenTerms[q.TermsHash] = true
			r.TermsHashes = append(r.TermsHashes, q.TermsHash)
		}
	}

	r.Agreements = []Agreement{}
	ars, err := v.st.rows(ctx, tx, tAgreements, `client_id IN `+in+` ORDER BY created, rowid`, clients...)
	if err != nil {
		return r, err
	}
	for _, ar := range ars {
		a, err := agreementFrom(ar)
		if err != nil {
			return r, err
		}
		r.Agreements = append(r.Agreements, a)
	}

	// Receipts, then grants with their deletion state.
	r.Receipts = []Receipt{}
	received := map[string]bool{}
	// Receipts are accepted only from a key of the grant's relationship,
	// so the relationship's keys find all of its receipts.
	prs, err := v.st.rows(ctx, tx, tReceipts, `client_id IN `+in+` ORDER BY received, rowid`, clients...)
	if err != nil {
		return r, err
	}
	for _, pr := range prs {
		p := Receipt{ID: pr.str("id"), GrantID: pr.str("grant_id"), ClientID: pr.str("client_id"), Statement: pr.str("statement"),
			DeletedAt: time.Unix(pr.i64("deleted_at"), 0).UTC(), Received: time.Unix(pr.i64("received"), 0).UTC(),
			Complete: pr.i64("complete") != 0, Signed: pr.str("signed")}
		if err := json.Unmarshal(pr.bytes("deleted"), &p.Deleted); err != nil {
			return r, ErrTampered.WithCause(err)
		}
		r.Receipts = append(r.Receipts, p)
		if p.Complete {
			received[p.GrantID] = true
		}
	}

	r.Grants = []RelationshipGrant{}
	gs, err := v.loadGrants(ctx, tx, `client_id IN `+in+` ORDER BY issued DESC, id`, clients...)
	if err != nil {
		return r, err
	}
	for _, gr := range gs {
		g := RelationshipGrant{Grant: gr.Grant, EndedBy: gr.endedBy}
		retention := gr.retention
		var end time.Time
		switch g.Status {
		case "revoked":
			end = *g.Revoked
		case "expired":
			end = g.Expires
		default:
			r.ActiveGrants++
		}
		state, deadline := policy.DeletionState(end, time.Duration(retention)*time.Second, received[g.ID], now)
		g.Deletion = state
		if !deadline.IsZero() {
			d := deadline.UTC()
			g.Deadline = &d
		}
		if deletionRank[state] > deletionRank[r.Deletion] {
			r.Deletion = state
		}
		r.Grants = append(r.Grants, g)
		if g.TermsHash != "" && !seenTerms[g.TermsHash] {
			seenTerms[g.TermsHash] = true
			r.TermsHashes = append(r.TermsHashes, g.TermsHash)
		}
	}
	if r.Deletion == "" {
		r.Deletion = "none"
	}
	cur := v.CurrentTerms().Hash
	r.OnCurrentTerms = len(r.TermsHashes) > 0 && r.TermsHashes[0] == cur

	// Reads: counted as they commit (commit.go), never by scanning the log.
	switch st, err := v.st.row(ctx, tx, tRelStats, id); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return r, err
	default:
		r.Reads = st.i64("reads")
		t := time.Unix(st.i64("last_read"), 0).UTC()
		r.LastRead = &t
	}

	// Notices.
	r.Notices = []Notice{}
	nrs, err := v.st.rows(ctx, tx, tNotices, `relationship_id = ? ORDER BY created, rowid`, id)
	if err != nil {
		return r, err
	}
	for _, nr := range nrs {
		n := Notice{ID: nr.str("id"), GrantID: nr.str("grant_id"), Event: nr.str("event"), URL: nr.str("url"), Status: nr.str("status"),
			Attempts: int(nr.i64("attempts")), LastError: nr.str("last_error"), Created: time.Unix(nr.i64("created"), 0).UTC()}
		if !nr.null("delivered") {
			t := time.Unix(nr.i64("delivered"), 0).UTC()
			n.Delivered = &t
		}
		r.Notices = append(r.Notices, n)
	}
	return r, nil
}

// ReleaseGrant is RFC 7009 revocation by the organization itself: a grant
// it no longer needs ends now, and the deletion clock starts. For any token
// that is not an active grant (of the caller's key, if it authenticates)
// nothing happens, as RFC 7009 §2.2 says.
//
// Without a proof (RFC 7009 with client authentication "none") the grant
// itself is the credential: whoever holds it may give it up, which only
// takes access away. With a proof (and, optionally, the grant as
// Authorization: DPoP), the proof must be by the grant's key.
func (v *Vault) ReleaseGrant(ctx context.Context, token, auth, proof string, hc HTTPContext) error {
	g, err := v.verifyGrant(token)
	if proof != "" || auth != "" {
		p, perr := v.authenticateCaller(auth, proof, hc)
		if perr != nil {
			return perr
		}
		if err != nil || g.Confirmation.JKT != p.JKT {
			return nil
		}
		if err := v.consumeProof(p); err != nil {
			return err
		}
	} else if err != nil {
		return nil // RFC 7009 §2.2: an invalid token is not an error
	}
	return v.db.tx(ctx, func(tx *sql.Tx) error {
		row, err := v.loadGrant(ctx, tx, g.ID)
		if errors.Is(err, ErrGrantNotFound) {
			return nil
		}
		if err != nil || row.Revoked != nil {
			return err
		}
		if err := v.st.update(ctx, tx, tGrants, g.ID, `revoked = ?, ended_by = 'organization'`, v.now().Unix()); err != nil {
			return err
		}
		return v.appendAudit(ctx, tx, AuditEntry{Event: EvGrantReleased, Actor: g.ClientID, ClientID: g.ClientID, ClientName: row.ClientName,
			GrantID: g.ID, Scope: policy.Scope(g.AuthorizationDetails)})
	})
}

// ReceiptResult is the answer to a deletion receipt.
type ReceiptResult struct {
	ReceiptID string   `json:"receipt_id"`
	Complete  bool     `json:"complete"`
	Missing   []string `json:"missing,omitempty"` // granted collections the receipt does not name
}

// SubmitReceipt takes an organization's signed deletion receipt for an
// ended grant of its relationship.
func (v *Vault) SubmitReceipt(ctx context.Context, signed string) (ReceiptResult, error) {
	rc, err := policy.ParseReceipt(signed, v.Issuer(), v.opts.Now())
	if err != nil {
		return ReceiptResult{}, err
	}
	var out ReceiptResult
	err = v.db.tx(ctx, func(tx *sql.Tx) error {
		g, err := v.loadGrant(ctx, tx, rc.GrantID)
		if err != nil {
			return err
		}
		grantClient, name := g.ClientID, g.ClientName
		// The receipt must come from a key of the grant's relationship;
		// anyone else's grant looks like no grant at all.
		gRel, err := v.relationshipOf(ctx, tx, grantClient)
		if err != nil {
			return err
		}
		rRel, err := v.relationshipOf(ctx, tx, rc.ClientID)
		if isTampered(err) {
			return err
		}
		if err != nil || rRel != gRel {
			return ErrGrantNotFound
		}
		now := v.now().Unix()
		if g.Revoked == nil && now < g.Expires.Unix() {
			return ErrGrantActive
		}
		// Receipts add up: what earlier receipts for this grant named
		// counts too. A stored list that does not decode stops here: it
		// must never make a receipt look complete.
		covered := slices.Clone(rc.Deleted)
		prev, err := v.st.rows(ctx, tx, tReceipts, `grant_id = ?`, rc.GrantID)
		if err != nil {
			return err
		}
		for _, p := range prev {
			var names []string
			if err := json.Unmarshal(p.bytes("deleted"), &names); err != nil {
				return ErrTampered.WithCause(err)
			}
			covered = append(covered, names...)
		}
		out.Missing = nil
		for _, d := range g.Details {
			if !slices.Contains(covered, d.Collection) {
				out.Missing = append(out.Missing, d.Collection)
			}
		}
		out.Complete = len(out.Missing) == 0
		out.ReceiptID = newID()
		deleted, _ := json.Marshal(rc.Deleted)
		err = v.st.insert(ctx, tx, tReceipts, out.ReceiptID, `INSERT INTO receipts (id, grant_id, client_id, jti, signed, deleted, deleted_at, statement, received, complete)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, out.ReceiptID, rc.GrantID, rc.ClientID, rc.ID, signed, string(deleted), rc.DeletedAt, rc.Statement, now, out.Complete)
		if isUniqueViolation(err) {
			return ErrReceiptReplayed
		}
		if err != nil {
			return err
		}
		reason := "complete"
		if !out.Complete {
			reason = "partial: missing " + strings.Join(out.Missing, ", ")
		}
		return v.appendAudit(ctx, tx, AuditEntry{Event: EvReceiptReceived, Actor: rc.ClientID, ClientID: rc.ClientID, ClientName: name,
			GrantID: rc.GrantID, Reason: reason})
	})
	if err != nil {
		return ReceiptResult{}, err
	}
	return out, nil
}

// LinkKey adds an organization's new key to its relationship. statement
// is signed by a key already in the relationship and names the new key;
// the DPoP proof shows the caller holds the new key.
func (v *Vault) LinkKey(ctx context.Context, statement, proof string, hc HTTPContext) (RelationshipKey, error) {
	kl, err := policy.ParseKeyLink(statement, v.Issuer(), v.opts.Now())
	if err != nil {
		return RelationshipKey{}, err
	}
	p, err := v.checkProof(proof, hc, "")
	if err != nil {
		return RelationshipKey{}, err
	}
	if p.JKT != kl.NewKey {
		return RelationshipKey{}, ErrKeyLinkMismatch
	}
	jwk, err := p.Key.MarshalJSON()
	if err != nil {
		return RelationshipKey{}, policy.Internal("encode jwk", err)
	}
	now := v.now()
	err = v.db.tx(ctx, func(tx *sql.Tx) error {
		rel, err := v.relationshipOf(ctx, tx, kl.OldClientID)
		if err != nil {
			return err
		}
		if err := v.consumeProof(p); err != nil {
			return err
		}
		switch _, err := v.relationshipOf(ctx, tx, kl.NewKey); {
		case err == nil:
			return ErrKeyInUse
		case !errors.Is(err, ErrNoRelationship):
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM relationship_keys WHERE relationship_id = ?`, rel).Scan(&n); err != nil {
			return err
		}
		if n >= MaxKeysPerRelationship {
			return ErrTooManyKeys
		}
		if err := v.st.insert(ctx, tx, tRelKeys, kl.NewKey, `INSERT INTO relationship_keys (client_id, relationship_id, jwk, added, link) VALUES (?, ?, ?, ?, ?)`,
			kl.NewKey, rel, string(jwk), now.Unix(), statement); err != nil {
			return err
		}
		return v.appendAudit(ctx, tx, AuditEntry{Event: EvKeyLinked, Actor: kl.OldClientID, ClientID: kl.NewKey,
			Reason: "new key linked by " + kl.OldClientID})
	})
	if err != nil {
		return RelationshipKey{}, err
	}
	return RelationshipKey{ClientID: kl.NewKey, Added: now, Rotated: true}, nil
}

// Challenge is an open domain-verification challenge.
type Challenge struct {
	Domain    string `json:"domain"`
	Challenge string `json:"challenge"`
	URL       string `json:"url"` // where to publish it
	ExpiresIn int64  `json:"expires_in"`
}

const (
	challengeLifetime = 24 * time.Hour
	challengePath     = "/.well-known/pdvault-challenge"
	maxChallengeBody  = 4096
)

// challengeURL is where the organization publishes the challenge: https,
// or plain http for a loopback host when the owner allowed it (tests).
func (v *Vault) challengeURL(domain string) string {
	scheme := "https"
	if v.opts.AllowLoopbackHTTP && policy.CheckOutboundURL("http://"+domain+"/", true) == nil && policy.CheckOutboundURL("https://"+domain+"/", false) != nil {
		scheme = "http"
	}
	return scheme + "://" + domain + challengePath
}

// StartVerification opens a challenge for the domain the organization
// claims (the host of its client_uri). The caller authenticates with a
// DPoP proof from one of its keys.
func (v *Vault) StartVerification(ctx context.Context, proof string, hc HTTPContext) (Challenge, error) {
	p, err := v.checkProof(proof, hc, "")
	if err != nil {
		return Challenge{}, err
	}
	var ch Challenge
	err = v.db.tx(ctx, func(tx *sql.Tx) error {
		rel, err := v.relationshipOf(ctx, tx, p.JKT)
		if err != nil {
			return err
		}
		if err := v.consumeProof(p); err != nil {
			return err
		}
		rr, err := v.st.row(ctx, tx, tRelationships, rel)
		if err != nil {
			return err
		}
		ch.Domain = hostOf(rr.str("uri"))
		ch.Challenge = "pdvault-verify=" + newID()
		ch.URL = v.challengeURL(ch.Domain)
		ch.ExpiresIn = int64(challengeLifetime / time.Second)
		return v.st.update(ctx, tx, tRelationships, rel, `challenge = ?, challenge_expires = ?`,
			ch.Challenge, v.now().Add(challengeLifetime).Unix())
	})
	return ch, err
}

// CheckVerificationByProof runs the check for the organization holding
// the proof's key.
func (v *Vault) CheckVerificationByProof(ctx context.Context, proof string, hc HTTPContext) (Relationship, error) {
	p, err := v.checkProof(proof, hc, "")
	if err != nil {
		return Relationship{}, err
	}
	rel, err := v.relationshipOf(ctx, v.db.r, p.JKT)
	if err != nil {
		return Relationship{}, err
	}
	if err := v.consumeProof(p); err != nil {
		return Relationship{}, err
	}
	return v.CheckVerification(ctx, rel)
}

// CheckVerification fetches the challenge from the claimed domain and, if
// it is there, marks the domain verified. The fetch goes only to that host,
// refuses non-public addresses (unless loopback is allowed), follows no
// redirect to another host, times out, and reads at most 4 KiB.
func (v *Vault) CheckVerification(ctx context.Context, relID string) (Relationship, error) {
	if !relIDRE.MatchString(relID) {
		return Relationship{}, ErrRelationshipNotFound
	}
	rr, err := v.st.row(ctx, v.db.r, tRelationships, relID)
	if errors.Is(err, sql.ErrNoRows) {
		return Relationship{}, ErrRelationshipNotFound
	}
	if err != nil {
		return Relationship{}, storageError("read relationship", err)
	}
	challenge := rr.str("challenge")
	if rr.null("challenge") || v.opts.Now().Unix() > rr.i64("challenge_expires") {
		return Relationship{}, ErrNoChallenge
	}
	domain := hostOf(rr.str("uri"))
	failure := func(why string) (Relationship, error) {
		e := ErrVerificationFailed.WithDetail(why)
		aerr := v.db.tx(ctx, func(tx *sql.Tx) error {
			return v.appendAudit(ctx, tx, AuditEntry{Event: EvDomainVerification, Actor: "vault", Outcome: OutcomeDenied, ClientID: relID, Reason: domain + ": " + why})
		})
		if aerr != nil {
			return Relationship{}, aerr
		}
		return Relationship{}, e
	}
	u := v.challengeURL(domain)
	if err := policy.CheckOutboundURL(u, v.opts.AllowLoopbackHTTP); err != nil {
		return failure("the claimed domain is not a public https host")
	}
	if v.opts.Courier == nil {
		return Relationship{}, ErrNoCourier
	}
	fctx, cancel := context.WithTimeout(ctx, v.opts.OutboundTimeout)
	defer cancel()
	body, err := v.opts.Courier.Get(fctx, u, maxChallengeBody)
	if err != nil {
		return failure(outboundProblem(err))
	}
	if !containsLine(body, challenge) {
		return failure("the challenge was not found at " + u)
	}
	err = v.db.tx(ctx, func(tx *sql.Tx) error {
		if err := v.st.update(ctx, tx, tRelationships, relID, `domain = ?, verified = ?, challenge = NULL, challenge_expires = NULL`,
			domain, v.now().Unix()); err != nil {
			return err
		}
		return v.appendAudit(ctx, tx, AuditEntry{Event: EvDomainVerification, Actor: "vault", Outcome: OutcomeAllowed, ClientID: relID, Reason: "verified: " + domain})
	})
	if err != nil {
		return Relationship{}, err
	}
	return v.GetRelationship(ctx, relID)
}

func containsLine(body []byte, want string) bool {
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == want {
			return true
		}
	}
	return false
}

// AskReaccept sends the organization a notice that the terms changed, so
// it can send a new request under the current terms.
func (v *Vault) AskReaccept(ctx context.Context, relID string) (Notice, error) {
	if !relIDRE.MatchString(relID) {
		return Notice{}, ErrRelationshipNotFound
	}
	var n Notice
	err := v.db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := v.st.row(ctx, tx, tRelationships, relID); errors.Is(err, sql.ErrNoRows) {
			return ErrRelationshipNotFound
		} else if err != nil {
			return err
		}
		clientID, callback, err := v.latestCallback(ctx, tx, relID)
		if err != nil {
			return err
		}
		if callback == "" {
			return ErrNoCallback
		}
		n, err = v.queueNotice(ctx, tx, relID, clientID, callback, policy.NoticeClaims{Event: policy.NoticeTermsChanged, TermsHash: v.CurrentTerms().Hash})
		if err != nil {
			return err
		}
		return v.appendAudit(ctx, tx, AuditEntry{Event: EvReacceptAsked, Actor: "owner", ClientID: clientID, Reason: "terms " + v.CurrentTerms().Hash})
	})
	return n, err
}

// latestCallback is the callback of the relationship's latest request
// that gave one, and the key that asked; "" when none did.
func (v *Vault) latestCallback(ctx context.Context, tx *sql.Tx, relID string) (clientID, callback string, err error) {
	_, clients, err := v.relationshipKeys(ctx, tx, relID)
	if err != nil {
		return "", "", err
	}
	reqs, err := v.loadRequests(ctx, tx, `client_id IN `+inList(len(clients))+` AND callback_uri != '' ORDER BY created DESC LIMIT 1`, clients...)
	if err != nil || len(reqs) == 0 {
		return "", "", err
	}
	return reqs[0].ClientID, reqs[0].CallbackURI, nil
}

// MoveResult is what AnnounceMove did.
type MoveResult struct {
	Location   string   `json:"location"`
	Notices    []Notice `json:"notices"`          // one per organization with a callback
	NoCallback []string `json:"without_callback"` // relationships with no callback to notify
}

// AnnounceMove tells every organization the vault has a relationship with
// that it now lives at location (its owner moved it to another server): a
// vault.moved notice, signed with the vault's key like every notice,
// queued to each organization's latest callback. The vault's export
// carries its signing keys, so the vault at location publishes the key
// that signed the notice: an organization can check that the new address
// speaks for the same vault before it asks there.
func (v *Vault) AnnounceMove(ctx context.Context, location string) (MoveResult, error) {
	location = strings.TrimSuffix(location, "/")
	if !policy.ValidLocation(location) || location == strings.TrimSuffix(v.Issuer(), "/") {
		return MoveResult{}, ErrBadLocation
	}
	var res MoveResult
	err := v.db.tx(ctx, func(tx *sql.Tx) error {
		var err error
		res, err = v.noticeMove(ctx, tx, location)
		if err != nil {
			return err
		}
		return v.appendAudit(ctx, tx, AuditEntry{Event: EvVaultMoved, Actor: "owner", Outcome: OutcomeAllowed,
			Reason: fmt.Sprintf("moved to %s; %d organizations notified, %d without a callback", location, len(res.Notices), len(res.NoCallback))})
	})
	if err != nil {
		return MoveResult{}, err
	}
	v.wakeNotices()
	return res, nil
}

// noticeMove queues a vault.moved notice naming location to every
// organization with a callback, in tx; the caller audits and wakes the
// courier.
func (v *Vault) noticeMove(ctx context.Context, tx *sql.Tx, location string) (MoveResult, error) {
	res := MoveResult{Location: location, Notices: []Notice{}, NoCallback: []string{}}
	rows, err := tx.QueryContext(ctx, `SELECT id FROM relationships ORDER BY first_seen`)
	if err != nil {
		return res, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return res, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return res, err
	}
	for _, relID := range ids {
		clientID, callback, err := v.latestCallback(ctx, tx, relID)
		if err != nil {
			return res, err
		}
		if callback == "" {
			res.NoCallback = append(res.NoCallback, relID)
			continue
		}
		n, err := v.queueNotice(ctx, tx, relID, clientID, callback, policy.NoticeClaims{Event: policy.NoticeVaultMoved, Location: location})
		if err != nil {
			return res, err
		}
		res.Notices = append(res.Notices, n)
	}
	return res, nil
}
