package vault

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault/internal/crypt"
)

// A host serving many vaults closes the idle ones (docs/operations.md,
// "Hosting pdvault for many people"). Closing must not log the owner out,
// forget a guesser's failures, or need the passphrase again: a Keeper is
// what outlives the open database — the owner's sessions and login
// throttle, and, while the vault is unsealed, its master key. It lives in
// memory only; a restarted host has none, so every vault starts sealed.

// ErrSealed is what a sealed vault answers: its keys are not in memory
// until its owner unlocks it with the passphrase.
// Retry-After is five minutes: an owner unlocks from a device, not in
// milliseconds.
var ErrSealed = func() *policy.Error {
	e := policy.E(policy.KindUnavailable, "vault_sealed", "the vault is sealed until its owner unlocks it; try again later")
	e.RetryAfter = 5 * time.Minute
	return e
}()

// Keeper holds one vault's in-memory state across openings. Create one per
// vault with NewKeeper and pass it in Options.Keeper to Create, Open,
// Unseal and Reopen.
type Keeper struct {
	sessions *sessions

	mu       sync.Mutex
	vaultID  string
	master   []byte // nil: sealed
	failures int64  // wrong passphrases while sealed, not yet in the audit log
	lastFrom string
}

// NewKeeper returns a sealed keeper whose sessions follow opts (clock,
// session lifetime, global login budget).
func NewKeeper(opts Options) *Keeper {
	opts.defaults()
	return &Keeper{sessions: newSessions(opts.Now, opts.SessionTTL, opts.LoginFailuresPerMinute)}
}

// Sealed reports whether the keeper holds no master key.
func (k *Keeper) Sealed() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.master == nil
}

// Seal forgets the master key and ends every owner session: the vault
// cannot be reopened until its owner unlocks it again.
func (k *Keeper) Seal() {
	k.mu.Lock()
	crypt.Wipe(k.master)
	k.master = nil
	k.mu.Unlock()
	k.sessions.endAll()
}

// hold keeps a copy of an opened vault's master key.
func (k *Keeper) hold(vaultID string, master []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	crypt.Wipe(k.master)
	k.vaultID, k.master = vaultID, append([]byte(nil), master...)
}

// key returns a copy of the master key, or nil when sealed.
func (k *Keeper) key() (string, []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.master == nil {
		return "", nil
	}
	return k.vaultID, append([]byte(nil), k.master...)
}

// Handover is the keeper's unsealed state for another host of the same
// operator to take up (host.Claim): the vault id and master key, in the
// clear — the caller seals it — and the owner's live sessions (their
// tokens' hashes and expiries), so the owner stays logged in across the
// move. Nil when sealed.
func (k *Keeper) Handover() []byte { return k.handover(true) }

// HandoverThrottle is the part of a handover that is no secret: the
// login throttle, and the wrong passphrases tried while sealed that are
// not yet in the audit log. A vault that moves sealed, or closes idle,
// takes them along, so a guesser gains nothing from a move and the next
// host audits the failures. Nil when there is nothing to carry.
func (k *Keeper) HandoverThrottle() []byte { return k.handover(false) }

func (k *Keeper) handover(withKey bool) []byte {
	h := handover{Throttle: k.sessions.backoffs()}
	if withKey {
		id, master := k.key()
		if master != nil {
			defer crypt.Wipe(master)
			h.VaultID, h.Master, h.Sessions = id, master, k.sessions.live()
		}
	}
	// The failures move: audited by the host that unseals next, not twice.
	k.mu.Lock()
	h.Failures, h.LastFrom = k.failures, k.lastFrom
	k.failures = 0
	k.mu.Unlock()
	if h.Master == nil && len(h.Throttle) == 0 && h.Failures == 0 {
		return nil
	}
	b, _ := json.Marshal(h)
	return b
}

type handover struct {
	VaultID  string                   `json:"vault_id,omitempty"`
	Master   []byte                   `json:"master,omitempty"`
	Sessions map[string]int64         `json:"sessions,omitempty"` // hex SHA-256 of a token → expiry (Unix)
	Throttle map[string]handedBackoff `json:"throttle,omitempty"` // source → failures, wait
	Failures int64                    `json:"failures,omitempty"` // wrong passphrases while sealed, not yet audited
	LastFrom string                   `json:"last_from,omitempty"`
}

// maxHandedSessions bounds the sessions a handover carries (and a taker
// accepts): each login adds one, and a move must not carry without bound.
const maxHandedSessions = 1000

