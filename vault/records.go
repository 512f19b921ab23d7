package vault

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault/internal/crypt"
)

// Record is one of the owner's records: a JSON object in a collection.
type Record struct {
	ID         string          `json:"id"`
	Collection string          `json:"collection"`
	Version    int64           `json:"version"`
	Created    time.Time       `json:"created"`
	Updated    time.Time       `json:"updated"`
	Data       json.RawMessage `json:"data"`
}

// Page is one page of a listing. Next is empty on the last page.
type Page struct {
	Records []Record `json:"records"`
	Next    string   `json:"next_cursor,omitempty"`
}

// Listing limits.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

var (
	ErrRecordNotFound  = policy.E(policy.KindNotFound, "not_found", "no such record")
	ErrVersionConflict = policy.E(policy.KindConflict, "version_conflict", "the record was changed since the version you named; read it again")
	ErrBadCursor       = policy.E(policy.KindInvalid, "invalid_cursor", "the cursor is not one this vault issued")
	ErrBadLimit        = policy.E(policy.KindInvalid, "invalid_limit", "limit must be a whole number from 1 to 500")
	// ErrTampered is returned when stored data fails its integrity check: a
	// ciphertext that does not open, a row whose MAC does not verify. It is
	// never data: the operation is refused and the owner is told.
	ErrTampered = policy.E(policy.KindInternal, "tampered", "the vault's stored data failed its integrity check; nothing was served and the owner has been told")
)

func (v *Vault) sealRecord(collection, id string, version, created, updated int64, data []byte) (keyID uint32, sealed []byte, err error) {
	v.mu.RLock()
	keyID = v.recordKeyID
	v.mu.RUnlock()
	key, err := v.recordKey(keyID)
	if err != nil {
		return 0, nil, err
	}
	return keyID, crypt.Seal(key, data, recordAAD(v.id, collection, id, version, keyID, created, updated)), nil
}

func (v *Vault) openRecord(collection, id string, version int64, keyID uint32, created, updated int64, sealed []byte) ([]byte, error) {
	key, err := v.recordKey(keyID)
	if err != nil {
		return nil, err
	}
	pt, err := crypt.Open(key, sealed, recordAAD(v.id, collection, id, version, keyID, created, updated))
	if err != nil {
		v.log.Error("record failed its integrity check", "collection", collection, "id", id, "version", version)
		v.st.count.Add(1) // the owner is told (warnTampered)
		return nil, ErrTampered
	}
	return pt, nil
}

// now is the vault's clock at second precision: finer timestamps would
// help correlate a person across organizations and add nothing an owner
// needs.
// recordsTx is db.tx for a transaction that writes records: once it has
// committed, views cached from the records before it are stale.
func (v *Vault) recordsTx(ctx context.Context, fn func(*sql.Tx) error) error {
	if err := v.db.tx(ctx, v.withinQuota(ctx, fn)); err != nil {
		return err
	}
	v.recordsGen.Add(1)
	return nil
}

// rewriteTx is recordsTx for a transaction that changes or removes
// records that exist: a cached view cannot then be brought up to date by
// reading only the rows added since (views.go), and is read again.
func (v *Vault) rewriteTx(ctx context.Context, fn func(*sql.Tx) error) error {
	err := v.db.tx(ctx, v.withinQuota(ctx, fn))
	if err == nil {
		v.recordsRewritten.Add(1)
		v.recordsGen.Add(1)
	}
	return err
}

func (v *Vault) now() time.Time { return v.opts.Now().UTC().Truncate(time.Second) }

// CreateRecord stores a new record in collection and returns it.
func (v *Vault) CreateRecord(ctx context.Context, collection string, data []byte) (Record, error) {
	if err := policy.ValidateCollection(collection); err != nil {
		return Record{}, err
	}
	data, err := policy.NormalizeRecord(data)
	if err != nil {
		return Record{}, err
	}
	now := v.now()
	r := Record{ID: newID(), Collection: collection, Version: 1, Created: now, Updated: now, Data: data}
	keyID, sealed, err := v.sealRecord(collection, r.ID, r.Version, now.Unix(), now.Unix(), data)
	if err != nil {
		return Record{}, err
	}
	err = v.recordsTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO records (id, collection, version, key_id, sealed, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			r.ID, collection, r.Version, keyID, sealed, now.Unix(), now.Unix())
		if err != nil {
			return err
		}
		return v.appendAudit(ctx, tx, AuditEntry{Event: EvRecordCreated, Actor: "owner", Collection: collection, RecordIDs: []string{r.ID}})
	})
	if err != nil {
		return Record{}, err
	}
	return r, nil
}

