package vault

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pdvault/pdvault/vault/internal/crypt"
)

// Authenticated state. Every row that decides what an organization may do,
// or that the owner is shown as history, carries a MAC under the state key
// (crypt.RowMAC): requests and decisions, grants and their end, relationships
// and their keys, the vault's signing keys (retired ones too), record keys,
// terms versions, notices, receipts, intents and offers, and the meta row.
// Rows are read only through stateAuth.rows/row, which check the MAC of
// every row before its values reach the caller; rows are written through
// stamp (after an insert) and update (check, change, stamp), so a tampered
// row is never re-authenticated by a later write. A row that fails is a
// tampered error: the operation is refused and the owner is told.

// table is one authenticated table: its primary key and every column in
// the fixed order the MAC covers. All columns are covered.
type table struct {
	name string
	key  string
	cols []string
	idx  map[string]int
	list string // "c1, c2, ..." for SELECT
}

func newTable(name, key string, cols ...string) *table {
	t := &table{name: name, key: key, cols: cols, idx: map[string]int{}, list: strings.Join(cols, ", ")}
	for i, c := range cols {
		t.idx[c] = i
	}
	if _, ok := t.idx[key]; !ok {
		panic("table " + name + ": key column not among its columns")
	}
	return t
}

var (
	tMeta        = newTable("meta", "id", "id", "vault_id", "kdf", "wrapped_master", "record_key_id", "created", "terms_hash")
	tSigningKeys = newTable("signing_keys", "kid", "kid", "public", "sealed", "created", "retired")
	tTerms       = newTable("terms", "hash", "hash", "body", "created")
	tRequests    = newTable("requests", "id", "id", "client_id", "jwk", "client_name", "client_uri", "callback_uri", "purpose", "purpose_text",
		"details", "duration", "retention", "terms_hash", "jti", "signed", "status", "created", "expires", "poll_interval", "last_poll",
		"decided", "granted_details", "granted_duration", "deny_reason", "grant_id")
	tGrants = newTable("grants", "id", "id", "request_id", "client_id", "client_name", "subject", "details", "purpose", "terms_hash", "kid",
		"issued", "expires", "revoked", "retention", "ended_by")
	tRelationships = newTable("relationships", "id", "id", "name", "uri", "first_seen", "last_seen", "domain", "verified", "challenge", "challenge_expires")
	tRelKeys       = newTable("relationship_keys", "client_id", "client_id", "relationship_id", "jwk", "added", "link")
	tNotices       = newTable("notices", "id", "id", "relationship_id", "grant_id", "event", "url", "signed", "status", "attempts", "next_attempt",
		"last_error", "created", "delivered")
	tReceipts = newTable("receipts", "id", "id", "grant_id", "client_id", "jti", "signed", "deleted", "deleted_at", "statement", "received", "complete")
	tIntents  = newTable("intents", "id", "id", "body", "signed", "public", "sealed", "status", "created", "expires", "closed")
	tOffers   = newTable("offers", "id", "id", "intent_id", "client_id", "jwk", "client_name", "client_uri", "signed", "body", "jti", "status", "received")
	tRecKeys  = newTable("record_keys", "id", "id", "sealed", "created")
	tRelStats = newTable("relationship_stats", "relationship_id", "relationship_id", "reads", "last_read")
	tIssuers  = newTable("issuers", "url", "url", "first_used")
	tDomain   = newTable("domain", "id", "id", "name", "set_at")
)

// authTables is every authenticated table, for migration and verification.
var authTables = []*table{tMeta, tSigningKeys, tTerms, tRequests, tGrants, tRelationships, tRelKeys, tNotices, tReceipts, tIntents, tOffers, tRecKeys, tAuditHead, tDevices, tRelStats, tShutdown, tDocuments, tAgreements, tIssuers, tDomain}

// row is one authenticated row whose MAC has been checked.
type row struct {
	t    *table
	vals []any
}

func (r row) val(c string) any {
	i, ok := r.t.idx[c]
	if !ok {
		panic("table " + r.t.name + " has no column " + c)
	}
	return r.vals[i]
}

// str is a text column; "" for NULL.
func (r row) str(c string) string {
	switch x := r.val(c).(type) {
	case string:
		return x
	case []byte:
		return string(x)
	}
	return ""
}

