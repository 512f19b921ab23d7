package replica

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/benbjohnson/litestream"

	"github.com/pdvault/pdvault/internal/s3test"
	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
	"github.com/pdvault/pdvault/vault/host"
)

const pass = "correct horse battery staple"

var testKey = bytes.Repeat([]byte{7}, 32)

func newStore(t *testing.T, srv *s3test.Server, holder string, ttl time.Duration, key []byte) *Store {
	t.Helper()
	cfg, err := ParseURL(srv.URL("test"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.AccessKey, cfg.SecretKey = srv.AccessKey, srv.SecretKey
	cfg.Holder, cfg.LeaseTTL, cfg.SyncInterval, cfg.HandoverKey = holder, ttl, 100*time.Millisecond, key
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newHost(t *testing.T, s *Store) *host.Host {
	t.Helper()
	return newHostWith(t, host.Options{Placement: s})
}

// newHostWith is a host over a fresh directory with opts, closed at the
// test's end.
func newHostWith(t *testing.T, opts host.Options) *host.Host {
	t.Helper()
	opts.Root = t.TempDir()
	opts.IssuerFor = func(n string) string { return "https://" + n + ".vaults.example" }
	h, err := host.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		h.Close(ctx)
	})
	return h
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if policy.CodeOf(err) != code {
		t.Fatalf("error = %v, want %s", err, code)
	}
}

// acquire retries while the host still remembers that another host held
// the vault (for 100 ms after it last asked).
func acquire(t *testing.T, h *host.Host, name string) (*host.Handle, error) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		hd, err := h.Acquire(t.Context(), name)
		if policy.CodeOf(err) != "vault_elsewhere" || time.Now().After(deadline) {
			return hd, err
		}
	}
}

func count(t *testing.T, h *host.Host, name string) int {
	t.Helper()
	hd, err := acquire(t, h, name)
	if err != nil {
		t.Fatalf("Acquire %s: %v", name, err)
	}
	defer hd.Release()
	n := 0
	for cursor := ""; ; {
		p, err := hd.Vault.ListRecords(t.Context(), "notes", 500, cursor)
		if err != nil {
			t.Fatal(err)
		}
		n += len(p.Records)
		if cursor = p.Next; cursor == "" {
			return n
		}
	}
}

// unsealWhenFree unlocks the named vault on h once the host that held it
// (crashed, its lease unrenewed) no longer does.
func unsealWhenFree(t *testing.T, h *host.Host, name string, within time.Duration) error {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(200 * time.Millisecond) {
		_, err := h.Unseal(t.Context(), name, []byte(pass), vault.LoginSource{Address: "192.0.2.1"})
		if policy.CodeOf(err) != "vault_elsewhere" || time.Now().After(deadline) {
			return err
		}
	}
}

func write(t *testing.T, h *host.Host, name string, n int) {
	t.Helper()
	hd, err := h.Acquire(t.Context(), name)
	if err != nil {
		t.Fatalf("Acquire %s: %v", name, err)
	}
	defer hd.Release()
	for range n {
		if _, err := hd.Vault.CreateRecord(t.Context(), "notes", []byte(`{"n":1}`)); err != nil {
			t.Fatal(err)
		}
	}
}

