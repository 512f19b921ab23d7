// Package vault is the owner's domain service: the SQLite store, sealing,
// records, sessions and backups. It asks package policy for every rule and
// never speaks HTTP.
package vault

import (
	"context"
	"crypto/cipher"
	"database/sql"
	"encoding/base32"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault/internal/crypt"
)

// DBFile is the name of the database inside a vault directory.
const DBFile = "vault.db"

// Errors a caller must tell apart. Match them with errors.Is.
var (
	ErrWrongPassphrase = policy.E(policy.KindUnauthenticated, "invalid_passphrase", "the passphrase is wrong")
	ErrNoVault         = policy.E(policy.KindNotFound, "no_vault", "there is no vault in this directory")
	ErrVaultExists     = policy.E(policy.KindExists, "vault_exists", "a vault already exists in this directory")
	ErrBadKDFParams    = policy.E(policy.KindUnprocessable, "invalid_kdf_params", "the stored key-derivation parameters are outside the accepted bounds")
	ErrWeakPassphrase  = policy.E(policy.KindInvalid, "weak_passphrase", "the passphrase must be at least 8 characters")
)

// MinPassphraseLen is the shortest passphrase init accepts. Argon2id slows
// guessing; it cannot rescue a passphrase of four letters.
const MinPassphraseLen = 8

// Options tune a vault. The zero value is ready to use.
type Options struct {
	Logger     *slog.Logger
	Now        func() time.Time // the clock; tests move it
	SessionTTL time.Duration    // owner session lifetime; default 12h
	// KDF overrides the parameters Create uses; they must still be within
	// bounds. Nil means DefaultKDFParams.
	KDF *KDFParams
	// Issuer is the vault's public base URL (e.g. https://vault.example):
	// the iss and aud of its grants, and the base of the URLs that DPoP
	// proofs must name. Default http://127.0.0.1:8700.
	Issuer string

	// Notifier delivers notifications to the owner (package notify); nil:
	// they are queued and wait.
	Notifier Notifier
	// OnDelivery, if set, hears of every notification delivery attempt
	// (metrics).
	OnDelivery func(kind string, ok bool)
	// Courier makes outbound requests (notices, domain verification). Nil
	// means the vault makes none: notices wait, verification fails.
	Courier Courier
	// AllowLoopbackHTTP lets outbound requests go to loopback addresses
	// over plain HTTP. For tests and local demos only: it lets a request's
	// callback reach services on the vault's own machine.
	AllowLoopbackHTTP bool
	// OutboundTimeout bounds each outbound request; default 10s.
	OutboundTimeout time.Duration
	// NoticeBaseDelay is the wait after the first failed delivery, doubled
	// after each further failure; default 30s.
	NoticeBaseDelay time.Duration
	// NoticeMaxAttempts is how many deliveries are tried before a notice is
	// marked failed; default 8.
	NoticeMaxAttempts int
	// OffersPerKey and OffersPerAddress limit offers to intents per
	// organization key and per source address in OfferWindow; defaults 5
	// and 20 per 10 minutes.
	OffersPerKey, OffersPerAddress int
	OfferWindow                    time.Duration
	// RatePerOrg limits requests authenticated by an organization's key
	// (DPoP proofs), per key, per second, with a burst of twice that;
	// default 200; negative means no limit.
	RatePerOrg float64
	// MaxPendingRequests bounds the pending requests of organizations that
	// never held a grant (a flood of fresh keys); default 500.
	MaxPendingRequests int
	// LoginFailuresPerMinute is the global budget of wrong passphrases from
	// devices the vault does not know (session.go); default 60.
	LoginFailuresPerMinute int
	// Keeper, when set, holds the owner's sessions and (while unsealed) the
	// master key across openings: a host closing idle vaults (keeper.go).
	Keeper *Keeper
	// Quota bounds what the vault may hold (quota.go); zero: no bounds.
	Quota Quota
	// Fence, when set, must allow every commit (fence.go): a host holding
	// the vault under a lease passes the lease here.
	Fence Fence
	// Confirm, when set, is awaited after each commit before the request
	// is answered (fence.go): a host replicating synchronously.
	Confirm Confirm
	// PageSize is the SQLite page size Create gives a new vault (store.go);
	// 0: 16 KiB. Existing vaults keep theirs.
	PageSize int
	// MaxReaders bounds the vault's read connections, each two file
	// descriptors (FilesPerVault); 0: DefaultReaders. A host of many
	// vaults keeps it small.
	MaxReaders int
	// DomainIssuer, set by a host that serves custom domains, is the
	// issuer of the vault at a domain its owner brought (domain.go); nil:
	// the vault's issuer is Issuer whatever domain it has recorded.
	DomainIssuer func(domain string) string
}

