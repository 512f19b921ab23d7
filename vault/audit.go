package vault

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pdvault/pdvault/policy"
)

// The audit log is a hash chain in the spirit of RFC 6962's leaves:
//
//	hash[n] = SHA-256(0x00 || hash[n-1] || entry[n])      hash[0] = SHA-256("pdvault audit genesis" || vault id)
//
// Each entry is appended in the same transaction as the decision it
// records; if the append fails, so does the decision. The head (size and
// last hash) is stored with an HMAC under a key derived from the master
// key, so an edit followed by recomputing every later hash, or a cut at
// the tail, is caught by someone without the key. Every checkpointEvery
// entries the vault signs a checkpoint (size, hash) with its signing key,
// which anyone holding the JWKS can check.

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
	EvIntentPublished    = "intent.published"
	EvIntentClosed       = "intent.closed"
	EvOfferReceived      = "offer.received"
	EvOfferAccepted      = "offer.accepted"
	EvOfferDeclined      = "offer.declined"
	EvKeyRotated         = "keys.rotated"
)

const (
	OutcomeAllowed = "allowed"
	OutcomeDenied  = "denied"
)

const checkpointEvery = 256

func (v *Vault) auditGenesis() []byte {
	h := sha256.Sum256(append([]byte("pdvault audit genesis"), v.id...))
	return h[:]
}

func chainHash(prev, entry []byte) []byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(prev)
	h.Write(entry)
	return h.Sum(nil)
}

func (v *Vault) headMAC(size int64, hash []byte) []byte {
	m := hmac.New(sha256.New, v.auditKey)
	m.Write([]byte("pdvault audit head"))
	m.Write(binary.BigEndian.AppendUint64(nil, uint64(size)))
	m.Write(hash)
	return m.Sum(nil)
}

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
	prev   []byte
	loaded bool
	dirty  bool
}

func (v *Vault) auditWriter(tx *sql.Tx) *auditLog { return &auditLog{v: v, tx: tx} }

func (w *auditLog) append(ctx context.Context, e AuditEntry) error {
	if !w.loaded {
		err := w.tx.QueryRowContext(ctx, `SELECT size, hash FROM audit_head WHERE id = 1`).Scan(&w.size, &w.prev)
		if errors.Is(err, sql.ErrNoRows) {
			w.size, w.prev, err = 0, w.v.auditGenesis(), nil
		}
		if err != nil {
			return fmt.Errorf("audit head: %w", err)
		}
		w.loaded = true
	}
	e.Seq = w.size + 1
	e.Time = w.v.now().Unix()
	entry, err := canonicalEntry(e)
	if err != nil {
		return fmt.Errorf("audit entry: %w", err)
	}
	h := chainHash(w.prev, []byte(entry))
	if _, err := w.tx.ExecContext(ctx, `INSERT INTO audit (seq, entry, hash) VALUES (?, ?, ?)`, e.Seq, entry, h); err != nil {
		return fmt.Errorf("audit append: %w", err)
	}
	w.size, w.prev, w.dirty = e.Seq, h, true
	if e.Seq%checkpointEvery == 0 {
		return w.v.checkpoint(ctx, w.tx, e.Seq, h)
	}
	return nil
}

// flush writes the head, with its MAC, if entries were appended.
func (w *auditLog) flush(ctx context.Context) error {
	if !w.dirty {
		return nil
	}
	if _, err := w.tx.ExecContext(ctx, `INSERT INTO audit_head (id, size, hash, mac) VALUES (1, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET size = excluded.size, hash = excluded.hash, mac = excluded.mac`,
		w.size, w.prev, w.v.headMAC(w.size, w.prev)); err != nil {
		return fmt.Errorf("audit head: %w", err)
	}
	w.dirty = false
	return nil
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

// checkpointClaims are what a signed checkpoint says.
type checkpointClaims struct {
	Issuer  string `json:"iss"`
	VaultID string `json:"vault_id"`
	Size    int64  `json:"size"`
	Hash    string `json:"hash"` // base64url
	Issued  int64  `json:"iat"`
}

func (v *Vault) checkpoint(ctx context.Context, tx *sql.Tx, size int64, hash []byte) error {
	signed, err := policy.SignCheckpoint(v.signer(), checkpointClaims{
		Issuer: v.Issuer(), VaultID: v.id, Size: size, Hash: base64.RawURLEncoding.EncodeToString(hash), Issued: v.now().Unix(),
	})
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO audit_checkpoints (size, hash, signed, created) VALUES (?, ?, ?, ?)`,
		size, hash, signed, v.now().Unix())
	return err
}

// Checkpoint signs the current head now (for the owner to publish or keep).
func (v *Vault) Checkpoint(ctx context.Context) (Checkpoint, error) {
	var cp Checkpoint
	err := v.db.tx(ctx, func(tx *sql.Tx) error {
		var hash []byte
		if err := tx.QueryRowContext(ctx, `SELECT size, hash FROM audit_head WHERE id = 1`).Scan(&cp.Size, &hash); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return policy.E(policy.KindConflict, "empty_log", "the audit log is empty")
			}
			return err
		}
		if err := v.checkpoint(ctx, tx, cp.Size, hash); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT signed FROM audit_checkpoints WHERE size = ?`, cp.Size).Scan(&cp.Signed)
	})
	return cp, err
}

