package policy

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

var b64 = base64.RawURLEncoding

// testSigner is an in-memory Ed25519 signer standing in for the vault's.
type testSigner struct {
	kid  string
	priv ed25519.PrivateKey
}

func newTestSigner(t *testing.T) *testSigner {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &testSigner{kid: "vault-key-1", priv: priv}
}

func (s *testSigner) Public() *jose.JSONWebKey {
	return &jose.JSONWebKey{Key: s.priv.Public(), KeyID: s.kid, Algorithm: "EdDSA", Use: "sig"}
}
func (s *testSigner) Algs() []jose.SignatureAlgorithm { return []jose.SignatureAlgorithm{jose.EdDSA} }
func (s *testSigner) SignPayload(p []byte, _ jose.SignatureAlgorithm) ([]byte, error) {
	return ed25519.Sign(s.priv, p), nil
}
func (s *testSigner) key(kid string) (ed25519.PublicKey, bool) {
	if kid == s.kid {
		return s.priv.Public().(ed25519.PublicKey), true
	}
	return nil, false
}

// rawJWS builds a compact JWS by hand, so tests can make tokens that no
// honest library would: any header, any algorithm, any signature.
func rawJWS(header, claims any, sign func(input []byte) []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	return input + "." + b64.EncodeToString(sign([]byte(input)))
}

func edSign(priv ed25519.PrivateKey) func([]byte) []byte {
	return func(in []byte) []byte { return ed25519.Sign(priv, in) }
}

// orgKey is an organization's key pair with its public JWK.
type orgKey struct {
	priv ed25519.PrivateKey
	jwk  map[string]any
	jkt  string
}

func newOrgKey(t *testing.T) orgKey {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	j := jose.JSONWebKey{Key: pub}
	jkt, err := Thumbprint(&j)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := j.MarshalJSON()
	var m map[string]any
	json.Unmarshal(raw, &m)
	return orgKey{priv: priv, jwk: m, jkt: jkt}
}

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

const (
	iss = "https://vault.example"
	aud = "https://vault.example"
)

func grantClaims(jkt string) GrantClaims {
	return GrantClaims{
		Issuer: iss, Subject: "pairwise-sub", Audience: aud, ClientID: jkt, ID: "grant-1",
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: now.Add(time.Hour).Unix(),
		AuthorizationDetails: []AuthorizationDetail{{Type: DetailType, Collection: "profile", Fields: []string{"name"}}},
		Purpose:              "service_delivery", TermsHash: "h", Confirmation: Confirmation{JKT: jkt},
	}
}

func grantCheck(s *testSigner, at time.Time) GrantCheck {
	return GrantCheck{Issuer: iss, Audience: aud, Now: at, Skew: ClockSkew, Key: s.key}
}

func proofFor(k orgKey, method, url, accessToken string, iat time.Time, jti string) string {
	c := ProofClaims{ID: jti, Method: method, URL: url, IssuedAt: iat.Unix()}
	if accessToken != "" {
		c.AccessToken = ATH(accessToken)
	}
	return rawJWS(map[string]any{"typ": TypProof, "alg": "EdDSA", "jwk": k.jwk}, c, edSign(k.priv))
}

func wantIs(t *testing.T, err error, want *Error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %q", err, want.Msg)
	}
}

func TestGrantRoundTrip(t *testing.T) {
	s := newTestSigner(t)
	org := newOrgKey(t)
	tok, err := SignGrant(s, grantClaims(org.jkt))
	if err != nil {
		t.Fatal(err)
	}
	// The header carries typ at+jwt and our kid, nothing else steering.
	h, _ := b64.DecodeString(strings.Split(tok, ".")[0])
	var hdr map[string]any
	json.Unmarshal(h, &hdr)
	if hdr["typ"] != "at+jwt" || hdr["alg"] != "EdDSA" || hdr["kid"] != s.kid || len(hdr) != 3 {
		t.Fatalf("grant header %v", hdr)
	}
	c, err := VerifyGrant(tok, grantCheck(s, now))
	if err != nil {
		t.Fatal(err)
	}
	if c.Confirmation.JKT != org.jkt || c.AuthorizationDetails[0].Fields[0] != "name" {
		t.Fatalf("claims %+v", c)
	}
}

