package vault

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault/internal/crypt"
)

// Encrypted documents (docs/architecture.md, "Documents").
//
// A document is a file of any size: its bytes are sealed with a key of its
// own (random, 256 bits) as a STREAM of 64 KiB chunks, age's model, each
// chunk a row of document_chunks. The document key is wrapped by the
// current record key, bound to the vault, the document id and the key id,
// in a row of documents that also holds the size and the chunk count; that
// row carries a state MAC like every row that decides what is served. The
// metadata (title, kind, date, counterparty, media type, size, SHA-256 of
// the plaintext) is an ordinary sealed record in the "documents"
// collection with the same id, so organizations ask for documents like any
// other collection, and name the field "content" for the bytes.
//
// Chunks in SQLite rather than sealed files beside it: one file to back
// up (VACUUM INTO, export and restore carry documents with no extra
// step), one transaction deciding whether a document exists, and no
// plaintext ever written anywhere. Memory stays flat in the file size: an
// upload holds two chunks; a read one.

// DocumentsCollection holds the metadata record of each document.
const DocumentsCollection = "documents"

// ContentField is the field a grant names to cover a document's bytes.
const ContentField = "content"

// docChunk is the plaintext size of one chunk (age's 64 KiB).
const docChunk = 64 << 10

// chunksPerTx bounds one write transaction of an upload (4 MiB), so that
// a large upload never holds the vault's one writer for long: reads by
// organizations commit their audit entries between the batches.
const chunksPerTx = 64

// MaxDocumentSize bounds one document (only the owner adds documents).
const MaxDocumentSize = 16 << 30

// DocumentInput describes a document being added.
type DocumentInput struct {
	FileName     string
	Title        string
	Kind         string
	Date         string // YYYY-MM-DD
	Counterparty string
	MediaType    string // empty: from the file's first bytes or name
	// SHA256, when set, is the digest the sender declared; a document
	// that does not match is not kept.
	SHA256 []byte
}

// DocumentMeta is the metadata record of a document (docs/vocabulary.md,
// schema.org MediaObject names).
type DocumentMeta struct {
	Title          string `json:"title,omitempty"`
	Kind           string `json:"kind,omitempty"`
	Date           string `json:"date,omitempty"`
	Counterparty   string `json:"counterparty,omitempty"`
	FileName       string `json:"fileName,omitempty"`
	EncodingFormat string `json:"encodingFormat"`
	ContentSize    int64  `json:"contentSize"`
	SHA256         string `json:"sha256"`
}

// Document errors.
var (
	ErrDocumentNotFound = policy.E(policy.KindNotFound, "not_found", "no such document")
	ErrDocumentTooLarge = policy.E(policy.KindTooLarge, "document_too_large", "a document may be at most 16 GiB")
	errDocDigest        = policy.E(policy.KindInvalid, "digest_mismatch", "the document's SHA-256 is not the one declared; nothing was kept")
)

// validDocument checks the metadata an owner gives and fills the media
// type from the name when none was given (the first bytes decide later).
func validDocument(in *DocumentInput) error {
	var r []string
	text := func(field, s string, max int) {
		if len(s) > max || !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
			r = append(r, field+": at most "+itoa(uint32(max))+" bytes of text, no control characters")
		}
	}
	text("title", in.Title, 300)
	text("counterparty", in.Counterparty, 200)
	text("file name", in.FileName, maxImportName)
	if in.Kind != "" && !policy.ValidKind(in.Kind) {
		r = append(r, "kind: a lower-case word (letters, digits, - and _), e.g. contract, payslip, letter")
	}
	if in.Date != "" {
		if _, err := time.Parse(time.DateOnly, in.Date); err != nil {
			r = append(r, "date: YYYY-MM-DD")
		}
	}
	if in.MediaType != "" {
		mt, params, err := mime.ParseMediaType(in.MediaType)
		if err != nil || len(in.MediaType) > 127 || !strings.Contains(mt, "/") {
			r = append(r, "media type: a type/subtype such as application/pdf (RFC 6838)")
		} else {
			in.MediaType = mime.FormatMediaType(mt, params)
		}
	}
	if in.SHA256 != nil && len(in.SHA256) != sha256.Size {
		r = append(r, "sha256: 32 bytes")
	}
	if len(r) > 0 {
		return policy.E(policy.KindInvalid, "invalid_document", "the document's description is not valid").WithReasons(r)
	}
	return nil
}

