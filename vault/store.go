package vault

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/mattn/go-sqlite3"

	"github.com/pdvault/pdvault/policy"
)

// The driver name under which pdvault registers SQLite with per-connection
// settings that the DSN cannot express.
const driverName = "pdvault-sqlite3"

var registerOnce sync.Once

func registerDriver() {
	registerOnce.Do(func() {
		sql.Register(driverName, &sqlite3.SQLiteDriver{
			ConnectHook: func(c *sqlite3.SQLiteConn) error {
				// Sorts and temporary indexes stay in memory so that no
				// intermediate result is spilled to a temp file.
				if _, err := c.Exec("PRAGMA temp_store = MEMORY", nil); err != nil {
					return err
				}
				installFence(c)
				return nil
			},
		})
	})
}

// store is the SQLite database of one vault. Writes go through a single
// connection, so writers queue in Go instead of meeting SQLITE_BUSY; reads
// use a pool of read-only connections that WAL lets run beside the writer.
type store struct {
	w     *sql.DB
	r     *sql.DB
	path  string
	fence Fence // nil: unfenced
	// confirm, when set, is awaited after every commit of tx (Confirm).
	confirm Confirm
}

// storeOptions are how a vault's database is opened.
type storeOptions struct {
	fence    Fence   // non-nil: guards every commit (fence.go)
	confirm  Confirm // non-nil: awaited after every commit of tx
	pageSize int     // a new database's page size; 0: the default
	readers  int     // read connections at most; 0: the default
}

// dsn builds the connection string. WAL lets readers run beside the writer;
// synchronous=FULL makes every commit durable on power loss, not just on a
// crash of the process; secure_delete overwrites freed pages.
func dsn(path string, write bool) string {
	if write {
		return dsnFor(path, modeWrite)
	}
	return dsnFor(path, modeRead)
}

type connMode int

const (
	modeRead     connMode = iota // query_only readers
	modeWrite                    // the single writer, BEGIN IMMEDIATE
	modeSnapshot                 // a plain connection for VACUUM INTO
)

