package vault

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/pdvault/pdvault/policy"
)

// The audit log is a Merkle tree log with RFC 6962 hashing, built with
// golang.org/x/mod/sumdb/tlog (auditlog.go): leaf n is the canonical JSON
// of entry n+1, its leaf hash SHA-256(0x00 ‖ entry). Each entry is appended
// in the same transaction as the decision it records; if the append fails,
// so does the decision. The head (size and root) is an authenticated row
// (state.go); every checkpointEvery entries the vault signs a tree head in
// the C2SP checkpoint format (policy/treehead.go), and every such head must
// exist. A signed head given to the owner's CLI or to an organization lets
// them check later, with a consistency proof, that the log only grew.

// AuditEntry is one line of the audit log. It names who did what to which
// records and fields, never what the records say.
type AuditEntry struct {
	// Fields are in sorted key order: canonicalEntry depends on it.
	Actor      string   `json:"actor"` // "owner", "vault", or an organization's client_id
	ClientID   string   `json:"client_id,omitempty"`
	ClientName string   `json:"client_name,omitempty"`
	Collection string   `json:"collection,omitempty"`
	Event      string   `json:"event"`
	Fields     []string `json:"fields,omitempty"`
	GrantID    string   `json:"grant_id,omitempty"`
	Outcome    string   `json:"outcome,omitempty"`
	Reason     string   `json:"reason,omitempty"`
	RecordIDs  []string `json:"record_ids,omitempty"`
	RequestID  string   `json:"request_id,omitempty"`
	Scope      string   `json:"scope,omitempty"`
	Seq        int64    `json:"seq"`
	Time       int64    `json:"time"`
}

// Audit events.
const (
	EvRequestReceived = "request.received"
	EvRequestRefused  = "request.refused"
	EvRequestApproved = "request.approved"
	EvRequestDenied   = "request.denied"
	EvGrantIssued     = "grant.issued"
	EvGrantRevoked    = "grant.revoked"
	EvDataRead        = "data.read"
	EvDataRefused     = "data.refused"
	EvClaimsRead      = "claims.read"
	EvTermsChanged    = "terms.changed"

	EvGrantReleased      = "grant.released" // by the organization (RFC 7009)
	EvNoticeDelivered    = "notice.delivered"
	EvNoticeFailed       = "notice.failed"
	EvReceiptReceived    = "receipt.received"
	EvKeyLinked          = "relationship.key_linked"
	EvDomainVerification = "relationship.domain_verification"
	EvReacceptAsked      = "relationship.reaccept_asked"
	EvVaultMoved         = "vault.moved"
	EvIntentPublished    = "intent.published"
	EvIntentClosed       = "intent.closed"
	EvOfferReceived      = "offer.received"
	EvOfferAccepted      = "offer.accepted"
	EvOfferDeclined      = "offer.declined"
	EvKeyRotated         = "keys.rotated"
	// Owner actions that change what the vault holds or who can open it.
	EvRecordCreated     = "record.created"
	EvRecordUpdated     = "record.updated"
	EvRecordDeleted     = "record.deleted"
	EvPassphraseChanged = "owner.passphrase_changed"
	EvExported          = "vault.exported"
	EvRestored          = "vault.restored"
	EvLoginFailed       = "owner.login_failed"
	EvSettingsChanged   = "owner.settings_changed"
)

const (
	OutcomeAllowed = "allowed"
	OutcomeDenied  = "denied"
)

const checkpointEvery = 256

// appendAudit adds an entry inside tx. Any error must fail the transaction.
func (v *Vault) appendAudit(ctx context.Context, tx *sql.Tx, e AuditEntry) error {
	w := v.auditWriter(tx)
	if err := w.append(ctx, e); err != nil {
		return err
	}
	return w.flush(ctx)
}

// auditLog appends entries inside one transaction, reading the head once
// and writing it once, however many entries: the group committer appends a
// whole batch through one.
type auditLog struct {
	v      *Vault
	tx     *sql.Tx
	size   int64
	tree   *treeReader
	loaded bool
	dirty  bool
}

func (v *Vault) auditWriter(tx *sql.Tx) *auditLog { return &auditLog{v: v, tx: tx} }

