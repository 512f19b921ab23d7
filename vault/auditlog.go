package vault

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault/internal/crypt"
)

// The tree behind the audit log. tlog numbers records from 0 and stores,
// for record n, the hashes tlog.StoredHashes names at StoredHashIndex(0, n)
// onwards: on average two per record, enough to compute any tree hash,
// inclusion proof or consistency proof with O(log n) reads. They are a
// cache of what the entries give: verification rebuilds them from the
// entries and compares.

// tAuditHead is the log's head: size and root, authenticated like every
// row that decides what the owner is shown.
var tAuditHead = newTable("audit_head", "id", "id", "size", "root")

// treeReader reads stored hashes from the database, and those written by
// the current transaction from memory.
type treeReader struct {
	ctx     context.Context
	q       queryer
	tx      *sql.Tx
	pending map[int64]tlog.Hash
}

func newTreeReader(ctx context.Context, tx *sql.Tx) *treeReader {
	return &treeReader{ctx: ctx, q: tx, tx: tx, pending: map[int64]tlog.Hash{}}
}

func (r *treeReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		if h, ok := r.pending[idx]; ok {
			out[i] = h
			continue
		}
		rows, err := r.q.QueryContext(r.ctx, `SELECT hash FROM audit_tree WHERE id = ?`, idx)
		if err != nil {
			return nil, err
		}
		var b []byte
		found := rows.Next()
		if found {
			err = rows.Scan(&b)
		}
		rows.Close()
		if err != nil {
			return nil, err
		}
		if !found || len(b) != tlog.HashSize {
			return nil, fmt.Errorf("audit tree hash %d missing", idx)
		}
		copy(out[i][:], b)
	}
	return out, nil
}

// add stores the hashes for record n with data and returns its leaf hash.
func (r *treeReader) add(ctx context.Context, n int64, data []byte) (tlog.Hash, error) {
	leaf := tlog.RecordHash(data)
	hs, err := tlog.StoredHashesForRecordHash(n, leaf, r)
	if err != nil {
		return leaf, err
	}
	base := tlog.StoredHashIndex(0, n)
	for i, h := range hs {
		if _, err := r.tx.ExecContext(ctx, `INSERT INTO audit_tree (id, hash) VALUES (?, ?)`, base+int64(i), h[:]); err != nil {
			return leaf, err
		}
		r.pending[base+int64(i)] = h
	}
	return leaf, nil
}

// hashSlice is a whole tree's stored hashes in memory.
type hashSlice []tlog.Hash

func (m hashSlice) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		if idx < 0 || idx >= int64(len(m)) {
			return nil, fmt.Errorf("tree hash %d out of range", idx)
		}
		out[i] = m[idx]
	}
	return out, nil
}

// rebuildTree reads every entry in order and builds the tree in memory,
// reporting entries that are missing, out of place, or whose stored leaf
// hash differs from their bytes. It returns the tree and the entry count.
func (v *Vault) rebuildTree(ctx context.Context, q queryer, problem func(int64, string, ...any)) (hashSlice, int64, error) {
	rows, err := q.QueryContext(ctx, `SELECT seq, entry, hash FROM audit ORDER BY seq`)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var mem hashSlice
	var n int64
	// RawBytes: the row's memory, valid until the next Scan, which is all
	// the hashing needs; no copy per entry.
	var entry, stored sql.RawBytes
	var seq int64
	for rows.Next() {
		if err := rows.Scan(&seq, &entry, &stored); err != nil {
			return nil, 0, err
		}
		if seq != n+1 && problem != nil {
			problem(n+1, "entry %d is missing or out of order (found %d here)", n+1, seq)
		}
		// The entry must also claim its own position.
		if entrySeq(entry) != seq && problem != nil {
			problem(seq, "entry %d does not state its own position (reordered or edited)", seq)
		}
		leaf := tlog.RecordHash(entry)
		if !slices.Equal(leaf[:], stored) && problem != nil {
			problem(seq, "entry %d does not match its hash (edited)", seq)
		}
		hs, err := tlog.StoredHashesForRecordHash(n, leaf, mem)
		if err != nil {
			return nil, 0, err
		}
		mem = append(mem, hs...)
		n++
	}
	return mem, n, rows.Err()
}

// publicKeys is every signing key the vault has had (they verify old
// checkpoints), in a stable order.
func (v *Vault) publicKeys() []ed25519.PublicKey {
	v.keys.mu.RLock()
	defer v.keys.mu.RUnlock()
	var out []ed25519.PublicKey
	for _, kid := range slices.Sorted(maps.Keys(v.keys.public)) {
		out = append(out, v.keys.public[kid])
	}
	return out
}

