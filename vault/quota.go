package vault

import (
	"context"
	"database/sql"
	"fmt"
	"io"

	"github.com/pdvault/pdvault/policy"
)

// Quota bounds what a vault may hold; a host sets one per vault. Zero
// fields are unbounded. It is checked when the owner adds or changes
// content (records, documents, imports), inside the writing transaction,
// so a write that would cross it changes nothing. The vault's own
// bookkeeping (audit entries, organizations' requests) is bounded by the
// rate and pending limits instead: a full quota never stops a read, whose
// audit entry must be written.
type Quota struct {
	Bytes     int64 // the database file, documents included
	Records   int64 // live records, documents' metadata records included
	Documents int64
}

func (q Quota) set() bool { return q != Quota{} }

// ErrQuota is a write refused because the vault is full by its quota.
var ErrQuota = policy.E(policy.KindNoSpace, "quota_exceeded", "the vault's quota is used up; nothing was written")

// withinQuota runs fn, then refuses (rolling back) what it wrote if that
// went over the quota.
func (v *Vault) withinQuota(ctx context.Context, fn func(*sql.Tx) error) func(*sql.Tx) error {
	if !v.opts.Quota.set() {
		return fn
	}
	return func(tx *sql.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return v.checkQuota(ctx, tx)
	}
}

// checkQuota refuses, in the writing transaction, a state over the quota.
func (v *Vault) checkQuota(ctx context.Context, tx *sql.Tx) error {
	q := v.opts.Quota
	if !q.set() {
		return nil
	}
	if q.Bytes > 0 {
		n, err := dbBytes(ctx, tx)
		if err != nil {
			return err
		}
		if n > q.Bytes {
			return ErrQuota.WithDetail(fmt.Sprintf("the vault may hold %s; this would make it %s", byteSize(q.Bytes), byteSize(n)))
		}
	}
	for _, c := range []struct {
		max   int64
		query string
		what  string
	}{
		{q.Records, `SELECT count(*) FROM records`, "records"},
		{q.Documents, `SELECT count(*) FROM documents`, "documents"},
	} {
		if c.max <= 0 {
			continue
		}
		var n int64
		if err := tx.QueryRowContext(ctx, c.query).Scan(&n); err != nil {
			return err
		}
		if n > c.max {
			return ErrQuota.WithDetail(fmt.Sprintf("the vault may hold %d %s; this would make it %d", c.max, c.what, n))
		}
	}
	return nil
}

// dbBytes is the size of the database in use: its pages less the free ones.
func dbBytes(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int64, error) {
	var pages, free, size int64
	if err := q.QueryRowContext(ctx, `SELECT (SELECT page_count FROM pragma_page_count), (SELECT freelist_count FROM pragma_freelist_count), (SELECT page_size FROM pragma_page_size)`).Scan(&pages, &free, &size); err != nil {
		return 0, err
	}
	return (pages - free) * size, nil
}

// byteSize writes n bytes for a person: 1.5 GiB, 300 MiB, 12 KiB.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	f, i := float64(n)/unit, 0
	for f >= unit && i < 3 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGT"[i])
}

// quotaReader bounds a document's bytes by what the byte quota has left, so
// an upload stops when the vault is full rather than after it has filled
// the disk (the commit checks the quota again, with the chunks' overhead).
func (v *Vault) quotaReader(ctx context.Context, r io.Reader) (io.Reader, error) {
	if v.opts.Quota.Bytes <= 0 {
		return r, nil
	}
	used, err := dbBytes(ctx, v.db.r)
	if err != nil {
		return nil, storageError("measure the vault", err)
	}
	left := v.opts.Quota.Bytes - used
	return &quotaLimited{r: r, left: left, quota: v.opts.Quota.Bytes}, nil
}

type quotaLimited struct {
	r     io.Reader
	left  int64
	quota int64
}

func (q *quotaLimited) Read(p []byte) (int, error) {
	if q.left < 0 {
		return 0, q.err()
	}
	if int64(len(p)) > q.left+1 {
		p = p[:q.left+1] // one byte over is enough to know
	}
	n, err := q.r.Read(p)
	q.left -= int64(n)
	if q.left < 0 {
		return n, q.err()
	}
	return n, err
}

func (q *quotaLimited) err() error {
	return ErrQuota.WithDetail(fmt.Sprintf("the vault may hold %s", byteSize(q.quota)))
}