func (w *auditLog) append(ctx context.Context, e AuditEntry) error {
	if !w.loaded {
		size, _, err := w.v.loadHead(ctx, w.tx)
		if err != nil {
			return fmt.Errorf("audit head: %w", err)
		}
		w.size, w.tree, w.loaded = size, newTreeReader(ctx, w.tx), true
	}
	e.Seq = w.size + 1
	e.Time = w.v.now().Unix()
	entry, err := canonicalEntry(e)
	if err != nil {
		return fmt.Errorf("audit entry: %w", err)
	}
	leaf, err := w.tree.add(ctx, w.size, []byte(entry))
	if err != nil {
		return fmt.Errorf("audit tree: %w", err)
	}
	if _, err := w.tx.ExecContext(ctx, `INSERT INTO audit (seq, entry, hash) VALUES (?, ?, ?)`, e.Seq, entry, leaf[:]); err != nil {
		return fmt.Errorf("audit append: %w", err)
	}
	w.size, w.dirty = e.Seq, true
	if e.Seq%checkpointEvery == 0 {
		root, err := tlog.TreeHash(w.size, w.tree)
		if err != nil {
			return fmt.Errorf("audit tree: %w", err)
		}
		return w.v.checkpoint(ctx, w.tx, w.size, root)
	}
	return nil
}

// flush writes the head, authenticated, if entries were appended.
func (w *auditLog) flush(ctx context.Context) error {
	if !w.dirty {
		return nil
	}
	root, err := tlog.TreeHash(w.size, w.tree)
	if err != nil {
		return fmt.Errorf("audit tree: %w", err)
	}
	if err := w.v.st.put(ctx, w.tx, tAuditHead, int64(1), w.size, root[:]); err != nil {
		return fmt.Errorf("audit head: %w", err)
	}
	w.dirty = false
	return nil
}

// loadHead reads the checked head: the log's size and root.
func (v *Vault) loadHead(ctx context.Context, q queryer) (int64, tlog.Hash, error) {
	return v.readHead(ctx, q, true)
}

// peekHead is loadHead for verification, which reports a bad head itself.
func (v *Vault) peekHead(ctx context.Context, q queryer) (int64, tlog.Hash, error) {
	return v.readHead(ctx, q, false)
}

func (v *Vault) readHead(ctx context.Context, q queryer, alarm bool) (int64, tlog.Hash, error) {
	rs, err := v.st.query(ctx, q, tAuditHead, alarm, `id = 1`)
	if err == nil && len(rs) == 0 {
		err = sql.ErrNoRows
	}
	var r row
	if err == nil {
		r = rs[0]
	}
	if errors.Is(err, sql.ErrNoRows) {
		return 0, tlog.Hash{}, nil
	}
	if err != nil {
		return 0, tlog.Hash{}, err
	}
	var root tlog.Hash
	copy(root[:], r.bytes("root"))
	return r.i64("size"), root, nil
}

// canonicalEntry encodes an entry as RFC 8785 canonical JSON. AuditEntry's
// fields are declared in sorted key order and hold only strings, integers
// and string lists, so encoding/json already writes the canonical form —
// except for the few characters it escapes differently (\b, \f, U+2028,
// U+2029, and invalid UTF-8), for which the general encoder is used.
func canonicalEntry(e AuditEntry) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return "", err
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if !bytes.Contains(b, []byte(`\u00`)) && !bytes.Contains(b, []byte(`\u202`)) && !bytes.Contains(b, []byte(`\ufffd`)) {
		return string(b), nil
	}
	c, err := policy.Canonical(e)
	return string(c), err
}