// sniffMedia names a few common types from their first bytes (the vault
// must not import net/http for http.DetectContentType), then from the
// file name's extension.
func sniffMedia(head []byte, name string) string {
	for _, m := range []struct {
		magic []byte
		typ   string
	}{
		{[]byte("%PDF-"), "application/pdf"},
		{[]byte("\x89PNG\r\n\x1a\n"), "image/png"},
		{[]byte("\xff\xd8\xff"), "image/jpeg"},
		{[]byte("GIF87a"), "image/gif"},
		{[]byte("GIF89a"), "image/gif"},
		{[]byte("PK\x03\x04"), "application/zip"},
	} {
		if bytes.HasPrefix(head, m.magic) {
			return m.typ
		}
	}
	if len(head) >= 12 && string(head[:4]) == "RIFF" && string(head[8:12]) == "WEBP" {
		return "image/webp"
	}
	if t := mime.TypeByExtension(strings.ToLower(filepath.Ext(name))); t != "" {
		return t
	}
	return "application/octet-stream"
}

func docKeyAAD(vaultID, id string, keyID uint32) []byte {
	return crypt.AAD(crypt.DocumentKeyAAD, []byte(vaultID), []byte(id), binary.BigEndian.AppendUint32(nil, keyID))
}

var tDocuments = newTable("documents", "id", "id", "key_id", "wrapped", "size", "chunks", "created")

// AddDocument encrypts r as a new document. The bytes are sealed and
// stored as they arrive; the document exists only once its key row,
// metadata record and audit entry commit together, so a failed or
// cancelled upload leaves nothing (a crash mid-upload is cleaned at the
// next start).
func (v *Vault) AddDocument(ctx context.Context, r io.Reader, in DocumentInput) (Record, error) {
	sd, err := v.stageDocument(ctx, r, in)
	if err != nil {
		return Record{}, err
	}
	defer sd.discard(ctx)
	var rec Record
	err = v.recordsTx(ctx, func(tx *sql.Tx) error {
		rec, err = sd.commit(ctx, tx)
		return err
	})
	if err != nil {
		return Record{}, err
	}
	sd.committed()
	return rec, nil
}

// stagedDocument is a document whose chunks are stored but which does not
// exist yet: commit writes its key row, metadata record and audit entry
// in the caller's transaction; discard drops its chunks. An import keeps
// its source file this way, committed with the records it made.
type stagedDocument struct {
	v       *Vault
	id      string
	keyID   uint32
	wrapped []byte
	key     []byte
	chunks  int64
	meta    DocumentMeta
	done    bool
	reason  string // for the audit entry, e.g. "source of an import (ofx)"
}

// stageDocument reads, hashes and seals r into chunks of a new document.
func (v *Vault) stageDocument(ctx context.Context, r io.Reader, in DocumentInput) (*stagedDocument, error) {
	if err := validDocument(&in); err != nil {
		return nil, err
	}
	id := newID()
	v.mu.RLock()
	keyID := v.recordKeyID
	v.mu.RUnlock()
	rk, err := v.recordKey(keyID)
	if err != nil {
		return nil, err
	}
	docKey := crypt.Random(crypt.KeySize)
	sd := &stagedDocument{v: v, id: id, keyID: keyID, key: docKey, wrapped: crypt.Seal(rk, docKey, docKeyAAD(v.id, id, keyID))}

	if _, err := v.db.w.ExecContext(ctx, `INSERT INTO document_uploads (id, started) VALUES (?, ?)`, id, v.now().Unix()); err != nil {
		crypt.Wipe(docKey)
		return nil, storageError("start upload", err)
	}
	ok := false
	defer func() {
		if !ok {
			sd.discard(ctx)
		}
	}()

	if r, err = v.quotaReader(ctx, r); err != nil {
		return nil, err
	}
	h := sha256.New()
	br := bufio.NewReaderSize(io.TeeReader(r, h), docChunk)
	head, _ := br.Peek(16)
	if in.MediaType == "" {
		in.MediaType = sniffMedia(head, in.FileName)
	}
	s := crypt.NewStream(docKey)
	buf := make([]byte, docChunk)

	// Sealing and storing run side by side: this goroutine reads, hashes
	// and seals a batch while the writer stores the one before (two
	// batches of 4 MiB in memory at most, whatever the file's size).
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan chunkBatch, 1)
	werr := make(chan error, 1)
	go func() {
		var err error
		for b := range batches {
			if err == nil {
				if err = v.storeChunks(wctx, id, b); err != nil {
					cancel()
				}
			}
		}
		werr <- err
	}()
	closed := false
	finish := func() error {
		if closed {
			return nil
		}
		closed = true
		close(batches)
		return <-werr
	}
	defer finish() // before the chunks of a failed upload are dropped

	var (
		size   int64
		n      int64
		batch  = chunkBatch{}
		last   bool
		readEr error
	)
	for !last {
		if wctx.Err() != nil {
			break // the writer failed: finish says why
		}
		k, err := io.ReadFull(br, buf)
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			last = true
		case err != nil:
			readEr = err
		default:
			// A full chunk: it is the last one only if nothing follows.
			if _, perr := br.Peek(1); perr == io.EOF {
				last = true
			} else if perr != nil {
				readEr = perr
			}
		}
		if readEr != nil {
			return nil, readError(readEr)
		}
		size += int64(k)
		if size > MaxDocumentSize {
			return nil, ErrDocumentTooLarge
		}
		ct, err := s.Seal(buf[:k], last)
		if err != nil {
			return nil, policy.Internal("seal chunk", err)
		}
		batch.cts = append(batch.cts, ct)
		n++
		if len(batch.cts) == chunksPerTx || last {
			batches <- batch
			batch = chunkBatch{first: n}
		}
	}
	if err := finish(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	clear(buf)
	sum := h.Sum(nil)
	if in.SHA256 != nil && subtle.ConstantTimeCompare(sum, in.SHA256) != 1 {
		return nil, errDocDigest
	}
	sd.chunks = n
	sd.meta = DocumentMeta{Title: in.Title, Kind: in.Kind, Date: in.Date, Counterparty: in.Counterparty, FileName: in.FileName,
		EncodingFormat: in.MediaType, ContentSize: size, SHA256: hex.EncodeToString(sum)}
	ok = true
	return sd, nil
}

