package policy

import (
	"strings"
	"testing"
)

func TestValidHostName(t *testing.T) {
	for _, ok := range []string{"data.example.org", "a.io", "xn--bcher-kva.example", "1password.example", "a-b.c-d.example", strings.Repeat("a", 63) + ".example"} {
		if !ValidHostName(ok) {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"", "example", "Data.example.org", "data.example.org.", "127.0.0.1", "::1", "10.0.0", "a..example", "-a.example", "a-.example",
		"a_b.example", "a b.example", "data.example.org:443", "x.localhost", strings.Repeat("a", 64) + ".example", strings.Repeat("a.", 127) + "example"} {
		if ValidHostName(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}
