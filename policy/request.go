package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// RequestClaims are the claims of an organization's signed access request
// (an RFC 9101 request object carrying RFC 9396 authorization_details).
// client_name and client_uri are the RFC 7591 names.
type RequestClaims struct {
	Issuer               string                `json:"iss,omitempty"` // if present, the key thumbprint
	Audience             string                `json:"aud,omitempty"` // if present, the vault's issuer
	ClientName           string                `json:"client_name"`
	ClientURI            string                `json:"client_uri"`
	Purpose              string                `json:"purpose"`
	PurposeText          string                `json:"purpose_text,omitempty"`
	AuthorizationDetails []AuthorizationDetail `json:"authorization_details"`
	Duration             int64                 `json:"duration"`            // seconds
	Retention            *int64                `json:"retention,omitempty"` // seconds kept after the end; default: the terms' maximum
	ThirdPartySharing    bool                  `json:"third_party_sharing,omitempty"`
	TermsHash            string                `json:"terms_hash"`
	CallbackURI          string                `json:"callback_uri,omitempty"`
	IssuedAt             int64                 `json:"iat"`
	Expiry               int64                 `json:"exp,omitempty"`
	ID                   string                `json:"jti"`
	// Registered claims standard libraries add (RFC 9101 §4, RFC 7519 §4):
	// checked when present.
	ClientIDClaim string `json:"client_id,omitempty"` // must be the key's thumbprint
	Subject       string `json:"sub,omitempty"`       // must be the key's thumbprint
	NotBefore     int64  `json:"nbf,omitempty"`
	// MyTerms is the answer to the owner's proffered IEEE 7012 agreements.
	MyTerms *MyTermsAnswer `json:"myterms,omitempty"`

	audiences []string // aud as sent: a string or an array (RFC 7519 §4.1.3)
}

