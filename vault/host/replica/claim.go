package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/benbjohnson/litestream"
	lss3 "github.com/benbjohnson/litestream/s3"
	"github.com/mattn/go-sqlite3"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
	"github.com/pdvault/pdvault/vault/host"
	"github.com/pdvault/pdvault/vault/internal/crypt"
)

// epochFile, in a vault's directory, is the lease epoch under which this
// host last wrote the vault: if the lease still names this host and that
// epoch, nobody wrote it since, and the local copy is current.
const epochFile = ".lease-epoch"

// ErrUnrecoverable: the lease says the vault exists, but neither the
// replica nor this host has a copy of it.
var ErrUnrecoverable = policy.E(policy.KindUnavailable, "vault_unrecoverable", "the vault's replica cannot be read just now; try again later")

// Claim takes the named vault for this host (host.Placement).
func (s *Store) Claim(ctx context.Context, name, dir string, create bool) (host.Claim, error) {
	doc, etag, err := s.readLease(ctx, name)
	if err != nil {
		return nil, s.unavailable("read the lease of "+name, err)
	}
	dbPath := filepath.Join(dir, vault.DBFile)
	_, statErr := os.Stat(dbPath)
	local := statErr == nil
	switch {
	case create && doc != nil:
		return nil, host.ErrNameTaken
	case !create && doc == nil && !local:
		return nil, host.ErrNoSuchVault
	case doc != nil && !doc.Released && doc.Holder != s.cfg.Holder && time.Now().Before(doc.Expires):
		return nil, host.ErrElsewhere
	}
	next := leaseDoc{Holder: s.cfg.Holder, Epoch: 1}
	if doc != nil {
		next.Epoch, next.Generation = doc.Epoch+1, doc.Generation
	}
	sent := time.Now()
	next.Expires = sent.Add(s.cfg.LeaseTTL)
	newTag, err := s.writeLease(ctx, name, next, etag)
	if errors.Is(err, errConflict) {
		if create {
			return nil, host.ErrNameTaken
		}
		return nil, host.ErrElsewhere // another host won the race
	}
	if err != nil {
		return nil, s.unavailable("write the lease of "+name, err)
	}
	c := &claim{s: s, name: name, dir: dir, doc: next, etag: newTag, log: s.log.With("vault", name),
		stop: make(chan struct{}), stopped: make(chan struct{})}
	c.deadline = sent.Add(s.cfg.LeaseTTL - s.cfg.LeaseTTL/3)

	if doc != nil && !(doc.Holder == s.cfg.Holder && readEpoch(dir) == doc.Epoch) {
		// Someone else wrote the vault since this host last did (or this
		// host never had it): start from the replica.
		restored, err := s.restore(ctx, name, dir, doc.Generation)
		if err != nil || (!restored && !local) {
			c.giveUp()
			if err == nil {
				err = errors.New("no replica and no local copy")
			}
			return nil, ErrUnrecoverable.WithCause(err)
		}
		if !restored {
			c.log.Warn("the vault has no replica yet; serving this host's copy")
		}
	}
	if !create || local {
		if err := writeEpoch(dir, next.Epoch); err != nil {
			c.giveUp()
			return nil, s.unavailable("record the lease epoch", err)
		}
	} else {
		c.pendingEpoch = true // written once the vault exists
	}
	if doc != nil {
		c.handover = s.takeHandover(ctx, name, doc.Epoch)
	}
	go c.renew()
	c.log.Info("vault claimed", "epoch", next.Epoch)
	return c, nil
}

// Exists says whether the named vault has a lease in the bucket: it was
// created, on some host, and not erased.
func (s *Store) Exists(ctx context.Context, name string) (bool, error) {
	d, _, err := s.readLease(ctx, name)
	if err != nil {
		return false, err
	}
	return d != nil, nil
}

func (s *Store) unavailable(what string, err error) error {
	s.log.Warn("object storage", "op", what, "err", err)
	return policy.Wrap(policy.KindUnavailable, "temporarily_unavailable", "the host cannot reach its replica storage; try again", err)
}

