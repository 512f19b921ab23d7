package vault

import (
	"context"
	"sync"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/pdvault/pdvault/policy"
)

// A host that serves vaults from replicated storage (docs/operations.md,
// "Beyond one host") may write a vault only while it holds the vault's
// lease: two hosts must never both accept writes for one vault. The lease
// reaches the database as a Fence, checked by SQLite's commit hook on every
// commit of every connection to the file, so no write path of the vault can
// forget it: a commit the fence refuses becomes a rollback.

// Fence says whether this process may still write a vault's database: nil
// while it may, an error (ErrNotHeld) once it may not.
type Fence func() error

// ErrNotHeld is what a write gets once its host has lost the vault's lease
// (or is handing the vault to another host): nothing was written.
var ErrNotHeld = func() *policy.Error {
	e := policy.E(policy.KindUnavailable, "vault_not_held", "this host no longer holds the vault; nothing was written; try again")
	e.RetryAfter = time.Second
	return e
}()

// ErrReplicaBehind is what a write gets while the vault's replica lags the
// database by more than the host's bound: a host lost now would take more
// acknowledged writes with it than the operator allows, so none is
// acknowledged until the replica catches up. Nothing was written.
var ErrReplicaBehind = func() *policy.Error {
	e := policy.E(policy.KindUnavailable, "replica_behind", "the vault's replica is behind; nothing was written; try again shortly")
	e.RetryAfter = time.Second
	return e
}()

// Confirm, when set, is awaited after a commit and before the request
// that made it is answered: a host that replicates synchronously returns
// once everything committed so far is in the replica, so an answer never
// depends on a write a lost host could take with it. Waiting happens after
// the writer connection is free, so concurrent requests share one wait.
type Confirm func(context.Context) error

// ErrUnconfirmed is what a request gets when its commit is saved on this
// host but the replica did not confirm it in time: no answer depending on
// it is given. The change is not undone; it reaches the replica when the
// replica answers again, so a client checks before repeating it.
var ErrUnconfirmed = func() *policy.Error {
	e := policy.E(policy.KindUnavailable, "replica_unconfirmed", "the change is saved on this host but its replica has not confirmed it; it may still take effect; check before repeating it")
	e.RetryAfter = time.Second
	return e
}()

// fences maps a database path to its fence; the connect hook installs it on
// every connection SQLite opens to that path.
var fences sync.Map // string → Fence

func setFence(path string, f Fence) {
	if f != nil {
		fences.Store(path, f)
	}
}

func dropFence(path string) { fences.Delete(path) }

// installFence is called for every new connection (the driver's connect
// hook): a fenced file's connections refuse to commit once the fence says so.
func installFence(c *sqlite3.SQLiteConn) {
	f, ok := fences.Load(c.GetFilename("main"))
	if !ok {
		return
	}
	fence := f.(Fence)
	c.RegisterCommitHook(func() int {
		if fence() != nil {
			return 1 // SQLITE_CONSTRAINT_COMMITHOOK: the commit is rolled back
		}
		return 0
	})
}
