package vault

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault/internal/crypt"
)

// org is a test organization that signs requests and proofs by hand, so
// the vault is tested without the HTTP client.
type org struct {
	priv ed25519.PrivateKey
	jkt  string
}

func newOrg(t testing.TB) org {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	jkt, err := policy.Thumbprint(&jose.JSONWebKey{Key: priv.Public()})
	if err != nil {
		t.Fatal(err)
	}
	return org{priv: priv, jkt: jkt}
}

func (o org) sign(t testing.TB, typ string, claims any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: o.priv}, (&jose.SignerOptions{EmbedJWK: true}).WithType(jose.ContentType(typ)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	obj, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := obj.CompactSerialize()
	return out
}

func (o org) request(t testing.TB, v *Vault, mod func(*policy.RequestClaims)) string {
	c := policy.RequestClaims{
		ClientName: "Acme", ClientURI: "https://acme.example", Purpose: "service_delivery",
		AuthorizationDetails: []policy.AuthorizationDetail{{Type: policy.DetailType, Collection: "profile", Fields: []string{"name", "email"}}},
		Duration:             3600, TermsHash: v.CurrentTerms().Hash, IssuedAt: v.opts.Now().Unix(), ID: newID(),
	}
	if mod != nil {
		mod(&c)
	}
	return o.sign(t, policy.TypRequest, c)
}

func (o org) proof(t testing.TB, v *Vault, method, path, at string) (string, HTTPContext) {
	c := policy.ProofClaims{ID: newID(), Method: method, URL: v.Issuer() + path, IssuedAt: v.opts.Now().Unix()}
	if at != "" {
		c.AccessToken = policy.ATH(at)
	}
	return o.sign(t, policy.TypProof, c), HTTPContext{Method: method, URL: v.Issuer() + path}
}

// grant runs the exchange up to a collected grant.
func (o org) grant(t testing.TB, v *Vault, a Approval) TokenResponse {
	t.Helper()
	return o.grantFor(t, v, nil, a)
}

