//go:build pdvault_cheapkdf

package vault

// A benchmark-only floor (go test -tags pdvault_cheapkdf): provisioning
// 100,000 vaults at 64 MiB and three passes each would take hours. A vault
// made by such a build is refused by every normal build (its parameters
// are below the floor), so it can never be used for real data.
const (
	minMemoryKiB = 8
	minTime      = 1
	minThreads   = 1
)

// CheapKDF reports whether this binary was built with the benchmark-only
// KDF floor.
const CheapKDF = true
