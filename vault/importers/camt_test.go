package importers

import (
	"strings"
	"testing"
)

func TestCamtFixtures(t *testing.T) {
	for _, tc := range []struct {
		file  string
		n     int
		first map[string]any
	}{
		// 001.02: Nm directly in the party, Sts as text, Strd creditor reference.
		{"genkgo-camt053.v2.minimal.xml", 1, map[string]any{"date": "2014-12-31", "valueDate": "2015-01-02", "amount": "8.85",
			"currency": "EUR", "counterparty": "NAME NAME", "counterpartyAccount": "NL56AGDH9619008421", "creditorReference": "4654654654654654", "status": "book"}},
		// Two statements; a debit's counterparty is its creditor.
		{"genkgo-camt053.v2.multi.statement.xml", 2, map[string]any{"description": "Transaction Description 1", "reference": "000000001"}},
		// 001.08: Pty wrappers, Sts>Cd, BookgDt as DtTm, domain codes, AcctSvcrRef.
		{"genkgo-camt053.v8.xml", 1, map[string]any{"date": "2014-12-31", "amount": "8.85", "counterparty": "NAME NAME",
			"reference": "MUELL/FINP/RA12345", "transactionId": "AAAASESS-FP-CN_98765/01", "type": "PMNT/RCDT/BOOK", "status": "book"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			all, err := parseFile(t, camtFormat, fixtures(t, "camt053", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			items := byCollection(all, "transactions")
			if bal := byCollection(all, "accounts"); len(bal) != len(all)-len(items) || len(bal) == 0 {
				t.Fatalf("%d balances", len(bal))
			}
			if len(items) != tc.n {
				t.Fatalf("%d items, want %d", len(items), tc.n)
			}
			for k, want := range tc.first {
				if items[0].Data[k] != want {
					t.Errorf("%s = %v, want %v", k, items[0].Data[k], want)
				}
			}
			if items[0].Data["account"].(map[string]any)["id"] != "NL26VAYB8060476890" {
				t.Errorf("account %v", items[0].Data["account"])
			}
		})
	}
	all, _ := parseFile(t, camtFormat, fixtures(t, "camt053", "genkgo-camt053.v2.multi.statement.xml"))
	items := byCollection(all, "transactions")
	if d := items[1].Data; d["amount"] != "-7" || d["counterparty"] != "Company Name 2" {
		t.Errorf("debit: %v", d)
	}
}

// camtDoc is a small 001.08 statement written from the schema.
func camtDoc(version, entries string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.` + version + `">
<BkToCstmrStmt><GrpHdr><MsgId>M1</MsgId><CreDtTm>2026-11-01T00:00:00Z</CreDtTm></GrpHdr>
<Stmt><Id>S1</Id><CreDtTm>2026-11-01T00:00:00Z</CreDtTm>
<Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy></Acct>
` + entries + `
</Stmt></BkToCstmrStmt></Document>
`
}

func camtEntryXML(amt, ind, ref, date string) string {
	s := `<Ntry><Amt Ccy="EUR">` + amt + `</Amt><CdtDbtInd>` + ind + `</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>`
	if date != "" {
		s += `<BookgDt><Dt>` + date + `</Dt></BookgDt>`
	}
	if ref != "" {
		s += `<AcctSvcrRef>` + ref + `</AcctSvcrRef>`
	}
	return s + `<NtryDtls><TxDtls><RltdPties><Cdtr><Pty><Nm>Café Zürich</Nm></Pty></Cdtr></RltdPties><RmtInf><Ustrd>coffee</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>`
}

// Entries without a bank reference are keyed by content, numbered when the
// same content repeats, so a longer statement adds only the new ones.
func TestCamtKeys(t *testing.T) {
	coffee := camtEntryXML("3.50", "DBIT", "", "2026-11-02")
	a, err := parseString(camtFormat, camtDoc("08", coffee+coffee))
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseString(camtFormat, camtDoc("08", coffee+coffee+coffee+camtEntryXML("1", "CRDT", "R9", "2026-11-03")))
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 2 || a[0].Key == a[1].Key || a[0].Key != b[0].Key || a[1].Key != b[1].Key || b[2].Key == b[1].Key {
		t.Fatalf("keys: %q %q / %q %q %q", a[0].Key, a[1].Key, b[0].Key, b[1].Key, b[2].Key)
	}
	if b[3].Key != "ref:DE89370400440532013000:R9" || a[0].Data["amount"] != "-3.5" || a[0].Data["counterparty"] != "Café Zürich" {
		t.Errorf("%q %v", b[3].Key, a[0].Data)
	}
	// Versions 001.02 to 001.13 are read; others are not camt.053 to us.
	for _, v := range []string{"02", "04", "10", "13"} {
		if _, err := parseString(camtFormat, camtDoc(v, coffee)); err != nil {
			t.Errorf("version %s: %v", v, err)
		}
	}
}

func TestCamtMalformed(t *testing.T) {
	good := camtDoc("08", camtEntryXML("3.50", "DBIT", "R1", "2026-11-02"))
	for _, tc := range []struct{ name, in, code, ref string }{
		{"bad amount", camtDoc("08", camtEntryXML("3,50", "DBIT", "R1", "2026-11-02")), "camt_bad_amount", "line 6"},
		{"negative amount", camtDoc("08", camtEntryXML("-3.50", "DBIT", "R1", "2026-11-02")), "camt_bad_amount", "line 6"},
		{"no direction", camtDoc("08", camtEntryXML("3.50", "BOTH", "R1", "2026-11-02")), "camt_no_direction", "line 6"},
		{"no date", camtDoc("08", camtEntryXML("3.50", "DBIT", "R1", "")), "camt_no_date", "line 6"},
		{"no currency", strings.Replace(strings.Replace(good, ` Ccy="EUR"`, "", 1), "<Ccy>EUR</Ccy>", "", 1), "camt_bad_currency", "line 6"},
		{"no account", strings.Replace(good, "<IBAN>DE89370400440532013000</IBAN>", "", 1), "camt_no_account", "line 7"},
		{"unsupported version", camtDoc("01", ""), "camt_not_053", ""},
		{"other message", strings.Replace(good, "camt.053", "camt.054", 1), "camt_not_053", ""},
		{"truncated", good[:len(good)/2], "camt_truncated", ""},
		{"syntax", strings.Replace(good, "</Amt>", "</Amnt>", 1), "camt_syntax", "line 6"},
		{"empty", "", "camt_not_053", ""},
		{"bad encoding", strings.Replace(good, `encoding="UTF-8"`, `encoding="EBCDIC"`, 1), "camt_encoding", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseString(camtFormat, tc.in)
			wantCode(t, err, tc.code)
			if tc.ref != "" && err.(*Error).Ref != tc.ref {
				t.Errorf("ref %q, want %q", err.(*Error).Ref, tc.ref)
			}
		})
	}
	// Latin-1 declared and used.
	latin := strings.Replace(strings.Replace(good, `encoding="UTF-8"`, `encoding="ISO-8859-1"`, 1), "Café Zürich", "Caf\xe9 Z\xfcrich", 1)
	items, err := parseString(camtFormat, latin)
	if err != nil || items[0].Data["counterparty"] != "Café Zürich" {
		t.Fatalf("latin-1: %v %v", items, err)
	}
}

// The closing booked balance (CLBD) becomes the account as of its date,
// signed by its CdtDbtInd; other balance types are not kept as records.
func TestCamtBalance(t *testing.T) {
	bal := func(tp, amt, ind, date string) string {
		return `<Bal><Tp><CdOrPrtry><Cd>` + tp + `</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">` + amt + `</Amt><CdtDbtInd>` + ind + `</CdtDbtInd><Dt><Dt>` + date + `</Dt></Dt></Bal>`
	}
	items, err := parseString(camtFormat, camtDoc("08", bal("OPBD", "5.00", "CRDT", "2026-10-01")+bal("CLBD", "012.50", "DBIT", "2026-10-31")))
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].Collection != "accounts" {
		t.Fatalf("items %+v", items)
	}
	want := map[string]any{"id": "DE89370400440532013000", "iban": "DE89370400440532013000", "balance": "-12.5", "balanceDate": "2026-10-31", "currency": "EUR"}
	for k, w := range want {
		if items[0].Data[k] != w {
			t.Errorf("%s = %v, want %v", k, items[0].Data[k], w)
		}
	}
	for _, tc := range []struct{ name, in, code string }{
		{"bad amount", bal("CLBD", "1,5", "CRDT", "2026-10-31"), "camt_bad_amount"},
		{"no direction", bal("CLBD", "1.5", "X", "2026-10-31"), "camt_no_direction"},
		{"no date", bal("CLBD", "1.5", "CRDT", "31.10.2026"), "camt_no_date"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseString(camtFormat, camtDoc("08", tc.in))
			wantCode(t, err, tc.code)
		})
	}
}