// i64 is an integer column; 0 for NULL.
func (r row) i64(c string) int64 {
	n, _ := r.val(c).(int64)
	return n
}

// bytes is a blob column; nil for NULL.
func (r row) bytes(c string) []byte {
	switch x := r.val(c).(type) {
	case string:
		return []byte(x)
	case []byte:
		return x
	}
	return nil
}

func (r row) null(c string) bool { return r.val(c) == nil }

// nullI64 is an integer column that may be NULL.
func (r row) nullI64(c string) sql.NullInt64 {
	if r.null(c) {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: r.i64(c), Valid: true}
}

type queryer interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// stateAuth checks and writes row MACs for one vault.
type stateAuth struct {
	key     []byte
	vaultID string
	log     func(table, key string)

	mu     sync.Mutex
	alarms []string // tampered rows seen since the vault was opened (bounded)
	count  atomic.Int64
}

const maxAlarms = 100

func newStateAuth(master []byte, vaultID string, log *slog.Logger) *stateAuth {
	return &stateAuth{key: crypt.Derive(master, vaultID, crypt.StateMAC), vaultID: vaultID, log: func(table, key string) {
		log.Error("stored row failed its integrity check: refused", "table", table, "key", key)
	}}
}

// tampered records a failed row and returns the error to give the caller.
func (s *stateAuth) tampered(t *table, r row) error {
	key := fmt.Sprint(r.vals[t.idx[t.key]])
	what := t.name + " " + key
	s.count.Add(1)
	s.mu.Lock()
	if len(s.alarms) < maxAlarms {
		s.alarms = append(s.alarms, what)
	}
	s.mu.Unlock()
	if s.log != nil {
		s.log(t.name, key)
	}
	// The row's name goes to the log and the owner's alarms, not to
	// whoever made the request.
	return ErrTampered.WithCause(errors.New(what))
}

// Alarms returns the tampered rows seen since the vault was opened.
func (s *stateAuth) Alarms() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.alarms...)
}

// rows runs SELECT <every column>, mac FROM t WHERE <where> and checks
// each row's MAC before returning any. where may carry ORDER BY and LIMIT.
func (s *stateAuth) rows(ctx context.Context, q queryer, t *table, where string, args ...any) ([]row, error) {
	return s.query(ctx, q, t, true, where, args...)
}

// query is rows; alarm says whether a failing row is an alarm (not when
// verification reads it: verification reports it itself).
func (s *stateAuth) query(ctx context.Context, q queryer, t *table, alarm bool, where string, args ...any) ([]row, error) {
	rs, err := q.QueryContext(ctx, `SELECT `+t.list+`, mac FROM `+t.name+` WHERE `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		r := row{t: t, vals: make([]any, len(t.cols))}
		var mac []byte
		dest := make([]any, len(t.cols)+1)
		for i := range r.vals {
			dest[i] = &r.vals[i]
		}
		dest[len(t.cols)] = &mac
		if err := rs.Scan(dest...); err != nil {
			return nil, err
		}
		if err := crypt.CheckRow(s.key, s.vaultID, t.name, t.cols, r.vals, mac); err != nil {
			if !alarm {
				return nil, ErrTampered
			}
			return nil, s.tampered(t, r)
		}
		out = append(out, r)
	}
	return out, rs.Err()
}

// row returns the one row of t with key k, checked; sql.ErrNoRows if none.
func (s *stateAuth) row(ctx context.Context, q queryer, t *table, k any) (row, error) {
	rs, err := s.rows(ctx, q, t, t.key+` = ?`, k)
	if err != nil {
		return row{}, err
	}
	if len(rs) == 0 {
		return row{}, sql.ErrNoRows
	}
	return rs[0], nil
}