func readEpoch(dir string) int64 {
	b, err := os.ReadFile(filepath.Join(dir, epochFile))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// writeEpoch records the epoch durably before any write under it.
func writeEpoch(dir string, epoch int64) error {
	tmp := filepath.Join(dir, epochFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strconv.FormatInt(epoch, 10) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, epochFile))
}

// claim is this host's lease on one vault and its replication.
type claim struct {
	s    *Store
	name string
	dir  string
	log  *slog.Logger

	mu           sync.Mutex
	doc          leaseDoc
	etag         string
	deadline     time.Time // monotonic: no commit after it
	lost         bool
	handover     []byte
	pendingEpoch bool
	ldb          *litestream.DB
	stopShipping func() // ends the periodic uploads of ldb (ship.go)
	shipMu       sync.Mutex
	started      bool // Replicate was called: commits from now on need the replica
	lag          lagWatch

	cmu      sync.Mutex // guards next and flushing (confirm.go)
	next     *round     // the round that starts next, with its waiters
	flushing bool       // a goroutine runs rounds

	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

// Fence is vault.Fence: commits stop before the lease can lapse, and
// while the replica is too far behind (lagWatch).
func (c *claim) Fence() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lost || !time.Now().Before(c.deadline) {
		return vault.ErrNotHeld
	}
	if c.lag.behind {
		return vault.ErrReplicaBehind
	}
	return nil
}

// held is the lease alone: what uploads to the replica need (they are how
// the replica catches up).
func (c *claim) held() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lost || !time.Now().Before(c.deadline) {
		return vault.ErrNotHeld
	}
	return nil
}

func (c *claim) Handover() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.handover
	c.handover = nil
	return b
}

// renew keeps the lease, and the generation in it, fresh.
func (c *claim) renew() {
	defer close(c.stopped)
	t := time.NewTicker(c.s.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		if err := c.renewOnce(); errors.Is(err, errConflict) {
			return
		} else if err != nil {
			c.log.Warn("lease renewal failed; writes stop when the lease runs out", "err", err)
		}
	}
}

func (c *claim) renewOnce() error {
	c.mu.Lock()
	if c.lost {
		c.mu.Unlock()
		return errConflict
	}
	d, etag := c.doc, c.etag
	ldb := c.ldb
	c.mu.Unlock()
	if ldb != nil {
		if g, err := ldb.CurrentGeneration(); err == nil && g != "" {
			d.Generation = g
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.LeaseTTL/3)
	defer cancel()
	sent := time.Now()
	d.Expires = sent.Add(c.s.cfg.LeaseTTL)
	tag, err := c.s.writeLease(ctx, c.name, d, etag)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case errors.Is(err, errConflict):
		c.lost = true
		c.log.Error("the vault's lease was taken by another host; this host stops writing it")
	case err == nil:
		c.doc, c.etag = d, tag
		c.deadline = sent.Add(c.s.cfg.LeaseTTL - c.s.cfg.LeaseTTL/3)
	}
	return err
}

// stopRenewing ends the renewal loop (once).
func (c *claim) stopRenewing() {
	c.once.Do(func() { close(c.stop) })
	<-c.stopped
}

// giveUp drops a claim that never served: the lease lapses by itself.
func (c *claim) giveUp() {
	c.once.Do(func() { close(c.stop) })
	close(c.stopped)
	c.mu.Lock()
	c.lost = true
	c.mu.Unlock()
}

