package api

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

// Organizations are witnesses of the audit log: responses carry a signed
// tree head and the read's own entry, the client proves its entries are in
// the log and holds every new head against the one it kept.
func TestOrganizationsWitnessTheLog(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.record("profile", `{"name":"Ada","email":"ada@example.org"}`)
	a := e.org("EdDSA")
	tok := e.grantFor(a, askProfile("name"), vault.Approval{})
	if a.LastTreeHead() == "" {
		t.Fatal("the token response carried no tree head")
	}
	if _, err := a.ReadCollection(ctx, tok.AccessToken, "profile", 0, ""); err != nil {
		t.Fatal(err)
	}
	seq := a.LastAuditSeq()
	if seq == 0 {
		t.Fatal("the read's entry was not named")
	}
	store := client.AnchorStore{Dir: t.TempDir()}
	first, err := a.CheckLog(ctx, store)
	if err != nil || first.Size < seq {
		t.Fatalf("first check: %+v %v", first, err)
	}
	// Its own read, proven in the log.
	pe, err := a.ProveEntry(ctx, seq)
	if err != nil || !strings.Contains(pe.Entry, `"event":"data.read"`) || !strings.Contains(pe.Entry, a.Key().Thumbprint()) {
		t.Fatalf("prove own read: %+v %v", pe, err)
	}
	// Another organization's entry looks like none; so does one out of range.
	b := e.org("ES256")
	e.grantFor(b, askProfile("name"), vault.Approval{})
	_, err = b.ProveEntry(ctx, seq)
	wantCode(t, err, "not_found")
	_, err = a.ProveEntry(ctx, 1<<40)
	wantCode(t, err, "not_found")
	// A stranger with no relationship learns nothing either.
	_, err = e.org("EdDSA").ProveEntry(ctx, seq)
	wantCode(t, err, "unknown_organization")

	for range 5 {
		if _, err := a.ReadCollection(ctx, tok.AccessToken, "profile", 0, ""); err != nil {
			t.Fatal(err)
		}
	}
	second, err := a.CheckLog(ctx, store)
	if err != nil || second.Size <= first.Size {
		t.Fatalf("second check: %+v %v", second, err)
	}
	// Bad proof requests.
	res, _ := http.Get(e.srv.URL + "/v1/audit/consistency?from=x")
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("from=x: %d", res.StatusCode)
	}
	res, _ = http.Get(e.srv.URL + "/v1/audit/proof?seq=1")
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("proof without DPoP: %d", res.StatusCode)
	}
}

// swappable serves whichever vault it holds, as a host that swapped the
// vault's file behind the same URL would.
type swappable struct{ h atomic.Pointer[http.Handler] }

func (s *swappable) ServeHTTP(w http.ResponseWriter, r *http.Request) { (*s.h.Load()).ServeHTTP(w, r) }

func (s *swappable) serve(v *vault.Vault) {
	var h http.Handler = New(v, Config{RatePerAddress: -1})
	s.h.Store(&h)
}

// openCopy opens a copy of a backup file as a vault of its own.
func openCopy(t *testing.T, backup string) *vault.Vault {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, vault.DBFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := vault.Open(t.Context(), dir, []byte(testPass), vault.Options{RatePerOrg: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// The whole vault file put back as an older copy is consistent in itself;
// the organization's kept head catches it. And a vault that shows two
// organizations two different histories (a fork) is caught when they
// compare the heads they kept.
func TestWitnessesCatchRollbackAndFork(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "v")
	v1, err := vault.Create(ctx, dir, []byte(testPass), vault.Options{RatePerOrg: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v1.Close() })
	var sw swappable
	sw.serve(v1)
	srv := httptest.NewServer(&sw)
	t.Cleanup(srv.Close)
	v1.SetIssuer(srv.URL)
	e := &testEnv{t: t, v: v1, srv: srv}
	e.record("profile", `{"name":"Ada"}`)
	a := e.org("EdDSA")
	tok := e.grantFor(a, askProfile("name"), vault.Approval{})
	old := filepath.Join(t.TempDir(), "old.db")
	if _, err := vault.Backup(ctx, dir, old); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if _, err := a.ReadCollection(ctx, tok.AccessToken, "profile", 0, ""); err != nil {
			t.Fatal(err)
		}
	}
	storeA := client.AnchorStore{Dir: t.TempDir()}
	if _, err := a.CheckLog(ctx, storeA); err != nil {
		t.Fatal(err)
	}

	// Rollback: the older copy, served at the same URL.
	v2 := openCopy(t, old)
	v2.SetIssuer(srv.URL)
	sw.serve(v2)
	if _, err := a.CheckLog(ctx, storeA); !errors.Is(err, policy.ErrLogRolledBack) {
		t.Fatalf("rolled-back vault: %v", err)
	}

	// Fork: the copy grows another history for organization B while A
	// keeps being shown the original, which grows past it.
	b := &testEnv{t: t, v: v2, srv: srv}
	bo := b.org("ES256")
	btok := b.grantFor(bo, askProfile("name"), vault.Approval{})
	for range 3 {
		if _, err := bo.ReadCollection(ctx, btok.AccessToken, "profile", 0, ""); err != nil {
			t.Fatal(err)
		}
	}
	anchorB, err := bo.CheckLog(ctx, client.AnchorStore{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	sw.serve(v1) // A's view again
	for range 12 {
		if _, err := a.ReadCollection(ctx, tok.AccessToken, "profile", 0, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.CheckLog(ctx, storeA); err != nil {
		t.Fatalf("A's own view is consistent: %v", err)
	}
	// A and B compare the heads they kept: B's, held against the log A
	// is shown, is not a prefix of it.
	headA, err := a.TreeHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Witness(ctx, a, &anchorB, headA); !errors.Is(err, policy.ErrLogForked) {
		t.Fatalf("fork: %v", err)
	}
}
