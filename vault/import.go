package vault

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault/importers"
	"github.com/pdvault/pdvault/vault/internal/crypt"
)

// DataImport says how to bring one source file into the vault.
type DataImport struct {
	// Name is the file's name as the owner knows it; kept, sealed, in each
	// record's provenance.
	Name string
	// Format names the importer; empty means detect it from the content.
	Format string
	// Collection overrides the importer's collection.
	Collection string
	// SHA256, when set, is the digest the sender declared for the whole
	// file (RFC 9530 Content-Digest over HTTP): a file that does not match
	// is not imported.
	SHA256 []byte
	// Size, when known, is the file's length, for progress.
	Size int64
	// DryRun parses and counts but keeps nothing.
	DryRun bool
	// DiscardOriginal drops the source file once its records are in; by
	// default it is kept as an encrypted document (kind "import"), so that
	// whatever the importer did not map is not lost.
	DiscardOriginal bool
	// Options are the importer's options (--map), e.g. for CSV
	// date=Buchungstag, decimal=comma.
	Options map[string]string
}

// ImportResult is what an import did.
type ImportResult struct {
	File       string `json:"file"`
	Format     string `json:"format"`
	Collection string `json:"collection"`
	SHA256     string `json:"sha256"`
	Bytes      int64  `json:"bytes"`
	Added      int    `json:"added"`
	Duplicates int    `json:"duplicates"`
	// Document is the id of the kept source file, in collection documents.
	Document string `json:"document,omitempty"`
	DryRun   bool   `json:"dry_run,omitempty"`
}

// Import errors (docs/importers.md).
var (
	ErrUnknownFormat  = policy.E(policy.KindInvalid, "unknown_format", "no importer has that name; pdvault data formats lists them")
	ErrUndetected     = policy.E(policy.KindUnprocessable, "format_not_detected", "the file's format was not recognised; name it with --format (pdvault data formats lists them)")
	ErrDigestMismatch = policy.E(policy.KindInvalid, "digest_mismatch", "the file's SHA-256 is not the one declared; nothing was imported")
	// ErrImportFailed is a file that does not parse; its detail names the
	// file, the place and the malformation, its one reason is the
	// importer's code for it (e.g. vcard_unterminated).
	ErrImportFailed = policy.E(policy.KindUnprocessable, "import_failed", "nothing was imported")
	errDryRun       = errors.New("dry run")
)

// maxImportName bounds the file name kept in provenance.
const maxImportName = 255

// ImportKind is the document kind of a kept import source.
const ImportKind = "import"

// ImportData imports one file and returns when it is in (or not: a file is
// imported whole or not at all). Items imported before (by any earlier
// file, keyed by the importer's item key) are counted as duplicates and
// not stored again. Its progress is visible in ImportJobs meanwhile.
func (v *Vault) ImportData(ctx context.Context, r io.Reader, in DataImport) (ImportResult, error) {
	j, run, err := v.prepareImport(ctx, r, in)
	if err != nil {
		return ImportResult{File: in.Name}, err
	}
	defer v.imports.release()
	res, err := run(ctx)
	j.finish(res, err)
	return res, err
}

// StartImport receives the file and returns once it is stored (encrypted,
// as a staged document); the importer then runs in the background, and
// ImportJob reports how far it is. A dry run is done before it returns.
func (v *Vault) StartImport(ctx context.Context, r io.Reader, in DataImport) (ImportJob, error) {
	j, run, err := v.prepareImport(ctx, r, in)
	if err != nil {
		return ImportJob{}, err
	}
	if in.DryRun {
		defer v.imports.release()
		res, err := run(ctx)
		j.finish(res, err)
		return j.snapshot(), err
	}
	go func() {
		defer v.imports.release()
		res, err := run(v.imports.ctx)
		j.finish(res, err)
	}()
	return j.snapshot(), nil
}