// reader reads the staged bytes back (an import parses its source from
// here, after the upload has ended).
func (sd *stagedDocument) reader(ctx context.Context) *DocumentReader {
	return &DocumentReader{v: sd.v, id: sd.id, size: sd.meta.ContentSize, chunks: uint64(sd.chunks),
		s: crypt.NewStream(sd.key), cur: -1, ctx: ctx}
}

// commit makes the document exist, in tx.
func (sd *stagedDocument) commit(ctx context.Context, tx *sql.Tx) (Record, error) {
	v := sd.v
	meta, err := json.Marshal(sd.meta)
	if err != nil {
		return Record{}, policy.Internal("encode document metadata", err)
	}
	now := v.now()
	rec := Record{ID: sd.id, Collection: DocumentsCollection, Version: 1, Created: now, Updated: now, Data: meta}
	mKey, sealed, err := v.sealRecord(DocumentsCollection, sd.id, 1, now.Unix(), now.Unix(), meta)
	if err != nil {
		return Record{}, err
	}
	if err := v.st.insert(ctx, tx, tDocuments, sd.id, `INSERT INTO documents (id, key_id, wrapped, size, chunks, created) VALUES (?, ?, ?, ?, ?, ?)`,
		sd.id, sd.keyID, sd.wrapped, sd.meta.ContentSize, sd.chunks, now.Unix()); err != nil {
		return Record{}, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO records (id, collection, version, key_id, sealed, created, updated) VALUES (?, ?, 1, ?, ?, ?, ?)`,
		sd.id, DocumentsCollection, mKey, sealed, now.Unix(), now.Unix()); err != nil {
		return Record{}, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM document_uploads WHERE id = ?`, sd.id); err != nil {
		return Record{}, err
	}
	if err := v.appendAudit(ctx, tx, AuditEntry{Event: EvRecordCreated, Actor: "owner", Collection: DocumentsCollection, RecordIDs: []string{sd.id}, Reason: sd.reason}); err != nil {
		return Record{}, err
	}
	return rec, nil
}

// committed records that the transaction holding commit has committed.
func (sd *stagedDocument) committed() { sd.done = true }

// discard drops the chunks of a document that was not committed and
// forgets its key; after commit it only forgets the key.
func (sd *stagedDocument) discard(ctx context.Context) {
	crypt.Wipe(sd.key)
	if !sd.done {
		sd.done = true
		sd.v.dropDocumentChunks(context.WithoutCancel(ctx), sd.id)
	}
}

// chunkBatch is a run of sealed chunks from chunk number first on.
type chunkBatch struct {
	first int64
	cts   [][]byte
}

