package vault

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
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

// Throttling of wrong passphrases (docs/security.md, "Owner sessions").
//
// Every attempt is counted as a failure *before* Argon2id runs and undone
// only when it succeeds, so concurrent guesses cannot all slip through
// between the check and the count. Attempts are throttled per source (an
// address; an IPv6 /64) with exponential backoff after freeFailures, and
// all sources together share a global budget of failures, so a guesser
// with many addresses is slowed too. The owner cannot be locked out by
// that budget: a device that once logged in holds a device token (kept by
// the CLI in its config directory, by the browser in an HttpOnly cookie)
// and is throttled only by its own failures. A cross-site form post from a
// page the owner visits is refused by the API's Origin check before it
// counts.
const (
	freeFailures   = 3
	baseBackoff    = time.Second
	maxBackoff     = 5 * time.Minute
	maxSources     = 10000 // throttled sources remembered
	globalFailures = 60    // failed attempts per minute, all sources together
	deviceTTL      = 365 * 24 * time.Hour
)

// LoginSource says where a login attempt comes from.
type LoginSource struct {
	Address string // the client's address (an IPv6 /64), for per-source throttling
	Device  string // a device token from an earlier login, or ""
}

type backoff struct {
	failures int
	next     time.Time
}

type sessions struct {
	now func() time.Time
	ttl time.Duration

	mu         sync.Mutex
	byHash     map[[32]byte]time.Time // token hash -> expiry
	throttle   map[string]*backoff    // "a:"+address or "d:"+device hash
	global     *policy.Limiter        // failures of sources without a device token
	generation uint64                 // bumped by a passphrase change
}

func newSessions(now func() time.Time, ttl time.Duration, perMinute int) *sessions {
	return &sessions{now: now, ttl: ttl, byHash: map[[32]byte]time.Time{}, throttle: map[string]*backoff{},
		global: policy.NewLimiter(float64(perMinute)/60, perMinute)}
}

// issue opens a session, unless the passphrase changed since gen: a login
// that raced a change must not outlive it with the old passphrase.
func (s *sessions) issue(gen uint64) (Session, error) {
	tok := base64.RawURLEncoding.EncodeToString(crypt.Random(32))
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.generation {
		return Session{}, ErrPassphraseChanged
	}
	now := s.now()
	// Drop expired sessions so the table cannot grow without bound.
	for h, exp := range s.byHash {
		if !now.Before(exp) {
			delete(s.byHash, h)
		}
	}
	s.byHash[sha256.Sum256([]byte(tok))] = now.Add(s.ttl)
	return Session{Token: tok, ExpiresIn: s.ttl}, nil
}

var ErrPassphraseChanged = policy.E(policy.KindConflict, "passphrase_changed", "the passphrase was changed meanwhile; log in with the current one")

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

// live is the unexpired sessions, at most maxHandedSessions of them (the
// latest to expire first), for a handover.
func (s *sessions) live() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	type sess struct {
		h   [32]byte
		exp time.Time
	}
	var all []sess
	for h, exp := range s.byHash {
		if now.Before(exp) {
			all = append(all, sess{h, exp})
		}
	}
	slices.SortFunc(all, func(a, b sess) int { return b.exp.Compare(a.exp) })
	out := map[string]int64{}
	for _, x := range all[:min(len(all), maxHandedSessions)] {
		out[hex.EncodeToString(x.h[:])] = x.exp.Unix()
	}
	return out
}

// adopt takes up sessions handed over by another host: malformed or
// expired entries are skipped, an expiry is never beyond this keeper's
// session lifetime from now, and at most maxHandedSessions are taken.
func (s *sessions) adopt(m map[string]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	n := 0
	for hx, unix := range m {
		if n == maxHandedSessions {
			break
		}
		b, err := hex.DecodeString(hx)
		exp := time.Unix(unix, 0)
		if err != nil || len(b) != 32 || !now.Before(exp) {
			continue
		}
		if lim := now.Add(s.ttl); exp.After(lim) {
			exp = lim
		}
		s.byHash[[32]byte(b)] = exp
		n++
	}
}

// handedBackoff is one source's throttle as handed to another host.
type handedBackoff struct {
	Failures int   `json:"n"`
	Until    int64 `json:"until,omitempty"` // Unix seconds; 0: no wait yet
}