// Replicate starts Litestream on the opened database.
func (c *claim) Replicate(dbPath string) error {
	c.mu.Lock()
	pending := c.pendingEpoch
	c.pendingEpoch = false
	epoch := c.doc.Epoch
	c.mu.Unlock()
	if pending {
		if err := writeEpoch(c.dir, epoch); err != nil {
			return err
		}
	}
	ldb := litestream.NewDB(dbPath)
	ldb.Logger = quiet(c.log)
	ldb.MonitorInterval = min(c.s.cfg.SyncInterval, 250*time.Millisecond)
	r := litestream.NewReplica(ldb, "s3")
	r.Client = &fencedClient{ReplicaClient: c.s.litestreamClient(c.name), fence: c.held}
	r.SyncInterval = c.s.cfg.SyncInterval
	r.MonitorEnabled = false // uploads are shipped one at a time (ship.go)
	ldb.Replicas = []*litestream.Replica{r}
	if err := ldb.Open(); err != nil {
		return err
	}
	// The first sync starts the generation at once, not at the monitor's
	// first tick: a vault released right away still reaches the replica.
	if err := ldb.Sync(context.Background()); err != nil {
		ldb.Close()
		forgetMetrics(dbPath)
		return err
	}
	stop := c.startShipping(ldb, r)
	c.mu.Lock()
	c.ldb, c.stopShipping, c.started = ldb, stop, true
	c.mu.Unlock()
	if c.s.cfg.Confirm {
		// What was committed before replication started (a new vault's
		// first commits) is confirmed here: the vault serves only once
		// its replica has it.
		ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.ConfirmTimeout)
		err := c.Flush(ctx)
		cancel()
		if err != nil {
			c.mu.Lock()
			c.ldb, c.stopShipping = nil, nil
			c.mu.Unlock()
			stop()
			ldb.Close()
			forgetMetrics(dbPath)
			return err
		}
	}
	if c.s.cfg.MaxLag > 0 {
		go c.watchLag(ldb, r)
	}
	// Name the new generation in the lease now: a host that restores the
	// vault after this one dies restores this generation.
	if err := c.renewOnce(); err != nil {
		c.log.Warn("lease renewal failed; writes stop when the lease runs out", "err", err)
	}
	return nil
}