func dsnFor(path string, mode connMode) string {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", "10000")
	q.Set("_synchronous", "FULL")
	q.Set("_secure_delete", "on")
	q.Set("_foreign_keys", "on")
	// Each connection keeps its prepared statements: the hot queries are
	// prepared once, not on every read.
	q.Set("_stmt_cache_size", "64")
	switch mode {
	case modeWrite:
		q.Set("_txlock", "immediate") // every write transaction is BEGIN IMMEDIATE
	case modeRead:
		q.Set("_query_only", "true")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// openStore opens (and with create, first creates) the database at path.
func openStore(path string, create bool, o storeOptions) (*store, error) {
	registerDriver()
	fence := o.fence
	if fence != nil {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, err
		}
		path = abs // SQLite names the file by its absolute path
	}
	if create {
		// Create the file ourselves so it is private from the first byte;
		// SQLite gives its -wal and -shm files the same mode.
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, err
		}
		f.Close()
		size := defaultPageSize
		if o.pageSize != 0 {
			size = o.pageSize
		}
		if err := setPageSize(path, size); err != nil {
			return nil, err
		}
	} else if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	setFence(path, fence)
	w, err := sql.Open(driverName, dsn(path, true))
	if err != nil {
		dropFence(path)
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	// Open the writer first so WAL mode is set before a reader looks.
	if err := w.Ping(); err != nil {
		w.Close()
		dropFence(path)
		return nil, err
	}
	r, err := sql.Open(driverName, dsn(path, false))
	if err != nil {
		w.Close()
		dropFence(path)
		return nil, err
	}
	n := o.readers
	if n <= 0 {
		n = DefaultReaders()
	}
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	return &store{w: w, r: r, path: path, fence: fence, confirm: o.confirm}, nil
}

// DefaultReaders is how many read connections a vault opens at most,
// unless Options.MaxReaders says otherwise.
func DefaultReaders() int { return max(4, runtime.GOMAXPROCS(0)*2) }

// FilesPerVault is how many file descriptors an open vault holds at most
// with readers read connections: the database and its WAL for each
// connection and the writer, and the shared-memory index once.
func FilesPerVault(readers int) int {
	if readers <= 0 {
		readers = DefaultReaders()
	}
	return 2*(readers+1) + 1
}

// defaultPageSize is the page size of new vaults: a document chunk (64
// KiB) then spans 5 pages of an overflow chain instead of 17. A host of
// many small vaults chooses 4 KiB (Options.PageSize): an empty vault is
// 76 b-trees of at least one page each.
const defaultPageSize = 16384

// ErrBadPageSize: Options.PageSize is not one SQLite takes that suits a vault.
var ErrBadPageSize = policy.E(policy.KindInvalid, "invalid_page_size", "a vault's page size is 4096, 8192, 16384, 32768 or 65536 bytes")

func checkPageSize(n int) error {
	switch n {
	case 0, 4096, 8192, 16384, 32768, 65536:
		return nil
	}
	return ErrBadPageSize
}

// setPageSize fixes the page size of a new, empty database file; it can
// only be set before the first table exists, and not once WAL mode is on.
func setPageSize(path string, pageSize int) error {
	db, err := sql.Open(driverName, "file:"+path+"?_journal_mode=DELETE")
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.Exec(fmt.Sprintf(`PRAGMA page_size = %d; CREATE TABLE page_size_set (x); DROP TABLE page_size_set;`, pageSize))
	return err
}

func (s *store) close() error {
	err := errors.Join(s.r.Close(), s.w.Close())
	dropFence(s.path)
	return err
}

// tx runs fn in one write transaction (BEGIN IMMEDIATE) and commits it,
// or rolls back if fn or the commit fails.
// tx runs fn in one write transaction, commits it, and returns once the
// commit is confirmed (Confirm): what a request may be answered on.
func (s *store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	if err := s.txLocal(ctx, fn); err != nil {
		return err
	}
	return s.confirmed(ctx)
}

// confirmed waits for the commits made so far to be confirmed, when the
// vault's host replicates synchronously.
func (s *store) confirmed(ctx context.Context) error {
	if s.confirm == nil {
		return nil
	}
	if err := s.confirm(ctx); err != nil {
		return ErrUnconfirmed.WithCause(err)
	}
	return nil
}

// txLocal is tx without waiting for confirmation: for the group committer,
// whose callers wait for it themselves (commit.go), so that the next batch
// need not wait for this one's confirmation.
func (s *store) txLocal(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return storageError("begin", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return storageError("write", err)
	}
	if err := tx.Commit(); err != nil {
		err = storageError("commit", err)
		// The commit hook can only refuse; the fence says why, when
		// its reason is one a client may hear (ErrReplicaBehind).
		if errors.Is(err, ErrNotHeld) && s.fence != nil {
			var pe *policy.Error
			if why := s.fence(); errors.As(why, &pe) && !errors.Is(why, ErrNotHeld) {
				return why
			}
		}
		return err
	}
	return nil
}

// storageError classifies a database failure. Errors already classified
// pass through; a full disk and a busy database get kinds of their own so
// the client hears 507 or 503 instead of a bare 500.
func storageError(op string, err error) error {
	var pe *policy.Error
	if errors.As(err, &pe) {
		return err
	}
	var se sqlite3.Error
	if errors.As(err, &se) {
		if se.ExtendedCode == sqlite3.ErrConstraintCommitHook {
			return ErrNotHeld.WithCause(fmt.Errorf("%s: %w", op, err))
		}
		switch se.Code {
		case sqlite3.ErrFull:
			return policy.Wrap(policy.KindNoSpace, "insufficient_storage", "the vault's disk is full; nothing was written", fmt.Errorf("%s: %w", op, err))
		case sqlite3.ErrBusy, sqlite3.ErrLocked:
			return policy.Wrap(policy.KindUnavailable, "temporarily_unavailable", "the vault is busy; try again", fmt.Errorf("%s: %w", op, err))
		case sqlite3.ErrReadonly, sqlite3.ErrIoErr, sqlite3.ErrCantOpen:
			return policy.Wrap(policy.KindUnavailable, "temporarily_unavailable", "the vault cannot write to its storage", fmt.Errorf("%s: %w", op, err))
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return policy.Wrap(policy.KindUnavailable, "temporarily_unavailable", "the request was cancelled", err)
	}
	return policy.Internal(op, err)
}

// migrations are applied in order; PRAGMA user_version records how many
// have run. Never edit a released migration: add a new one.
var migrations = []string{
	// 1: the vault core.
	`CREATE TABLE meta (
		id             INTEGER PRIMARY KEY CHECK (id = 1),
		vault_id       TEXT    NOT NULL,
		kdf            TEXT    NOT NULL,  -- JSON KDFParams (salt, cost); not secret
		wrapped_master BLOB    NOT NULL,  -- master key sealed by the KEK
		record_key_id  INTEGER NOT NULL,  -- the record key new writes use
		created        INTEGER NOT NULL
	);
	CREATE TABLE records (
		seq        INTEGER PRIMARY KEY AUTOINCREMENT,  -- list order and cursor
		id         TEXT    NOT NULL UNIQUE,
		collection TEXT    NOT NULL,
		version    INTEGER NOT NULL,
		key_id     INTEGER NOT NULL,
		sealed     BLOB    NOT NULL,  -- nonce || XChaCha20-Poly1305(JSON object)
		created    INTEGER NOT NULL,
		updated    INTEGER NOT NULL
	);
	CREATE INDEX records_by_collection ON records (collection, seq);`,

	// 2: the exchange with organizations: signing keys, terms, requests,
	// grants and the audit log.
	`CREATE TABLE signing_keys (
		kid     TEXT    PRIMARY KEY,  -- RFC 7638 thumbprint of the public key
		public  BLOB    NOT NULL,     -- Ed25519 public key
		sealed  BLOB    NOT NULL,     -- private seed, sealed by the secret-wrap key
		created INTEGER NOT NULL,
		retired INTEGER               -- set when it stops signing
	);
	CREATE TABLE terms (
		hash    TEXT    PRIMARY KEY,  -- base64url SHA-256 of body
		body    TEXT    NOT NULL,     -- RFC 8785 canonical JSON
		created INTEGER NOT NULL
	);
	ALTER TABLE meta ADD COLUMN terms_hash TEXT REFERENCES terms (hash);
	CREATE TABLE requests (
		id               TEXT    PRIMARY KEY,
		client_id        TEXT    NOT NULL,  -- thumbprint of the organization's key
		jwk              TEXT    NOT NULL,
		client_name      TEXT    NOT NULL,
		client_uri       TEXT    NOT NULL,
		callback_uri     TEXT    NOT NULL,
		purpose          TEXT    NOT NULL,
		purpose_text     TEXT    NOT NULL,
		details          TEXT    NOT NULL,  -- requested authorization_details (JSON)
		duration         INTEGER NOT NULL,  -- seconds asked for
		retention        INTEGER,           -- seconds kept after the end, if stated
		terms_hash       TEXT    NOT NULL,
		jti              TEXT    NOT NULL,
		signed           TEXT    NOT NULL,  -- the JWS itself: the organization's signed acceptance of the terms
		status           TEXT    NOT NULL,  -- pending, approved, denied, collected, expired
		created          INTEGER NOT NULL,
		expires          INTEGER NOT NULL,  -- end of the polling window
		poll_interval    INTEGER NOT NULL,
		last_poll        INTEGER NOT NULL DEFAULT 0,
		decided          INTEGER,
		granted_details  TEXT,
		granted_duration INTEGER,
		deny_reason      TEXT,
		grant_id         TEXT,
		UNIQUE (client_id, jti)
	);
	CREATE INDEX requests_by_created ON requests (created);
	CREATE TABLE grants (
		id          TEXT    PRIMARY KEY,  -- the grant's jti
		request_id  TEXT    NOT NULL REFERENCES requests (id),
		client_id   TEXT    NOT NULL,
		client_name TEXT    NOT NULL,
		subject     TEXT    NOT NULL,
		details     TEXT    NOT NULL,
		purpose     TEXT    NOT NULL,
		terms_hash  TEXT    NOT NULL,
		kid         TEXT    NOT NULL,
		issued      INTEGER NOT NULL,
		expires     INTEGER NOT NULL,
		revoked     INTEGER               -- NULL while not revoked
	);
	CREATE INDEX grants_by_client ON grants (client_id);
	CREATE TABLE audit (
		seq   INTEGER PRIMARY KEY,  -- 1, 2, 3, ... without gaps
		entry TEXT    NOT NULL,     -- RFC 8785 canonical JSON
		hash  BLOB    NOT NULL      -- SHA-256(0x00 || previous hash || entry)
	);
	CREATE TABLE audit_head (
		id   INTEGER PRIMARY KEY CHECK (id = 1),
		size INTEGER NOT NULL,
		hash BLOB    NOT NULL,
		mac  BLOB    NOT NULL       -- HMAC over size and hash with the audit key
	);
	CREATE TABLE audit_checkpoints (
		size    INTEGER PRIMARY KEY,
		hash    BLOB    NOT NULL,
		signed  TEXT    NOT NULL,   -- JWS by the vault's signing key
		created INTEGER NOT NULL
	);`,

	// 3: relationships and their end: keys, verified domains, notices to
	// organizations, deletion receipts.
	`CREATE TABLE relationships (
		id                TEXT    PRIMARY KEY,  -- thumbprint of the organization's first key
		name              TEXT    NOT NULL,
		uri               TEXT    NOT NULL,
		first_seen        INTEGER NOT NULL,
		last_seen         INTEGER NOT NULL,
		domain            TEXT,                 -- verified domain
		verified          INTEGER,              -- when it was verified
		challenge         TEXT,                 -- open domain challenge
		challenge_expires INTEGER
	);
	CREATE TABLE relationship_keys (
		client_id       TEXT    PRIMARY KEY,
		relationship_id TEXT    NOT NULL REFERENCES relationships (id),
		jwk             TEXT    NOT NULL,
		added           INTEGER NOT NULL,
		link            TEXT                    -- for a rotated-in key: the statement the previous key signed
	);
	CREATE INDEX relationship_keys_by_relationship ON relationship_keys (relationship_id);
	INSERT INTO relationships (id, name, uri, first_seen, last_seen)
		SELECT client_id, client_name, client_uri, min(created), max(created) FROM requests GROUP BY client_id;
	INSERT INTO relationship_keys (client_id, relationship_id, jwk, added)
		SELECT client_id, client_id, jwk, min(created) FROM requests GROUP BY client_id;
	ALTER TABLE grants ADD COLUMN retention INTEGER NOT NULL DEFAULT 0;  -- seconds the data may be kept after the end
	ALTER TABLE grants ADD COLUMN ended_by TEXT;                        -- owner or organization, with revoked
	CREATE TABLE notices (
		id              TEXT    PRIMARY KEY,
		relationship_id TEXT    NOT NULL REFERENCES relationships (id),
		grant_id        TEXT,
		event           TEXT    NOT NULL,
		url             TEXT    NOT NULL,
		signed          TEXT    NOT NULL,     -- the JWS sent
		status          TEXT    NOT NULL,     -- pending, delivered, failed
		attempts        INTEGER NOT NULL DEFAULT 0,
		next_attempt    INTEGER NOT NULL,
		last_error      TEXT,
		created         INTEGER NOT NULL,
		delivered       INTEGER
	);
	CREATE INDEX notices_due ON notices (status, next_attempt);
	CREATE TABLE receipts (
		id         TEXT    PRIMARY KEY,
		grant_id   TEXT    NOT NULL REFERENCES grants (id),
		client_id  TEXT    NOT NULL,
		jti        TEXT    NOT NULL,
		signed     TEXT    NOT NULL,   -- the organization's JWS, kept as evidence
		deleted    TEXT    NOT NULL,   -- JSON list of collections
		deleted_at INTEGER NOT NULL,
		statement  TEXT    NOT NULL,
		received   INTEGER NOT NULL,
		complete   INTEGER NOT NULL,   -- 1 if it covers every collection of the grant
		UNIQUE (client_id, jti)
	);
	CREATE INDEX receipts_by_grant ON receipts (grant_id);`,

	// 4: intentcasting: the owner's public intents (each with its own key)
	// and the offers organizations send.
	`CREATE TABLE intents (
		id      TEXT    PRIMARY KEY,
		body    TEXT    NOT NULL,   -- the public intent (JSON)
		signed  TEXT    NOT NULL,   -- JWS by the intent's own key
		public  BLOB    NOT NULL,   -- that key
		sealed  BLOB    NOT NULL,   -- its private seed, sealed by the secret-wrap key
		status  TEXT    NOT NULL,   -- open, closed
		created INTEGER NOT NULL,
		expires INTEGER NOT NULL,
		closed  INTEGER
	);
	CREATE TABLE offers (
		id          TEXT    PRIMARY KEY,  -- also the request id, once accepted
		intent_id   TEXT    NOT NULL REFERENCES intents (id),
		client_id   TEXT    NOT NULL,
		jwk         TEXT    NOT NULL,
		client_name TEXT    NOT NULL,
		client_uri  TEXT    NOT NULL,
		signed      TEXT    NOT NULL,     -- the organization's JWS
		body        TEXT    NOT NULL,     -- its claims (JSON)
		jti         TEXT    NOT NULL,
		status      TEXT    NOT NULL,     -- open, accepted, declined
		received    INTEGER NOT NULL,
		UNIQUE (client_id, jti)
	);
	CREATE INDEX offers_by_intent ON offers (intent_id, received);`,

	// 5: key rotation: record-encryption keys after the first are random
	// and stored sealed; records are found by key for re-encryption.
	`CREATE TABLE record_keys (
		id      INTEGER PRIMARY KEY,  -- the key id in records.key_id (1 is derived from the master key)
		sealed  BLOB    NOT NULL,     -- the key, sealed by the secret-wrap key
		created INTEGER NOT NULL
	);
	CREATE INDEX records_by_key ON records (key_id);`,

	// 6: authenticated state (state.go): a MAC on every row that carries
	// power. The rows present are authenticated by upgradeState, in the
	// same transaction, and records are re-sealed with their times in the
	// AAD.
	`ALTER TABLE meta ADD COLUMN mac BLOB;
	ALTER TABLE signing_keys ADD COLUMN mac BLOB;
	ALTER TABLE terms ADD COLUMN mac BLOB;
	ALTER TABLE requests ADD COLUMN mac BLOB;
	ALTER TABLE grants ADD COLUMN mac BLOB;
	ALTER TABLE relationships ADD COLUMN mac BLOB;
	ALTER TABLE relationship_keys ADD COLUMN mac BLOB;
	ALTER TABLE notices ADD COLUMN mac BLOB;
	ALTER TABLE receipts ADD COLUMN mac BLOB;
	ALTER TABLE intents ADD COLUMN mac BLOB;
	ALTER TABLE offers ADD COLUMN mac BLOB;
	ALTER TABLE record_keys ADD COLUMN mac BLOB;
	CREATE INDEX grants_by_request ON grants (request_id);`,

	// 7: the audit log becomes a Merkle tree log (auditlog.go): leaf
	// hashes in audit.hash, tlog's stored hashes, signed tree heads (C2SP
	// checkpoints) and an authenticated head. upgradeAudit converts the
	// chain in the same transaction.
	`CREATE TABLE audit_tree (
		id   INTEGER PRIMARY KEY,  -- tlog stored-hash index
		hash BLOB    NOT NULL
	);
	CREATE TABLE audit_heads (
		size    INTEGER PRIMARY KEY,
		note    TEXT    NOT NULL,  -- signed note (C2SP checkpoint) by the vault's signing key
		created INTEGER NOT NULL
	);
	DROP TABLE audit_checkpoints;
	DROP TABLE audit_head;
	CREATE TABLE audit_head (
		id   INTEGER PRIMARY KEY CHECK (id = 1),
		size INTEGER NOT NULL,
		root BLOB    NOT NULL,
		mac  BLOB
	);`,

	// 8: devices that logged in (session.go): hashes of their tokens,
	// exempt from the global login throttle.
	`CREATE TABLE devices (
		hash      TEXT    PRIMARY KEY,  -- base64url SHA-256 of the device token
		created   INTEGER NOT NULL,
		last_used INTEGER NOT NULL,
		mac       BLOB
	);`,

	// 9: limits (docs/security.md): read counters per relationship, so a
	// relationship's page never scans the audit log, and indexes for the
	// pending-request limits and paged listings.
	`CREATE TABLE relationship_stats (
		relationship_id TEXT    PRIMARY KEY,
		reads           INTEGER NOT NULL,
		last_read       INTEGER NOT NULL,
		mac             BLOB
	);
	INSERT INTO relationship_stats (relationship_id, reads, last_read)
		SELECT k.relationship_id, count(*), max(json_extract(a.entry, '$.time'))
		FROM audit a JOIN relationship_keys k ON k.client_id = json_extract(a.entry, '$.client_id')
		WHERE json_extract(a.entry, '$.event') = 'data.read' GROUP BY k.relationship_id;
	CREATE INDEX requests_by_status ON requests (status, expires);
	CREATE INDEX requests_by_client ON requests (client_id, status);
	CREATE INDEX grants_by_issued ON grants (issued, id);
	CREATE INDEX relationships_by_last_seen ON relationships (last_seen, id);`,

	// 10: the DPoP replay cache survives a clean restart (replay.go).
	`CREATE TABLE replay_seen (
		key    BLOB    PRIMARY KEY,  -- 16 bytes of SHA-256(key thumbprint, jti)
		window INTEGER NOT NULL
	);
	CREATE TABLE shutdown (
		id       INTEGER PRIMARY KEY CHECK (id = 1),
		clean_at   INTEGER NOT NULL,
		not_before INTEGER NOT NULL,  -- proofs dated earlier are refused (an unclean stop)
		mac        BLOB
	);`,

	// 11: records that failed to open during re-encryption, skipped and
	// reported instead of stalling it (rotate.go).
	`CREATE TABLE unreadable_records (
		id    TEXT    PRIMARY KEY,
		found INTEGER NOT NULL
	);`,

	// 12: request listings newest first, by status, stop after a page
	// instead of sorting every matching (large) row.
	`CREATE INDEX requests_by_status_created ON requests (status, created, id);
	CREATE INDEX requests_by_created_id ON requests (created, id);`,

	// 13: one wrapping key per kind of stored secret, from the
	// length-prefixed (v2) labels; record key 1 stored like the others.
	// The Go step (rekeySecrets) re-seals what the legacy keys sealed.
	`CREATE INDEX record_keys_by_created ON record_keys (created);`,

	// 14: the clean-shutdown mark also authenticates the saved replay
	// entries (a digest of them), so that deleting some of them cannot
	// reopen replays after a clean restart.
	`ALTER TABLE shutdown ADD COLUMN digest BLOB;`,

	// 15: importers (import.go): one keyed mark per imported item, so that
	// importing a file again adds nothing. The mark is an HMAC under a
	// vault key: it tells nothing about the item without that key.
	`CREATE TABLE import_items (
		mark BLOB PRIMARY KEY  -- HMAC(import key, collection, format, item key)
	);`,

	// 16: encrypted documents (documents.go). The key row is
	// authenticated; chunks are STREAM ciphertext that authenticates
	// itself (position and last flag in the nonce, a key per document).
	// document_uploads lists uploads in progress, whose chunks a start
	// after a crash removes.
	`CREATE TABLE documents (
		id      TEXT    PRIMARY KEY,
		key_id  INTEGER NOT NULL,
		wrapped BLOB    NOT NULL,  -- the document key, sealed by record key key_id
		size    INTEGER NOT NULL,
		chunks  INTEGER NOT NULL,
		created INTEGER NOT NULL,
		mac     BLOB
	);
	CREATE INDEX documents_by_key ON documents (key_id);
	CREATE TABLE document_chunks (
		doc_id TEXT    NOT NULL,
		n      INTEGER NOT NULL,
		sealed BLOB    NOT NULL,
		PRIMARY KEY (doc_id, n)
	);
	CREATE TABLE document_uploads (
		id      TEXT    PRIMARY KEY,
		started INTEGER NOT NULL
	);`,

	// 17: IEEE 7012 agreement records (agreements.go): per request, the
	// organization's answer to the proffered agreements and the vault's
	// countersignature. Authenticated.
	`CREATE TABLE agreements (
		id            TEXT    PRIMARY KEY,
		request_id    TEXT    NOT NULL UNIQUE,
		client_id     TEXT    NOT NULL,
		record        TEXT    NOT NULL,  -- the AgreementRecord, JSON
		countersigned TEXT    NOT NULL,  -- the vault's JWS of it
		created       INTEGER NOT NULL,
		mac           BLOB
	);`,

	// 18: notifications to the owner (notify.go): channels and the
	// outbox, sealed (AEAD, bound to vault and row); the VAPID key pair
	// is the channel row "vapid".
	`CREATE TABLE notify_channels (
		id      TEXT    PRIMARY KEY,
		sealed  BLOB    NOT NULL,
		created INTEGER NOT NULL
	);
	CREATE TABLE notify_outbox (
		id           TEXT    PRIMARY KEY,
		channel_id   TEXT    NOT NULL,
		sealed       BLOB    NOT NULL,  -- the message; emptied once delivered or given up
		status       TEXT    NOT NULL,  -- pending, delivered, failed
		attempts     INTEGER NOT NULL,
		next_attempt INTEGER NOT NULL,
		last_error   TEXT,              -- a reason safe to show the owner
		created      INTEGER NOT NULL,
		updated      INTEGER NOT NULL
	);
	CREATE INDEX notify_outbox_due ON notify_outbox (status, next_attempt);
	CREATE INDEX notify_outbox_channel ON notify_outbox (channel_id, status);`,

	// 19: every issuer URL the vault has signed grants under (issuers.go),
	// so that grants keep working after the vault moves. Authenticated.
	`CREATE TABLE issuers (
		url        TEXT    PRIMARY KEY,
		first_used INTEGER NOT NULL,
		mac        BLOB
	);`,

	// 20: the custom domain its owner brought (domain.go); one row, or
	// none. Authenticated: the domain decides the issuer.
	`CREATE TABLE domain (
		id     INTEGER PRIMARY KEY CHECK (id = 1),
		name   TEXT    NOT NULL,
		set_at INTEGER NOT NULL,
		mac    BLOB
	);`,
}

// schemaStats is the first schema with relationship_stats; schemaReplay
// the first that keeps the DPoP replay cache across clean restarts.
const (
	schemaStats  = 9
	schemaReplay = 10
	schemaRekey  = 13
)

// schemaTree is the first schema whose audit log is a Merkle tree.
const schemaTree = 7

// schemaState is the first schema with authenticated rows.
const schemaState = 6

// schemaVersion is the version this build writes.
var schemaVersion = len(migrations)

func (s *store) version(ctx context.Context) (int, error) {
	var v int
	if err := s.w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, err
	}
	return v, nil
}

// migrate brings the schema up to version upTo in one transaction. after,
// if set, runs in that transaction with the version the file had, for the
// steps that need keys (SQL alone cannot compute a MAC).
func (s *store) migrate(ctx context.Context, upTo int, after func(tx *sql.Tx, from int) error) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var v int
		if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
			return err
		}
		if v > len(migrations) {
			return policy.E(policy.KindUnavailable, "unsupported_version", fmt.Sprintf("the vault was written by a newer pdvault (schema %d, this build knows %d)", v, len(migrations)))
		}
		from := v
		for ; v < upTo; v++ {
			if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
				return fmt.Errorf("migration %d: %w", v+1, err)
			}
		}
		if after != nil && from < v {
			if err := after(tx, from); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v))
		return err
	})
}

// integrityCheck runs SQLite's integrity_check and returns its answer,
// "ok" when the file is sound.
func (s *store) integrityCheck(ctx context.Context) (string, error) {
	rows, err := s.r.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			return "", err
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n"), rows.Err()
}