// Every attack the issue lists against grants, each with the exact error.
func TestGrantAttacks(t *testing.T) {
	s := newTestSigner(t)
	org := newOrgKey(t)
	good, _ := SignGrant(s, grantClaims(org.jkt))
	parts := strings.Split(good, ".")
	pub := s.priv.Public().(ed25519.PublicKey)
	hdr := func(extra map[string]any) map[string]any {
		h := map[string]any{"typ": "at+jwt", "alg": "EdDSA", "kid": s.kid}
		for k, v := range extra {
			if v == nil {
				delete(h, k)
			} else {
				h[k] = v
			}
		}
		return h
	}
	attacker, attackerPriv, _ := ed25519.GenerateKey(rand.Reader)
	attackerJWK, _ := (&jose.JSONWebKey{Key: attacker, KeyID: s.kid}).MarshalJSON()
	var attackerJWKMap map[string]any
	json.Unmarshal(attackerJWK, &attackerJWKMap)
	noExp := grantClaims(org.jkt)
	noExp.Expiry = 0

	cases := []struct {
		name string
		tok  string
		want *Error
	}{
		{"alg none", rawJWS(hdr(map[string]any{"alg": "none"}), grantClaims(org.jkt), func([]byte) []byte { return nil }), ErrBadAlgorithm},
		{"HS256 keyed with the public key", rawJWS(hdr(map[string]any{"alg": "HS256"}), grantClaims(org.jkt), func(in []byte) []byte {
			m := hmac.New(sha256.New, pub)
			m.Write(in)
			return m.Sum(nil)
		}), ErrBadAlgorithm},
		{"stripped signature", parts[0] + "." + parts[1] + ".", ErrBadSignature},
		{"altered signature", parts[0] + "." + parts[1] + "." + flip(parts[2]), ErrBadSignature},
		{"altered claims", parts[0] + "." + b64.EncodeToString([]byte(`{"iss":"x"}`)) + "." + parts[2], ErrBadSignature},
		{"JSON serialization", `{"protected":"` + parts[0] + `","payload":"` + parts[1] + `","signature":"` + parts[2] + `"}`, ErrJSONSerialized},
		{"thousands of dots", strings.Repeat(".", 5000), ErrMalformedToken},
		{"four parts", good + ".x", ErrMalformedToken},
		{"megabytes", strings.Repeat("a", 2<<20) + ".b.c", ErrTokenTooLarge},
		{"huge header under the token limit", b64.EncodeToString([]byte(`{"alg":"EdDSA","typ":"at+jwt","x":"`+strings.Repeat("a", 8000)+`"}`)) + ".e30.sig", ErrTokenTooLarge},
		{"jku tries to steer the key", rawJWS(hdr(map[string]any{"jku": "https://evil.example/jwks"}), grantClaims(org.jkt), edSign(attackerPriv)), ErrBadHeader},
		{"embedded jwk tries to steer the key", rawJWS(hdr(map[string]any{"jwk": attackerJWKMap}), grantClaims(org.jkt), edSign(attackerPriv)), ErrBadHeader},
		{"x5u", rawJWS(hdr(map[string]any{"x5u": "https://evil.example/cert"}), grantClaims(org.jkt), edSign(attackerPriv)), ErrBadHeader},
		{"crit", rawJWS(hdr(map[string]any{"crit": []string{"exp"}}), grantClaims(org.jkt), edSign(s.priv)), ErrBadHeader},
		{"kid of a key we do not have", rawJWS(hdr(map[string]any{"kid": "other"}), grantClaims(org.jkt), edSign(attackerPriv)), ErrUnknownKey},
		{"kid missing", rawJWS(hdr(map[string]any{"kid": nil}), grantClaims(org.jkt), edSign(s.priv)), ErrUnknownKey},
		{"our kid, attacker's signature", rawJWS(hdr(nil), grantClaims(org.jkt), edSign(attackerPriv)), ErrBadSignature},
		{"missing exp", rawJWS(hdr(nil), noExp, edSign(s.priv)), ErrGrantClaims},
		{"no typ", rawJWS(hdr(map[string]any{"typ": nil}), grantClaims(org.jkt), edSign(s.priv)), ErrWrongType},
		{"DPoP proof used as a grant", proofFor(org, "GET", iss+"/v1/data/profile", "", now, "j1"), ErrWrongType},
		{"not base64", "!!!.@@@.###", ErrMalformedToken},
		{"empty", "", ErrMalformedToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyGrant(tc.tok, grantCheck(s, now))
			wantIs(t, err, tc.want)
			if CodeOf(err) != "invalid_token" || KindOf(err) != KindUnauthenticated {
				t.Fatalf("wire code %s kind %s", CodeOf(err), KindOf(err))
			}
		})
	}
}

func flip(s string) string {
	b, _ := b64.DecodeString(s)
	b[0] ^= 1
	return b64.EncodeToString(b)
}

