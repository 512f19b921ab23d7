package replica

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/pdvault/pdvault/internal/s3test"
	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
	"github.com/pdvault/pdvault/vault/host"
)

// txt answers every _pdvault lookup with one record.
type txt map[string]string

func (z txt) LookupTXT(_ context.Context, name string) ([]string, error) {
	if v, ok := z[name]; ok {
		return []string{v}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func newDomainHost(t *testing.T, s *Store, z txt) *host.Host {
	t.Helper()
	h, err := host.New(host.Options{Root: t.TempDir(), Placement: s, Domain: "vaults.example", Resolver: z,
		Vault:     vault.Options{DomainIssuer: func(d string) string { return "https://" + d }},
		IssuerFor: func(n string) string { return "https://" + n + ".vaults.example" }})
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

// Hosts sharing a bucket share its domain book: a host that does not
// serve a vault vouches for the domain its owner chose on another host,
// lists it for the router, and forgets it when the vault is erased.
func TestSharedDomainBook(t *testing.T) {
	ctx := t.Context()
	srv := s3test.Start(t)
	z := txt{"_pdvault.data.alice.example": "vault=alice.vaults.example"}
	a := newDomainHost(t, newStore(t, srv, "a", 6*time.Second, nil), z)
	b := newDomainHost(t, newStore(t, srv, "b", 6*time.Second, nil), z)
	hd, err := a.Create(ctx, "alice", []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	hd.Release()
	if b.KnowsDomain(ctx, "data.alice.example") {
		t.Fatal("host b vouches for a domain alice has not chosen")
	}
	if _, err := a.SetDomain(ctx, "alice", "data.alice.example"); err != nil {
		t.Fatal(err)
	}
	b2 := newDomainHost(t, newStore(t, srv, "b", 6*time.Second, nil), z) // nothing cached
	if !b2.KnowsDomain(ctx, "data.alice.example") {
		t.Fatal("host b does not vouch for the domain alice chose on host a")
	}
	if _, err := b2.Acquire(ctx, "alice"); policy.CodeOf(err) != "vault_elsewhere" {
		t.Fatalf("vouching claimed the vault, or host a lost it: %v", err)
	}
	routes, err := b2.Routes(ctx)
	if err != nil || len(routes) != 1 || routes[0] != (host.DomainPair{Domain: "data.alice.example", Name: "alice.vaults.example"}) {
		t.Fatalf("routes from host b: %+v %v", routes, err)
	}
	if err := a.Delete(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if pairs, err := newStore(t, srv, "c", 6*time.Second, nil).Domains(ctx); err != nil || len(pairs) != 0 {
		t.Fatalf("the shared book after alice's erasure: %+v %v", pairs, err)
	}
}
