package vault

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pdvault/pdvault/policy"
)

// A host closes idle vaults: reopening with the keeper needs no passphrase,
// keeps the owner's session, and a sealed keeper reopens nothing.
func TestKeeperReopensWithoutPassphrase(t *testing.T) {
	ctx := t.Context()
	dir, c, k, v, res := keptVault(t)
	opts := Options{Now: c.Now, Keeper: k}
	r, err := v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada"}`))
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	if k.Sealed() {
		t.Fatal("closing the vault sealed its keeper")
	}

	v2, err := Reopen(ctx, dir, opts)
	if err != nil {
		t.Fatalf("Reopen: %v", err)
	}
	if err := v2.Authenticate(res.Token); err != nil {
		t.Fatalf("the session did not survive closing: %v", err)
	}
	got, err := v2.GetRecord(ctx, "profile", r.ID)
	if err != nil || !bytes.Equal(got.Data, r.Data) {
		t.Fatalf("record after reopen = %s, %v", got.Data, err)
	}
	v2.Close()

	k.Seal()
	if _, err := Reopen(ctx, dir, opts); !errors.Is(err, ErrSealed) {
		t.Fatalf("Reopen of a sealed keeper: %v, want vault_sealed", err)
	}
	if policy.KindOf(ErrSealed) != policy.KindUnavailable || ErrSealed.RetryAfter <= 0 {
		t.Fatalf("ErrSealed = %+v: want unavailable with a Retry-After", ErrSealed)
	}
	// Sealing ended the session.
	v3, _, err := Unseal(ctx, dir, []byte(testPass), LoginSource{Address: "192.0.2.1"}, opts)
	if err != nil {
		t.Fatalf("Unseal: %v", err)
	}
	defer v3.Close()
	if err := v3.Authenticate(res.Token); !errors.Is(err, ErrNoSession) {
		t.Fatalf("a session from before sealing: %v, want invalid_token", err)
	}
}

// A keeper held for one vault opens no other: a database swapped under the
// host is refused, not served with the wrong key.
func TestReopenRefusesAnotherVault(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	k := NewKeeper(Options{})
	a, err := Create(ctx, filepath.Join(root, "a"), []byte(testPass), Options{Keeper: k})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	b, err := Create(ctx, filepath.Join(root, "b"), []byte(testPass), Options{})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	_, err = Reopen(ctx, filepath.Join(root, "b"), Options{Keeper: k})
	if policy.CodeOf(err) != "vault_replaced" {
		t.Fatalf("Reopen of another vault with a held key: %v, want vault_replaced", err)
	}
}

// Unsealing is throttled like a login, and failures while sealed reach the
// audit log once the owner unseals.
func TestUnsealThrottlesAndAuditsFailures(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "vault")
	c := newClock()
	k := NewKeeper(Options{Now: c.Now})
	opts := Options{Now: c.Now, Keeper: k}
	v, err := Create(ctx, dir, []byte(testPass), opts)
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	k.Seal()
	src := LoginSource{Address: "198.51.100.7"}
	for i := 0; i < freeFailures; i++ {
		if _, _, err := Unseal(ctx, dir, []byte("wrong passphrase"), src, opts); !errors.Is(err, ErrWrongPassphrase) {
			t.Fatalf("attempt %d: %v, want invalid_passphrase", i, err)
		}
	}
	// The next failure sets a backoff; the attempt after it is throttled
	// before Argon2id runs.
	Unseal(ctx, dir, []byte("wrong passphrase"), src, opts)
	if _, _, err := Unseal(ctx, dir, []byte(testPass), src, opts); !errors.Is(err, ErrThrottled) {
		t.Fatalf("after %d failures: %v, want slow_down", freeFailures+1, err)
	}
	if !k.Sealed() {
		t.Fatal("failed unseals unsealed the keeper")
	}
	c.Add(maxBackoff)
	v2, res, err := Unseal(ctx, dir, []byte(testPass), src, opts)
	if err != nil {
		t.Fatalf("Unseal after the backoff: %v", err)
	}
	defer v2.Close()
	if err := v2.Authenticate(res.Token); err != nil || res.Device == "" {
		t.Fatalf("unseal did not log the owner in: %v (device %q)", err, res.Device)
	}
	page, err := v2.ListAudit(ctx, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range page.Entries {
		if e.Event == EvLoginFailed && strings.Contains(e.Reason, "4 wrong passphrase(s) while the vault was sealed") {
			found = true
		}
	}
	if !found {
		t.Fatalf("the failures while sealed are not in the audit log: %+v", page.Entries)
	}
}