// backoffs is the throttle to hand over: the sources with the most
// failures, at most maxHandedSessions of them.
func (s *sessions) backoffs() map[string]handedBackoff {
	s.mu.Lock()
	defer s.mu.Unlock()
	type src struct {
		key string
		b   backoff
	}
	var all []src
	for k, b := range s.throttle {
		all = append(all, src{k, *b})
	}
	slices.SortFunc(all, func(a, b src) int { return b.b.failures - a.b.failures })
	out := map[string]handedBackoff{}
	for _, x := range all[:min(len(all), maxHandedSessions)] {
		hb := handedBackoff{Failures: x.b.failures}
		if !x.b.next.IsZero() {
			hb.Until = x.b.next.Unix() + 1 // rounded up: never shorter than here
		}
		out[x.key] = hb
	}
	return out
}

// adoptBackoffs takes up another host's throttle: each source keeps the
// larger count and the later wait, a wait is never beyond maxBackoff
// from now (a skewed clock or a forged handover cannot lock the owner
// out longer), and the bounds on sources hold.
func (s *sessions) adoptBackoffs(m map[string]handedBackoff) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	n := 0
	for key, hb := range m {
		if n == maxHandedSessions || len(s.throttle) >= maxSources {
			break
		}
		if len(key) > 100 || (!strings.HasPrefix(key, "a:") && !strings.HasPrefix(key, "d:")) || hb.Failures <= 0 {
			continue
		}
		b := s.throttle[key]
		if b == nil {
			b = &backoff{}
			s.throttle[key] = b
		}
		b.failures = max(b.failures, min(hb.Failures, 64))
		if hb.Until > 0 {
			next := time.Unix(hb.Until, 0)
			if lim := now.Add(maxBackoff); next.After(lim) {
				next = lim
			}
			if next.After(b.next) {
				b.next = next
			}
		}
		n++
	}
}

// endAll ends every session and starts a new passphrase generation.
func (s *sessions) endAll() {
	s.mu.Lock()
	s.byHash = map[[32]byte]time.Time{}
	s.generation++
	s.mu.Unlock()
}

// reserve admits an attempt from key and counts it as a failure now; the
// returned done undoes that count if the passphrase proves right.
func (s *sessions) reserve(key string, global bool) (gen uint64, done func(ok bool), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	b := s.throttle[key]
	if b != nil {
		if wait := b.next.Sub(now); wait > 0 {
			return 0, nil, ErrThrottled.WithRetryAfter(wait)
		}
	}
	if global {
		if ok, wait := s.global.Allow("all", now); !ok {
			return 0, nil, ErrThrottled.WithRetryAfter(wait)
		}
	}
	if b == nil {
		if len(s.throttle) >= maxSources {
			for k, old := range s.throttle {
				if !now.Before(old.next) {
					delete(s.throttle, k)
				}
			}
			if len(s.throttle) >= maxSources {
				return 0, nil, ErrThrottled.WithRetryAfter(baseBackoff)
			}
		}
		b = &backoff{}
		s.throttle[key] = b
	}
	b.failures++
	if b.failures > freeFailures {
		d := baseBackoff << min(b.failures-freeFailures-1, 20)
		b.next = now.Add(min(d, maxBackoff))
	}
	return s.generation, func(ok bool) {
		if !ok {
			return
		}
		s.mu.Lock()
		delete(s.throttle, key)
		s.mu.Unlock()
	}, nil
}

// checkPassphrase proves the passphrase against the stored wrapped master
// key, read afresh so a passphrase changed by another process counts. The
// attempt is reserved (counted) before Argon2id runs.
func (v *Vault) checkPassphrase(ctx context.Context, passphrase []byte, src LoginSource) (meta, uint64, error) {
	key, global := "a:"+src.Address, true
	if src.Device != "" && v.knownDevice(ctx, src.Device) {
		h := sha256.Sum256([]byte(src.Device))
		key, global = "d:"+base64.RawURLEncoding.EncodeToString(h[:]), false
	}
	gen, done, err := v.sessions.reserve(key, global)
	if err != nil {
		return meta{}, 0, err
	}
	m, err := loadMeta(ctx, v.db.r)
	if err != nil {
		return meta{}, 0, storageError("read vault metadata", err)
	}
	master, err := unwrapMaster(ctx, passphrase, m)
	if policy.KindOf(err) == policy.KindUnauthenticated {
		v.log.Warn("wrong owner passphrase", "source", src.Address)
		v.logFailedLogin(ctx, src)
	}
	if err != nil {
		return meta{}, 0, err
	}
	crypt.Wipe(master)
	done(true)
	return m, gen, nil
}

// LoginResult is a session and the device token to present next time.
type LoginResult struct {
	Session
	Device string `json:"device"`
}

