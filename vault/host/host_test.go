package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

const pass = "correct horse battery staple"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newHost(t *testing.T, root string, maxOpen int) (*Host, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)}
	h, err := New(Options{Root: root, MaxOpen: maxOpen, Vault: vault.Options{Now: c.Now},
		IssuerFor: func(n string) string { return "https://" + n + ".vaults.example" }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			t.Errorf("Close: %v (a handle not released?)", err)
		}
	})
	return h, c
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if policy.CodeOf(err) != code {
		t.Fatalf("error = %v, want %s", err, code)
	}
}

// The open set stays within MaxOpen; a closed vault reopens on the next
// request without its passphrase and with its data; a restart seals every
// vault until its owner unlocks it.
func TestHostOpensLazilyClosesLRUAndSealsOnRestart(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	h, _ := newHost(t, root, 2)
	ids := map[string]string{}
	for _, n := range []string{"alice", "bob", "carol"} {
		hd, err := h.Create(ctx, n, []byte(pass))
		if err != nil {
			t.Fatalf("Create %s: %v", n, err)
		}
		r, err := hd.Vault.CreateRecord(ctx, "profile", fmt.Appendf(nil, `{"name":%q}`, n))
		if err != nil {
			t.Fatal(err)
		}
		ids[n] = r.ID
		if got := hd.Vault.Issuer(); got != "https://"+n+".vaults.example" {
			t.Fatalf("issuer = %s", got)
		}
		hd.Release()
		if h.Open() > 2 {
			t.Fatalf("%d vaults open, MaxOpen 2", h.Open())
		}
	}
	// alice was least recently used: closed, and reopened by her keeper.
	hd, err := h.Acquire(ctx, "alice")
	if err != nil {
		t.Fatalf("Acquire alice: %v", err)
	}
	rec, err := hd.Vault.GetRecord(ctx, "profile", ids["alice"])
	if err != nil || string(rec.Data) != `{"name":"alice"}` {
		t.Fatalf("alice's record after reopening: %s %v", rec.Data, err)
	}
	hd.Release()

	if _, err := h.Acquire(ctx, "dave"); !errors.Is(err, ErrNoSuchVault) {
		t.Fatalf("Acquire of a vault that does not exist: %v", err)
	}
	if _, err := h.Acquire(ctx, "../alice"); !errors.Is(err, ErrNoSuchVault) {
		t.Fatalf("Acquire of a path: %v", err)
	}

	// A restart: a new host over the same directory knows no key.
	h.Close(ctx)
	h2, _ := newHost(t, root, 2)
	if _, err := h2.Acquire(ctx, "bob"); !errors.Is(err, vault.ErrSealed) {
		t.Fatalf("after a restart: %v, want vault_sealed", err)
	}
	if _, err := h2.Unseal(ctx, "bob", []byte("not the passphrase"), vault.LoginSource{Address: "192.0.2.9"}); !errors.Is(err, vault.ErrWrongPassphrase) {
		t.Fatalf("unseal with a wrong passphrase: %v", err)
	}
	res, err := h2.Unseal(ctx, "bob", []byte(pass), vault.LoginSource{Address: "192.0.2.9"})
	if err != nil || res.Token == "" {
		t.Fatalf("unseal: %v", err)
	}
	hd, err = h2.Acquire(ctx, "bob")
	if err != nil {
		t.Fatalf("Acquire after unseal: %v", err)
	}
	defer hd.Release()
	if err := hd.Vault.Authenticate(res.Token); err != nil {
		t.Fatalf("the unseal's session: %v", err)
	}
	if !h2.Sealed("alice") || h2.Sealed("bob") {
		t.Fatal("unsealing bob unsealed someone else, or not bob")
	}
}