func (o Options) store() storeOptions {
	return storeOptions{fence: o.Fence, confirm: o.Confirm, pageSize: o.PageSize, readers: o.MaxReaders}
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 12 * time.Hour
	}
	if o.Issuer == "" {
		o.Issuer = "http://127.0.0.1:8700"
	}
	if o.OutboundTimeout <= 0 {
		o.OutboundTimeout = 10 * time.Second
	}
	if o.NoticeBaseDelay <= 0 {
		o.NoticeBaseDelay = 30 * time.Second
	}
	if o.NoticeMaxAttempts <= 0 {
		o.NoticeMaxAttempts = 8
	}
	if o.OffersPerKey <= 0 {
		o.OffersPerKey = 5
	}
	if o.OffersPerAddress <= 0 {
		o.OffersPerAddress = 20
	}
	if o.OfferWindow <= 0 {
		o.OfferWindow = 10 * time.Minute
	}
	if o.RatePerOrg == 0 {
		o.RatePerOrg = 200
	}
	if o.MaxPendingRequests <= 0 {
		o.MaxPendingRequests = MaxPendingStranger
	}
	if o.LoginFailuresPerMinute <= 0 {
		o.LoginFailuresPerMinute = globalFailures
	}
}

// Vault is an unlocked vault. Its methods are safe for concurrent use.
type Vault struct {
	dir  string
	db   *store
	id   string
	opts Options
	log  *slog.Logger

	closed atomic.Bool
	keyMu  sync.RWMutex // guards master against Close
	master []byte       // only in memory, only while unlocked; nil once closed
	st     *stateAuth

	mu          sync.RWMutex
	recordKeyID uint32
	recordKeys  map[uint32][]byte

	sessions *sessions

	issuer    atomic.Pointer[string]
	issuers   issuerSet              // every issuer grants were signed under (issuers.go)
	domain    atomic.Pointer[string] // the owner's custom domain (domain.go)
	keys      *keyring
	headCache atomic.Pointer[policy.TreeHead]
	recent    atomic.Pointer[recentHead]

	// Counted, not logged (docs/security.md, "Limits against floods").
	dropped          atomic.Int64 // requests refused by the pending limits
	strangerRefusals atomic.Int64 // requests from unknown keys refused for breaking the terms
	refusalsDropped  atomic.Int64 // refused reads not logged (over a grant's refusal budget)
	failedLogins     atomic.Int64 // wrong passphrases not yet in the log
	failLogLimit     *policy.Limiter
	terms            atomic.Pointer[TermsDoc]
	pairwiseKey      []byte // pairwise subjects and record ids (legacy label: ids must stay stable)
	cursorKey        []byte // organizations' listing cursors
	importKey        []byte // marks of imported items (import.go)
	imports          importJobs
	recordsGen       atomic.Uint64 // bumped by every committed write of records (views.go's cache)
	recordsRewritten atomic.Uint64 // bumped when records that existed change or go (views.go's cache)
	txCache          txCache
	counters         counters // stats.go
	replay           *replayCache
	grants           grantCache
	noticeWake       chan struct{}
	notifyState      notifyState // notify.go
	pw               pairwise

	offerKeyLimit, offerAddrLimit *policy.Limiter
	orgLimit                      *policy.Limiter
	refusalLimit                  *policy.Limiter // data.refused entries per grant

	proofs        *policy.ProofCache
	uses          chan grantUse // to the group committer
	stopped       chan struct{}
	committerDone chan struct{}
	reencryptWake chan struct{}
}

