package api

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/pdvault/pdvault/api/client"
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
