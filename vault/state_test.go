package vault

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault/internal/crypt"
)

// An attacker who can write the vault's file but does not know the
// passphrase. Each test below is one of the attacks the review
// demonstrated against schema 5; each failed before row authentication.

// sqlExec runs SQL on the vault's file behind its back.
func sqlExec(t *testing.T, v *Vault, q string, args ...any) {
	t.Helper()
	if _, err := v.db.w.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func wantTampered(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrTampered) {
		t.Fatalf("want a tampered error, got %v", err)
	}
}

// Inserting an approved request (with relationship and key rows) for the
// attacker's own key used to make the vault mint a real grant.
func TestForgedApprovedRequestMintsNothing(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	mallory := newOrg(t)
	jwk, _ := (&jose.JSONWebKey{Key: mallory.priv.Public()}).MarshalJSON()
	now := v.opts.Now().Unix()
	details := `[{"type":"pdvault_records","collection":"profile","fields":["name","email"]}]`
	sqlExec(t, v, `INSERT INTO relationships (id, name, uri, first_seen, last_seen) VALUES (?, 'Mallory', 'https://m.example', ?, ?)`, mallory.jkt, now, now)
	sqlExec(t, v, `INSERT INTO relationship_keys (client_id, relationship_id, jwk, added) VALUES (?, ?, ?, ?)`, mallory.jkt, mallory.jkt, string(jwk), now)
	sqlExec(t, v, `INSERT INTO requests (id, client_id, jwk, client_name, client_uri, callback_uri, purpose, purpose_text, details, duration,
		terms_hash, jti, signed, status, created, expires, poll_interval, decided, granted_details, granted_duration)
		VALUES ('forgedforgedforgedforged2a', ?, ?, 'Mallory', 'https://m.example', '', 'service_delivery', '', ?, 3600, ?, 'x', 'x', 'approved', ?, ?, 5, ?, ?, 3600)`,
		mallory.jkt, string(jwk), details, v.CurrentTerms().Hash, now, now+3600, now, details)
	p, hc := mallory.proof(t, v, "POST", "/v1/token", "")
	_, err := v.CollectGrant(ctx, "forgedforgedforgedforged2a", p, hc)
	wantTampered(t, err)
	var n int
	v.db.r.QueryRow(`SELECT count(*) FROM grants`).Scan(&n)
	if n != 0 {
		t.Fatalf("%d grants minted", n)
	}
	// The owner's views refuse rather than show a forged request, and
	// verification names the rows.
	_, err = v.ListRequests(ctx, "", PageQuery{})
	wantTampered(t, err)
	wantProblem(t, v, 0, "requests forgedforgedforgedforged2a failed its integrity check")
	wantProblem(t, v, 0, "relationship_keys "+mallory.jkt+" failed")
}