// meta is the single row that describes a vault.
type meta struct {
	vaultID     string
	kdfJSON     string
	kdf         KDFParams
	wrapped     []byte
	recordKeyID uint32
	created     int64
}

type querier interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func loadMeta(ctx context.Context, q querier) (meta, error) {
	var m meta
	err := q.QueryRowContext(ctx, `SELECT vault_id, kdf, wrapped_master, record_key_id, created FROM meta WHERE id = 1`).
		Scan(&m.vaultID, &m.kdfJSON, &m.wrapped, &m.recordKeyID, &m.created)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal([]byte(m.kdfJSON), &m.kdf); err != nil {
		return m, err
	}
	return m, nil
}

func masterAAD(vaultID, kdfJSON string) []byte {
	return crypt.AAD(labelMasterWrap, []byte(vaultID), []byte(kdfJSON))
}

// kdfSlots caps concurrent Argon2id derivations: each takes 64 MiB or more,
// and a flood of logins must not exhaust memory.
var kdfSlots = make(chan struct{}, 2)

// deriveSlotted runs Argon2id in one of the process's kdfSlots.
func deriveSlotted(ctx context.Context, passphrase []byte, kdf KDFParams) ([]byte, error) {
	select {
	case kdfSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, policy.Wrap(policy.KindUnavailable, "temporarily_unavailable", "the request was cancelled", ctx.Err())
	}
	kek, err := deriveKEK(passphrase, kdf)
	<-kdfSlots
	if err != nil {
		return nil, policy.Internal("derive key", err)
	}
	return kek, nil
}

// unwrapMaster derives the KEK from the passphrase and opens the master key.
func unwrapMaster(ctx context.Context, passphrase []byte, m meta) ([]byte, error) {
	if err := m.kdf.check(); err != nil {
		return nil, ErrBadKDFParams.WithCause(err)
	}
	kek, err := deriveSlotted(ctx, passphrase, m.kdf)
	if err != nil {
		return nil, err
	}
	defer crypt.Wipe(kek)
	master, err := crypt.Open(kek, m.wrapped, masterAAD(m.vaultID, m.kdfJSON))
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	return master, nil
}

// Create makes a new vault in dir, which is created if needed, and returns
// it unlocked. It refuses, changing nothing, if dir already holds a vault.
func Create(ctx context.Context, dir string, passphrase []byte, opts Options) (*Vault, error) {
	opts.defaults()
	if len([]rune(string(passphrase))) < MinPassphraseLen {
		return nil, ErrWeakPassphrase
	}
	kdf := DefaultKDFParams()
	if opts.KDF != nil {
		kdf = *opts.KDF
	}
	if err := kdf.check(); err != nil {
		return nil, ErrBadKDFParams.WithCause(err)
	}
	if err := checkPageSize(opts.PageSize); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, policy.Wrap(policy.KindInvalid, "invalid_directory", "cannot create the vault directory "+dir+": "+osReason(err), err)
	}
	path := filepath.Join(dir, DBFile)
	db, err := openStore(path, true, opts.store())
	if errors.Is(err, fs.ErrExist) {
		return nil, ErrVaultExists
	}
	if err != nil {
		return nil, policy.Wrap(policy.KindInvalid, "invalid_directory", "cannot create the vault database in "+dir+": "+osReason(err), err)
	}
	// A directory that existed keeps its mode through MkdirAll: the vault's
	// is private whoever made it.
	if err := os.Chmod(dir, 0o700); err != nil {
		db.close()
		removeDB(path)
		return nil, policy.Wrap(policy.KindInvalid, "invalid_directory", "cannot make the vault directory private (0700): "+osReason(err), err)
	}
	v, err := initialize(ctx, db, dir, passphrase, kdf, opts)
	if err != nil {
		db.close()
		removeDB(path) // a half-made vault would block the retry
		return nil, err
	}
	return v, nil
}

