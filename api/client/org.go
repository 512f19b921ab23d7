package client

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/pdvault/pdvault/policy"
)

// Key is an organization's signing key: it signs access requests and DPoP
// proofs, and its RFC 7638 thumbprint is the organization's client_id.
type Key struct {
	jwk jose.JSONWebKey // private
	alg jose.SignatureAlgorithm
	pub jose.JSONWebKey
	jkt string

	mu      sync.Mutex
	headers map[string]string // typ -> protected header, base64url, as go-jose writes it
}

// GenerateKey makes a new key: "EdDSA" (Ed25519, the default) or "ES256"
// (P-256).
func GenerateKey(alg string) (*Key, error) {
	switch alg {
	case "", "EdDSA":
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return newKey(priv)
	case "ES256":
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		return newKey(priv)
	}
	return nil, fmt.Errorf("unsupported algorithm %q: use EdDSA or ES256", alg)
}

func newKey(priv crypto.Signer) (*Key, error) {
	k := &Key{jwk: jose.JSONWebKey{Key: priv}}
	switch priv.(type) {
	case ed25519.PrivateKey:
		k.alg = jose.EdDSA
	case *ecdsa.PrivateKey:
		k.alg = jose.ES256
	default:
		return nil, errors.New("unsupported key type")
	}
	k.jwk.Algorithm = string(k.alg)
	k.pub = k.jwk.Public()
	jkt, err := policy.Thumbprint(&k.pub)
	if err != nil {
		return nil, err
	}
	k.jkt = jkt
	k.jwk.KeyID, k.pub.KeyID = "", ""
	return k, nil
}

// ParseKey reads a private JWK.
func ParseKey(b []byte) (*Key, error) {
	var j jose.JSONWebKey
	if err := j.UnmarshalJSON(b); err != nil {
		return nil, fmt.Errorf("not a JWK: %w", err)
	}
	signer, ok := j.Key.(crypto.Signer)
	if !ok || j.IsPublic() {
		return nil, errors.New("the JWK holds no private key")
	}
	if ek, ok := signer.(*ecdsa.PrivateKey); ok && ek.Curve != elliptic.P256() {
		return nil, errors.New("only P-256 ECDSA keys are supported")
	}
	return newKey(signer)
}

// LoadKey reads a private JWK from a file.
func LoadKey(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseKey(b)
}

// MarshalJSON returns the private JWK. Keep it secret.
func (k *Key) MarshalJSON() ([]byte, error) { return k.jwk.MarshalJSON() }

// Thumbprint is the key's RFC 7638 thumbprint: the organization's client_id.
func (k *Key) Thumbprint() string { return k.jkt }

// Public is the public JWK.
func (k *Key) Public() jose.JSONWebKey { return k.pub }