// storeChunks writes one batch in one transaction.
func (v *Vault) storeChunks(ctx context.Context, id string, b chunkBatch) error {
	// The batch commits without an fsync of its own (synchronous=NORMAL,
	// on the writer connection held for the batch alone): the chunks
	// matter only once the document commits, and that commit (FULL) syncs
	// the WAL with every frame before it. A crash loses at most staged
	// chunks, which the next start removes anyway.
	conn, err := v.db.w.Conn(ctx)
	if err != nil {
		return storageError("store chunks", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
		return storageError("store chunks", err)
	}
	defer func() {
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA synchronous = FULL`); err != nil {
			// Never hand a connection that does not sync back to the
			// pool: ErrBadConn makes database/sql drop it.
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return storageError("store chunks", err)
	}
	st, err := tx.PrepareContext(ctx, `INSERT INTO document_chunks (doc_id, n, sealed) VALUES (?, ?, ?)`)
	if err != nil {
		tx.Rollback()
		return storageError("store chunks", err)
	}
	for i, ct := range b.cts {
		if _, err := st.ExecContext(ctx, id, b.first+int64(i), ct); err != nil {
			st.Close()
			tx.Rollback()
			return storageError("store chunks", err)
		}
	}
	st.Close()
	if err := tx.Commit(); err != nil {
		return storageError("store chunks", err)
	}
	return nil
}

// readError is a failed read of the source: the reader's own policy error
// (a body too large, a client gone) if it has one.
func readError(err error) error {
	var pe *policy.Error
	if errors.As(err, &pe) {
		return err
	}
	return policy.Wrap(policy.KindInvalid, "unreadable_source", "the file could not be read", err)
}

// dropDocumentChunks removes the chunks of an upload that did not finish.
func (v *Vault) dropDocumentChunks(ctx context.Context, id string) {
	err := v.db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM document_chunks WHERE doc_id = ?`, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM document_uploads WHERE id = ?`, id)
		return err
	})
	if err != nil {
		v.log.Error("cannot remove the chunks of an unfinished upload", "err", err)
	}
}

// cleanUploads removes what uploads cut off by a crash left behind.
func (v *Vault) cleanUploads(ctx context.Context) error {
	return v.db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM document_chunks WHERE doc_id IN (SELECT id FROM document_uploads)`); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM document_uploads`)
		return err
	})
}

// deleteDocumentRows removes a document's key row and chunks (its
// metadata record is the caller's).
func deleteDocumentRows(ctx context.Context, tx *sql.Tx, id string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM document_chunks WHERE doc_id = ?`, id); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM documents WHERE id = ?`, id)
	return err
}

// DocumentReader reads a document's plaintext, a chunk at a time, in any
// order (io.ReadSeeker, for HTTP Range requests). Each chunk is opened at
// its own position, and the final one with the last flag, against the
// authenticated chunk count: a chunk moved, dropped, taken from another
// document or altered fails the read with ErrTampered.
type DocumentReader struct {
	v      *Vault
	id     string
	size   int64
	chunks uint64
	s      *crypt.Stream
	off    int64
	cur    int64 // index of the chunk in buf, -1 for none
	buf    []byte
	ctx    context.Context
}

// Size is the document's length in bytes.
func (d *DocumentReader) Size() int64 { return d.size }

// Read reads plaintext from the current offset.
func (d *DocumentReader) Read(p []byte) (int, error) {
	if d.off >= d.size {
		return 0, io.EOF
	}
	c := d.off / docChunk
	if c != d.cur {
		if err := d.load(c); err != nil {
			return 0, err
		}
	}
	n := copy(p, d.buf[d.off-c*docChunk:])
	d.off += int64(n)
	return n, nil
}

func (d *DocumentReader) load(c int64) error {
	clear(d.buf)
	d.cur = -1
	// The sealed chunk is read as RawBytes (no copy by database/sql) and
	// opened into the reader's own buffer, reused from chunk to chunk.
	rows, err := d.v.db.r.QueryContext(d.ctx, `SELECT sealed FROM document_chunks WHERE doc_id = ? AND n = ?`, d.id, c)
	if err != nil {
		return storageError("read document", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return storageError("read document", err)
		}
		return d.tampered(c)
	}
	var ct sql.RawBytes
	if err := rows.Scan(&ct); err != nil {
		return storageError("read document", err)
	}
	last := uint64(c) == d.chunks-1
	pt, err := d.s.OpenAt(d.buf[:0], uint64(c), last, ct)
	if err != nil {
		return d.tampered(c)
	}
	want := int64(docChunk)
	if last {
		want = d.size - c*docChunk
	}
	if int64(len(pt)) != want {
		return d.tampered(c)
	}
	d.buf, d.cur = pt, c
	return nil
}

func (d *DocumentReader) tampered(c int64) error {
	d.v.log.Error("document chunk failed its integrity check", "id", d.id, "chunk", c)
	d.v.st.count.Add(1)
	return ErrTampered
}

// Seek sets the offset for the next Read (io.Seeker).
func (d *DocumentReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += d.off
	case io.SeekEnd:
		offset += d.size
	default:
		return d.off, errors.New("seek: bad whence")
	}
	if offset < 0 {
		return d.off, errors.New("seek: negative position")
	}
	d.off = offset
	return offset, nil
}

// Close forgets the key and the buffered plaintext.
func (d *DocumentReader) Close() error {
	clear(d.buf)
	d.s = nil
	return nil
}

// openDocument checks a document's key row and unwraps its key.
func (v *Vault) openDocument(ctx context.Context, id string) (*DocumentReader, error) {
	if !policy.ValidateRecordID(id) {
		return nil, ErrDocumentNotFound
	}
	r, err := v.st.row(ctx, v.db.r, tDocuments, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrDocumentNotFound
	}
	if err != nil {
		return nil, storageError("read document", err)
	}
	keyID := uint32(r.i64("key_id"))
	rk, err := v.recordKey(keyID)
	if err != nil {
		return nil, err
	}
	docKey, err := crypt.Open(rk, r.bytes("wrapped"), docKeyAAD(v.id, id, keyID))
	if err != nil {
		v.log.Error("document key failed its integrity check", "id", id)
		v.st.count.Add(1)
		return nil, ErrTampered
	}
	defer crypt.Wipe(docKey)
	size, chunks := r.i64("size"), r.i64("chunks")
	if size < 0 || chunks != max(1, (size+docChunk-1)/docChunk) {
		return nil, ErrTampered // authenticated, so never: but never trusted blindly
	}
	return &DocumentReader{v: v, id: id, size: size, chunks: uint64(chunks), s: crypt.NewStream(docKey), cur: -1, ctx: ctx}, nil
}

// OpenDocument returns a document's metadata record and a reader of its
// bytes, for the owner.
func (v *Vault) OpenDocument(ctx context.Context, id string) (Record, *DocumentReader, error) {
	rec, err := v.GetRecord(ctx, DocumentsCollection, id)
	if errors.Is(err, ErrRecordNotFound) {
		return Record{}, nil, ErrDocumentNotFound
	}
	if err != nil {
		return Record{}, nil, err
	}
	d, err := v.openDocument(ctx, id)
	if err != nil {
		return Record{}, nil, err
	}
	return rec, d, nil
}

// DeleteDocument removes a document: its metadata record, its key and its
// chunks, in one transaction.
func (v *Vault) DeleteDocument(ctx context.Context, id string) error {
	err := v.DeleteRecord(ctx, DocumentsCollection, id, 0)
	if errors.Is(err, ErrRecordNotFound) {
		return ErrDocumentNotFound
	}
	return err
}

// ReadDocument opens a document's bytes for an organization whose grant
// covers the documents collection with the field "content" (and the
// document's kind, if the grant names kinds). The read is audited before
// any byte leaves, like every read.
func (v *Vault) ReadDocument(ctx context.Context, a Access, orgID string) (DataRecord, *DocumentReader, error) {
	g, d, rel, err := v.authorize(ctx, a, DocumentsCollection)
	if err != nil {
		return DataRecord{}, nil, err
	}
	if !slices.Contains(d.Fields, ContentField) {
		return DataRecord{}, nil, v.refuse(ctx, g, DocumentsCollection, ErrDataNotFound)
	}
	id, ok := v.realRecordID(rel, orgID)
	if !ok {
		return DataRecord{}, nil, ErrDataNotFound
	}
	rec, err := v.GetRecord(ctx, DocumentsCollection, id)
	if errors.Is(err, ErrRecordNotFound) {
		return DataRecord{}, nil, ErrDataNotFound
	}
	if err != nil {
		return DataRecord{}, nil, err
	}
	if !policy.Covers(d, orgID, rec.Data) {
		return DataRecord{}, nil, ErrDataNotFound
	}
	doc, err := v.openDocument(ctx, id)
	if errors.Is(err, ErrDocumentNotFound) {
		return DataRecord{}, nil, ErrDataNotFound
	}
	if err != nil {
		return DataRecord{}, nil, err
	}
	data, err := policy.Project(d, rec.Data)
	if err != nil {
		return DataRecord{}, nil, policy.Internal("project", err)
	}
	seq, err := v.commitRead(ctx, g, DocumentsCollection, []string{id}, []string{ContentField})
	if err != nil {
		return DataRecord{}, nil, err
	}
	return DataRecord{ID: orgID, Collection: DocumentsCollection, Data: data, AuditSeq: seq}, doc, nil
}

// DocumentMedia decodes a document's metadata record.
func DocumentMedia(rec Record) (DocumentMeta, error) {
	var m DocumentMeta
	if err := json.Unmarshal(rec.Data, &m); err != nil {
		return DocumentMeta{}, err
	}
	return m, nil
}
