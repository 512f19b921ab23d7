package vault

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pdvault/pdvault/vault/internal/crypt"
)

// upgradeState is the part of migrating to schema 6 that needs the master
// key: records are re-sealed with their times in the AAD, and every row
// of every authenticated table gets its MAC. It runs in the migration's
// transaction, so a vault is upgraded whole or not at all. Rows present
// at the upgrade are trusted once (nothing authenticated them before);
// docs/security.md says so.
func upgradeState(ctx context.Context, master []byte, vaultID string) func(tx *sql.Tx, from int) error {
	return func(tx *sql.Tx, from int) error {
		st := &stateAuth{key: crypt.Derive(master, vaultID, crypt.StateMAC), vaultID: vaultID}
		defer crypt.Wipe(st.key)
		if from < schemaState {
			if err := resealRecordsV1(ctx, tx, master, vaultID); err != nil {
				return fmt.Errorf("re-seal records: %w", err)
			}
			if err := st.stampAll(ctx, tx); err != nil {
				return err
			}
		}
		if from < schemaRekey {
			if err := rekeySecrets(ctx, tx, st, master, vaultID); err != nil {
				return fmt.Errorf("re-key stored secrets: %w", err)
			}
		}
		if from < schemaTree {
			if err := upgradeAudit(ctx, tx, st, master, vaultID); err != nil {
				return fmt.Errorf("audit tree: %w", err)
			}
		}
		if from < schemaReplay {
			// The release before kept no replay cache across restarts
			// at all; this first start is treated as after a clean stop.
			if err := st.put(ctx, tx, tShutdown, int64(1), int64(0), int64(0), replayDigest(nil)); err != nil {
				return err
			}
		}
		if from >= schemaState && from < schemaStats {
			// The counters the migration derived from the log (older
			// vaults had them stamped with everything else above).
			if err := st.stampTable(ctx, tx, tRelStats); err != nil {
				return err
			}
		}
		return nil
	}
}

// resealRecordsV1 moves every record from the schema-5 AAD (no times) to
// the current one. A record that does not open under the old AAD stops
// the upgrade: it was tampered with before, and re-sealing would launder it.
func resealRecordsV1(ctx context.Context, tx *sql.Tx, master []byte, vaultID string) error {
	keys := map[uint32][]byte{}
	defer func() {
		for _, k := range keys {
			crypt.Wipe(k)
		}
	}()
	wrap := crypt.DeriveLegacy(master, vaultID, crypt.LegacySecretWrap, 0)
	defer crypt.Wipe(wrap)
	keyOf := func(n uint32) ([]byte, error) {
		if k, ok := keys[n]; ok {
			return k, nil
		}
		var k []byte
		if n == 1 {
			k = crypt.DeriveLegacy(master, vaultID, crypt.LegacyRecordKey, 1)
		} else {
			var sealed []byte
			if err := tx.QueryRowContext(ctx, `SELECT sealed FROM record_keys WHERE id = ?`, n).Scan(&sealed); err != nil {
				return nil, ErrTampered.WithCause(fmt.Errorf("record key %d: %w", n, err))
			}
			var err error
			if k, err = crypt.Open(wrap, sealed, legacyRecordKeyWrapAAD(vaultID, n)); err != nil {
				return nil, ErrTampered.WithCause(fmt.Errorf("record key %d: %w", n, err))
			}
		}
		keys[n] = k
		return k, nil
	}
	type rec struct {
		seq              int64
		id, coll         string
		version          int64
		keyID            uint32
		sealed           []byte
		created, updated int64
	}
	var last int64
	for {
		rows, err := tx.QueryContext(ctx, `SELECT seq, id, collection, version, key_id, sealed, created, updated FROM records WHERE seq > ? ORDER BY seq LIMIT 500`, last)
		if err != nil {
			return err
		}
		var batch []rec
		for rows.Next() {
			var r rec
			if err := rows.Scan(&r.seq, &r.id, &r.coll, &r.version, &r.keyID, &r.sealed, &r.created, &r.updated); err != nil {
				rows.Close()
				return err
			}
			batch = append(batch, r)
		}
		rows.Close()
		if len(batch) == 0 {
			return nil
		}
		for _, r := range batch {
			k, err := keyOf(r.keyID)
			if err != nil {
				return err
			}
			old := crypt.AAD(crypt.LegacyRecordAAD, []byte(vaultID), []byte(r.coll), []byte(r.id), crypt.U64(uint64(r.version)), crypt.U64(uint64(r.keyID)))
			pt, err := crypt.Open(k, r.sealed, old)
			if err != nil {
				return ErrTampered.WithCause(fmt.Errorf("record %s", r.id))
			}
			sealed := crypt.Seal(k, pt, recordAAD(vaultID, r.coll, r.id, r.version, r.keyID, r.created, r.updated))
			crypt.Wipe(pt)
			if _, err := tx.ExecContext(ctx, `UPDATE records SET sealed = ? WHERE seq = ?`, sealed, r.seq); err != nil {
				return err
			}
			last = r.seq
		}
	}
}