// A quota refuses the write that would cross it, and the write changes
// nothing; each bound names itself.
func TestQuotaRefusesAndChangesNothing(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		name  string
		quota Quota
		fill  func(v *Vault) error
		want  string
	}{
		{"records", Quota{Records: 2}, func(v *Vault) error {
			_, err := v.CreateRecord(ctx, "notes", []byte(`{"n":1}`))
			return err
		}, "2 records"},
		{"documents", Quota{Documents: 1}, func(v *Vault) error {
			_, err := v.AddDocument(ctx, strings.NewReader("a letter"), DocumentInput{Title: "letter", FileName: "letter.txt"})
			return err
		}, "1 documents"},
		{"bytes", Quota{Bytes: 600 << 10}, func(v *Vault) error {
			_, err := v.AddDocument(ctx, bytes.NewReader(bytes.Repeat([]byte("x"), 300<<10)), DocumentInput{Title: "scan", FileName: "scan.bin"})
			return err
		}, "KiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "vault")
			v, err := Create(ctx, dir, []byte(testPass), Options{Quota: tc.quota})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			var last error
			for i := 0; i < 20 && last == nil; i++ {
				last = tc.fill(v)
			}
			if !errors.Is(last, ErrQuota) || !strings.Contains(policy.MessageOf(last), tc.want) {
				t.Fatalf("filling the vault: %v, want quota_exceeded naming %q", last, tc.want)
			}
			cols, _ := v.ListCollections(ctx)
			before, _ := dbBytes(ctx, v.db.r)
			var n int64
			v.db.r.QueryRowContext(ctx, `SELECT count(*) FROM records`).Scan(&n)
			if err := tc.fill(v); !errors.Is(err, ErrQuota) {
				t.Fatalf("again: %v", err)
			}
			var n2 int64
			v.db.r.QueryRowContext(ctx, `SELECT count(*) FROM records`).Scan(&n2)
			cols2, _ := v.ListCollections(ctx)
			after, _ := dbBytes(ctx, v.db.r)
			if n2 != n || len(cols2) != len(cols) || after > before+64<<10 {
				t.Fatalf("a refused write changed the vault: records %d -> %d, bytes %d -> %d", n, n2, before, after)
			}
		})
	}
}

