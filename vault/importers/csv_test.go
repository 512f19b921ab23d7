package importers

import (
	"strings"
	"testing"
)

func runCSV(t *testing.T, in string, opt map[string]string) ([]Item, error) {
	t.Helper()
	var items []Item
	err := csvFormat.Run(strings.NewReader(in), opt, func(it Item) error { items = append(items, it); return nil })
	return items, err
}

func TestCSVFixtures(t *testing.T) {
	for _, tc := range []struct {
		file  string
		n     int
		first map[string]any
	}{
		// Debit/Credit columns, ISO dates, card number as the account.
		{"csv2ofx-capitalone.csv", 2, map[string]any{"date": "2015-12-31", "amount": "-1000", "counterparty": "Airplanes R Us", "category": "Other Travel"}},
		// ISO-8859-1, ';', dd.mm.yyyy, 1.234,56, purpose split over VWZ columns.
		{"csv2ofx-gls.csv", 1, map[string]any{"date": "2017-10-10", "amount": "-98.76", "balance": "1234.56", "currency": "EUR",
			"counterparty": "Drillisch Online AG", "description": "SEPA-Basislastschrift B4658645 U123456789 B123456 987 SIMply Rechnung"}},
		// ';', M/D/YY, decimal comma, IBAN account.
		{"csv2ofx-outbank.csv", 4, map[string]any{"date": "2019-02-20", "amount": "100", "counterparty": "Jane Doe", "currency": "EUR"}},
		// All quoted, MM/DD/YYYY, "$1,036.47", Withdrawal/Deposit.
		{"csv2ofx-schwab-checking.csv", 4, map[string]any{"date": "2022-08-17", "amount": "20", "balance": "878.47", "status": "posted", "type": "DEPOSIT"}},
		// French headers, ';' with a decimal point, 11'373.94.
		{"csv2ofx-ubs-ch-fr_trimmed.csv", 3, map[string]any{"date": "2019-03-31", "amount": "-10", "balance": "11373.94", "currency": "CHF", "reference": "A01234BC01234567"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			items, err := parseFile(t, csvFormat, fixtures(t, "csv", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != tc.n {
				t.Fatalf("%d items, want %d", len(items), tc.n)
			}
			for k, w := range tc.first {
				if items[0].Data[k] != w {
					t.Errorf("%s = %v, want %v", k, items[0].Data[k], w)
				}
			}
			if items[0].Ref != "line 2" {
				t.Errorf("ref %q", items[0].Ref)
			}
		})
	}
	items, _ := parseFile(t, csvFormat, fixtures(t, "csv", "csv2ofx-schwab-checking.csv"))
	if items[2].Data["amount"] != "-75" || items[2].Data["checkNumber"] != "558" {
		t.Errorf("check row %v", items[2].Data)
	}
}

func TestCSVAmounts(t *testing.T) {
	for _, tc := range []struct {
		in        string
		dec, hint byte
		want      string
	}{
		{"1.234,56", 0, '.', "1234.56"}, {"1,234.56", 0, '.', "1234.56"}, {"-98,76", 0, '.', "-98.76"},
		{"11'373.94", 0, '.', "11373.94"}, {"$1,036.47", 0, '.', "1036.47"}, {"(12.00)", 0, '.', "-12"},
		{"12,00-", 0, '.', "-12"}, {"1,000", 0, '.', "1000"}, {"1,000", 0, ',', "1"}, {"1.000", ',', '.', "1000"},
		{"€ 5", 0, '.', "5"}, {"0,5", 0, '.', "0.5"},
	} {
		if got, ok := csvAmount(tc.in, tc.dec, tc.hint); !ok || got != tc.want {
			t.Errorf("csvAmount(%q) = %q %v, want %q", tc.in, got, ok, tc.want)
		}
	}
	for _, bad := range []string{"12x", "1.2.3,4,5x", "--1", "abc"} {
		if _, ok := csvAmount(bad, 0, '.'); ok {
			t.Errorf("csvAmount(%q) accepted", bad)
		}
	}
}

// A layout no profile knows, named with --map.
func TestCSVMap(t *testing.T) {
	in := "Tag|Summe|Wer\n31/12/2026|-4,50|Bäcker\n"
	if _, err := runCSV(t, in, nil); err == nil {
		t.Fatal("an unknown layout without --map was accepted")
	} else {
		wantCode(t, err, "csv_unknown_layout")
	}
	items, err := runCSV(t, in, map[string]string{"date": "Tag", "amount": "Summe", "counterparty": "Wer", "dateformat": "02/01/2006", "decimal": "comma", "delimiter": "|"})
	if err != nil {
		t.Fatal(err)
	}
	if d := items[0].Data; d["date"] != "2026-12-31" || d["amount"] != "-4.5" || d["counterparty"] != "Bäcker" {
		t.Errorf("mapped %v", d)
	}
	latin := "Datum;Betrag;Empf\xe4nger\n01.02.2026;-1,00;M\xfcller\n"
	items, err = runCSV(t, latin, map[string]string{"encoding": "windows-1252"})
	if err != nil || items[0].Data["counterparty"] != "Müller" {
		t.Fatalf("latin-1: %v %v", items, err)
	}
}

func TestCSVKeys(t *testing.T) {
	row := "01.11.2026;-3,50;Café\n"
	a, _ := runCSV(t, "Datum;Betrag;Name\n"+row+row, nil)
	b, _ := runCSV(t, "Datum;Betrag;Name\n02.11.2026;-1,00;Kiosk\n"+row+row+row, nil)
	if len(a) != 2 || a[0].Key == a[1].Key || a[0].Key != b[1].Key || a[1].Key != b[2].Key || b[3].Key == b[2].Key {
		t.Fatalf("keys %q %q / %q %q %q", a[0].Key, a[1].Key, b[1].Key, b[2].Key, b[3].Key)
	}
}

func TestCSVMalformed(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		opt      map[string]string
		code     string
		ref      string
	}{
		{"empty", "", nil, "csv_empty", ""},
		{"no layout", "a;b\n1;2\n", nil, "csv_unknown_layout", ""},
		{"bad date", "Datum;Betrag\n2026-13-45;1,00\n", nil, "csv_bad_date", "line 2"},
		{"bad amount", "Datum;Betrag\n01.01.2026;1,00\n02.01.2026;zwölf\n", nil, "csv_bad_amount", "line 3"},
		{"no debit nor credit", "Date,Debit,Credit\n2026-01-01,,\n", nil, "csv_bad_amount", "line 2"},
		{"bad quotes", "Datum;Betrag\n01.01.2026;\"1,00\n", nil, "csv_syntax", "line 2"},
		{"bad map value", "Datum;Betrag\n01.01.2026;1\n", map[string]string{"decimal": "both"}, "csv_bad_map", ""},
		{"unknown option", "Datum;Betrag\n01.01.2026;1\n", map[string]string{"colour": "red"}, "unsupported_option", ""},
		{"mapped column absent", "Datum;Betrag\n01.01.2026;1\n", map[string]string{"amount": "Summe"}, "csv_unknown_layout", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runCSV(t, tc.in, tc.opt)
			wantCode(t, err, tc.code)
			if tc.ref != "" && err.(*Error).Ref != tc.ref {
				t.Errorf("ref %q, want %q", err.(*Error).Ref, tc.ref)
			}
		})
	}
	// Other importers take no options.
	err := vcardFormat.Run(strings.NewReader("BEGIN:VCARD\nVERSION:4.0\nFN:A\nEND:VCARD\n"), map[string]string{"date": "x"}, func(Item) error { return nil })
	wantCode(t, err, "unsupported_option")
}
