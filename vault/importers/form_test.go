package importers

import (
	"encoding/json"
	"strings"
	"testing"
)

const formJSON = `{
  "memberships": [
    {"programName": "BahnCard 50", "hostingOrganization": "Deutsche Bahn", "membershipNumber": "7081 4112", "validUntil": "2027-03-31", "membershipPointsEarned": 1250},
    {"programName": "Stadtbibliothek", "memberSince": "2019-01-10"}
  ],
  "contracts": [
    {"title": "Mobile phone", "kind": "phone", "counterparty": "Telco AG", "contractNumber": "K-1", "startDate": "2025-02-01",
     "noticePeriod": "P3M", "billingPeriod": "P1M", "price": "019.990", "currency": "EUR", "documents": ["abcdefghijklmnopqrstuvwxyz"]}
  ]
}`

func TestFormJSON(t *testing.T) {
	if f, ok := Detect([]byte(formJSON)); !ok || f.Name != "form" {
		t.Fatalf("detected as %q", f.Name)
	}
	items, err := parseString(formFormat, formJSON)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 || items[0].Collection != "memberships" || items[2].Collection != "contracts" || items[2].Ref != "contracts[1]" {
		t.Fatalf("items %+v", items)
	}
	b, _ := json.Marshal(items[0].Data)
	if string(b) != `{"hostingOrganization":"Deutsche Bahn","membershipNumber":"7081 4112","membershipPointsEarned":1250,"programName":"BahnCard 50","validUntil":"2027-03-31"}` {
		t.Fatalf("membership %s", b)
	}
	if items[2].Data["price"] != "19.99" {
		t.Fatalf("price not canonical: %v", items[2].Data["price"])
	}
	// The key survives an edit of other fields: an updated form adds only
	// new entries.
	edited, _ := parseString(formFormat, strings.Replace(formJSON, "2027-03-31", "2028-03-31", 1))
	if edited[0].Key != items[0].Key || items[0].Key == items[1].Key {
		t.Fatal("keys not stable or not distinct")
	}
}

func TestFormCSV(t *testing.T) {
	in := "\ufeffprogramName;hostingOrganization;membershipNumber;validUntil\r\nBahnCard 50;Deutsche Bahn;7081;2027-03-31\r\nADAC Plus;ADAC;;\r\n"
	if f, ok := Detect([]byte(in)); !ok || f.Name != "form" {
		t.Fatalf("detected as %q", f.Name)
	}
	items, err := parseString(formFormat, in)
	if err != nil || len(items) != 2 || items[1].Ref != "line 3" || items[1].Data["hostingOrganization"] != "ADAC" || items[1].Data["membershipNumber"] != nil {
		t.Fatalf("%+v %v", items, err)
	}
	contracts := "title,counterparty,price,currency,documents\nRent,Wohnbau eG,950.00,EUR,abcdefghijklmnopqrstuvwxyz bbcdefghijklmnopqrstuvwxyz\n"
	items, err = parseString(formFormat, contracts)
	if err != nil || len(items) != 1 || items[0].Collection != "contracts" || len(items[0].Data["documents"].([]any)) != 2 || items[0].Data["price"] != "950" {
		t.Fatalf("%+v %v", items, err)
	}
	// A bank statement is not a form.
	if f, _ := Detect([]byte("Buchungstag;Betrag;Verwendungszweck\n01.01.2026;-1,00;x\n")); f.Name == "form" {
		t.Fatal("a bank CSV detected as a form")
	}
}

func TestFormMalformed(t *testing.T) {
	for _, tc := range []struct{ name, in, code string }{
		{"unknown collection", `{"loans": []}`, "form_unknown_collection"},
		{"not an array", `{"contracts": {"title": "x"}}`, "form_shape"},
		{"entry not an object", `{"contracts": ["x"]}`, "form_shape"},
		{"unknown field", `{"contracts": [{"title": "x", "titel": "y"}]}`, "form_unknown_field"},
		{"missing required", `{"memberships": [{"hostingOrganization": "x"}]}`, "form_missing_field"},
		{"bad date", `{"contracts": [{"title": "x", "startDate": "01.02.2025"}]}`, "form_bad_value"},
		{"bad duration", `{"contracts": [{"title": "x", "noticePeriod": "3 months"}]}`, "form_bad_value"},
		{"bad price", `{"contracts": [{"title": "x", "price": "12,50"}]}`, "form_bad_value"},
		{"bad currency", `{"contracts": [{"title": "x", "currency": "euro"}]}`, "form_bad_value"},
		{"number as text", `{"memberships": [{"programName": "x", "membershipPointsEarned": "many"}]}`, "form_bad_value"},
		{"text as number", `{"memberships": [{"programName": 5}]}`, "form_bad_value"},
		{"bad document id", `{"contracts": [{"title": "x", "documents": ["../etc"]}]}`, "form_bad_value"},
		{"bad url", `{"memberships": [{"programName": "x", "url": "javascript:alert(1)"}]}`, "form_bad_value"},
		{"truncated", `{"contracts": [{"title": "x"}`, "form_truncated"},
		{"syntax", `{"contracts": [{"title": "x",}]}`, "form_syntax"},
		{"trailing", `{"contracts": [{"title": "x"}]} {}`, "form_syntax"},
		{"empty", `{"contracts": []}`, "form_empty"},
		{"csv no collection", "name,city\nA,B\n", "form_no_collection"},
		{"csv columns", "programName,url\nA\n", "form_columns"},
		{"csv only header", "programName,url\n", "form_empty"},
		{"csv bad value", "programName,validUntil\nA,soon\n", "form_bad_value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseString(formFormat, tc.in)
			wantCode(t, err, tc.code)
		})
	}
}