// Login checks the owner's passphrase and opens a session. It also hands
// out a device token (or keeps the one presented), which exempts this
// device from the global throttle the next time.
func (v *Vault) Login(ctx context.Context, passphrase []byte, src LoginSource) (LoginResult, error) {
	_, gen, err := v.checkPassphrase(ctx, passphrase, src)
	if err != nil {
		return LoginResult{}, err
	}
	return v.loginAfterProof(ctx, gen, src)
}

// loginAfterProof opens a session for an owner whose passphrase was just
// proven (in passphrase generation gen) and hands out the device token.
func (v *Vault) loginAfterProof(ctx context.Context, gen uint64, src LoginSource) (LoginResult, error) {
	sess, err := v.sessions.issue(gen)
	if err != nil {
		return LoginResult{}, err
	}
	dev := src.Device
	if dev == "" || !v.knownDevice(ctx, dev) {
		if dev, err = v.newDevice(ctx); err != nil {
			return LoginResult{}, err
		}
	}
	return LoginResult{Session: sess, Device: dev}, nil
}

// Devices: 256-bit random tokens, kept as SHA-256 hashes in an
// authenticated table, valid for a year from their issue; the newest 100
// are kept.
func (v *Vault) newDevice(ctx context.Context) (string, error) {
	tok := base64.RawURLEncoding.EncodeToString(crypt.Random(32))
	h := sha256.Sum256([]byte(tok))
	id := base64.RawURLEncoding.EncodeToString(h[:])
	now := v.now().Unix()
	err := v.db.tx(ctx, func(tx *sql.Tx) error {
		// Bounded: the oldest devices go first.
		if _, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE last_used < ? OR hash IN
			(SELECT hash FROM devices ORDER BY last_used DESC LIMIT -1 OFFSET 99)`, now-int64(deviceTTL/time.Second)); err != nil {
			return err
		}
		return v.st.insert(ctx, tx, tDevices, id, `INSERT INTO devices (hash, created, last_used) VALUES (?, ?, ?)`, id, now, now)
	})
	return tok, err
}

func (v *Vault) knownDevice(ctx context.Context, tok string) bool {
	h := sha256.Sum256([]byte(tok))
	r, err := v.st.row(ctx, v.db.r, tDevices, base64.RawURLEncoding.EncodeToString(h[:]))
	return err == nil && v.now().Unix()-r.i64("last_used") < int64(deviceTTL/time.Second)
}

var tDevices = newTable("devices", "hash", "hash", "created", "last_used")

// NewSession opens an owner session without a passphrase. It is for the
// process that unlocked the vault (serve --dev prints one).
func (v *Vault) NewSession() Session {
	v.sessions.mu.Lock()
	gen := v.sessions.generation
	v.sessions.mu.Unlock()
	sess, _ := v.sessions.issue(gen)
	return sess
}

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
	m, _, err := v.checkPassphrase(ctx, old, LoginSource{Address: "passphrase-change"})
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
		if err := v.st.update(ctx, tx, tMeta, 1, `kdf = ?, wrapped_master = ?`, string(kdfJSON), wrapped); err != nil {
			return err
		}
		return v.appendAudit(ctx, tx, AuditEntry{Event: EvPassphraseChanged, Actor: "owner"})
	})
	if err != nil {
		return err
	}
	v.sessions.endAll()
	v.log.Info("owner passphrase changed")
	return nil
}

// logFailedLogin puts wrong passphrases in the audit log, bounded: at most
// one entry a minute, saying how many failed since the last one, so that a
// guesser cannot fill the log and the owner still sees that someone tried.
func (v *Vault) logFailedLogin(ctx context.Context, src LoginSource) {
	n := v.failedLogins.Add(1)
	if ok, _ := v.failLogLimit.Allow("all", v.opts.Now()); !ok {
		return
	}
	v.failedLogins.Add(-n)
	err := v.db.tx(context.WithoutCancel(ctx), func(tx *sql.Tx) error {
		return v.appendAudit(ctx, tx, AuditEntry{Event: EvLoginFailed, Actor: "owner", Outcome: OutcomeDenied,
			Reason: fmt.Sprintf("%d wrong passphrase(s), the last from %s", n, src.Address)})
	})
	if err != nil {
		v.log.Error("audit of failed logins", "err", err)
	}
	if n >= 3 {
		v.Notify(ctx, Notification{Event: EventLoginFailures, Title: "pdvault: wrong passphrases",
			Body: fmt.Sprintf("%d wrong passphrases were tried on your vault, the last from %s.", n, src.Address), Link: v.Issuer() + "/ui/audit"})
	}
}
