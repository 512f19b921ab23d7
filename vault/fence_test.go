package vault

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pdvault/pdvault/policy"
)

// A vault whose fence closes refuses every write with vault_not_held and
// keeps nothing of it, whatever path the write takes; reads still answer.
func TestFenceRefusesCommits(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var lost, behind atomic.Bool
	opts := Options{Now: newClock().Now}
	opts.Fence = func() error {
		if lost.Load() {
			return errors.New("lease lost")
		}
		if behind.Load() {
			return ErrReplicaBehind
		}
		return nil
	}
	v, err := Create(ctx, dir, []byte(testPass), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.CreateRecord(ctx, "notes", []byte(`{"a":1}`)); err != nil {
		t.Fatalf("write with the fence open: %v", err)
	}
	before, err := v.ListRecords(ctx, "notes", 100, "")
	if err != nil {
		t.Fatal(err)
	}
	lost.Store(true)
	_, err = v.CreateRecord(ctx, "notes", []byte(`{"b":2}`))
	if policy.CodeOf(err) != "vault_not_held" {
		t.Fatalf("write with the fence closed: %v, want vault_not_held", err)
	}
	// A write that does not go through the store's transaction helper.
	if _, err := v.db.w.ExecContext(ctx, `INSERT INTO terms (hash, body, created) VALUES ('x', '{}', 0)`); err == nil {
		t.Fatal("a direct write committed past the fence")
	}
	after, err := v.ListRecords(ctx, "notes", 100, "")
	if err != nil {
		t.Fatalf("read with the fence closed: %v", err)
	}
	if len(after.Records) != len(before.Records) {
		t.Fatalf("records: %d before, %d after a refused write", len(before.Records), len(after.Records))
	}
	// A fence that says why: the writer hears that reason.
	lost.Store(false)
	behind.Store(true)
	_, err = v.CreateRecord(ctx, "notes", []byte(`{"b":2}`))
	if policy.CodeOf(err) != "replica_behind" {
		t.Fatalf("write with the replica behind: %v, want replica_behind", err)
	}
	behind.Store(false)
	if _, err := v.CreateRecord(ctx, "notes", []byte(`{"c":3}`)); err != nil {
		t.Fatalf("write with the fence open again: %v", err)
	}
}

// A vault's page size is chosen at creation: 4 KiB for a host of many
// small vaults (the default is TestNewVaultPageSize's); other sizes are refused.
func TestPageSize(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ ask, want int }{{4096, 4096}, {8192, 8192}} {
		dir := t.TempDir()
		v, err := Create(ctx, dir, []byte(testPass), Options{Now: newClock().Now, PageSize: tc.ask})
		if err != nil {
			t.Fatal(err)
		}
		var got int
		if err := v.db.r.QueryRowContext(ctx, "PRAGMA page_size").Scan(&got); err != nil {
			t.Fatal(err)
		}
		v.Close()
		if got != tc.want {
			t.Errorf("PageSize %d: the database has %d-byte pages, want %d", tc.ask, got, tc.want)
		}
	}
	_, err := Create(ctx, t.TempDir(), []byte(testPass), Options{PageSize: 1000})
	if policy.CodeOf(err) != "invalid_page_size" {
		t.Fatalf("page size 1000: %v", err)
	}
}

// vaultFiles counts this process's descriptors open on files in dir.
func vaultFiles(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("counting descriptors needs /proc: %v", err)
	}
	n := 0
	for _, e := range ents {
		if p, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.HasPrefix(p, dir+string(filepath.Separator)) {
			n++
		}
	}
	return n
}

// An open vault holds at most FilesPerVault(MaxReaders) descriptors: the
// bound a host sizes --max-open by. Every reader is made to open here.
func TestFilesPerVaultBound(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vault")
	v, err := Create(t.Context(), dir, []byte(testPass), Options{MaxReaders: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	var txs []*sql.Tx
	for range 2 {
		tx, err := v.db.r.BeginTx(t.Context(), &sql.TxOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := tx.QueryRow(`SELECT count(*) FROM records`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		txs = append(txs, tx)
	}
	// A third reader waits: the pool is bounded, not only its idle part.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := v.db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a third read connection: %v, want to wait", err)
	}
	got, bound := vaultFiles(t, dir), FilesPerVault(2)
	if got > bound || got < bound-2 {
		t.Fatalf("%d descriptors open on the vault's files, bound %d", got, bound)
	}
	for _, tx := range txs {
		tx.Rollback()
	}
}

// A vault whose host replicates synchronously answers a write or a read
// only once Confirm says the commit is in the replica; when it cannot
// confirm, the request is refused with replica_unconfirmed: a write stays
// saved (it was committed) and a read's data is withheld, its audit entry
// kept.
func TestConfirmGatesAnswers(t *testing.T) {
	ctx := context.Background()
	var calls atomic.Int64
	var failing atomic.Bool
	opts := Options{Now: newClock().Now}
	opts.Confirm = func(context.Context) error {
		calls.Add(1)
		if failing.Load() {
			return errors.New("replica timed out")
		}
		return nil
	}
	v, err := Create(ctx, t.TempDir(), []byte(testPass), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada"}`)); err != nil {
		t.Fatal(err)
	}
	o := newOrg(t)
	tok := o.grant(t, v, Approval{})
	before := calls.Load()
	if p, err := o.read(t, v, tok.AccessToken, "profile"); err != nil || len(p.Records) != 1 {
		t.Fatalf("confirmed read: %d records, %v", len(p.Records), err)
	}
	if calls.Load() == before {
		t.Fatal("a read was answered without waiting for its audit entry's confirmation")
	}

	failing.Store(true)
	_, err = v.CreateRecord(ctx, "notes", []byte(`{"n":1}`))
	if !errors.Is(err, ErrUnconfirmed) || policy.CodeOf(err) != "replica_unconfirmed" {
		t.Fatalf("unconfirmed write: %v", err)
	}
	if policy.MessageOf(err) != ErrUnconfirmed.Msg {
		t.Fatalf("the cause leaks into the message: %q", policy.MessageOf(err))
	}
	entries := auditCount(t, v)
	p, err := o.read(t, v, tok.AccessToken, "profile")
	if !errors.Is(err, ErrUnconfirmed) || len(p.Records) != 0 {
		t.Fatalf("unconfirmed read: %d records, %v", len(p.Records), err)
	}
	if n := auditCount(t, v); n != entries+1 {
		t.Fatalf("audit entries %d → %d: the withheld read's entry is not kept", entries, n)
	}

	failing.Store(false)
	page, err := v.ListRecords(ctx, "notes", 10, "")
	if err != nil || len(page.Records) != 1 {
		t.Fatalf("the unconfirmed write is not saved: %d, %v", len(page.Records), err)
	}
	if _, err := o.read(t, v, tok.AccessToken, "profile"); err != nil {
		t.Fatalf("read after the replica answers again: %v", err)
	}
}

func auditCount(t *testing.T, v *Vault) int64 {
	t.Helper()
	rep, err := v.VerifyAudit(t.Context())
	if err != nil || !rep.OK {
		t.Fatalf("audit: %+v %v", rep, err)
	}
	return rep.Entries
}
