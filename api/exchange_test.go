package api

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

// org returns an organization client with a fresh key.
func (e *testEnv) org(alg string) *client.Org {
	e.t.Helper()
	k, err := client.GenerateKey(alg)
	if err != nil {
		e.t.Fatal(err)
	}
	o, err := client.NewOrg(e.srv.URL, k, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return o
}

func (e *testEnv) record(coll, body string) vault.Record {
	e.t.Helper()
	r, err := e.v.CreateRecord(e.t.Context(), coll, []byte(body))
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func askProfile(fields ...string) client.AccessRequest {
	return client.AccessRequest{
		ClientName: "Acme Bikes", ClientURI: "https://bikes.example", Purpose: "service_delivery",
		PurposeText:          "deliver your bicycle",
		AuthorizationDetails: []client.AuthorizationDetail{client.Detail("profile", fields...), client.Detail("transactions", "amount", "date")},
		Duration:             3600,
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if !client.IsCode(err, code) {
		t.Fatalf("error = %v, want code %s", err, code)
	}
}

// grantFor runs ask → approve (as given) → collect and returns the token.
func (e *testEnv) grantFor(o *client.Org, req client.AccessRequest, a vault.Approval) client.Token {
	e.t.Helper()
	ctx := e.t.Context()
	tk, err := o.Request(ctx, req)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.v.Approve(ctx, tk.RequestID, a); err != nil {
		e.t.Fatal(err)
	}
	tok, err := o.Poll(ctx, tk.RequestID)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// The whole story over HTTP: discovery, terms, a signed request, the owner
// narrows it, polling, the grant, reads of only the granted fields,
// introspection, revocation and the refused read after it, and an audit
// log that verifies and records each step.
func TestExchangeEndToEnd(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	rec := e.record("profile", `{"name":"Ada","email":"ada@example.org","birth_date":"1815-12-10","phone":"123"}`)
	e.record("transactions", `{"amount":12,"date":"2026-01-01","merchant":"Shop"}`)
	e.record("health", `{"allergy":"penicillin"}`)
	o := e.org("EdDSA")

	md, err := o.Metadata(ctx)
	if err != nil || md.Issuer != e.srv.URL || md.TokenEndpoint != e.srv.URL+"/v1/token" || md.RequestEndpoint != e.srv.URL+"/v1/requests" {
		t.Fatalf("metadata %+v %v", md, err)
	}
	jwks, err := o.JWKS(ctx)
	if err != nil || len(jwks.Keys) != 1 || jwks.Keys[0].Algorithm != "EdDSA" || !jwks.Keys[0].IsPublic() {
		t.Fatalf("jwks %+v %v", jwks, err)
	}
	terms, err := o.Terms(ctx)
	if err != nil || len(terms.Hash) != 43 || !strings.Contains(terms.Text, "service_delivery") {
		t.Fatalf("terms %+v %v", terms, err)
	}

	tk, err := o.Request(ctx, askProfile("name", "email", "birth_date"))
	if err != nil {
		t.Fatal(err)
	}
	if tk.Interval != 5 || tk.ExpiresIn != 72*3600 {
		t.Fatalf("ticket %+v", tk)
	}
	_, err = o.Poll(ctx, tk.RequestID)
	wantCode(t, err, "authorization_pending")
	_, err = o.Poll(ctx, tk.RequestID)
	wantCode(t, err, "slow_down")

	// The owner sees the request, with the signed original, and narrows it.
	r := e.do("GET", "/v1/owner/requests?status=pending", e.token, nil)
	var lst struct{ Requests []vault.Request }
	r.json(t, &lst)
	if len(lst.Requests) != 1 || lst.Requests[0].ClientName != "Acme Bikes" || lst.Requests[0].ClientID != o.Key().Thumbprint() || lst.Requests[0].Signed != "" {
		t.Fatalf("pending requests (a listing leaves the signed original out): %s", r.body)
	}
	var full vault.Request
	e.do("GET", "/v1/owner/requests/"+tk.RequestID, e.token, nil).json(t, &full)
	if full.Signed == "" {
		t.Fatal("the request without its signed original")
	}
	r = e.do("POST", "/v1/owner/requests/"+tk.RequestID+"/approve", e.token,
		strings.NewReader(`{"authorization_details":[{"collection":"profile","fields":["name","email"]}],"duration":1800}`))
	if r.status != 200 {
		t.Fatalf("approve: %d %s", r.status, r.body)
	}
	tok, err := o.Poll(ctx, tk.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	if tok.TokenType != "DPoP" || tok.ExpiresIn > 1800 || tok.ExpiresIn < 1790 || len(tok.AuthorizationDetails) != 1 {
		t.Fatalf("token %+v", tok)
	}
	_, err = o.Poll(ctx, tk.RequestID)
	wantCode(t, err, "invalid_grant") // collected once only

	// Anyone can verify the grant offline with the JWKS.
	key := jwks.Keys[0]
	g, err := policy.VerifyGrant(tok.AccessToken, policy.GrantCheck{Issuer: e.srv.URL, Audience: e.srv.URL, Now: time.Now(), Skew: policy.ClockSkew,
		Key: func(kid string) (ed25519Pub, bool) { return key.Key.(ed25519Pub), kid == key.KeyID }})
	if err != nil || g.Confirmation.JKT != o.Key().Thumbprint() || g.ClientID != o.Key().Thumbprint() || g.Purpose != "service_delivery" {
		t.Fatalf("offline verification: %+v %v", g, err)
	}

	page, err := o.ReadCollection(ctx, tok.AccessToken, "profile", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Records) != 1 || len(page.Records[0].Data) != 2 || string(page.Records[0].Data["name"]) != `"Ada"` || page.Records[0].Data["birth_date"] != nil {
		t.Fatalf("read: %+v", page)
	}
	// Record ids are pairwise: the organization uses the id it was shown,
	// not the vault's own.
	if page.Records[0].ID == rec.ID {
		t.Fatal("the organization saw the vault's own record id")
	}
	if _, err := o.ReadRecord(ctx, tok.AccessToken, "profile", rec.ID); !client.IsCode(err, "not_found") {
		t.Fatalf("reading by the vault's own id: %v", err)
	}
	one, err := o.ReadRecord(ctx, tok.AccessToken, "profile", page.Records[0].ID)
	if err != nil || len(one.Data) != 2 || one.Data["phone"] != nil {
		t.Fatalf("read one: %+v %v", one, err)
	}
	// Transactions were asked for but not approved: like a missing collection.
	_, err = o.ReadCollection(ctx, tok.AccessToken, "transactions", 0, "")
	wantCode(t, err, "not_found")
	_, err = o.ReadCollection(ctx, tok.AccessToken, "nonexistent", 0, "")
	wantCode(t, err, "not_found")
	_, err = o.ReadRecord(ctx, tok.AccessToken, "profile", "aaaaaaaaaaaaaaaaaaaaaaaaaa")
	wantCode(t, err, "not_found")

	in, err := o.Introspect(ctx, tok.AccessToken)
	if err != nil || !in.Active || in.ClientID != o.Key().Thumbprint() {
		t.Fatalf("introspect: %+v %v", in, err)
	}
	// Another organization learns nothing about this grant.
	in2, err := e.org("ES256").Introspect(ctx, tok.AccessToken)
	if err != nil || in2.Active {
		t.Fatalf("introspect by another org: %+v %v", in2, err)
	}

	r = e.do("POST", "/v1/owner/grants/"+tok.GrantID+"/revoke", e.token, nil)
	if r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	_, err = o.ReadCollection(ctx, tok.AccessToken, "profile", 0, "")
	wantCode(t, err, "invalid_token")
	if in, _ := o.Introspect(ctx, tok.AccessToken); in.Active {
		t.Fatal("revoked grant introspects active")
	}
	r = e.do("POST", "/v1/owner/grants/"+tok.GrantID+"/revoke", e.token, nil)
	if r.status != 409 || r.errCode(t) != "already_revoked" {
		t.Fatalf("second revoke: %d %s", r.status, r.body)
	}

	r = e.do("GET", "/v1/owner/audit/verify", e.token, nil)
	var rep vault.AuditReport
	r.json(t, &rep)
	if !rep.OK || rep.Entries < 8 {
		t.Fatalf("audit verify: %s", r.body)
	}
	r = e.do("GET", "/v1/owner/audit?limit=100", e.token, nil)
	var ap vault.AuditPage
	r.json(t, &ap)
	var events []string
	for i := len(ap.Entries) - 1; i >= 0; i-- {
		events = append(events, ap.Entries[i].Event+"/"+ap.Entries[i].Outcome)
	}
	want := "terms.changed/ record.created/ record.created/ record.created/ request.received/allowed request.approved/allowed grant.issued/allowed data.read/allowed data.read/allowed " +
		"data.refused/denied data.refused/denied grant.revoked/ data.refused/denied"
	if strings.Join(events, " ") != want {
		t.Fatalf("audit events:\n got %s\nwant %s", strings.Join(events, " "), want)
	}
}

// The HTTP-level attacks from the issue that need the whole server.
func TestExchangeAttacksOverHTTP(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.record("profile", `{"name":"Ada","email":"a@x"}`)
	acme, other := e.org("EdDSA"), e.org("ES256")
	tok := e.grantFor(acme, askProfile("name"), vault.Approval{})

	raw := func(method, path, authz, proof string) resp {
		return e.do(method, path, "", nil, "Authorization", authz, "DPoP", proof)
	}
	proof := func(k *client.Key, method, path, at string) string {
		p, err := k.Proof(method, e.srv.URL+path, at, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	path := "/v1/data/profile"

	t.Run("replayed proof", func(t *testing.T) {
		p := proof(acme.Key(), "GET", path, tok.AccessToken)
		if r := raw("GET", path, "DPoP "+tok.AccessToken, p); r.status != 200 {
			t.Fatalf("first use: %d %s", r.status, r.body)
		}
		r := raw("GET", path, "DPoP "+tok.AccessToken, p)
		if r.status != 401 || r.errCode(t) != "invalid_dpop_proof" || !strings.Contains(string(r.body), "already used") {
			t.Fatalf("replay: %d %s", r.status, r.body)
		}
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), `DPoP error="invalid_dpop_proof"`) {
			t.Fatalf("challenge %q", r.header.Get("WWW-Authenticate"))
		}
	})
	t.Run("grant for another organization", func(t *testing.T) {
		r := raw("GET", path, "DPoP "+tok.AccessToken, proof(other.Key(), "GET", path, tok.AccessToken))
		if r.status != 401 || r.errCode(t) != "invalid_token" || !strings.Contains(string(r.body), "bound to another key") {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("proof for another URL", func(t *testing.T) {
		r := raw("GET", path, "DPoP "+tok.AccessToken, proof(acme.Key(), "GET", "/v1/data/health", tok.AccessToken))
		if r.status != 401 || !strings.Contains(string(r.body), "another URL") {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("proof for another method", func(t *testing.T) {
		r := raw("GET", path, "DPoP "+tok.AccessToken, proof(acme.Key(), "POST", path, tok.AccessToken))
		if r.status != 401 || !strings.Contains(string(r.body), "another HTTP method") {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("bearer scheme for a DPoP grant", func(t *testing.T) {
		r := raw("GET", path, "Bearer "+tok.AccessToken, proof(acme.Key(), "GET", path, tok.AccessToken))
		if r.status != 401 || r.errCode(t) != "invalid_token" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("no proof", func(t *testing.T) {
		r := raw("GET", path, "DPoP "+tok.AccessToken, "")
		if r.status != 401 || r.errCode(t) != "invalid_dpop_proof" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("proof as grant", func(t *testing.T) {
		p := proof(acme.Key(), "GET", path, "")
		r := raw("GET", path, "DPoP "+p, proof(acme.Key(), "GET", path, p))
		if r.status != 401 || r.errCode(t) != "invalid_token" || !strings.Contains(string(r.body), "wrong type") {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("huge token", func(t *testing.T) {
		big := strings.Repeat("a.", 30000)
		r := raw("GET", path, "DPoP "+big, proof(acme.Key(), "GET", path, big))
		if r.status != 401 || r.errCode(t) != "invalid_token" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("token endpoint with another key", func(t *testing.T) {
		tk, err := acme.Request(ctx, askProfile("name"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = other.Poll(ctx, tk.RequestID)
		wantCode(t, err, "invalid_grant")
		e.v.Approve(ctx, tk.RequestID, vault.Approval{})
		_, err = other.Poll(ctx, tk.RequestID)
		wantCode(t, err, "invalid_grant")
		if _, err := acme.Poll(ctx, tk.RequestID); err != nil {
			t.Fatalf("the right key cannot collect: %v", err)
		}
	})
	t.Run("stale terms hash", func(t *testing.T) {
		old := e.v.CurrentTerms()
		nt := old.Terms
		nt.Text += " Changed."
		b, _ := json.Marshal(nt)
		if r := e.do("PUT", "/v1/owner/terms", e.token, strings.NewReader(string(b))); r.status != 200 {
			t.Fatalf("set terms: %d %s", r.status, r.body)
		}
		req := askProfile("name")
		req.TermsHash = old.Hash
		_, err := acme.Request(ctx, req)
		var ce *client.Error
		if !errorsAs(err, &ce) || ce.Status != 422 || ce.Code != "terms_violation" || len(ce.Reasons) != 1 || !strings.Contains(ce.Reasons[0], "not the current terms") {
			t.Fatalf("stale terms: %v", err)
		}
		// The old terms remain retrievable by hash.
		if r := e.do("GET", "/v1/terms/"+old.Hash, "", nil); r.status != 200 || !strings.Contains(string(r.body), `"current":false`) {
			t.Fatalf("old terms: %d %s", r.status, r.body)
		}
	})
	t.Run("request breaking the terms lists every reason", func(t *testing.T) {
		req := askProfile("name")
		req.Purpose = "advertising"
		req.Duration = 400 * 24 * 3600
		req.ThirdPartySharing = true
		_, err := acme.Request(ctx, req)
		var ce *client.Error
		if !errorsAs(err, &ce) || ce.Status != 422 || len(ce.Reasons) != 3 {
			t.Fatalf("non-compliant request: %v", err)
		}
	})
	t.Run("replayed request jti", func(t *testing.T) {
		signed, err := acme.SignRequest(ctx, askProfile("name"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := acme.SendSigned(ctx, signed); err != nil {
			t.Fatal(err)
		}
		_, err = acme.SendSigned(ctx, signed)
		wantCode(t, err, "invalid_request_object")
	})
	t.Run("request for another vault", func(t *testing.T) {
		req := askProfile("name")
		req.Audience = "https://other-vault.example"
		_, err := acme.Request(ctx, req)
		wantCode(t, err, "invalid_request_object")
	})
	t.Run("request not signed by its embedded key", func(t *testing.T) {
		signed, _ := acme.SignRequest(ctx, askProfile("name"))
		parts := strings.Split(signed, ".")
		forged, _ := other.SignRequest(ctx, askProfile("name", "email"))
		_, err := acme.SendSigned(ctx, parts[0]+"."+strings.Split(forged, ".")[1]+"."+parts[2])
		wantCode(t, err, "invalid_request_object")
	})
	t.Run("token endpoint bad input", func(t *testing.T) {
		for _, tc := range []struct {
			ct, body, code string
		}{
			{"application/json", `{}`, "invalid_request"},
			{"application/x-www-form-urlencoded", "grant_type=password", "unsupported_grant_type"},
			{"application/x-www-form-urlencoded", "grant_type=" + url.QueryEscape("urn:ietf:params:oauth:grant-type:device_code"), "invalid_request"},
			{"application/x-www-form-urlencoded", "grant_type=" + url.QueryEscape("urn:ietf:params:oauth:grant-type:device_code") + "&device_code=x", "invalid_dpop_proof"},
		} {
			r := e.do("POST", "/v1/token", "", strings.NewReader(tc.body), "Content-Type", tc.ct)
			if r.status != 400 || r.errCode(t) != tc.code {
				t.Errorf("%s: %d %s", tc.body, r.status, r.body)
			}
		}
	})
}

// A read racing a revocation: once Revoke has returned, no read succeeds.
func TestRevocationRace(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.record("profile", `{"name":"Ada"}`)
	o := e.org("EdDSA")
	tok := e.grantFor(o, askProfile("name"), vault.Approval{})
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		revokedAt time.Time
		lateOK    int
	)
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				_, err := o.ReadCollection(context.Background(), tok.AccessToken, "profile", 0, "")
				mu.Lock()
				if err == nil && !revokedAt.IsZero() && start.After(revokedAt) {
					lateOK++
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	if _, err := e.v.Revoke(ctx, tok.GrantID); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	revokedAt = time.Now()
	mu.Unlock()
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	if lateOK != 0 {
		t.Fatalf("%d reads that started after the revocation returned data", lateOK)
	}
	if _, err := o.ReadCollection(ctx, tok.AccessToken, "profile", 0, ""); !client.IsCode(err, "invalid_token") {
		t.Fatalf("read after revocation: %v", err)
	}
}

func TestDiscoveryAndTermsArePublic(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/.well-known/oauth-authorization-server", "/.well-known/jwks.json", "/v1/terms"} {
		if r := e.do("GET", p, "", nil); r.status != 200 {
			t.Errorf("%s: %d", p, r.status)
		}
	}
	if r := e.do("GET", "/v1/terms/nope", "", nil); r.status != 404 || r.errCode(t) != "not_found" {
		t.Fatalf("unknown terms hash: %d %s", r.status, r.body)
	}
	r := e.do("PUT", "/v1/owner/terms", e.token, strings.NewReader(`{"title":""}`))
	if r.status != 400 || r.errCode(t) != "invalid_terms" {
		t.Fatalf("bad terms: %d %s", r.status, r.body)
	}
	var eb errorBody
	r.json(t, &eb)
	if len(eb.Reasons) < 3 {
		t.Fatalf("bad terms should list reasons: %s", r.body)
	}
	if r := e.do("PUT", "/v1/owner/terms", "", strings.NewReader(`{}`)); r.status != 401 {
		t.Fatalf("terms change without token: %d", r.status)
	}
}

func TestOwnerExchangeBadInput(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	o := e.org("EdDSA")
	tk, err := o.Request(ctx, askProfile("name", "email"))
	if err != nil {
		t.Fatal(err)
	}
	p := "/v1/owner/requests/" + tk.RequestID
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"approve wider", "POST", p + "/approve", `{"authorization_details":[{"collection":"profile","fields":["phone"]}]}`, 400, "invalid_scope"},
		{"approve other collection", "POST", p + "/approve", `{"authorization_details":[{"collection":"health","fields":["x"]}]}`, 400, "invalid_scope"},
		{"approve longer", "POST", p + "/approve", `{"duration":999999}`, 400, "invalid_duration"},
		{"approve negative", "POST", p + "/approve", `{"duration":-1}`, 400, "invalid_duration"},
		{"approve bad json", "POST", p + "/approve", `{"duration":`, 400, "invalid_json"},
		{"approve unknown member", "POST", p + "/approve", `{"fields":["x"]}`, 400, "invalid_request"},
		{"unknown request", "POST", "/v1/owner/requests/aaaaaaaaaaaaaaaaaaaaaaaaaa/approve", ``, 404, "not_found"},
		{"unknown grant", "POST", "/v1/owner/grants/aaaaaaaaaaaaaaaaaaaaaaaaaa/revoke", ``, 404, "not_found"},
		{"bad status filter", "GET", "/v1/owner/requests?status=maybe", ``, 400, "invalid_status"},
		{"deny reason too long", "POST", p + "/deny", `{"reason":"` + strings.Repeat("x", 501) + `"}`, 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, e.token, strings.NewReader(tc.body))
			if r.status != tc.status || r.errCode(t) != tc.code {
				t.Fatalf("%d %s", r.status, r.body)
			}
		})
	}
	// None of that changed the request.
	if req, _ := e.v.GetRequest(ctx, tk.RequestID); req.Status != vault.StatusPending {
		t.Fatalf("bad input changed the request: %s", req.Status)
	}
	if r := e.do("POST", p+"/deny", e.token, strings.NewReader(`{"reason":"no thanks"}`)); r.status != 200 {
		t.Fatalf("deny: %d %s", r.status, r.body)
	}
	if r := e.do("POST", p+"/approve", e.token, nil); r.status != 409 || r.errCode(t) != "already_decided" {
		t.Fatalf("approve after deny: %d %s", r.status, r.body)
	}
	_, err = o.Poll(ctx, tk.RequestID)
	wantCode(t, err, "access_denied")
}

type ed25519Pub = ed25519.PublicKey

func errorsAs(err error, target any) bool { return errors.As(err, target) }