type rowScanner interface{ Scan(dest ...any) error }

// scanRecord reads the columns id, collection, version, key_id, sealed,
// created, updated and opens the ciphertext.
func (v *Vault) scanRecord(row rowScanner) (Record, int64, error) {
	var (
		r                Record
		seq              int64
		keyID            uint32
		sealed           []byte
		created, updated int64
	)
	if err := row.Scan(&seq, &r.ID, &r.Collection, &r.Version, &keyID, &sealed, &created, &updated); err != nil {
		return Record{}, 0, err
	}
	data, err := v.openRecord(r.Collection, r.ID, r.Version, keyID, created, updated, sealed)
	if err != nil {
		return Record{}, 0, err
	}
	r.Data = data
	r.Created = time.Unix(created, 0).UTC()
	r.Updated = time.Unix(updated, 0).UTC()
	return r, seq, nil
}

const recordColumns = `seq, id, collection, version, key_id, sealed, created, updated`

// GetRecord returns one record. An id of the wrong shape is simply not
// found.
func (v *Vault) GetRecord(ctx context.Context, collection, id string) (Record, error) {
	if err := policy.ValidateCollection(collection); err != nil {
		return Record{}, err
	}
	if !policy.ValidateRecordID(id) {
		return Record{}, ErrRecordNotFound
	}
	row := v.db.r.QueryRowContext(ctx, `SELECT `+recordColumns+` FROM records WHERE id = ? AND collection = ?`, id, collection)
	r, _, err := v.scanRecord(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Record{}, ErrRecordNotFound
	}
	if err != nil {
		return Record{}, storageError("get record", err)
	}
	return r, nil
}

