package importers

import (
	"strings"
	"testing"
)

func TestOFXFixtures(t *testing.T) {
	for _, tc := range []struct {
		file      string
		n         int
		first     map[string]any
		accountID string
		balances  int
	}{
		// OFX 1.02 SGML, unclosed leaves, tabs.
		{"ofxparse-checking.ofx", 3, map[string]any{"date": "2011-03-31", "amount": "0.01", "currency": "USD", "type": "credit", "transactionId": "0000486"}, "1452687~7", 1},
		// Aggregates on single lines; DTPOSTED with a [-5:EST] offset.
		{"ofxparse-bank_medium.ofx", 3, map[string]any{"date": "2009-04-01", "amount": "-6.6", "currency": "CAD", "counterparty": "MCDONALD'S #112"}, "12300 000012345678", 1},
		// OFX 2.00 XML, CRLF, CDATA.
		{"ofxparse-suncorp.ofx", 1, map[string]any{"amount": "-16.85", "currency": "AUD", "counterparty": "EFTPOS WDL HANDYWAY ALDI STORE"}, "123456789", 1},
		// A 2.03 XML header over an SGML body: read as SGML.
		{"ofxparse-anzcc.ofx", 1, map[string]any{"amount": "-5.5", "currency": "AUD", "description": "SOME MEMO"}, "1234123412341234", 1},
		// Balances only.
		{"ofxparse-multiple_accounts2.ofx", 0, nil, "", 2},
		// CHARSET:1252 with Latin-1 bytes: read as Windows-1252.
		{"qfxparser-testSpecialChars.qfx", 2, map[string]any{"counterparty": "Retrait - Internet - Compte d'ép", "amount": "-100"}, "4111222333", 1},
	} {
		t.Run(tc.file, func(t *testing.T) {
			all, err := parseFile(t, ofxFormat, fixtures(t, "ofx", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			items, balances := byCollection(all, "transactions"), byCollection(all, "accounts")
			if len(items) != tc.n || len(balances) != tc.balances {
				t.Fatalf("%d transactions, %d balances; want %d, %d", len(items), len(balances), tc.n, tc.balances)
			}
			for _, b := range balances {
				if !decimalRE.MatchString(b.Data["balance"].(string)) || len(b.Data["balanceDate"].(string)) != 10 || b.Data["id"] == "" || !strings.HasPrefix(b.Key, "balance:") {
					t.Errorf("balance %+v", b)
				}
			}
			if tc.n == 0 {
				return
			}
			d := items[0].Data
			for k, want := range tc.first {
				if d[k] != want {
					t.Errorf("%s = %v, want %v", k, d[k], want)
				}
			}
			if d["account"].(map[string]any)["id"] != tc.accountID {
				t.Errorf("account %v", d["account"])
			}
			if items[0].Collection != "transactions" || !strings.HasPrefix(items[0].Key, "fitid:") || items[0].Ref != "STMTTRN 1" {
				t.Errorf("item %+v", items[0])
			}
		})
	}
}

// The QFX with TRNAMT "56.77invalid": refused whole, with the line.
func TestOFXBadAmountFixture(t *testing.T) {
	_, err := parseFile(t, ofxFormat, fixtures(t, "ofx", "qfxparser-test.qfx"))
	wantCode(t, err, "ofx_bad_amount")
	if err.(*Error).Ref != "line 65" {
		t.Errorf("ref %q, want line 65", err.(*Error).Ref)
	}
}

const ofxSGML = "OFXHEADER:100\nDATA:OFXSGML\nVERSION:102\nSECURITY:NONE\nENCODING:USASCII\nCHARSET:1252\nCOMPRESSION:NONE\nOLDFILEUID:NONE\nNEWFILEUID:NONE\n\n" +
	"<OFX><SIGNONMSGSRSV1><SONRS><STATUS><CODE>0<SEVERITY>INFO</STATUS><DTSERVER>20261101<LANGUAGE>ENG</SONRS></SIGNONMSGSRSV1>" +
	"<BANKMSGSRSV1><STMTTRNRS><TRNUID>1<STATUS><CODE>0<SEVERITY>INFO</STATUS><STMTRS><CURDEF>EUR<BANKACCTFROM><BANKID>1<ACCTID>42<ACCTTYPE>CHECKING</BANKACCTFROM>" +
	"<BANKTRANLIST><DTSTART>20261001<DTEND>20261031%s</BANKTRANLIST><LEDGERBAL><BALAMT>1.00<DTASOF>20261031</LEDGERBAL></STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>\n"

func ofxTrn(fitid, amt string) string {
	return "<STMTTRN><TRNTYPE>DEBIT<DTPOSTED>20261005<TRNAMT>" + amt + "<FITID>" + fitid + "<NAME>Shop</STMTTRN>"
}

// Transactions are identified by account and FITID, so a later download
// with more of them has the same keys for the old ones.
func TestOFXKeys(t *testing.T) {
	a, err := parseString(ofxFormat, strings.Replace(ofxSGML, "%s", ofxTrn("A1", "-1.50"), 1))
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseString(ofxFormat, strings.Replace(ofxSGML, "%s", ofxTrn("A0", "-3")+ofxTrn("A1", "-1.50"), 1))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 3 || a[0].Key != b[1].Key || b[0].Key == b[1].Key {
		t.Fatalf("keys %q / %q %q", a[0].Key, b[0].Key, b[1].Key)
	}
	if a[0].Data["amount"] != "-1.5" || a[0].Data["currency"] != "EUR" || a[0].Data["date"] != "2026-10-05" {
		t.Errorf("data %v", a[0].Data)
	}
}

func TestOFXMalformed(t *testing.T) {
	good := strings.Replace(ofxSGML, "%s", ofxTrn("A1", "-1.50"), 1)
	for _, tc := range []struct{ name, in, code string }{
		{"bad amount", strings.Replace(ofxSGML, "%s", ofxTrn("A1", "12,3x"), 1), "ofx_bad_amount"},
		{"bad header", strings.Replace(good, "OFXHEADER:100", "OFXHEADER:999", 1), "ofx_header"},
		{"no signon", strings.Replace(good, "<SIGNONMSGSRSV1>", "<SIGNON>", 1), "ofx_structure"},
		{"truncated", good[:len(good)/2], "ofx_truncated"},
		{"no fitid", strings.Replace(good, "<FITID>A1", "", 1), "ofx_invalid"},
		{"xml syntax", "<?xml version=\"1.0\"?>\n<?OFX OFXHEADER=\"200\" VERSION=\"220\" SECURITY=\"NONE\" OLDFILEUID=\"NONE\" NEWFILEUID=\"NONE\"?>\n<OFX><SIGNONMSGSRSV1></OFX>", "ofx_syntax"},
		{"not utf-8 nor a single-byte set", strings.Replace(good, "CHARSET:1252", "CHARSET:UTF-16", 1) + "\xff\xfe", "ofx_encoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseString(ofxFormat, tc.in)
			wantCode(t, err, tc.code)
		})
	}
}

func byCollection(items []Item, coll string) []Item {
	var out []Item
	for _, it := range items {
		if it.Collection == coll {
			out = append(out, it)
		}
	}
	return out
}

// LEDGERBAL becomes the account's balance as of its date: one record per
// account and date, so a newer statement adds the newer balance.
func TestOFXBalance(t *testing.T) {
	items, err := parseString(ofxFormat, strings.Replace(ofxSGML, "%s", ofxTrn("A1", "-1.50"), 1))
	if err != nil {
		t.Fatal(err)
	}
	bal := byCollection(items, "accounts")
	if len(bal) != 1 {
		t.Fatalf("%d balances", len(bal))
	}
	want := map[string]any{"id": "42", "type": "checking", "bankId": "1", "balance": "1", "balanceDate": "2026-10-31", "currency": "EUR"}
	for k, w := range want {
		if bal[0].Data[k] != w {
			t.Errorf("%s = %v, want %v", k, bal[0].Data[k], w)
		}
	}
	later, _ := parseString(ofxFormat, strings.Replace(strings.Replace(ofxSGML, "%s", "", 1), "<DTASOF>20261031", "<DTASOF>20261130", 1))
	if lb := byCollection(later, "accounts"); len(lb) != 1 || lb[0].Key == bal[0].Key {
		t.Fatalf("a later statement's balance has the same key: %+v", lb)
	}
}
