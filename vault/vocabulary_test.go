package vault

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	fx "github.com/pdvault/pdvault/internal/fixtures"
	"github.com/pdvault/pdvault/policy"
)

// vocabularySchemas compiles every published schema.
func vocabularySchemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	out := map[string]*jsonschema.Schema{}
	for _, coll := range policy.VocabularyCollections() {
		b, _ := policy.VocabularySchema(coll)
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", coll, err)
		}
		url := "https://pdvault.org/vocabulary/1/" + coll + ".schema.json"
		if err := c.AddResource(url, doc); err != nil {
			t.Fatal(err)
		}
		if out[coll], err = c.Compile(url); err != nil {
			t.Fatalf("%s: %v", coll, err)
		}
	}
	return out
}

// Every record every importer writes, from every published sample, fits
// the schema of its collection; documents' metadata does too. A schema
// that drifts from what the importers write fails here.
func TestImportersWriteTheVocabulary(t *testing.T) {
	schemas := vocabularySchemas(t)
	if len(schemas) != 9 {
		t.Fatalf("%d schemas", len(schemas))
	}
	v, _, _ := newTestVault(t)
	root := fx.Path(t)
	var files []string
	for _, dir := range []string{"vcard", "ofx", "camt053", "ical", "fhir", "applehealth", "csv"} {
		m, _ := filepath.Glob(filepath.Join(root, dir, "*"))
		files = append(files, m...)
	}
	imported := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := importBytes(v, filepath.Base(f), b, DataImport{}); err != nil {
			continue // the deliberately malformed samples have their own tests
		}
		imported++
	}
	if imported < 15 {
		t.Fatalf("only %d of %d samples imported", imported, len(files))
	}
	if _, err := v.AddDocument(t.Context(), strings.NewReader("%PDF-1.7"), DocumentInput{Title: "t", Kind: "contract", Date: "2026-01-01"}); err != nil {
		t.Fatal(err)
	}
	// Memberships and contracts have no published samples: a form written
	// from docs/vocabulary.md, every field used.
	form := `{"memberships": [{"programName": "BahnCard 50", "hostingOrganization": "Deutsche Bahn", "membershipNumber": "7081",
	  "memberSince": "2020-01-01", "validUntil": "2027-03-31", "membershipPointsEarned": 1250.5, "url": "https://bahn.de", "note": "n"}],
	 "contracts": [{"title": "Phone", "kind": "phone", "counterparty": "Telco", "contractNumber": "K-1", "startDate": "2025-02-01",
	  "endDate": "2027-01-31", "noticePeriod": "P3M", "billingPeriod": "P1M", "price": "19.99", "currency": "EUR",
	  "documents": ["abcdefghijklmnopqrstuvwxyz"], "note": "n"}]}`
	if _, err := importBytes(v, "form.json", []byte(form), DataImport{}); err != nil {
		t.Fatal(err)
	}
	checked := map[string]int{}
	for _, coll := range []string{"contacts", "transactions", "calendar", "health", "documents", "memberships", "contracts", "accounts"} {
		cursor := ""
		for {
			p, err := v.ListRecords(t.Context(), coll, MaxPageSize, cursor)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range p.Records {
				var inst any
				json.Unmarshal(r.Data, &inst)
				if err := schemas[coll].Validate(inst); err != nil {
					t.Errorf("%s record %s does not fit its schema: %v\n%s", coll, r.ID, err, r.Data)
				}
				checked[coll]++
			}
			if cursor = p.Next; cursor == "" {
				break
			}
		}
	}
	for _, coll := range []string{"contacts", "transactions", "calendar", "health", "documents", "memberships", "contracts", "accounts"} {
		if checked[coll] == 0 {
			t.Errorf("no %s records checked", coll)
		}
	}
	// And the schemas can fail: a transaction with a float amount does not fit.
	var bad any
	json.Unmarshal([]byte(`{"date":"2026-01-01","amount":12.5}`), &bad)
	if schemas["transactions"].Validate(bad) == nil {
		t.Fatal("a float amount fits the transactions schema")
	}
}