// checkpoint signs the tree head at size and keeps it.
func (v *Vault) checkpoint(ctx context.Context, tx *sql.Tx, size int64, root tlog.Hash) error {
	th, err := v.signTreeHead(size, root)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO audit_heads (size, note, created) VALUES (?, ?, ?)`, size, th.Note, v.now().Unix())
	return err
}

// signTreeHead is the signer's one operation for the audit log: sign the
// head of this vault's log. It builds the text itself (policy.SignTreeHead),
// so it can sign nothing else.
func (v *Vault) signTreeHead(size int64, root tlog.Hash) (policy.TreeHead, error) {
	th, err := v.signHead(size, root)
	if err != nil {
		return th, policy.Internal("sign tree head", err)
	}
	return th, nil
}

// Checkpoint signs the current head now (for the owner to publish or keep).
func (v *Vault) Checkpoint(ctx context.Context) (Checkpoint, error) {
	th, err := v.TreeHead(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	return Checkpoint{Size: th.Size, Signed: th.Note}, nil
}

// TreeHead returns the current signed tree head. Heads are signed on
// demand and cached while the log does not grow.
func (v *Vault) TreeHead(ctx context.Context) (policy.TreeHead, error) {
	size, root, err := v.loadHead(ctx, v.db.r)
	if err != nil {
		return policy.TreeHead{}, storageError("read audit head", err)
	}
	if size == 0 {
		return policy.TreeHead{}, policy.E(policy.KindConflict, "empty_log", "the audit log is empty")
	}
	return v.headFor(size, root)
}

// Checkpoint is a signed statement of the log's size and root hash (a
// C2SP checkpoint, as a signed note).
type Checkpoint struct {
	Size   int64  `json:"size"`
	Signed string `json:"signed"`
}

// AuditPage is a page of the audit log, newest first.
type AuditPage struct {
	Entries []AuditEntry `json:"entries"`
	Next    string       `json:"next_cursor,omitempty"`
}

// ListAudit returns entries newest first, up to limit, before cursor.
func (v *Vault) ListAudit(ctx context.Context, limit int, cursor string) (AuditPage, error) {
	if limit == 0 {
		limit = DefaultPageSize
	}
	if limit < 1 || limit > MaxPageSize {
		return AuditPage{}, ErrBadLimit
	}
	before := int64(1) << 62
	if cursor != "" {
		c, err := decodeCursor(cursor)
		if err != nil {
			return AuditPage{}, err
		}
		before = c
	}
	rows, err := v.db.r.QueryContext(ctx, `SELECT seq, entry FROM audit WHERE seq < ? ORDER BY seq DESC LIMIT ?`, before, limit+1)
	if err != nil {
		return AuditPage{}, storageError("list audit", err)
	}
	defer rows.Close()
	p := AuditPage{Entries: []AuditEntry{}}
	for rows.Next() {
		var seq int64
		var entry string
		if err := rows.Scan(&seq, &entry); err != nil {
			return AuditPage{}, storageError("list audit", err)
		}
		if len(p.Entries) == limit {
			p.Next = encodeCursor(p.Entries[len(p.Entries)-1].Seq)
			break
		}
		var e AuditEntry
		if err := json.Unmarshal([]byte(entry), &e); err != nil {
			return AuditPage{}, ErrTampered.WithDetail(fmt.Sprintf("audit entry %d", seq))
		}
		p.Entries = append(p.Entries, e)
	}
	if err := rows.Err(); err != nil {
		return AuditPage{}, storageError("list audit", err)
	}
	return p, nil
}

// AuditReport is the result of verifying the log.
type AuditReport struct {
	OK          bool           `json:"ok"`
	Entries     int64          `json:"entries"`
	Checkpoints int            `json:"checkpoints"`
	Head        string         `json:"head,omitempty"`      // base64url root hash of the whole log
	TreeHead    string         `json:"tree_head,omitempty"` // the signed head (C2SP checkpoint) of the verified log
	Problems    []AuditProblem `json:"problems"`            // empty when ok
	// Unlogged counts, since the vault was opened, what strangers did that
	// is counted instead of logged one by one (so they cannot fill the log).
	Unlogged Unlogged      `json:"unlogged"`
	Duration time.Duration `json:"-"`
}

// Unlogged is what was counted rather than logged.
type Unlogged struct {
	RequestsDropped  int64 `json:"requests_dropped"`  // over the pending limits
	StrangerRefusals int64 `json:"stranger_refusals"` // unknown keys' requests breaking the terms
	ReadRefusals     int64 `json:"read_refusals"`     // refused reads beyond a grant's logging rate
}

// AuditProblem is one inconsistency found by VerifyAudit.
type AuditProblem struct {
	Seq     int64  `json:"seq"`
	Problem string `json:"problem"`
}

// entrySeq reads the "seq" member of a canonical entry without decoding
// it all. In canonical JSON a quote inside a string is escaped, so the bytes
// ,"seq": can only be the member itself. -1 if absent or malformed.
func entrySeq(entry []byte) int64 {
	i := bytes.Index(entry, []byte(`,"seq":`))
	if i < 0 {
		if !bytes.HasPrefix(entry, []byte(`{"seq":`)) {
			return -1
		}
		i = 0
	}
	rest := entry[i+len(`,"seq":`):]
	var n int64
	j := 0
	for ; j < len(rest) && rest[j] >= '0' && rest[j] <= '9' && j < 18; j++ {
		n = n*10 + int64(rest[j]-'0')
	}
	if j == 0 || j >= len(rest) || (rest[j] != ',' && rest[j] != '}') {
		return -1
	}
	return n
}

// maxProblems bounds the report: one edit early in the log makes every
// later hash differ, and the first few are what matters.
const maxProblems = 20

// VerifyAudit rebuilds the whole tree from the entries of one consistent
// snapshot, trusting no stored hash, and reports every edited, deleted,
// reordered or truncated entry it can see: it compares the leaf and tree
// hashes stored for proofs, the authenticated head, and every signed
// checkpoint — each of which must exist — with what the entries give.
func (v *Vault) VerifyAudit(ctx context.Context) (AuditReport, error) {
	tx, err := v.db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return AuditReport{}, storageError("verify audit", err)
	}
	defer tx.Rollback()
	rep, err := v.verifyAudit(ctx, tx)
	if err == nil {
		v.counters.verified(v.opts.Now(), rep.OK)
		if !rep.OK {
			v.Notify(ctx, Notification{Event: EventAuditFailed, Title: "pdvault: the audit log does not verify",
				Body: fmt.Sprintf("%d problem(s) found in the audit log: it may have been altered. Check it before trusting it.", len(rep.Problems)),
				Link: v.Issuer() + "/ui/audit"})
		}
	}
	return rep, err
}

func (v *Vault) verifyAudit(ctx context.Context, tx *sql.Tx) (AuditReport, error) {
	start := time.Now()
	rep := AuditReport{Problems: []AuditProblem{}}
	problem := func(seq int64, format string, args ...any) {
		if len(rep.Problems) < maxProblems {
			rep.Problems = append(rep.Problems, AuditProblem{Seq: seq, Problem: fmt.Sprintf(format, args...)})
		}
	}
	mem, n, err := v.rebuildTree(ctx, tx, problem)
	if err != nil {
		return rep, storageError("verify audit", err)
	}
	rep.Entries = n
	root := func(size int64) tlog.Hash {
		h, err := tlog.TreeHash(size, mem)
		if err != nil {
			return tlog.Hash{}
		}
		return h
	}

	// The hashes stored for proofs must be the ones the entries give.
	trows, err := tx.QueryContext(ctx, `SELECT id, hash FROM audit_tree ORDER BY id`)
	if err != nil {
		return rep, storageError("verify audit", err)
	}
	var stored int64
	for trows.Next() {
		var id int64
		var h []byte
		if err := trows.Scan(&id, &h); err != nil {
			trows.Close()
			return rep, storageError("verify audit", err)
		}
		if id != stored || id >= int64(len(mem)) || !bytes.Equal(h, mem[id][:]) {
			_, leaf := tlog.SplitStoredHashIndex(id)
			problem(leaf+1, "the stored tree hash %d does not match the entries (edited, or an earlier entry changed)", id)
			stored = id
		}
		stored++
	}
	trows.Close()
	if err := trows.Err(); err != nil {
		return rep, storageError("verify audit", err)
	}
	if stored != int64(len(mem)) {
		problem(n, "the stored tree has %d hashes where the entries give %d (truncated or extended)", stored, len(mem))
	}

	// The head: authenticated, and equal to the tree of the entries.
	hsize, hroot, err := v.peekHead(ctx, tx)
	switch {
	case isTampered(err):
		problem(n, "the log head failed its integrity check (the head was rewritten)")
	case err != nil:
		return rep, storageError("verify audit", err)
	case hsize == 0 && n > 0:
		problem(n, "the log head is missing")
	case hsize != n:
		problem(min(hsize, n)+1, "the head says %d entries but %d are present (truncated or extended)", hsize, n)
	case hroot != root(n):
		problem(n, "the head's root hash does not match the entries")
	}
	if n > 0 {
		r := root(n)
		rep.Head = base64.RawURLEncoding.EncodeToString(r[:])
	}

	// Every checkpoint that should exist exists, and each one's signature
	// and root match the entries.
	heads := map[int64]bool{}
	crows, err := tx.QueryContext(ctx, `SELECT size, note FROM audit_heads ORDER BY size`)
	if err != nil {
		return rep, storageError("verify audit", err)
	}
	type cp struct {
		size int64
		note string
	}
	var cps []cp
	for crows.Next() {
		var c cp
		if err := crows.Scan(&c.size, &c.note); err != nil {
			crows.Close()
			return rep, storageError("verify audit", err)
		}
		cps = append(cps, c)
	}
	crows.Close()
	keys := v.publicKeys()
	for _, c := range cps {
		rep.Checkpoints++
		heads[c.size] = true
		th, err := policy.OpenTreeHead(c.note, v.id, keys)
		switch {
		case err != nil:
			problem(c.size, "checkpoint at %d has a bad signature", c.size)
		case th.Size != c.size:
			problem(c.size, "checkpoint at %d does not match its signed statement", c.size)
		case c.size > n:
			problem(n+1, "a signed checkpoint covers %d entries but only %d are present (truncated)", c.size, n)
		case th.Root != root(c.size):
			problem(c.size, "the log up to %d no longer matches its signed checkpoint", c.size)
		}
	}
	for size := int64(checkpointEvery); size <= n; size += checkpointEvery {
		if !heads[size] {
			problem(size, "the signed checkpoint at %d is missing (deleted)", size)
		}
	}
	if len(rep.Problems) == 0 && n > 0 {
		if th, err := v.signTreeHead(n, root(n)); err == nil {
			rep.TreeHead = th.Note
		}
	}

	// The state the log speaks about: every authenticated row, and the
	// rows refused since the vault was opened.
	bad, err := v.st.verifyAll(ctx, tx, maxProblems)
	if err != nil {
		return rep, storageError("verify state", err)
	}
	for _, b := range bad {
		problem(0, "%s failed its integrity check (edited, inserted or moved)", b)
	}
	for _, a := range v.st.Alarms() {
		problem(0, "%s was refused since the vault was opened: it failed its integrity check", a)
	}
	// Cross-checks need rows they can trust: with a tampered row already
	// reported, they would only add noise.
	if len(bad) == 0 {
		if err := v.crossCheck(ctx, tx, problem); err != nil {
			return rep, storageError("verify audit", err)
		}
	}
	rep.Unlogged = Unlogged{RequestsDropped: v.dropped.Load(), StrangerRefusals: v.strangerRefusals.Load(), ReadRefusals: v.refusalsDropped.Load()}
	rep.OK = len(rep.Problems) == 0
	if !rep.OK {
		rep.TreeHead = ""
	}
	rep.Duration = time.Since(start)
	return rep, nil
}

// crossCheck holds the state against the log: every grant was issued on
// the record, every ended grant's end is on the record and every end on
// the record is in its grant's row (a grant row put back as it was before
// its revocation passes its MAC, but not this), and every approved
// request's decision is on the record.
func (v *Vault) crossCheck(ctx context.Context, tx *sql.Tx, problem func(int64, string, ...any)) error {
	rows, err := tx.QueryContext(ctx, `SELECT json_extract(entry, '$.event'), coalesce(json_extract(entry, '$.grant_id'), ''),
		coalesce(json_extract(entry, '$.request_id'), '') FROM audit WHERE json_extract(entry, '$.event') IN (?, ?, ?, ?)`,
		EvGrantIssued, EvGrantRevoked, EvGrantReleased, EvRequestApproved)
	if err != nil {
		return err
	}
	issued, ended, approved := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for rows.Next() {
		var ev, grant, req string
		if err := rows.Scan(&ev, &grant, &req); err != nil {
			rows.Close()
			return err
		}
		switch ev {
		case EvGrantIssued:
			issued[grant] = true
		case EvGrantRevoked, EvGrantReleased:
			ended[grant] = true
		case EvRequestApproved:
			approved[req] = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	grants, err := v.st.rows(ctx, tx, tGrants, `1`)
	if err != nil {
		return err
	}
	inRows := map[string]bool{}
	for _, g := range grants {
		id := g.str("id")
		inRows[id] = true
		if !issued[id] {
			problem(0, "grant %s has no grant.issued entry in the log", id)
		}
		if !g.null("revoked") && !ended[id] {
			problem(0, "grant %s is revoked but the log does not say so", id)
		}
		if g.null("revoked") && ended[id] {
			problem(0, "the log says grant %s ended, but its row says it is live (rolled back)", id)
		}
	}
	for id := range issued {
		if !inRows[id] {
			problem(0, "the log issued grant %s, but its row is missing", id)
		}
	}
	reqs, err := v.st.rows(ctx, tx, tRequests, `status IN (?, ?)`, StatusApproved, StatusCollected)
	if err != nil {
		return err
	}
	for _, r := range reqs {
		if !approved[r.str("id")] {
			problem(0, "request %s is approved but the log has no decision for it", r.str("id"))
		}
	}
	return nil
}

// CountAudit counts the log's entries of one event.
func (v *Vault) CountAudit(ctx context.Context, event string) (int64, error) {
	var n int64
	err := v.db.r.QueryRowContext(ctx, `SELECT count(*) FROM audit WHERE json_extract(entry, '$.event') = ?`, event).Scan(&n)
	if err != nil {
		return 0, storageError("count audit", err)
	}
	return n, nil
}