// Setting a revoked grant's revoked back to NULL used to re-enable it.
func TestUnrevokeByEditIsRefused(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada","email":"ada@example.org"}`))
	o := newOrg(t)
	tok := o.grant(t, v, Approval{})
	if _, err := o.read(t, v, tok.AccessToken, "profile"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Revoke(ctx, tok.GrantID); err != nil {
		t.Fatal(err)
	}
	sqlExec(t, v, `UPDATE grants SET revoked = NULL, ended_by = NULL WHERE id = ?`, tok.GrantID)
	_, err := o.read(t, v, tok.AccessToken, "profile")
	wantTampered(t, err)
	p, hc := o.proof(t, v, "POST", "/v1/introspect", "")
	_, err = v.Introspect(ctx, tok.AccessToken, "", p, hc)
	wantTampered(t, err)
	_, err = v.GetGrant(ctx, tok.GrantID)
	wantTampered(t, err)
	wantProblem(t, v, 0, "grants "+tok.GrantID+" failed its integrity check")
	wantProblem(t, v, 0, "was refused since the vault was opened")
}

// A grant row put back whole, MAC and all, as it was before its
// revocation passes its MAC: that is a rollback, and the log catches it.
func TestRolledBackGrantRowIsCaughtByTheLog(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	o := newOrg(t)
	tok := o.grant(t, v, Approval{})
	var mac []byte
	v.db.r.QueryRow(`SELECT mac FROM grants WHERE id = ?`, tok.GrantID).Scan(&mac)
	if _, err := v.Revoke(ctx, tok.GrantID); err != nil {
		t.Fatal(err)
	}
	sqlExec(t, v, `UPDATE grants SET revoked = NULL, ended_by = NULL, mac = ? WHERE id = ?`, mac, tok.GrantID)
	wantProblem(t, v, 0, "the log says grant "+tok.GrantID+" ended, but its row says it is live")
}

// A request row put back as "approved" after its grant was collected
// (again a rollback) mints no second grant.
func TestRolledBackRequestMintsNoSecondGrant(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	o := newOrg(t)
	tk, err := v.SubmitRequest(ctx, o.request(t, v, nil), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Approve(ctx, tk.RequestID, Approval{}); err != nil {
		t.Fatal(err)
	}
	var status string
	var mac []byte
	v.db.r.QueryRow(`SELECT status, mac FROM requests WHERE id = ?`, tk.RequestID).Scan(&status, &mac)
	p, hc := o.proof(t, v, "POST", "/v1/token", "")
	if _, err := v.CollectGrant(ctx, tk.RequestID, p, hc); err != nil {
		t.Fatal(err)
	}
	sqlExec(t, v, `UPDATE requests SET status = ?, grant_id = NULL, mac = ? WHERE id = ?`, status, mac, tk.RequestID)
	p, hc = o.proof(t, v, "POST", "/v1/token", "")
	_, err = v.CollectGrant(ctx, tk.RequestID, p, hc)
	wantTampered(t, err)
}

// A public key of the attacker's put in as a retired signing key used to
// verify forged grants and checkpoints and could reach the JWKS. Keys are
// now opened from their sealed seed, retired or not.
func TestForgedRetiredSigningKey(t *testing.T) {
	v, dir, c := newTestVault(t)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	kid := kidOf(pub)
	sqlExec(t, v, `INSERT INTO signing_keys (kid, public, sealed, created, retired) VALUES (?, ?, x'00', 1, 2)`, kid, []byte(pub))
	// While the vault runs, the row changes nothing: a grant signed with
	// it does not verify.
	forged, err := policy.SignGrant(&vaultSigner{kid: kid, priv: priv}, policy.GrantClaims{Issuer: v.Issuer(), Audience: v.Issuer(),
		Subject: "x", ClientID: "x", ID: newID(), IssuedAt: c.Now().Unix(), NotBefore: c.Now().Unix(), Expiry: c.Now().Add(time.Hour).Unix(),
		Confirmation: policy.Confirmation{JKT: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.verifyGrant(forged); err == nil {
		t.Fatal("a grant signed by a key put in the file verified")
	}
	for _, k := range v.JWKS().Keys {
		if k.KeyID == kid {
			t.Fatal("the forged key is in the JWKS")
		}
	}
	v.Close()
	// On the next unlock the forged row is refused, and with it the vault.
	_, err = Open(t.Context(), dir, []byte(testPass), Options{Now: c.Now})
	wantTampered(t, err)
	// Even with a MAC from elsewhere (a real row's), it is still refused.
}

// Record times were outside the AEAD.
func TestRecordTimesAreAuthenticated(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	r, _ := v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada"}`))
	for _, col := range []string{"created", "updated"} {
		sqlExec(t, v, `UPDATE records SET `+col+` = `+col+` - 86400 WHERE id = ?`, r.ID)
		_, err := v.GetRecord(ctx, "profile", r.ID)
		wantTampered(t, err)
		sqlExec(t, v, `UPDATE records SET `+col+` = `+col+` + 86400 WHERE id = ?`, r.ID)
		if _, err := v.GetRecord(ctx, "profile", r.ID); err != nil {
			t.Fatalf("restored %s: %v", col, err)
		}
	}
}

// A write never launders a tampered row: revoking a grant whose scope was
// widened by an edit fails instead of re-authenticating the edit.
func TestWritesDoNotLaunderTamperedRows(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	o := newOrg(t)
	tok := o.grant(t, v, Approval{})
	sqlExec(t, v, `UPDATE grants SET details = '[{"type":"pdvault_records","collection":"health","fields":["*"]}]' WHERE id = ?`, tok.GrantID)
	_, err := v.Revoke(ctx, tok.GrantID)
	wantTampered(t, err)
	var details string
	v.db.r.QueryRow(`SELECT details FROM grants WHERE id = ?`, tok.GrantID).Scan(&details)
	if _, err := v.GetGrant(ctx, tok.GrantID); !errors.Is(err, ErrTampered) || !strings.Contains(details, "health") {
		t.Fatalf("the edit was re-authenticated: %v", err)
	}
}

// Every authenticated table: one changed column of one row is found by
// verification, and a row copied under another key is too.
func TestEveryAuthenticatedRowIsChecked(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada","email":"ada@example.org"}`))
	populate(t, v)
	if rep, err := v.VerifyAudit(ctx); err != nil || !rep.OK {
		t.Fatalf("clean vault: %+v %v", rep, err)
	}
	for _, tb := range authTables {
		t.Run(tb.name, func(t *testing.T) {
			var key any
			if err := v.db.r.QueryRow(`SELECT ` + tb.key + ` FROM ` + tb.name + ` LIMIT 1`).Scan(&key); err != nil {
				t.Fatalf("no row to tamper with: %v", err)
			}
			// The last column is as good as any (meta's last is a foreign
			// key; its created time will do); a NULL becomes a value.
			col := tb.cols[len(tb.cols)-1]
			if tb == tMeta {
				col = "created"
			}
			var old any
			v.db.r.QueryRow(`SELECT `+col+` FROM `+tb.name+` WHERE `+tb.key+` = ?`, key).Scan(&old)
			sqlExec(t, v, `UPDATE `+tb.name+` SET `+col+` = CASE WHEN `+col+` IS NULL THEN 1 WHEN typeof(`+col+`) = 'integer' THEN `+col+` + 1 ELSE `+col+` || 'x' END WHERE `+tb.key+` = ?`, key)
			wantProblem(t, v, 0, tb.name+" ")
			sqlExec(t, v, `UPDATE `+tb.name+` SET `+col+` = ? WHERE `+tb.key+` = ?`, old, key)
			if rep, _ := v.VerifyAudit(ctx); !rep.OK {
				t.Fatalf("restored row still reported: %+v", rep.Problems)
			}
		})
	}
}

// populate gives every authenticated table at least one row.
func populate(t *testing.T, v *Vault) {
	t.Helper()
	ctx := t.Context()
	if _, err := v.AddDocument(ctx, strings.NewReader("a letter"), DocumentInput{Title: "Letter"}); err != nil {
		t.Fatal(err)
	}
	// A custom domain (the domain row), as a host that serves them sets.
	v.opts.DomainIssuer = func(d string) string { return "https://" + d }
	if _, err := v.SetDomain(ctx, "data.ada.example"); err != nil {
		t.Fatal(err)
	}
	o := newOrg(t)
	tok := o.grant(t, v, Approval{})
	if _, err := o.read(t, v, tok.AccessToken, "profile"); err != nil {
		t.Fatal(err)
	}
	// An IEEE 7012 exchange: the owner proffers an agreement, the
	// organization accepts it (an agreements row).
	terms := v.CurrentTerms().Terms
	terms.Agreements = []policy.AgreementRef{{ID: "SD-BASE", URL: "https://customercommons.org/SD-BASE", SHA256: strings.Repeat("0a", 32)}}
	tb, _ := json.Marshal(terms)
	if _, err := v.SetTerms(ctx, tb); err != nil {
		t.Fatal(err)
	}
	tk, err := v.SubmitRequest(ctx, o.request(t, v, func(c *policy.RequestClaims) {
		c.CallbackURI = "https://acme.example/cb"
		c.MyTerms = &policy.MyTermsAnswer{Response: policy.MyTermsAccept, Agreement: &terms.Agreements[0]}
	}), "")
	if err != nil {
		t.Fatal(err)
	}
	if tk.AgreementRecord == "" {
		t.Fatal("no agreement record")
	}
	v.Approve(ctx, tk.RequestID, Approval{})
	p, hc := o.proof(t, v, "POST", "/v1/token", "")
	tok2, err := v.CollectGrant(ctx, tk.RequestID, p, hc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Revoke(ctx, tok2.GrantID); err != nil {
		t.Fatal(err)
	}
	rc := o.sign(t, policy.TypReceipt, policy.ReceiptClaims{Audience: v.Issuer(), GrantID: tok2.GrantID, Deleted: []string{"profile"},
		DeletedAt: v.opts.Now().Unix(), IssuedAt: v.opts.Now().Unix(), ID: newID()})
	if _, err := v.SubmitReceipt(ctx, rc); err != nil {
		t.Fatal(err)
	}
	if _, err := v.PublishIntent(ctx, policy.IntentInput{Title: "Looking for: a bike"}); err != nil {
		t.Fatal(err)
	}
	oi, _ := v.OwnerIntents(ctx)
	offer := o.sign(t, policy.TypOffer, policy.OfferClaims{RequestClaims: policy.RequestClaims{ClientName: "Acme", ClientURI: "https://acme.example",
		Purpose: "service_delivery", AuthorizationDetails: []policy.AuthorizationDetail{{Type: policy.DetailType, Collection: "profile", Fields: []string{"name"}}},
		Duration: 3600, TermsHash: v.CurrentTerms().Hash, IssuedAt: v.opts.Now().Unix(), ID: newID(), Audience: v.Issuer()},
		IntentID: oi[0].ID, Offer: "a bike"})
	if _, err := v.SubmitOffer(ctx, oi[0].ID, offer, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.RotateKeys(ctx, true, true); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Login(ctx, []byte(testPass), LoginSource{Address: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	// The shutdown mark exists only between a Close and the next Open.
	if err := v.saveReplay(ctx); err != nil {
		t.Fatal(err)
	}
	_ = tok
}

// The table specs name exactly the columns the schema has (plus mac): a
// migration that adds a column must add it to the MAC too.
func TestTableSpecsMatchSchema(t *testing.T) {
	v, _, _ := newTestVault(t)
	for _, tb := range authTables {
		cols, err := columnNames(t.Context(), v.db.r, tb.name)
		if err != nil {
			t.Fatal(err)
		}
		// The MAC's order is the spec's; the table's physical order may
		// differ (a column added later comes after mac).
		want := append(slices.Clone(tb.cols), "mac")
		slices.Sort(cols)
		slices.Sort(want)
		if !slices.Equal(cols, want) {
			t.Errorf("%s: schema %v, spec %v", tb.name, cols, want)
		}
	}
}

// A vault written by schema 5 (vault/testdata/schema5, made by the
// release before row authentication; see its README) upgrades in place:
// everything reads as before, its grants still work, its revoked grant
// stays revoked, and from then on its rows are authenticated.
func TestSchema5VaultUpgrades(t *testing.T) {
	src := filepath.Join("testdata", "schema5")
	var m struct {
		Passphrase     string            `json:"passphrase"`
		Now            int64             `json:"now"`
		Records        map[string]string `json:"records"`
		OrgSeed        string            `json:"org_seed"`
		LiveGrant      string            `json:"live_grant"`
		LiveGrantID    string            `json:"live_grant_id"`
		RevokedGrant   string            `json:"revoked_grant"`
		RevokedGrantID string            `json:"revoked_grant_id"`
		Pending        string            `json:"pending_request"`
		Intent         string            `json:"intent"`
		AuditEntries   int64             `json:"audit_entries"`
	}
	b, err := os.ReadFile(filepath.Join(src, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	db, _ := os.ReadFile(filepath.Join(src, "vault.db"))
	if err := os.WriteFile(filepath.Join(dir, DBFile), db, 0o600); err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Unix(m.Now, 0).Add(time.Minute)}
	ctx := t.Context()
	v, err := Open(ctx, dir, []byte(m.Passphrase), Options{Now: c.Now})
	if err != nil {
		t.Fatalf("open schema 5: %v", err)
	}
	defer v.Close()
	if ver, _ := v.db.version(ctx); ver != schemaVersion {
		t.Fatalf("schema %d", ver)
	}
	want := map[string]string{"profile": `"Alex B."`, "health": `72`, "transactions": `"12.50"`}
	for coll, id := range m.Records {
		r, err := v.GetRecord(ctx, coll, id)
		if err != nil || !strings.Contains(string(r.Data), want[coll]) {
			t.Fatalf("%s %s: %s %v", coll, id, r.Data, err)
		}
	}
	seed, _ := hex.DecodeString(m.OrgSeed)
	priv := ed25519.NewKeyFromSeed(seed)
	jkt, _ := policy.Thumbprint(&jose.JSONWebKey{Key: priv.Public()})
	o := org{priv: priv, jkt: jkt}
	page, err := o.read(t, v, m.LiveGrant, "profile")
	if err != nil || len(page.Records) != 1 {
		t.Fatalf("read with a grant signed by the now retired key: %+v %v", page, err)
	}
	if _, err := o.read(t, v, m.RevokedGrant, "profile"); !errors.Is(err, policy.ErrGrantRevoked) {
		t.Fatalf("revoked grant: %v", err)
	}
	if r, err := v.GetRequest(ctx, m.Pending); err != nil || r.Status != StatusPending {
		t.Fatalf("pending request: %+v %v", r, err)
	}
	if _, err := v.Approve(ctx, m.Pending, Approval{}); err != nil {
		t.Fatal(err)
	}
	if rp, err := v.ListRelationships(ctx, PageQuery{}); err != nil || len(rp.Relationships) != 1 || len(rp.Relationships[0].Grants) != 2 || len(rp.Relationships[0].Requests) != 4 {
		t.Fatalf("relationships: %+v %v", rp, err)
	}
	if _, err := v.GetIntent(ctx, m.Intent); err != nil {
		t.Fatal(err)
	}
	rep, err := v.VerifyAudit(ctx)
	if err != nil || !rep.OK || rep.Entries <= m.AuditEntries {
		t.Fatalf("audit after upgrade: %+v %v", rep, err)
	}
	// From now on the rows are authenticated.
	sqlExec(t, v, `UPDATE grants SET revoked = NULL WHERE id = ?`, m.RevokedGrantID)
	_, err = o.read(t, v, m.RevokedGrant, "profile")
	wantTampered(t, err)
}

// After Close no key is derived from the wiped master key and the signing
// key signs nothing.
func TestClosedVaultDerivesNothing(t *testing.T) {
	v, _, _ := newTestVault(t)
	s := v.signer()
	v.Close()
	if _, err := v.wrapKey(crypt.SigningKeyWrap); !errors.Is(err, ErrLocked) {
		t.Fatalf("secret key after close: %v", err)
	}
	if _, err := s.SignPayload([]byte("x"), jose.EdDSA); !errors.Is(err, ErrLocked) {
		t.Fatalf("signing after close: %v", err)
	}
}

// Requests may not take the jti prefix of requests made from offers (a
// collision used to make accepting the offer fail with a 500 forever).
func TestReservedJTIPrefix(t *testing.T) {
	v, _, _ := newTestVault(t)
	o := newOrg(t)
	_, err := v.SubmitRequest(t.Context(), o.request(t, v, func(c *policy.RequestClaims) { c.ID = "offer:" + newID() }), "")
	if !errors.Is(err, policy.ErrInvalidRequestObject) {
		t.Fatalf("got %v", err)
	}
	var pe *policy.Error
	if !errors.As(err, &pe) || len(pe.Reasons) != 1 || !strings.Contains(pe.Reasons[0], "reserved") {
		t.Fatalf("reasons: %+v", pe)
	}
}

// One organization links at most MaxKeysPerRelationship keys: each key is
// a row every relationship view reads (33,000 of them once made every view
// fail).
func TestKeysPerRelationshipCapped(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	o := newOrg(t)
	o.grant(t, v, Approval{})
	for i := 1; ; i++ {
		next := newOrg(t)
		st := o.sign(t, policy.TypKeyLink, policy.KeyLinkClaims{Audience: v.Issuer(), NewKey: next.jkt, IssuedAt: v.opts.Now().Unix(), ID: newID()})
		p, hc := next.proof(t, v, "POST", "/v1/keys", "")
		_, err := v.LinkKey(ctx, st, p, hc)
		if i < MaxKeysPerRelationship {
			if err != nil {
				t.Fatalf("key %d: %v", i+1, err)
			}
			continue
		}
		if !errors.Is(err, ErrTooManyKeys) {
			t.Fatalf("key %d: got %v, want ErrTooManyKeys", i+1, err)
		}
		break
	}
	rel, err := v.GetRelationship(ctx, o.jkt)
	if err != nil || len(rel.Keys) != MaxKeysPerRelationship {
		t.Fatalf("%d keys, %v", len(rel.Keys), err)
	}
}

// Notices carry a recent signed tree head for the organization to keep.
func TestNoticesCarryATreeHead(t *testing.T) {
	v, _, _ := newTestVault(t)
	populate(t, v)
	var signed string
	if err := v.db.r.QueryRow(`SELECT signed FROM notices LIMIT 1`).Scan(&signed); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(signed, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c policy.NoticeClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	th, err := policy.OpenTreeHead(c.AuditTreeHead, v.id, v.publicKeys())
	if err != nil || th.Size < 1 {
		t.Fatalf("notice's tree head: %+v %v", th, err)
	}
}

// After the upgrade, every stored secret is under the v2 wrapping key of
// its kind (no longer the one legacy key for all), and record key 1 is
// stored like the others.
func TestSecretsRekeyedOnUpgrade(t *testing.T) {
	dir := t.TempDir()
	db, _ := os.ReadFile(filepath.Join("testdata", "schema5", "vault.db"))
	os.WriteFile(filepath.Join(dir, DBFile), db, 0o600)
	v, err := Open(t.Context(), dir, []byte(testPass), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	legacy := crypt.DeriveLegacy(v.master, v.id, labelSecretKey, 0)
	signWrap, _ := v.wrapKey(crypt.SigningKeyWrap)
	recWrap, _ := v.wrapKey(crypt.RecordKeyWrap)
	rows, _ := v.db.r.Query(`SELECT kid, sealed FROM signing_keys`)
	n := 0
	for rows.Next() {
		var kid string
		var sealed []byte
		rows.Scan(&kid, &sealed)
		if _, err := crypt.Open(signWrap, sealed, signingKeyAAD(v.id, kid)); err != nil {
			t.Errorf("signing key %s not under the v2 key", kid)
		}
		if _, err := crypt.Open(legacy, sealed, crypt.AAD(labelSigningKeyAAD, []byte(v.id), []byte(kid))); err == nil {
			t.Errorf("signing key %s still opens under the legacy key", kid)
		}
		n++
	}
	rows.Close()
	var ids []int64
	rows, _ = v.db.r.Query(`SELECT id, sealed FROM record_keys ORDER BY id`)
	for rows.Next() {
		var id int64
		var sealed []byte
		rows.Scan(&id, &sealed)
		if _, err := crypt.Open(recWrap, sealed, recordKeyWrapAAD(v.id, uint32(id))); err != nil {
			t.Errorf("record key %d not under the v2 key", id)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if n != 2 || len(ids) != 2 || ids[0] != 1 || ids[1] != 2 {
		t.Fatalf("%d signing keys, record keys %v", n, ids)
	}
}
