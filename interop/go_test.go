package interop

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"golang.org/x/oauth2"
)

// metadata is the part of RFC 8414 discovery the flow uses (x/oauth2 has
// no discovery: its Endpoint is filled from this).
type metadata struct {
	Issuer                      string `json:"issuer"`
	JWKSURI                     string `json:"jwks_uri"`
	TokenEndpoint               string `json:"token_endpoint"`
	DeviceAuthorizationEndpoint string `json:"device_authorization_endpoint"`
	IntrospectionEndpoint       string `json:"introspection_endpoint"`
	RevocationEndpoint          string `json:"revocation_endpoint"`
	TermsEndpoint               string `json:"terms_endpoint"`
	DataEndpoint                string `json:"data_endpoint"`
}

// dpopTransport is the DPoP extension point x/oauth2 leaves open: an
// http.RoundTripper that adds an RFC 9449 proof, signed with jwx, to every
// request (with ath when the request carries "Authorization: DPoP").
type dpopTransport struct {
	key  jwk.Key // private
	pub  jwk.Key
	base http.RoundTripper
}

func (d *dpopTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	u := *r.URL
	u.RawQuery, u.Fragment = "", ""
	b := jwt.NewBuilder().JwtID(rand.Text()).IssuedAt(time.Now()).Claim("htm", r.Method).Claim("htu", u.String())
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "DPoP") {
		h := sha256.Sum256([]byte(tok))
		b = b.Claim("ath", base64.RawURLEncoding.EncodeToString(h[:]))
	}
	claims, err := b.Build()
	if err != nil {
		return nil, err
	}
	hdr := jws.NewHeaders()
	hdr.Set(jws.TypeKey, "dpop+jwt")
	hdr.Set(jws.JWKKey, d.pub)
	proof, err := jwt.Sign(claims, jwt.WithKey(jwa.EdDSA(), d.key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return nil, err
	}
	r = r.Clone(r.Context())
	r.Header.Set("DPoP", string(proof))
	return d.base.RoundTrip(r)
}