// A vault in use is never closed under its user, and idle ones close.
func TestHostKeepsVaultsInUseAndClosesIdle(t *testing.T) {
	ctx := t.Context()
	h, c := newHost(t, t.TempDir(), 1)
	a, err := h.Create(ctx, "alice", []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Create(ctx, "bob", []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	// Both in use: the bound is exceeded rather than a vault closed mid-request.
	if _, err := a.Vault.CreateRecord(ctx, "notes", []byte(`{"n":1}`)); err != nil {
		t.Fatalf("alice's vault was closed while in use: %v", err)
	}
	if h.Open() != 2 {
		t.Fatalf("%d open, want both in use", h.Open())
	}
	a.Release()
	b.Release()
	c.Add(time.Hour)
	if n := h.CloseIdle(c.Now().Add(-10 * time.Minute)); n == 0 || h.Open() != 0 {
		t.Fatalf("CloseIdle closed %d, %d still open", n, h.Open())
	}
}

// Sign-up: names are DNS labels, taken once; invitations are single-use
// and expire; a refused sign-up spends no invitation and leaves nothing.
func TestSignUp(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	h, c := newHost(t, root, 10)
	code, err := h.Invite(24 * time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"Al", "-alice", "alice-", "al_ice", "www", "a.b", ""} {
		_, err := h.SignUp(ctx, bad, []byte(pass), code, true)
		wantCode(t, err, "invalid_name")
	}
	_, err = h.SignUp(ctx, "alice", []byte("short"), code, true)
	wantCode(t, err, "weak_passphrase")
	_, err = h.SignUp(ctx, "alice", []byte(pass), "not-a-code", true)
	wantCode(t, err, "invalid_invite")
	hd, err := h.SignUp(ctx, "alice", []byte(pass), code, true)
	if err != nil {
		t.Fatalf("SignUp with the invitation: %v", err)
	}
	hd.Release()
	_, err = h.SignUp(ctx, "bob", []byte(pass), code, true)
	wantCode(t, err, "invalid_invite")

	code2, _ := h.Invite(time.Hour)
	_, err = h.SignUp(ctx, "alice", []byte(pass), code2, true)
	wantCode(t, err, "name_taken")
	c.Add(2 * time.Hour)
	_, err = h.SignUp(ctx, "bob", []byte(pass), code2, true)
	wantCode(t, err, "invalid_invite")
	if h.Exists("bob") {
		t.Fatal("a refused sign-up left a vault")
	}
	// The invitation files hold no code.
	des, _ := os.ReadDir(filepath.Join(root, "invites"))
	for _, de := range des {
		if de.Name() == code || de.Name() == code2 {
			t.Fatal("an invitation is stored in the clear")
		}
	}
}

// Of many sign-ups for one name at once, exactly one wins.
func TestSignUpRaceOneWinner(t *testing.T) {
	ctx := t.Context()
	h, _ := newHost(t, t.TempDir(), 10)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			hd, err := h.Create(ctx, "alice", []byte(pass))
			if err == nil {
				hd.Release()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrNameTaken):
			t.Fatalf("a losing sign-up: %v, want name_taken", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d sign-ups won", won)
	}
}

// Deleting a vault removes its files and its key; the name is free again.
func TestDelete(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	h, _ := newHost(t, root, 10)
	hd, err := h.Create(ctx, "alice", []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, h.Delete(t.Context(), "alice"), "vault_busy")
	hd.Release()
	if err := h.Delete(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	des, _ := os.ReadDir(filepath.Join(root, "vaults"))
	if len(des) != 0 {
		t.Fatalf("left after delete: %v", des)
	}
	if _, err := h.Acquire(ctx, "alice"); !errors.Is(err, ErrNoSuchVault) {
		t.Fatalf("Acquire after delete: %v", err)
	}
	wantCode(t, h.Delete(t.Context(), "alice"), "no_such_vault")
}

// elsewherePlacement says every vault is on another host, counting the
// questions.
type elsewherePlacement struct{ asked atomic.Int64 }

func (p *elsewherePlacement) Claim(ctx context.Context, name, dir string, create bool) (Claim, error) {
	p.asked.Add(1)
	return nil, ErrElsewhere
}

// Exists: every name with an "x" is a vault elsewhere.
func (p *elsewherePlacement) Exists(ctx context.Context, name string) (bool, error) {
	p.asked.Add(1)
	return strings.Contains(name, "x"), nil
}

// Knows is what a TLS certificate may be asked for: a vault here, or one
// in the shared storage, looked up at most lookupRate times a second
// whoever asks (a flood of invented names costs that, not a lookup each).
func TestKnows(t *testing.T) {
	p := &elsewherePlacement{}
	h, err := New(Options{Root: t.TempDir(), Placement: p, IssuerFor: func(n string) string { return n }})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	if !h.Knows(t.Context(), "xavier") || h.Knows(t.Context(), "alice") || h.Knows(t.Context(), "Not-A-Name") {
		t.Fatal("Knows disagrees with the placement")
	}
	p.asked.Store(0)
	start := time.Now()
	for i := range 500 {
		h.Knows(t.Context(), fmt.Sprintf("guess%d", i))
	}
	if got, most := p.asked.Load(), int64(lookupRate+float64(lookupRate)*time.Since(start).Seconds())+1; got > most {
		t.Fatalf("500 invented names cost %d lookups, want at most %d", got, most)
	}
}

// Requests for a vault another host holds do not each cost a lookup in the
// object store: the answer is remembered for 100 ms.
func TestElsewhereIsRemembered(t *testing.T) {
	p := &elsewherePlacement{}
	h, err := New(Options{Root: t.TempDir(), Placement: p, IssuerFor: func(n string) string { return n }})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	start := time.Now()
	for range 200 {
		_, err := h.Acquire(t.Context(), "alice")
		wantCode(t, err, "vault_elsewhere")
	}
	// Once per 100 ms at most (a slow machine may take longer than 100 ms
	// for the 200).
	if got, most := p.asked.Load(), 1+int64(time.Since(start)/(100*time.Millisecond)); got > most {
		t.Fatalf("200 requests asked the store %d times, want at most %d", got, most)
	}
	before := p.asked.Load()
	time.Sleep(120 * time.Millisecond)
	h.Acquire(t.Context(), "alice")
	if got := p.asked.Load(); got != before+1 {
		t.Fatalf("after the memory ran out the store was asked %d more times, want 1", got-before)
	}
}

// A host's vaults are made with 4 KiB pages (many small vaults stay
// small), read from the database file's header (offset 16, big-endian).
func TestHostedVaultsUseSmallPages(t *testing.T) {
	root := t.TempDir()
	h, _ := newHost(t, root, 2)
	hd, err := h.Create(t.Context(), "alice", []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	hd.Release()
	f, err := os.Open(filepath.Join(root, "vaults", "alice", vault.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hdr := make([]byte, 18)
	if _, err := io.ReadFull(f, hdr); err != nil {
		t.Fatal(err)
	}
	if got := int(hdr[16])<<8 | int(hdr[17]); got != 4096 {
		t.Fatalf("page size %d, want 4096", got)
	}
}