// Sign makes a compact JWS with typ and the public key in the header.
//
// The protected header (alg, typ and this public key) is the same for every
// token of a type, so go-jose builds it once per type and each token is then
// that header, the payload and a signature: a DPoP proof per request costs
// one signature, not a JOSE library round trip.
func (k *Key) Sign(typ string, claims any) (string, error) {
	h, err := k.header(typ)
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	input := h + "." + base64.RawURLEncoding.EncodeToString(payload)
	sig, err := k.signRaw([]byte(input))
	if err != nil {
		return "", err
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

func (k *Key) header(typ string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if h, ok := k.headers[typ]; ok {
		return h, nil
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.jwk.Key},
		(&jose.SignerOptions{EmbedJWK: true}).WithType(jose.ContentType(typ)))
	if err != nil {
		return "", err
	}
	obj, err := signer.Sign([]byte("{}"))
	if err != nil {
		return "", err
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		return "", err
	}
	h, _, _ := strings.Cut(tok, ".")
	if k.headers == nil {
		k.headers = map[string]string{}
	}
	k.headers[typ] = h
	return h, nil
}

// signRaw signs a JWS signing input: Ed25519, or ES256 as r || s of 32
// bytes each (RFC 7518 §3.4).
func (k *Key) signRaw(input []byte) ([]byte, error) {
	switch priv := k.jwk.Key.(type) {
	case ed25519.PrivateKey:
		return ed25519.Sign(priv, input), nil
	case *ecdsa.PrivateKey:
		digest := sha256.Sum256(input)
		r, s, err := ecdsa.Sign(rand.Reader, priv, digest[:])
		if err != nil {
			return nil, err
		}
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return sig, nil
	}
	return nil, errors.New("unsupported key type")
}

// Proof makes a fresh DPoP proof (RFC 9449) for one HTTP request. With an
// access token it carries ath.
func (k *Key) Proof(method, url, accessToken string, now time.Time) (string, error) {
	c := policy.ProofClaims{ID: randomID(), Method: method, URL: url, IssuedAt: now.Unix()}
	if accessToken != "" {
		c.AccessToken = policy.ATH(accessToken)
	}
	return k.Sign(policy.TypProof, c)
}

func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Org is an organization's client for one vault.
type Org struct {
	base
	key *Key
	// Now is the clock for iat claims; tests move it.
	Now func() time.Time

	seen *seenHeads // audit-log witness data from the vault's responses
}

// NewOrg returns a client for the vault at baseURL, which must be the
// vault's issuer (from discovery): DPoP proofs name URLs under it.
func NewOrg(baseURL string, key *Key, hc *http.Client) (*Org, error) {
	b, err := newBase(baseURL, hc)
	if err != nil {
		return nil, err
	}
	return &Org{base: b, key: key, Now: time.Now, seen: &seenHeads{}}, nil
}

// Key returns the organization's key.
func (o *Org) Key() *Key { return o.key }

// Metadata is the vault's RFC 8414 metadata.
type Metadata struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	TokenEndpoint         string `json:"token_endpoint"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
	TermsEndpoint         string `json:"terms_endpoint"`
	RequestEndpoint       string `json:"request_endpoint"`
	DataEndpoint          string `json:"data_endpoint"`
}

// Metadata fetches /.well-known/oauth-authorization-server.
func (o *Org) Metadata(ctx context.Context) (Metadata, error) {
	var m Metadata
	err := o.get(ctx, "/.well-known/oauth-authorization-server", "", "", &m)
	return m, err
}

// JWKS fetches the vault's public keys.
func (o *Org) JWKS(ctx context.Context) (jose.JSONWebKeySet, error) {
	var s jose.JSONWebKeySet
	err := o.get(ctx, "/.well-known/jwks.json", "", "", &s)
	return s, err
}

// Terms is the owner's terms as served.
type Terms struct {
	Terms json.RawMessage `json:"terms"`
	Hash  string          `json:"hash"`
	Text  string          `json:"text"`
}

// Terms fetches the current terms.
func (o *Org) Terms(ctx context.Context) (Terms, error) {
	var t Terms
	err := o.get(ctx, "/v1/terms", "", "", &t)
	return t, err
}

// AccessRequest is what an organization asks for. ClientName, ClientURI,
// Purpose, AuthorizationDetails and Duration are required; TermsHash is
// fetched if empty; iat and jti are filled in.
type AccessRequest = policy.RequestClaims

// AuthorizationDetail is one collection and its fields.
type AuthorizationDetail = policy.AuthorizationDetail

// Detail is a shorthand for a read of some fields of one collection.
func Detail(collection string, fields ...string) AuthorizationDetail {
	return AuthorizationDetail{Type: policy.DetailType, Collection: collection, Fields: fields}
}

// Ticket is the answer to a request (RFC 8628 §3.2 device authorization
// response; RequestID is DeviceCode under pdvault's older name).
type Ticket struct {
	DeviceCode              string `json:"device_code"`
	RequestID               string `json:"request_id"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	Interval                int64  `json:"interval"`
	ExpiresIn               int64  `json:"expires_in"`
	// AgreementRecord is the vault's countersigned IEEE 7012 record, when
	// the owner proffers agreements or the request answers them.
	AgreementRecord string `json:"myterms_agreement_record,omitempty"`
}

// SignRequest signs an access request as an RFC 9101 request object.
func (o *Org) SignRequest(ctx context.Context, r AccessRequest) (string, error) {
	if r.TermsHash == "" {
		t, err := o.Terms(ctx)
		if err != nil {
			return "", fmt.Errorf("fetching the terms: %w", err)
		}
		r.TermsHash = t.Hash
	}
	if r.IssuedAt == 0 {
		r.IssuedAt = o.Now().Unix()
	}
	if r.ID == "" {
		r.ID = randomID()
	}
	if r.Audience == "" {
		r.Audience = o.url
	}
	for i := range r.AuthorizationDetails {
		if r.AuthorizationDetails[i].Type == "" {
			r.AuthorizationDetails[i].Type = policy.DetailType
		}
	}
	return o.key.Sign(policy.TypRequest, r)
}

// Request signs and sends an access request.
func (o *Org) Request(ctx context.Context, r AccessRequest) (Ticket, error) {
	signed, err := o.SignRequest(ctx, r)
	if err != nil {
		return Ticket{}, err
	}
	return o.SendSigned(ctx, signed)
}

