package crypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
)

// Pairwise identifiers (docs/security.md, "Unlinkable identifiers"): what
// one organization sees is derived from a vault secret and its
// relationship, so that it is stable for that organization and unrelated to
// what another sees.

// Keyed is HMAC-SHA-256(key, parts joined by 0x00). Parts are ids and
// fixed words that never contain 0x00, so the joining is unambiguous.
func Keyed(key []byte, parts ...string) []byte {
	m := hmac.New(sha256.New, key)
	for i, p := range parts {
		if i > 0 {
			m.Write([]byte{0})
		}
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// Permutation is AES-256 under Keyed(key, parts...): on one 16-byte block,
// a pseudorandom permutation. The same record id always maps to the same
// pseudonymous id for one relationship (so an organization can keep
// references), and only the vault can map it back.
func Permutation(key []byte, parts ...string) cipher.Block {
	b, err := aes.NewCipher(Keyed(key, parts...))
	if err != nil {
		panic(err) // a 32-byte key always makes a cipher
	}
	return b
}
