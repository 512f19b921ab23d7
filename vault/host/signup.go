package host

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

// Sign-up. A person creates their vault on the host and chooses its
// passphrase; the host stores nothing of the passphrase (Argon2id runs in
// the process, as it does at every unlock). Who may sign up is the
// operator's choice: by invitation (a single-use code the operator hands
// out), open (bounded by the HTTP layer's per-address rate), or closed
// (the operator's CLI only).

var (
	ErrBadInvite = policy.E(policy.KindForbidden, "invalid_invite", "the invitation code is unknown, used or expired")
)

// Create makes the named vault with the owner's passphrase and returns a
// handle to it, open and unsealed. The name is taken atomically: of two
// sign-ups for one name, one gets ErrNameTaken.
func (h *Host) Create(ctx context.Context, name string, passphrase []byte) (*Handle, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	if len([]rune(string(passphrase))) < vault.MinPassphraseLen {
		return nil, vault.ErrWeakPassphrase
	}
	dir := h.dir(name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, ErrNameTaken
		}
		return nil, policy.Wrap(policy.KindUnavailable, "temporarily_unavailable", "cannot create the vault's directory", err)
	}
	var claim Claim
	if p := h.opts.Placement; p != nil {
		// The name must be free on every host, not only here.
		c, err := p.Claim(ctx, name, dir, true)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		claim = c
	}
	res, err := h.acquireNew(ctx, name, claim, func(e *entry) (*vault.Vault, error) {
		return vault.Create(ctx, dir, passphrase, h.vaultOptions(e))
	})
	if err != nil {
		if claim != nil {
			ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			if err := claim.Erase(ectx); err != nil {
				h.log.Warn("a failed sign-up's lease was not erased; the name stays taken", "vault", name, "err", err)
			}
			cancel()
		}
		os.RemoveAll(dir) // nothing of a failed sign-up stays, the name is free again
		return nil, err
	}
	h.log.Info("vault created", "vault", name)
	return res, nil
}

// acquireNew registers the entry of a vault being created and opens it.
func (h *Host) acquireNew(ctx context.Context, name string, claim Claim, open func(*entry) (*vault.Vault, error)) (*Handle, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosing
	}
	e := &entry{name: name, dir: h.dir(name), keeper: vault.NewKeeper(h.opts.Vault), opening: make(chan struct{}), claim: claim}
	h.entries[name] = e
	h.mu.Unlock()
	hd, err := h.openEntry(ctx, e, open)
	if err != nil {
		h.mu.Lock()
		delete(h.entries, name)
		h.mu.Unlock()
		return nil, err
	}
	return hd, nil
}

// Delete erases a vault from the host: closes it, forgets its key and
// removes its directory. Replicas and backups outside the directory are
// the operator's to erase (docs/operations.md, "Erasure").
func (h *Host) Delete(ctx context.Context, name string) error {
	if err := ValidName(name); err != nil || (!h.Exists(name) && h.opts.Placement == nil) {
		return ErrNoSuchVault
	}
	// The book never says more than the vault: its domains go first.
	if err := h.forgetDomains(ctx, name); err != nil {
		return policy.Wrap(policy.KindUnavailable, "temporarily_unavailable", "cannot strike the vault's domains from the domain book", err)
	}
	h.mu.Lock()
	e, ok := h.entries[name]
	var victims []victim
	var claim Claim
	if ok {
		if e.users > 0 || e.opening != nil || e.leaving {
			h.mu.Unlock()
			return policy.E(policy.KindConflict, "vault_busy", "the vault is in use; try again in a moment")
		}
		if e.elem != nil {
			claim = e.claim
			e.claim = nil
			vi := h.detachLocked(e)
			vi.claim = nil // kept: the replica is erased under the lease
			victims = []victim{vi}
		} else if e.claim != nil {
			claim, e.claim = e.claim, nil // held while sealed
		}
		delete(h.entries, name)
	}
	h.mu.Unlock()
	h.closeAll(victims)
	if ok {
		e.keeper.Seal()
	}
	if p := h.opts.Placement; p != nil {
		// Erase the replica and the lease too, holding the lease while
		// doing so: no other host may be serving the vault.
		if claim == nil {
			c, err := p.Claim(ctx, name, h.dir(name), false)
			if err != nil {
				return err
			}
			claim = c
		}
		if err := claim.Erase(ctx); err != nil {
			return policy.Wrap(policy.KindUnavailable, "temporarily_unavailable", "cannot erase the vault's replica", err)
		}
	}
	// Rename first: a half-removed directory must never look like a vault.
	gone := filepath.Join(h.opts.Root, "vaults", "."+name+".deleted-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := os.Rename(h.dir(name), gone); err != nil {
		return policy.Wrap(policy.KindUnavailable, "temporarily_unavailable", "cannot remove the vault", err)
	}
	if err := os.RemoveAll(gone); err != nil {
		return policy.Wrap(policy.KindUnavailable, "temporarily_unavailable", "cannot remove the vault's files", err)
	}
	h.log.Info("vault deleted", "vault", name)
	return nil
}

// Invitations are single-use codes; the host keeps only their SHA-256 as a
// file name (the file holds the expiry), so a copy of the directory does
// not hand out codes, and using one is an atomic remove.

var inviteEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Invite makes a code valid for ttl and returns it; it is shown once.
func (h *Host) Invite(ttl time.Duration) (string, error) {
	b := make([]byte, 15)
	rand.Read(b)
	code := strings.ToLower(inviteEncoding.EncodeToString(b)) // 24 characters, 120 bits
	exp := h.opts.Vault.Now().Add(ttl).Unix()
	if err := os.WriteFile(h.invitePath(code), []byte(strconv.FormatInt(exp, 10)), 0o600); err != nil {
		return "", policy.Wrap(policy.KindUnavailable, "temporarily_unavailable", "cannot store the invitation", err)
	}
	return code, nil
}

func (h *Host) invitePath(code string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(code))))
	return filepath.Join(h.opts.Root, "invites", hex.EncodeToString(sum[:]))
}

// redeem uses up a code; restore puts it back (a sign-up that failed after).
func (h *Host) redeem(code string) (restore func(), err error) {
	if code == "" || len(code) > 64 {
		return nil, ErrBadInvite
	}
	p := h.invitePath(code)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, ErrBadInvite
	}
	exp, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || h.opts.Vault.Now().Unix() >= exp {
		os.Remove(p)
		return nil, ErrBadInvite
	}
	if err := os.Remove(p); err != nil {
		return nil, ErrBadInvite // another sign-up used it first
	}
	return func() { os.WriteFile(p, b, 0o600) }, nil
}

// SignUp creates a vault for a person holding an invitation (or for
// anyone when invite is not required).
func (h *Host) SignUp(ctx context.Context, name string, passphrase []byte, invite string, required bool) (*Handle, error) {
	// Check what can be checked before spending the code.
	if err := ValidName(name); err != nil {
		return nil, err
	}
	if len([]rune(string(passphrase))) < vault.MinPassphraseLen {
		return nil, vault.ErrWeakPassphrase
	}
	if h.Exists(name) {
		return nil, ErrNameTaken
	}
	restore := func() {}
	if required {
		r, err := h.redeem(invite)
		if err != nil {
			return nil, err
		}
		restore = r
	}
	hd, err := h.Create(ctx, name, passphrase)
	if err != nil {
		restore()
		return nil, err
	}
	return hd, nil
}
