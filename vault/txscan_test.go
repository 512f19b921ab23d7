package vault

import (
	"encoding/json"
	"reflect"
	"testing"
)

var scanTxSeeds = []string{
	`{"account":{"id":"DE89370400440532013000"},"amount":"-12.50","counterparty":"Bäckerei","currency":"EUR","date":"2026-03-01","description":"Brot","provenance":{"importer":"camt053","item":"entry 1","source":"x.xml"}}`,
	`{"amount":-12.5,"date":"2026-03-01"}`,
	`{"Amount":"1","amount":"2","AMOUNT":"3"}`,
	`{"date":null,"Date":"2026-01-01","DATE":null}`,
	`{"account":"Giro","description":"a \"quoted\" \u00e9 text"}`,
	`{"account":{"id":"x","name":"y"},"counterparty":["a"],"currency":{"c":1}}`,
	`{"provenance":null}`,
	`{"provenance":"text"}`,
	`{"de\u0061te":"escaped key","date":"2026-02-02"}`,
	`{"ſ":"long s","date":"2026"}`,
	` { "date" : "2026-01-01" , "amount" : 1e3 } `,
	`{}`,
	`[]`,
	`"x"`,
	`{"a":{]}`,
	`{"date":"unterminated}`,
	`{"a":1,}`,
	`{"date":tru}`,
}

func TestScanTxAgreesWithJSON(t *testing.T) {
	for _, s := range scanTxSeeds {
		checkScanTx(t, []byte(s))
	}
}

func FuzzScanTx(f *testing.F) {
	for _, s := range scanTxSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkScanTx(t, b) })
}

func checkScanTx(t *testing.T, b []byte) {
	t.Helper()
	got, gok := scanTx(b) // never panics, valid or not
	if !json.Valid(b) {
		return
	}
	want, wok := readTx(b)
	if gok != wok || !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\nscanTx %v %#v\nreadTx %v %#v", b, gok, got, wok, want)
	}
}
