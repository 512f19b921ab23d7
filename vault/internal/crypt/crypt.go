// Package crypt holds the vault's cryptographic primitives and nothing
// else: no SQL, no files, no clock. Every key the vault derives has a
// label in the table below; every ciphertext and MAC binds its context
// through length-prefixed associated data. Reading this file and
// rowmac.go is reading all of the vault's cryptography except Argon2id
// (package vault) and JOSE signatures (package policy).
package crypt

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"

	"golang.org/x/crypto/chacha20poly1305"
)

// KeySize is the size of every symmetric key: 256 bits.
const KeySize = chacha20poly1305.KeySize

// Label names one use of a key or one kind of associated data. A label is
// used for exactly one purpose, so no two uses can ever share a key or
// confuse their inputs.
type Label string

// Labels of the current derivation (Derive: HKDF-SHA-256, salt = vault id,
// info = length-prefixed label). They are unique and prefix-free (a test
// checks both), so even a caller that forgot the length prefix could not
// make two of them collide.
const (
	// StateMAC authenticates the rows that carry power (rowmac.go).
	StateMAC Label = "pdvault.org/v2/state-mac"
	// RowAAD is the domain separator inside every row MAC.
	RowAAD Label = "pdvault.org/v2/state-row"
	// RecordAAD binds a sealed record to its place and its times.
	RecordAAD Label = "pdvault.org/v2/record-aad"
	// PairwiseCursor keys the listing cursors organizations see; the
	// pairwise ids keep the legacy pairwise key, so that ids an
	// organization already holds stay valid.
	PairwiseCursor Label = "pdvault.org/v2/pairwise-cursor"
	// One wrapping key per kind of secret the vault stores, each with its
	// own AAD label binding the secret to its row.
	SigningKeyWrap Label = "pdvault.org/v2/signing-key-wrap"
	SigningKeyAAD  Label = "pdvault.org/v2/signing-key-aad"
	RecordKeyWrap  Label = "pdvault.org/v2/record-key-wrap"
	RecordKeyAAD   Label = "pdvault.org/v2/record-key-aad"
	// ImportMark keys the marks of imported items (idempotent imports).
	ImportMark Label = "pdvault.org/v2/import-mark"
	// DocumentKeyAAD binds a document's wrapped key to its vault, its
	// document id and the record key that wraps it.
	DocumentKeyAAD Label = "pdvault.org/v2/document-key"
	// NotifyKey seals notification channels and queued messages;
	// NotifyAAD binds each to the vault and its row.
	NotifyKey Label = "pdvault.org/v2/notify-key"
	NotifyAAD Label = "pdvault.org/v2/notify-row"
	// HandoverAAD binds a vault's unsealed state, handed from one host to
	// the next, to the vault's name, the lease epoch and an expiry.
	HandoverAAD Label = "pdvault.org/v2/host-handover"
)

// Legacy labels: derived as HKDF(info = label || uint32 n). Vaults made
// before schema 6 use them and so must every reader of their data. The
// fixed 4-byte suffix keeps that encoding injective (two infos of equal
// length with different labels differ in the label bytes), but new uses
// take Derive and a v2 label.
const (
	LegacyMasterWrap   Label = "pdvault.org/v1/master-key-wrap" // AAD of the wrapped master key
	LegacyRecordKey    Label = "pdvault.org/v1/record-encryption"
	LegacyRecordAAD    Label = "pdvault.org/v1/record"
	LegacyExportKey    Label = "pdvault.org/v1/export"
	LegacyExportAAD    Label = "pdvault.org/v1/export-frame"
	LegacySecretWrap   Label = "pdvault.org/v1/secret-wrap"
	LegacySigningKey   Label = "pdvault.org/v1/signing-key" // AAD of a sealed signing seed
	LegacyAuditMAC     Label = "pdvault.org/v1/audit-mac"
	LegacyPairwise     Label = "pdvault.org/v1/pairwise-id"
	LegacyRecordKeyAAD Label = "pdvault.org/v1/record-key-wrap"
	LegacyIntentKeyAAD Label = "pdvault.org/v1/intent-key"
)

// Current lists the labels of the current scheme; Legacy those kept to
// read older vaults. Every label in use appears in exactly one list.
var (
	Current = []Label{StateMAC, RowAAD, RecordAAD, PairwiseCursor, SigningKeyWrap, SigningKeyAAD, RecordKeyWrap, RecordKeyAAD,
		ImportMark, DocumentKeyAAD, ExportKey, ExportPayload, ExportHeader, HandoverAAD}
	Legacy = []Label{LegacyMasterWrap, LegacyRecordKey, LegacyRecordAAD, LegacyExportKey, LegacyExportAAD,
		LegacySecretWrap, LegacySigningKey, LegacyAuditMAC, LegacyPairwise, LegacyRecordKeyAAD, LegacyIntentKeyAAD}
)

// Derive returns the sub-key of master for label. The vault id is the
// salt, so the same master key in two vaults (which should never happen)
// still gives unrelated sub-keys; the info is length-prefixed, so no label
// is a prefix-extension of another's input.
func Derive(master []byte, vaultID string, label Label) []byte {
	return hkdfKey(master, vaultID, string(lp(nil, []byte(label))))
}

// DeriveLegacy is the derivation of vaults before schema 6.
func DeriveLegacy(master []byte, vaultID string, label Label, n uint32) []byte {
	return hkdfKey(master, vaultID, string(binary.BigEndian.AppendUint32([]byte(label), n)))
}

func hkdfKey(master []byte, vaultID, info string) []byte {
	k, err := hkdf.Key(sha256.New, master, []byte(vaultID), info, KeySize)
	if err != nil {
		panic(err) // only for an output length HKDF cannot give; ours is fixed
	}
	return k
}

// Seal encrypts with XChaCha20-Poly1305 under a fresh random 24-byte
// nonce, prepended. A random nonce is safe here: at 192 bits a collision
// is negligible for any number of writes a vault will ever see, so no
// counter has to survive crashes or restores.
func Seal(key, plaintext, aad []byte) []byte {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		panic(err) // key length is fixed by construction
	}
	nonce := Random(aead.NonceSize())
	return aead.Seal(nonce, nonce, plaintext, aad)
}

// ErrDecrypt is the one answer for every way a ciphertext can fail: wrong
// key, altered bytes, moved to another place (other AAD), truncated.
var ErrDecrypt = errors.New("decryption failed: wrong key, or the data was altered or moved")

// Open reverses Seal. The length is checked first, so a truncated
// ciphertext is refused before it reaches the AEAD.
func Open(key, sealed, aad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		panic(err)
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrDecrypt
	}
	nonce, ct := sealed[:aead.NonceSize()], sealed[aead.NonceSize():]
	pt, err := aead.Open(nil, nonce, ct, aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// AAD builds associated data from a label and fields, each length-prefixed,
// so that no two different field lists encode to the same bytes (("ab",
// "c") and ("a", "bc") differ).
func AAD(label Label, fields ...[]byte) []byte {
	b := make([]byte, 0, 64)
	b = lp(b, []byte(label))
	for _, f := range fields {
		b = lp(b, f)
	}
	return b
}

// U64 is n as 8 big-endian bytes, for AAD fields.
func U64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func lp(b, field []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(field)))
	return append(b, field...)
}

// Random returns n bytes from the operating system's CSPRNG. Since Go 1.24
// crypto/rand.Read never returns an error: it crashes the program rather
// than hand out weak bytes.
func Random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// Wipe overwrites key material that is no longer needed. Go may have
// copied it elsewhere; this narrows the window, it does not close it.
func Wipe(b []byte) { clear(b) }