// AuditProof is what proves entries to someone who holds a tree head.
type AuditProof struct {
	TreeHead string   `json:"tree_head"`
	Size     int64    `json:"size"`
	Proof    []string `json:"proof"` // base64 hashes, as tlog orders them
}

func encodeProof(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.String()
	}
	return out
}

var (
	ErrBadProofRange = policy.E(policy.KindInvalid, "invalid_request", "from must be a tree size of at least 1")
	// ErrBeyondLog answers a witness that kept a longer log than this one:
	// to it, this vault was rolled back.
	ErrBeyondLog = policy.E(policy.KindConflict, "beyond_log", "the audit log has fewer entries than that")
)

// Consistency proves that the current log extends the log of size from
// (RFC 6962 §2.1.2): the owner's CLI and organizations keep a head and
// check each newer one against it.
func (v *Vault) Consistency(ctx context.Context, from int64) (AuditProof, error) {
	tx, err := v.db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return AuditProof{}, storageError("audit proof", err)
	}
	defer tx.Rollback()
	size, root, err := v.loadHead(ctx, tx)
	if err != nil {
		return AuditProof{}, storageError("audit proof", err)
	}
	if from < 1 {
		return AuditProof{}, ErrBadProofRange
	}
	if from > size {
		return AuditProof{}, ErrBeyondLog
	}
	r := &treeReader{ctx: ctx, q: tx, pending: map[int64]tlog.Hash{}}
	p, err := tlog.ProveTree(size, from, r)
	if err != nil {
		return AuditProof{}, storageError("audit proof", err)
	}
	th, err := v.headFor(size, root)
	if err != nil {
		return AuditProof{}, err
	}
	return AuditProof{TreeHead: th.Note, Size: size, Proof: encodeProof(p)}, nil
}

// headFor signs (or takes from the cache) the head of size and root.
func (v *Vault) headFor(size int64, root tlog.Hash) (policy.TreeHead, error) {
	if c := v.headCache.Load(); c != nil && c.Size == size && c.Root == root {
		return *c, nil
	}
	th, err := v.signTreeHead(size, root)
	if err != nil {
		return th, err
	}
	v.headCache.Store(&th)
	return th, nil
}

// upgradeAudit moves a schema-6 hash chain to the tree: leaf hashes, the
// stored tree, a signed checkpoint at every checkpointEvery entries and the
// authenticated head, in the migration's transaction. Like every upgrade it
// trusts the log it finds; docs/security.md says so.
func upgradeAudit(ctx context.Context, tx *sql.Tx, st *stateAuth, master []byte, vaultID string) error {
	rows, err := tx.QueryContext(ctx, `SELECT seq, entry FROM audit ORDER BY seq`)
	if err != nil {
		return err
	}
	type leaf struct {
		seq int64
		h   tlog.Hash
	}
	var leaves []leaf
	var mem hashSlice
	var n int64
	for rows.Next() {
		var seq int64
		var entry []byte
		if err := rows.Scan(&seq, &entry); err != nil {
			rows.Close()
			return err
		}
		h := tlog.RecordHash(entry)
		hs, err := tlog.StoredHashesForRecordHash(n, h, mem)
		if err != nil {
			rows.Close()
			return err
		}
		mem = append(mem, hs...)
		leaves = append(leaves, leaf{seq, h})
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, l := range leaves {
		if _, err := tx.ExecContext(ctx, `UPDATE audit SET hash = ? WHERE seq = ?`, l.h[:], l.seq); err != nil {
			return err
		}
	}
	for i, h := range mem {
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_tree (id, hash) VALUES (?, ?)`, int64(i), h[:]); err != nil {
			return err
		}
	}
	if n >= checkpointEvery {
		signer, err := activeSigner(ctx, tx, st, master, vaultID)
		if err != nil {
			return err
		}
		defer signer.wipe()
		if err := signCheckpoints(ctx, tx, signer, vaultID, n, mem); err != nil {
			return err
		}
	}
	if n == 0 {
		return nil
	}
	root, err := tlog.TreeHash(n, mem)
	if err != nil {
		return err
	}
	return st.put(ctx, tx, tAuditHead, int64(1), n, root[:])
}

func signCheckpoints(ctx context.Context, tx *sql.Tx, signer *vaultSigner, vaultID string, n int64, mem hashSlice) error {
	for size := int64(checkpointEvery); size <= n; size += checkpointEvery {
		root, err := tlog.TreeHash(size, mem)
		if err != nil {
			return err
		}
		th, err := policy.SignTreeHead(signer, vaultID, size, root)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_heads (size, note, created) VALUES (?, ?, 0)`, size, th.Note); err != nil {
			return err
		}
	}
	return nil
}

