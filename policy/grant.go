package policy

import (
	"crypto/ed25519"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// GrantClaims are the claims of a grant: an RFC 9068 JWT access token,
// sender-constrained by RFC 9449 (cnf.jkt).
type GrantClaims struct {
	Issuer               string                `json:"iss"`
	Subject              string                `json:"sub"` // pairwise: differs per organization
	Audience             string                `json:"aud"`
	ClientID             string                `json:"client_id"` // the organization's key thumbprint
	ID                   string                `json:"jti"`
	IssuedAt             int64                 `json:"iat"`
	NotBefore            int64                 `json:"nbf"`
	Expiry               int64                 `json:"exp"`
	AuthorizationDetails []AuthorizationDetail `json:"authorization_details"`
	Purpose              string                `json:"purpose"`
	TermsHash            string                `json:"terms_hash"`
	Confirmation         Confirmation          `json:"cnf"`
	// Agreement is the base64url SHA-256 of the IEEE 7012 agreement record
	// the grant was given under (the vault's countersignature), if any.
	Agreement string `json:"myterms_agreement,omitempty"`
}

// Confirmation binds a token to a key (RFC 7800, RFC 9449 §6).
type Confirmation struct {
	JKT string `json:"jkt"`
}

var (
	ErrGrantExpired     = E(KindUnauthenticated, "invalid_token", "the grant has expired")
	ErrGrantNotYetValid = E(KindUnauthenticated, "invalid_token", "the grant is not valid yet")
	ErrGrantIssuedLater = E(KindUnauthenticated, "invalid_token", "the grant was issued in the future")
	ErrGrantIssuer      = E(KindUnauthenticated, "invalid_token", "the grant was issued by someone else")
	ErrGrantAudience    = E(KindUnauthenticated, "invalid_token", "the grant is meant for someone else")
	ErrGrantClaims      = E(KindUnauthenticated, "invalid_token", "the grant lacks a required claim")
	ErrUnknownKey       = E(KindUnauthenticated, "invalid_token", "the grant names a key this vault does not have")
	ErrGrantRevoked     = E(KindUnauthenticated, "invalid_token", "the grant has been revoked")
	ErrWrongHolder      = E(KindUnauthenticated, "invalid_token", "the grant is bound to another key")
)

// SignGrant signs grant claims as an at+jwt with the vault's signer.
func SignGrant(s Signer, c GrantClaims) (string, error) {
	return sign(s, TypGrant, c)
}

// GrantCheck is what a grant is checked against.
type GrantCheck struct {
	Issuer   string
	Audience string
	Now      time.Time
	Skew     time.Duration
	// Key returns the vault's public key with this key id. Only keys the
	// vault itself holds can verify: nothing in the token chooses a key
	// beyond naming one of ours.
	Key func(kid string) (ed25519.PublicKey, bool)
	// Former, if set, says whether an issuer other than Issuer is one the
	// vault itself issued grants under before it moved; such a grant must
	// name it as its audience too.
	Former func(iss string) bool
}

// VerifyGrant checks a grant's form, signature and every time and identity
// claim, and rejects a grant that lacks any of them. Revocation and the
// holder's proof are checked by the caller.
func VerifyGrant(tok string, chk GrantCheck) (*GrantClaims, error) {
	payload, err := VerifyVaultSigned(tok, TypGrant, chk.Key)
	if err != nil {
		return nil, err
	}
	var c GrantClaims
	if json.Unmarshal(payload, &c) != nil {
		return nil, ErrGrantClaims
	}
	if c.Issuer == "" || c.Subject == "" || c.Audience == "" || c.ClientID == "" || c.ID == "" ||
		c.IssuedAt == 0 || c.NotBefore == 0 || c.Expiry == 0 || c.Confirmation.JKT == "" ||
		len(c.AuthorizationDetails) == 0 || c.TermsHash == "" {
		return nil, ErrGrantClaims
	}
	switch {
	case c.Issuer == chk.Issuer:
		if c.Audience != chk.Audience {
			return nil, ErrGrantAudience
		}
	case chk.Former != nil && chk.Former(c.Issuer):
		if c.Audience != c.Issuer {
			return nil, ErrGrantAudience
		}
	default:
		return nil, ErrGrantIssuer
	}
	if err := checkTimes(chk.Now, chk.Skew, c.IssuedAt, c.NotBefore, c.Expiry); err != nil {
		return nil, err
	}
	return &c, nil
}

// VerifyVaultSigned checks a JWS the vault signed (grant, checkpoint,
// notice) with one of the vault's own keys, named by kid, and returns the
// payload.
func VerifyVaultSigned(tok, typ string, key func(kid string) (ed25519.PublicKey, bool)) ([]byte, error) {
	p, err := parseCompact(tok, MaxGrantLen, VaultAlgs, typ, "kid")
	if err != nil {
		return nil, err
	}
	k, ok := key(p.header.KeyID)
	if p.header.KeyID == "" || !ok {
		return nil, ErrUnknownKey
	}
	payload, err := p.verifyWith(k)
	if err != nil {
		return nil, err
	}
	return payload, nil
}

// checkTimes applies the clock skew symmetrically: a grant is accepted from
// nbf-skew until exp+skew, and not if issued more than skew in the future.
func checkTimes(now time.Time, skew time.Duration, iat, nbf, exp int64) error {
	switch {
	case now.After(time.Unix(exp, 0).Add(skew)):
		return ErrGrantExpired
	case now.Before(time.Unix(nbf, 0).Add(-skew)):
		return ErrGrantNotYetValid
	case now.Before(time.Unix(iat, 0).Add(-skew)):
		return ErrGrantIssuedLater
	}
	return nil
}

// CheckGrantTimes re-checks the time claims of an already verified grant.
func CheckGrantTimes(c *GrantClaims, now time.Time, skew time.Duration) error {
	return checkTimes(now, skew, c.IssuedAt, c.NotBefore, c.Expiry)
}

// ExpiresAt is when the grant ends.
func (c *GrantClaims) ExpiresAt() time.Time { return time.Unix(c.Expiry, 0) }

// Scope says, in words, what a grant covers (for logs and listings).
func Scope(details []AuthorizationDetail) string {
	parts := make([]string, len(details))
	for i, d := range details {
		items := append(slices.Clone(d.Fields), d.Claims...)
		parts[i] = d.Collection + ":" + strings.Join(items, ",")
	}
	return strings.Join(parts, " ")
}

// TypClaims is the type of a signed statement of derived claims.
const TypClaims = "pdvault-claims+jwt"

// ClaimsStatement is the vault's signed answer to derived claims: the
// answers, never the values they were derived from, bound to the
// organization that asked.
type ClaimsStatement struct {
	Issuer       string         `json:"iss"`
	Subject      string         `json:"sub"` // pairwise
	Audience     string         `json:"aud"` // the organization's client_id
	ID           string         `json:"jti"`
	IssuedAt     int64          `json:"iat"`
	Expiry       int64          `json:"exp"`
	GrantID      string         `json:"grant_id"`
	Claims       map[string]any `json:"claims"`
	Confirmation Confirmation   `json:"cnf"`
}

// ClaimsLifetime is how long a statement of derived claims is valid: short,
// because the facts may change.
const ClaimsLifetime = 5 * time.Minute

// SignClaims signs a statement of derived claims.
func SignClaims(s Signer, c ClaimsStatement) (string, error) { return sign(s, TypClaims, c) }

// VerifyClaims checks a statement of derived claims for the organization
// clientID: the vault's signature, its times, and that it was issued to
// clientID. A statement presented by anyone else is refused.
func VerifyClaims(tok string, key func(kid string) (ed25519.PublicKey, bool), issuer, clientID string, now time.Time) (*ClaimsStatement, error) {
	payload, err := VerifyVaultSigned(tok, TypClaims, key)
	if err != nil {
		return nil, err
	}
	var c ClaimsStatement
	if json.Unmarshal(payload, &c) != nil || c.Issuer == "" || c.Audience == "" || c.IssuedAt == 0 || c.Expiry == 0 || c.Claims == nil {
		return nil, ErrGrantClaims
	}
	if c.Issuer != issuer {
		return nil, ErrGrantIssuer
	}
	if c.Audience != clientID || c.Confirmation.JKT != clientID {
		return nil, ErrWrongHolder
	}
	if err := checkTimes(now, ClockSkew, c.IssuedAt, c.IssuedAt, c.Expiry); err != nil {
		return nil, err
	}
	return &c, nil
}
