package api

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

func claimsRequest() client.AccessRequest {
	return client.AccessRequest{
		ClientName: "Bar Berlin", ClientURI: "https://bar.example", Purpose: "identity_verification", Duration: 600,
		AuthorizationDetails: []client.AuthorizationDetail{
			{Collection: "profile", Claims: []string{"age_over:18", "resident_of:DE"}},
			{Collection: "memberships", Claims: []string{"member_of:ADFC Cycling Club"}},
			{Collection: "transactions", Claims: []string{"income_band"}},
		},
	}
}

// An organization learns "over 18: yes", never the birth date; the answer
// is signed, bound to it, and useless to anyone else.
func TestDerivedClaims(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.record("profile", `{"name":"Alex","birth_date":"1990-04-12","address":{"street":"Musterstrasse 1","city":"Berlin","country":"DE"}}`)
	e.record("memberships", `{"organization":"ADFC Cycling Club","member_id":"ADFC-99812","until":"2099-04-30"}`)
	today := time.Now().UTC().Format("2006-01-02")
	e.record("transactions", `{"amount":3120.55,"date":"`+today+`","category":"salary","merchant":"Employer GmbH"}`)
	o := e.org("EdDSA")
	tk, err := o.Request(ctx, claimsRequest())
	if err != nil {
		t.Fatal(err)
	}

	// The owner's review says what will be revealed, in words.
	req, err := e.v.GetRequest(ctx, tk.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	var preview []string
	for _, c := range req.ClaimsPreview {
		preview = append(preview, c.Description+": "+c.Answer)
	}
	want := "is at least 18 years old: yes|lives in the country DE: yes|is a member of ADFC Cycling Club (and until when): yes, until 2099-04-30|yearly income band (income transactions of the last 365 days): under 20000"
	if strings.Join(preview, "|") != want {
		t.Fatalf("preview:\n got %s\nwant %s", strings.Join(preview, "|"), want)
	}
	// The owner drops the income band.
	if _, err := e.v.Approve(ctx, tk.RequestID, vault.Approval{Details: []policy.AuthorizationDetail{
		{Collection: "profile", Claims: []string{"age_over:18", "resident_of:DE"}},
		{Collection: "memberships", Claims: []string{"member_of:ADFC Cycling Club"}},
	}}); err != nil {
		t.Fatal(err)
	}
	tok, err := o.Poll(ctx, tk.RequestID)
	if err != nil {
		t.Fatal(err)
	}

	raw := e.do("GET", "/v1/claims", "", nil, "Authorization", "DPoP "+tok.AccessToken, "DPoP", mustGetProof(t, o.Key(), e.srv.URL+"/v1/claims", tok.AccessToken))
	if raw.status != 200 {
		t.Fatalf("claims: %d %s", raw.status, raw.body)
	}
	var res client.ClaimsResult
	raw.json(t, &res)
	if res.Claims["age_over:18"] != true || res.Claims["resident_of:DE"] != true || res.Claims["income_band"] != nil || res.ExpiresIn != 300 {
		t.Fatalf("claims %+v", res.Claims)
	}
	payload := decodePayload(t, res.Statement)
	for _, secret := range []string{"1990", "04-12", "Musterstrasse", "Berlin", "ADFC-99812", "3120", "Employer"} {
		if strings.Contains(string(raw.body), secret) || strings.Contains(payload, secret) {
			t.Errorf("a raw value (%s) reached the organization", secret)
		}
	}

	jwks, _ := o.JWKS(ctx)
	st, err := client.VerifyClaims(res.Statement, jwks, e.srv.URL, o.Key().Thumbprint(), time.Now())
	if err != nil || st.Claims["age_over:18"] != true || st.Subject == "" {
		t.Fatalf("offline verification: %+v %v", st, err)
	}
	// Presented by another organization, it is refused.
	other := e.org("EdDSA")
	if _, err := client.VerifyClaims(res.Statement, jwks, e.srv.URL, other.Key().Thumbprint(), time.Now()); !errors.Is(err, policy.ErrWrongHolder) {
		t.Fatalf("statement presented by another organization: %v", err)
	}
	if _, err := client.VerifyClaims(res.Statement, jwks, e.srv.URL, o.Key().Thumbprint(), time.Now().Add(6*time.Minute+policy.ClockSkew)); !errors.Is(err, policy.ErrGrantExpired) {
		t.Fatalf("stale statement: %v", err)
	}
	// Another organization cannot use the grant to get claims either.
	r := e.do("GET", "/v1/claims", "", nil, "Authorization", "DPoP "+tok.AccessToken, "DPoP", mustGetProof(t, other.Key(), e.srv.URL+"/v1/claims", tok.AccessToken))
	if r.status != 401 || r.errCode(t) != "invalid_token" {
		t.Fatalf("claims with another key: %d %s", r.status, r.body)
	}
	// A claims-only grant reads no records.
	if _, err := o.ReadCollection(ctx, tok.AccessToken, "profile", 0, ""); !client.IsCode(err, "not_found") {
		t.Fatalf("records with a claims-only grant: %v", err)
	}
	ap, _ := e.v.ListAudit(ctx, 10, "")
	if e := ap.Entries[2]; e.Event != vault.EvClaimsRead || strings.Join(e.Fields, ",") != "age_over:18,member_of:ADFC Cycling Club,resident_of:DE" {
		t.Fatalf("audit: %+v", ap.Entries[:3])
	}
}

func TestClaimRequestsAreChecked(t *testing.T) {
	e := newEnv(t)
	o := e.org("EdDSA")
	for _, tc := range []struct {
		claim, coll, reason string
	}{
		{"age_over:abc", "profile", "an age from 1 to 150"},
		{"shoe_size", "profile", "not a known derived claim"},
		{"age_over:18", "transactions", "derived from profile, not transactions"},
		{"income_band:5", "transactions", "takes no parameter"},
	} {
		req := claimsRequest()
		req.AuthorizationDetails = []client.AuthorizationDetail{{Collection: tc.coll, Claims: []string{tc.claim}}}
		_, err := o.Request(t.Context(), req)
		var ce *client.Error
		if !errorsAs(err, &ce) || ce.Code != "invalid_request_object" || len(ce.Reasons) != 1 || !strings.Contains(ce.Reasons[0], tc.reason) {
			t.Errorf("%s in %s: %v", tc.claim, tc.coll, err)
		}
	}
}

// What two organizations see of the same record: the same granted fields,
// nothing that links them.
func TestPairwiseRecordIDs(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	for range 3 {
		e.record("profile", `{"name":"Ada","email":"a@x"}`)
	}
	a, b := e.org("EdDSA"), e.org("ES256")
	ta := e.grantFor(a, askProfile("name"), vault.Approval{})
	ta2 := e.grantFor(a, askProfile("name"), vault.Approval{})
	tb := e.grantFor(b, askProfile("name"), vault.Approval{})
	pa, err := a.ReadCollection(ctx, ta.AccessToken, "profile", 2, "")
	if err != nil {
		t.Fatal(err)
	}
	pa2, _ := a.ReadCollection(ctx, ta2.AccessToken, "profile", 2, "")
	pb, _ := b.ReadCollection(ctx, tb.AccessToken, "profile", 2, "")
	for i := range pa.Records {
		if pa.Records[i].ID != pa2.Records[i].ID {
			t.Fatal("one organization sees a record under two ids")
		}
		if pa.Records[i].ID == pb.Records[i].ID {
			t.Fatal("two organizations see the same record id")
		}
		if string(pa.Records[i].Data["name"]) != string(pb.Records[i].Data["name"]) {
			t.Fatal("the data differs")
		}
	}
	if pa.NextCursor == "" || pa.NextCursor == pb.NextCursor {
		t.Fatalf("cursors must be pairwise: %q %q", pa.NextCursor, pb.NextCursor)
	}
	// Each id and cursor works only for the organization it was made for.
	if _, err := b.ReadRecord(ctx, tb.AccessToken, "profile", pa.Records[0].ID); !client.IsCode(err, "not_found") {
		t.Fatalf("b with a's id: %v", err)
	}
	if _, err := b.ReadCollection(ctx, tb.AccessToken, "profile", 2, pa.NextCursor); !client.IsCode(err, "invalid_cursor") {
		t.Fatalf("b with a's cursor: %v", err)
	}
	rest, err := a.ReadCollection(ctx, ta.AccessToken, "profile", 2, pa.NextCursor)
	if err != nil || len(rest.Records) != 1 {
		t.Fatalf("a's next page: %+v %v", rest, err)
	}
	// After a key rotation the organization still sees the same ids.
	next, _ := client.GenerateKey("EdDSA")
	if err := a.LinkKey(ctx, next); err != nil {
		t.Fatal(err)
	}
	tn := e.grantFor(a, askProfile("name"), vault.Approval{})
	pn, _ := a.ReadCollection(ctx, tn.AccessToken, "profile", 2, "")
	if pn.Records[0].ID != pa.Records[0].ID {
		t.Fatal("record ids changed with the key")
	}
	// The pairwise sub follows the relationship too.
	jwks, _ := a.JWKS(ctx)
	keyOf := func(kid string) (ed25519Pub, bool) {
		for _, k := range jwks.Key(kid) {
			return k.Key.(ed25519Pub), true
		}
		return nil, false
	}
	chk := policy.GrantCheck{Issuer: e.srv.URL, Audience: e.srv.URL, Now: time.Now(), Skew: policy.ClockSkew, Key: keyOf}
	g1, _ := policy.VerifyGrant(ta.AccessToken, chk)
	gn, _ := policy.VerifyGrant(tn.AccessToken, chk)
	gb, _ := policy.VerifyGrant(tb.AccessToken, chk)
	if g1.Subject != gn.Subject || g1.Subject == gb.Subject {
		t.Fatalf("subjects: %s %s %s", g1.Subject, gn.Subject, gb.Subject)
	}
}

func mustGetProof(t *testing.T, k *client.Key, url, at string) string {
	p, err := k.Proof("GET", url, at, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func decodePayload(t *testing.T, jws string) string {
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", jws)
	}
	b, err := b64url.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var b64url = base64.RawURLEncoding
