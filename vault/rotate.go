package vault

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/binary"
	"errors"
	"strconv"
	"time"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault/internal/crypt"
)

// Key rotation.
//
// Signing key: a new Ed25519 key signs from now on. The old one is kept:
// its public key stays in the JWKS until every grant it signed has ended
// (and a day more, for notices and claims it signed), and stays in the
// keyring for good, so old audit checkpoints still verify.
//
// Record key: a new random 256-bit key, stored sealed, encrypts every write
// from now on. Records under older keys are re-encrypted in the
// background, a batch per transaction; every row names its key, so the
// vault reads throughout, and after a crash the work resumes where the
// rows say it stopped.

// RotationResult says what a rotation did.
type RotationResult struct {
	SigningKey       string `json:"signing_key,omitempty"` // the new kid
	RetiredKey       string `json:"retired_key,omitempty"`
	RecordKeyID      uint32 `json:"record_key_id,omitempty"`
	RecordsToRewrite int64  `json:"records_to_reencrypt"`
}

// KeyStatus describes the vault's keys.
type KeyStatus struct {
	SigningKey       string   `json:"signing_key"`
	PublishedKeys    []string `json:"published_keys"`
	RecordKeyID      uint32   `json:"record_key_id"`
	RecordsToRewrite int64    `json:"records_to_reencrypt"`
	// UnreadableRecords failed their integrity check while being
	// re-encrypted: skipped, left as they are, to restore from a backup.
	UnreadableRecords []string `json:"unreadable_records,omitempty"`
}

