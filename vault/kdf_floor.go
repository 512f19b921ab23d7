//go:build !pdvault_cheapkdf

package vault

// The Argon2id floor: RFC 9106's second recommended setting.
const (
	minMemoryKiB = 64 * 1024
	minTime      = 3
	minThreads   = 4
)

// CheapKDF reports whether this binary was built with the benchmark-only
// KDF floor.
const CheapKDF = false