// UnmarshalJSON reads the claims as JOSE libraries write them: aud as a
// string or an array, and duration, retention and third_party_sharing as
// JSON values or, as request-object (JAR) libraries send every parameter,
// as strings. Unknown claims are still refused.
func (c *RequestClaims) UnmarshalJSON(b []byte) error {
	type plain RequestClaims
	var w struct {
		plain
		Audience          json.RawMessage `json:"aud,omitempty"`
		Duration          json.RawMessage `json:"duration"`
		Retention         json.RawMessage `json:"retention,omitempty"`
		ThirdPartySharing json.RawMessage `json:"third_party_sharing,omitempty"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return err
	}
	*c = RequestClaims(w.plain)
	if len(w.Audience) > 0 {
		var one string
		if json.Unmarshal(w.Audience, &one) == nil {
			c.Audience, c.audiences = one, []string{one}
		} else if json.Unmarshal(w.Audience, &c.audiences) != nil || len(c.audiences) == 0 || len(c.audiences) > 10 {
			return fmt.Errorf("aud: a string or an array of 1 to 10 strings")
		} else {
			c.Audience = c.audiences[0]
		}
	}
	var err error
	if c.Duration, err = flexInt(w.Duration, "duration"); err != nil {
		return err
	}
	if len(w.Retention) > 0 && string(w.Retention) != "null" {
		n, err := flexInt(w.Retention, "retention")
		if err != nil {
			return err
		}
		c.Retention = &n
	}
	if len(w.ThirdPartySharing) > 0 {
		var s string
		switch {
		case json.Unmarshal(w.ThirdPartySharing, &c.ThirdPartySharing) == nil:
		case json.Unmarshal(w.ThirdPartySharing, &s) == nil && (s == "true" || s == "false"):
			c.ThirdPartySharing = s == "true"
		default:
			return fmt.Errorf("third_party_sharing: true or false")
		}
	}
	return nil
}

// flexInt reads an integer written as a JSON number or a decimal string.
func flexInt(raw json.RawMessage, name string) (int64, error) {
	if len(raw) == 0 {
		return 0, nil
	}
	var n int64
	if json.Unmarshal(raw, &n) == nil {
		return n, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil && len(s) <= 18 {
		if v, err := strconv.ParseInt(s, 10, 64); err == nil {
			return v, nil
		}
	}
	return 0, fmt.Errorf("%s: a whole number of seconds", name)
}

// audiences returns aud as a list.
func (c RequestClaims) audienceList() []string {
	if len(c.audiences) > 0 {
		return c.audiences
	}
	if c.Audience != "" {
		return []string{c.Audience}
	}
	return nil
}

// AccessRequest is a verified request: its claims, the organization's key
// and the thumbprint that identifies the organization from now on.
type AccessRequest struct {
	RequestClaims
	ClientID string           // RFC 7638 thumbprint of Key
	Key      *jose.JSONWebKey // the organization's public key
}

// Request freshness: a request object is accepted up to this long after
// its iat (or until its exp, if sooner), and not if dated in the future
// beyond the clock skew.
const (
	RequestMaxAge = 10 * time.Minute
	ClockSkew     = 60 * time.Second
)

var (
	ErrInvalidRequestObject = E(KindInvalid, "invalid_request_object", "the request object is not valid")
	ErrRequestExpired       = E(KindInvalid, "stale", "the signed statement is too old or expired; sign a fresh one")
	ErrRequestFuture        = E(KindInvalid, "stale", "the signed statement is dated in the future")
	ErrRequestAudience      = E(KindInvalid, "wrong_audience", "the signed statement is meant for another vault (aud)")
	ErrTermsViolation       = E(KindUnprocessable, "terms_violation", "the request does not comply with the owner's terms")
	// ErrInvalidAuthorizationDetails is RFC 9396 §5's error for a detail of
	// a type the vault does not know.
	ErrInvalidAuthorizationDetails = E(KindInvalid, "invalid_authorization_details", "authorization_details has an entry of a type this vault does not know; the type is "+DetailType)
)

// ParseRequest verifies a signed access request: the signature with the
// key embedded in its header (Ed25519 or P-256), its type, freshness,
// audience and the shape of every claim. It does not judge the request
// against the terms: that is CheckTerms.
func ParseRequest(tok string, issuer string, now time.Time) (*AccessRequest, error) {
	var c RequestClaims
	key, jkt, err := parseOrgSigned(tok, TypRequest, MaxRequestLen, &c, ErrInvalidRequestObject)
	if err != nil {
		return nil, err
	}
	if err := checkFreshness(now, c.IssuedAt, c.Expiry, c.audienceList(), issuer, ErrInvalidRequestObject); err != nil {
		return nil, err
	}
	for i, d := range c.AuthorizationDetails {
		if d.Type != DetailType {
			return nil, ErrInvalidAuthorizationDetails.WithReasons([]string{fmt.Sprintf("authorization_details[%d]: type %s", i, quoteShort(d.Type))})
		}
	}
	if c.NotBefore != 0 && time.Unix(c.NotBefore, 0).After(now.Add(ClockSkew)) {
		return nil, ErrInvalidRequestObject.WithReasons([]string{"nbf: the request is not valid yet"}).WithCause(ErrRequestFuture)
	}
	if r := c.problems(jkt); len(r) > 0 {
		return nil, ErrInvalidRequestObject.WithReasons(r)
	}
	return &AccessRequest{RequestClaims: c, ClientID: jkt, Key: key}, nil
}

// parseOrgSigned verifies a JWS an organization signed with the key in its
// header, and decodes its claims strictly into claims. Failures are
// restated as kind, with the precise cause kept for errors.Is.
func parseOrgSigned(tok, typ string, maxLen int, claims any, kind *Error) (*jose.JSONWebKey, string, error) {
	// kid may travel with the jwk (libraries add it); the jwk decides.
	p, perr := parseCompact(tok, maxLen, OrgAlgs, typ, "jwk", "kid")
	if perr != nil {
		return nil, "", kind.WithReasons([]string{perr.Msg}).WithCause(perr)
	}
	key, jkt, perr := embeddedKey(p)
	if perr != nil {
		return nil, "", kind.WithReasons([]string{perr.Msg}).WithCause(perr)
	}
	payload, perr := p.verifyWith(key)
	if perr != nil {
		return nil, "", kind.WithReasons([]string{perr.Msg}).WithCause(perr)
	}
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(claims); err != nil {
		return nil, "", kind.WithReasons([]string{jsonProblem(err)})
	}
	// One JSON object and nothing after it: a signer that appended a
	// second value must not have it silently ignored.
	if _, err := dec.Token(); err != io.EOF {
		return nil, "", kind.WithReasons([]string{"unexpected data after the JSON object of the payload"})
	}
	return key, jkt, nil
}

// checkFreshness applies the rules every organization-signed statement
// follows: iat required, not in the future, at most RequestMaxAge old, exp
// (if any) not passed, aud (if any) this vault.
func checkFreshness(now time.Time, iat, exp int64, aud []string, issuer string, kind *Error) error {
	if iat == 0 {
		return kind.WithReasons([]string{"iat: required"})
	}
	fail := func(why *Error) error { return kind.WithReasons([]string{why.Msg}).WithCause(why) }
	t := time.Unix(iat, 0)
	if t.After(now.Add(ClockSkew)) {
		return fail(ErrRequestFuture)
	}
	if now.Sub(t) > RequestMaxAge+ClockSkew || (exp != 0 && now.After(time.Unix(exp, 0).Add(ClockSkew))) {
		return fail(ErrRequestExpired)
	}
	if len(aud) > 0 && !slices.Contains(aud, issuer) {
		return fail(ErrRequestAudience)
	}
	return nil
}

// ReservedJTIPrefix starts the jti of a request the vault makes from an
// accepted offer; an organization's own request may not use it, so the
// two can never collide.
const ReservedJTIPrefix = "offer:"

func (c RequestClaims) problems(jkt string) []string {
	var r []string
	if c.ID == "" || len(c.ID) > 128 {
		r = append(r, "jti: required, at most 128 characters")
	}
	if strings.HasPrefix(c.ID, ReservedJTIPrefix) {
		r = append(r, "jti: the prefix "+ReservedJTIPrefix+" is reserved for requests made from accepted offers")
	}
	if c.Issuer != "" && c.Issuer != jkt {
		r = append(r, "iss: if present, must be the thumbprint of the signing key")
	}
	if c.ClientIDClaim != "" && c.ClientIDClaim != jkt {
		r = append(r, "client_id: if present, must be the thumbprint of the signing key (RFC 7638), the organization's client_id")
	}
	if c.Subject != "" && c.Subject != jkt {
		r = append(r, "sub: if present, must be the thumbprint of the signing key")
	}
	r = append(r, checkMyTermsAnswer(c.MyTerms)...)
	if n := strings.TrimSpace(c.ClientName); n == "" || len(n) > 200 {
		r = append(r, "client_name: required, at most 200 characters")
	}
	if !validURL(c.ClientURI, false) {
		r = append(r, "client_uri: required, an https URL (http only for localhost)")
	}
	if !purposeRE.MatchString(c.Purpose) {
		r = append(r, "purpose: required, a purpose id from the owner's terms")
	}
	if len(c.PurposeText) > 1000 {
		r = append(r, "purpose_text: at most 1000 characters")
	}
	if c.Duration <= 0 || c.Duration > int64(longestGrantLimit/time.Second) {
		r = append(r, "duration: required, a number of seconds greater than 0")
	}
	if c.Retention != nil && (*c.Retention < 0 || *c.Retention > int64(longestGrantLimit/time.Second)) {
		r = append(r, "retention: a number of seconds, 0 or more")
	}
	if c.TermsHash == "" || len(c.TermsHash) > 100 {
		r = append(r, "terms_hash: required, the hash served at /v1/terms")
	}
	if c.CallbackURI != "" && !validURL(c.CallbackURI, true) {
		r = append(r, "callback_uri: an https URL (http only for localhost)")
	}
	r = append(r, checkDetails(c.AuthorizationDetails)...)
	for i, d := range c.AuthorizationDetails {
		if len(d.IDs) > 0 {
			r = append(r, fmt.Sprintf("authorization_details[%d]: ids are set by the owner when approving; ask for the collection (and kinds)", i))
		}
	}
	return r
}

// validURL accepts absolute https URLs, and http for loopback hosts.
func validURL(s string, allowQuery bool) bool {
	if len(s) == 0 || len(s) > 2000 {
		return false
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" || (!allowQuery && u.RawQuery != "") {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		h := u.Hostname()
		return h == "localhost" || h == "127.0.0.1" || h == "::1"
	}
	return false
}

// CheckTerms judges a request against the terms whose hash is
// currentHash, and returns every way it breaks them (empty: it complies).
func CheckTerms(t Terms, currentHash string, c RequestClaims) []string {
	r := CheckMyTerms(t, c.MyTerms)
	if c.TermsHash != currentHash {
		r = append(r, fmt.Sprintf("terms_hash: %s is not the current terms (%s); read /v1/terms and sign again", quoteShort(c.TermsHash), currentHash))
	}
	if !t.HasPurpose(c.Purpose) {
		r = append(r, fmt.Sprintf("purpose: %s is not a purpose the terms allow", quoteShort(c.Purpose)))
	}
	if max := time.Duration(t.MaxGrantDuration); time.Duration(c.Duration)*time.Second > max {
		r = append(r, fmt.Sprintf("duration: %s is longer than the terms allow (%s)", Duration(time.Duration(c.Duration)*time.Second), t.MaxGrantDuration))
	}
	if c.Retention != nil && time.Duration(*c.Retention)*time.Second > time.Duration(t.MaxRetention) {
		r = append(r, fmt.Sprintf("retention: %s is longer than the terms allow (%s)", Duration(time.Duration(*c.Retention)*time.Second), t.MaxRetention))
	}
	if c.ThirdPartySharing && !t.ThirdPartySharing {
		r = append(r, "third_party_sharing: the terms forbid sharing with third parties")
	}
	for _, d := range c.AuthorizationDetails {
		rule, ok := t.Collections[d.Collection]
		if !ok {
			continue
		}
		if rule.Forbidden {
			r = append(r, fmt.Sprintf("authorization_details: the terms never share %s", d.Collection))
		} else if len(rule.Purposes) > 0 && !contains(rule.Purposes, c.Purpose) {
			r = append(r, fmt.Sprintf("authorization_details: %s is shared only for %s", d.Collection, strings.Join(rule.Purposes, ", ")))
		}
	}
	return r
}

// userCodeAlphabet is RFC 8628 §6.1's: consonants only, no vowels (no
// words), no look-alikes.
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

// UserCode is the short code shown to the organization and on the owner's
// request page for one request (RFC 8628 §3.2 user_code), as XXXX-XXXX. It
// is derived from the request id: it identifies, it does not authorize
// (deciding needs the owner's login).
func UserCode(requestID string) string {
	h := sha256.Sum256([]byte("pdvault user code\x00" + requestID))
	var b strings.Builder
	for i := range 8 {
		if i == 4 {
			b.WriteByte('-')
		}
		b.WriteByte(userCodeAlphabet[int(binary.BigEndian.Uint16(h[2*i:]))%len(userCodeAlphabet)])
	}
	return b.String()
}

// nonEmpty is s as a list of one, or none.
func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}