// prepareImport checks the request, registers the job and, unless it is
// a dry run, stores the file as a staged document first: the import then
// reads its own sealed copy, so the upload never holds the writer, the
// digest is known before any record names it, and the source is kept
// with the records or dropped with them. The caller must call
// v.imports.release once run has returned.
func (v *Vault) prepareImport(ctx context.Context, r io.Reader, in DataImport) (*importJob, func(context.Context) (ImportResult, error), error) {
	if in.SHA256 != nil && len(in.SHA256) != sha256.Size {
		return nil, nil, policy.E(policy.KindInvalid, "invalid_digest", "the declared SHA-256 must be 32 bytes")
	}
	if len(in.Name) > maxImportName || !utf8.ValidString(in.Name) || strings.ContainsFunc(in.Name, unicode.IsControl) {
		return nil, nil, policy.E(policy.KindInvalid, "invalid_file_name", "the file name must be UTF-8 text of at most 255 bytes, without control characters")
	}
	if in.Collection != "" {
		if err := policy.ValidateCollection(in.Collection); err != nil {
			return nil, nil, err
		}
	}
	f, named := importers.Format{}, in.Format != ""
	if named {
		var ok bool
		if f, ok = importers.Lookup(in.Format); !ok {
			return nil, nil, ErrUnknownFormat
		}
	}
	j, err := v.imports.add(in.Name, in.Size, v.now)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*importJob, func(context.Context) (ImportResult, error), error) {
		j.finish(ImportResult{}, err)
		v.imports.release()
		return nil, nil, err
	}

	// A dry run parses the stream as it comes and keeps nothing.
	if in.DryRun {
		h := sha256.New()
		br := bufio.NewReaderSize(&progressReader{r: io.TeeReader(r, h), n: &j.bytes}, importers.HeadSize)
		if f, err = detect(br, f, named); err != nil {
			return fail(err)
		}
		j.setState(jobImporting, f.Name)
		return j, func(ctx context.Context) (ImportResult, error) {
			res, err := v.importItems(ctx, br, f, in, j, "", "", func(_ *sql.Tx, res *ImportResult) error {
				// The rest of the file counts for the digest too.
				if _, err := io.Copy(io.Discard, br); err != nil {
					return readError(err)
				}
				if in.SHA256 != nil && subtle.ConstantTimeCompare(h.Sum(nil), in.SHA256) != 1 {
					return ErrDigestMismatch
				}
				res.SHA256 = hex.EncodeToString(h.Sum(nil))
				return errDryRun
			})
			if errors.Is(err, errDryRun) {
				err = nil
			}
			return res, err
		}, nil
	}

	sd, err := v.stageDocument(ctx, &progressReader{r: r, n: &j.bytes}, DocumentInput{FileName: in.Name, Kind: ImportKind,
		Date: v.now().UTC().Format(time.DateOnly), SHA256: in.SHA256})
	if errors.Is(err, errDocDigest) {
		err = ErrDigestMismatch
	}
	if err != nil {
		return fail(err)
	}
	src := sd.reader(ctx)
	j.bytes.Store(0)
	j.total.Store(sd.meta.ContentSize)
	br := bufio.NewReaderSize(&progressReader{r: src, n: &j.bytes}, importers.HeadSize)
	if f, err = detect(br, f, named); err != nil {
		sd.discard(ctx)
		return fail(err)
	}
	j.setState(jobImporting, f.Name)
	return j, func(ctx context.Context) (ImportResult, error) {
		defer sd.discard(ctx)
		defer src.Close()
		src.ctx = ctx
		keep := !in.DiscardOriginal
		docID := ""
		if keep {
			docID = sd.id
		}
		res, err := v.importItems(ctx, br, f, in, j, sd.meta.SHA256, docID, func(tx *sql.Tx, res *ImportResult) error {
			res.SHA256 = sd.meta.SHA256
			res.Bytes = sd.meta.ContentSize
			if res.Added == 0 || !keep {
				res.Document = ""
				return nil // a file that adds nothing is not kept twice
			}
			res.Document = sd.id
			sd.reason = "source of an import (" + f.Name + ")"
			_, err := sd.commit(ctx, tx)
			return err
		})
		if err == nil && res.Document != "" {
			sd.committed()
		}
		return res, err
	}, nil
}

// detect names the file's importer from its first bytes, unless named.
func detect(br *bufio.Reader, f importers.Format, named bool) (importers.Format, error) {
	head, err := br.Peek(importers.HeadSize)
	if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		return f, readError(err)
	}
	if named {
		return f, nil
	}
	f, ok := importers.Detect(head)
	if !ok {
		return f, ErrUndetected
	}
	return f, nil
}