// TakeHandover unseals the keeper with what Handover gave on another host.
// Reopen still checks the key against the database's vault id and wrapped
// key check, so a wrong or stale handover opens nothing.
func (k *Keeper) TakeHandover(b []byte) error {
	var h handover
	if err := json.Unmarshal(b, &h); err != nil || (h.Master != nil || h.VaultID != "") && (h.VaultID == "" || len(h.Master) != crypt.KeySize) || h.Failures < 0 {
		return policy.E(policy.KindInvalid, "invalid_handover", "the handed-over vault state is malformed")
	}
	if h.Master != nil {
		k.hold(h.VaultID, h.Master)
		crypt.Wipe(h.Master)
		k.sessions.adopt(h.Sessions)
	}
	k.sessions.adoptBackoffs(h.Throttle)
	k.mu.Lock()
	k.failures += min(h.Failures, 1<<20)
	if h.LastFrom != "" && len(h.LastFrom) <= 64 {
		k.lastFrom = h.LastFrom
	}
	k.mu.Unlock()
	return nil
}

// Reopen opens an unsealed vault with the master key its keeper holds: no
// passphrase, no Argon2id. A sealed keeper gives ErrSealed; a database that
// is not the vault the key was held for is refused.
func Reopen(ctx context.Context, dir string, opts Options) (*Vault, error) {
	opts.defaults()
	if opts.Keeper == nil {
		return nil, policy.Internal("reopen", fmt.Errorf("no keeper"))
	}
	id, master := opts.Keeper.key()
	if master == nil {
		return nil, ErrSealed
	}
	db, err := openExisting(dir, opts)
	if err != nil {
		crypt.Wipe(master)
		return nil, err
	}
	v, err := openWith(ctx, db, dir, opts, func(m meta) ([]byte, error) {
		if m.vaultID != id {
			crypt.Wipe(master)
			return nil, policy.E(policy.KindUnavailable, "vault_replaced", "the vault's database was replaced while it was open; its owner must unlock it again")
		}
		return master, nil
	})
	if err != nil {
		db.close()
		return nil, err
	}
	return v, nil
}

// Unseal opens a sealed vault with its owner's passphrase and logs the owner
// in, throttled like Login by the keeper's record of failures (a sealed
// vault cannot check its device table's integrity, so a device token only
// chooses the throttle bucket here, as it does once verified in Login).
// Failures cannot reach the audit log while the keys are sealed; they are
// written there, counted, when the vault is next unsealed.
func Unseal(ctx context.Context, dir string, passphrase []byte, src LoginSource, opts Options) (*Vault, LoginResult, error) {
	opts.defaults()
	k := opts.Keeper
	if k == nil {
		return nil, LoginResult{}, policy.Internal("unseal", fmt.Errorf("no keeper"))
	}
	db, err := openExisting(dir, opts)
	if err != nil {
		return nil, LoginResult{}, err
	}
	key, global := "a:"+src.Address, true
	if src.Device != "" {
		h := sha256.Sum256([]byte(src.Device))
		hash := base64.RawURLEncoding.EncodeToString(h[:])
		var n int
		if db.r.QueryRowContext(ctx, `SELECT count(*) FROM devices WHERE hash = ?`, hash).Scan(&n) == nil && n == 1 {
			key, global = "d:"+hash, false
		}
	}
	gen, done, err := k.sessions.reserve(key, global)
	if err != nil {
		db.close()
		return nil, LoginResult{}, err
	}
	v, err := openWith(ctx, db, dir, opts, func(m meta) ([]byte, error) { return unwrapMaster(ctx, passphrase, m) })
	if err != nil {
		db.close()
		if policy.KindOf(err) == policy.KindUnauthenticated {
			k.mu.Lock()
			k.failures++
			k.lastFrom = src.Address
			k.mu.Unlock()
			opts.Logger.Warn("wrong owner passphrase at a sealed vault", "source", src.Address)
		}
		return nil, LoginResult{}, err
	}
	done(true)
	k.mu.Lock()
	n, from := k.failures, k.lastFrom
	k.failures = 0
	k.mu.Unlock()
	if n > 0 {
		err := v.db.tx(context.WithoutCancel(ctx), func(tx *sql.Tx) error {
			return v.appendAudit(ctx, tx, AuditEntry{Event: EvLoginFailed, Actor: "owner", Outcome: OutcomeDenied,
				Reason: fmt.Sprintf("%d wrong passphrase(s) while the vault was sealed, the last from %s", n, from)})
		})
		if err != nil {
			v.Close()
			return nil, LoginResult{}, err // fail closed: the owner must see that someone tried
		}
	}
	res, err := v.loginAfterProof(ctx, gen, src)
	if err != nil {
		v.Close()
		return nil, LoginResult{}, err
	}
	return v, res, nil
}

// openExisting opens the database of the vault in dir, which must exist.
func openExisting(dir string, opts Options) (*store, error) {
	path := filepath.Join(dir, DBFile)
	if _, err := os.Stat(path); err != nil {
		return nil, ErrNoVault
	}
	db, err := openStore(path, false, opts.store())
	if err != nil {
		return nil, policy.Wrap(policy.KindUnavailable, "temporarily_unavailable", "cannot open the vault database", err)
	}
	return db, nil
}