// Flush ships everything committed so far to the replica. Litestream's
// checkpoint inside it fails while the vault's writer holds the database
// (SQLITE_BUSY); that is retried until ctx ends, not reported: writes under
// load must not turn a confirmation into a refusal.
func (c *claim) Flush(ctx context.Context) error {
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		err := c.flushOnce(ctx)
		var se sqlite3.Error
		if err == nil || !errors.As(err, &se) || (se.Code != sqlite3.ErrBusy && se.Code != sqlite3.ErrLocked) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

func (c *claim) flushOnce(ctx context.Context) error {
	c.mu.Lock()
	ldb := c.ldb
	c.mu.Unlock()
	if ldb == nil {
		return nil
	}
	if err := ldb.Sync(ctx); err != nil {
		return err
	}
	return c.ship(ctx, ldb.Replicas[0])
}

// Release flushes and stops replication, leaves the handover, and marks
// the lease released. The vault's database is closed already.
func (c *claim) Release(ctx context.Context, handover []byte) error {
	c.stopRenewing()
	// Renew once more: the final flush must happen under a live lease
	// (the fenced client refuses it otherwise).
	if err := c.renewOnce(); err != nil {
		c.closeReplication()
		return fmt.Errorf("release %s: lease: %w", c.name, err)
	}
	err := c.closeReplication()
	if err != nil {
		// Keep the lease: the replica lacks what this host wrote; the lease
		// runs out, and only then may another host restore what there is.
		return fmt.Errorf("release %s: final flush: %w", c.name, err)
	}
	c.mu.Lock()
	d, etag := c.doc, c.etag
	c.mu.Unlock()
	if handover != nil && c.s.cfg.HandoverKey != nil {
		if err := c.s.putHandover(ctx, c.name, d.Epoch, handover); err != nil {
			c.log.Warn("handover not stored; the vault will arrive sealed", "err", err)
		}
	}
	crypt.Wipe(handover)
	d.Released, d.Expires = true, time.Now()
	if _, err := c.s.writeLease(ctx, c.name, d, etag); err != nil {
		return fmt.Errorf("release %s: %w", c.name, err)
	}
	c.mu.Lock()
	c.lost = true
	c.mu.Unlock()
	c.log.Info("vault released", "epoch", d.Epoch, "generation", d.Generation)
	return nil
}

// closeReplication stops Litestream after a last sync and records the
// generation it replicated into.
func (c *claim) closeReplication() error {
	c.mu.Lock()
	ldb, stop := c.ldb, c.stopShipping
	c.ldb, c.stopShipping = nil, nil
	c.mu.Unlock()
	if ldb == nil {
		return nil
	}
	stop()
	gen, _ := ldb.CurrentGeneration()
	// Flush before Close: Litestream v0.3.13's Close syncs after cancelling
	// its own context, and a sync that needs a checkpoint then fails
	// ("release read lock: context canceled").
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	err := ldb.Sync(ctx)
	if err == nil {
		err = c.ship(ctx, ldb.Replicas[0])
	}
	cancel()
	if cerr := ldb.Close(); cerr != nil && err == nil {
		c.log.Debug("litestream close after a good flush", "err", cerr)
	}
	forgetMetrics(ldb.Path())
	if gen != "" {
		c.mu.Lock()
		c.doc.Generation = gen
		c.mu.Unlock()
	}
	return err
}

// Erase deletes everything of the vault in object storage, the lease last.
func (c *claim) Erase(ctx context.Context) error {
	c.stopRenewing()
	c.mu.Lock()
	c.lost = true // the fenced client ships nothing more
	c.mu.Unlock()
	c.closeReplication()
	n, err := c.s.deleteAll(ctx, c.name)
	if err != nil {
		return err
	}
	if err := c.s.del(ctx, c.s.key(c.name, leaseFile)); err != nil {
		return err
	}
	c.log.Info("vault erased from object storage", "objects", n+1)
	return nil
}

// The replica itself: Litestream's S3 client under the vault's prefix,
// behind the lease's fence, so that a host that lost the lease (paused,
// cut off) cannot ship another frame into the replica.

func (s *Store) litestreamClient(name string) *lss3.ReplicaClient {
	c := lss3.NewReplicaClient()
	c.Bucket, c.Path = s.cfg.Bucket, s.key(name, "db")
	c.Endpoint, c.Region, c.ForcePathStyle = s.cfg.Endpoint, s.cfg.Region, s.cfg.PathStyle
	c.AccessKeyID, c.SecretAccessKey = s.cfg.AccessKey, s.cfg.SecretKey
	return c
}

type fencedClient struct {
	litestream.ReplicaClient
	fence func() error
}

func (f *fencedClient) WriteSnapshot(ctx context.Context, generation string, index int, r io.Reader) (_ litestream.SnapshotInfo, err error) {
	defer unblock(r, &err)
	if err := f.fence(); err != nil {
		return litestream.SnapshotInfo{}, err
	}
	return f.ReplicaClient.WriteSnapshot(ctx, generation, index, r)
}

func (f *fencedClient) WriteWALSegment(ctx context.Context, pos litestream.Pos, r io.Reader) (_ litestream.WALSegmentInfo, err error) {
	defer unblock(r, &err)
	if err := f.fence(); err != nil {
		return litestream.WALSegmentInfo{}, err
	}
	return f.ReplicaClient.WriteWALSegment(ctx, pos, r)
}

// unblock closes the pipe Litestream writes a segment into when the upload
// failed: Litestream v0.3.13 otherwise blocks forever writing into a pipe
// nobody reads (a failed upload, such as one cancelled by closing the
// vault, would hang the close).
func unblock(r io.Reader, err *error) {
	if *err == nil {
		return
	}
	if pr, ok := r.(*io.PipeReader); ok {
		pr.CloseWithError(*err)
	}
}

func (f *fencedClient) DeleteGeneration(ctx context.Context, generation string) error {
	if err := f.fence(); err != nil {
		return err
	}
	return f.ReplicaClient.DeleteGeneration(ctx, generation)
}

func (f *fencedClient) DeleteSnapshot(ctx context.Context, generation string, index int) error {
	if err := f.fence(); err != nil {
		return err
	}
	return f.ReplicaClient.DeleteSnapshot(ctx, generation, index)
}

func (f *fencedClient) DeleteWALSegments(ctx context.Context, a []litestream.Pos) error {
	if err := f.fence(); err != nil {
		return err
	}
	return f.ReplicaClient.DeleteWALSegments(ctx, a)
}

// restore replaces the vault's local files with the newest state of its
// replica (generation gen if it has one). False: the replica is empty.
func (s *Store) restore(ctx context.Context, name, dir, gen string) (bool, error) {
	r := litestream.NewReplica(nil, "s3")
	r.Client = s.litestreamClient(name)
	opt := litestream.NewRestoreOptions()
	if gen != "" {
		opt.Generation = gen
		if _, _, err := r.CalcRestoreTarget(ctx, opt); err != nil {
			opt.Generation = ""
		}
	}
	g, _, err := r.CalcRestoreTarget(ctx, opt)
	if err != nil {
		return false, err
	}
	if g == "" && gen != "" {
		opt.Generation = ""
		if g, _, err = r.CalcRestoreTarget(ctx, opt); err != nil {
			return false, err
		}
	}
	if g == "" {
		return false, nil
	}
	opt.Generation = g
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	out := filepath.Join(dir, vault.DBFile+".restoring")
	os.Remove(out)
	os.Remove(out + ".tmp")
	opt.OutputPath = out
	start := time.Now()
	if err := r.Restore(ctx, opt); err != nil {
		return false, err
	}
	db := filepath.Join(dir, vault.DBFile)
	for _, p := range []string{db + "-wal", db + "-shm"} {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return false, err
		}
	}
	// Litestream's own record of the old local copy no longer applies.
	if err := os.RemoveAll(filepath.Join(dir, "."+vault.DBFile+litestream.MetaDirSuffix)); err != nil {
		return false, err
	}
	if err := os.Chmod(out, 0o600); err != nil {
		return false, err
	}
	if err := os.Rename(out, db); err != nil {
		return false, err
	}
	s.log.Info("vault restored from its replica", "vault", name, "generation", g, "elapsed", time.Since(start))
	return true, nil
}

