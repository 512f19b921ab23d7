package importers

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestFHIRFixture(t *testing.T) {
	items, err := parseFile(t, fhirFormat, fixtures(t, "fhir", "smart-generated-Buster_Hoeger.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 66 {
		t.Fatalf("%d items, want the bundle's 66 entries", len(items))
	}
	types := map[string]int{}
	for _, it := range items {
		var rt string
		json.Unmarshal(it.Data["resourceType"].(json.RawMessage), &rt)
		types[rt]++
		if it.Collection != "health" || !strings.HasPrefix(it.Key, "id:"+rt+"/") {
			t.Fatalf("item %s key %q", it.Ref, it.Key)
		}
	}
	for rt, n := range map[string]int{"Observation": 33, "Patient": 1, "Condition": 3, "Immunization": 4, "MedicationRequest": 1, "Procedure": 1, "Encounter": 6, "DiagnosticReport": 2, "Claim": 7} {
		if types[rt] != n {
			t.Errorf("%s: %d, want %d", rt, types[rt], n)
		}
	}
	if items[1].Ref != "entry 2 (Organization)" {
		t.Errorf("ref %q", items[1].Ref)
	}
}

func fhirBundle(entries ...string) string {
	return `{"resourceType":"Bundle","type":"collection","entry":[` + strings.Join(entries, ",") + `]}`
}

const fhirObs = `{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"weight"},"valueQuantity":{"value":72.50,"unit":"kg"}}}`

func TestFHIRResources(t *testing.T) {
	allergy := `{"resource":{"resourceType":"AllergyIntolerance","id":"a1","patient":{"reference":"Patient/p"},"code":{"text":"peanut"}}}`
	stmt := `{"resource":{"resourceType":"MedicationStatement","id":"m1","status":"active","medicationCodeableConcept":{"text":"ibuprofen"},"subject":{"reference":"Patient/p"}}}`
	doc := `{"resource":{"resourceType":"DocumentReference","id":"d1","status":"current","content":[{"attachment":{"contentType":"application/pdf","url":"Binary/b"}}]}}`
	noID := `{"fullUrl":"urn:uuid:9","resource":{"resourceType":"Condition","subject":{"reference":"Patient/p"}}}`
	items, err := parseString(fhirFormat, fhirBundle(fhirObs, allergy, stmt, doc, noID))
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 5 || items[4].Key != "url:urn:uuid:9" {
		t.Fatalf("items %d, last key %q", len(items), items[len(items)-1].Key)
	}
	// Decimals keep their digits.
	b, _ := json.Marshal(items[0].Data)
	if !strings.Contains(string(b), `"value":72.50`) {
		t.Errorf("data %s", b)
	}
	// resourceType after entry is read too.
	if _, err := parseString(fhirFormat, `{"entry":[`+fhirObs+`],"resourceType":"Bundle"}`); err != nil {
		t.Errorf("resourceType last: %v", err)
	}
}

func TestFHIRMalformed(t *testing.T) {
	for _, tc := range []struct{ name, in, code, ref string }{
		{"empty", "", "fhir_empty", ""},
		{"not an object", `[1]`, "fhir_not_bundle", ""},
		{"not a bundle", `{"resourceType":"Patient","id":"p"}`, "fhir_not_bundle", ""},
		{"no resourceType", `{"entry":[]}`, "fhir_not_bundle", ""},
		{"entry not array", `{"resourceType":"Bundle","entry":{}}`, "fhir_structure", ""},
		{"truncated", fhirBundle(fhirObs)[:60], "fhir_truncated", "entry 1"},
		{"syntax", `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Observation",,}}]}`, "fhir_syntax", "entry 1"},
		{"no resource type", fhirBundle(`{"resource":{"id":"x"}}`), "fhir_no_resource_type", "entry 1"},
		{"observation without code", fhirBundle(`{"resource":{"resourceType":"Observation","status":"final"}}`), "fhir_missing_element", "entry 1 (Observation)"},
		{"medication request without medication", fhirBundle(`{"resource":{"resourceType":"MedicationRequest","status":"active","intent":"order","subject":{}}}`), "fhir_missing_element", "entry 1 (MedicationRequest)"},
		{"immunization without occurrence", fhirBundle(`{"resource":{"resourceType":"Immunization","status":"completed","vaccineCode":{},"patient":{}}}`), "fhir_missing_element", "entry 1 (Immunization)"},
		{"wrong type", `{"resourceType":"Bundle","entry":[{"fullUrl":5}]}`, "fhir_structure", "entry 1"},
		{"trailing data", fhirBundle(fhirObs) + `{}`, "fhir_structure", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseString(fhirFormat, tc.in)
			wantCode(t, err, tc.code)
			if err.(*Error).Ref != tc.ref {
				t.Errorf("ref %q, want %q", err.(*Error).Ref, tc.ref)
			}
		})
	}
}
