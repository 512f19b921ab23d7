package host

import (
	"context"
	"errors"
	"fmt"
	"net"
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
	for _, n := range []string{"alice", "bob"} {
		hd, err := h.Create(ctx, n, []byte(pass))
		if err != nil {
			t.Fatal(err)
		}
		hd.Release()
	}
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
	// caller hears so, with the name DNS gave.
	h.Close(ctx)
	h2, z2 := newDomainHost(t, root)
	z2.set("_pdvault.data.alice.example", "vault=alice.vaults.example")
	_, name, err = h2.AcquireAt(ctx, "data.alice.example")
	if !errors.Is(err, vault.ErrSealed) || name != "alice" {
		t.Fatalf("sealed: %v %q", err, name)
	}
	if h2.KnowsDomain(ctx, "data.alice.example") {
		t.Fatal("a certificate may be asked for a sealed vault's domain")
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
