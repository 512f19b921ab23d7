package crypt

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// Every label is used once, and no current label is a prefix of another,
// so no two derivations or AADs can share an input.
func TestLabelsUniqueAndPrefixFree(t *testing.T) {
	seen := map[Label]bool{}
	for _, l := range append(append([]Label{}, Current...), Legacy...) {
		if seen[l] {
			t.Errorf("label %q listed twice", l)
		}
		seen[l] = true
	}
	for _, a := range Current {
		for _, b := range Current {
			if a != b && strings.HasPrefix(string(b), string(a)) {
				t.Errorf("label %q is a prefix of %q", a, b)
			}
		}
	}
}

// Derive is length-prefixed: the same label under the legacy encoding, or
// another label, gives another key.
func TestDeriveSeparatesLabelsAndVaults(t *testing.T) {
	master := bytes.Repeat([]byte{1}, KeySize)
	keys := map[string]string{}
	add := func(name string, k []byte) {
		h := hex.EncodeToString(k)
		if other, dup := keys[h]; dup {
			t.Errorf("%s and %s derive the same key", name, other)
		}
		keys[h] = name
	}
	for _, l := range Current {
		add("v2 "+string(l), Derive(master, "vault-a", l))
		add("v2 "+string(l)+" other vault", Derive(master, "vault-b", l))
		add("legacy "+string(l), DeriveLegacy(master, "vault-a", l, 0))
	}
	if !bytes.Equal(Derive(master, "vault-a", StateMAC), Derive(master, "vault-a", StateMAC)) {
		t.Fatal("Derive is not deterministic")
	}
}

// The row MAC's failure cases are first-class: each changed input must
// fail, each with the one error a caller tests for.
func TestRowMACVectors(t *testing.T) {
	key := bytes.Repeat([]byte{7}, KeySize)
	cols := []string{"id", "status", "revoked", "details"}
	vals := []any{"g1", "approved", nil, []byte(`[]`)}
	mac, err := RowMAC(key, "vault", "grants", cols, vals)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckRow(key, "vault", "grants", cols, vals, mac); err != nil {
		t.Fatalf("the row as written: %v", err)
	}
	cases := []struct {
		name    string
		key     []byte
		vault   string
		table   string
		cols    []string
		vals    []any
		mac     []byte
		wantErr error
	}{
		{"a value edited", key, "vault", "grants", cols, []any{"g1", "pending", nil, []byte(`[]`)}, mac, ErrRowMAC},
		{"a NULL set (revocation undone is the reverse)", key, "vault", "grants", cols, []any{"g1", "approved", int64(5), []byte(`[]`)}, mac, ErrRowMAC},
		{"moved to another id", key, "vault", "grants", cols, []any{"g2", "approved", nil, []byte(`[]`)}, mac, ErrRowMAC},
		{"moved to another table", key, "vault", "requests", cols, vals, mac, ErrRowMAC},
		{"moved to another vault", key, "other", "grants", cols, vals, mac, ErrRowMAC},
		{"another key", bytes.Repeat([]byte{8}, KeySize), "vault", "grants", cols, vals, mac, ErrRowMAC},
		{"a column renamed", key, "vault", "grants", []string{"id", "state", "revoked", "details"}, vals, mac, ErrRowMAC},
		{"value shifted between columns", key, "vault", "grants", cols, []any{"g1approved", "", nil, []byte(`[]`)}, mac, ErrRowMAC},
		{"empty string is not NULL", key, "vault", "grants", cols, []any{"g1", "approved", "", []byte(`[]`)}, mac, ErrRowMAC},
		{"a float the vault never writes", key, "vault", "grants", cols, []any{"g1", "approved", 1.5, []byte(`[]`)}, mac, ErrRowType},
		{"a truncated MAC", key, "vault", "grants", cols, vals, mac[:16], ErrRowMAC},
	}
	for _, c := range cases {
		err := CheckRow(c.key, c.vault, c.table, c.cols, c.vals, c.mac)
		if !errors.Is(err, c.wantErr) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.wantErr)
		}
	}
	// Integers and text of the same digits differ.
	m1, _ := RowMAC(key, "v", "t", []string{"n"}, []any{int64(5)})
	m2, _ := RowMAC(key, "v", "t", []string{"n"}, []any{"5"})
	if bytes.Equal(m1, m2) {
		t.Error("5 and \"5\" have the same MAC")
	}
	// Text and blob of the same bytes are the same value to the vault.
	m3, _ := RowMAC(key, "v", "t", []string{"n"}, []any{[]byte("5")})
	if !bytes.Equal(m2, m3) {
		t.Error("text and blob of the same bytes differ")
	}
}

// Seal and Open: each way a ciphertext can be wrong is ErrDecrypt.
func TestSealOpenFailures(t *testing.T) {
	key := bytes.Repeat([]byte{3}, KeySize)
	ad := AAD(RecordAAD, []byte("vault"), []byte("profile"), []byte("id"), U64(1))
	sealed := Seal(key, []byte("hello"), ad)
	if pt, err := Open(key, sealed, ad); err != nil || string(pt) != "hello" {
		t.Fatalf("round trip: %q %v", pt, err)
	}
	if bytes.Equal(Seal(key, []byte("hello"), ad)[:24], sealed[:24]) {
		t.Fatal("two seals share a nonce")
	}
	flipped := bytes.Clone(sealed)
	flipped[30] ^= 1
	for name, c := range map[string]struct{ key, sealed, ad []byte }{
		"flipped byte":       {key, flipped, ad},
		"truncated":          {key, sealed[:30], ad},
		"shorter than nonce": {key, sealed[:10], ad},
		"other version":      {key, sealed, AAD(RecordAAD, []byte("vault"), []byte("profile"), []byte("id"), U64(2))},
		"fields re-split":    {key, sealed, AAD(RecordAAD, []byte("vaultprofile"), []byte(""), []byte("id"), U64(1))},
		"other label":        {key, sealed, AAD(LegacyRecordAAD, []byte("vault"), []byte("profile"), []byte("id"), U64(1))},
		"other key":          {bytes.Repeat([]byte{4}, KeySize), sealed, ad},
	} {
		if _, err := Open(c.key, c.sealed, c.ad); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: got %v, want ErrDecrypt", name, err)
		}
	}
}

