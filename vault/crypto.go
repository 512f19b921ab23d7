package vault

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"

	"github.com/pdvault/pdvault/vault/internal/crypt"
)

// Key hierarchy (docs/security.md):
//
//	passphrase --Argon2id--> KEK --unwraps--> master key (random, 256 bits)
//	master key --HKDF(label)--> record key #1, state MAC key, audit MAC key, pairwise key, export key, ...
//
// The labels and every primitive live in package crypt; the names below
// are the legacy labels this package still derives with.
const (
	labelMasterWrap    = crypt.LegacyMasterWrap
	labelRecordKey     = crypt.LegacyRecordKey
	labelExportKey     = crypt.LegacyExportKey
	labelExportAAD     = crypt.LegacyExportAAD
	labelSecretKey     = crypt.LegacySecretWrap
	labelSigningKeyAAD = crypt.LegacySigningKey
	labelPairwiseKey   = crypt.LegacyPairwise
	labelRecordKeyWrap = crypt.LegacyRecordKeyAAD
	labelIntentKey     = crypt.LegacyIntentKeyAAD
)

// KDFParams are the Argon2id parameters stored with a vault.
type KDFParams struct {
	Salt    []byte `json:"salt"`
	Memory  uint32 `json:"memory_kib"`
	Time    uint32 `json:"time"`
	Threads uint8  `json:"threads"`
}

// The floor is RFC 9106's second recommended setting (kdf_floor.go; a
// benchmark-only build lowers it). The caps stop a tampered vault file (or
// backup) from making unlock use unbounded memory or time: parameters
// outside [floor, cap] are refused before deriving.
const (
	maxMemoryKiB = 1024 * 1024 // 1 GiB
	maxTime      = 16
	maxThreads   = 16
	saltSize     = 16
)

// DefaultKDFParams returns fresh parameters at the RFC 9106 floor with a new
// random salt.
func DefaultKDFParams() KDFParams {
	return KDFParams{Salt: crypt.Random(saltSize), Memory: minMemoryKiB, Time: minTime, Threads: minThreads}
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
	return argon2.IDKey(passphrase, p.Salt, p.Time, p.Memory, p.Threads, crypt.KeySize), nil
}
