package policy

import (
	"errors"
	"strings"
	"testing"
)

// Request objects as JOSE and JAR libraries write them (issue 12): the
// RFC 9864 algorithm name, typ with "application/", a kid next to the
// jwk, aud as an array, client_id, sub and nbf, parameters as strings.
func TestRequestObjectAsLibrariesWriteIt(t *testing.T) {
	o := newOrgKey(t)
	claims := func(mod func(m map[string]any)) map[string]any {
		m := map[string]any{
			"iss": o.jkt, "sub": o.jkt, "client_id": o.jkt, "aud": []string{"https://other.example", iss},
			"iat": now.Unix(), "nbf": now.Unix() - 5, "exp": now.Unix() + 300, "jti": "j1",
			"client_name": "Acme", "client_uri": "https://acme.example", "purpose": "service_delivery",
			"authorization_details": []map[string]any{{"type": DetailType, "collection": "profile", "fields": []string{"name"}}},
			"duration":              "3600", "retention": "0", "third_party_sharing": "false", "terms_hash": "H",
		}
		if mod != nil {
			mod(m)
		}
		return m
	}
	header := func(mod func(h map[string]any)) map[string]any {
		h := map[string]any{"typ": "application/oauth-authz-req+jwt", "alg": "Ed25519", "kid": "key-1", "jwk": o.jwk}
		if mod != nil {
			mod(h)
		}
		return h
	}
	r, err := ParseRequest(rawJWS(header(nil), claims(nil), edSign(o.priv)), iss, now)
	if err != nil {
		t.Fatal(err)
	}
	if r.ClientID != o.jkt || r.Duration != 3600 || r.Retention == nil || *r.Retention != 0 || r.ThirdPartySharing {
		t.Fatalf("parsed %+v", r.RequestClaims)
	}
	// Numbers and one aud still work; EdDSA and the bare typ too.
	if _, err := ParseRequest(rawJWS(header(func(h map[string]any) { h["alg"], h["typ"] = "EdDSA", TypRequest }),
		claims(func(m map[string]any) { m["duration"], m["aud"], m["third_party_sharing"] = 3600, iss, true }), edSign(o.priv)), iss, now); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		hdr  func(map[string]any)
		mod  func(map[string]any)
		says string
		is   error
	}{
		{"client_id of another key", nil, func(m map[string]any) { m["client_id"] = "someone-else" }, "client_id: if present", nil},
		{"sub of another key", nil, func(m map[string]any) { m["sub"] = "someone-else" }, "sub: if present", nil},
		{"nbf in the future", nil, func(m map[string]any) { m["nbf"] = now.Unix() + 3600 }, "nbf", ErrRequestFuture},
		{"aud array without this vault", nil, func(m map[string]any) { m["aud"] = []string{"https://other.example"} }, "", ErrRequestAudience},
		{"empty aud array", nil, func(m map[string]any) { m["aud"] = []string{} }, "aud:", nil},
		{"duration not a number", nil, func(m map[string]any) { m["duration"] = "an hour" }, "duration: a whole number", nil},
		{"third_party_sharing not a boolean", nil, func(m map[string]any) { m["third_party_sharing"] = "no" }, "third_party_sharing", nil},
		{"unknown claim", nil, func(m map[string]any) { m["scope"] = "everything" }, "unknown member", nil},
		{"other media type", func(h map[string]any) { h["typ"] = "application/jwt" }, nil, "", ErrWrongType},
		{"typ with another top-level type", func(h map[string]any) { h["typ"] = "text/oauth-authz-req+jwt" }, nil, "", ErrWrongType},
		{"jku next to the jwk", func(h map[string]any) { h["jku"] = "https://keys.example" }, nil, "", ErrBadHeader},
		{"an algorithm not accepted", func(h map[string]any) { h["alg"] = "ES512" }, nil, "", ErrBadAlgorithm},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRequest(rawJWS(header(tc.hdr), claims(tc.mod), edSign(o.priv)), iss, now)
			var pe *Error
			if !errors.As(err, &pe) || !errors.Is(err, ErrInvalidRequestObject) {
				t.Fatalf("error %v, want invalid_request_object", err)
			}
			if tc.says != "" && !strings.Contains(strings.Join(pe.Reasons, " | "), tc.says) {
				t.Fatalf("reasons %q lack %q", pe.Reasons, tc.says)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("error %v, want cause %v", err, tc.is)
			}
		})
	}
	// An Ed25519-named signature by another key does not verify.
	other := newOrgKey(t)
	if _, err := ParseRequest(rawJWS(header(nil), claims(nil), edSign(other.priv)), iss, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("a forged Ed25519 signature: %v", err)
	}
}

// DPoP proofs as libraries write them: RFC 9864's Ed25519, typ with
// "application/", a kid next to the jwk; both with and without the cache.
func TestProofAsLibrariesWriteIt(t *testing.T) {
	org := newOrgKey(t)
	s := newTestSigner(t)
	grant, _ := SignGrant(s, grantClaims(org.jkt))
	url := iss + "/v1/data/profile"
	claims := ProofClaims{ID: "j", Method: "GET", URL: url, IssuedAt: now.Unix(), AccessToken: ATH(grant)}
	proof := rawJWS(map[string]any{"typ": "application/dpop+jwt", "alg": "Ed25519", "kid": "k1", "jwk": org.jwk}, claims, edSign(org.priv))
	cache := NewProofCache()
	for _, c := range []*ProofCache{nil, cache, cache} {
		p, err := VerifyProof(proof, ProofCheck{Method: "GET", URL: url, AccessToken: grant, Now: now, Skew: ClockSkew, Cache: c})
		if err != nil || p.JKT != org.jkt {
			t.Fatalf("proof %+v %v", p, err)
		}
	}
	// A cached Ed25519 header does not make a forged signature pass.
	forged := rawJWS(map[string]any{"typ": "application/dpop+jwt", "alg": "Ed25519", "kid": "k1", "jwk": org.jwk}, claims, edSign(newOrgKey(t).priv))
	if _, err := VerifyProof(forged, ProofCheck{Method: "GET", URL: url, AccessToken: grant, Now: now, Skew: ClockSkew, Cache: cache}); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged: %v", err)
	}
}
