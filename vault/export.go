package vault

import (
	"bufio"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault/internal/crypt"
)

// Export file format v2 (docs/operations.md), on age's model:
//
//	"pdvault-export-v2\n"
//	header JSON "\n"           vault id, schema, KDF parameters, wrapped master key, 32-byte random nonce
//	"--- " base64(HMAC-SHA-256(header key, magic ‖ header JSON "\n")) "\n"
//	chunk*                     uint32 length ‖ STREAM chunk (ChaCha20-Poly1305, counter nonce, last flag)
//
// Each file has its own keys: HKDF(export key, salt = the header's nonce)
// gives the payload key and the header key (crypt.FileKeys), the export
// key coming from the master key. The header MAC is checked before any
// chunk is read; chunks are one JSON frame each, sealed as a STREAM, the
// "end" frame (which counts the rows) as the last chunk. So a changed
// header, an altered, reordered, dropped or appended chunk, a truncated
// file, and a chunk spliced in from another export (even one made under
// the same passphrase) all fail. The header carries the master key
// wrapped as in the vault, so the export opens with the passphrase that
// was current when it was made.
//
// Version 1 (fixed export key, frames bound to the header hash and index)
// is still read, because owners hold such files; but two v1 exports under
// the same passphrase share a key, so a frame of one opens at the same
// position in another: keep v1 files where only you can write, and make a
// new export.
const (
	exportMagic   = "pdvault-export-v2\n"
	exportMagicV1 = "pdvault-export-v1\n"
)

// maxFrame bounds one frame so a hostile file cannot make import allocate
// without limit; rows are far smaller.
const maxFrame = 16 << 20

type exportHeader struct {
	VaultID       string `json:"vault_id"`
	Schema        int    `json:"schema"`
	KDFJSON       string `json:"kdf"` // as stored: the master-key wrapping binds these bytes
	WrappedMaster []byte `json:"wrapped_master"`
	Created       int64  `json:"created"`
	Nonce         []byte `json:"nonce,omitempty"` // v2: 32 random bytes, this file's key
}

const exportNonceSize = 32

type frame struct {
	T       string   `json:"t"` // "table", "row" or "end"
	Name    string   `json:"name,omitempty"`
	Columns []string `json:"columns,omitempty"`
	Row     []cell   `json:"row,omitempty"`
	Rows    int64    `json:"rows,omitempty"`
	Tables  int      `json:"tables,omitempty"`
}

// cell is one SQLite value, tagged by type so that text and blobs survive
// the trip through JSON unchanged.
type cell struct {
	I *int64   `json:"i,omitempty"`
	F *float64 `json:"f,omitempty"`
	S *string  `json:"s,omitempty"`
	B []byte   `json:"b,omitempty"`
	N bool     `json:"n,omitempty"` // NULL
}

func toCell(v any) (cell, error) {
	switch x := v.(type) {
	case nil:
		return cell{N: true}, nil
	case int64:
		return cell{I: &x}, nil
	case float64:
		return cell{F: &x}, nil
	case string:
		return cell{S: &x}, nil
	case []byte:
		if x == nil {
			x = []byte{}
		}
		return cell{B: x}, nil
	}
	return cell{}, fmt.Errorf("unexpected column type %T", v)
}

func (c cell) value() any {
	switch {
	case c.I != nil:
		return *c.I
	case c.F != nil:
		return *c.F
	case c.S != nil:
		return *c.S
	case c.B != nil:
		return c.B
	case c.N:
		return nil
	}
	// No member at all: an empty blob, which "b" with omitempty drops
	// (exports made before this was understood carry it so too).
	return []byte{}
}

// ExportStats says what an export or import carried.
type ExportStats struct {
	Tables  int   `json:"tables"`
	Rows    int64 `json:"rows"`
	Records int64 `json:"records"`
	Format  int   `json:"format"` // 2, or 1 for a file in the old format
}

