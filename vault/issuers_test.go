package vault

import (
	"database/sql"
	"errors"
	"testing"

	"github.com/pdvault/pdvault/policy"
)

// A grant signed by the vault's own key is accepted under another issuer
// only if the vault recorded that issuer as one it signed grants under,
// with the grant naming it as audience too; a row added to the table by
// editing the file does not count.
func TestFormerIssuers(t *testing.T) {
	v, _, c := newTestVault(t)
	ctx := t.Context()
	v.SetIssuer("https://new.example")
	grant := func(iss, aud string) string {
		now := c.Now().Unix()
		tok, _, err := v.signGrant(policy.GrantClaims{Issuer: iss, Subject: "s", Audience: aud, ClientID: "client", ID: "g" + iss + aud,
			IssuedAt: now, NotBefore: now, Expiry: now + 3600, Confirmation: policy.Confirmation{JKT: "client"},
			AuthorizationDetails: []policy.AuthorizationDetail{{Type: policy.DetailType, Collection: "profile"}}, TermsHash: "h"})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if _, err := v.verifyGrant(grant("https://new.example", "https://new.example")); err != nil {
		t.Fatalf("a grant under the present issuer: %v", err)
	}
	if _, err := v.verifyGrant(grant("https://old.example", "https://old.example")); !errors.Is(err, policy.ErrGrantIssuer) {
		t.Fatalf("a grant under an issuer never recorded: %v, want ErrGrantIssuer", err)
	}
	// A row slipped into the file without its MAC is no record.
	if _, err := v.db.w.Exec(`INSERT INTO issuers (url, first_used) VALUES ('https://forged.example', 1)`); err != nil {
		t.Fatal(err)
	}
	if _, err := v.verifyGrant(grant("https://forged.example", "https://forged.example")); !errors.Is(err, policy.ErrGrantIssuer) {
		t.Fatalf("a grant under a forged issuer row: %v, want ErrGrantIssuer", err)
	}
	if err := v.db.tx(ctx, func(tx *sql.Tx) error { return v.recordIssuer(ctx, tx, "https://old.example", c.Now().Unix()) }); err != nil {
		t.Fatal(err)
	}
	if _, err := v.verifyGrant(grant("https://old.example", "https://old.example")); err != nil {
		t.Fatalf("a grant under a recorded former issuer: %v", err)
	}
	if _, err := v.verifyGrant(grant("https://old.example", "https://new.example")); !errors.Is(err, policy.ErrGrantAudience) {
		t.Fatalf("a former issuer's grant for another audience: %v, want ErrGrantAudience", err)
	}
	// Reopened, the record is read back (and checked) from the database.
	dir := v.dir
	v.Close()
	v2, err := Open(ctx, dir, []byte(testPass), Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	v2.SetIssuer("https://newer.example")
	v = v2
	if _, err := v2.verifyGrant(grant("https://old.example", "https://old.example")); err != nil {
		t.Fatalf("after reopening: %v", err)
	}
	// The issuer before this one issued no grant through the exchange
	// (these were signed directly), so it was never recorded.
	if _, err := v2.verifyGrant(grant("https://new.example", "https://new.example")); !errors.Is(err, policy.ErrGrantIssuer) {
		t.Fatalf("an issuer never used for a grant: %v, want ErrGrantIssuer", err)
	}
}
