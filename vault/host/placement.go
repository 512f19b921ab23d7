package host

import (
	"context"
	"time"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

// Beyond one host (docs/operations.md, "Beyond one host"): hosts share
// vaults through replicated object storage. Which host serves a vault is
// the router's choice; that only one host at a time writes it is the
// lease's. A Placement is that storage and its leases (package replica);
// a host without one serves only the vaults in its own directory.

// ErrElsewhere is what a host answers for a vault another host holds (or
// that it is handing over): the router will send the retry to the right
// host once the move is done.
var ErrElsewhere = func() *policy.Error {
	e := policy.E(policy.KindUnavailable, "vault_elsewhere", "this vault is served by another host just now; try again")
	e.RetryAfter = time.Second
	return e
}()

// elsewhereFor is how long a host remembers that another host held a
// vault: at most ten lease lookups a second per name, whoever asks, and at
// most this much added to a move's window.
const elsewhereFor = 100 * time.Millisecond

// Placement takes vaults for this host.
type Placement interface {
	// Claim takes the named vault for this host: it acquires the vault's
	// lease and makes dir hold the vault's newest replicated state. With
	// create, the vault must not exist yet, here or anywhere. Errors:
	// ErrNoSuchVault, ErrNameTaken, ErrElsewhere.
	Claim(ctx context.Context, name, dir string, create bool) (Claim, error)
	// Exists says whether the named vault is in the shared storage,
	// without claiming it.
	Exists(ctx context.Context, name string) (bool, error)
}

// lookupRate bounds the shared-storage lookups Knows makes for names not
// on this host: a stranger's TLS handshakes with invented names cost the
// host at most this many round trips a second.
const lookupRate = 20

// Claim is this host's hold on one vault.
type Claim interface {
	// Fence is nil while this host may write the vault (vault.Fence).
	Fence() error
	// Confirm is awaited after each commit before its request is answered
	// (vault.Confirm); nil when replication is asynchronous.
	Confirm() vault.Confirm
	// Handover is what the previous host left to unseal the vault with
	// (Keeper.Handover), or nil.
	Handover() []byte
	// Replicate starts copying the opened database at path.
	Replicate(path string) error
	// Release flushes the replica, stops replicating and gives the lease
	// up, leaving handover (if not nil) for the next host. The database
	// must be closed first.
	Release(ctx context.Context, handover []byte) error
	// Erase deletes the vault's replica and lease: its owner deleted it.
	Erase(ctx context.Context) error
}