// Handover: the vault's unsealed state, sealed with the hosts' shared key
// and bound to the vault, the releasing epoch and an expiry.

func (s *Store) handoverAAD(name string, epoch int64, expires int64) []byte {
	return crypt.AAD(crypt.HandoverAAD, []byte(name), crypt.U64(uint64(epoch)), crypt.U64(uint64(expires)))
}

// maxHandover bounds a handover object: a keeper hands over at most 1,000
// sessions (~80 bytes each in JSON) and 1,000 throttled sources (at most
// ~130 bytes each), plus the key; anything larger is not a keeper's.
const maxHandover = 512 << 10

func (s *Store) putHandover(ctx context.Context, name string, epoch int64, state []byte) error {
	exp := time.Now().Add(s.cfg.HandoverTTL).Unix()
	body := append(crypt.U64(uint64(exp)), crypt.Seal(s.cfg.HandoverKey, state, s.handoverAAD(name, epoch, exp))...)
	_, err := s.put(ctx, s.key(name, "handover"), body, "-")
	return err
}

// takeHandover reads and deletes what the previous holder (epoch) left;
// anything stale, forged or for another epoch is dropped.
func (s *Store) takeHandover(ctx context.Context, name string, epoch int64) []byte {
	key := s.key(name, "handover")
	b, _, err := s.get(ctx, key, maxHandover)
	if err != nil || b == nil {
		return nil
	}
	if err := s.del(ctx, key); err != nil {
		s.log.Warn("a handover was not deleted", "vault", name, "err", err)
	}
	if s.cfg.HandoverKey == nil || len(b) < 8 {
		return nil
	}
	exp := int64(beUint64(b[:8]))
	if time.Now().Unix() > exp {
		s.log.Info("a stale handover was dropped; the vault stays sealed", "vault", name)
		return nil
	}
	state, err := crypt.Open(s.cfg.HandoverKey, b[8:], s.handoverAAD(name, epoch, exp))
	if err != nil {
		s.log.Warn("a handover did not authenticate; the vault stays sealed", "vault", name)
		return nil
	}
	return state
}