// STREAM: the failure cases are the point.
func TestStream(t *testing.T) {
	key, _ := FileKeys(bytes.Repeat([]byte{9}, KeySize), []byte("file nonce one"))
	other, _ := FileKeys(bytes.Repeat([]byte{9}, KeySize), []byte("file nonce two"))
	seal := func(k []byte, chunks ...string) [][]byte {
		s := NewStream(k)
		var out [][]byte
		for i, c := range chunks {
			ct, err := s.Seal([]byte(c), i == len(chunks)-1)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, ct)
		}
		if _, err := s.Seal([]byte("more"), true); !errors.Is(err, ErrStreamEnded) {
			t.Fatalf("seal after last: %v", err)
		}
		return out
	}
	open := func(k []byte, cts [][]byte) (string, bool, error) {
		s := NewStream(k)
		var got string
		var last bool
		for _, ct := range cts {
			pt, l, err := s.Open(ct)
			if err != nil {
				return got, last, err
			}
			got, last = got+string(pt), l
		}
		return got, last, nil
	}
	a := seal(key, "a", "b", "c")
	if got, last, err := open(key, a); err != nil || got != "abc" || !last {
		t.Fatalf("round trip: %q %v %v", got, last, err)
	}
	b := seal(other, "x", "y", "z")
	for name, c := range map[string]struct {
		cts     [][]byte
		wantErr error
	}{
		"reordered":            {[][]byte{a[1], a[0], a[2]}, ErrStreamOrder},
		"spliced from another": {[][]byte{a[0], b[1], a[2]}, ErrStreamOrder},
		"data after the last":  {[][]byte{a[0], a[1], a[2], a[2]}, ErrStreamEnded},
		"a chunk dropped":      {[][]byte{a[0], a[2]}, ErrStreamOrder},
	} {
		if _, _, err := open(key, c.cts); !errors.Is(err, c.wantErr) {
			t.Errorf("%s: got %v, want %v", name, err, c.wantErr)
		}
	}
	// Truncated: every chunk opens, but none was the last.
	if _, last, err := open(key, a[:2]); err != nil || last {
		t.Fatalf("truncation must leave last unset: %v %v", last, err)
	}
	// Random access: each chunk opens only at its own position and with
	// its own last flag.
	r := NewStream(key)
	for i, ct := range a {
		pt, err := r.OpenAt(nil, uint64(i), i == 2, ct)
		if err != nil || string(pt) != "abc"[i:i+1] {
			t.Fatalf("OpenAt %d: %q %v", i, pt, err)
		}
	}
	for name, c := range map[string]struct {
		n    uint64
		last bool
		ct   []byte
	}{
		"chunk at another position":  {0, false, a[1]},
		"middle chunk taken as last": {1, true, a[1]},
		"last chunk taken as middle": {2, false, a[2]},
		"chunk of another stream":    {1, false, b[1]},
		"shorter than a tag":         {0, false, a[0][:3]},
	} {
		if _, err := r.OpenAt(nil, c.n, c.last, c.ct); !errors.Is(err, ErrStreamOrder) {
			t.Errorf("OpenAt %s: %v", name, err)
		}
	}
	_, hk := FileKeys(bytes.Repeat([]byte{9}, KeySize), []byte("file nonce one"))
	mac := HeaderMAC(hk, []byte("header"))
	if !CheckHeaderMAC(hk, []byte("header"), mac) || CheckHeaderMAC(hk, []byte("headex"), mac) {
		t.Fatal("header MAC")
	}
}

// The pairwise pseudonyms are fixed functions of their inputs: the same
// record id always gives the same pseudonym for one relationship, another
// for another, and the permutation inverts. (Known answers pin the
// encoding: a change would rename every id organizations hold.)
func TestPairwise(t *testing.T) {
	key := bytes.Repeat([]byte{5}, KeySize)
	if got := hex.EncodeToString(Keyed(key, "sub", "rel")); got != hex.EncodeToString(Keyed(key, "sub\x00rel")) {
		t.Fatal("parts are not joined by one zero byte")
	}
	if bytes.Equal(Keyed(key, "a", "bc"), Keyed(key, "ab", "c")) {
		t.Fatal("a different split gives the same MAC")
	}
	id := bytes.Repeat([]byte{7}, 16)
	a, b := make([]byte, 16), make([]byte, 16)
	Permutation(key, "record-id", "rel-a").Encrypt(a, id)
	Permutation(key, "record-id", "rel-b").Encrypt(b, id)
	if bytes.Equal(a, b) || bytes.Equal(a, id) {
		t.Fatal("two relationships see the same pseudonym")
	}
	back := make([]byte, 16)
	Permutation(key, "record-id", "rel-a").Decrypt(back, a)
	if !bytes.Equal(back, id) {
		t.Fatal("the permutation does not invert")
	}
}
