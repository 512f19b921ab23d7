package vault

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"sync"
	"time"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault/internal/crypt"
)

// Owner sessions. A session token is 256 random bits shown once to the
// owner; the vault keeps only its SHA-256, so a memory dump of the session
// table gives no usable token, and looking a token up by its hash leaks
// nothing useful through timing.

// Session is what a successful login returns.
type Session struct {
	Token     string        `json:"token"`
	ExpiresIn time.Duration `json:"-"`
}

var (
	ErrNoSession = policy.E(policy.KindUnauthenticated, "invalid_token", "missing, unknown or expired owner token")
	ErrThrottled = policy.E(policy.KindThrottled, "slow_down", "too many wrong passphrases; wait before trying again")
)

// Throttling of wrong passphrases: after freeFailures in a row, each
// further attempt must wait twice as long as the last, up to maxBackoff.
// It is per vault, not per address: there is one owner, and an attacker
// can change address at will. The cost is that an attacker can keep the
// owner waiting up to maxBackoff; the owner's existing sessions still work.
const (
	freeFailures = 3
	baseBackoff  = time.Second
	maxBackoff   = 5 * time.Minute
)

type sessions struct {
	now func() time.Time
	ttl time.Duration

	mu       sync.Mutex
	byHash   map[[32]byte]time.Time // token hash -> expiry
	failures int
	nextTry  time.Time
}

func newSessions(now func() time.Time, ttl time.Duration) *sessions {
	return &sessions{now: now, ttl: ttl, byHash: map[[32]byte]time.Time{}}
}

func (s *sessions) issue() Session {
	tok := base64.RawURLEncoding.EncodeToString(crypt.Random(32))
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	// Drop expired sessions so the table cannot grow without bound.
	for h, exp := range s.byHash {
		if !now.Before(exp) {
			delete(s.byHash, h)
		}
	}
	s.byHash[sha256.Sum256([]byte(tok))] = now.Add(s.ttl)
	return Session{Token: tok, ExpiresIn: s.ttl}
}

func (s *sessions) check(token string) error {
	if token == "" {
		return ErrNoSession
	}
	h := sha256.Sum256([]byte(token))
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.byHash[h]
	if !ok {
		return ErrNoSession
	}
	if !s.now().Before(exp) {
		delete(s.byHash, h)
		return ErrNoSession
	}
	return nil
}

func (s *sessions) end(token string) {
	s.mu.Lock()
	delete(s.byHash, sha256.Sum256([]byte(token)))
	s.mu.Unlock()
}

func (s *sessions) endAll() {
	s.mu.Lock()
	s.byHash = map[[32]byte]time.Time{}
	s.mu.Unlock()
}

// gate refuses an attempt made before the backoff has passed.
func (s *sessions) gate() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if wait := s.nextTry.Sub(s.now()); wait > 0 {
		return ErrThrottled.WithRetryAfter(wait)
	}
	return nil
}

func (s *sessions) result(ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok {
		s.failures = 0
		s.nextTry = time.Time{}
		return
	}
	s.failures++
	if s.failures > freeFailures {
		d := baseBackoff << min(s.failures-freeFailures-1, 20)
		s.nextTry = s.now().Add(min(d, maxBackoff))
	}
}

// checkPassphrase proves the passphrase against the stored wrapped master
// key, read afresh so a passphrase changed by another process counts.
func (v *Vault) checkPassphrase(ctx context.Context, passphrase []byte) (meta, error) {
	if err := v.sessions.gate(); err != nil {
		return meta{}, err
	}
	m, err := loadMeta(ctx, v.db.r)
	if err != nil {
		return meta{}, storageError("read vault metadata", err)
	}
	master, err := unwrapMaster(ctx, passphrase, m)
	if policy.KindOf(err) == policy.KindUnauthenticated {
		v.sessions.result(false)
		v.log.Warn("wrong owner passphrase")
	}
	if err != nil {
		return meta{}, err
	}
	crypt.Wipe(master)
	v.sessions.result(true)
	return m, nil
}

// Login checks the owner's passphrase and opens a session.
func (v *Vault) Login(ctx context.Context, passphrase []byte) (Session, error) {
	if _, err := v.checkPassphrase(ctx, passphrase); err != nil {
		return Session{}, err
	}
	return v.sessions.issue(), nil
}

// NewSession opens an owner session without a passphrase. It is for the
// process that unlocked the vault (serve --dev prints one).
func (v *Vault) NewSession() Session { return v.sessions.issue() }

// Authenticate checks an owner session token.
func (v *Vault) Authenticate(token string) error { return v.sessions.check(token) }

// Logout ends one session.
func (v *Vault) Logout(token string) { v.sessions.end(token) }

// ChangePassphrase rewraps the master key under a key derived from the new
// passphrase, with a new salt, in one transaction. The master key, and so
// every record, is unchanged. All owner sessions end.
func (v *Vault) ChangePassphrase(ctx context.Context, old, new []byte) error {
	if len([]rune(string(new))) < MinPassphraseLen {
		return ErrWeakPassphrase
	}
	m, err := v.checkPassphrase(ctx, old)
	if err != nil {
		return err
	}
	kdf := DefaultKDFParams()
	// Keep a stronger cost the owner chose; only the salt must be new.
	kdf.Memory, kdf.Time, kdf.Threads = max(kdf.Memory, m.kdf.Memory), max(kdf.Time, m.kdf.Time), max(kdf.Threads, m.kdf.Threads)
	kdfJSON, err := json.Marshal(kdf)
	if err != nil {
		return policy.Internal("encode kdf", err)
	}
	kek, err := deriveKEK(new, kdf)
	if err != nil {
		return policy.Internal("derive key", err)
	}
	defer crypt.Wipe(kek)
	v.keyMu.RLock()
	if v.master == nil {
		v.keyMu.RUnlock()
		return ErrLocked
	}
	wrapped := crypt.Seal(kek, v.master, masterAAD(v.id, string(kdfJSON)))
	v.keyMu.RUnlock()
	err = v.db.tx(ctx, func(tx *sql.Tx) error {
		// Compare-and-swap on the old wrapping: if another process changed
		// the passphrase since we checked, do nothing.
		cur, err := v.st.row(ctx, tx, tMeta, 1)
		if err != nil {
			return err
		}
		if !bytes.Equal(cur.bytes("wrapped_master"), m.wrapped) {
			return policy.E(policy.KindConflict, "passphrase_changed", "the passphrase was changed meanwhile; try again with the current one")
		}
		return v.st.update(ctx, tx, tMeta, 1, `kdf = ?, wrapped_master = ?`, string(kdfJSON), wrapped)
	})
	if err != nil {
		return err
	}
	v.sessions.endAll()
	v.log.Info("owner passphrase changed")
	return nil
}