// The organization flow with golang.org/x/oauth2 and lestrrat-go/jwx as
// published: discovery, a signed request object (RFC 9101) sent as the
// device authorization request (RFC 8628), polling with DPoP (RFC 9449),
// a read, introspection (RFC 7662), validation of the grant (RFC 9068)
// and release (RFC 7009).
func TestGoLibraries(t *testing.T) {
	e := newEnv(t)
	base := &http.Transport{TLSClientConfig: e.tlsConfig()}
	plain := &http.Client{Transport: base, Timeout: 30 * time.Second}
	getJSON := func(u string, out any) {
		t.Helper()
		res, err := plain.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("GET %s: %d", u, res.StatusCode)
		}
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	var md metadata
	getJSON(e.srv.URL+"/.well-known/oauth-authorization-server", &md)
	var terms struct {
		Hash string `json:"hash"`
	}
	getJSON(md.TermsEndpoint, &terms)

	// The organization's key: Ed25519, in jwx.
	_, raw, _ := ed25519.GenerateKey(rand.Reader)
	key, err := jwk.Import(raw)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jwk.PublicKeyOf(key)
	if err != nil {
		t.Fatal(err)
	}
	tp, _ := pub.Thumbprint(crypto.SHA256)
	clientID := base64.RawURLEncoding.EncodeToString(tp)

	// The request object (RFC 9101), with the claims JOSE libraries add.
	now := time.Now()
	ro, err := jwt.NewBuilder().Issuer(clientID).Subject(clientID).Audience([]string{md.Issuer}).IssuedAt(now).NotBefore(now).
		Expiration(now.Add(5*time.Minute)).JwtID(rand.Text()).
		Claim("client_id", clientID).Claim("client_name", "Acme Bikes").Claim("client_uri", "https://acme.example").
		Claim("purpose", "service_delivery").Claim("duration", 3600).Claim("terms_hash", terms.Hash).
		Claim("authorization_details", []map[string]any{{"type": "pdvault_records", "collection": "profile", "fields": []string{"name", "email"}}}).
		Build()
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	hdr.Set(jws.TypeKey, "oauth-authz-req+jwt")
	hdr.Set(jws.JWKKey, pub)
	signed, err := jwt.Sign(ro, jwt.WithKey(jwa.EdDSA(), key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}

	conf := &oauth2.Config{ClientID: clientID, Endpoint: oauth2.Endpoint{
		DeviceAuthURL: md.DeviceAuthorizationEndpoint, TokenURL: md.TokenEndpoint, AuthStyle: oauth2.AuthStyleInParams}}
	dpop := &dpopTransport{key: key, pub: pub, base: base}
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, &http.Client{Transport: dpop, Timeout: 30 * time.Second})

	da, err := conf.DeviceAuth(ctx, oauth2.SetAuthURLParam("request", string(signed)))
	if err != nil {
		t.Fatal(err)
	}
	if da.DeviceCode == "" || da.UserCode == "" || da.VerificationURI == "" || da.Interval == 0 {
		t.Fatalf("device authorization %+v", da)
	}
	approved := e.approveWhenAsked(t, da.DeviceCode, 0)
	if err := <-approved; err != nil {
		t.Fatal(err)
	}
	pollCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tok, err := conf.DeviceAccessToken(pollCtx, da)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Type() != "DPoP" || tok.AccessToken == "" {
		t.Fatalf("token type %q", tok.Type())
	}

	// Reading: x/oauth2's client sets "Authorization: DPoP <grant>", the
	// transport below it adds the proof.
	hc := conf.Client(ctx, tok)
	res, err := hc.Get(md.DataEndpoint + "/profile")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), "Ada Lovelace") || strings.Contains(string(body), "1815") {
		t.Fatalf("read: %d %s", res.StatusCode, body)
	}

	// Introspection (x/oauth2 has none): the same client, a form.
	res, err = hc.Post(md.IntrospectionEndpoint, "application/x-www-form-urlencoded", strings.NewReader(url.Values{"token": {tok.AccessToken}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	var in struct {
		Active   bool   `json:"active"`
		ClientID string `json:"client_id"`
	}
	json.NewDecoder(res.Body).Decode(&in)
	res.Body.Close()
	if res.StatusCode != 200 || !in.Active || in.ClientID != clientID {
		t.Fatalf("introspection: %d %+v", res.StatusCode, in)
	}

	// The grant validated as an RFC 9068 access token with jwx: the
	// vault's JWKS, typ at+jwt, iss, aud, times, and the DPoP binding.
	set, err := jwk.Fetch(ctx, md.JWKSURI, jwk.WithHTTPClient(plain))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := jws.Parse([]byte(tok.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	if typ, _ := msg.Signatures()[0].ProtectedHeaders().Type(); typ != "at+jwt" {
		t.Fatalf("typ %q", typ)
	}
	grant, err := jwt.Parse([]byte(tok.AccessToken), jwt.WithKeySet(set), jwt.WithValidate(true), jwt.WithIssuer(md.Issuer), jwt.WithAudience(md.Issuer))
	if err != nil {
		t.Fatal(err)
	}
	var cnf map[string]any
	var cid string
	if grant.Get("cnf", &cnf) != nil || cnf["jkt"] != clientID || grant.Get("client_id", &cid) != nil || cid != clientID {
		t.Fatalf("cnf %v client_id %q", cnf, cid)
	}
	if sub, ok := grant.Subject(); !ok || sub == "" {
		t.Fatal("no sub")
	}

	// Release (RFC 7009; x/oauth2 has none): the token alone, then the
	// next read is refused.
	res, err = plain.Post(md.RevocationEndpoint, "application/x-www-form-urlencoded",
		bytes.NewReader([]byte(url.Values{"token": {tok.AccessToken}, "token_type_hint": {"access_token"}}.Encode())))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("release: %d", res.StatusCode)
	}
	res, err = hc.Get(md.DataEndpoint + "/profile")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Fatalf("read after release: %d", res.StatusCode)
	}
}