// grantFor is grant for a request changed by mod.
func (o org) grantFor(t testing.TB, v *Vault, mod func(*policy.RequestClaims), a Approval) TokenResponse {
	t.Helper()
	ctx := t.Context()
	tk, err := v.SubmitRequest(ctx, o.request(t, v, mod), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Approve(ctx, tk.RequestID, a); err != nil {
		t.Fatal(err)
	}
	p, hc := o.proof(t, v, "POST", "/v1/token", "")
	tok, err := v.CollectGrant(ctx, tk.RequestID, p, hc)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (o org) read(t testing.TB, v *Vault, tok, coll string) (DataPage, error) {
	p, hc := o.proof(t, v, "GET", "/v1/data/"+coll, tok)
	return v.ReadCollection(t.Context(), Access{Grant: tok, Proof: p, HTTP: hc}, coll, 0, "")
}

// populatedLog makes a vault whose audit log has a few hundred entries
// and at least one signed checkpoint.
func populatedLog(t *testing.T) (*Vault, int64) {
	v, _, _ := newTestVault(t)
	v.CreateRecord(t.Context(), "profile", []byte(`{"name":"Ada","email":"a@x"}`))
	o := newOrg(t)
	tok := o.grant(t, v, Approval{})
	for range checkpointEvery + 20 {
		if _, err := o.read(t, v, tok.AccessToken, "profile"); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := v.VerifyAudit(t.Context())
	if err != nil || !rep.OK || rep.Checkpoints != 1 {
		t.Fatalf("fresh log: %+v %v", rep, err)
	}
	return v, rep.Entries
}

func wantProblem(t *testing.T, v *Vault, seq int64, contains string) {
	t.Helper()
	rep, err := v.VerifyAudit(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK {
		t.Fatal("verify found nothing wrong")
	}
	for _, p := range rep.Problems {
		if p.Seq == seq && strings.Contains(p.Problem, contains) {
			return
		}
	}
	t.Fatalf("want a problem at %d mentioning %q, got %+v", seq, contains, rep.Problems)
}

func TestAuditVerifyFindsTampering(t *testing.T) {
	exec := func(t *testing.T, v *Vault, q string, args ...any) {
		t.Helper()
		if _, err := v.db.w.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("edited", func(t *testing.T) {
		v, _ := populatedLog(t)
		exec(t, v, `UPDATE audit SET entry = replace(entry, '"allowed"', '"denied"') WHERE seq = 10`)
		wantProblem(t, v, 10, "does not match its hash")
	})
	t.Run("edited and every hash recomputed", func(t *testing.T) {
		v, n := populatedLog(t)
		exec(t, v, `UPDATE audit SET entry = replace(entry, '"allowed"', '"denied"') WHERE seq = 10`)
		// The attacker rebuilds the leaf hashes and the whole stored tree
		// (the hashing is public) and even the head's values, but cannot
		// MAC the head or re-sign the checkpoint.
		mem, size, err := v.rebuildTree(t.Context(), v.db.r, nil)
		if err != nil || size != n {
			t.Fatal(err)
		}
		rows, _ := v.db.r.Query(`SELECT seq, entry FROM audit`)
		var fix [][2]any
		for rows.Next() {
			var seq int64
			var e []byte
			rows.Scan(&seq, &e)
			h := tlog.RecordHash(e)
			fix = append(fix, [2]any{h[:], seq})
		}
		rows.Close()
		for _, f := range fix {
			exec(t, v, `UPDATE audit SET hash = ? WHERE seq = ?`, f[0], f[1])
		}
		for i, h := range mem {
			exec(t, v, `UPDATE audit_tree SET hash = ? WHERE id = ?`, h[:], i)
		}
		root, _ := tlog.TreeHash(n, mem)
		exec(t, v, `UPDATE audit_head SET root = ?`, root[:])
		wantProblem(t, v, n, "the log head failed its integrity check")
		wantProblem(t, v, checkpointEvery, "no longer matches its signed checkpoint")
	})
	t.Run("deleted in the middle", func(t *testing.T) {
		v, _ := populatedLog(t)
		exec(t, v, `DELETE FROM audit WHERE seq = 7`)
		wantProblem(t, v, 7, "missing or out of order")
	})
	t.Run("reordered", func(t *testing.T) {
		v, _ := populatedLog(t)
		exec(t, v, `UPDATE audit SET seq = -1 WHERE seq = 5`)
		exec(t, v, `UPDATE audit SET seq = 5 WHERE seq = 6`)
		exec(t, v, `UPDATE audit SET seq = 6 WHERE seq = -1`)
		wantProblem(t, v, 5, "does not state its own position")
	})
	t.Run("tail cut", func(t *testing.T) {
		v, n := populatedLog(t)
		exec(t, v, `DELETE FROM audit WHERE seq > ?`, n-3)
		wantProblem(t, v, n-2, "truncated or extended")
	})
	// cutToOldHead cuts the log to 100 entries and puts back the authentic
	// head it had then, as kept from an older copy of the file: its MAC
	// verifies, because it is real.
	cutToOldHead := func(t *testing.T, v *Vault) {
		mem, _, _ := v.rebuildTree(t.Context(), v.db.r, nil)
		root, _ := tlog.TreeHash(100, mem)
		old := newTestStateRow(t, v, tAuditHead, int64(1), int64(100), root[:])
		exec(t, v, `DELETE FROM audit WHERE seq > 100`)
		exec(t, v, `DELETE FROM audit_tree WHERE id >= ?`, tlog.StoredHashIndex(0, 100))
		exec(t, v, `UPDATE audit_head SET size = 100, root = ?, mac = ?`, root[:], old)
	}
	t.Run("tail cut, head put back from an old copy", func(t *testing.T) {
		v, _ := populatedLog(t)
		cutToOldHead(t, v)
		wantProblem(t, v, 101, "a signed checkpoint covers")
	})
	t.Run("tail cut, old head, checkpoints deleted", func(t *testing.T) {
		// Consistent in itself: only a head kept outside the file (the
		// owner's CLI, an organization) catches this; see the anchor tests.
		v, _ := populatedLog(t)
		cutToOldHead(t, v)
		exec(t, v, `DELETE FROM audit_heads`)
		rep, err := v.VerifyAudit(t.Context())
		if err != nil || !rep.OK || rep.Entries != 100 {
			t.Fatalf("within the file this log is consistent: %+v %v", rep, err)
		}
	})
	t.Run("every checkpoint deleted", func(t *testing.T) {
		v, _ := populatedLog(t)
		exec(t, v, `DELETE FROM audit_heads`)
		wantProblem(t, v, checkpointEvery, "checkpoint at 256 is missing")
	})
	t.Run("forged checkpoint", func(t *testing.T) {
		v, _ := populatedLog(t)
		exec(t, v, `UPDATE audit_heads SET note = replace(note, substr(note, -12, 10), 'AAAAAAAAAA')`)
		wantProblem(t, v, checkpointEvery, "bad signature")
	})
	t.Run("stored tree hash edited", func(t *testing.T) {
		v, _ := populatedLog(t)
		exec(t, v, `UPDATE audit_tree SET hash = zeroblob(32) WHERE id = 3`)
		wantProblem(t, v, 3, "stored tree hash 3 does not match")
	})
}

// newTestStateRow computes the MAC the vault would give a row (an
// attacker cannot; a test stands in for "an authentic old row").
func newTestStateRow(t *testing.T, v *Vault, tb *table, vals ...any) []byte {
	t.Helper()
	mac, err := crypt.RowMAC(v.st.key, v.id, tb.name, tb.cols, vals)
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// If the audit entry cannot be written, the decision does not happen.
func TestAuditFailsClosed(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada"}`))
	o := newOrg(t)
	tok := o.grant(t, v, Approval{})
	if _, err := v.db.w.Exec(`CREATE TRIGGER no_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit disk gone'); END`); err != nil {
		t.Fatal(err)
	}
	page, err := o.read(t, v, tok.AccessToken, "profile")
	if err == nil || len(page.Records) != 0 {
		t.Fatalf("read succeeded without an audit entry: %+v", page)
	}
	if policy.KindOf(err) != policy.KindInternal || strings.Contains(policy.CodeOf(err), "audit") {
		t.Fatalf("err = %v", err)
	}
	_, err = v.Revoke(ctx, tok.GrantID)
	if err == nil {
		t.Fatal("revocation succeeded without an audit entry")
	}
	if g, _ := v.GetGrant(ctx, tok.GrantID); g.Status != "active" {
		t.Fatalf("failed revocation changed the grant: %s", g.Status)
	}
	_, err = v.SubmitRequest(ctx, o.request(t, v, nil), "")
	if err == nil {
		t.Fatal("request accepted without an audit entry")
	}
	rp, _ := v.ListRequests(ctx, StatusPending, PageQuery{})
	reqs := rp.Requests
	if len(reqs) != 0 {
		t.Fatalf("request stored without an audit entry: %d", len(reqs))
	}
}

func TestPairwiseSubjects(t *testing.T) {
	v, _, _ := newTestVault(t)
	a, b := newOrg(t), newOrg(t)
	ga1 := a.grant(t, v, Approval{})
	ga2 := a.grant(t, v, Approval{})
	gb := b.grant(t, v, Approval{})
	sub := func(tok string) string {
		c, err := v.verifyGrant(tok)
		if err != nil {
			t.Fatal(err)
		}
		return c.Subject
	}
	if sub(ga1.AccessToken) != sub(ga2.AccessToken) {
		t.Fatal("the same organization sees two subjects")
	}
	if sub(ga1.AccessToken) == sub(gb.AccessToken) {
		t.Fatal("two organizations see the same subject")
	}
}

func TestGrantTimesAndPolling(t *testing.T) {
	v, _, c := newTestVault(t)
	ctx := t.Context()
	v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada"}`))
	o := newOrg(t)

	tk, _ := v.SubmitRequest(ctx, o.request(t, v, nil), "")
	poll := func() error {
		p, hc := o.proof(t, v, "POST", "/v1/token", "")
		_, err := v.CollectGrant(ctx, tk.RequestID, p, hc)
		return err
	}
	wantErr(t, poll(), ErrPending)
	c.Add(time.Second)
	wantErr(t, poll(), ErrSlowDown)
	c.Add(10 * time.Second) // the interval grew to 10s
	wantErr(t, poll(), ErrPending)
	// The owner approves 50 of the 60 minutes asked; the org collects 20
	// minutes later.
	if _, err := v.Approve(ctx, tk.RequestID, Approval{Duration: 3000}); err != nil {
		t.Fatal(err)
	}
	c.Add(20 * time.Minute)
	p, hc := o.proof(t, v, "POST", "/v1/token", "")
	tok, err := v.CollectGrant(ctx, tk.RequestID, p, hc)
	if err != nil {
		t.Fatal(err)
	}
	// The 50 minutes run from the approval.
	if tok.ExpiresIn != 1800 {
		t.Fatalf("expires_in = %d, want 1800", tok.ExpiresIn)
	}
	if _, err := o.read(t, v, tok.AccessToken, "profile"); err != nil {
		t.Fatal(err)
	}
	c.Add(30*time.Minute + policy.ClockSkew + time.Second)
	_, err = o.read(t, v, tok.AccessToken, "profile")
	wantErr(t, err, policy.ErrGrantExpired)

	// A request nobody decides expires.
	tk2, _ := v.SubmitRequest(ctx, o.request(t, v, nil), "")
	c.Add(RequestLifetime)
	p, hc = o.proof(t, v, "POST", "/v1/token", "")
	_, err = v.CollectGrant(ctx, tk2.RequestID, p, hc)
	wantErr(t, err, ErrExpiredToken)
	_, err = v.Approve(ctx, tk2.RequestID, Approval{})
	wantErr(t, err, ErrRequestDecided)
}

func TestRequestFreshness(t *testing.T) {
	v, _, c := newTestVault(t)
	o := newOrg(t)
	old := o.request(t, v, nil)
	c.Add(policy.RequestMaxAge + policy.ClockSkew + time.Second)
	_, err := v.SubmitRequest(t.Context(), old, "")
	wantErr(t, err, policy.ErrRequestExpired)
	future := o.request(t, v, func(r *policy.RequestClaims) { r.IssuedAt += 3600 })
	_, err = v.SubmitRequest(t.Context(), future, "")
	wantErr(t, err, policy.ErrRequestFuture)
}

func TestSigningKeyAndTermsSurviveReopenAndExport(t *testing.T) {
	v, dir, c := newTestVault(t)
	ctx := t.Context()
	o := newOrg(t)
	tok := o.grant(t, v, Approval{})
	kid := v.signer().kid
	hash := v.CurrentTerms().Hash
	v.Close()
	v2, err := Open(ctx, dir, []byte(testPass), Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	if v2.signer().kid != kid || v2.CurrentTerms().Hash != hash {
		t.Fatal("signing key or terms changed across a reopen")
	}
	if _, err := v2.verifyGrant(tok.AccessToken); err != nil {
		t.Fatalf("grant no longer verifies after reopen: %v", err)
	}
	var buf strings.Builder
	if _, err := v2.Export(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	dir3 := t.TempDir() + "/r"
	if _, err := Import(ctx, strings.NewReader(buf.String()), dir3, []byte(testPass), Options{}); err != nil {
		t.Fatal(err)
	}
	v3, err := Open(ctx, dir3, []byte(testPass), Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer v3.Close()
	rep, err := v3.VerifyAudit(ctx)
	if err != nil || !rep.OK || v3.signer().kid != kid {
		t.Fatalf("restored vault: %+v %v", rep, err)
	}
	if _, err := v3.verifyGrant(tok.AccessToken); err != nil {
		t.Fatalf("grant does not verify in the restored vault: %v", err)
	}
}

func TestDeletionDeadline(t *testing.T) {
	v, _, c := newTestVault(t)
	ctx := t.Context()
	o := newOrg(t)
	retention := int64(3600)
	tk, err := v.SubmitRequest(ctx, o.request(t, v, func(r *policy.RequestClaims) { r.Retention = &retention }), "")
	if err != nil {
		t.Fatal(err)
	}
	v.Approve(ctx, tk.RequestID, Approval{})
	p, hc := o.proof(t, v, "POST", "/v1/token", "")
	tok, err := v.CollectGrant(ctx, tk.RequestID, p, hc)
	if err != nil {
		t.Fatal(err)
	}
	state := func() (string, *time.Time) {
		rel, err := v.GetRelationship(ctx, o.jkt)
		if err != nil {
			t.Fatal(err)
		}
		return rel.Deletion, rel.Grants[0].Deadline
	}
	if s, _ := state(); s != policy.DeletionNotDue {
		t.Fatalf("active grant: %s", s)
	}
	// The organization releases the grant (RFC 7009).
	p, hc = o.proof(t, v, "POST", "/v1/revoke", "")
	if err := v.ReleaseGrant(ctx, tok.AccessToken, "", p, hc); err != nil {
		t.Fatal(err)
	}
	released := v.now()
	s, deadline := state()
	if s != policy.DeletionDue || deadline == nil || !deadline.Equal(released.Add(time.Hour)) {
		t.Fatalf("after release: %s %v", s, deadline)
	}
	c.Add(time.Hour + time.Second)
	if s, _ := state(); s != policy.DeletionOverdue {
		t.Fatalf("past the deadline: %s", s)
	}
	receipt := o.sign(t, policy.TypReceipt, policy.ReceiptClaims{GrantID: tok.GrantID, Deleted: []string{"profile"},
		DeletedAt: v.now().Unix(), IssuedAt: v.now().Unix(), ID: newID()})
	if res, err := v.SubmitReceipt(ctx, receipt); err != nil || !res.Complete {
		t.Fatalf("late receipt: %+v %v", res, err)
	}
	if s, _ := state(); s != policy.DeletionReceived {
		t.Fatalf("after the receipt: %s", s)
	}
	// Releasing again, or someone else's grant, does nothing and says nothing.
	p, hc = o.proof(t, v, "POST", "/v1/revoke", "")
	if err := v.ReleaseGrant(ctx, tok.AccessToken, "", p, hc); err != nil {
		t.Fatal(err)
	}
	other := newOrg(t)
	g2 := o.grant(t, v, Approval{})
	p, hc = other.proof(t, v, "POST", "/v1/revoke", "")
	if err := v.ReleaseGrant(ctx, g2.AccessToken, "", p, hc); err != nil {
		t.Fatal(err)
	}
	if g, _ := v.GetGrant(ctx, g2.GrantID); g.Status != "active" {
		t.Fatalf("another organization released a grant: %s", g.Status)
	}
	// An expired grant owes a receipt too: its deadline is exp + retention.
	c.Add(2 * time.Hour)
	rel, _ := v.GetRelationship(ctx, o.jkt)
	if rel.Deletion != policy.DeletionDue {
		t.Fatalf("expired grant: %s", rel.Deletion)
	}
}

func TestOutboundURLPolicy(t *testing.T) {
	for _, tc := range []struct {
		url      string
		loopback bool
		want     *policy.Error
	}{
		{"https://bikes.example/cb", false, nil},
		{"https://93.184.216.34/cb", false, nil},
		{"http://bikes.example/cb", false, policy.ErrOutboundURL},
		{"http://127.0.0.1:8080/cb", false, policy.ErrOutboundURL},
		{"http://127.0.0.1:8080/cb", true, nil},
		{"http://localhost:8080/cb", true, nil},
		{"https://localhost/cb", false, policy.ErrOutboundAddress},
		{"https://10.0.0.1/cb", true, policy.ErrOutboundAddress},
		{"https://172.16.5.4/cb", false, policy.ErrOutboundAddress},
		{"https://169.254.169.254/", false, policy.ErrOutboundAddress},
		{"https://100.64.1.1/", false, policy.ErrOutboundAddress},
		{"https://[fd00::1]/", false, policy.ErrOutboundAddress},
		{"https://[::ffff:10.0.0.1]/", false, policy.ErrOutboundAddress},
		{"https://user:pw@bikes.example/", false, policy.ErrOutboundURL},
		{"ftp://bikes.example/", false, policy.ErrOutboundURL},
		{"http://10.0.0.1/", true, policy.ErrOutboundURL},
	} {
		err := policy.CheckOutboundURL(tc.url, tc.loopback)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("CheckOutboundURL(%s, %v) = %v, want %v", tc.url, tc.loopback, err, tc.want)
		}
	}
}

// A vault written at schema 2 (before relationships) opens, migrates, and
// has a relationship for every organization that had asked.
func TestMigrationBuildsRelationships(t *testing.T) {
	v, dir, c := newTestVault(t)
	ctx := t.Context()
	o := newOrg(t)
	tok := o.grant(t, v, Approval{})
	// A schema-2 vault sealed its signing key under the legacy wrapping key.
	legacy := crypt.DeriveLegacy(v.master, v.id, labelSecretKey, 0)
	wrap, _ := v.wrapKey(crypt.SigningKeyWrap)
	rows, _ := v.db.r.Query(`SELECT kid, sealed FROM signing_keys`)
	type sk struct {
		kid    string
		sealed []byte
	}
	var sks []sk
	for rows.Next() {
		var k sk
		rows.Scan(&k.kid, &k.sealed)
		sks = append(sks, k)
	}
	rows.Close()
	for _, k := range sks {
		seed, err := crypt.Open(wrap, k.sealed, signingKeyAAD(v.id, k.kid))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.db.w.Exec(`UPDATE signing_keys SET sealed = ? WHERE kid = ?`,
			crypt.Seal(legacy, seed, crypt.AAD(labelSigningKeyAAD, []byte(v.id), []byte(k.kid))), k.kid); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		`DROP INDEX records_by_key`, `DROP TABLE record_keys`, `DROP TABLE offers`, `DROP TABLE intents`, `DROP TABLE receipts`, `DROP TABLE notices`, `DROP TABLE relationship_keys`, `DROP TABLE relationships`,
		`DROP INDEX IF EXISTS receipts_by_grant`,
		`ALTER TABLE grants DROP COLUMN retention`, `ALTER TABLE grants DROP COLUMN ended_by`, `DROP INDEX grants_by_request`,
		`ALTER TABLE meta DROP COLUMN mac`, `ALTER TABLE signing_keys DROP COLUMN mac`, `ALTER TABLE terms DROP COLUMN mac`,
		`ALTER TABLE requests DROP COLUMN mac`, `ALTER TABLE grants DROP COLUMN mac`,
		`DROP TABLE audit_tree`, `DROP TABLE audit_heads`, `DROP TABLE audit_head`, `DROP TABLE devices`,
		`DROP TABLE relationship_stats`, `DROP TABLE replay_seen`, `DROP TABLE shutdown`, `DROP TABLE unreadable_records`, `DROP TABLE import_items`, `DROP TABLE documents`, `DROP TABLE document_chunks`, `DROP TABLE document_uploads`, `DROP TABLE agreements`, `DROP TABLE notify_channels`, `DROP TABLE notify_outbox`, `DROP TABLE issuers`, `DROP TABLE domain`, `DROP INDEX requests_by_status_created`, `DROP INDEX requests_by_created_id`, `DROP INDEX IF EXISTS record_keys_by_created`, `DROP INDEX requests_by_status`, `DROP INDEX requests_by_client`, `DROP INDEX grants_by_issued`,
		`CREATE TABLE audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), size INTEGER NOT NULL, hash BLOB NOT NULL, mac BLOB NOT NULL)`,
		`CREATE TABLE audit_checkpoints (size INTEGER PRIMARY KEY, hash BLOB NOT NULL, signed TEXT NOT NULL, created INTEGER NOT NULL)`,
		`PRAGMA user_version = 2`,
	} {
		if _, err := v.db.w.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	v.Close()
	v2, err := Open(ctx, dir, []byte(testPass), Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	rel, err := v2.GetRelationship(ctx, o.jkt)
	if err != nil || rel.Name != "Acme" || len(rel.Grants) != 1 || rel.Grants[0].ID != tok.GrantID || len(rel.Keys) != 1 {
		t.Fatalf("migrated relationship: %+v %v", rel, err)
	}
	if ver, _ := v2.db.version(ctx); ver != schemaVersion {
		t.Fatalf("schema %d after migration", ver)
	}
}

// The fast encoding of audit entries is exactly RFC 8785.
func TestCanonicalEntryMatchesJCS(t *testing.T) {
	odd := []string{"", "plain", "quote\" back\\slash", "<&>", "tab\tnew\nline", "bell\b form\f", "\x01\x1f", "line\u2028sep\u2029", "é 😀 ｡", "bad\xffutf8"}
	for i, s := range odd {
		e := AuditEntry{Seq: int64(i + 1), Time: 1795415066, Event: EvDataRead, Actor: s, ClientName: s, Reason: s,
			RecordIDs: []string{s, "x"}, Fields: []string{s}}
		fast, err := canonicalEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		want, err := policy.Canonical(e)
		if err != nil {
			t.Fatal(err)
		}
		if fast != string(want) {
			t.Errorf("%q:\n fast %s\n jcs  %s", s, fast, want)
		}
	}
}