// osReason is the operating system's reason for a file error ("permission
// denied", "not a directory"), without the operation and path it wraps:
// safe to show, and what the owner needs to fix it.
func osReason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err.Error()
	}
	return "the file system refused"
}

func removeDB(path string) {
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		os.Remove(path + suffix)
	}
}

func initialize(ctx context.Context, db *store, dir string, passphrase []byte, kdf KDFParams, opts Options) (*Vault, error) {
	if err := db.migrate(ctx, schemaVersion, nil); err != nil {
		return nil, err
	}
	kdfJSON, err := json.Marshal(kdf)
	if err != nil {
		return nil, policy.Internal("encode kdf", err)
	}
	kek, err := deriveSlotted(ctx, passphrase, kdf)
	if err != nil {
		return nil, err
	}
	defer crypt.Wipe(kek)
	m := meta{
		vaultID:     newID(),
		kdfJSON:     string(kdfJSON),
		kdf:         kdf,
		recordKeyID: 1,
		created:     opts.Now().Unix(),
	}
	master := crypt.Random(crypt.KeySize)
	m.wrapped = crypt.Seal(kek, master, masterAAD(m.vaultID, m.kdfJSON))
	st := newStateAuth(master, m.vaultID, opts.Logger)
	err = db.tx(ctx, func(tx *sql.Tx) error {
		if err := st.insert(ctx, tx, tMeta, 1, `INSERT INTO meta (id, vault_id, kdf, wrapped_master, record_key_id, created) VALUES (1, ?, ?, ?, ?, ?)`,
			m.vaultID, m.kdfJSON, m.wrapped, m.recordKeyID, m.created); err != nil {
			return err
		}
		// Record key 1: random, stored sealed like every later one.
		k1 := crypt.Random(crypt.KeySize)
		wrap := crypt.Derive(master, m.vaultID, crypt.RecordKeyWrap)
		sealed := crypt.Seal(wrap, k1, recordKeyWrapAAD(m.vaultID, 1))
		crypt.Wipe(k1)
		crypt.Wipe(wrap)
		if err := st.insert(ctx, tx, tRecKeys, int64(1), `INSERT INTO record_keys (id, sealed, created) VALUES (1, ?, ?)`, sealed, m.created); err != nil {
			return err
		}
		// A new vault has seen no proof: as good as a clean stop.
		return st.put(ctx, tx, tShutdown, int64(1), m.created, int64(0), replayDigest(nil))
	})
	crypt.Wipe(st.key)
	if err != nil {
		return nil, err
	}
	v := newVault(dir, db, m, master, opts)
	if err := v.setup(ctx); err != nil {
		return nil, err
	}
	if opts.Keeper != nil {
		opts.Keeper.hold(m.vaultID, master)
	}
	return v, nil
}

// Open unlocks the vault in dir. A wrong passphrase returns
// ErrWrongPassphrase and leaves the files as they were: the schema is
// migrated only after the passphrase is proven.
func Open(ctx context.Context, dir string, passphrase []byte, opts Options) (*Vault, error) {
	opts.defaults()
	db, err := openExisting(dir, opts)
	if err != nil {
		return nil, err
	}
	v, err := openWith(ctx, db, dir, opts, func(m meta) ([]byte, error) { return unwrapMaster(ctx, passphrase, m) })
	if err != nil {
		db.close()
		return nil, err
	}
	return v, nil
}