// Export writes an encrypted, integrity-protected copy of the whole vault
// to w: every table, from one consistent snapshot, ciphertexts as stored.
func (v *Vault) Export(ctx context.Context, w io.Writer) (ExportStats, error) {
	var st ExportStats
	tx, err := v.db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return st, storageError("begin export", err)
	}
	defer tx.Rollback()
	m, err := loadMeta(ctx, tx) // first read: the snapshot starts here
	if err != nil {
		return st, storageError("read vault metadata", err)
	}
	ver := 0
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&ver); err != nil {
		return st, storageError("read schema version", err)
	}
	nonce := crypt.Random(exportNonceSize)
	hdr, err := json.Marshal(exportHeader{VaultID: v.id, Schema: ver, KDFJSON: m.kdfJSON, WrappedMaster: m.wrapped, Created: m.created, Nonce: nonce})
	if err != nil {
		return st, policy.Internal("encode export header", err)
	}
	v.keyMu.RLock()
	if v.master == nil {
		v.keyMu.RUnlock()
		return st, ErrLocked
	}
	payloadKey, headerKey := exportFileKeys(v.master, v.id, nonce)
	v.keyMu.RUnlock()
	defer crypt.Wipe(payloadKey)
	defer crypt.Wipe(headerKey)
	head := append(append([]byte(exportMagic), hdr...), '\n')
	bw := bufio.NewWriter(w)
	bw.Write(head)
	bw.WriteString("--- " + base64.StdEncoding.EncodeToString(crypt.HeaderMAC(headerKey, head)) + "\n")
	fw := &frameWriter{w: bw, s: crypt.NewStream(payloadKey)}
	st.Format = 2

	tables, err := tableNames(ctx, tx)
	if err != nil {
		return st, storageError("list tables", err)
	}
	for _, t := range tables {
		n, err := exportTable(ctx, tx, fw, t)
		if err != nil {
			return st, err
		}
		st.Tables++
		st.Rows += n
		if t == "records" {
			st.Records = n
		}
	}
	if err := fw.write(frame{T: "end", Rows: st.Rows, Tables: st.Tables}); err != nil {
		return st, err
	}
	if err := bw.Flush(); err != nil {
		return st, policy.Wrap(policy.KindUnavailable, "write_failed", "cannot write the export", err)
	}
	// The export holds the whole vault: that one was made is on the record.
	if err := v.db.tx(ctx, func(tx *sql.Tx) error {
		return v.appendAudit(ctx, tx, AuditEntry{Event: EvExported, Actor: "owner", Reason: fmt.Sprintf("%d records", st.Records)})
	}); err != nil {
		return st, err
	}
	return st, nil
}

type txQuerier interface {
	querier
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// tableNames lists the vault's own tables in a stable order.
func tableNames(ctx context.Context, q txQuerier) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

func columnNames(ctx context.Context, q txQuerier, table string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT name FROM pragma_table_info(?) ORDER BY cid`, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func exportTable(ctx context.Context, tx *sql.Tx, fw *frameWriter, table string) (int64, error) {
	cols, err := columnNames(ctx, tx, table)
	if err != nil {
		return 0, storageError("read columns", err)
	}
	if err := fw.write(frame{T: "table", Name: table, Columns: cols}); err != nil {
		return 0, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT * FROM `+quoteIdent(table)+` ORDER BY rowid`)
	if err != nil {
		return 0, storageError("read table", err)
	}
	defer rows.Close()
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var n int64
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return 0, storageError("read row", err)
		}
		row := make([]cell, len(cols))
		for i, v := range vals {
			c, err := toCell(v)
			if err != nil {
				return 0, policy.Internal("export", err)
			}
			row[i] = c
		}
		if err := fw.write(frame{T: "row", Row: row}); err != nil {
			return 0, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, storageError("read table", err)
	}
	return n, nil
}

// exportFileKeys derives one export file's payload and header keys.
func exportFileKeys(master []byte, vaultID string, nonce []byte) (payload, header []byte) {
	k := crypt.Derive(master, vaultID, crypt.ExportKey)
	defer crypt.Wipe(k)
	return crypt.FileKeys(k, nonce)
}

// frameWriter writes frames as STREAM chunks; the "end" frame is the last.
type frameWriter struct {
	w io.Writer
	s *crypt.Stream
}

func frameAADv1(hdrHash [32]byte, n uint64) []byte {
	return crypt.AAD(labelExportAAD, hdrHash[:], crypt.U64(n))
}

func (fw *frameWriter) write(f frame) error {
	pt, err := json.Marshal(f)
	if err != nil {
		return policy.Internal("encode frame", err)
	}
	sealed, err := fw.s.Seal(pt, f.T == "end")
	if err != nil {
		return policy.Internal("seal frame", err)
	}
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(sealed)))
	if _, err := fw.w.Write(l[:]); err != nil {
		return policy.Wrap(policy.KindUnavailable, "write_failed", "cannot write the export", err)
	}
	if _, err := fw.w.Write(sealed); err != nil {
		return policy.Wrap(policy.KindUnavailable, "write_failed", "cannot write the export", err)
	}
	return nil
}

// ErrBadExport means the file is not an intact pdvault export.
var ErrBadExport = policy.E(policy.KindInvalid, "invalid_export", "the file is not an intact pdvault export (damaged, truncated, reordered or not an export)")

func badExport(why string) error {
	return ErrBadExport.WithDetail(why)
}