// SendSigned sends an already signed request object.
func (o *Org) SendSigned(ctx context.Context, signed string) (Ticket, error) {
	req, err := o.newRequest(ctx, http.MethodPost, "/v1/requests", signed)
	if err != nil {
		return Ticket{}, err
	}
	req.Header.Set("Content-Type", "application/oauth-authz-req+jwt")
	var t Ticket
	_, err = o.do(req, &t)
	return t, err
}

// Token is a collected grant.
type Token struct {
	AccessToken          string                `json:"access_token"`
	TokenType            string                `json:"token_type"`
	ExpiresIn            int64                 `json:"expires_in"`
	AuthorizationDetails []AuthorizationDetail `json:"authorization_details"`
	GrantID              string                `json:"grant_id"`
	ConsentReceipt       string                `json:"consent_receipt,omitempty"` // Kantara v1.1, signed by the vault
}

// Poll asks once for the grant. While the owner has not decided, the error
// has code "authorization_pending" (or "slow_down").
func (o *Org) Poll(ctx context.Context, requestID string) (Token, error) {
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {requestID}}
	var t Token
	err := o.postForm(ctx, "/v1/token", form, "", &t)
	return t, err
}

// WaitForGrant polls until the owner decides, the request expires or ctx
// ends, honouring the interval and slow_down (RFC 8628 §3.5).
func (o *Org) WaitForGrant(ctx context.Context, t Ticket) (Token, error) {
	interval := time.Duration(max(t.Interval, 1)) * time.Second
	for {
		tok, err := o.Poll(ctx, t.RequestID)
		switch {
		case err == nil:
			return tok, nil
		case IsCode(err, "authorization_pending"):
		case IsCode(err, "slow_down"):
			interval += 5 * time.Second
		default:
			return Token{}, err
		}
		select {
		case <-ctx.Done():
			return Token{}, ctx.Err()
		case <-time.After(interval):
		}
	}
}

// DataRecord is a record as the organization sees it.
type DataRecord struct {
	ID         string                     `json:"id"`
	Collection string                     `json:"collection"`
	Data       map[string]json.RawMessage `json:"data"`
}

// DataPage is a page of a granted collection.
type DataPage struct {
	Collection string       `json:"collection"`
	Records    []DataRecord `json:"records"`
	NextCursor string       `json:"next_cursor,omitempty"`
}

// ReadCollection reads a page of a granted collection.
func (o *Org) ReadCollection(ctx context.Context, grant, collection string, limit int, cursor string) (DataPage, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var p DataPage
	err := o.get(ctx, "/v1/data/"+url.PathEscape(collection), q.Encode(), grant, &p)
	return p, err
}

// ReadRecord reads one record of a granted collection.
func (o *Org) ReadRecord(ctx context.Context, grant, collection, id string) (DataRecord, error) {
	var r DataRecord
	err := o.get(ctx, "/v1/data/"+url.PathEscape(collection)+"/"+url.PathEscape(id), "", grant, &r)
	return r, err
}

// Introspection is an RFC 7662 answer.
type Introspection struct {
	Active               bool                  `json:"active"`
	TokenType            string                `json:"token_type,omitempty"`
	ClientID             string                `json:"client_id,omitempty"`
	Subject              string                `json:"sub,omitempty"`
	Issuer               string                `json:"iss,omitempty"`
	Audience             string                `json:"aud,omitempty"`
	ID                   string                `json:"jti,omitempty"`
	IssuedAt             int64                 `json:"iat,omitempty"`
	NotBefore            int64                 `json:"nbf,omitempty"`
	Expiry               int64                 `json:"exp,omitempty"`
	AuthorizationDetails []AuthorizationDetail `json:"authorization_details,omitempty"`
	Purpose              string                `json:"purpose,omitempty"`
	TermsHash            string                `json:"terms_hash,omitempty"`
	// Confirmation is the key the grant is bound to (RFC 7800): {"jkt": thumbprint}.
	Confirmation map[string]string `json:"cnf,omitempty"`
}

// Introspect asks whether a grant is still active.
func (o *Org) Introspect(ctx context.Context, grant string) (Introspection, error) {
	var in Introspection
	err := o.postForm(ctx, "/v1/introspect", url.Values{"token": {grant}}, "", &in)
	return in, err
}

