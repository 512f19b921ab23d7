package vault

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// Key hierarchy (docs/security.md):
//
//	passphrase --Argon2id--> KEK --unwraps--> master key (random, 256 bits)
//	master key --HKDF(label)--> record key #n, audit MAC key, pairwise key, export key, ...
//
// Every derivation has its own label, so no two uses can share a key.
const (
	labelMasterWrap = "pdvault.org/v1/master-key-wrap"
	labelRecordKey  = "pdvault.org/v1/record-encryption"
	labelRecordAAD  = "pdvault.org/v1/record"
	labelExportKey  = "pdvault.org/v1/export"
	labelExportAAD  = "pdvault.org/v1/export-frame"
	labelSecretKey  = "pdvault.org/v1/secret-wrap"
)

const keySize = chacha20poly1305.KeySize

// KDFParams are the Argon2id parameters stored with a vault.
type KDFParams struct {
	Salt    []byte `json:"salt"`
	Memory  uint32 `json:"memory_kib"`
	Time    uint32 `json:"time"`
	Threads uint8  `json:"threads"`
}

// The floor is RFC 9106's second recommended setting. The caps stop a
// tampered vault file (or backup) from making unlock use unbounded memory
// or time: parameters outside [floor, cap] are refused before deriving.
const (
	minMemoryKiB = 64 * 1024
	minTime      = 3
	minThreads   = 4
	maxMemoryKiB = 1024 * 1024 // 1 GiB
	maxTime      = 16
	maxThreads   = 16
	saltSize     = 16
)

// DefaultKDFParams returns fresh parameters at the RFC 9106 floor with a new
// random salt.
func DefaultKDFParams() KDFParams {
	return KDFParams{Salt: randomBytes(saltSize), Memory: minMemoryKiB, Time: minTime, Threads: minThreads}
}

var errKDFParams = errors.New("key-derivation parameters out of bounds")

func (p KDFParams) check() error {
	if len(p.Salt) != saltSize ||
		p.Memory < minMemoryKiB || p.Memory > maxMemoryKiB ||
		p.Time < minTime || p.Time > maxTime ||
		p.Threads < minThreads || p.Threads > maxThreads {
		return fmt.Errorf("%w: memory=%d KiB time=%d threads=%d salt=%d bytes", errKDFParams, p.Memory, p.Time, p.Threads, len(p.Salt))
	}
	return nil
}

// deriveKEK runs Argon2id. It is the expensive step of every unlock.
func deriveKEK(passphrase []byte, p KDFParams) ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	return argon2.IDKey(passphrase, p.Salt, p.Time, p.Memory, p.Threads, keySize), nil
}

// subkey derives a 256-bit key for one purpose from the master key. The
// vault id is the salt, so equal master keys in two vaults (which should
// never happen) would still give different sub-keys.
func subkey(master []byte, vaultID string, label string, n uint32) []byte {
	var info []byte
	info = append(info, label...)
	info = binary.BigEndian.AppendUint32(info, n)
	k, err := hkdf.Key(sha256.New, master, []byte(vaultID), string(info), keySize)
	if err != nil {
		// Only possible for an output length HKDF cannot give; ours is fixed.
		panic(err)
	}
	return k
}

// seal encrypts with XChaCha20-Poly1305 under a fresh random 24-byte nonce.
// A random nonce is safe here: 192 bits make collisions negligible for any
// number of writes a vault will see. The nonce is prepended.
func seal(key, plaintext, aad []byte) []byte {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		panic(err) // key length is fixed by construction
	}
	nonce := randomBytes(aead.NonceSize())
	return aead.Seal(nonce, nonce, plaintext, aad)
}

var errDecrypt = errors.New("decryption failed: wrong key, or the data was altered or moved")

// open reverses seal. The length check comes first so a short (truncated)
// ciphertext is refused before it reaches the AEAD.
func open(key, sealed, aad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		panic(err)
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, errDecrypt
	}
	nonce, ct := sealed[:aead.NonceSize()], sealed[aead.NonceSize():]
	pt, err := aead.Open(nil, nonce, ct, aad)
	if err != nil {
		return nil, errDecrypt
	}
	return pt, nil
}

// aad builds associated data from a label and fields, each length-prefixed
// so that no two different field lists encode the same bytes.
func aad(label string, fields ...[]byte) []byte {
	b := make([]byte, 0, 64)
	b = binary.BigEndian.AppendUint32(b, uint32(len(label)))
	b = append(b, label...)
	for _, f := range fields {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	// crypto/rand.Read never returns an error on supported platforms
	// (Go 1.24+); it crashes the program instead of returning weak bytes.
	_, _ = rand.Read(b)
	return b
}

// wipe overwrites key material we no longer need. Go may have copied it
// elsewhere; this narrows the window, it does not close it.
func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