// RotateKeys rotates the signing key, the record key, or both.
func (v *Vault) RotateKeys(ctx context.Context, signing, records bool) (RotationResult, error) {
	if !signing && !records {
		return RotationResult{}, policy.E(policy.KindInvalid, "invalid_request", "say which keys to rotate")
	}
	var res RotationResult
	var newSigner *vaultSigner
	var newRecordKey []byte // cached only once the rotation committed
	err := v.db.tx(ctx, func(tx *sql.Tx) error {
		now := v.now().Unix()
		if signing {
			// Retire whatever is active in this transaction (not what this
			// process last saw): concurrent rotations serialize on the
			// writer, and each leaves exactly one active key.
			active, err := v.st.rows(ctx, tx, tSigningKeys, `retired IS NULL`)
			if err != nil {
				return err
			}
			if len(active) != 1 {
				return ErrTampered.WithCause(errors.New("not exactly one active signing key"))
			}
			old := active[0].str("kid")
			if err := v.st.update(ctx, tx, tSigningKeys, old, `retired = ?`, now); err != nil {
				return err
			}
			s, err := v.newSigningKey(ctx, tx)
			if err != nil {
				return err
			}
			// Its place in the order of keys: rotations serialize on the
			// writer, so a later commit has a higher count.
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM signing_keys`).Scan(&s.seq); err != nil {
				return err
			}
			newSigner, res.SigningKey, res.RetiredKey = s, s.kid, old
			if err := v.appendAudit(ctx, tx, AuditEntry{Event: EvKeyRotated, Actor: "owner", Reason: "signing key " + old + " -> " + s.kid}); err != nil {
				return err
			}
		}
		if records {
			m, err := v.st.row(ctx, tx, tMeta, 1)
			if err != nil {
				return err
			}
			cur := uint32(m.i64("record_key_id"))
			next := cur + 1
			wrap, err := v.wrapKey(crypt.RecordKeyWrap)
			if err != nil {
				return err
			}
			key := crypt.Random(crypt.KeySize)
			sealed := crypt.Seal(wrap, key, recordKeyWrapAAD(v.id, next))
			crypt.Wipe(wrap)
			if err := v.st.insert(ctx, tx, tRecKeys, int64(next), `INSERT INTO record_keys (id, sealed, created) VALUES (?, ?, ?)`, next, sealed, now); err != nil {
				return err
			}
			if err := v.st.update(ctx, tx, tMeta, 1, `record_key_id = ?`, next); err != nil {
				return err
			}
			newRecordKey = key
			res.RecordKeyID = next
			if err := v.appendAudit(ctx, tx, AuditEntry{Event: EvKeyRotated, Actor: "owner", Reason: "record key " + itoa(cur) + " -> " + itoa(next)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if newSigner != nil {
			crypt.Wipe(newSigner.priv)
		}
		crypt.Wipe(newRecordKey)
		return RotationResult{}, err
	}
	if newSigner != nil {
		v.keys.mu.Lock()
		// Only a key from a later commit replaces the one in use: two
		// rotations may return in either order, and memory must end with
		// the key the database has as active.
		if v.keys.current == nil || newSigner.seq > v.keys.current.seq {
			v.keys.current = newSigner
		}
		v.keys.public[newSigner.kid] = newSigner.priv.Public().(ed25519.PublicKey)
		v.keys.mu.Unlock()
		v.refreshPublished(ctx)
	}
	if records {
		v.mu.Lock()
		if v.recordKeys != nil {
			v.recordKeys[res.RecordKeyID] = newRecordKey
		}
		v.recordKeyID = res.RecordKeyID
		v.mu.Unlock()
		v.wakeReencrypt()
	}
	res.RecordsToRewrite, _ = v.recordsToRewrite(ctx)
	v.log.Info("keys rotated", "signing", res.SigningKey, "record_key", res.RecordKeyID)
	return res, nil
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

func recordKeyWrapAAD(vaultID string, id uint32) []byte {
	return crypt.AAD(crypt.RecordKeyAAD, []byte(vaultID), binary.BigEndian.AppendUint32(nil, id))
}

// legacyRecordKeyWrapAAD is the AAD of record keys sealed before schema 13.
func legacyRecordKeyWrapAAD(vaultID string, id uint32) []byte {
	return crypt.AAD(labelRecordKeyWrap, []byte(vaultID), binary.BigEndian.AppendUint32(nil, id))
}

// loadRecordKey reads a sealed record key (ids above 1).
func (v *Vault) loadRecordKey(n uint32) ([]byte, error) {
	r, err := v.st.row(context.Background(), v.db.r, tRecKeys, int64(n))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrTampered.WithCause(errors.New("unknown record key " + itoa(n)))
	}
	if err != nil {
		return nil, storageError("read record key", err)
	}
	sealed := r.bytes("sealed")
	wrap, err := v.wrapKey(crypt.RecordKeyWrap)
	if err != nil {
		return nil, err
	}
	defer crypt.Wipe(wrap)
	key, err := crypt.Open(wrap, sealed, recordKeyWrapAAD(v.id, n))
	if err != nil || len(key) != crypt.KeySize {
		return nil, ErrTampered.WithCause(errors.New("record key " + itoa(n) + " does not open"))
	}
	return key, nil
}

// refreshPublished works out which retired signing keys the JWKS still
// needs: those with a grant that has not ended, and any retired less than a
// day ago.
func (v *Vault) refreshPublished(ctx context.Context) {
	now := v.opts.Now().Unix()
	rows, err := v.db.r.QueryContext(ctx, `SELECT k.kid FROM signing_keys k WHERE k.retired IS NULL OR k.retired > ?
		OR EXISTS (SELECT 1 FROM grants g WHERE g.kid = k.kid AND g.revoked IS NULL AND g.expires > ?)`, now-24*3600, now)
	if err != nil {
		v.log.Error("published keys", "err", err)
		return
	}
	defer rows.Close()
	pub := map[string]bool{}
	for rows.Next() {
		var kid string
		if err := rows.Scan(&kid); err != nil {
			v.log.Error("published keys", "err", err)
			return
		}
		pub[kid] = true
	}
	if err := rows.Err(); err != nil {
		v.log.Error("published keys", "err", err)
		return
	}
	v.keys.mu.Lock()
	v.keys.published = pub
	v.keys.mu.Unlock()
}

// KeyStatus reports the keys in use.
func (v *Vault) KeyStatus(ctx context.Context) (KeyStatus, error) {
	v.refreshPublished(ctx)
	st := KeyStatus{SigningKey: v.signer().kid}
	for _, k := range v.JWKS().Keys {
		st.PublishedKeys = append(st.PublishedKeys, k.KeyID)
	}
	v.mu.RLock()
	st.RecordKeyID = v.recordKeyID
	v.mu.RUnlock()
	n, err := v.recordsToRewrite(ctx)
	if err != nil {
		return st, err
	}
	st.RecordsToRewrite = n
	rows, err := v.db.r.QueryContext(ctx, `SELECT id FROM unreadable_records ORDER BY found, id LIMIT 100`)
	if err != nil {
		return st, storageError("key status", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return st, storageError("key status", err)
		}
		st.UnreadableRecords = append(st.UnreadableRecords, id)
	}
	return st, storageError0("key status", rows.Err())
}

func (v *Vault) recordsToRewrite(ctx context.Context) (int64, error) {
	v.mu.RLock()
	cur := v.recordKeyID
	v.mu.RUnlock()
	var n int64
	err := v.db.r.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM records WHERE key_id != ? AND id NOT IN (SELECT id FROM unreadable_records))
		+ (SELECT count(*) FROM documents WHERE key_id != ? AND id NOT IN (SELECT id FROM unreadable_records))`, cur, cur).Scan(&n)
	if err != nil {
		return 0, storageError("count records", err)
	}
	return n, nil
}

func (v *Vault) wakeReencrypt() {
	select {
	case v.reencryptWake <- struct{}{}:
	default:
	}
}

// reencryptBatch moves up to n records to the current record key in one
// transaction and reports how many it handled (moved, or skipped as
// unreadable).
func (v *Vault) reencryptBatch(ctx context.Context, n int) (int, error) {
	v.mu.RLock()
	cur := v.recordKeyID
	v.mu.RUnlock()
	moved := 0
	err := v.db.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, collection, version, key_id, sealed, created, updated FROM records
			WHERE key_id != ? AND id NOT IN (SELECT id FROM unreadable_records) LIMIT ?`, cur, n)
		if err != nil {
			return err
		}
		type row struct {
			id, coll         string
			version          int64
			keyID            uint32
			sealed           []byte
			created, updated int64
		}
		var batch []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.coll, &r.version, &r.keyID, &r.sealed, &r.created, &r.updated); err != nil {
				rows.Close()
				return err
			}
			batch = append(batch, r)
		}
		rows.Close()
		for _, r := range batch {
			pt, err := v.openRecord(r.coll, r.id, r.version, r.keyID, r.created, r.updated, r.sealed)
			if isTampered(err) {
				// Never rewritten (that would launder it), and never again
				// in the way of the others: skipped, kept, and reported.
				if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO unreadable_records (id, found) VALUES (?, ?)`, r.id, v.now().Unix()); err != nil {
					return err
				}
				v.log.Error("record does not open; re-encryption skips it", "id", r.id)
				moved++ // handled: the loop goes on to the rest
				continue
			}
			if err != nil {
				return err
			}
			keyID, sealed, err := v.sealRecord(r.coll, r.id, r.version, r.created, r.updated, pt)
			crypt.Wipe(pt)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE records SET key_id = ?, sealed = ? WHERE id = ? AND version = ? AND key_id = ?`,
				keyID, sealed, r.id, r.version, r.keyID); err != nil {
				return err
			}
			moved++
		}
		if moved < n {
			k, err := v.rewrapDocuments(ctx, tx, cur, n-moved)
			moved += k
			return err
		}
		return nil
	})
	return moved, err
}

// rewrapDocuments moves up to n document keys to the current record key.
// Only the 32-byte key is re-sealed: the chunks stay as they are, so a
// rotation costs the same for a 4 GiB document as for a letter.
func (v *Vault) rewrapDocuments(ctx context.Context, tx *sql.Tx, cur uint32, n int) (int, error) {
	rows, err := v.st.rows(ctx, tx, tDocuments, `key_id != ? AND id NOT IN (SELECT id FROM unreadable_records) LIMIT ?`, cur, n)
	if isTampered(err) {
		// A whole batch is refused for one bad row; find it row by row.
		return 0, v.skipTamperedDocuments(ctx, tx, cur)
	}
	if err != nil {
		return 0, err
	}
	newKey, err := v.recordKey(cur)
	if err != nil {
		return 0, err
	}
	done := 0
	for _, r := range rows {
		id, old := r.str("id"), uint32(r.i64("key_id"))
		oldKey, err := v.recordKey(old)
		if err != nil {
			return done, err
		}
		dk, err := crypt.Open(oldKey, r.bytes("wrapped"), docKeyAAD(v.id, id, old))
		if err != nil {
			v.log.Error("document key does not open; re-encryption skips it", "id", id)
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO unreadable_records (id, found) VALUES (?, ?)`, id, v.now().Unix()); err != nil {
				return done, err
			}
			done++
			continue
		}
		wrapped := crypt.Seal(newKey, dk, docKeyAAD(v.id, id, cur))
		crypt.Wipe(dk)
		if err := v.st.update(ctx, tx, tDocuments, id, `key_id = ?, wrapped = ?`, cur, wrapped); err != nil {
			return done, err
		}
		done++
	}
	return done, nil
}

