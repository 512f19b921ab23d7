package api

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

// Tests for the deviations from the OAuth RFCs found by integrators
// (issue 12): each one fails on the old behaviour.

// RFC 8628 §3.2: the device authorization response is 200 with
// device_code, user_code, verification_uri(_complete), expires_in and
// interval; request_id stays as an alias. The owner sees the same code.
func TestDeviceAuthorizationResponse(t *testing.T) {
	e := newEnv(t)
	o := e.org("EdDSA")
	signed, err := o.SignRequest(t.Context(), askProfile("name"))
	if err != nil {
		t.Fatal(err)
	}
	// As a device-flow client sends it: a form with the request object.
	r := e.do("POST", "/v1/requests", "", strings.NewReader(url.Values{"request": {signed}, "client_id": {o.Key().Thumbprint()}}.Encode()),
		"Content-Type", "application/x-www-form-urlencoded")
	if r.status != 200 {
		t.Fatalf("status %d, want 200: %s", r.status, r.body)
	}
	var tk client.Ticket
	r.json(t, &tk)
	if tk.DeviceCode == "" || tk.RequestID != tk.DeviceCode || !regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`).MatchString(tk.UserCode) ||
		tk.VerificationURI != e.srv.URL+"/ui/requests" || tk.VerificationURIComplete != e.srv.URL+"/ui/requests/"+tk.DeviceCode ||
		tk.ExpiresIn <= 0 || tk.Interval <= 0 {
		t.Fatalf("answer %s", r.body)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", r.header.Get("Cache-Control"))
	}
	req, err := e.v.GetRequest(t.Context(), tk.DeviceCode)
	if err != nil || req.UserCode != tk.UserCode {
		t.Fatalf("the owner sees code %q, the organization %q (%v)", req.UserCode, tk.UserCode, err)
	}
	c, ck := e.uiLogin(t)
	if _, page := e.uiGet(t, c, ck, "/ui/requests/"+tk.DeviceCode); !strings.Contains(page, tk.UserCode) {
		t.Fatal("the request page does not show the user code")
	}
}

// RFC 9101 §5: a client_id parameter beside the request object must be
// its key's thumbprint; RFC 9864: discovery names Ed25519 and EdDSA.
func TestRequestClientIDAndAlgorithms(t *testing.T) {
	e := newEnv(t)
	o := e.org("EdDSA")
	signed, _ := o.SignRequest(t.Context(), askProfile("name"))
	r := e.do("POST", "/v1/requests", "", strings.NewReader(url.Values{"request": {signed}, "client_id": {"someone-else"}}.Encode()),
		"Content-Type", "application/x-www-form-urlencoded")
	if r.status != 400 || r.errCode(t) != "invalid_request_object" || !strings.Contains(string(r.body), "RFC 9101") {
		t.Fatalf("mismatched client_id: %d %s", r.status, r.body)
	}
	r = e.do("GET", "/.well-known/oauth-authorization-server", "", nil)
	var md map[string]any
	r.json(t, &md)
	for _, k := range []string{"dpop_signing_alg_values_supported", "request_object_signing_alg_values_supported"} {
		if s := fmt.Sprint(md[k]); !strings.Contains(s, "Ed25519") || !strings.Contains(s, "EdDSA") || !strings.Contains(s, "ES256") {
			t.Errorf("%s = %s", k, s)
		}
	}
}

// Introspection and revocation as OAuth libraries call them (RFC 7662,
// RFC 7009): the grant as Authorization: DPoP with a bound proof, or for
// revocation the token alone; failed authentication is invalid_client,
// and metadata names only registered methods.
func TestIntrospectionAndRevocationAuth(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.record("profile", `{"name":"Ada"}`)
	o := e.org("EdDSA")
	tok := e.grantFor(o, askProfile("name"), vault.Approval{}).AccessToken
	introspect := func(hdr ...string) resp {
		return e.do("POST", "/v1/introspect", "", strings.NewReader(url.Values{"token": {tok}}.Encode()),
			append([]string{"Content-Type", "application/x-www-form-urlencoded"}, hdr...)...)
	}
	r := introspect()
	if r.status != 401 || r.errCode(t) != "invalid_client" || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "DPoP ") {
		t.Fatalf("no authentication: %d %v %s", r.status, r.header, r.body)
	}
	r = introspect("Authorization", "Bearer "+tok)
	if r.status != 401 || r.errCode(t) != "invalid_client" {
		t.Fatalf("bearer: %d %s", r.status, r.body)
	}
	proof, _ := o.Key().Proof("POST", e.srv.URL+"/v1/introspect", tok, time.Now())
	r = introspect("Authorization", "DPoP "+tok, "DPoP", proof)
	if r.status != 200 || !strings.Contains(string(r.body), `"active":true`) {
		t.Fatalf("grant as access token: %d %s", r.status, r.body)
	}
	// A proof not bound to the presented grant (no ath) fails the client.
	unbound, _ := o.Key().Proof("POST", e.srv.URL+"/v1/introspect", "", time.Now())
	r = introspect("Authorization", "DPoP "+tok, "DPoP", unbound)
	if r.status != 401 || r.errCode(t) != "invalid_client" {
		t.Fatalf("unbound proof: %d %s", r.status, r.body)
	}
	// Another organization's key learns nothing about the grant.
	other := e.org("ES256")
	otherProof, _ := other.Key().Proof("POST", e.srv.URL+"/v1/introspect", "", time.Now())
	if r = introspect("DPoP", otherProof); r.status != 200 || strings.TrimSpace(string(r.body)) != `{"active":false}` {
		t.Fatalf("another key: %d %s", r.status, r.body)
	}

	r = e.do("GET", "/.well-known/oauth-authorization-server", "", nil)
	var md map[string]any
	r.json(t, &md)
	if fmt.Sprint(md["revocation_endpoint_auth_methods_supported"]) != "[none]" || md["introspection_endpoint_auth_methods_supported"] != nil {
		t.Fatalf("auth methods in metadata: %v / %v", md["revocation_endpoint_auth_methods_supported"], md["introspection_endpoint_auth_methods_supported"])
	}

	// RFC 7009 with "none": the token alone releases it; the next read fails.
	r = e.do("POST", "/v1/revoke", "", strings.NewReader(url.Values{"token": {tok}, "token_type_hint": {"access_token"}}.Encode()),
		"Content-Type", "application/x-www-form-urlencoded")
	if r.status != 200 {
		t.Fatalf("release: %d %s", r.status, r.body)
	}
	if _, err := o.ReadCollection(ctx, tok, "profile", 0, ""); !client.IsCode(err, "invalid_token") {
		t.Fatalf("read after release: %v", err)
	}
	// A junk token is not an error (RFC 7009 §2.2).
	r = e.do("POST", "/v1/revoke", "", strings.NewReader(url.Values{"token": {"junk"}}.Encode()), "Content-Type", "application/x-www-form-urlencoded")
	if r.status != 200 {
		t.Fatalf("junk: %d %s", r.status, r.body)
	}
}

// RFC 9396 §5: an unknown authorization_details type has its own error.
// RFC 9728: protected-resource metadata, named by every DPoP challenge.
func TestAuthorizationDetailsTypeAndResourceMetadata(t *testing.T) {
	e := newEnv(t)
	o := e.org("EdDSA")
	req := askProfile("name")
	req.AuthorizationDetails[0].Type = "payment_initiation"
	signed, _ := o.SignRequest(t.Context(), req)
	r := e.do("POST", "/v1/requests", "", strings.NewReader(signed), "Content-Type", "application/oauth-authz-req+jwt")
	if r.status != 400 || r.errCode(t) != "invalid_authorization_details" {
		t.Fatalf("unknown type: %d %s", r.status, r.body)
	}
	r = e.do("GET", "/.well-known/oauth-protected-resource", "", nil)
	var pr struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
		DPoPRequired         bool     `json:"dpop_bound_access_tokens_required"`
		DPoPAlgs             []string `json:"dpop_signing_alg_values_supported"`
	}
	r.json(t, &pr)
	if r.status != 200 || pr.Resource != e.srv.URL || len(pr.AuthorizationServers) != 1 || pr.AuthorizationServers[0] != e.srv.URL || !pr.DPoPRequired || len(pr.DPoPAlgs) != 3 {
		t.Fatalf("resource metadata: %d %s", r.status, r.body)
	}
	r = e.do("GET", "/v1/data/profile", "", nil)
	if ch := r.header.Get("WWW-Authenticate"); r.status != 401 || !strings.Contains(ch, `resource_metadata="`+e.srv.URL+`/.well-known/oauth-protected-resource"`) {
		t.Fatalf("challenge: %d %q", r.status, ch)
	}
}

// IEEE 7012, first step: the owner's terms proffer roster agreements by
// reference, and /.well-known/myterms publishes them; malformed references
// are refused with a reason each.
func TestMyTermsDiscovery(t *testing.T) {
	e := newEnv(t)
	var md map[string]any
	r := e.do("GET", "/.well-known/myterms", "", nil)
	r.json(t, &md)
	if r.status != 200 || md["standard"] != "IEEE 7012-2025" || fmt.Sprint(md["proffered"]) != "[]" || md["terms_hash"] == "" {
		t.Fatalf("myterms: %d %s", r.status, r.body)
	}
	cur := e.v.CurrentTerms().Terms
	sum := strings.Repeat("ab", 32)
	cur.Agreements = []policy.AgreementRef{{ID: "SD-BASE", URL: "https://customercommons.org/p7012/SD-BASE", SHA256: sum, Version: "1"}}
	body, _ := json.Marshal(cur)
	if r = e.do("PUT", "/v1/owner/terms", e.token, strings.NewReader(string(body)), "Content-Type", "application/json"); r.status != 200 {
		t.Fatalf("set terms: %d %s", r.status, r.body)
	}
	r = e.do("GET", "/.well-known/myterms", "", nil)
	if !strings.Contains(string(r.body), `"id":"SD-BASE"`) || !strings.Contains(string(r.body), sum) {
		t.Fatalf("proffered: %s", r.body)
	}
	cur.Agreements = []policy.AgreementRef{{ID: "sd base", URL: "http://example.org/x", SHA256: "nothex"}, {ID: "PDC-AI", URL: "https://x.example", SHA256: sum}, {ID: "PDC-AI", URL: "https://x.example", SHA256: sum}}
	body, _ = json.Marshal(cur)
	r = e.do("PUT", "/v1/owner/terms", e.token, strings.NewReader(string(body)), "Content-Type", "application/json")
	var eb struct {
		Reasons []string `json:"reasons"`
	}
	r.json(t, &eb)
	joined := strings.Join(eb.Reasons, " | ")
	if r.status != 400 || !strings.Contains(joined, "roster id") || !strings.Contains(joined, "https") || !strings.Contains(joined, "hex SHA-256") || !strings.Contains(joined, "proffered twice") {
		t.Fatalf("bad references: %d %s", r.status, r.body)
	}
}
