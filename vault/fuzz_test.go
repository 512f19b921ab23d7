package vault

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/pdvault/pdvault/vault/internal/crypt"
)

// FuzzRecordEnvelope: a sealed record opens only with exactly the
// associated data it was sealed with, and any changed byte is refused.
func FuzzRecordEnvelope(f *testing.F) {
	f.Add([]byte(`{"name":"Ada"}`), "profile", "aaaaaaaaaaaaaaaaaaaaaaaaaa", int64(1), uint16(0))
	f.Add([]byte{}, "health", "bbbbbbbbbbbbbbbbbbbbbbbbbb", int64(7), uint16(40))
	key := bytes.Repeat([]byte{7}, crypt.KeySize)
	f.Fuzz(func(t *testing.T, pt []byte, coll, id string, version int64, flip uint16) {
		ad := recordAAD("vault", coll, id, version, 1, 1795428000, 1795428000)
		sealed := crypt.Seal(key, pt, ad)
		got, err := crypt.Open(key, sealed, ad)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("round trip: %v", err)
		}
		bad := bytes.Clone(sealed)
		bad[int(flip)%len(bad)] ^= 1
		if _, err := crypt.Open(key, bad, ad); err == nil {
			t.Fatal("a flipped byte opened")
		}
		other := recordAAD("vault", coll, id, version+1, 1, 1795428000, 1795428000)
		if _, err := crypt.Open(key, sealed, other); err == nil {
			t.Fatal("opened under another version")
		}
		if _, err := crypt.Open(key, pt, ad); err == nil && len(pt) > 0 {
			t.Fatal("unsealed bytes opened")
		}
	})
}

// FuzzImport: whatever bytes an export file holds, import answers with a
// clear error (never a panic, never a half-made vault) unless the file is
// intact.
func FuzzImport(f *testing.F) {
	f.Add([]byte(exportMagic + "{}\n--- AAAA\n"))
	f.Add([]byte(exportMagicV1 + "{}\n"))
	f.Add([]byte("not an export"))
	f.Fuzz(func(t *testing.T, file []byte) {
		d := filepath.Join(t.TempDir(), "x")
		_, err := Import(t.Context(), bytes.NewReader(file), d, []byte("correct horse battery staple"), Options{})
		if err == nil {
			t.Fatal("imported a made-up file")
		}
		if ents, _ := os.ReadDir(d); len(ents) != 0 {
			t.Fatalf("a failed import left files: %v", ents)
		}
	})
}