func TestGrantClockSkewEdges(t *testing.T) {
	s := newTestSigner(t)
	org := newOrgKey(t)
	c := grantClaims(org.jkt)
	tok, _ := SignGrant(s, c)
	exp, nbf := time.Unix(c.Expiry, 0), time.Unix(c.NotBefore, 0)
	for _, tc := range []struct {
		name string
		at   time.Time
		want *Error
	}{
		{"at exp", exp, nil},
		{"just inside skew after exp", exp.Add(ClockSkew), nil},
		{"just past skew after exp", exp.Add(ClockSkew + time.Second), ErrGrantExpired},
		{"just inside skew before nbf", nbf.Add(-ClockSkew), nil},
		{"just past skew before nbf", nbf.Add(-ClockSkew - time.Second), ErrGrantNotYetValid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyGrant(tok, grantCheck(s, tc.at))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			wantIs(t, err, tc.want)
		})
	}
	other := grantCheck(s, now)
	other.Audience = "https://other.example"
	_, err := VerifyGrant(tok, other)
	wantIs(t, err, ErrGrantAudience)
	other = grantCheck(s, now)
	other.Issuer = "https://other.example"
	_, err = VerifyGrant(tok, other)
	wantIs(t, err, ErrGrantIssuer)
}

func TestProofChecks(t *testing.T) {
	org := newOrgKey(t)
	s := newTestSigner(t)
	grant, _ := SignGrant(s, grantClaims(org.jkt))
	url := iss + "/v1/data/profile"
	chk := ProofCheck{Method: "GET", URL: url + "?limit=5", AccessToken: grant, Now: now, Skew: ClockSkew}

	p, err := VerifyProof(proofFor(org, "GET", url, grant, now, "j1"), chk)
	if err != nil {
		t.Fatal(err)
	}
	if p.JKT != org.jkt || p.ID != "j1" {
		t.Fatalf("proof %+v", p)
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecJWK, _ := (&jose.JSONWebKey{Key: ecKey.Public()}).MarshalJSON()
	var ecMap map[string]any
	json.Unmarshal(ecJWK, &ecMap)
	privJWK, _ := (&jose.JSONWebKey{Key: org.priv}).MarshalJSON()
	var privMap map[string]any
	json.Unmarshal(privJWK, &privMap)
	claims := ProofClaims{ID: "j", Method: "GET", URL: url, IssuedAt: now.Unix(), AccessToken: ATH(grant)}

	cases := []struct {
		name  string
		proof string
		want  *Error
	}{
		{"missing", "", ErrProofMissing},
		{"other method", proofFor(org, "POST", url, grant, now, "j"), ErrProofMethod},
		{"other URL", proofFor(org, "GET", iss+"/v1/data/health", grant, now, "j"), ErrProofURL},
		{"other host", proofFor(org, "GET", "https://evil.example/v1/data/profile", grant, now, "j"), ErrProofURL},
		{"ath for another token", proofFor(org, "GET", url, "another token", now, "j"), ErrProofATH},
		{"no ath", proofFor(org, "GET", url, "", now, "j"), ErrProofATH},
		{"too old", proofFor(org, "GET", url, grant, now.Add(-ProofMaxAge-ClockSkew-time.Second), "j"), ErrProofStale},
		{"from the future", proofFor(org, "GET", url, grant, now.Add(ClockSkew+time.Second), "j"), ErrProofStale},
		{"no jti", proofFor(org, "GET", url, grant, now, ""), ErrProofClaims},
		{"grant used as a proof", grant, ErrWrongType},
		{"private key in header", rawJWS(map[string]any{"typ": TypProof, "alg": "EdDSA", "jwk": privMap}, claims, edSign(org.priv)), ErrBadKey},
		{"no jwk", rawJWS(map[string]any{"typ": TypProof, "alg": "EdDSA"}, claims, edSign(org.priv)), ErrBadKey},
		{"alg does not fit key", rawJWS(map[string]any{"typ": TypProof, "alg": "ES256", "jwk": org.jwk}, claims, edSign(org.priv)), ErrBadKey},
		{"P-256 key, Ed25519 signature", rawJWS(map[string]any{"typ": TypProof, "alg": "ES256", "jwk": ecMap}, claims, edSign(org.priv)), ErrBadSignature},
		{"jku steering", rawJWS(map[string]any{"typ": TypProof, "alg": "EdDSA", "jwk": org.jwk, "jku": "https://keys.example/"}, claims, edSign(org.priv)), ErrBadHeader},
		{"x5u steering", rawJWS(map[string]any{"typ": TypProof, "alg": "EdDSA", "jwk": org.jwk, "x5u": "https://keys.example/"}, claims, edSign(org.priv)), ErrBadHeader},
		{"alg none", rawJWS(map[string]any{"typ": TypProof, "alg": "none", "jwk": org.jwk}, claims, func([]byte) []byte { return nil }), ErrBadAlgorithm},
		{"oversized", strings.Repeat("x", MaxProofLen+1), ErrTokenTooLarge},
	}
	// Tampering with a proof whose header is already cached.
	good := proofFor(org, "GET", url, grant, now, "j9")
	parts := strings.Split(good, ".")
	cases = append(cases,
		struct {
			name  string
			proof string
			want  *Error
		}{"cached header, altered signature", parts[0] + "." + parts[1] + "." + flip(parts[2]), ErrBadSignature},
		struct {
			name  string
			proof string
			want  *Error
		}{"cached header, altered claims", parts[0] + "." + b64.EncodeToString([]byte(`{"jti":"x","htm":"GET","htu":"`+url+`","iat":1}`)) + "." + parts[2], ErrBadSignature},
		struct {
			name  string
			proof string
			want  *Error
		}{"cached header, no signature", parts[0] + "." + parts[1] + ".", ErrBadSignature},
	)
	// Every case, with no cache and with a cache that already holds the
	// organization's header: the answer is the same.
	warm := NewProofCache()
	if _, err := VerifyProof(good, ProofCheck{Method: "GET", URL: url, AccessToken: grant, Now: now, Skew: ClockSkew, Cache: warm}); err != nil {
		t.Fatal(err)
	}
	for _, cache := range []*ProofCache{nil, warm} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/cached=%v", tc.name, cache != nil), func(t *testing.T) {
				c := chk
				c.Cache = cache
				_, err := VerifyProof(tc.proof, c)
				wantIs(t, err, tc.want)
				if CodeOf(err) != "invalid_dpop_proof" {
					t.Fatalf("wire code %s", CodeOf(err))
				}
			})
		}
	}
	// A cached header still yields the right key and thumbprint.
	p2, err := VerifyProof(proofFor(org, "GET", url, grant, now, "j10"), ProofCheck{Method: "GET", URL: url, AccessToken: grant, Now: now, Skew: ClockSkew, Cache: warm})
	if err != nil || p2.JKT != org.jkt {
		t.Fatalf("cached verification: %+v %v", p2, err)
	}
}

