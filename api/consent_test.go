package api

import (
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

// Every grant comes with a consent receipt for both sides: the
// organization gets the signed Kantara receipt with the grant, the owner
// reads the record, its state and both shapes; the history follows the
// grant (given, narrowed, withdrawn, deleted).
func TestConsentReceipts(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.record("profile", `{"name":"Ada","email":"ada@example.org"}`)
	o := e.org("EdDSA")
	narrowed := []policy.AuthorizationDetail{{Type: policy.DetailType, Collection: "profile", Fields: []string{"name"}}}
	tok := e.grantFor(o, askProfile("name", "email"), vault.Approval{Details: narrowed})
	if tok.ConsentReceipt == "" {
		t.Fatal("no consent receipt with the grant")
	}
	// The organization verifies it with the vault's published keys.
	jwks, _ := o.JWKS(ctx)
	payload, err := policy.VerifyVaultSigned(tok.ConsentReceipt, policy.TypConsentReceipt, func(kid string) (ed25519.PublicKey, bool) {
		for _, k := range jwks.Keys {
			if k.KeyID == kid {
				pk, ok := k.Key.(ed25519.PublicKey)
				return pk, ok
			}
		}
		return nil, false
	})
	if err != nil {
		t.Fatal(err)
	}
	var k map[string]any
	json.Unmarshal(payload, &k)
	if k["version"] != "KI-CR-v1.1.0" || k["consentReceiptID"] != tok.GrantID || k["piiPrincipalId"] == "" {
		t.Fatalf("receipt %s", payload)
	}

	get := func(query string) resp {
		return e.do("GET", "/v1/owner/grants/"+tok.GrantID+"/consent"+query, e.token, nil)
	}
	var cr struct {
		State  string `json:"state"`
		Record struct {
			Events []struct{ Type, Note string } `json:"events"`
		} `json:"record"`
		ISO27560 map[string]any `json:"iso_27560"`
	}
	events := func() string {
		t.Helper()
		r := get("")
		if r.status != 200 {
			t.Fatalf("consent: %d %s", r.status, r.body)
		}
		r.json(t, &cr)
		var ts []string
		for _, ev := range cr.Record.Events {
			ts = append(ts, ev.Type)
		}
		return strings.Join(ts, ",")
	}
	if got := events(); got != "given,narrowed" || cr.State != "active" || !strings.Contains(cr.Record.Events[1].Note, "email") {
		t.Fatalf("events %s state %s %+v", got, cr.State, cr.Record.Events)
	}
	if r := get("?format=iso-27560"); r.status != 200 || r.header.Get("Content-Type") != "application/ld+json" || !strings.Contains(string(r.body), "dpv-27560#record") {
		t.Fatalf("iso-27560: %d %s", r.status, r.body)
	}
	if r := get("?format=jws"); r.status != 200 || strings.Count(string(r.body), ".") != 2 {
		t.Fatalf("jws: %d %s", r.status, r.body)
	}
	if r := get("?format=kantara"); r.status != 200 || !strings.Contains(string(r.body), `"consentReceiptID":"`+tok.GrantID+`"`) {
		t.Fatalf("kantara: %d %s", r.status, r.body)
	}
	if r := get("?format=pdf"); r.status != 400 || r.errCode(t) != "invalid_request" {
		t.Fatalf("bad format: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/owner/grants/aaaaaaaaaaaaaaaaaaaaaaaaaa/consent", e.token, nil); r.status != 404 {
		t.Fatalf("unknown grant: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/owner/grants/"+tok.GrantID+"/consent", "", nil); r.status != 401 {
		t.Fatalf("without a session: %d", r.status)
	}

	if _, err := e.v.Revoke(ctx, tok.GrantID); err != nil {
		t.Fatal(err)
	}
	if _, err := o.SendReceipt(ctx, client.ReceiptClaims{GrantID: tok.GrantID, Deleted: []string{"profile"}}); err != nil {
		t.Fatal(err)
	}
	if got := events(); got != "given,narrowed,withdrawn,deleted" || cr.State != "withdrawn" {
		t.Fatalf("after revocation and deletion: %s, %s", got, cr.State)
	}
	if st := cr.ISO27560["dpv:hasConsentStatus"].(map[string]any)["@type"]; st != "dpv:ConsentWithdrawn" {
		t.Fatalf("dpv status %v", st)
	}
}

// The owner downloads both shapes from the relationship page.
func TestUIConsentDownload(t *testing.T) {
	e := newEnv(t)
	e.record("profile", `{"name":"Ada"}`)
	o := e.org("EdDSA")
	tok := e.grantFor(o, askProfile("name"), vault.Approval{})
	c, ck := e.uiLogin(t)
	g, _ := e.v.GetGrant(t.Context(), tok.GrantID)
	rel, _ := e.v.GetRequest(t.Context(), g.RequestID)
	if _, page := e.uiGet(t, c, ck, "/ui/relationships/"+rel.RelationshipID); !strings.Contains(page, "/ui/grants/"+tok.GrantID+"/consent?format=kantara") {
		t.Fatal("the relationship page does not link the consent receipt")
	}
	status, body := e.uiGet(t, c, ck, "/ui/grants/"+tok.GrantID+"/consent?format=kantara")
	if status != 200 || !strings.Contains(body, `"version": "KI-CR-v1.1.0"`) {
		t.Fatalf("kantara download: %d %s", status, body)
	}
	status, body = e.uiGet(t, c, ck, "/ui/grants/"+tok.GrantID+"/consent?format=iso-27560")
	if status != 200 || !strings.Contains(body, `"@type": "dpv:ConsentRecord"`) {
		t.Fatalf("27560 download: %d %s", status, body)
	}
	if status, _ := e.uiGet(t, c, ck, "/ui/grants/"+tok.GrantID+"/consent?format=doc"); status != 400 {
		t.Fatalf("bad format: %d", status)
	}
}