// UpdateRecord replaces the data of a record and bumps its version. With
// ifVersion > 0 the update happens only if the stored version matches
// (optimistic concurrency, as HTTP If-Match).
func (v *Vault) UpdateRecord(ctx context.Context, collection, id string, data []byte, ifVersion int64) (Record, error) {
	if err := policy.ValidateCollection(collection); err != nil {
		return Record{}, err
	}
	data, err := policy.NormalizeRecord(data)
	if err != nil {
		return Record{}, err
	}
	if !policy.ValidateRecordID(id) {
		return Record{}, ErrRecordNotFound
	}
	now := v.now()
	var r Record
	err = v.rewriteTx(ctx, func(tx *sql.Tx) error {
		var version, created int64
		err := tx.QueryRowContext(ctx, `SELECT version, created FROM records WHERE id = ? AND collection = ?`, id, collection).Scan(&version, &created)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrRecordNotFound
		}
		if err != nil {
			return err
		}
		if ifVersion > 0 && ifVersion != version {
			return ErrVersionConflict
		}
		r = Record{ID: id, Collection: collection, Version: version + 1, Created: time.Unix(created, 0).UTC(), Updated: now, Data: data}
		keyID, sealed, err := v.sealRecord(collection, id, r.Version, created, now.Unix(), data)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE records SET version = ?, key_id = ?, sealed = ?, updated = ? WHERE id = ?`,
			r.Version, keyID, sealed, now.Unix(), id)
		if err != nil {
			return err
		}
		return v.appendAudit(ctx, tx, AuditEntry{Event: EvRecordUpdated, Actor: "owner", Collection: collection, RecordIDs: []string{id}})
	})
	if err != nil {
		return Record{}, err
	}
	return r, nil
}

// DeleteRecord removes a record. With ifVersion > 0 it deletes only that
// version. The page that held it is overwritten (secure_delete).
func (v *Vault) DeleteRecord(ctx context.Context, collection, id string, ifVersion int64) error {
	if err := policy.ValidateCollection(collection); err != nil {
		return err
	}
	if !policy.ValidateRecordID(id) {
		return ErrRecordNotFound
	}
	return v.rewriteTx(ctx, func(tx *sql.Tx) error {
		var version int64
		err := tx.QueryRowContext(ctx, `SELECT version FROM records WHERE id = ? AND collection = ?`, id, collection).Scan(&version)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrRecordNotFound
		}
		if err != nil {
			return err
		}
		if ifVersion > 0 && ifVersion != version {
			return ErrVersionConflict
		}
		if _, err = tx.ExecContext(ctx, `DELETE FROM records WHERE id = ?`, id); err != nil {
			return err
		}
		if collection == DocumentsCollection {
			// A document's metadata and its bytes go together.
			if err := deleteDocumentRows(ctx, tx, id); err != nil {
				return err
			}
		}
		return v.appendAudit(ctx, tx, AuditEntry{Event: EvRecordDeleted, Actor: "owner", Collection: collection, RecordIDs: []string{id}})
	})
}

// ListRecords returns up to limit records of a collection in creation
// order, starting after cursor. Each page costs one index range scan.
func (v *Vault) ListRecords(ctx context.Context, collection string, limit int, cursor string) (Page, error) {
	if err := policy.ValidateCollection(collection); err != nil {
		return Page{}, err
	}
	if limit == 0 {
		limit = DefaultPageSize
	}
	if limit < 1 || limit > MaxPageSize {
		return Page{}, ErrBadLimit
	}
	after, err := decodeCursor(cursor)
	if err != nil {
		return Page{}, err
	}
	// One extra row tells whether there is a next page.
	rows, err := v.db.r.QueryContext(ctx, `SELECT `+recordColumns+` FROM records WHERE collection = ? AND seq > ? ORDER BY seq LIMIT ?`,
		collection, after, limit+1)
	if err != nil {
		return Page{}, storageError("list records", err)
	}
	defer rows.Close()
	p := Page{Records: []Record{}}
	var last int64
	for rows.Next() {
		if len(p.Records) == limit {
			p.Next = encodeCursor(last)
			break
		}
		r, seq, err := v.scanRecord(rows)
		if err != nil {
			return Page{}, storageError("list records", err)
		}
		p.Records = append(p.Records, r)
		last = seq
	}
	if err := rows.Err(); err != nil {
		return Page{}, storageError("list records", err)
	}
	return p, nil
}

// Cursors are opaque to clients: a version byte and the last sequence
// number, base64url. They reveal only list position, which the caller had.
func encodeCursor(seq int64) string {
	b := append([]byte{1}, binary.BigEndian.AppendUint64(nil, uint64(seq))...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 9 || b[0] != 1 {
		return 0, ErrBadCursor
	}
	seq := binary.BigEndian.Uint64(b[1:])
	if seq > 1<<62 {
		return 0, ErrBadCursor
	}
	return int64(seq), nil
}

// Collection is a collection name and how many records it holds.
type Collection struct {
	Name    string `json:"name"`
	Records int64  `json:"records"`
}

// ListCollections lists the collections that hold records, by name.
func (v *Vault) ListCollections(ctx context.Context) ([]Collection, error) {
	rows, err := v.db.r.QueryContext(ctx, `SELECT collection, count(*) FROM records GROUP BY collection ORDER BY collection`)
	if err != nil {
		return nil, storageError("list collections", err)
	}
	defer rows.Close()
	out := []Collection{}
	for rows.Next() {
		var c Collection
		if err := rows.Scan(&c.Name, &c.Records); err != nil {
			return nil, storageError("list collections", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, storageError("list collections", err)
	}
	return out, nil
}

// CreateRecords stores many records in one transaction: all or none.
func (v *Vault) CreateRecords(ctx context.Context, collection string, data [][]byte) ([]Record, error) {
	if err := policy.ValidateCollection(collection); err != nil {
		return nil, err
	}
	now := v.now()
	out := make([]Record, len(data))
	sealed := make([][]byte, len(data))
	keys := make([]uint32, len(data))
	for i, d := range data {
		norm, err := policy.NormalizeRecord(d)
		if err != nil {
			return nil, err
		}
		out[i] = Record{ID: newID(), Collection: collection, Version: 1, Created: now, Updated: now, Data: norm}
		if keys[i], sealed[i], err = v.sealRecord(collection, out[i].ID, 1, now.Unix(), now.Unix(), norm); err != nil {
			return nil, err
		}
	}
	err := v.recordsTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO records (id, collection, version, key_id, sealed, created, updated) VALUES (?, ?, 1, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i, r := range out {
			if _, err := stmt.ExecContext(ctx, r.ID, collection, keys[i], sealed[i], now.Unix(), now.Unix()); err != nil {
				return err
			}
		}
		// One entry for the batch: how many, in which collection (the ids
		// of a large import would make an entry without bound).
		return v.appendAudit(ctx, tx, AuditEntry{Event: EvRecordCreated, Actor: "owner", Collection: collection,
			Reason: fmt.Sprintf("%d records", len(out))})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