// openWith opens the vault in db with the master key masterFor gives for
// its metadata (from the passphrase, or held by a keeper), migrating the
// schema only once the key is proven.
func openWith(ctx context.Context, db *store, dir string, opts Options, masterFor func(meta) ([]byte, error)) (*Vault, error) {
	ver, err := db.version(ctx)
	if err != nil {
		return nil, storageError("read schema version", err)
	}
	if ver == 0 {
		return nil, ErrNoVault
	}
	if ver > schemaVersion {
		return nil, policy.E(policy.KindUnavailable, "unsupported_version", "the vault was written by a newer pdvault; upgrade pdvault to open it")
	}
	m, err := loadMeta(ctx, db.w)
	if err != nil {
		return nil, storageError("read vault metadata", err)
	}
	master, err := masterFor(m)
	if err != nil {
		return nil, err
	}
	if err := db.migrate(ctx, schemaVersion, upgradeState(ctx, master, m.vaultID)); err != nil {
		crypt.Wipe(master)
		return nil, err
	}
	v := newVault(dir, db, m, master, opts)
	if err := v.setup(ctx); err != nil {
		crypt.Wipe(master)
		return nil, err
	}
	if opts.Keeper != nil {
		opts.Keeper.hold(m.vaultID, master)
	}
	return v, nil
}

func newVault(dir string, db *store, m meta, master []byte, opts Options) *Vault {
	v := &Vault{
		dir:         dir,
		db:          db,
		id:          m.vaultID,
		opts:        opts,
		log:         opts.Logger.With("component", "vault"),
		master:      master,
		recordKeyID: m.recordKeyID,
		recordKeys:  map[uint32][]byte{},
	}
	v.st = newStateAuth(master, m.vaultID, opts.Logger)
	if opts.Keeper != nil {
		v.sessions = opts.Keeper.sessions
	} else {
		v.sessions = newSessions(opts.Now, opts.SessionTTL, opts.LoginFailuresPerMinute)
	}
	v.issuer.Store(&opts.Issuer)
	v.pairwiseKey = crypt.DeriveLegacy(master, m.vaultID, labelPairwiseKey, 0)
	v.cursorKey = crypt.Derive(master, m.vaultID, crypt.PairwiseCursor)
	v.importKey = crypt.Derive(master, m.vaultID, crypt.ImportMark)
	v.replay = newReplayCache(replayMax)
	v.grants.m = map[[32]byte]*policy.GrantClaims{}
	v.noticeWake = make(chan struct{}, 1)
	v.notifyState.wake = make(chan struct{}, 1)
	v.reencryptWake = make(chan struct{}, 1)
	v.proofs = policy.NewProofCache()
	// Offers: N per window, all of them at once if need be.
	v.offerKeyLimit = policy.NewLimiter(float64(opts.OffersPerKey)/opts.OfferWindow.Seconds(), opts.OffersPerKey)
	v.offerAddrLimit = policy.NewLimiter(float64(opts.OffersPerAddress)/opts.OfferWindow.Seconds(), opts.OffersPerAddress)
	v.orgLimit = policy.NewLimiter(opts.RatePerOrg, int(2*opts.RatePerOrg))
	v.refusalLimit = policy.NewLimiter(refusalsPerGrant, 5*refusalsPerGrant)
	v.failLogLimit = policy.NewLimiter(1.0/60, 1)
	v.pw = pairwise{ciphers: map[string]cipher.Block{}, rels: map[string]string{}}
	return v
}

