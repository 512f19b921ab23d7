package replica

import (
	"bytes"
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
	return newHostWith(t, host.Options{Placement: s, Domain: "vaults.example", Resolver: z,
		Vault: vault.Options{DomainIssuer: func(d string) string { return "https://" + d }}})
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

// A handover as large as a keeper makes (1,000 sessions and 1,000
// throttled sources: ~220 KB of JSON) goes through the store intact; a
// bound of 4 KiB used to drop it, and the vault arrived sealed.
func TestLargeHandover(t *testing.T) {
	ctx := t.Context()
	srv := s3test.Start(t)
	s := newStore(t, srv, "a", 6*time.Second, testKey)
	state := bytes.Repeat([]byte("s"), 300<<10)
	if err := s.putHandover(ctx, "alice", 7, state); err != nil {
		t.Fatal(err)
	}
	if got := s.takeHandover(ctx, "alice", 7); !bytes.Equal(got, state) {
		t.Fatalf("a %d-byte handover came back as %d bytes", len(state), len(got))
	}
	if got := s.takeHandover(ctx, "alice", 7); got != nil {
		t.Fatal("a handover was taken twice")
	}
}

// A guesser at a sealed vault gains nothing when the vault moves: the
// host releasing it hands its login throttle to the next (TestThrottle-
// MovesWithTheVault in package vault has the keeper's side).
func TestSealedVaultMovesWithItsThrottle(t *testing.T) {
	ctx := t.Context()
	srv := s3test.Start(t)
	a := newHost(t, newStore(t, srv, "host-a", 6*time.Second, testKey))
	hd, err := a.Create(ctx, "alice", []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	hd.Release()
	a.Seal("alice")
	guesser := vault.LoginSource{Address: "198.51.100.7"}
	throttled := false
	for range 10 {
		_, err := a.Unseal(ctx, "alice", []byte("not the passphrase"), guesser)
		if policy.CodeOf(err) == "slow_down" {
			throttled = true
			break
		}
		if policy.CodeOf(err) != "invalid_passphrase" {
			t.Fatalf("a wrong passphrase at host A: %v", err)
		}
	}
	if !throttled {
		t.Fatal("host A never throttled the guesser")
	}
	if ok, err := a.Release(ctx, "alice"); err != nil || !ok {
		t.Fatalf("release: %v %v", ok, err)
	}
	b := newHost(t, newStore(t, srv, "host-b", 6*time.Second, testKey))
	_, err = b.Unseal(ctx, "alice", []byte("not the passphrase either"), guesser)
	if policy.CodeOf(err) != "slow_down" {
		t.Fatalf("the guesser at host B after the move: %v, want slow_down", err)
	}
	// The owner, from elsewhere, is not held up by the guesser.
	if _, err := b.Unseal(ctx, "alice", []byte(pass), vault.LoginSource{Address: "192.0.2.1"}); err != nil {
		t.Fatalf("the owner at host B: %v", err)
	}
}