func beUint64(b []byte) uint64 {
	var n uint64
	for _, x := range b[:8] {
		n = n<<8 | uint64(x)
	}
	return n
}

// quiet passes on only Litestream's warnings and errors: its routine
// messages (one per sync) would drown a host's log.
func quiet(l *slog.Logger) *slog.Logger {
	return slog.New(minLevel{l.Handler(), slog.LevelWarn})
}

type minLevel struct {
	slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.Handler.Enabled(ctx, l)
}

// Handle drops the errors of syncs that a closing vault cancelled: they
// are how Litestream stops, not failures.
func (m minLevel) Handle(ctx context.Context, r slog.Record) error {
	cancelled := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "error" && strings.Contains(a.Value.String(), "context canceled") {
			cancelled = true
			return false
		}
		return true
	})
	if cancelled {
		return nil
	}
	return m.Handler.Handle(ctx, r)
}

func (m minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{m.Handler.WithAttrs(a), m.min}
}

func (m minLevel) WithGroup(g string) slog.Handler { return minLevel{m.Handler.WithGroup(g), m.min} }

// Replication lag (Config.MaxLag). Litestream copies new WAL frames into
// its shadow WAL every MonitorInterval and ships them every SyncInterval;
// when commits come faster than it ships, the replica falls behind without
// bound and so does what a lost host takes with it. The watch samples the
// shadow WAL's position, remembers when each position was first seen, and
// drops those the replica has reached: the oldest left is the lag. While
// it exceeds MaxLag the fence refuses commits, so the writes at risk stay
// within MaxLag plus one monitor interval and one tick.
type lagWatch struct {
	seen   []seenPos // oldest first; at most maxSeen
	behind bool
}

type seenPos struct {
	pos litestream.Pos
	at  time.Time
}

const (
	lagTick = 100 * time.Millisecond
	// maxSeen bounds the samples kept while the replica is stuck: the
	// oldest is what matters, and it is kept.
	maxSeen = 4096
)

// watchLag runs until the claim stops renewing or replication is closed.
func (c *claim) watchLag(ldb *litestream.DB, r *litestream.Replica) {
	t := time.NewTicker(lagTick)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		c.mu.Lock()
		current := c.ldb == ldb
		c.mu.Unlock()
		if !current {
			return
		}
		p, err := ldb.Pos()
		if err != nil {
			continue
		}
		c.observeLag(p, r.Pos(), time.Now())
	}
}

// observeLag records the database's position p and the replica's rp at
// now, and decides whether writes must wait.
func (c *claim) observeLag(p, rp litestream.Pos, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := &c.lag
	if n := len(w.seen); !p.IsZero() && (n == 0 || w.seen[n-1].pos != p) && n < maxSeen {
		w.seen = append(w.seen, seenPos{pos: p, at: now})
	}
	i := 0
	for i < len(w.seen) && !beyond(w.seen[i].pos, rp) {
		i++
	}
	w.seen = w.seen[i:]
	was := w.behind
	w.behind = len(w.seen) > 0 && now.Sub(w.seen[0].at) > c.s.cfg.MaxLag
	switch {
	case w.behind && !was:
		c.log.Warn("the replica is behind; writes wait until it catches up", "lag", now.Sub(w.seen[0].at).Round(time.Millisecond))
	case was && !w.behind:
		c.log.Info("the replica caught up; writes resume")
	}
}

// beyond says whether position a is past b: in another generation, or
// further along the same one.
func beyond(a, b litestream.Pos) bool {
	if a.Generation != b.Generation {
		return true
	}
	if a.Index != b.Index {
		return a.Index > b.Index
	}
	return a.Offset > b.Offset
}