// get sends a GET with a DPoP proof when a grant is given.
func (o *Org) get(ctx context.Context, path, query, grant string, out any) error {
	p := path
	if query != "" {
		p += "?" + query
	}
	req, err := o.newRequest(ctx, http.MethodGet, p, nil)
	if err != nil {
		return err
	}
	if grant != "" {
		proof, err := o.key.Proof(http.MethodGet, o.url+path, grant, o.Now())
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "DPoP "+grant)
		req.Header.Set("DPoP", proof)
	}
	res, err := o.do(req, out)
	o.seen.observe(res)
	return err
}

// postForm sends a form with a DPoP proof (the token and introspection
// endpoints authenticate the organization by its proof).
func (o *Org) postForm(ctx context.Context, path string, form url.Values, grant string, out any) error {
	req, err := o.newRequest(ctx, http.MethodPost, path, form.Encode())
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	proof, err := o.key.Proof(http.MethodPost, o.url+path, grant, o.Now())
	if err != nil {
		return err
	}
	req.Header.Set("DPoP", proof)
	res, err := o.do(req, out)
	o.seen.observe(res)
	return err
}

// Release ends a grant the organization no longer needs (RFC 7009). The
// deletion clock starts now.
func (o *Org) Release(ctx context.Context, grant string) error {
	return o.postForm(ctx, "/v1/revoke", url.Values{"token": {grant}}, "", nil)
}

// ReceiptResult is the vault's answer to a deletion receipt.
type ReceiptResult struct {
	ReceiptID string   `json:"receipt_id"`
	Complete  bool     `json:"complete"`
	Missing   []string `json:"missing,omitempty"`
}

// ReceiptClaims are the claims of a deletion receipt.
type ReceiptClaims = policy.ReceiptClaims

// SignReceipt signs a deletion receipt; iat, jti and aud are filled in.
func (o *Org) SignReceipt(c ReceiptClaims) (string, error) {
	if c.IssuedAt == 0 {
		c.IssuedAt = o.Now().Unix()
	}
	if c.DeletedAt == 0 {
		c.DeletedAt = c.IssuedAt
	}
	if c.ID == "" {
		c.ID = randomID()
	}
	if c.Audience == "" {
		c.Audience = o.url
	}
	return o.key.Sign(policy.TypReceipt, c)
}

// SendReceipt signs and sends a deletion receipt for an ended grant.
func (o *Org) SendReceipt(ctx context.Context, c ReceiptClaims) (ReceiptResult, error) {
	signed, err := o.SignReceipt(c)
	if err != nil {
		return ReceiptResult{}, err
	}
	return o.SendSignedReceipt(ctx, signed)
}

// SendSignedReceipt sends an already signed receipt.
func (o *Org) SendSignedReceipt(ctx context.Context, signed string) (ReceiptResult, error) {
	req, err := o.newRequest(ctx, http.MethodPost, "/v1/receipts", signed)
	if err != nil {
		return ReceiptResult{}, err
	}
	req.Header.Set("Content-Type", "application/jwt")
	var r ReceiptResult
	_, err = o.do(req, &r)
	return r, err
}

// LinkKey moves the organization to next: the current key signs a
// statement naming next, and next proves possession with a DPoP proof. On
// success the client uses next from then on.
func (o *Org) LinkKey(ctx context.Context, next *Key) error {
	stmt, err := o.key.Sign(policy.TypKeyLink, policy.KeyLinkClaims{Audience: o.url, NewKey: next.Thumbprint(), IssuedAt: o.Now().Unix(), ID: randomID()})
	if err != nil {
		return err
	}
	req, err := o.newRequest(ctx, http.MethodPost, "/v1/keys", stmt)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/jwt")
	proof, err := next.Proof(http.MethodPost, o.url+"/v1/keys", "", o.Now())
	if err != nil {
		return err
	}
	req.Header.Set("DPoP", proof)
	if _, err := o.do(req, nil); err != nil {
		return err
	}
	o.key = next
	return nil
}

// Challenge is a domain-verification challenge to publish.
type Challenge struct {
	Domain    string `json:"domain"`
	Challenge string `json:"challenge"`
	URL       string `json:"url"`
	ExpiresIn int64  `json:"expires_in"`
}

// StartVerification asks the vault for a challenge proving control of the
// domain of the organization's client_uri.
func (o *Org) StartVerification(ctx context.Context) (Challenge, error) {
	var c Challenge
	err := o.postForm(ctx, "/v1/verification", url.Values{}, "", &c)
	return c, err
}