// recordAAD binds a sealed record to the exact place it belongs and to its
// times: a ciphertext copied to another id, collection, version, key id or
// vault does not open, and neither does one whose created or updated time
// was changed.
func recordAAD(vaultID, collection, id string, version int64, keyID uint32, created, updated int64) []byte {
	return crypt.AAD(crypt.RecordAAD, []byte(vaultID), []byte(collection), []byte(id), crypt.U64(uint64(version)),
		binary.BigEndian.AppendUint32(nil, keyID), crypt.U64(uint64(created)), crypt.U64(uint64(updated)))
}

// rekeySecrets moves the stored secrets from the one legacy wrapping key
// (HKDF label || uint32, shared by every kind) to one v2 key per kind, and
// stores record key 1, which vaults before schema 13 derived from the
// master key, sealed like the others. Each changed row is checked before
// and re-authenticated after (stateAuth.update).
func rekeySecrets(ctx context.Context, tx *sql.Tx, st *stateAuth, master []byte, vaultID string) error {
	legacy := crypt.DeriveLegacy(master, vaultID, labelSecretKey, 0)
	defer crypt.Wipe(legacy)
	signWrap := crypt.Derive(master, vaultID, crypt.SigningKeyWrap)
	defer crypt.Wipe(signWrap)
	recWrap := crypt.Derive(master, vaultID, crypt.RecordKeyWrap)
	defer crypt.Wipe(recWrap)

	keys, err := st.rows(ctx, tx, tSigningKeys, `1`)
	if err != nil {
		return err
	}
	for _, r := range keys {
		kid := r.str("kid")
		seed, err := crypt.Open(legacy, r.bytes("sealed"), crypt.AAD(labelSigningKeyAAD, []byte(vaultID), []byte(kid)))
		if err != nil {
			return ErrTampered.WithCause(errors.New("signing key " + kid + " does not open"))
		}
		sealed := crypt.Seal(signWrap, seed, signingKeyAAD(vaultID, kid))
		crypt.Wipe(seed)
		if err := st.update(ctx, tx, tSigningKeys, kid, `sealed = ?`, sealed); err != nil {
			return err
		}
	}
	rks, err := st.rows(ctx, tx, tRecKeys, `1`)
	if err != nil {
		return err
	}
	for _, r := range rks {
		n := uint32(r.i64("id"))
		k, err := crypt.Open(legacy, r.bytes("sealed"), legacyRecordKeyWrapAAD(vaultID, n))
		if err != nil {
			return ErrTampered.WithCause(fmt.Errorf("record key %d does not open", n))
		}
		sealed := crypt.Seal(recWrap, k, recordKeyWrapAAD(vaultID, n))
		crypt.Wipe(k)
		if err := st.update(ctx, tx, tRecKeys, int64(n), `sealed = ?`, sealed); err != nil {
			return err
		}
	}
	k1 := crypt.DeriveLegacy(master, vaultID, labelRecordKey, 1)
	defer crypt.Wipe(k1)
	return st.insert(ctx, tx, tRecKeys, int64(1), `INSERT INTO record_keys (id, sealed, created) VALUES (1, ?, 0)`,
		crypt.Seal(recWrap, k1, recordKeyWrapAAD(vaultID, 1)))
}
