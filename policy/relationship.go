package policy

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"time"
)

// The end of a relationship: the vault's signed notices to an
// organization, the organization's signed deletion receipts, and the
// statement an organization signs to link a new key to its relationship.

const (
	TypNotice  = "pdvault-notice+jwt"
	TypReceipt = "pdvault-receipt+jwt"
	TypKeyLink = "pdvault-key-link+jwt"
)

// Notice events.
const (
	NoticeGrantRevoked = "grant.revoked"
	NoticeTermsChanged = "terms.changed"
	// NoticeVaultMoved: the vault now lives at Location (its owner moved
	// it to another server); the organization asks there from now on.
	NoticeVaultMoved = "vault.moved"
)

// NoticeClaims are what the vault tells an organization at its callback.
type NoticeClaims struct {
	Issuer   string `json:"iss"`
	Audience string `json:"aud"` // the organization's client_id
	Subject  string `json:"sub"` // pairwise
	ID       string `json:"jti"`
	IssuedAt int64  `json:"iat"`
	Event    string `json:"event"`
	GrantID  string `json:"grant_id,omitempty"`
	// DeletionDeadline is when the organization's deletion receipt is due.
	DeletionDeadline int64  `json:"deletion_deadline,omitempty"`
	TermsHash        string `json:"terms_hash,omitempty"`
	// Location is the vault's new issuer URL (vault.moved).
	Location string `json:"location,omitempty"`
	// AuditTreeHead is a recent signed head of the vault's audit log (a
	// C2SP checkpoint), for the organization to keep as a witness.
	AuditTreeHead string `json:"audit_tree_head,omitempty"`
}

// SignNotice signs a notice with the vault's key.
func SignNotice(s Signer, c NoticeClaims) (string, error) { return sign(s, TypNotice, c) }

// VerifyNotice checks a notice with the vault's public keys (for
// organizations: pdvault-org and api/client use it): the signature, the
// type, every claim present, and that it comes from issuer and is meant for
// clientID.
func VerifyNotice(tok string, key func(kid string) (ed25519.PublicKey, bool), issuer, clientID string) (*NoticeClaims, error) {
	payload, err := VerifyVaultSigned(tok, TypNotice, key)
	if err != nil {
		return nil, err
	}
	var c NoticeClaims
	if json.Unmarshal(payload, &c) != nil || c.Event == "" || c.ID == "" || c.IssuedAt == 0 || c.Issuer == "" || c.Audience == "" || c.Subject == "" ||
		(c.Event == NoticeVaultMoved && !ValidLocation(c.Location)) {
		return nil, ErrGrantClaims
	}
	if c.Issuer != issuer {
		return nil, ErrGrantIssuer
	}
	if c.Audience != clientID {
		return nil, ErrGrantAudience
	}
	return &c, nil
}

// ReceiptClaims are an organization's statement that it deleted the data
// of a grant.
type ReceiptClaims struct {
	Audience  string   `json:"aud,omitempty"`
	GrantID   string   `json:"grant_id"`
	Deleted   []string `json:"deleted"`    // the collections whose data was deleted
	DeletedAt int64    `json:"deleted_at"` // when
	Statement string   `json:"statement,omitempty"`
	IssuedAt  int64    `json:"iat"`
	ID        string   `json:"jti"`
}

// Receipt is a verified receipt and the key that signed it.
type Receipt struct {
	ReceiptClaims
	ClientID string
}

var ErrInvalidReceipt = E(KindInvalid, "invalid_receipt", "the deletion receipt is not valid")

// MaxReceiptLen bounds a receipt.
const MaxReceiptLen = 16 << 10

