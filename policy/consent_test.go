package policy

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

func consentRecord(mod func(*ConsentRecord)) ConsentRecord {
	given := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	c := ConsentRecord{
		ID: "g1", Vault: "https://vault.example", Subject: "pairwise-sub", ControllerName: "Acme", ControllerURI: "https://acme.example",
		ControllerID: "jkt", Purpose: "service_delivery", PurposeText: "deliver",
		Requested: []AuthorizationDetail{{Type: DetailType, Collection: "profile", Fields: []string{"name", "email"}}},
		Granted:   []AuthorizationDetail{{Type: DetailType, Collection: "profile", Fields: []string{"name"}}, {Type: DetailType, Collection: "health", Fields: []string{"code"}}},
		Given:     given, Expires: given.Add(time.Hour), Retention: 600, Jurisdiction: "EU",
		PolicyURL: "https://vault.example/v1/terms/H", TermsHash: "H",
		Events: []ConsentEvent{{Type: ConsentGiven, At: given}},
	}
	if mod != nil {
		mod(&c)
	}
	return c
}

// The Kantara projection fits the v1.1 schema (written from the
// specification, testdata/), with and without third-party disclosure; and
// the schema can fail.
func TestKantaraReceiptFitsTheSchema(t *testing.T) {
	raw, err := os.ReadFile("testdata/kantara-consent-receipt-v1.1.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("kantara.json", doc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile("kantara.json")
	if err != nil {
		t.Fatal(err)
	}
	asJSON := func(v any) any {
		b, _ := json.Marshal(v)
		out, _ := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		return out
	}
	for _, rec := range []ConsentRecord{consentRecord(nil), consentRecord(func(c *ConsentRecord) { c.ThirdPartySharing = true })} {
		k := rec.Kantara()
		if err := schema.Validate(asJSON(k)); err != nil {
			t.Fatalf("%v\n%v", err, k)
		}
		if k["sensitive"] != true || len(k["spiCat"].([]string)) != 1 || k["piiPrincipalId"] != "pairwise-sub" {
			t.Fatalf("kantara %v", k)
		}
	}
	bad := consentRecord(nil).Kantara()
	delete(bad, "piiPrincipalId")
	if schema.Validate(asJSON(bad)) == nil {
		t.Fatal("the schema accepts a receipt without piiPrincipalId")
	}
}

// The state follows the events: the first end wins; a deletion does not
// reopen anything. The DPV record names the same state.
func TestConsentState(t *testing.T) {
	c := consentRecord(nil)
	if c.State() != "active" || c.DPV27560()["dpv:hasConsentStatus"].(map[string]any)["@type"] != "dpv:ConsentGiven" {
		t.Fatal("active")
	}
	c.Events = append(c.Events, ConsentEvent{Type: ConsentDeleted, At: c.Given.Add(3 * time.Hour)},
		ConsentEvent{Type: ConsentWithdrawn, At: c.Given.Add(time.Minute)}, ConsentEvent{Type: ConsentExpired, At: c.Given.Add(time.Hour)})
	c.SortEvents()
	if c.State() != ConsentWithdrawn || c.Events[1].Type != ConsentWithdrawn || c.Events[3].Type != ConsentDeleted {
		t.Fatalf("state %s events %v", c.State(), c.Events)
	}
	d := c.DPV27560()
	st := d["dpv:hasConsentStatus"].(map[string]any)
	if st["@type"] != "dpv:ConsentWithdrawn" || d["dct:conformsTo"] != "https://w3id.org/dpv/schema/dpv-27560#record" || len(d["pdv:events"].([]map[string]any)) != 4 {
		t.Fatalf("dpv %v", d)
	}
	b, _ := json.Marshal(d)
	if !strings.Contains(string(b), `"dct:identifier":"profile.name"`) || !strings.Contains(string(b), `"dpv:hasLegalBasis":"dpv:Consent"`) {
		t.Fatalf("dpv json %s", b)
	}
}
