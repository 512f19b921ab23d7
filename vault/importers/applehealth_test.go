package importers

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestAppleHealthFixture(t *testing.T) {
	items, err := parseFile(t, appleFormat, fixtures(t, "applehealth", "healthkit-to-sqlite-export.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 6 {
		t.Fatalf("%d items, want Me, 2 Records, 1 Workout, 2 ActivitySummary", len(items))
	}
	b, _ := json.Marshal(items[1].Data)
	for _, want := range []string{`"code":"HKQuantityTypeIdentifierBodyMassIndex"`, `"effectiveDateTime":"2016-04-18T08:25:32-07:00"`, `"valueQuantity":{"unit":"count","value":22.5312}`, `"display":"Health Mate"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("record lacks %s: %s", want, b)
		}
	}
	if items[0].Data["birthDate"] != "1990-02-02" || items[0].Data["gender"] != "male" {
		t.Errorf("me %v", items[0].Data)
	}
	w, _ := json.Marshal(items[3].Data)
	if !strings.Contains(string(w), `"HKWorkoutActivityTypeRunning"`) || !strings.Contains(string(w), `"valueInteger":2`) || strings.Contains(string(w), "37.7777") {
		t.Errorf("workout (route points counted, not kept): %s", w)
	}
	if items[4].Key != "activity:2016-11-15" {
		t.Errorf("summary key %q", items[4].Key)
	}
}

func appleDoc(body string) string {
	return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE HealthData [\n<!ELEMENT HealthData (ExportDate,Me,(Record|Correlation|Workout|ActivitySummary)*)>\n]>\n<HealthData locale=\"en_US\">\n" + body + "</HealthData>\n"
}

const appleRec = `<Record type="HKQuantityTypeIdentifierStepCount" sourceName="iPhone" unit="count" creationDate="2026-11-01 10:00:00 +0100" startDate="2026-11-01 09:00:00 +0100" endDate="2026-11-01 09:10:00 +0100" value="512"/>` + "\n"

func TestAppleHealthShapes(t *testing.T) {
	bp := `<Correlation type="HKCorrelationTypeIdentifierBloodPressure" sourceName="Omron" creationDate="2026-11-01 08:00:00 +0100" startDate="2026-11-01 08:00:00 +0100" endDate="2026-11-01 08:00:00 +0100">` +
		`<Record type="HKQuantityTypeIdentifierBloodPressureSystolic" sourceName="Omron" unit="mmHg" startDate="2026-11-01 08:00:00 +0100" endDate="2026-11-01 08:00:00 +0100" value="120"/>` +
		`<Record type="HKQuantityTypeIdentifierBloodPressureDiastolic" sourceName="Omron" unit="mmHg" startDate="2026-11-01 08:00:00 +0100" endDate="2026-11-01 08:00:00 +0100" value="80"/></Correlation>` + "\n"
	sleep := `<Record type="HKCategoryTypeIdentifierSleepAnalysis" sourceName="Watch" startDate="2026-11-01 00:00:00 +0100" endDate="2026-11-01 07:00:00 +0100" value="HKCategoryValueSleepAnalysisAsleep"/>` + "\n"
	items, err := parseString(appleFormat, appleDoc(`<ExportDate value="2026-11-02 10:00:00 +0100"/>`+"\n"+appleRec+appleRec+bp+sleep+`<Unknown a="b"/>`+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 5 {
		t.Fatalf("%d items", len(items))
	}
	// Two identical samples are two items, each with a stable key.
	if items[0].Key == items[1].Key {
		t.Error("identical samples share a key")
	}
	if items[0].Data["effectivePeriod"] == nil || items[2].Data["valueQuantity"] == nil || items[4].Data["valueString"] != "HKCategoryValueSleepAnalysisAsleep" {
		t.Errorf("shapes: %v / %v / %v", items[0].Data, items[2].Data, items[4].Data)
	}
	again, _ := parseString(appleFormat, appleDoc(appleRec+appleRec))
	if again[0].Key != items[0].Key || again[1].Key != items[1].Key {
		t.Error("keys are not stable across exports")
	}
}

func TestAppleHealthMalformed(t *testing.T) {
	for _, tc := range []struct{ name, in, code string }{
		{"not an export", `<?xml version="1.0"?><Other/>`, "applehealth_not_export"},
		{"empty", "", "applehealth_not_export"},
		{"truncated", appleDoc(appleRec)[:200], "applehealth_truncated"},
		{"syntax", appleDoc(strings.Replace(appleRec, `value="512"/>`, `value="512">`, 1)), "applehealth_syntax"},
		{"bad date", appleDoc(strings.Replace(appleRec, "2026-11-01 09:00:00 +0100", "yesterday", 1)), "applehealth_bad_date"},
		{"no type", appleDoc(strings.Replace(appleRec, `type="HKQuantityTypeIdentifierStepCount" `, "", 1)), "applehealth_no_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseString(appleFormat, tc.in)
			wantCode(t, err, tc.code)
		})
	}
	// NaN is not a quantity.
	items, err := parseString(appleFormat, appleDoc(strings.Replace(appleRec, `value="512"`, `value="NaN"`, 1)))
	if err != nil || items[0].Data["valueQuantity"] != nil || items[0].Data["valueString"] != "NaN" {
		t.Fatalf("NaN: %v %v", items, err)
	}
}