// skipTamperedDocuments marks the document rows under old keys whose MAC
// fails as unreadable, so that re-encryption goes on with the rest.
func (v *Vault) skipTamperedDocuments(ctx context.Context, tx *sql.Tx, cur uint32) error {
	ids, err := tx.QueryContext(ctx, `SELECT id FROM documents WHERE key_id != ? AND id NOT IN (SELECT id FROM unreadable_records)`, cur)
	if err != nil {
		return err
	}
	var all []string
	for ids.Next() {
		var id string
		if err := ids.Scan(&id); err != nil {
			ids.Close()
			return err
		}
		all = append(all, id)
	}
	ids.Close()
	for _, id := range all {
		if _, err := v.st.row(ctx, tx, tDocuments, id); isTampered(err) {
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO unreadable_records (id, found) VALUES (?, ?)`, id, v.now().Unix()); err != nil {
				return err
			}
		}
	}
	return nil
}

// RunReencryption re-encrypts records under old keys until none are left,
// then waits for the next rotation, until ctx ends. Serve runs it.
func (v *Vault) RunReencryption(ctx context.Context) {
	for {
		for ctx.Err() == nil {
			n, err := v.reencryptBatch(ctx, 200)
			if err != nil {
				v.log.Error("re-encryption", "err", err)
				break
			}
			if n == 0 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-v.reencryptWake:
		case <-time.After(time.Minute):
		}
	}
}