// activeSigner opens the active signing key from its checked row.
func activeSigner(ctx context.Context, tx *sql.Tx, st *stateAuth, master []byte, vaultID string) (*vaultSigner, error) {
	rs, err := st.rows(ctx, tx, tSigningKeys, `retired IS NULL`)
	if err != nil {
		return nil, err
	}
	if len(rs) != 1 {
		return nil, ErrTampered.WithCause(errors.New("not exactly one active signing key"))
	}
	// Runs after rekeySecrets: the seed is under the v2 wrapping key.
	wrap := crypt.Derive(master, vaultID, crypt.SigningKeyWrap)
	defer crypt.Wipe(wrap)
	kid := rs[0].str("kid")
	seed, err := crypt.Open(wrap, rs[0].bytes("sealed"), signingKeyAAD(vaultID, kid))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, ErrTampered.WithCause(errors.New("signing key " + kid + " does not open"))
	}
	defer crypt.Wipe(seed)
	return &vaultSigner{kid: kid, priv: ed25519.NewKeyFromSeed(seed)}, nil
}

// recentHead is a signed head and when it was read.
type recentHead struct {
	th policy.TreeHead
	at time.Time
}

// headMaxAge is how stale a head given out with responses may be. Any
// head commits the vault to a prefix of its log, so a second-old one
// serves a witness as well as a fresh one, and the hot path pays an
// atomic load instead of a query.
const headMaxAge = time.Second

// RecentTreeHead is a signed tree head at most headMaxAge old: what grant,
// data and notice responses carry for organizations to keep.
func (v *Vault) RecentTreeHead(ctx context.Context) (policy.TreeHead, error) {
	if r := v.recent.Load(); r != nil && time.Since(r.at) < headMaxAge {
		return r.th, nil
	}
	th, err := v.TreeHead(ctx)
	if err != nil {
		return th, err
	}
	v.recent.Store(&recentHead{th: th, at: time.Now()})
	return th, nil
}

// EntryProof is an audit entry with its inclusion proof in a signed head.
type EntryProof struct {
	Seq      int64    `json:"seq"`
	Entry    string   `json:"entry"` // the canonical JSON that was hashed
	TreeHead string   `json:"tree_head"`
	Proof    []string `json:"proof"` // base64 hashes, as tlog orders them
}

var ErrEntryNotFound = policy.E(policy.KindNotFound, "not_found", "no such entry of yours in the audit log")

// ProveEntry gives the organization holding the proof's key one of its own
// audit entries and its inclusion proof (RFC 6962 §2.1.1) in the current
// head. An entry about anyone else looks like no entry: the proof reveals
// only hashes of other entries, never their contents.
func (v *Vault) ProveEntry(ctx context.Context, seq int64, proof string, hc HTTPContext) (EntryProof, error) {
	p, err := v.checkProof(proof, hc, "")
	if err != nil {
		return EntryProof{}, err
	}
	tx, err := v.db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return EntryProof{}, storageError("audit proof", err)
	}
	defer tx.Rollback()
	rel, err := v.relationshipOf(ctx, tx, p.JKT)
	if err != nil {
		return EntryProof{}, err
	}
	if err := v.consumeProof(p); err != nil {
		return EntryProof{}, err
	}
	size, root, err := v.loadHead(ctx, tx)
	if err != nil {
		return EntryProof{}, storageError("audit proof", err)
	}
	if seq < 1 || seq > size {
		return EntryProof{}, ErrEntryNotFound
	}
	var entry string
	if err := tx.QueryRowContext(ctx, `SELECT entry FROM audit WHERE seq = ?`, seq).Scan(&entry); err != nil {
		return EntryProof{}, ErrEntryNotFound
	}
	var e AuditEntry
	if err := json.Unmarshal([]byte(entry), &e); err != nil || e.ClientID == "" {
		return EntryProof{}, ErrEntryNotFound
	}
	if owner, err := v.relationshipOf(ctx, tx, e.ClientID); err != nil || owner != rel {
		return EntryProof{}, ErrEntryNotFound
	}
	return v.proveSeq(ctx, tx, size, root, seq, entry)
}

// proveSeq is the inclusion proof of entry seq in the head (size, root).
func (v *Vault) proveSeq(ctx context.Context, tx *sql.Tx, size int64, root tlog.Hash, seq int64, entry string) (EntryProof, error) {
	rp, err := tlog.ProveRecord(size, seq-1, &treeReader{ctx: ctx, q: tx, pending: map[int64]tlog.Hash{}})
	if err != nil {
		return EntryProof{}, storageError("audit proof", err)
	}
	th, err := v.headFor(size, root)
	if err != nil {
		return EntryProof{}, err
	}
	return EntryProof{Seq: seq, Entry: entry, TreeHead: th.Note, Proof: encodeProof(rp)}, nil
}