// stamp computes and stores the MAC of the row of t with key k, as it now
// is. Call it only for a row this transaction inserted or has just checked
// and changed (update does both).
func (s *stateAuth) stamp(ctx context.Context, tx *sql.Tx, t *table, k any) error {
	vals := make([]any, len(t.cols))
	dest := make([]any, len(t.cols))
	for i := range vals {
		dest[i] = &vals[i]
	}
	if err := tx.QueryRowContext(ctx, `SELECT `+t.list+` FROM `+t.name+` WHERE `+t.key+` = ?`, k).Scan(dest...); err != nil {
		return fmt.Errorf("stamp %s: %w", t.name, err)
	}
	mac, err := crypt.RowMAC(s.key, s.vaultID, t.name, t.cols, vals)
	if err != nil {
		return fmt.Errorf("stamp %s: %w", t.name, err)
	}
	_, err = tx.ExecContext(ctx, `UPDATE `+t.name+` SET mac = ? WHERE `+t.key+` = ?`, mac, k)
	return err
}

// insert runs an INSERT and stamps the new row.
func (s *stateAuth) insert(ctx context.Context, tx *sql.Tx, t *table, k any, query string, args ...any) error {
	if _, err := tx.ExecContext(ctx, query, args...); err != nil {
		return err
	}
	return s.stamp(ctx, tx, t, k)
}

// put writes a whole row whose every value the caller knows (vals in the
// table's column order, typed as the database returns them: int64, string,
// []byte or nil), replacing any row with the same key, with its MAC.
func (s *stateAuth) put(ctx context.Context, tx *sql.Tx, t *table, vals ...any) error {
	mac, err := crypt.RowMAC(s.key, s.vaultID, t.name, t.cols, vals)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO `+t.name+` (`+t.list+`, mac) VALUES (?`+strings.Repeat(", ?", len(t.cols))+`)`, append(vals, mac)...)
	return err
}

// update checks the row of t with key k, applies SET set to it and
// stamps the result: an edit can never launder a tampered row.
func (s *stateAuth) update(ctx context.Context, tx *sql.Tx, t *table, k any, set string, args ...any) error {
	if _, err := s.row(ctx, tx, t, k); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE `+t.name+` SET `+set+` WHERE `+t.key+` = ?`, append(args, k)...); err != nil {
		return err
	}
	return s.stamp(ctx, tx, t, k)
}

// stampAll authenticates every row of every authenticated table as it is.
// Only migrations call it: rows present when a vault is upgraded are
// trusted once, then never again.
func (s *stateAuth) stampAll(ctx context.Context, tx *sql.Tx) error {
	for _, t := range authTables {
		if err := s.stampTable(ctx, tx, t); err != nil {
			return err
		}
	}
	return nil
}

// stampTable authenticates every row of one table as it is (migrations).
func (s *stateAuth) stampTable(ctx context.Context, tx *sql.Tx, t *table) error {
	rs, err := tx.QueryContext(ctx, `SELECT `+t.key+` FROM `+t.name)
	if err != nil {
		return err
	}
	var keys []any
	for rs.Next() {
		var k any
		if err := rs.Scan(&k); err != nil {
			rs.Close()
			return err
		}
		keys = append(keys, k)
	}
	rs.Close()
	for _, k := range keys {
		if err := s.stamp(ctx, tx, t, k); err != nil {
			return err
		}
	}
	return nil
}

// verifyAll checks every row of every authenticated table and returns the
// ones that fail (at most max).
func (s *stateAuth) verifyAll(ctx context.Context, q queryer, max int) ([]string, error) {
	var bad []string
	for _, t := range authTables {
		rs, err := q.QueryContext(ctx, `SELECT `+t.list+`, mac FROM `+t.name)
		if err != nil {
			return nil, err
		}
		vals := make([]any, len(t.cols))
		var mac []byte
		dest := make([]any, len(t.cols)+1)
		for i := range vals {
			dest[i] = &vals[i]
		}
		dest[len(t.cols)] = &mac
		for rs.Next() {
			if err := rs.Scan(dest...); err != nil {
				rs.Close()
				return nil, err
			}
			if crypt.CheckRow(s.key, s.vaultID, t.name, t.cols, vals, mac) != nil && len(bad) < max {
				bad = append(bad, fmt.Sprintf("%s %v", t.name, vals[t.idx[t.key]]))
			}
		}
		if err := rs.Err(); err != nil {
			rs.Close()
			return nil, err
		}
		rs.Close()
	}
	return bad, nil
}

// isTampered reports whether err is a tampered error.
func isTampered(err error) bool { return errors.Is(err, ErrTampered) }