func TestProofES256(t *testing.T) {
	cache := NewProofCache()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k},
		(&jose.SignerOptions{EmbedJWK: true}).WithType(TypProof))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(ProofClaims{ID: "e1", Method: "POST", URL: iss + "/v1/token", IssuedAt: now.Unix()})
	obj, _ := signer.Sign(payload)
	tok, _ := obj.CompactSerialize()
	want, _ := Thumbprint(&jose.JSONWebKey{Key: k.Public()})
	for range 2 { // the second time through the cache
		p, err := VerifyProof(tok, ProofCheck{Method: "POST", URL: iss + "/v1/token", Now: now, Skew: ClockSkew, Cache: cache})
		if err != nil {
			t.Fatal(err)
		}
		if p.JKT != want {
			t.Fatalf("jkt %s != %s", p.JKT, want)
		}
	}
	parts := strings.Split(tok, ".")
	if _, err := VerifyProof(parts[0]+"."+parts[1]+"."+flip(parts[2]), ProofCheck{Method: "POST", URL: iss + "/v1/token", Now: now, Skew: ClockSkew, Cache: cache}); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("cached ES256 with a bad signature: %v", err)
	}
}

// A vault.moved notice must name where the vault went, as an issuer URL.
func TestMovedNoticeNeedsLocation(t *testing.T) {
	s := newTestSigner(t)
	base := NoticeClaims{Issuer: "https://vault.example", Audience: "org", Subject: "pairwise", ID: "n1", IssuedAt: 1, Event: NoticeVaultMoved}
	for loc, ok := range map[string]bool{"": false, "https://new.example": true, "https://new.example/x": false, "http://new.example": false} {
		c := base
		c.Location = loc
		tok, err := SignNotice(s, c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := VerifyNotice(tok, s.key, "https://vault.example", "org")
		if ok != (err == nil) {
			t.Errorf("location %q: %v", loc, err)
		}
		if ok && got.Location != loc {
			t.Errorf("location %q read back as %q", loc, got.Location)
		}
	}
}