// Checkpoint is a signed statement of the log's size and head hash.
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
	Head        string         `json:"head,omitempty"` // base64url hash of the last entry
	Problems    []AuditProblem `json:"problems,omitempty"`
	Duration    time.Duration  `json:"-"`
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

// VerifyAudit re-derives the whole chain from one consistent snapshot and
// reports every edited, deleted, reordered or truncated entry it can see,
// checks the MAC on the head, and checks every signed checkpoint.
func (v *Vault) VerifyAudit(ctx context.Context) (AuditReport, error) {
	start := time.Now()
	rep := AuditReport{}
	problem := func(seq int64, format string, args ...any) {
		if len(rep.Problems) < maxProblems {
			rep.Problems = append(rep.Problems, AuditProblem{Seq: seq, Problem: fmt.Sprintf(format, args...)})
		}
	}
	tx, err := v.db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return rep, storageError("verify audit", err)
	}
	defer tx.Rollback()

	// Hashes at checkpoint sizes, to compare with the signed checkpoints.
	cps := map[int64][]byte{}
	type cpRow struct {
		size   int64
		hash   []byte
		signed string
	}
	var checkpoints []cpRow
	crows, err := tx.QueryContext(ctx, `SELECT size, hash, signed FROM audit_checkpoints ORDER BY size`)
	if err != nil {
		return rep, storageError("verify audit", err)
	}
	for crows.Next() {
		var c cpRow
		if err := crows.Scan(&c.size, &c.hash, &c.signed); err != nil {
			crows.Close()
			return rep, storageError("verify audit", err)
		}
		checkpoints = append(checkpoints, c)
		cps[c.size] = nil
	}
	crows.Close()

	rows, err := tx.QueryContext(ctx, `SELECT seq, entry, hash FROM audit ORDER BY seq`)
	if err != nil {
		return rep, storageError("verify audit", err)
	}
	prev := v.auditGenesis()
	var n int64
	// RawBytes: the row's memory, valid until the next Scan, which is all
	// the hashing needs; no copy per entry.
	var entry, stored sql.RawBytes
	var seq int64
	hasher := sha256.New()
	h := make([]byte, 0, sha256.Size)
	for rows.Next() {
		if err := rows.Scan(&seq, &entry, &stored); err != nil {
			rows.Close()
			return rep, storageError("verify audit", err)
		}
		n++
		if seq != n {
			problem(n, "entry %d is missing or out of order (found %d here)", n, seq)
			n = seq // resynchronise so one gap is one problem
		}
		// The entry must also claim its own position.
		if entrySeq(entry) != seq {
			problem(seq, "entry %d does not state its own position (reordered or edited)", seq)
		}
		hasher.Reset()
		hasher.Write([]byte{0})
		hasher.Write(prev)
		hasher.Write(entry)
		h = hasher.Sum(h[:0])
		if !hmac.Equal(h, stored) {
			problem(seq, "entry %d does not match its hash (edited, or an earlier entry changed)", seq)
		}
		if _, ok := cps[seq]; ok {
			cps[seq] = bytes.Clone(h)
		}
		prev = append(prev[:0], h...)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return rep, storageError("verify audit", err)
	}
	rows.Close()
	rep.Entries = n

	var hsize int64
	var hhash, hmacv []byte
	err = tx.QueryRowContext(ctx, `SELECT size, hash, mac FROM audit_head WHERE id = 1`).Scan(&hsize, &hhash, &hmacv)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if n > 0 {
			problem(n, "the log head is missing")
		}
	case err != nil:
		return rep, storageError("verify audit", err)
	default:
		if !hmac.Equal(hmacv, v.headMAC(hsize, hhash)) {
			problem(hsize, "the log head's MAC does not verify (the head was rewritten)")
		}
		if hsize != n {
			problem(min(hsize, n)+1, "the head says %d entries but %d are present (truncated or extended)", hsize, n)
		}
		if !bytes.Equal(hhash, prev) && hsize == n {
			problem(n, "the head hash does not match the last entry")
		}
		rep.Head = base64.RawURLEncoding.EncodeToString(hhash)
	}

	for _, c := range checkpoints {
		rep.Checkpoints++
		claims, err := policy.VerifyCheckpoint(c.signed, v.publicKey)
		if err != nil {
			problem(c.size, "checkpoint at %d has a bad signature", c.size)
			continue
		}
		var cc checkpointClaims
		json.Unmarshal(claims, &cc)
		if cc.Size != c.size || cc.VaultID != v.id || cc.Hash != base64.RawURLEncoding.EncodeToString(c.hash) {
			problem(c.size, "checkpoint at %d does not match its signed statement", c.size)
			continue
		}
		if c.size > n {
			problem(n+1, "a signed checkpoint covers %d entries but only %d are present (truncated)", c.size, n)
			continue
		}
		if h := cps[c.size]; h == nil || !bytes.Equal(h, c.hash) {
			problem(c.size, "the log up to %d no longer matches its signed checkpoint", c.size)
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
	rep.OK = len(rep.Problems) == 0
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
