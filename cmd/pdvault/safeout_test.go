package main

import (
	"bytes"
	"strings"
	"testing"
)

// Text organizations chose (a client_name with an OSC title sequence, a
// carriage return, a right-to-left override) reaches the terminal only as
// visible escapes; ordinary text, newlines, tabs and non-Latin letters pass.
func TestSafeWriter(t *testing.T) {
	var out bytes.Buffer
	w := &safeWriter{w: &out}
	in := "Acme\x1b]0;pwned\x07\rBank\u202egnp.exe\u2066x\u2069 \u00e9\u00e8 \u65e5\u672c\tok\n\x9b31m\x7f\u009b[1m"
	// Written byte by byte: runes split across writes still come out whole.
	for i := range len(in) {
		w.Write([]byte{in[i]})
	}
	got := out.String()
	for _, bad := range []string{"\x1b", "\x07", "\r", "\u202e", "\u2066", "\u2069", "\x7f", "\u009b"} {
		if strings.Contains(got, bad) {
			t.Errorf("%q passed through: %q", bad, got)
		}
	}
	for _, want := range []string{`Acme\u001b]0;pwned\u0007\u000dBank\u202egnp.exe`, "\u00e9\u00e8 \u65e5\u672c\tok\n", `\x9b31m\u007f\u009b[1m`} {
		if !strings.Contains(got, want) {
			t.Errorf("want %q in %q", want, got)
		}
	}
}
