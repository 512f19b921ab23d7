package policy

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

func TestDerivations(t *testing.T) {
	day := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	recs := func(js ...string) []json.RawMessage {
		out := make([]json.RawMessage, len(js))
		for i, j := range js {
			out[i] = json.RawMessage(j)
		}
		return out
	}
	for _, tc := range []struct {
		claim   string
		records []json.RawMessage
		want    string // JSON of the answer; "" for unknown
	}{
		{"age_over:18", recs(`{"birth_date":"2008-11-23"}`), `true`},  // 18 today
		{"age_over:18", recs(`{"birth_date":"2008-11-24"}`), `false`}, // 18 tomorrow
		{"age_over:18", recs(`{"name":"no birth date"}`), ``},
		{"age_over:18", recs(`{"birth_date":"23/11/2008"}`), ``},
		{"resident_of:DE", recs(`{"address":{"country":"de"}}`), `true`},
		{"resident_of:FR", recs(`{"address":{"country":"DE"}}`), `false`},
		{"resident_of:FR", recs(`{"address":"a string"}`), ``},
		{"income_band", recs(`{"amount":2500,"date":"2026-10-01","category":"salary"}`, `{"amount":2500,"date":"2026-09-01","category":"salary"}`,
			`{"amount":-80,"date":"2026-10-02"}`, `{"amount":9999,"date":"2026-10-02","category":"refund"}`), `"under 20000"`},
		{"income_band", recs(`{"amount":45000,"date":"2026-01-01","category":"salary"}`, `{"amount":99999,"date":"2024-01-01","category":"salary"}`), `"40000-60000"`},
		{"income_band", recs(`{"amount":-5,"date":"2026-01-01"}`), ``},
		{"member_of:ADFC", recs(`{"organization":"adfc ","until":"2027-01-01"}`), `{"member":true,"until":"2027-01-01"}`},
		{"member_of:ADFC", recs(`{"organization":"ADFC","until":"2026-11-22"}`), `{"member":false}`},
		{"has_contract_with:MobilNetz", recs(`{"counterparty":"MobilNetz"}`), `true`},
		{"has_contract_with:MobilNetz", recs(`{"counterparty":"MobilNetz","end":"2025-01-01"}`), `false`},
	} {
		got, err := Derive(tc.claim, tc.records, day)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s over %s = %v, want unknown", tc.claim, tc.records, got)
			}
			continue
		}
		b, _ := json.Marshal(got)
		if err != nil || string(b) != tc.want {
			t.Errorf("%s over %s = %s, %v; want %s", tc.claim, tc.records, b, err, tc.want)
		}
	}
}

// A derivation sees only the fields it declares.
func TestDerivationSeesOnlyItsFields(t *testing.T) {
	var seen []map[string]json.RawMessage
	Derivations["spy"] = Derivation{Name: "spy", Collection: "profile", Fields: []string{"birth_date"}, Check: noParam,
		Derive: func(rs []map[string]json.RawMessage, _ string, _ time.Time) (any, error) { seen = rs; return true, nil }}
	defer delete(Derivations, "spy")
	if _, err := Derive("spy", []json.RawMessage{json.RawMessage(`{"birth_date":"x","ssn":"secret"}`)}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || len(seen[0]) != 1 || seen[0]["ssn"] != nil {
		t.Fatalf("the derivation saw %v", seen)
	}
}

func TestDescribeAndFormat(t *testing.T) {
	if Describe("age_over:21") != "is at least 21 years old" || Describe("nope") != "nope" {
		t.Fatal(Describe("age_over:21"))
	}
	for v, want := range map[any]string{true: "yes", false: "no", "20000-40000": "20000-40000"} {
		if FormatAnswer(v) != want {
			t.Errorf("FormatAnswer(%v) = %s", v, FormatAnswer(v))
		}
	}
	if FormatAnswer(map[string]any{"member": true, "until": "2027-01-01"}) != "yes, until 2027-01-01" {
		t.Fatal("member answer")
	}
}

func TestParseMoney(t *testing.T) {
	for in, want := range map[string]string{"450EUR": "450 EUR", "450 eur": "450 EUR", " 0USD ": "0 USD"} {
		n, cur, err := ParseMoney(in)
		if err != nil || fmt.Sprintf("%d %s", n, cur) != want {
			t.Errorf("ParseMoney(%q) = %d %s %v", in, n, cur, err)
		}
	}
	for _, bad := range []string{"", "EUR", "450", "450EURO", "-5EUR", "4.5EUR", "450E1R"} {
		if _, _, err := ParseMoney(bad); err == nil {
			t.Errorf("ParseMoney(%q) accepted", bad)
		}
	}
}