// CheckVerification asks the vault to fetch the published challenge now.
func (o *Org) CheckVerification(ctx context.Context) (string, error) {
	var out struct {
		Domain string `json:"verified_domain"`
	}
	err := o.postForm(ctx, "/v1/verification/check", url.Values{}, "", &out)
	return out.Domain, err
}

// Notice is a verified notice from the vault.
type Notice = policy.NoticeClaims

// VerifyNotice checks a notice the vault sent to the callback, with the
// vault's published keys.
// issuer is the vault's issuer and clientID the organization's: a notice
// for someone else, or from another vault, is refused.
func VerifyNotice(signed string, jwks jose.JSONWebKeySet, issuer, clientID string) (*Notice, error) {
	return policy.VerifyNotice(signed, jwksKey(jwks), issuer, clientID)
}

// ClaimsResult is the vault's answer to derived claims.
type ClaimsResult struct {
	Statement string         `json:"statement"`
	Claims    map[string]any `json:"claims"`
	ExpiresIn int64          `json:"expires_in"`
}

// ReadClaims asks for the derived claims the grant covers. The statement
// is signed by the vault and bound to this organization.
func (o *Org) ReadClaims(ctx context.Context, grant string) (ClaimsResult, error) {
	var r ClaimsResult
	err := o.get(ctx, "/v1/claims", "", grant, &r)
	return r, err
}

// ClaimsStatement is a verified statement of derived claims.
type ClaimsStatement = policy.ClaimsStatement

// VerifyClaims checks a statement of derived claims offline: signed by the
// vault (issuer, keys from its JWKS), current, and issued to clientID. A
// relying party checks it against the client_id of whoever presents it.
func VerifyClaims(statement string, jwks jose.JSONWebKeySet, issuer, clientID string, now time.Time) (*ClaimsStatement, error) {
	return policy.VerifyClaims(statement, jwksKey(jwks), issuer, clientID, now)
}

func jwksKey(jwks jose.JSONWebKeySet) func(kid string) (ed25519.PublicKey, bool) {
	return func(kid string) (ed25519.PublicKey, bool) {
		for _, k := range jwks.Key(kid) {
			if pub, ok := k.Key.(ed25519.PublicKey); ok {
				return pub, true
			}
		}
		return nil, false
	}
}

// Intent is a public intent.
type Intent struct {
	policy.Intent
	Signed string `json:"signed"`
}

// Intents reads the vault's open intents (the JSON form of the feed).
func (o *Org) Intents(ctx context.Context) ([]Intent, error) {
	var out struct {
		Intents []Intent `json:"intents"`
	}
	err := o.get(ctx, "/v1/intents", "", "", &out)
	return out.Intents, err
}

// VerifyIntent checks an intent's signature against the key in it, and
// returns the signed content: what was published, unchanged.
func VerifyIntent(signed string) (*policy.Intent, error) {
	in, _, err := policy.VerifyIntent(signed)
	return in, err
}

// OfferClaims are what an offer says.
type OfferClaims = policy.OfferClaims

// Price is what an offer costs.
type Price = policy.Price

// OfferTicket is the answer to an offer: poll the token endpoint with the
// offer id; once the owner accepts the offer and approves the request it
// becomes, the grant is there.
type OfferTicket struct {
	OfferID   string `json:"offer_id"`
	Interval  int64  `json:"interval"`
	ExpiresIn int64  `json:"expires_in"`
}

// SendOffer signs and sends an offer for an intent.
func (o *Org) SendOffer(ctx context.Context, c OfferClaims) (OfferTicket, error) {
	if c.TermsHash == "" {
		t, err := o.Terms(ctx)
		if err != nil {
			return OfferTicket{}, err
		}
		c.TermsHash = t.Hash
	}
	if c.IssuedAt == 0 {
		c.IssuedAt = o.Now().Unix()
	}
	if c.ID == "" {
		c.ID = randomID()
	}
	if c.Audience == "" {
		c.Audience = o.url
	}
	for i := range c.AuthorizationDetails {
		if c.AuthorizationDetails[i].Type == "" {
			c.AuthorizationDetails[i].Type = policy.DetailType
		}
	}
	signed, err := o.key.Sign(policy.TypOffer, c)
	if err != nil {
		return OfferTicket{}, err
	}
	req, err := o.newRequest(ctx, http.MethodPost, "/v1/intents/"+url.PathEscape(c.IntentID)+"/offers", signed)
	if err != nil {
		return OfferTicket{}, err
	}
	req.Header.Set("Content-Type", "application/jwt")
	var t OfferTicket
	_, err = o.do(req, &t)
	return t, err
}