// setup loads what an unlocked vault needs beyond its master key: signing
// keys (made on first use) and the terms (the defaults on first use).
func (v *Vault) setup(ctx context.Context) error {
	// The meta row was read before the keys existed; now check it, and
	// take the record key id from the checked row.
	mr, err := v.st.row(ctx, v.db.r, tMeta, 1)
	if err != nil {
		return storageError("check vault metadata", err)
	}
	v.recordKeyID = uint32(mr.i64("record_key_id"))
	if err := v.loadDomain(ctx); err != nil {
		return storageError("load the custom domain", err)
	}
	if err := v.loadKeys(ctx); err != nil {
		return storageError("load signing keys", err)
	}
	if err := v.ensureTerms(ctx); err != nil {
		return err
	}
	v.refreshPublished(ctx)
	if err := v.loadReplay(ctx); err != nil {
		return storageError("load replay cache", err)
	}
	if err := v.cleanUploads(ctx); err != nil {
		return storageError("remove unfinished uploads", err)
	}
	v.startCommitter()
	v.initImports()
	return nil
}

// Issuer is the vault's public base URL.
func (v *Vault) Issuer() string { return *v.issuer.Load() }

// SetIssuer changes the public base URL. It is for start-up, before the
// vault serves: grants issued under another issuer stop verifying.
func (v *Vault) SetIssuer(u string) { v.issuer.Store(&u) }

// ID is the vault's public identifier.
func (v *Vault) ID() string { return v.id }

// Dir is the directory the vault lives in.
func (v *Vault) Dir() string { return v.dir }

// Close locks the vault: it forgets the keys and closes the database.
func (v *Vault) Close() error {
	if !v.closed.CompareAndSwap(false, true) {
		return nil // closed already
	}
	v.imports.stop() // background imports write: they end first
	v.txCache.drop()
	v.stopCommitter()
	if err := v.saveReplay(context.Background()); err != nil {
		v.log.Warn("replay cache not saved: proofs dated before the next start will be refused then", "err", err)
	}
	v.mu.Lock()
	for _, k := range v.recordKeys {
		crypt.Wipe(k)
	}
	v.recordKeys = nil
	v.mu.Unlock()
	v.keyMu.Lock()
	crypt.Wipe(v.master)
	v.master = nil
	v.keyMu.Unlock()
	crypt.Wipe(v.st.key)
	crypt.Wipe(v.pairwiseKey)
	crypt.Wipe(v.cursorKey)
	crypt.Wipe(v.importKey)
	if v.keys != nil {
		v.keys.mu.RLock()
		cur := v.keys.current
		v.keys.mu.RUnlock()
		if cur != nil {
			cur.wipe()
		}
	}
	return v.db.close()
}

// ErrLocked is returned by a vault after Close.
var ErrLocked = policy.E(policy.KindUnavailable, "vault_locked", "the vault is locked")

// recordKey returns record-encryption key number n, deriving it once.
func (v *Vault) recordKey(n uint32) ([]byte, error) {
	v.mu.RLock()
	k, ok := v.recordKeys[n]
	locked := v.recordKeys == nil
	v.mu.RUnlock()
	if ok {
		return k, nil
	}
	if locked {
		return nil, ErrLocked
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.recordKeys == nil {
		return nil, ErrLocked
	}
	if k, ok := v.recordKeys[n]; ok {
		return k, nil
	}
	// Every record key is stored sealed (rotate.go); key 1 of a vault made
	// before schema 13 was derived from the master key, and the upgrade
	// stored it like the others.
	k, err := v.loadRecordKey(n)
	if err != nil {
		return nil, err
	}
	v.recordKeys[n] = k
	return k, nil
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns 128 random bits as 26 characters of lowercase base32.
func newID() string { return idEncoding.EncodeToString(crypt.Random(16)) }

// Logger is the vault's logger, for code that serves it.
func (v *Vault) Logger() *slog.Logger { return v.opts.Logger }

// IntegrityCheck runs SQLite's integrity check on the vault file; "ok"
// means the file is sound.
func (v *Vault) IntegrityCheck(ctx context.Context) (string, error) {
	res, err := v.db.integrityCheck(ctx)
	if err != nil {
		return "", storageError("integrity check", err)
	}
	return res, nil
}
