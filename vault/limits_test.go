package vault

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pdvault/pdvault/policy"
)

// Pending requests are bounded per key and, for organizations that never
// held a grant, in total; what is refused is counted for the owner, and an
// organization the owner deals with is not crowded out by a flood.
func TestPendingRequestLimits(t *testing.T) {
	c := newClock()
	v, err := Create(t.Context(), filepath.Join(t.TempDir(), "v"), []byte(testPass), Options{Now: c.Now, MaxPendingRequests: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	ctx := t.Context()
	known := newOrg(t)
	known.grant(t, v, Approval{})
	genuine := newOrg(t)
	early, err := v.SubmitRequest(ctx, genuine.request(t, v, nil), "")
	if err != nil {
		t.Fatal(err)
	}
	// One key: at most MaxPendingPerKey pending.
	for range MaxPendingPerKey - 1 {
		if _, err := v.SubmitRequest(ctx, genuine.request(t, v, nil), ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := v.SubmitRequest(ctx, genuine.request(t, v, nil), ""); !errors.Is(err, ErrTooManyPending) {
		t.Fatalf("one key over its limit: %v", err)
	}
	// A flood of fresh keys fills the strangers' allowance...
	refused := 0
	for range 20 {
		_, err := v.SubmitRequest(ctx, newOrg(t).request(t, v, nil), "")
		if errors.Is(err, ErrVaultFull) {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if refused != 20-(8-MaxPendingPerKey) {
		t.Fatalf("%d of the flood refused", refused)
	}
	// ...but not the known organization's.
	if _, err := v.SubmitRequest(ctx, known.request(t, v, nil), ""); err != nil {
		t.Fatalf("a known organization during a flood: %v", err)
	}
	page, err := v.ListRequests(ctx, StatusPending, PageQuery{})
	if err != nil || page.Dropped != int64(refused+1) {
		t.Fatalf("dropped: %+v %v", page.Dropped, err)
	}
	// The genuine request sent before the flood is still there: paging
	// reaches everything, nothing is pushed out.
	seen := map[string]bool{}
	q := PageQuery{Limit: 3}
	for pages := 0; ; pages++ {
		p, err := v.ListRequests(ctx, "", q)
		if err != nil || pages > 10 {
			t.Fatalf("paging: %v", err)
		}
		for _, r := range p.Requests {
			if seen[r.ID] {
				t.Fatalf("%s twice", r.ID)
			}
			seen[r.ID] = true
		}
		if p.Next == "" {
			break
		}
		q.Cursor = p.Next
	}
	if !seen[early.RequestID] || len(seen) != 1+MaxPendingPerKey+(8-MaxPendingPerKey)+1 {
		t.Fatalf("paged through %d requests (early one seen: %v)", len(seen), seen[early.RequestID])
	}
	if _, err := v.ListRequests(ctx, "", PageQuery{Cursor: "garbage"}); !errors.Is(err, ErrBadCursor) {
		t.Fatalf("bad cursor: %v", err)
	}
	if _, err := v.ListRequests(ctx, "", PageQuery{Limit: 501}); !errors.Is(err, ErrBadLimit) {
		t.Fatalf("bad limit: %v", err)
	}

	// Requests that expired undecided are swept, with the relationships
	// they leave empty; the known organization's stays.
	c.Add(RequestLifetime + time.Minute)
	for range 5 { // each request sweeps a bounded batch
		if _, err := v.SubmitRequest(ctx, known.request(t, v, nil), ""); err != nil && !errors.Is(err, ErrTooManyPending) {
			t.Fatal(err)
		}
	}
	var n, rels int
	v.db.r.QueryRow(`SELECT count(*) FROM requests WHERE status = 'pending' AND expires <= ?`, c.Now().Unix()).Scan(&n)
	v.db.r.QueryRow(`SELECT count(*) FROM relationships`).Scan(&rels)
	if n != 0 || rels != 1 {
		t.Fatalf("after the sweep: %d expired requests, %d relationships", n, rels)
	}
	if rep, err := v.VerifyAudit(ctx); err != nil || !rep.OK {
		t.Fatalf("audit after the sweep: %+v %v", rep, err)
	}
}

// Requests that break the terms: a stranger's are counted, not logged
// (anyone can send them); a known organization's are logged with their
// reasons cut to a bounded length.
func TestTermsRefusalsDoNotFillTheLog(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	before, _ := v.VerifyAudit(ctx)
	long := strings.Repeat("w", 50)
	var scope string
	bad := func(c *policy.RequestClaims) {
		defer func() { scope = policy.Scope(c.AuthorizationDetails) }()
		c.Purpose = "marketing"
		c.PurposeText = strings.Repeat("x", 1000)
		c.Duration = 3650 * 24 * 3600
		for i := range 15 {
			c.AuthorizationDetails = append(c.AuthorizationDetails, policy.AuthorizationDetail{Type: policy.DetailType,
				Collection: fmt.Sprintf("col%02d%s", i, strings.Repeat("z", 40)), Fields: []string{"a" + long, "b" + long, "c" + long, "d" + long}})
		}
	}
	for range 10 {
		if _, err := v.SubmitRequest(ctx, newOrg(t).request(t, v, bad), ""); !errors.Is(err, policy.ErrTermsViolation) {
			t.Fatalf("stranger: %v", err)
		}
	}
	after, _ := v.VerifyAudit(ctx)
	if after.Entries != before.Entries || v.strangerRefusals.Load() != 10 {
		t.Fatalf("strangers' refusals: %d entries added, %d counted", after.Entries-before.Entries, v.strangerRefusals.Load())
	}
	o := newOrg(t)
	o.grant(t, v, Approval{})
	_, err := v.SubmitRequest(ctx, o.request(t, v, bad), "")
	var pe *policy.Error
	if !errors.As(err, &pe) || !errors.Is(err, policy.ErrTermsViolation) || len(scope) < 4*maxAuditReason {
		t.Fatalf("a known organization's long refusal: %v", err)
	}
	if after2, _ := v.VerifyAudit(ctx); after2.Entries <= after.Entries+2 {
		t.Fatal("the known organization's refusal was not logged")
	}
	var longest int
	v.db.r.QueryRow(`SELECT max(length(entry)) FROM audit`).Scan(&longest)
	if longest > 2*maxAuditReason+1000 {
		t.Fatalf("an audit entry of %d bytes", longest)
	}
}

// A relationship's read count comes from its counters, kept as reads
// commit, not from scanning the audit log.
func TestRelationshipReadCounters(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada","email":"a@x"}`))
	o := newOrg(t)
	tok := o.grant(t, v, Approval{})
	for range 7 {
		if _, err := o.read(t, v, tok.AccessToken, "profile"); err != nil {
			t.Fatal(err)
		}
	}
	// Take the log's data.read entries away: the count does not move (it
	// was never read from there).
	sqlExec(t, v, `UPDATE audit SET entry = replace(entry, '"data.read"', '"data.xxxx"')`)
	rel, err := v.GetRelationship(ctx, o.jkt)
	if err != nil || rel.Reads != 7 || rel.LastRead == nil {
		t.Fatalf("reads: %d %v %v", rel.Reads, rel.LastRead, err)
	}
	// A derived claim read is a read too.
	if _, err := v.UpdateRecord(ctx, "profile", mustOnlyID(t, v, "profile"), []byte(`{"name":"Ada","email":"a@x","birth_date":"1990-01-01"}`), 0); err != nil {
		t.Fatal(err)
	}
	ctok := o.grantFor(t, v, func(c *policy.RequestClaims) {
		c.AuthorizationDetails = []policy.AuthorizationDetail{{Type: policy.DetailType, Collection: "profile", Claims: []string{"age_over:18"}}}
	}, Approval{})
	p, hc := o.proof(t, v, "GET", "/v1/claims", ctok.AccessToken)
	if _, err := v.ReadClaims(ctx, Access{Grant: ctok.AccessToken, Proof: p, HTTP: hc}); err != nil {
		t.Fatal(err)
	}
	if rel, _ = v.GetRelationship(ctx, o.jkt); rel.Reads != 8 {
		t.Fatalf("reads after a claims read: %d, want 8", rel.Reads)
	}
}

func mustOnlyID(t *testing.T, v *Vault, coll string) string {
	t.Helper()
	p, err := v.ListRecords(t.Context(), coll, 10, "")
	if err != nil || len(p.Records) != 1 {
		t.Fatalf("%s: %v %v", coll, p, err)
	}
	return p.Records[0].ID
}

// A stranger's proofs (fresh keys, a stolen grant) never reach the replay
// cache: they fail the holder check first, so they cannot fill it.
func TestReplayCacheOnlyAfterOwnership(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada","email":"a@x"}`))
	o := newOrg(t)
	tok := o.grant(t, v, Approval{})
	before := v.replay.n
	for range 200 {
		thief := newOrg(t)
		p, hc := thief.proof(t, v, "GET", "/v1/data/profile", tok.AccessToken)
		if _, err := v.ReadCollection(ctx, Access{Grant: tok.AccessToken, Proof: p, HTTP: hc}, "profile", 0, ""); !errors.Is(err, policy.ErrWrongHolder) {
			t.Fatalf("thief: %v", err)
		}
		p, hc = thief.proof(t, v, "POST", "/v1/token", "")
		if _, err := v.CollectGrant(ctx, "aaaaaaaaaaaaaaaaaaaaaaaaaa", p, hc); !errors.Is(err, ErrUnknownDeviceCode) {
			t.Fatalf("stranger polling: %v", err)
		}
	}
	if v.replay.n != before {
		t.Fatalf("strangers' proofs entered the replay cache: %d -> %d", before, v.replay.n)
	}
	// The holder's proofs do, and a replay is refused.
	p, hc := o.proof(t, v, "GET", "/v1/data/profile", tok.AccessToken)
	a := Access{Grant: tok.AccessToken, Proof: p, HTTP: hc}
	if _, err := v.ReadCollection(ctx, a, "profile", 0, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := v.ReadCollection(ctx, a, "profile", 0, ""); !errors.Is(err, policy.ErrProofReplayed) {
		t.Fatalf("replay: %v", err)
	}
}

// The cache survives a clean restart; after an unclean one, proofs dated
// before the restart are refused.
func TestReplayAcrossRestarts(t *testing.T) {
	v, dir, c := newTestVault(t)
	ctx := t.Context()
	v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada","email":"a@x"}`))
	o := newOrg(t)
	tok := o.grant(t, v, Approval{})
	p, hc := o.proof(t, v, "GET", "/v1/data/profile", tok.AccessToken)
	a := Access{Grant: tok.AccessToken, Proof: p, HTTP: hc}
	if _, err := v.ReadCollection(ctx, a, "profile", 0, ""); err != nil {
		t.Fatal(err)
	}
	v.Close()
	v2, err := Open(ctx, dir, []byte(testPass), Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v2.ReadCollection(ctx, a, "profile", 0, ""); !errors.Is(err, policy.ErrProofReplayed) {
		t.Fatalf("replay after a clean restart: %v", err)
	}
	// An unclean stop: the mark and the saved cache are gone.
	p2, hc2 := o.proof(t, v2, "GET", "/v1/data/profile", tok.AccessToken)
	a2 := Access{Grant: tok.AccessToken, Proof: p2, HTTP: hc2}
	if _, err := v2.ReadCollection(ctx, a2, "profile", 0, ""); err != nil {
		t.Fatal(err)
	}
	v2.Close()
	db, err := openStore(filepath.Join(dir, DBFile), false, storeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	db.w.Exec(`DELETE FROM shutdown`)
	db.w.Exec(`DELETE FROM replay_seen`)
	db.close()
	c.Add(time.Second)
	v3, err := Open(ctx, dir, []byte(testPass), Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer v3.Close()
	if _, err := v3.ReadCollection(ctx, a2, "profile", 0, ""); !errors.Is(err, ErrProofBeforeRestart) {
		t.Fatalf("a proof from before an unclean restart: %v", err)
	}
	c.Add(time.Second)
	p3, hc3 := o.proof(t, v3, "GET", "/v1/data/profile", tok.AccessToken)
	if _, err := v3.ReadCollection(ctx, Access{Grant: tok.AccessToken, Proof: p3, HTTP: hc3}, "profile", 0, ""); err != nil {
		t.Fatalf("a fresh proof after an unclean restart: %v", err)
	}
}

// The cache is bounded; old buckets age out as a whole.
func TestReplayCacheBounded(t *testing.T) {
	c := newReplayCache(100)
	now := time.Unix(1795428000, 0)
	for i := range 100 {
		if ok, err := c.use(proofKey("k", strings.Repeat("j", i)), now, now); !ok || err != nil {
			t.Fatal(i, ok, err)
		}
	}
	if _, err := c.use(proofKey("k", "one more"), now, now); !errors.Is(err, ErrReplayCacheFull) {
		t.Fatalf("full: %v", err)
	}
	if ok, _ := c.use(proofKey("k", ""), now, now); ok {
		t.Fatal("a replay was accepted")
	}
	later := now.Add(proofLife + 2*bucketWidth)
	if ok, err := c.use(proofKey("k", "one more"), later, later); !ok || err != nil || c.n != 1 {
		t.Fatalf("after the window: %v %v n=%d", ok, err, c.n)
	}
}

// A copied grant used with strangers' proofs: the refusals are logged at a
// bounded rate per grant (the rest counted), not one entry each.
func TestRefusalsOfAGrantAreRateLimited(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada","email":"a@x"}`))
	o := newOrg(t)
	tok := o.grant(t, v, Approval{})
	before, _ := v.CountAudit(ctx, EvDataRefused)
	for range 50 {
		thief := newOrg(t)
		p, hc := thief.proof(t, v, "GET", "/v1/data/profile", tok.AccessToken)
		if _, err := v.ReadCollection(ctx, Access{Grant: tok.AccessToken, Proof: p, HTTP: hc}, "profile", 0, ""); !errors.Is(err, policy.ErrWrongHolder) {
			t.Fatalf("thief: %v", err)
		}
	}
	after, _ := v.CountAudit(ctx, EvDataRefused)
	if logged := after - before; logged < 1 || logged > 5*refusalsPerGrant+1 || v.refusalsDropped.Load() < 44 {
		t.Fatalf("%d refusals logged, %d counted", logged, v.refusalsDropped.Load())
	}
	if rep, err := v.VerifyAudit(ctx); err != nil || !rep.OK || rep.Unlogged.ReadRefusals != v.refusalsDropped.Load() {
		t.Fatalf("audit: %+v %v", rep, err)
	}
}

// The backup's temporary file is private from its first byte (it used to
// be created by SQLite with mode 0644 and narrowed only afterwards).
func TestBackupPartialIsPrivate(t *testing.T) {
	v, dir, _ := newTestVault(t)
	ctx := t.Context()
	big := `{"blob":"` + strings.Repeat("x", 16<<10) + `"}`
	batch := make([][]byte, 200)
	for i := range batch {
		batch[i] = []byte(big)
	}
	for range 5 {
		if _, err := v.CreateRecords(ctx, "documents", batch); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "b.db")
	done := make(chan error, 1)
	go func() { _, err := Backup(ctx, dir, out); done <- err }()
	seen := false
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			if !seen {
				t.Log("the backup was too quick to watch its temporary file; its final mode is still checked")
			}
			if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("backup mode: %v %v", fi.Mode(), err)
			}
			return
		default:
		}
		if fi, err := os.Stat(out + ".partial"); err == nil {
			seen = true
			if fi.Mode().Perm() != 0o600 {
				t.Fatalf("the partial backup is %v", fi.Mode().Perm())
			}
		}
	}
}

// Owner actions that change what the vault holds or who can open it are on
// the record; wrong passphrases too, but at most one entry a minute.
func TestOwnerActionsAreAudited(t *testing.T) {
	v, dir, c := newTestVault(t)
	ctx := t.Context()
	r, _ := v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada"}`))
	v.UpdateRecord(ctx, "profile", r.ID, []byte(`{"name":"Ada L."}`), 0)
	v.DeleteRecord(ctx, "profile", r.ID, 0)
	v.CreateRecords(ctx, "transactions", [][]byte{[]byte(`{}`), []byte(`{}`)})
	var buf bytes.Buffer
	if _, err := v.Export(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		v.Login(ctx, []byte("wrong passphrase!"), LoginSource{Address: fmt.Sprintf("192.0.2.%d", i)})
	}
	if err := v.ChangePassphrase(ctx, []byte(testPass), []byte("another good passphrase")); err != nil {
		t.Fatal(err)
	}
	count := func(ev string) int64 { n, _ := v.CountAudit(ctx, ev); return n }
	for ev, want := range map[string]int64{EvRecordCreated: 2, EvRecordUpdated: 1, EvRecordDeleted: 1, EvExported: 1, EvPassphraseChanged: 1, EvLoginFailed: 1} {
		if got := count(ev); got != want {
			t.Errorf("%s: %d entries, want %d", ev, got, want)
		}
	}
	c.Add(2 * time.Minute)
	v.Login(ctx, []byte("wrong passphrase!"), LoginSource{Address: "192.0.2.50"})
	if got := count(EvLoginFailed); got != 2 {
		t.Errorf("a minute later: %d failed-login entries", got)
	}
	// The entries name collections and ids, never contents.
	page, _ := v.ListAudit(ctx, 100, "")
	for _, e := range page.Entries {
		if strings.Contains(e.Reason, "Ada") {
			t.Fatalf("record content in the log: %+v", e)
		}
	}
	bk := filepath.Join(t.TempDir(), "b.db")
	if _, err := Backup(ctx, dir, bk); err != nil {
		t.Fatal(err)
	}
	d2 := filepath.Join(t.TempDir(), "r")
	if err := Restore(ctx, bk, d2, []byte("another good passphrase"), Options{}); err != nil {
		t.Fatal(err)
	}
	v2, err := Open(ctx, d2, []byte("another good passphrase"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	if n, _ := v2.CountAudit(ctx, EvRestored); n != 1 {
		t.Fatalf("restore: %d entries", n)
	}
}

// A listing cursor is good only for the grant and collection it was given
// for (and is keyed apart from the pairwise ids); an id is accepted only
// in its one canonical spelling.
func TestCursorsBoundAndIDsCanonical(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	for range 3 {
		v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada","email":"a@x"}`))
		v.CreateRecord(ctx, "contacts", []byte(`{"name":"x"}`))
	}
	o := newOrg(t)
	both := []policy.AuthorizationDetail{{Type: policy.DetailType, Collection: "profile", Fields: []string{"name"}}, {Type: policy.DetailType, Collection: "contacts", Fields: []string{"name"}}}
	grant := func() string {
		tk, err := v.SubmitRequest(ctx, o.request(t, v, func(c *policy.RequestClaims) { c.AuthorizationDetails = both }), "")
		if err != nil {
			t.Fatal(err)
		}
		v.Approve(ctx, tk.RequestID, Approval{})
		p, hc := o.proof(t, v, "POST", "/v1/token", "")
		tok, err := v.CollectGrant(ctx, tk.RequestID, p, hc)
		if err != nil {
			t.Fatal(err)
		}
		return tok.AccessToken
	}
	g1, g2 := grant(), grant()
	read := func(tok, coll, cursor string) (DataPage, error) {
		p, hc := o.proof(t, v, "GET", "/v1/data/"+coll, tok)
		return v.ReadCollection(ctx, Access{Grant: tok, Proof: p, HTTP: hc}, coll, 1, cursor)
	}
	page, err := read(g1, "profile", "")
	if err != nil || page.Next == "" {
		t.Fatalf("first page: %+v %v", page, err)
	}
	if _, err := read(g1, "profile", page.Next); err != nil {
		t.Fatalf("its own cursor: %v", err)
	}
	if _, err := read(g2, "profile", page.Next); !errors.Is(err, ErrBadCursor) {
		t.Fatalf("another grant's cursor: %v", err)
	}
	if _, err := read(g1, "contacts", page.Next); !errors.Is(err, ErrBadCursor) {
		t.Fatalf("another collection's cursor: %v", err)
	}
	// The id: the canonical spelling reads, the other three spellings of
	// the same 128 bits do not.
	id := page.Records[0].ID
	rd := func(orgID string) error {
		p, hc := o.proof(t, v, "GET", "/v1/data/profile/"+orgID, g1)
		_, err := v.ReadRecord(ctx, Access{Grant: g1, Proof: p, HTTP: hc}, "profile", orgID)
		return err
	}
	if err := rd(id); err != nil {
		t.Fatalf("canonical id: %v", err)
	}
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	last := strings.IndexByte(alphabet, id[25])
	for spare := 1; spare < 4; spare++ {
		other := id[:25] + string(alphabet[last|spare])
		if err := rd(other); !errors.Is(err, ErrDataNotFound) {
			t.Errorf("spelling %s of %s: %v", other, id, err)
		}
	}
}

// One record that does not open used to stop re-encryption for good: it
// is now skipped (never rewritten), and reported.
func TestReencryptionSkipsAnUnreadableRecord(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	var ids []string
	for i := range 30 {
		r, _ := v.CreateRecord(ctx, "transactions", []byte(fmt.Sprintf(`{"i":%d}`, i)))
		ids = append(ids, r.ID)
	}
	bad := ids[3]
	sqlExec(t, v, `UPDATE records SET sealed = zeroblob(60) WHERE id = ?`, bad)
	if _, err := v.RotateKeys(ctx, false, true); err != nil {
		t.Fatal(err)
	}
	for {
		n, err := v.reencryptBatch(ctx, 7)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	st, err := v.KeyStatus(ctx)
	if err != nil || st.RecordsToRewrite != 0 || len(st.UnreadableRecords) != 1 || st.UnreadableRecords[0] != bad {
		t.Fatalf("status: %+v %v", st, err)
	}
	for _, id := range ids {
		_, err := v.GetRecord(ctx, "transactions", id)
		if (id == bad) != errors.Is(err, ErrTampered) || (id != bad && err != nil) {
			t.Fatalf("%s: %v", id, err)
		}
	}
}

// Two signing-key rotations at once used to leave two active keys (each
// retired the key it had seen); the retirement now happens in the rotating
// transaction, from what is active there.
func TestConcurrentSigningRotations(t *testing.T) {
	v, dir, c := newTestVault(t)
	ctx := t.Context()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := v.RotateKeys(ctx, true, false); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var active []string
	rows, _ := v.db.r.Query(`SELECT kid FROM signing_keys WHERE retired IS NULL`)
	for rows.Next() {
		var kid string
		rows.Scan(&kid)
		active = append(active, kid)
	}
	rows.Close()
	if len(active) != 1 || v.signer().kid != active[0] {
		t.Fatalf("active in the file %v, in use %s", active, v.signer().kid)
	}
	// And the vault opens again with them.
	v.Close()
	v2, err := Open(ctx, dir, []byte(testPass), Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	v2.Close()
}

// A relationship whose key rows are gone (deleted from the file) is shown
// without its keys, not a panic (strings.Repeat with a negative count).
func TestRelationshipWithoutKeys(t *testing.T) {
	v, _, _ := newTestVault(t)
	o := newOrg(t)
	o.grant(t, v, Approval{})
	sqlExec(t, v, `DELETE FROM relationship_keys`)
	v.forgetRelationships()
	rel, err := v.GetRelationship(t.Context(), o.jkt)
	if err != nil || len(rel.Keys) != 0 || len(rel.Grants) != 0 {
		t.Fatalf("%+v %v", rel, err)
	}
}

// Deleting saved replay entries behind the vault's back (to reopen a
// replay after a clean restart) is noticed: the mark authenticates them.
func TestSavedReplayEntriesAuthenticated(t *testing.T) {
	v, dir, c := newTestVault(t)
	ctx := t.Context()
	v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada","email":"a@x"}`))
	o := newOrg(t)
	tok := o.grant(t, v, Approval{})
	p, hc := o.proof(t, v, "GET", "/v1/data/profile", tok.AccessToken)
	a := Access{Grant: tok.AccessToken, Proof: p, HTTP: hc}
	if _, err := v.ReadCollection(ctx, a, "profile", 0, ""); err != nil {
		t.Fatal(err)
	}
	v.Close()
	db, err := openStore(filepath.Join(dir, DBFile), false, storeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	db.w.QueryRow(`SELECT count(*) FROM replay_seen`).Scan(&n)
	db.w.Exec(`DELETE FROM replay_seen`)
	db.close()
	if n == 0 {
		t.Fatal("nothing was saved")
	}
	c.Add(time.Second)
	v2, err := Open(ctx, dir, []byte(testPass), Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	if _, err := v2.ReadCollection(ctx, a, "profile", 0, ""); !errors.Is(err, ErrProofBeforeRestart) {
		t.Fatalf("a replay after the saved entries were deleted: %v", err)
	}
}

// Requests padded to the size limit make shorter pages, not slower ones:
// a page stops at pageBytes of signed requests, and paging still reaches
// every request.
func TestPagesBoundedByBytes(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	long := strings.Repeat("f", 55)
	pad := func(c *policy.RequestClaims) {
		c.AuthorizationDetails = nil
		for k := range 7 {
			d := policy.AuthorizationDetail{Type: policy.DetailType, Collection: fmt.Sprintf("col%d", k)}
			for f := range 100 {
				d.Fields = append(d.Fields, fmt.Sprintf("%s%03d", long, f))
			}
			c.AuthorizationDetails = append(c.AuthorizationDetails, d)
		}
	}
	for range 10 {
		if _, err := v.SubmitRequest(ctx, newOrg(t).request(t, v, pad), ""); err != nil {
			t.Fatal(err)
		}
	}
	first, err := v.ListRequests(ctx, "", PageQuery{})
	if err != nil || first.Next == "" || len(first.Requests) >= 10 || len(first.Requests) < 1 {
		t.Fatalf("first page: %d requests, next %q, %v", len(first.Requests), first.Next, err)
	}
	seen := len(first.Requests)
	for c := first.Next; c != ""; {
		p, err := v.ListRequests(ctx, "", PageQuery{Cursor: c})
		if err != nil {
			t.Fatal(err)
		}
		seen += len(p.Requests)
		c = p.Next
	}
	if seen != 10 {
		t.Fatalf("paged through %d of 10", seen)
	}
}