// A vault moves between hosts: one host at a time holds it, the other
// answers vault_elsewhere; after a release the next host restores it from
// the replica, with everything written, unsealed by the handover.
func TestMoveBetweenHosts(t *testing.T) {
	srv := s3test.Start(t)
	ctx := t.Context()
	a := newHost(t, newStore(t, srv, "host-a", 6*time.Second, testKey))
	b := newHost(t, newStore(t, srv, "host-b", 6*time.Second, testKey))

	hd, err := a.Create(ctx, "alice", []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	hd.Release()
	write(t, a, "alice", 5)

	// The name is taken on every host, and B may not serve what A holds.
	_, err = b.Create(ctx, "alice", []byte(pass))
	wantCode(t, err, "name_taken")
	_, err = b.Acquire(ctx, "alice")
	wantCode(t, err, "vault_elsewhere")
	_, err = b.Acquire(ctx, "nobody")
	wantCode(t, err, "no_such_vault")

	// The owner is logged in on A.
	hd, err = a.Acquire(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	sess, err := hd.Vault.Login(ctx, []byte(pass), vault.LoginSource{Address: "192.0.2.1"})
	hd.Release()
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := a.Release(ctx, "alice"); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if n := count(t, b, "alice"); n != 5 {
		t.Fatalf("B restored %d records, want 5", n)
	}
	// ... and still is on B: the session came with the handover.
	hd, err = b.Acquire(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	err = hd.Vault.Authenticate(sess.Token)
	hd.Release()
	if err != nil {
		t.Fatalf("the owner's session after the move: %v", err)
	}
	write(t, b, "alice", 2)
	// Now A is the stranger.
	_, err = a.Acquire(ctx, "alice")
	wantCode(t, err, "vault_elsewhere")

	// And back: A's stale copy is replaced by the replica's.
	if ok, err := b.Release(ctx, "alice"); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if n := count(t, a, "alice"); n != 7 {
		t.Fatalf("A has %d records after the move back, want 7", n)
	}
}

// Without the hosts' shared key, or with a forged handover, a moved vault
// arrives sealed: its owner's passphrase opens it.
func TestHandoverNeedsTheKey(t *testing.T) {
	srv := s3test.Start(t)
	ctx := t.Context()
	a := newHost(t, newStore(t, srv, "host-a", 6*time.Second, testKey))
	b := newHost(t, newStore(t, srv, "host-b", 6*time.Second, bytes.Repeat([]byte{9}, 32)))
	hd, err := a.Create(ctx, "bob", []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	hd.Release()
	if _, err := a.Release(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	_, err = b.Acquire(ctx, "bob")
	wantCode(t, err, "vault_sealed")
	if _, err := b.Unseal(ctx, "bob", []byte(pass), vault.LoginSource{Address: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, b, "bob"); n != 0 {
		t.Fatalf("records: %d", n)
	}
}

// A vault that arrives sealed stays claimed by the host that restored it:
// asking again costs no lease traffic (the epoch stays), no other host
// takes it from under its owner's unlock, and a release or the host's end
// gives the claim up.
func TestSealedVaultKeepsItsClaim(t *testing.T) {
	srv := s3test.Start(t)
	ctx := t.Context()
	sb := newStore(t, srv, "host-b", 6*time.Second, nil) // no key: vaults arrive sealed
	a := newHost(t, newStore(t, srv, "host-a", 6*time.Second, testKey))
	b := newHost(t, sb)
	hd, err := a.Create(ctx, "dora", []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	hd.Release()
	if _, err := a.Release(ctx, "dora"); err != nil {
		t.Fatal(err)
	}
	_, err = acquire(t, b, "dora")
	wantCode(t, err, "vault_sealed")
	first, _, err := sb.readLease(ctx, "dora")
	if err != nil || first.Holder != "host-b" || first.Released {
		t.Fatalf("lease after the sealed arrival: %+v, %v", first, err)
	}
	for range 5 {
		_, err = b.Acquire(ctx, "dora")
		wantCode(t, err, "vault_sealed")
	}
	again, _, err := sb.readLease(ctx, "dora")
	if err != nil || again.Epoch != first.Epoch || again.Holder != "host-b" || again.Released {
		t.Fatalf("lease after asking again: %+v (first %+v), %v", again, first, err)
	}
	_, err = a.Acquire(ctx, "dora")
	wantCode(t, err, "vault_elsewhere")

	// The owner unlocks where the vault is held, under the same claim.
	if _, err := b.Unseal(ctx, "dora", []byte(pass), vault.LoginSource{Address: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	if l, _, _ := sb.readLease(ctx, "dora"); l.Epoch != first.Epoch {
		t.Fatalf("unlocking took a new lease: epoch %d, was %d", l.Epoch, first.Epoch)
	}
	// Sealed again, a release gives the kept claim up.
	b.Seal("dora")
	_, err = b.Acquire(ctx, "dora")
	wantCode(t, err, "vault_sealed")
	if ok, err := b.Release(ctx, "dora"); err != nil || !ok {
		t.Fatalf("releasing a sealed vault: %v %v", ok, err)
	}
	if l, _, _ := sb.readLease(ctx, "dora"); !l.Released {
		t.Fatalf("lease after the release: %+v", l)
	}
	_, err = acquire(t, a, "dora")
	wantCode(t, err, "vault_sealed") // at A now, sealed: B handed over nothing
	// Unasked for as long as the host keeps idle vaults, the claim goes.
	a.CloseIdle(time.Now().Add(time.Hour))
	if l, _, _ := sb.readLease(ctx, "dora"); l.Holder != "host-a" || !l.Released {
		t.Fatalf("lease after A reaped its idle sealed vault: %+v", l)
	}
}

// A host that stops renewing (paused, cut off) stops writing before its
// lease can run out; once another host took the vault, the stale host
// writes nothing, locally or to the replica, and learns it lost.
func TestStaleHostCannotWrite(t *testing.T) {
	srv := s3test.Start(t)
	ctx := t.Context()
	sa := newStore(t, srv, "host-a", 3*time.Second, testKey)
	a := newHost(t, sa)
	b := newHost(t, newStore(t, srv, "host-b", 3*time.Second, testKey))
	hd, err := a.Create(ctx, "carol", []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	defer hd.Release()
	write(t, a, "carol", 3)
	// Wait until the three records are in the replica, then freeze A's
	// renewals as a paused process would.
	c := claimOf(t, hd)
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	c.once.Do(func() { close(c.stop) })
	<-c.stopped

	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = b.Acquire(ctx, "carol")
		if err == nil || policy.CodeOf(err) != "vault_elsewhere" || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil && policy.CodeOf(err) != "vault_sealed" {
		t.Fatalf("B could not take the lapsed vault: %v", err)
	}
	// A still has the vault open (a handle in use) but may not commit.
	_, err = hd.Vault.CreateRecord(ctx, "notes", []byte(`{"stale":true}`))
	wantCode(t, err, "vault_not_held")
	if err := c.renewOnce(); err == nil {
		t.Fatal("the stale host renewed a lease another host holds")
	}
	// Nor may it ship anything into the replica, and a refused upload
	// does not leave Litestream's writer blocked on its pipe.
	fc := &fencedClient{ReplicaClient: sa.litestreamClient("carol"), fence: c.held}
	pr, pw := io.Pipe()
	_, err = fc.WriteWALSegment(ctx, litestream.Pos{Generation: "0123456789abcdef"}, pr)
	wantCode(t, err, "vault_not_held")
	if _, err := pw.Write([]byte("frame")); err == nil {
		t.Fatal("the pipe of a refused upload is still open")
	}
	hd.Release()
	// B has the three records and A's refused write is nowhere.
	if _, err := b.Unseal(ctx, "carol", []byte(pass), vault.LoginSource{Address: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, b, "carol"); n != 3 {
		t.Fatalf("B has %d records, want 3", n)
	}
}

// Deleting a vault erases its replica and lease from object storage: the
// name is free again, on every host.
func TestDeleteErasesReplica(t *testing.T) {
	srv := s3test.Start(t)
	ctx := t.Context()
	s := newStore(t, srv, "host-a", 6*time.Second, testKey)
	a := newHost(t, s)
	hd, err := a.Create(ctx, "dave", []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	hd.Release()
	write(t, a, "dave", 2)
	if err := claimOf(t, hd).Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Remaining(ctx, "dave"); err != nil || n < 2 {
		t.Fatalf("objects before delete: %d, %v", n, err)
	}
	if err := a.Delete(ctx, "dave"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Remaining(ctx, "dave"); err != nil || n != 0 {
		t.Fatalf("objects after delete: %d, %v", n, err)
	}
	entries, _ := os.ReadDir(filepath.Join(srv.Root, srv.Bucket, "test"))
	for _, e := range entries {
		if e.Name() == "dave" {
			if rest, _ := os.ReadDir(filepath.Join(srv.Root, srv.Bucket, "test", "dave")); len(rest) > 0 {
				t.Fatalf("files left in the gateway's directory: %v", rest)
			}
		}
	}
	b := newHost(t, newStore(t, srv, "host-b", 6*time.Second, testKey))
	hd, err = b.Create(ctx, "dave", []byte(pass))
	if err != nil {
		t.Fatalf("the erased name is not free: %v", err)
	}
	hd.Release()
}

func TestParseURL(t *testing.T) {
	c, err := ParseURL("s3://bkt/a/b?endpoint=http://127.0.0.1:9000")
	if err != nil || c.Bucket != "bkt" || c.Prefix != "a/b" || c.Endpoint != "http://127.0.0.1:9000" || !c.PathStyle {
		t.Fatalf("%+v %v", c, err)
	}
	for _, bad := range []string{"http://bkt/x", "s3:///x", "s3://bkt?endpoint=ftp://x", "s3://bkt?colour=red", "s3://bkt?path-style=maybe"} {
		if _, err := ParseURL(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func claimOf(t testing.TB, hd *host.Handle) *claim {
	t.Helper()
	c, ok := hd.Claim().(*claim)
	if !ok {
		t.Fatalf("the handle has no claim: %T", hd.Claim())
	}
	return c
}

// The lag bound decides from positions and times alone: behind once the
// oldest unreplicated position is older than MaxLag, not before; caught up
// when the replica reaches it; a new generation counts as unreplicated.
func TestLagWatch(t *testing.T) {
	c := &claim{s: &Store{cfg: Config{MaxLag: time.Second}}, log: slog.New(slog.DiscardHandler)}
	t0 := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	pos := func(i int, off int64) litestream.Pos { return litestream.Pos{Generation: "g1", Index: i, Offset: off} }
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	c.observeLag(pos(0, 100), pos(0, 100), at(0))
	if len(c.lag.seen) != 0 {
		t.Fatalf("replicated position kept: %+v", c.lag.seen)
	}
	c.deadline = time.Now().Add(time.Hour)
	c.observeLag(pos(0, 200), pos(0, 100), at(100))
	c.observeLag(pos(0, 300), pos(0, 100), at(900))
	if err := c.Fence(); err != nil {
		t.Fatalf("0.9 s behind: %v", err)
	}
	c.observeLag(pos(0, 300), pos(0, 100), at(1200)) // 200 first seen at 100: 1.1 s
	if err := c.Fence(); !errors.Is(err, vault.ErrReplicaBehind) {
		t.Fatalf("1.1 s behind: %v, want ErrReplicaBehind", err)
	}
	c.observeLag(pos(0, 300), pos(0, 200), at(1300)) // 300 first seen at 900: 0.4 s
	if err := c.Fence(); err != nil {
		t.Fatalf("caught up to 0.4 s: %v", err)
	}
	c.observeLag(pos(1, 0), pos(0, 300), at(1400)) // the next WAL index
	c.observeLag(litestream.Pos{Generation: "g2", Offset: 50}, pos(1, 0), at(1500))
	if len(c.lag.seen) != 1 || c.lag.seen[0].pos.Generation != "g2" {
		t.Fatalf("after a new generation: %+v", c.lag.seen)
	}
	// Stuck replica: samples stop at maxSeen, the oldest is kept.
	for i := range maxSeen + 10 {
		c.observeLag(litestream.Pos{Generation: "g2", Offset: int64(100 + i)}, pos(1, 0), at(1600+i))
	}
	if len(c.lag.seen) > maxSeen || c.lag.seen[0].at != at(1500) {
		t.Fatalf("%d samples, oldest %v", len(c.lag.seen), c.lag.seen[0].at)
	}
}

// With the object store stalled (its process stopped), writes are
// acknowledged for about MaxLag and then refused with replica_behind —
// none of the refused ones is written — and resume once the store answers
// and the replica catches up; everything acknowledged is in the replica.
func TestReplicaLagBounded(t *testing.T) {
	srv := s3test.Start(t)
	ctx := t.Context()
	s := newStore(t, srv, "host-a", 30*time.Second, testKey)
	s.cfg.MaxLag = time.Second
	a := newHost(t, s)
	hd, err := a.Create(ctx, "dave", []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	defer hd.Release()
	write(t, a, "dave", 3)
	if err := claimOf(t, hd).Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer srv.Process.Signal(syscall.SIGCONT)
	stalled := time.Now()
	acked := 3
	for {
		_, err := hd.Vault.CreateRecord(ctx, "notes", []byte(`{"n":1}`))
		if err == nil {
			acked++
		} else {
			wantCode(t, err, "replica_behind")
			break
		}
		if time.Since(stalled) > 10*time.Second {
			t.Fatal("writes were still acknowledged 10 s into the stall")
		}
		time.Sleep(10 * time.Millisecond)
	}
	refusedAfter := time.Since(stalled)
	t.Logf("stalled store: %d writes acknowledged, the first refused after %v", acked-3, refusedAfter.Round(time.Millisecond))
	if refusedAfter < time.Second {
		t.Fatalf("refused after %v, before the bound of 1s", refusedAfter)
	}
	if err := srv.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, err := hd.Vault.CreateRecord(ctx, "notes", []byte(`{"n":1}`))
		if err == nil {
			acked++
			break
		}
		wantCode(t, err, "replica_behind")
		if time.Now().After(deadline) {
			t.Fatal("writes did not resume after the store came back")
		}
	}
	if n := count(t, a, "dave"); n != acked {
		t.Fatalf("%d records, %d acknowledged", n, acked)
	}
	hd.Release()
	if ok, err := a.Release(ctx, "dave"); err != nil || !ok {
		t.Fatal(ok, err)
	}
	b := newHost(t, newStore(t, srv, "host-b", 30*time.Second, testKey))
	if n := count(t, b, "dave"); n != acked {
		t.Fatalf("the replica has %d records, %d acknowledged", n, acked)
	}
}

// crash leaves a vault as a killed host would: no renewal, no final flush,
// nothing more shipped to the replica.
func crash(c *claim) {
	c.once.Do(func() { close(c.stop) })
	<-c.stopped
	c.mu.Lock()
	c.lost = true
	c.mu.Unlock()
}

// With Confirm, a write is acknowledged only once it is in the replica: a
// host lost right after loses none of its acknowledged writes, even when
// Litestream's own schedule would not have shipped them for an hour.
// Without it, the same crash loses them (the control). While the store
// does not answer, writes are refused with replica_unconfirmed; each is
// saved all the same and reaches the replica once the store is back.
func TestConfirmedWritesSurviveTheHost(t *testing.T) {
	srv := s3test.Start(t)
	ctx := t.Context()
	for _, confirm := range []bool{false, true} {
		name := map[bool]string{false: "async", true: "sync"}[confirm]
		s := newStore(t, srv, "host-a-"+name, 3*time.Second, nil)
		s.cfg.SyncInterval, s.cfg.MaxLag, s.cfg.Confirm = time.Hour, -1, confirm
		a := newHost(t, s)
		hd, err := a.Create(ctx, name, []byte(pass))
		if err != nil {
			t.Fatal(err)
		}
		// The new vault is in the replica before the writes (in the
		// asynchronous control too): what differs is only the writes.
		if err := claimOf(t, hd).Flush(ctx); err != nil {
			t.Fatal(err)
		}
		for range 10 {
			if _, err := hd.Vault.CreateRecord(ctx, "notes", []byte(`{"n":1}`)); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		crash(claimOf(t, hd))
		hd.Release()
		b := newHost(t, newStore(t, srv, "host-b-"+name, 3*time.Second, nil))
		if err := unsealWhenFree(t, b, name, 10*time.Second); err != nil {
			t.Fatalf("%s: B could not take the vault: %v", name, err)
		}
		got := count(t, b, name)
		t.Logf("%s: 10 writes acknowledged, %d restored after the host was lost", name, got)
		if confirm && got != 10 {
			t.Fatalf("synchronous: %d of 10 acknowledged writes restored", got)
		}
		if !confirm && got != 0 {
			t.Fatalf("asynchronous with an hour's interval: %d writes restored, want 0 (the control shows nothing else ships them)", got)
		}
	}

	// The store stops answering: a write is refused, saved, and shipped
	// once the store is back.
	// The wait is ConfirmTimeout (here 1 s, not the default 5 s).
	s := newStore(t, srv, "host-c", 12*time.Second, nil)
	s.cfg.SyncInterval, s.cfg.MaxLag, s.cfg.Confirm, s.cfg.ConfirmTimeout = time.Hour, -1, true, time.Second
	c := newHost(t, s)
	hd, err := c.Create(ctx, "frank", []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	defer hd.Release()
	if err := srv.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	_, err = hd.Vault.CreateRecord(ctx, "notes", []byte(`{"n":1}`))
	waited := time.Since(began)
	srv.Process.Signal(syscall.SIGCONT)
	wantCode(t, err, "replica_unconfirmed")
	if waited < time.Second || waited >= 5*time.Second {
		t.Fatalf("refused after %v: the wait is not the configured 1s", waited)
	}
	if _, err := hd.Vault.CreateRecord(ctx, "notes", []byte(`{"n":2}`)); err != nil {
		t.Fatalf("write once the store is back: %v", err)
	}
	crash(claimOf(t, hd))
	hd.Release()
	d := newHost(t, newStore(t, srv, "host-d", 12*time.Second, nil))
	if err := unsealWhenFree(t, d, "frank", 40*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := count(t, d, "frank"); n != 2 {
		t.Fatalf("%d records restored, want both (the refused one was saved)", n)
	}
}

// Flushes asked for while writes go on and while the periodic uploads run
// (what confirmations do) leave the replica whole: the vault restored
// elsewhere opens and has every acknowledged write.
func TestConcurrentFlushesKeepTheReplicaWhole(t *testing.T) {
	srv := s3test.Start(t)
	ctx := t.Context()
	s := newStore(t, srv, "host-a", 30*time.Second, testKey)
	s.cfg.SyncInterval = 20 * time.Millisecond
	a := newHost(t, s)
	hd, err := a.Create(ctx, "gina", []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	c := claimOf(t, hd)
	var acked atomic.Int64
	end := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for time.Now().Before(end) {
				if _, err := hd.Vault.CreateRecord(ctx, "notes", []byte(`{"n":1}`)); err == nil {
					acked.Add(1)
				}
			}
		})
		wg.Go(func() {
			for time.Now().Before(end) {
				if err := c.Flush(ctx); err != nil {
					t.Errorf("flush: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	hd.Release()
	if ok, err := a.Release(ctx, "gina"); err != nil || !ok {
		t.Fatal(ok, err)
	}
	b := newHost(t, newStore(t, srv, "host-b", 30*time.Second, testKey))
	hd, err = acquire(t, b, "gina")
	if err != nil {
		t.Fatalf("the restored vault: %v", err)
	}
	defer hd.Release()
	if rep, err := hd.Vault.VerifyAudit(ctx); err != nil || !rep.OK {
		t.Fatalf("the restored vault's audit: %+v %v", rep, err)
	}
	n := count(t, b, "gina")
	t.Logf("%d writes acknowledged, %d restored", acked.Load(), n)
	if int64(n) != acked.Load() {
		t.Fatalf("%d records restored, %d acknowledged", n, acked.Load())
	}
}
