package host

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

func errReasons(err error) []string {
	var pe *policy.Error
	if errors.As(err, &pe) {
		return pe.Reasons
	}
	return nil
}

// zone is a DNS zone's TXT records, for the host's unit tests (the command
// tests ask a real DNS server: cmd/pdvault TestHostCustomDomain).
type zone struct {
	mu    sync.Mutex
	txt   map[string][]string
	asked atomic.Int64
}

func (z *zone) LookupTXT(_ context.Context, name string) ([]string, error) {
	z.asked.Add(1)
	z.mu.Lock()
	defer z.mu.Unlock()
	if r, ok := z.txt[name]; ok {
		return r, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (z *zone) set(name string, vals ...string) {
	z.mu.Lock()
	z.txt[name] = vals
	z.mu.Unlock()
}

// createVaults creates the named vaults on h.
func createVaults(t *testing.T, h *Host, names ...string) {
	t.Helper()
	for _, n := range names {
		hd, err := h.Create(t.Context(), n, []byte(pass))
		if err != nil {
			t.Fatal(err)
		}
		hd.Release()
	}
}

func newDomainHost(t *testing.T, root string) (*Host, *zone) {
	t.Helper()
	z := &zone{txt: map[string][]string{}}
	h, err := New(Options{Root: root, Domain: "vaults.example", Resolver: z,
		Vault:     vault.Options{DomainIssuer: func(d string) string { return "https://" + d }},
		IssuerFor: func(n string) string { return "https://" + n + ".vaults.example" }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	return h, z
}

// A domain is served for a vault when its DNS names the vault and the
// vault's owner chose it; either one alone is not enough, and a name
// another vault's owner claims stays where DNS points.
func TestCustomDomains(t *testing.T) {
	ctx := t.Context()
	plain, _ := newHost(t, t.TempDir(), 4)
	if hd, err := plain.Create(ctx, "alice", []byte(pass)); err == nil {
		hd.Release()
	}
	_, err := plain.SetDomain(ctx, "alice", "data.alice.example")
	wantCode(t, err, "custom_domains_unsupported")

	root := t.TempDir()
	h, z := newDomainHost(t, root)
	createVaults(t, h, "alice", "bob")
	_, err = h.SetDomain(ctx, "alice", "bob.vaults.example")
	wantCode(t, err, "invalid_domain")
	_, err = h.SetDomain(ctx, "alice", "not a domain")
	wantCode(t, err, "invalid_domain")
	_, err = h.SetDomain(ctx, "alice", "data.alice.example")
	wantCode(t, err, "domain_unverified")
	if !strings.Contains(fmt.Sprint(errReasons(err)), `_pdvault.data.alice.example TXT "vault=alice.vaults.example"`) {
		t.Fatalf("the error does not say what to publish: %v", errReasons(err))
	}
	// A record for another host's vault, and one for this host's bob.
	z.set("_pdvault.data.alice.example", "vault=alice.elsewhere.example", "v=spf1 -all")
	_, err = h.SetDomain(ctx, "alice", "data.alice.example")
	wantCode(t, err, "domain_unverified")
	z.set("_pdvault.data.alice.example", "vault=bob.vaults.example")
	_, err = h.SetDomain(ctx, "alice", "data.alice.example")
	wantCode(t, err, "domain_unverified")

	z.set("_pdvault.data.alice.example", "vault=alice.vaults.example", "vault=alice.elsewhere.example")
	if _, err := h.SetDomain(ctx, "alice", "data.alice.example"); err != nil {
		t.Fatal(err)
	}
	hd, name, err := h.AcquireAt(ctx, "data.alice.example")
	if err != nil || name != "alice" || hd.Vault.Issuer() != "https://data.alice.example" {
		t.Fatalf("AcquireAt: %v %q", err, name)
	}
	hd.Release()
	// Bob claims alice's domain: DNS names alice, so bob cannot.
	_, err = h.SetDomain(ctx, "bob", "data.alice.example")
	wantCode(t, err, "domain_unverified")
	// A stranger's domain pointed at alice, which alice never chose.
	z.set("_pdvault.evil.example", "vault=alice.vaults.example")
	_, _, err = h.AcquireAt(ctx, "evil.example")
	wantCode(t, err, "misdirected_request")
	if h.KnowsDomain(ctx, "evil.example") || !h.KnowsDomain(ctx, "data.alice.example") {
		t.Fatal("KnowsDomain disagrees with AcquireAt")
	}
	// A record naming a vault this host does not have; a name under the
	// host's own domain, which is never looked up.
	z.set("_pdvault.ghost.example", "vault=carol.vaults.example")
	_, _, err = h.AcquireAt(ctx, "ghost.example")
	wantCode(t, err, "misdirected_request")
	z.set("_pdvault.x.alice.vaults.example", "vault=alice.vaults.example")
	before := z.asked.Load()
	_, _, err = h.AcquireAt(ctx, "x.alice.vaults.example")
	wantCode(t, err, "misdirected_request")
	if z.asked.Load() != before {
		t.Fatal("a name under the host's own domain was looked up")
	}
	// A record naming two vaults names none.
	z.set("_pdvault.both.example", "vault=alice.vaults.example", "vault=bob.vaults.example")
	_, _, err = h.AcquireAt(ctx, "both.example")
	wantCode(t, err, "misdirected_request")

	// The answer is cached: no lookup per request.
	before = z.asked.Load()
	for range 20 {
		hd, _, err := h.AcquireAt(ctx, "data.alice.example")
		if err != nil {
			t.Fatal(err)
		}
		hd.Release()
	}
	if n := z.asked.Load() - before; n != 0 {
		t.Fatalf("%d lookups for a cached domain", n)
	}

	// Alice takes the domain away: it stops being served at once.
	if _, err := h.SetDomain(ctx, "alice", ""); err != nil {
		t.Fatal(err)
	}
	_, _, err = h.AcquireAt(ctx, "data.alice.example")
	wantCode(t, err, "misdirected_request")
	if _, err := h.SetDomain(ctx, "alice", "data.alice.example"); err != nil {
		t.Fatal(err)
	}

	// After a restart the vault is sealed and cannot say its domain: the
	// caller hears so, with the name DNS gave, and the domain book says
	// the owner chose it (enough for its certificate and its unlock form).
	h.Close(ctx)
	h2, z2 := newDomainHost(t, root)
	z2.set("_pdvault.data.alice.example", "vault=alice.vaults.example")
	_, name, err = h2.AcquireAt(ctx, "data.alice.example")
	if !errors.Is(err, vault.ErrSealed) || name != "alice" {
		t.Fatalf("sealed: %v %q", err, name)
	}
	if !h2.ChoseDomain(ctx, "data.alice.example", "alice") || !h2.KnowsDomain(ctx, "data.alice.example") {
		t.Fatal("the book does not vouch for a sealed vault's domain")
	}
	if h2.ChoseDomain(ctx, "data.alice.example", "bob") {
		t.Fatal("the book vouches for a vault that never chose the domain")
	}
	// DNS alone is not enough: a sealed vault with no entry in the book.
	z2.set("_pdvault.data.bob.example", "vault=bob.vaults.example")
	if h2.KnowsDomain(ctx, "data.bob.example") || h2.ChoseDomain(ctx, "data.bob.example", "bob") {
		t.Fatal("a certificate may be asked for a domain its sealed vault never chose")
	}
}

// The domain book never says more than the vaults: it follows an owner's
// changes, an open vault strikes an entry it does not confirm, an opening
// writes back what the vault has, and an erased vault leaves nothing.
func TestDomainBook(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	h, z := newDomainHost(t, root)
	createVaults(t, h, "alice", "bob")
	book := dirBook(filepath.Join(root, "domains"))
	pairs := func() string {
		t.Helper()
		ps, err := book.Domains(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, p := range ps {
			s = append(s, p.Domain+"="+p.Name)
		}
		return strings.Join(s, " ")
	}
	z.set("_pdvault.a.example", "vault=alice.vaults.example")
	z.set("_pdvault.b.example", "vault=alice.vaults.example")
	if _, err := h.SetDomain(ctx, "alice", "a.example"); err != nil {
		t.Fatal(err)
	}
	if got := pairs(); got != "a.example=alice" {
		t.Fatalf("after choosing a.example: %q", got)
	}
	if _, err := h.SetDomain(ctx, "alice", "b.example"); err != nil {
		t.Fatal(err)
	}
	if got := pairs(); got != "b.example=alice" {
		t.Fatalf("after moving to b.example: %q", got)
	}
	routes, err := h.Routes(ctx)
	if err != nil || len(routes) != 1 || routes[0] != (DomainPair{Domain: "b.example", Name: "alice.vaults.example"}) {
		t.Fatalf("routes: %+v %v", routes, err)
	}

	// An entry the vault does not confirm (the book ahead of a vault
	// restored from before its owner's choice): struck by the open vault.
	z.set("_pdvault.c.example", "vault=bob.vaults.example")
	if err := book.PutDomain(ctx, "c.example", "bob"); err != nil {
		t.Fatal(err)
	}
	if routes, _ := h.Routes(ctx); len(routes) != 2 {
		t.Fatalf("routes with bob's unconfirmed entry: %+v", routes)
	}
	if _, _, err := h.AcquireAt(ctx, "c.example"); policy.CodeOf(err) != "misdirected_request" {
		t.Fatalf("bob at a domain he never chose: %v", err)
	}
	if got := pairs(); got != "b.example=alice" {
		t.Fatalf("after bob's vault denied c.example: %q", got)
	}
	// DNS moving away takes the route away, whatever the book says.
	z.set("_pdvault.b.example", "vault=bob.vaults.example")
	if routes, _ := h.Routes(ctx); len(routes) != 0 {
		t.Fatalf("routes once DNS names another vault: %+v", routes)
	}
	z.set("_pdvault.b.example", "vault=alice.vaults.example")

	// A lost entry (a crash between the vault and the book) comes back
	// when the vault is next opened.
	if err := book.DeleteDomain(ctx, "b.example", "alice"); err != nil {
		t.Fatal(err)
	}
	if n := h.CloseIdle(time.Now().Add(time.Hour)); n != 2 {
		t.Fatalf("closed %d idle vaults, want 2", n)
	}
	hd, err := h.Acquire(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	hd.Release()
	if got := pairs(); got != "b.example=alice" {
		t.Fatalf("after reopening alice: %q", got)
	}

	// Erasure strikes the vault's entries first.
	if err := h.Delete(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if got := pairs(); got != "" {
		t.Fatalf("after erasing alice: %q", got)
	}
	// The book takes only a domain and a vault name, each one element.
	for _, bad := range [][2]string{{"../x", "alice"}, {"a.example", "../alice"}, {"a.example", "_x"}} {
		if err := book.PutDomain(ctx, bad[0], bad[1]); !errors.Is(err, ErrBadName) {
			t.Fatalf("put %q: %v", bad, err)
		}
	}
}

// Invented host names cost at most dnsRate lookups a second in all, and
// what is cached stays within maxDomains.
func TestDomainLookupsBounded(t *testing.T) {
	h, z := newDomainHost(t, t.TempDir())
	ctx := t.Context()
	start := time.Now()
	throttled := 0
	for i := range 3 * dnsRate {
		_, err := h.VaultAt(ctx, fmt.Sprintf("n%d.example", i))
		switch code := policy.CodeOf(err); code {
		case "misdirected_request":
		case "rate_limited":
			throttled++
		default:
			t.Fatalf("lookup %d: %v", i, err)
		}
	}
	if most := int64(dnsRate + dnsRate*time.Since(start).Seconds() + 1); z.asked.Load() > most || throttled == 0 {
		t.Fatalf("%d lookups (at most %d), %d throttled", z.asked.Load(), most, throttled)
	}
	now := time.Now()
	h.mu.Lock()
	for i := range maxDomains + 10 {
		h.remember(fmt.Sprintf("m%d.example", i), domainEntry{until: now.Add(time.Minute)}, now)
	}
	n := len(h.domains)
	h.mu.Unlock()
	if n > maxDomains {
		t.Fatalf("%d cached domains, bound %d", n, maxDomains)
	}
}