// Import restores an export into dir, which must not hold a vault. The
// passphrase is the one that was current when the export was made. The new
// vault appears only when the whole file has been checked: it is built
// under a temporary name and renamed into place.
func Import(ctx context.Context, r io.Reader, dir string, passphrase []byte, opts Options) (ExportStats, error) {
	opts.defaults()
	var st ExportStats
	path := filepath.Join(dir, DBFile)
	if _, err := os.Stat(path); err == nil {
		return st, ErrVaultExists
	}
	br := bufio.NewReader(r)
	magic := make([]byte, len(exportMagic))
	if _, err := io.ReadFull(br, magic); err != nil || (string(magic) != exportMagic && string(magic) != exportMagicV1) {
		return st, badExport("not a pdvault export")
	}
	st.Format = 2
	if string(magic) == exportMagicV1 {
		st.Format = 1
	}
	hdr, err := br.ReadSlice('\n')
	if err != nil {
		return st, badExport("header is cut short")
	}
	hdr = slices.Clone(hdr[:len(hdr)-1])
	var h exportHeader
	if err := json.Unmarshal(hdr, &h); err != nil {
		return st, badExport("header is not valid")
	}
	var headerMAC []byte
	if st.Format == 2 {
		line, err := br.ReadSlice('\n')
		mac, ok := strings.CutPrefix(strings.TrimSuffix(string(line), "\n"), "--- ")
		if err != nil || !ok || len(h.Nonce) != exportNonceSize {
			return st, badExport("header is not valid")
		}
		if headerMAC, err = base64.StdEncoding.DecodeString(mac); err != nil {
			return st, badExport("header is not valid")
		}
	}
	if h.Schema < 1 || h.Schema > schemaVersion {
		return st, policy.E(policy.KindUnprocessable, "unsupported_version", fmt.Sprintf("the export has schema %d; this pdvault reads 1 to %d", h.Schema, schemaVersion))
	}
	var kdf KDFParams
	if err := json.Unmarshal([]byte(h.KDFJSON), &kdf); err != nil {
		return st, badExport("header is not valid")
	}
	m := meta{vaultID: h.VaultID, kdfJSON: h.KDFJSON, kdf: kdf, wrapped: h.WrappedMaster}
	master, err := unwrapMaster(ctx, passphrase, m)
	if err != nil {
		return st, err
	}
	defer crypt.Wipe(master)
	fr := &frameReader{r: br}
	if st.Format == 2 {
		payloadKey, headerKey := exportFileKeys(master, h.VaultID, h.Nonce)
		defer crypt.Wipe(payloadKey)
		defer crypt.Wipe(headerKey)
		// The header MAC first: nothing of a changed header is used.
		head := append(append([]byte(exportMagic), hdr...), '\n')
		if !crypt.CheckHeaderMAC(headerKey, head, headerMAC) {
			return st, badExport("the header failed its integrity check")
		}
		fr.stream = crypt.NewStream(payloadKey)
	} else {
		fr.key = crypt.DeriveLegacy(master, h.VaultID, labelExportKey, 0)
		defer crypt.Wipe(fr.key)
		fr.hdrHash = sha256.Sum256(hdr)
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return st, policy.Wrap(policy.KindInvalid, "invalid_directory", "cannot create the vault directory", err)
	}
	tmp := path + ".importing"
	removeDB(tmp)
	db, err := openStore(tmp, true, storeOptions{})
	if err != nil {
		return st, policy.Wrap(policy.KindInvalid, "invalid_directory", "cannot create the vault database", err)
	}
	ok := false
	defer func() {
		if !ok {
			db.close()
			removeDB(tmp)
		}
	}()
	if err := db.migrate(ctx, h.Schema, nil); err != nil {
		return st, err
	}
	err = db.tx(ctx, func(tx *sql.Tx) error {
		// Tables arrive in name order, not in dependency order: check
		// foreign keys at commit instead of row by row.
		if _, err := tx.ExecContext(ctx, `PRAGMA defer_foreign_keys = ON`); err != nil {
			return err
		}
		var e error
		format := st.Format
		st, e = importFrames(ctx, tx, fr)
		st.Format = format
		if e != nil {
			return e
		}
		got, e := loadMeta(ctx, tx)
		if e != nil || got.vaultID != h.VaultID || string(got.wrapped) != string(h.WrappedMaster) {
			return badExport("vault metadata does not match the header")
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	if err := db.migrate(ctx, schemaVersion, upgradeState(ctx, master, h.VaultID)); err != nil {
		return st, err
	}
	// Like a restore, an import must show a log that verifies: the file
	// authenticates as a whole, but what it carries must be sound too.
	mm, err := loadMeta(ctx, db.w)
	if err != nil {
		return st, storageError("read vault metadata", err)
	}
	iv := newVault(dir, db, mm, slices.Clone(master), opts)
	if err := iv.setup(ctx); err != nil {
		iv.Close()
		return st, err
	}
	rep, err := iv.VerifyAudit(ctx)
	if err == nil && rep.OK {
		err = iv.db.tx(ctx, func(tx *sql.Tx) error {
			return iv.appendAudit(ctx, tx, AuditEntry{Event: EvRestored, Actor: "owner", Reason: fmt.Sprintf("imported from an export (format %d)", st.Format)})
		})
	}
	if cerr := iv.Close(); err == nil && cerr != nil {
		err = storageError("close", cerr)
	}
	if err != nil {
		return st, err
	}
	if !rep.OK {
		return st, badExport("its audit log does not verify: " + rep.Problems[0].Problem)
	}
	ok = true
	// The checkpoint on close folded the WAL into the file; only the main
	// file needs to move.
	if err := os.Rename(tmp, path); err != nil {
		removeDB(tmp)
		return st, policy.Wrap(policy.KindUnavailable, "write_failed", "cannot move the restored vault into place", err)
	}
	removeDB(tmp)
	return st, nil
}

func importFrames(ctx context.Context, tx *sql.Tx, fr *frameReader) (ExportStats, error) {
	var st ExportStats
	known, err := tableNames(ctx, tx)
	if err != nil {
		return st, err
	}
	var (
		stmt  *sql.Stmt
		ncols int
		table string
	)
	defer func() {
		if stmt != nil {
			stmt.Close()
		}
	}()
	for {
		f, err := fr.next()
		if err != nil {
			return st, err
		}
		switch f.T {
		case "table":
			// Names come from an authenticated file, but are still checked
			// against this schema before they go into SQL.
			if !slices.Contains(known, f.Name) {
				return st, badExport("unknown table " + f.Name)
			}
			cols, err := columnNames(ctx, tx, f.Name)
			if err != nil {
				return st, err
			}
			if !slices.Equal(cols, f.Columns) {
				return st, badExport("columns of " + f.Name + " do not match")
			}
			if stmt != nil {
				stmt.Close()
			}
			qcols := make([]string, len(cols))
			for i, c := range cols {
				qcols[i] = quoteIdent(c)
			}
			q := `INSERT INTO ` + quoteIdent(f.Name) + ` (` + strings.Join(qcols, ", ") + `) VALUES (?` + strings.Repeat(", ?", len(cols)-1) + `)`
			if stmt, err = tx.PrepareContext(ctx, q); err != nil {
				return st, err
			}
			ncols, table = len(cols), f.Name
			st.Tables++
		case "row":
			if stmt == nil || len(f.Row) != ncols {
				return st, badExport("row does not fit its table")
			}
			args := make([]any, ncols)
			for i, c := range f.Row {
				args[i] = c.value()
			}
			if _, err := stmt.ExecContext(ctx, args...); err != nil {
				return st, badExport("row does not fit its table")
			}
			st.Rows++
			if table == "records" {
				st.Records++
			}
		case "end":
			if f.Rows != st.Rows || f.Tables != st.Tables {
				return st, badExport("row count does not match")
			}
			if _, err := fr.r.ReadByte(); err != io.EOF {
				return st, badExport("data after the end")
			}
			return st, nil
		default:
			return st, badExport("unknown frame")
		}
	}
}

// frameReader reads v2 frames (STREAM chunks) or v1 frames (key, hdrHash).
type frameReader struct {
	r      *bufio.Reader
	stream *crypt.Stream
	last   bool // v2: the chunk just read was sealed as the last

	key     []byte
	hdrHash [32]byte
	n       uint64
}

func (fr *frameReader) next() (frame, error) {
	var l [4]byte
	if _, err := io.ReadFull(fr.r, l[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return frame{}, badExport("the file is truncated")
		}
		return frame{}, policy.Wrap(policy.KindUnavailable, "read_failed", "cannot read the export", err)
	}
	n := binary.BigEndian.Uint32(l[:])
	if n > maxFrame {
		return frame{}, badExport("frame too large")
	}
	sealed := make([]byte, n)
	if _, err := io.ReadFull(fr.r, sealed); err != nil {
		return frame{}, badExport("the file is truncated")
	}
	var pt []byte
	var err error
	if fr.stream != nil {
		pt, fr.last, err = fr.stream.Open(sealed)
	} else {
		pt, err = crypt.Open(fr.key, sealed, frameAADv1(fr.hdrHash, fr.n))
	}
	if err != nil {
		return frame{}, badExport("a frame failed its integrity check (altered, reordered, or from another export)")
	}
	fr.n++
	var f frame
	if err := json.Unmarshal(pt, &f); err != nil {
		return frame{}, badExport("a frame is not valid")
	}
	// v2: the end frame and the chunk sealed as last must coincide.
	if fr.stream != nil && fr.last != (f.T == "end") {
		return frame{}, badExport("the end of the file is not where it was sealed")
	}
	return f, nil
}