// keptVault creates a vault under a keeper and logs its owner in.
func keptVault(t *testing.T) (dir string, c *clock, k *Keeper, v *Vault, login LoginResult) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "vault")
	c = newClock()
	k = NewKeeper(Options{Now: c.Now})
	v, err := Create(t.Context(), dir, []byte(testPass), Options{Now: c.Now, Keeper: k})
	if err != nil {
		t.Fatal(err)
	}
	if login, err = v.Login(t.Context(), []byte(testPass), LoginSource{Address: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	return dir, c, k, v, login
}

// A handover carries the owner's live sessions: the keeper that takes it
// admits the same token; an expired one, a malformed one and one beyond the
// taker's session lifetime are not carried as they were.
func TestHandoverCarriesSessions(t *testing.T) {
	ctx := t.Context()
	dir, c, k, v, res := keptVault(t)
	v.Close()
	b := k.Handover()
	var h handover
	if err := json.Unmarshal(b, &h); err != nil || len(h.Sessions) != 1 {
		t.Fatalf("handover sessions: %v %+v", err, h.Sessions)
	}
	// Forged extras: malformed, expired, and one far beyond any lifetime.
	h.Sessions["zz"] = c.Now().Add(time.Hour).Unix()
	h.Sessions[strings.Repeat("ab", 32)] = c.Now().Add(-time.Minute).Unix()
	far := strings.Repeat("cd", 32)
	h.Sessions[far] = c.Now().Add(1000 * time.Hour).Unix()
	b, _ = json.Marshal(h)

	k2 := NewKeeper(Options{Now: c.Now})
	if err := k2.TakeHandover(b); err != nil {
		t.Fatal(err)
	}
	if n := len(k2.sessions.byHash); n != 2 {
		t.Fatalf("%d sessions taken, want the real one and the capped one", n)
	}
	var fh [32]byte
	hex.Decode(fh[:], []byte(far))
	if exp := k2.sessions.byHash[fh]; exp.After(c.Now().Add(k2.sessions.ttl)) {
		t.Fatalf("a handed-over expiry beyond the session lifetime kept: %v", exp)
	}
	v2, err := Reopen(ctx, dir, Options{Now: c.Now, Keeper: k2})
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	if err := v2.Authenticate(res.Token); err != nil {
		t.Fatalf("the owner's session after the handover: %v", err)
	}
	if err := v2.Authenticate("not-a-token"); !errors.Is(err, ErrNoSession) {
		t.Fatalf("an unknown token: %v", err)
	}
}

// A vault that moves while sealed takes its login throttle and its
// unaudited failures along (Keeper.HandoverThrottle): a guesser gains no
// fresh attempts from a move, the next host audits the failures (once),
// and a handed-over wait is never beyond maxBackoff from now.
func TestThrottleMovesWithTheVault(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "vault")
	c := newClock()
	a := NewKeeper(Options{Now: c.Now})
	v, err := Create(ctx, dir, []byte(testPass), Options{Now: c.Now, Keeper: a})
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	a.Seal()
	if a.HandoverThrottle() != nil {
		t.Fatal("a keeper with nothing to carry hands something over")
	}
	src := LoginSource{Address: "198.51.100.7"}
	for range freeFailures + 1 {
		if _, _, err := Unseal(ctx, dir, []byte("wrong passphrase"), src, Options{Now: c.Now, Keeper: a}); !errors.Is(err, ErrWrongPassphrase) {
			t.Fatalf("wrong passphrase: %v", err)
		}
	}
	moved := a.HandoverThrottle()
	if bytes.Contains(moved, []byte(`"master"`)) || bytes.Contains(moved, []byte(`"sessions"`)) {
		t.Fatalf("a throttle handover carries secrets: %s", moved)
	}
	if again := a.HandoverThrottle(); bytes.Contains(again, []byte(`"failures"`)) {
		t.Fatalf("the failures were handed over twice: %s", again)
	}

	// On the next host, the same source is still waiting.
	b := NewKeeper(Options{Now: c.Now})
	if err := b.TakeHandover(moved); err != nil {
		t.Fatal(err)
	}
	if !b.Sealed() {
		t.Fatal("a throttle handover unsealed the keeper")
	}
	optsB := Options{Now: c.Now, Keeper: b}
	if _, _, err := Unseal(ctx, dir, []byte(testPass), src, optsB); !errors.Is(err, ErrThrottled) {
		t.Fatalf("the guesser after the move: %v, want slow_down", err)
	}
	c.Add(maxBackoff)
	v2, _, err := Unseal(ctx, dir, []byte(testPass), src, optsB)
	if err != nil {
		t.Fatalf("Unseal after the backoff: %v", err)
	}
	defer v2.Close()
	page, err := v2.ListAudit(ctx, 20, "")
	if err != nil {
		t.Fatal(err)
	}
	audited := 0
	for _, e := range page.Entries {
		if e.Event == EvLoginFailed && strings.Contains(e.Reason, "4 wrong passphrase(s) while the vault was sealed") {
			audited++
		}
	}
	if audited != 1 {
		t.Fatalf("the failures before the move audited %d times, want once: %+v", audited, page.Entries)
	}

	// A forged or skewed handover cannot lock the owner out beyond
	// maxBackoff, and a key without its vault id is refused.
	k := NewKeeper(Options{Now: c.Now})
	forged := fmt.Sprintf(`{"throttle":{"a:%s":{"n":50,"until":%d}}}`, src.Address, c.Now().Add(24*time.Hour).Unix())
	if err := k.TakeHandover([]byte(forged)); err != nil {
		t.Fatal(err)
	}
	v2.Close()
	c.Add(maxBackoff + time.Second)
	if _, _, err := Unseal(ctx, dir, []byte(testPass), src, Options{Now: c.Now, Keeper: k}); err != nil {
		t.Fatalf("after maxBackoff, a forged day-long wait still holds: %v", err)
	}
	for _, bad := range []string{`{"master":"AAAA"}`, `{"vault_id":"x"}`, `{"failures":-1}`, `not json`} {
		if err := NewKeeper(Options{}).TakeHandover([]byte(bad)); policy.CodeOf(err) != "invalid_handover" {
			t.Fatalf("handover %s: %v, want invalid_handover", bad, err)
		}
	}
}
