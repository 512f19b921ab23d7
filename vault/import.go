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
	// SHA256 is the digest of the whole file, declared before it is sent
	// (RFC 9530 Content-Digest over HTTP). Each record's provenance names
	// it, so the vault checks it at the end and keeps nothing if it does
	// not match.
	SHA256 []byte
	// DryRun parses and counts but keeps nothing.
	DryRun bool
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
	DryRun     bool   `json:"dry_run,omitempty"`
}

// Import errors (docs/importers.md).
var (
	ErrUnknownFormat  = policy.E(policy.KindInvalid, "unknown_format", "no importer has that name; pdvault data formats lists them")
	ErrUndetected     = policy.E(policy.KindUnprocessable, "format_not_detected", "the file's format was not recognised; name it with --format (pdvault data formats lists them)")
	ErrNoDigest       = policy.E(policy.KindInvalid, "digest_required", "send the file's SHA-256 (Content-Digest: sha-256=:...:, RFC 9530)")
	ErrDigestMismatch = policy.E(policy.KindInvalid, "digest_mismatch", "the file's SHA-256 is not the one declared; nothing was imported")
	// ErrImportFailed is a file that does not parse; its detail names the
	// file, the place and the malformation, its one reason is the
	// importer's code for it (e.g. vcard_unterminated).
	ErrImportFailed = policy.E(policy.KindUnprocessable, "import_failed", "nothing was imported")
	errDryRun       = errors.New("dry run")
)

// maxImportName bounds the file name kept in provenance.
const maxImportName = 255

// ImportData parses r with an importer and stores its items as records,
// all in one transaction: a file is imported whole or not at all. Items
// imported before (by any earlier file, keyed by the importer's item key)
// are counted as duplicates and not stored again.
func (v *Vault) ImportData(ctx context.Context, r io.Reader, in DataImport) (ImportResult, error) {
	res := ImportResult{File: in.Name, DryRun: in.DryRun}
	if len(in.SHA256) != sha256.Size {
		return res, ErrNoDigest
	}
	if len(in.Name) > maxImportName || !utf8.ValidString(in.Name) {
		return res, policy.E(policy.KindInvalid, "invalid_file_name", "the file name must be UTF-8 text of at most 255 bytes")
	}
	if in.Collection != "" {
		if err := policy.ValidateCollection(in.Collection); err != nil {
			return res, err
		}
	}
	h := sha256.New()
	counted := &countingReader{r: io.TeeReader(r, h)}
	br := bufio.NewReaderSize(counted, importers.HeadSize)
	head, err := br.Peek(importers.HeadSize)
	if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		return res, policy.Wrap(policy.KindInvalid, "unreadable_source", "the file could not be read", err)
	}
	f, ok := importers.Format{}, false
	if in.Format != "" {
		if f, ok = importers.Lookup(in.Format); !ok {
			return res, ErrUnknownFormat
		}
	} else if f, ok = importers.Detect(head); !ok {
		return res, ErrUndetected
	}
	res.Format = f.Name
	res.SHA256 = hex.EncodeToString(in.SHA256)
	now := v.now()

	err = v.db.tx(ctx, func(tx *sql.Tx) error {
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
		collections := map[string]int{}
		err = f.Run(br, in.Options, func(it importers.Item) error {
			coll := it.Collection
			if in.Collection != "" {
				coll = in.Collection
			}
			m := crypt.Keyed(v.importKey, coll, f.Name, hex.EncodeToString(sha256Sum(it.Key)))
			r, err := mark.ExecContext(ctx, m)
			if err != nil {
				return err
			}
			if n, _ := r.RowsAffected(); n == 0 {
				res.Duplicates++
				return nil
			}
			it.Data["provenance"] = map[string]any{
				"importer": f.Name, "importerVersion": f.Version,
				"source": in.Name, "sourceSha256": res.SHA256, "item": it.Ref,
			}
			data, err := importedRecord(it)
			if err != nil {
				return err
			}
			id := newID()
			keyID, sealed, err := v.sealRecord(coll, id, 1, now.Unix(), now.Unix(), data)
			if err != nil {
				return err
			}
			if _, err := ins.ExecContext(ctx, id, coll, keyID, sealed, now.Unix(), now.Unix()); err != nil {
				return err
			}
			collections[coll]++
			res.Added++
			return nil
		})
		if err != nil {
			return err
		}
		// The rest of the file counts for the digest too.
		if _, err := io.Copy(io.Discard, br); err != nil {
			return policy.Wrap(policy.KindInvalid, "unreadable_source", "the file could not be read", err)
		}
		res.Bytes = counted.n
		if subtle.ConstantTimeCompare(h.Sum(nil), in.SHA256) != 1 {
			return ErrDigestMismatch
		}
		for coll, n := range collections {
			res.Collection = coll
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
		if in.DryRun {
			return errDryRun
		}
		return nil
	})
	if errors.Is(err, errDryRun) {
		return res, nil
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

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