// ParseReceipt verifies a deletion receipt's signature (with the key in its
// header), type, freshness, audience and shape.
func ParseReceipt(tok, issuer string, now time.Time) (*Receipt, error) {
	var c ReceiptClaims
	_, jkt, err := parseOrgSigned(tok, TypReceipt, MaxReceiptLen, &c, ErrInvalidReceipt)
	if err != nil {
		return nil, err
	}
	if err := checkFreshness(now, c.IssuedAt, 0, nonEmpty(c.Audience), issuer, ErrInvalidReceipt); err != nil {
		return nil, err
	}
	var r []string
	if c.ID == "" || len(c.ID) > 128 {
		r = append(r, "jti: required, at most 128 characters")
	}
	if !idRE.MatchString(c.GrantID) {
		r = append(r, "grant_id: required, the grant's jti")
	}
	if len(c.Deleted) == 0 || len(c.Deleted) > maxDetails {
		r = append(r, "deleted: list the collections whose data was deleted")
	}
	for _, d := range c.Deleted {
		if ValidateCollection(d) != nil {
			r = append(r, fmt.Sprintf("deleted: %s is not a collection name", quoteShort(d)))
		}
	}
	if c.DeletedAt == 0 || time.Unix(c.DeletedAt, 0).After(now.Add(ClockSkew)) {
		r = append(r, "deleted_at: required, not in the future")
	}
	if len(c.Statement) > 2000 {
		r = append(r, "statement: at most 2000 characters")
	}
	if len(r) > 0 {
		return nil, ErrInvalidReceipt.WithReasons(r)
	}
	return &Receipt{ReceiptClaims: c, ClientID: jkt}, nil
}

var idRE = regexp.MustCompile(`^[a-z2-7]{26}$`)

// KeyLinkClaims are signed by an organization's current key to name its
// next one. The new key proves possession separately (a DPoP proof).
type KeyLinkClaims struct {
	Audience string `json:"aud,omitempty"`
	NewKey   string `json:"new_jkt"`
	IssuedAt int64  `json:"iat"`
	ID       string `json:"jti"`
}

// KeyLink is a verified link statement and the key that signed it.
type KeyLink struct {
	KeyLinkClaims
	OldClientID string
}

var ErrInvalidKeyLink = E(KindInvalid, "invalid_key_link", "the key link statement is not valid")

// ParseKeyLink verifies a key link statement.
func ParseKeyLink(tok, issuer string, now time.Time) (*KeyLink, error) {
	var c KeyLinkClaims
	_, jkt, err := parseOrgSigned(tok, TypKeyLink, MaxReceiptLen, &c, ErrInvalidKeyLink)
	if err != nil {
		return nil, err
	}
	if err := checkFreshness(now, c.IssuedAt, 0, nonEmpty(c.Audience), issuer, ErrInvalidKeyLink); err != nil {
		return nil, err
	}
	if c.ID == "" || len(c.NewKey) != 43 || c.NewKey == jkt {
		return nil, ErrInvalidKeyLink.WithReasons([]string{"jti and new_jkt (the new key's thumbprint, not the old one's) are required"})
	}
	return &KeyLink{KeyLinkClaims: c, OldClientID: jkt}, nil
}

// Deletion states of a grant.
const (
	DeletionNotDue   = "not_due"  // the grant is still active
	DeletionDue      = "due"      // ended; receipt not yet received, deadline ahead
	DeletionOverdue  = "overdue"  // ended; no receipt and the deadline passed
	DeletionReceived = "received" // a receipt covering the grant arrived
)

// DeletionState says where a grant stands on deletion. end is zero while
// the grant is active.
func DeletionState(end time.Time, retention time.Duration, receipt bool, now time.Time) (state string, deadline time.Time) {
	if receipt {
		if end.IsZero() {
			return DeletionReceived, time.Time{}
		}
		return DeletionReceived, end.Add(retention)
	}
	if end.IsZero() {
		return DeletionNotDue, time.Time{}
	}
	deadline = end.Add(retention)
	if now.After(deadline) {
		return DeletionOverdue, deadline
	}
	return DeletionDue, deadline
}

// ValidLocation checks a vault's new address for a vault.moved notice: an
// absolute https URL (http only for loopback), no query or fragment, no
// path beyond "/" — an issuer.
func ValidLocation(s string) bool {
	if !validURL(s, false) {
		return false
	}
	u, _ := url.Parse(s)
	return u.Path == "" || u.Path == "/"
}
