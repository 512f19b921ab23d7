package vault

import (
	"bytes"
	"testing"
)

// FuzzRecordEnvelope: a sealed record opens only with exactly the
// associated data it was sealed with, and any changed byte is refused.
func FuzzRecordEnvelope(f *testing.F) {
	f.Add([]byte(`{"name":"Ada"}`), "profile", "aaaaaaaaaaaaaaaaaaaaaaaaaa", int64(1), uint16(0))
	f.Add([]byte{}, "health", "bbbbbbbbbbbbbbbbbbbbbbbbbb", int64(7), uint16(40))
	key := bytes.Repeat([]byte{7}, keySize)
	f.Fuzz(func(t *testing.T, pt []byte, coll, id string, version int64, flip uint16) {
		ad := aad(labelRecordAAD, []byte("vault"), []byte(coll), []byte(id), u64(uint64(version)), u64(1))
		sealed := seal(key, pt, ad)
		got, err := open(key, sealed, ad)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("round trip: %v", err)
		}
		bad := bytes.Clone(sealed)
		bad[int(flip)%len(bad)] ^= 1
		if _, err := open(key, bad, ad); err == nil {
			t.Fatal("a flipped byte opened")
		}
		other := aad(labelRecordAAD, []byte("vault"), []byte(coll), []byte(id), u64(uint64(version)+1), u64(1))
		if _, err := open(key, sealed, other); err == nil {
			t.Fatal("opened under another version")
		}
		if _, err := open(key, pt, ad); err == nil && len(pt) > 0 {
			t.Fatal("unsealed bytes opened")
		}
	})
}
