package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pdvault/pdvault/api/client"
)

func TestDemo(t *testing.T) {
	r := (&cli{t: t, env: map[string]string{}}).run("demo")
	if r.code != 0 {
		t.Fatalf("demo: %+v", r)
	}
	for _, want := range []string{
		"authorization_pending",
		"statement-2026-10.ofx: 4 added (ofx -> transactions)",
		"imported again: 0 added, 4 duplicates",
		"approved profile[name,address] and transactions[date,amount] only",
		"reading transactions: 6 records, fields amount,date only",
		"token_type DPoP",
		`name="Alex Example"`,
		"reading health: 404 not_found",
		"refused: 401 invalid_token (the grant has been revoked)",
		"verified 127.0.0.1:",
		"grant.revoked for grant",
		"complete: true",
		"notice delivered, deletion received",
		`it would learn "is at least 18 years old": yes`,
		"age_over:18 = true",
		"presented by anyone else it is refused",
		"signed by a key made for it alone",
		"reads the delivery address",
		"verified: 36 entries",
		"a consent receipt signed by the vault (Kantara KI-CR-v1.1.0",
		"proffered SD-BASE",
		"IEEE 7012: Acme accepts SD-BASE in its signed request; the vault countersigned the bilateral agreement record",
		"given → narrowed → withdrawn → deleted; state withdrawn",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if strings.Contains(r.stdout, "birth_date=") || strings.Contains(r.stdout, "email=") || strings.Contains(r.stdout, "counterparty") {
		t.Fatal("the demo organization saw fields it was not granted")
	}
}

// The owner's exchange commands against a running server, with an
// organization asking through the Go client.
func TestOwnerExchangeCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "v")
	c := &cli{t: t, env: map[string]string{"PDVAULT_PASSPHRASE": testPass}}
	expect(t, c.run("init", "--dir", dir), 0, "")
	url, _ := c.serve("--dir", dir)
	tok := strings.TrimSpace(strings.TrimPrefix(c.run("login", "--addr", url).stdout, "export PDVAULT_TOKEN="))
	oc := &cli{t: t, env: map[string]string{"PDVAULT_ADDR": url, "PDVAULT_TOKEN": tok, "PDVAULT_ANCHORS": t.TempDir()}}
	expect(t, oc.run("record", "put", "profile", `{"name":"Ada","email":"a@x","phone":"1"}`), 0, "")

	r := oc.run("requests", "list")
	expect(t, r, 0, "No pending requests")

	k, _ := client.GenerateKey("ES256")
	org, _ := client.NewOrg(url, k, nil)
	ctx := t.Context()
	tk, err := org.Request(ctx, client.AccessRequest{ClientName: "Acme Bikes", ClientURI: "https://bikes.example", Purpose: "service_delivery",
		PurposeText: "deliver a bicycle", AuthorizationDetails: []client.AuthorizationDetail{client.Detail("profile", "name", "email", "phone")}, Duration: 86400})
	if err != nil {
		t.Fatal(err)
	}
	r = oc.run("requests", "list")
	if r.code != 0 || !strings.Contains(r.stdout, tk.RequestID) || !strings.Contains(r.stdout, "profile:name,email,phone") {
		t.Fatalf("requests list: %+v", r)
	}
	r = oc.run("requests", "show", tk.RequestID)
	if r.code != 0 || !strings.Contains(r.stdout, "Acme Bikes, https://bikes.example") || !strings.Contains(r.stdout, "profile: name, email, phone") || !strings.Contains(r.stdout, `"deliver a bicycle"`) {
		t.Fatalf("requests show: %+v", r)
	}
	// A claims-only request says which claims, not an empty field list.
	tkc, err := org.Request(ctx, client.AccessRequest{ClientName: "Acme Bikes", ClientURI: "https://bikes.example", Purpose: "service_delivery",
		AuthorizationDetails: []client.AuthorizationDetail{{Type: "pdvault_records", Collection: "profile", Claims: []string{"age_over:18"}}}, Duration: 86400})
	if err != nil {
		t.Fatal(err)
	}
	r = oc.run("requests", "show", tkc.RequestID)
	if r.code != 0 || !strings.Contains(r.stdout, "profile: claims age_over:18") {
		t.Fatalf("requests show, claims only: %+v", r)
	}
	expect(t, oc.run("requests", "approve", tk.RequestID, "--only", "profile"), 2, "write COLLECTION:FIELD,FIELD")
	expect(t, oc.run("requests", "approve", tk.RequestID, "--duration", "forever"), 2, "is not a duration")
	expect(t, oc.run("requests", "approve", tk.RequestID, "--only", "profile:ssn"), 1, "invalid_scope (HTTP 400)")
	r = oc.run("requests", "approve", tk.RequestID, "--only", "profile:name,email", "--duration", "12h")
	if r.code != 0 || !strings.Contains(r.stdout, "profile:name,email for 12h") {
		t.Fatalf("approve: %+v", r)
	}
	expect(t, oc.run("requests", "deny", tk.RequestID), 1, "already_decided (HTTP 409)")
	g, err := org.Poll(ctx, tk.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := org.ReadCollection(ctx, g.AccessToken, "profile", 0, ""); err != nil {
		t.Fatal(err)
	}
	r = oc.run("grants", "list")
	if r.code != 0 || !strings.Contains(r.stdout, g.GrantID) || !strings.Contains(r.stdout, "active") {
		t.Fatalf("grants list: %+v", r)
	}
	expect(t, oc.run("grants", "revoke", g.GrantID), 0, "")
	expect(t, oc.run("grants", "revoke", g.GrantID), 1, "already_revoked")
	if _, err := org.ReadCollection(ctx, g.AccessToken, "profile", 0, ""); !client.IsCode(err, "invalid_token") {
		t.Fatalf("read after CLI revoke: %v", err)
	}
	r = oc.run("audit", "list")
	for _, want := range []string{"request.received", "request.approved", "grant.issued", "data.read", "grant.revoked", "data.refused"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("audit list lacks %s:\n%s", want, r.stdout)
		}
	}
	r = oc.run("audit", "verify")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "ok: 9 entries") || !strings.Contains(r.stdout, "kept the signed tree head (size 9)") {
		t.Fatalf("audit verify: %+v", r)
	}
	r = oc.run("audit", "verify")
	if r.code != 0 || !strings.Contains(r.stdout, "consistent with the tree head kept") {
		t.Fatalf("audit verify again: %+v", r)
	}

	// Terms: show, set from a file, refuse a bad file.
	r = oc.run("terms", "show")
	if r.code != 0 || !strings.Contains(r.stdout, "hash: ") {
		t.Fatalf("terms show: %+v", r)
	}
	r = oc.run("terms", "show", "--json")
	f := filepath.Join(t.TempDir(), "terms.json")
	os.WriteFile(f, []byte(strings.Replace(r.stdout, `"90d"`, `"30d"`, 1)), 0o600)
	r = oc.run("terms", "set", f)
	if r.code != 0 || !strings.Contains(r.stdout, "Terms set; hash") {
		t.Fatalf("terms set: %+v", r)
	}
	if r := oc.run("terms", "show"); !strings.Contains(r.stdout, "A grant lasts at most 30 days") {
		t.Fatalf("terms not changed: %s", r.stdout)
	}
	os.WriteFile(f, []byte(`{"title":"x"}`), 0o600)
	expect(t, oc.run("terms", "set", f), 1, "invalid_terms (HTTP 400)")
	expect(t, oc.run("terms"), 2, "terms needs a subcommand")

	// Relationships.
	r = oc.run("relationships", "list")
	if r.code != 0 || !strings.Contains(r.stdout, k.Thumbprint()) || !strings.Contains(r.stdout, "Acme Bikes") || !strings.Contains(r.stdout, "older") {
		t.Fatalf("relationships list: %+v", r)
	}
	r = oc.run("relationships", "show", k.Thumbprint())
	if r.code != 0 || !strings.Contains(r.stdout, "domain not verified") || !strings.Contains(r.stdout, g.GrantID+" revoked") || !strings.Contains(r.stdout, "deletion due by") {
		t.Fatalf("relationships show: %+v", r)
	}
	expect(t, oc.run("relationships", "reaccept", k.Thumbprint()), 1, "no_callback (HTTP 409)")
	expect(t, oc.run("relationships", "verify", k.Thumbprint()), 1, "no_challenge (HTTP 409)")
	expect(t, oc.run("relationships", "show", "nope"), 1, "not_found (HTTP 404)")

	// Keys.
	r = oc.run("keys", "status")
	if r.code != 0 || !strings.Contains(r.stdout, "record key:  1 (0 records still under older keys)") {
		t.Fatalf("keys status: %+v", r)
	}
	r = oc.run("keys", "rotate")
	if r.code != 0 || !strings.Contains(r.stdout, "New signing key") || !strings.Contains(r.stdout, "New record key 2;") {
		t.Fatalf("keys rotate: %+v", r)
	}
	expect(t, oc.run("keys", "spin"), 2, "unknown keys subcommand")

	// Intents.
	expect(t, oc.run("intents", "add", "--title", "Looking for: a tandem", "--budget", "lots"), 2, "not an amount and a currency")
	r = oc.run("intents", "add", "--title", "Looking for: a tandem", "--budget", "800EUR", "--region", "Berlin")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "Published intent ") {
		t.Fatalf("intents add: %+v", r)
	}
	iid := strings.Fields(r.stdout)[2]
	iid = strings.TrimSuffix(iid, ":")
	var oc2 client.OfferClaims
	oc2.IntentID, oc2.Offer = iid, "A used tandem"
	oc2.ClientName, oc2.ClientURI, oc2.Purpose, oc2.Duration = "Tandem GmbH", "https://tandem.example", "service_delivery", 3600
	oc2.AuthorizationDetails = []client.AuthorizationDetail{client.Detail("profile", "name")}
	ot, err := org.SendOffer(ctx, oc2)
	if err != nil {
		t.Fatal(err)
	}
	r = oc.run("intents", "show", iid)
	if r.code != 0 || !strings.Contains(r.stdout, "offer "+ot.OfferID+" (open) from Tandem GmbH") {
		t.Fatalf("intents show: %+v", r)
	}
	r = oc.run("intents", "accept", ot.OfferID)
	if r.code != 0 || !strings.Contains(r.stdout, "it is now request "+ot.OfferID) {
		t.Fatalf("intents accept: %+v", r)
	}
	expect(t, oc.run("intents", "decline", ot.OfferID), 1, "already_decided (HTTP 409)")
	expect(t, oc.run("intents", "close", iid), 0, "")
	r = oc.run("intents", "list")
	if r.code != 0 || !strings.Contains(r.stdout, iid) || !strings.Contains(r.stdout, "closed") {
		t.Fatalf("intents list: %+v", r)
	}
	expect(t, oc.run("requests", "show"), 2, "takes one request ID")
}
