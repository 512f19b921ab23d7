package importers

import (
	"errors"
	"fmt"
	fx "github.com/pdvault/pdvault/internal/fixtures"
	"os"
	"strings"
	"testing"
)

// fixtures is the path of a shared sample file (internal/fixtures).
func fixtures(t *testing.T, parts ...string) string { return fx.Path(t, parts...) }

// parseFile runs an importer over a file and returns its items.
func parseFile(t *testing.T, f Format, path string) ([]Item, error) {
	t.Helper()
	r, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var items []Item
	err = f.Run(r, nil, func(it Item) error { items = append(items, it); return nil })
	return items, err
}

func parseString(f Format, s string) ([]Item, error) {
	var items []Item
	err := f.Run(strings.NewReader(s), nil, func(it Item) error { items = append(items, it); return nil })
	return items, err
}

// wantCode checks that err is an importer error with this code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var ie *Error
	if !errors.As(err, &ie) {
		t.Fatalf("error = %v, want importer error %s", err, code)
	}
	if ie.Code != code {
		t.Fatalf("code = %s (%v), want %s", ie.Code, err, code)
	}
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"vcard/ez-vcard-fullcontact.vcf", "vcard"},
		{"vcard/ez-vcard-gmail-single2.vcf", "vcard"},
		{"vcard/ez-vcard-issue114.vcf", "vcard"},
		{"csv/csv2ofx-capitalone.csv", "csv"},
		{"csv/csv2ofx-gls.csv", "csv"},
		{"csv/csv2ofx-outbank.csv", "csv"},
		{"csv/csv2ofx-schwab-checking.csv", "csv"},
		{"csv/csv2ofx-ubs-ch-fr_trimmed.csv", "csv"},
		{"fhir/smart-generated-Buster_Hoeger.json", "fhir"},
		{"applehealth/healthkit-to-sqlite-export.xml", "applehealth"},
		{"ofx/ofxparse-checking.ofx", "ofx"},
		{"ofx/ofxparse-suncorp.ofx", "ofx"},
		{"ofx/qfxparser-test.qfx", "ofx"},
		{"camt053/genkgo-camt053.v8.xml", "camt053"},
		{"ical/icalendar-timezoned.ics", "ical"},
		{"camt053/genkgo-camt053.v2.minimal.xml", "camt053"},
	} {
		b, err := os.ReadFile(fixtures(t, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		f, ok := Detect(b[:min(len(b), HeadSize)])
		if got := map[bool]string{true: f.Name}[ok]; got != tc.want {
			t.Errorf("%s detected as %q, want %q", tc.file, got, tc.want)
		}
	}
	if f, ok := Detect([]byte("\ufeff\r\n  begin:vcard\r\n")); !ok || f.Name != "vcard" {
		t.Error("a BOM, blank lines and lower case should still be a vCard")
	}
}

func TestFormatsListed(t *testing.T) {
	fs := Formats()
	if len(fs) == 0 || fs[0].Name == "" {
		t.Fatal("no formats")
	}
	for _, f := range fs {
		if g, ok := Lookup(f.Name); !ok || g.Name != f.Name || f.Version == "" || len(f.Collections) == 0 {
			t.Errorf("format %q incomplete", f.Name)
		}
	}
	if _, ok := Lookup("nope"); ok {
		t.Error("unknown format found")
	}
}

// Repeated contents are numbered; the memory of them is bounded.
func TestRepeatsBounded(t *testing.T) {
	r := repeats{}
	if r.next("a") != 1 || r.next("a") != 2 || r.next("b") != 1 {
		t.Fatal("numbering")
	}
	for i := range 3 * maxRepeats {
		r.next(fmt.Sprint(i))
		if len(r) > maxRepeats {
			t.Fatalf("%d contents remembered", len(r))
		}
	}
}