// importItems runs the importer over br and stores its items as records,
// all in one transaction; end runs last in that transaction (it checks
// the digest, keeps the source, or aborts a dry run).
func (v *Vault) importItems(ctx context.Context, br *bufio.Reader, f importers.Format, in DataImport, j *importJob, digest, docID string,
	end func(*sql.Tx, *ImportResult) error) (ImportResult, error) {
	res := ImportResult{File: in.Name, Format: f.Name, DryRun: in.DryRun}
	now := v.now()
	err := v.recordsTx(ctx, func(tx *sql.Tx) error {
		// The marks and record ids are random keys: with the default
		// 2 MiB page cache a large import misses on nearly every insert.
		// 64 MiB for the length of the import, on the one writer.
		if _, err := tx.ExecContext(ctx, `PRAGMA cache_size = -65536`); err != nil {
			return err
		}
		defer tx.ExecContext(context.WithoutCancel(ctx), `PRAGMA cache_size = -2000`)
		mark, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO import_items (mark) VALUES (?)`)
		if err != nil {
			return err
		}
		defer mark.Close()
		ins, err := tx.PrepareContext(ctx, `INSERT INTO records (id, collection, version, key_id, sealed, created, updated) VALUES (?, ?, 1, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		// Parsing, keying and sealing run on their own goroutine, a batch
		// ahead of the inserts here (on a 2-core machine each side is about
		// half of an import's time). An item found to be a duplicate when
		// its mark is inserted was sealed for nothing; that is the price.
		type row struct {
			mark, sealed []byte
			id, coll     string
			keyID        uint32
		}
		pctx, cancel := context.WithCancel(ctx)
		defer cancel()
		batches := make(chan []row, 4)
		perr := make(chan error, 1)
		go func() {
			defer close(batches)
			batch := make([]row, 0, importBatch)
			send := func() error {
				select {
				case batches <- batch:
					batch = make([]row, 0, importBatch)
					return nil
				case <-pctx.Done():
					return pctx.Err()
				}
			}
			err := f.Run(br, in.Options, func(it importers.Item) error {
				j.records.Add(1)
				coll := it.Collection
				if in.Collection != "" {
					coll = in.Collection
				}
				prov := map[string]any{"importer": f.Name, "importerVersion": f.Version, "source": in.Name, "item": it.Ref}
				if digest != "" {
					prov["sourceSha256"] = digest
				}
				if docID != "" {
					prov["sourceDocument"] = docID
				}
				it.Data["provenance"] = prov
				data, err := importedRecord(it)
				if err != nil {
					return err
				}
				r := row{mark: crypt.Keyed(v.importKey, coll, f.Name, hex.EncodeToString(sha256Sum(it.Key))), id: newID(), coll: coll}
				if r.keyID, r.sealed, err = v.sealRecord(coll, r.id, 1, now.Unix(), now.Unix(), data); err != nil {
					return err
				}
				if batch = append(batch, r); len(batch) == importBatch {
					return send()
				}
				return nil
			})
			if err == nil && len(batch) > 0 {
				err = send()
			}
			perr <- err
		}()
		collections := map[string]int{}
		store := func(b []row) error {
			for _, r := range b {
				rr, err := mark.ExecContext(ctx, r.mark)
				if err != nil {
					return err
				}
				if n, _ := rr.RowsAffected(); n == 0 {
					res.Duplicates++
					continue
				}
				if _, err := ins.ExecContext(ctx, r.id, r.coll, r.keyID, r.sealed, now.Unix(), now.Unix()); err != nil {
					return err
				}
				collections[r.coll]++
				res.Added++
			}
			return nil
		}
		for b := range batches {
			if err := store(b); err != nil {
				cancel()
				for range batches {
				}
				<-perr
				return err
			}
		}
		if err := <-perr; err != nil {
			return err
		}
		// The collection most records went to names the result (ties: by
		// name), so that the summary is the same on every run.
		for _, coll := range slices.Sorted(maps.Keys(collections)) {
			if collections[coll] > collections[res.Collection] {
				res.Collection = coll
			}
			n := collections[coll]
			if err := v.appendAudit(ctx, tx, AuditEntry{Event: EvRecordCreated, Actor: "owner", Collection: coll,
				Reason: fmt.Sprintf("%d records imported (%s)", n, f.Name)}); err != nil {
				return err
			}
		}
		if res.Collection == "" {
			res.Collection = in.Collection
			if res.Collection == "" && len(f.Collections) == 1 {
				res.Collection = f.Collections[0]
			}
		}
		return end(tx, &res)
	})
	if errors.Is(err, errDryRun) {
		return res, err
	}
	var ie *importers.Error
	if errors.As(err, &ie) {
		return ImportResult{File: in.Name, Format: f.Name},
			ErrImportFailed.WithDetail(importErrorText(in.Name, ie)).WithReasons([]string{ie.Code}).WithCause(ie)
	}
	if err != nil {
		return ImportResult{File: in.Name, Format: f.Name}, err
	}
	return res, nil
}

// importBatch is how many sealed items travel together from the parser to
// the inserts.
const importBatch = 256

// maxImportedRecord bounds one record made by an importer, as the API
// bounds a record sent by the owner.
const maxImportedRecord = 1 << 20

// importedRecord encodes an item as NormalizeRecord would leave it (keys
// sorted, compact), without decoding it again: importers write only
// vocabulary field names, which are checked here all the same.
func importedRecord(it importers.Item) ([]byte, error) {
	if len(it.Data) > policy.MaxRecordFields {
		return nil, &importers.Error{Format: "import", Ref: it.Ref, Code: "record_too_large", Msg: "the item has more than 1000 fields"}
	}
	for k := range it.Data {
		if err := policy.ValidateField(k); err != nil {
			return nil, fmt.Errorf("%s: %w", it.Ref, err)
		}
	}
	data, err := json.Marshal(it.Data)
	if err != nil {
		return nil, err
	}
	if len(data) > maxImportedRecord {
		return nil, &importers.Error{Format: "import", Ref: it.Ref, Code: "record_too_large", Msg: "the item makes a record over 1 MiB"}
	}
	return data, nil
}

// importErrorText names the file, the place and the malformation. The
// importers build it from fixed words, clipped values and positions only.
func importErrorText(name string, ie *importers.Error) string {
	if name == "" {
		name = "the file"
	}
	return name + ": " + ie.Error()
}

func sha256Sum(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

// progressReader counts the bytes read through it into n.
type progressReader struct {
	r io.Reader
	n *atomic.Int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	k, err := p.r.Read(b)
	p.n.Add(int64(k))
	return k, err
}
