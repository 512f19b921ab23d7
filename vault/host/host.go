// Package host serves many vaults from one process (docs/operations.md,
// "Hosting pdvault for many people"). Each vault stays what it is alone:
// its own directory and SQLite file with its own keys, so moving or erasing
// a person's vault is moving or erasing a directory. The host adds what
// many vaults on one machine need: names, sign-up, a bounded set of open
// databases (opened on first request, closed when idle or least recently
// used), and the keepers that let a closed vault reopen without its
// passphrase until the process ends. It holds no passphrase: after a
// restart every vault is sealed until its owner unlocks it.
package host

import (
	"container/list"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

// Errors a caller must tell apart.
var (
	ErrNoSuchVault = policy.E(policy.KindNotFound, "no_such_vault", "there is no vault by that name on this host")
	ErrBadName     = policy.E(policy.KindInvalid, "invalid_name", "a vault's name is 3 to 63 lowercase letters, digits and inner hyphens (it becomes a host name)")
	ErrNameTaken   = policy.E(policy.KindExists, "name_taken", "that name is taken; choose another")
	ErrClosing     = policy.E(policy.KindUnavailable, "temporarily_unavailable", "the host is shutting down")
)

// Options configure a host.
type Options struct {
	Root   string // the host's directory: vaults/<name>/ and invites/
	Logger *slog.Logger
	// Vault is the base of every vault's options; the host sets Issuer,
	// Keeper and Quota per vault.
	Vault vault.Options
	// IssuerFor is a vault's public base URL, from its name.
	IssuerFor func(name string) string
	// Quota bounds each vault.
	Quota vault.Quota
	// MaxOpen bounds the open databases (each is a few file descriptors and
	// its caches); default 1000. IdleAfter closes a vault unused that long;
	// default 10 minutes.
	MaxOpen   int
	IdleAfter time.Duration
	// Attach, if set, is called once per opening of a vault; what it
	// returns comes with every Handle to that opening (the HTTP layer's
	// handler for the vault).
	Attach func(name string, v *vault.Vault) any
	// Background, if set, runs beside each open vault until ctx ends, which
	// happens before the vault is closed (notice delivery, notifications).
	Background func(ctx context.Context, v *vault.Vault)
	// Placement, if set, shares vaults with other hosts through replicated
	// storage (placement.go): a vault is served only under its lease.
	Placement Placement
	// Domain is the host's own domain: vaults are NAME.Domain. With it and
	// Vault.DomainIssuer set, owners may bring their own domains
	// (domains.go), found in DNS through Resolver (default: the system's).
	Domain   string
	Resolver Resolver
}

// ReadersPerVault is a hosted vault's read connections, unless
// Options.Vault.MaxReaders says otherwise.
const ReadersPerVault = 2

// Host is a set of vaults under one directory. Safe for concurrent use.
type Host struct {
	opts Options
	log  *slog.Logger

	lookups *policy.Limiter // of the shared storage, by Knows

	resolver   Resolver
	dnsLookups *policy.Limiter

	mu      sync.Mutex
	entries map[string]*entry
	domains map[string]domainEntry // what DNS said of custom domains
	lru     list.List              // open entries, most recently used first
	closed  bool
	stop    chan struct{}
	done    chan struct{}
}

// entry is what the host knows of one vault since it started.
type entry struct {
	name   string
	dir    string
	keeper *vault.Keeper

	// Guarded by Host.mu.
	v        *vault.Vault
	attached any
	users    int           // handles not yet released
	opening  chan struct{} // closed when an opening in progress ends
	elem     *list.Element
	lastUsed time.Time
	cancel   context.CancelFunc // ends the vault's background work
	bgDone   chan struct{}
	claim    Claim // this host's lease on the vault, while it holds one
	leaving  bool  // being released to another host: no new uses
	// elsewhereUntil: another host held the vault when last asked; until
	// then requests hear so without asking the object store again (a
	// stranger's requests must not each cost a round trip).
	elsewhereUntil time.Time
}

// New returns a host over opts.Root, creating its directories if needed.
func New(opts Options) (*Host, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxOpen <= 0 {
		opts.MaxOpen = 1000
	}
	if opts.IdleAfter <= 0 {
		opts.IdleAfter = 10 * time.Minute
	}
	opts.Domain = strings.ToLower(strings.TrimSuffix(opts.Domain, "."))
	if opts.IssuerFor == nil {
		return nil, errors.New("host: IssuerFor is required")
	}
	if opts.Vault.Now == nil {
		opts.Vault.Now = time.Now
	}
	if opts.Vault.MaxReaders == 0 {
		// Two read connections per vault: a hosted vault has few
		// concurrent readers, and each connection is two descriptors
		// (vault.FilesPerVault) times MaxOpen.
		opts.Vault.MaxReaders = ReadersPerVault
	}
	if opts.Vault.PageSize == 0 {
		// Small pages for many small vaults: an empty vault is ~300 KiB
		// instead of 1.2 MiB, and replication ships a quarter of the bytes
		// per small commit. Documents are slower to add (docs/benchmarks.md).
		opts.Vault.PageSize = 4096
	}
	for _, d := range []string{opts.Root, filepath.Join(opts.Root, "vaults"), filepath.Join(opts.Root, "invites")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, policy.Wrap(policy.KindInvalid, "invalid_directory", "cannot create the host directory "+d, err)
		}
	}
	h := &Host{opts: opts, log: opts.Logger.With("component", "host"), entries: map[string]*entry{},
		stop: make(chan struct{}), done: make(chan struct{}), lookups: policy.NewLimiter(lookupRate, lookupRate),
		domains: map[string]domainEntry{}, resolver: opts.Resolver, dnsLookups: policy.NewLimiter(dnsRate, dnsRate)}
	if h.resolver == nil {
		h.resolver = net.DefaultResolver
	}
	go h.reap()
	return h, nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$`)

// reserved are names a person cannot take: they would pass for the host's
// own services.
var reserved = []string{"www", "api", "admin", "host", "mail", "smtp", "imap", "ftp", "ns1", "ns2",
	"autoconfig", "autodiscover", "status", "metrics", "signup", "login", "help", "support", "abuse", "postmaster", "root"}

// ValidName checks a vault name: a DNS label, not reserved.
func ValidName(name string) error {
	if !nameRE.MatchString(name) || slices.Contains(reserved, name) {
		return ErrBadName
	}
	return nil
}

// Logger is the host's logger.
func (h *Host) Logger() *slog.Logger { return h.log }

// Issuer is the public base URL of the named vault.
func (h *Host) Issuer(name string) string { return h.opts.IssuerFor(name) }

func (h *Host) dir(name string) string { return filepath.Join(h.opts.Root, "vaults", name) }

// Exists reports whether a vault by that name lives on this host.
func (h *Host) Exists(name string) bool {
	if ValidName(name) != nil {
		return false
	}
	_, err := os.Stat(filepath.Join(h.dir(name), vault.DBFile))
	return err == nil
}

// Knows says whether the host can serve the named vault: it is in the
// host's directory or, with a placement, in the shared storage (looked up
// at most lookupRate times a second in all). What a TLS certificate may
// be requested for: only names that are vaults.
func (h *Host) Knows(ctx context.Context, name string) bool {
	if h.Exists(name) {
		return true
	}
	p := h.opts.Placement
	if p == nil || ValidName(name) != nil {
		return false
	}
	if ok, _ := h.lookups.Allow("", time.Now()); !ok {
		return false
	}
	ok, err := p.Exists(ctx, name)
	if err != nil {
		h.log.Warn("cannot look a vault up in the shared storage", "err", err)
	}
	return ok
}

// entryFor returns the entry of an existing vault; h.mu is held.
func (h *Host) entryFor(name string) (*entry, error) {
	if h.closed {
		return nil, ErrClosing
	}
	if e, ok := h.entries[name]; ok {
		return e, nil
	}
	if !h.Exists(name) && h.opts.Placement == nil {
		return nil, ErrNoSuchVault
	}
	e := &entry{name: name, dir: h.dir(name), keeper: vault.NewKeeper(h.opts.Vault)}
	h.entries[name] = e
	return e, nil
}

func (h *Host) vaultOptions(e *entry) vault.Options {
	o := h.opts.Vault
	o.Issuer = h.opts.IssuerFor(e.name)
	o.Keeper = e.keeper
	o.Quota = h.opts.Quota
	o.Logger = h.opts.Logger.With("vault", e.name)
	if e.claim != nil {
		o.Fence = e.claim.Fence
		o.Confirm = e.claim.Confirm()
	}
	return o
}

// Handle is one use of an open vault; Release it when done.
type Handle struct {
	Vault    *vault.Vault
	Attached any
	h        *Host
	e        *entry
	once     sync.Once
	claim    Claim
}

// Claim is the lease the vault is served under, or nil on a host that
// shares no vaults.
func (hd *Handle) Claim() Claim { return hd.claim }

// Release ends the use; the vault may close once no use is left.
func (hd *Handle) Release() {
	hd.once.Do(func() {
		hd.h.mu.Lock()
		hd.e.users--
		hd.e.lastUsed = hd.h.opts.Vault.Now()
		hd.h.mu.Unlock()
	})
}

// Acquire returns the open vault by that name, opening it with its
// keeper's key if need be. A vault whose owner has not unlocked it since
// the host started gives vault.ErrSealed.
func (h *Host) Acquire(ctx context.Context, name string) (*Handle, error) {
	return h.acquire(ctx, name, func(e *entry) (*vault.Vault, error) {
		return vault.Reopen(ctx, e.dir, h.vaultOptions(e))
	})
}

// Unseal unlocks a vault with its owner's passphrase and logs the owner in.
// An open vault checks the passphrase as a login does.
func (h *Host) Unseal(ctx context.Context, name string, passphrase []byte, src vault.LoginSource) (vault.LoginResult, error) {
	var res vault.LoginResult
	hd, err := h.acquire(ctx, name, func(e *entry) (*vault.Vault, error) {
		v, r, err := vault.Unseal(ctx, e.dir, passphrase, src, h.vaultOptions(e))
		res = r
		return v, err
	})
	if err != nil {
		return vault.LoginResult{}, err
	}
	defer hd.Release()
	if res.Token != "" {
		return res, nil // the opening was the login
	}
	return hd.Vault.Login(ctx, passphrase, src)
}

// Sealed reports whether the named vault waits for its owner.
func (h *Host) Sealed(name string) bool {
	h.mu.Lock()
	e, ok := h.entries[name]
	h.mu.Unlock()
	return !ok || e.keeper.Sealed()
}

func (h *Host) acquire(ctx context.Context, name string, open func(*entry) (*vault.Vault, error)) (*Handle, error) {
	if err := ValidName(name); err != nil {
		return nil, ErrNoSuchVault
	}
	h.mu.Lock()
	for {
		e, err := h.entryFor(name)
		if err != nil {
			h.mu.Unlock()
			return nil, err
		}
		if e.leaving || (e.v == nil && time.Now().Before(e.elsewhereUntil)) {
			h.mu.Unlock()
			return nil, ErrElsewhere
		}
		if e.v != nil && e.claim != nil && e.claim.Fence() != nil {
			// The lease lapsed or was taken: close the vault, then claim
			// it again (or hear where it went).
			if e.users > 0 {
				h.mu.Unlock()
				return nil, ErrElsewhere
			}
			vi := h.detachLocked(e)
			h.mu.Unlock()
			h.closeAll([]victim{vi})
			h.mu.Lock()
			continue
		}
		if e.v != nil {
			e.users++
			h.lru.MoveToFront(e.elem)
			hd := &Handle{Vault: e.v, Attached: e.attached, h: h, e: e, claim: e.claim}
			h.mu.Unlock()
			return hd, nil
		}
		if e.opening == nil {
			e.opening = make(chan struct{})
			h.mu.Unlock()
			return h.openEntry(ctx, e, open)
		}
		wait := e.opening
		h.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, policy.Wrap(policy.KindUnavailable, "temporarily_unavailable", "the request was cancelled", ctx.Err())
		}
		h.mu.Lock()
	}
}

// openEntry opens e (its opening channel is set) and makes room for it.
func (h *Host) openEntry(ctx context.Context, e *entry, open func(*entry) (*vault.Vault, error)) (*Handle, error) {
	v, err := h.claimAndOpen(ctx, e, open)
	var attached any
	if err == nil && h.opts.Attach != nil {
		attached = h.opts.Attach(e.name, v)
	}
	h.mu.Lock()
	close(e.opening)
	e.opening = nil
	if err != nil {
		if errors.Is(err, ErrNoSuchVault) && e.users == 0 && e.keeper.Sealed() {
			delete(h.entries, e.name) // a stranger's guesses leave nothing behind
		}
		if errors.Is(err, ErrElsewhere) {
			e.elsewhereUntil = time.Now().Add(elsewhereFor)
		}
		if e.claim != nil {
			e.lastUsed = h.opts.Vault.Now() // a sealed vault's kept claim lives while asked for
		}
		h.mu.Unlock()
		return nil, err
	}
	if h.closed {
		c := e.claim
		e.claim = nil
		h.mu.Unlock()
		v.Close()
		h.release(c, nil)
		return nil, ErrClosing
	}
	e.v, e.attached, e.users = v, attached, 1
	e.elem = h.lru.PushFront(e)
	if h.opts.Background != nil {
		bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		e.cancel, e.bgDone = cancel, make(chan struct{})
		go func(done chan struct{}) { defer close(done); h.opts.Background(bctx, v) }(e.bgDone)
	}
	victims := h.evictLocked(h.opts.MaxOpen, time.Time{})
	hd := &Handle{Vault: v, Attached: attached, h: h, e: e, claim: e.claim}
	h.mu.Unlock()
	h.closeAll(victims)
	if d := v.Domain(); d != "" && h.Domains() {
		// The vault is the authority; the book may have missed its last
		// word (a crash between the two).
		if err := h.book().PutDomain(ctx, d, e.name); err != nil {
			h.log.Warn("cannot record a custom domain in the domain book", "vault", e.name, "err", err)
		}
	}
	return hd, nil
}

// claimAndOpen opens e, first taking its lease when vaults are shared.
func (h *Host) claimAndOpen(ctx context.Context, e *entry, open func(*entry) (*vault.Vault, error)) (*vault.Vault, error) {
	p := h.opts.Placement
	if e.claim != nil && e.claim.Fence() != nil {
		// Kept while the vault was sealed, and lapsed since.
		h.release(e.claim, nil)
		e.claim = nil
	}
	if p != nil && e.claim == nil {
		c, err := p.Claim(ctx, e.name, e.dir, false)
		if err != nil {
			return nil, err
		}
		if b := c.Handover(); b != nil {
			if err := e.keeper.TakeHandover(b); err != nil {
				h.log.Warn("a handed-over vault state was refused; the vault stays sealed", "vault", e.name, "err", err)
			}
		}
		e.claim = c
	}
	v, err := open(e)
	if err == nil && e.claim != nil {
		if err = e.claim.Replicate(filepath.Join(e.dir, vault.DBFile)); err != nil {
			v.Close()
			err = policy.Wrap(policy.KindUnavailable, "temporarily_unavailable", "cannot replicate the vault", err)
		}
	}
	stillSealed := errors.Is(err, vault.ErrSealed) || errors.Is(err, vault.ErrWrongPassphrase) || errors.Is(err, vault.ErrThrottled)
	if err != nil && e.claim != nil && !stillSealed {
		h.release(e.claim, e.keeper.HandoverThrottle())
		e.claim = nil
	}
	// A sealed vault keeps its claim, whatever a guesser tries: the
	// owner's unlock will come here, and until then each request costs no
	// lease traffic, and the throttle stays with the lease. The claim goes
	// with the idle reaping, a release or the host's end (takeSealedLocked),
	// handing the throttle over.
	return v, err
}

// sealedClaim is a claim kept by a sealed vault, and its keeper.
type sealedClaim struct {
	c Claim
	k *vault.Keeper
}

// takeSealedLocked takes the claims kept by sealed vaults (not open, not
// opening) last tried before idleBefore (zero: all), for the caller to
// release without h.mu (releaseSealed).
func (h *Host) takeSealedLocked(idleBefore time.Time) []sealedClaim {
	var out []sealedClaim
	for _, e := range h.entries {
		if e.claim != nil && e.v == nil && e.opening == nil && (idleBefore.IsZero() || e.lastUsed.Before(idleBefore)) {
			out = append(out, sealedClaim{e.claim, e.keeper})
			e.claim = nil
		}
	}
	return out
}

// releaseSealed gives up sealed vaults' claims, leaving their login
// throttle for the next host.
func (h *Host) releaseSealed(scs []sealedClaim) {
	for _, sc := range scs {
		h.release(sc.c, sc.k.HandoverThrottle())
	}
}

// release gives a claim up after its vault closed.
func (h *Host) release(c Claim, handover []byte) {
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Release(ctx, handover); err != nil {
		h.log.Warn("releasing a vault's lease", "err", err)
	}
}

// victim is an open vault taken out of the open set, to be closed.
type victim struct {
	e        *entry
	v        *vault.Vault
	cancel   context.CancelFunc
	done     chan struct{}
	claim    Claim
	handover bool // leave the unsealed state for the next host
}

// evictLocked takes out of the open set the least recently used vaults
// beyond max and those idle since before idleBefore, skipping any in use;
// h.mu is held. An evicted entry is "opening" until closeAll has closed
// it, so no one reopens the file while it is still open. The caller
// closes what it returns, without the lock.
func (h *Host) evictLocked(max int, idleBefore time.Time) []victim {
	var out []victim
	over := h.lru.Len() - max
	for el := h.lru.Back(); el != nil; {
		prev := el.Prev()
		e := el.Value.(*entry)
		idle := !idleBefore.IsZero() && e.lastUsed.Before(idleBefore)
		if e.users == 0 && (over > 0 || idle) {
			out = append(out, h.detachLocked(e))
			over--
		}
		el = prev
	}
	return out
}

func (h *Host) detachLocked(e *entry) victim {
	h.lru.Remove(e.elem)
	vi := victim{e: e, v: e.v, cancel: e.cancel, done: e.bgDone, claim: e.claim}
	e.elem, e.v, e.attached, e.cancel, e.bgDone, e.claim = nil, nil, nil, nil, nil, nil
	e.opening = make(chan struct{})
	return vi
}

// closeAll closes evicted vaults: background work first, then the
// database. Their keepers stay: they reopen without the passphrase.
func (h *Host) closeAll(vs []victim) {
	for _, vi := range vs {
		if vi.cancel != nil {
			vi.cancel()
			<-vi.done
		}
		if err := vi.v.Close(); err != nil {
			h.log.Warn("closing an idle vault", "vault", vi.e.name, "err", err)
		}
		var handover []byte
		switch {
		case vi.claim == nil:
		case vi.handover:
			handover = vi.e.keeper.Handover()
		default:
			handover = vi.e.keeper.HandoverThrottle()
		}
		h.release(vi.claim, handover)
		h.mu.Lock()
		close(vi.e.opening)
		vi.e.opening = nil
		h.mu.Unlock()
	}
}

// reap closes vaults idle for IdleAfter.
func (h *Host) reap() {
	defer close(h.done)
	tick := time.NewTicker(min(h.opts.IdleAfter/4, time.Minute))
	defer tick.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-tick.C:
		}
		h.CloseIdle(h.opts.Vault.Now().Add(-h.opts.IdleAfter))
	}
}

// CloseIdle closes the open vaults not used since before t.
func (h *Host) CloseIdle(t time.Time) int {
	h.mu.Lock()
	victims := h.evictLocked(h.lru.Len(), t)
	sealed := h.takeSealedLocked(t)
	h.mu.Unlock()
	h.closeAll(victims)
	h.releaseSealed(sealed)
	return len(victims)
}

// Open is how many vaults are open now.
func (h *Host) Open() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lru.Len()
}

// Release hands the named vault over to another host: no new use starts,
// the uses in flight end (up to ctx), the vault closes, its replica is
// flushed and its lease given up, leaving its unsealed state for the next
// host when the placement can carry it. A vault not open here has nothing
// to release (false).
func (h *Host) Release(ctx context.Context, name string) (bool, error) {
	h.mu.Lock()
	e, ok := h.entries[name]
	if ok && e.elem == nil && e.opening == nil && e.claim != nil {
		// Held sealed: nothing to flush; only the throttle to hand over.
		sc := sealedClaim{e.claim, e.keeper}
		e.claim = nil
		h.mu.Unlock()
		h.releaseSealed([]sealedClaim{sc})
		h.log.Info("vault released", "vault", name, "sealed", true)
		return true, nil
	}
	if !ok || e.elem == nil {
		h.mu.Unlock()
		return false, nil
	}
	e.leaving = true
	for e.users > 0 || e.opening != nil {
		h.mu.Unlock()
		select {
		case <-ctx.Done():
			h.mu.Lock()
			e.leaving = false
			h.mu.Unlock()
			return false, policy.Wrap(policy.KindUnavailable, "vault_busy", "the vault's requests did not end in time; it stays here", ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
		h.mu.Lock()
	}
	var victims []victim
	if e.elem != nil {
		vi := h.detachLocked(e)
		vi.handover = true
		victims = append(victims, vi)
	}
	h.mu.Unlock()
	h.closeAll(victims)
	e.keeper.Seal()
	h.mu.Lock()
	e.leaving = false
	h.mu.Unlock()
	h.log.Info("vault released", "vault", name)
	return true, nil
}

// Seal closes a vault and forgets its key: it stays sealed until its owner
// unlocks it again.
func (h *Host) Seal(name string) {
	h.mu.Lock()
	e, ok := h.entries[name]
	var victims []victim
	if ok && e.elem != nil && e.users == 0 {
		victims = []victim{h.detachLocked(e)}
	}
	h.mu.Unlock()
	h.closeAll(victims)
	if ok {
		e.keeper.Seal()
	}
}

// Close closes every vault, waiting for their uses to end (up to ctx).
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.mu.Unlock()
	close(h.stop)
	<-h.done
	for {
		h.mu.Lock()
		victims := h.evictLocked(0, time.Time{})
		left := h.lru.Len()
		h.mu.Unlock()
		for i := range victims {
			victims[i].handover = true // a host stopping hands its vaults on unsealed
		}
		h.closeAll(victims)
		if left == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	h.mu.Lock()
	for _, e := range h.entries {
		e.keeper.Seal()
	}
	sealed := h.takeSealedLocked(time.Time{})
	h.mu.Unlock()
	h.releaseSealed(sealed)
	return nil
}

// VaultInfo is what the operator may see of a vault: never its content.
type VaultInfo struct {
	Name     string    `json:"name"`
	Bytes    int64     `json:"bytes"`    // its files on disk
	Modified time.Time `json:"modified"` // of its database file
	Open     bool      `json:"open"`
	Sealed   bool      `json:"sealed"`
}

// List is every vault on the host, by name.
func (h *Host) List() ([]VaultInfo, error) {
	des, err := os.ReadDir(filepath.Join(h.opts.Root, "vaults"))
	if err != nil {
		return nil, policy.Wrap(policy.KindUnavailable, "temporarily_unavailable", "cannot read the host directory", err)
	}
	var out []VaultInfo
	for _, de := range des {
		if !de.IsDir() || !h.Exists(de.Name()) {
			continue
		}
		vi := VaultInfo{Name: de.Name(), Sealed: true}
		filepath.WalkDir(h.dir(de.Name()), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if fi, err := d.Info(); err == nil {
					vi.Bytes += fi.Size()
				}
			}
			return nil
		})
		if fi, err := os.Stat(filepath.Join(h.dir(de.Name()), vault.DBFile)); err == nil {
			vi.Modified = fi.ModTime().UTC()
		}
		h.mu.Lock()
		if e, ok := h.entries[vi.Name]; ok {
			vi.Open, vi.Sealed = e.v != nil, e.keeper.Sealed()
		}
		h.mu.Unlock()
		out = append(out, vi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
