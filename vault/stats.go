package vault

import (
	"context"
	"math/bits"
	"sync/atomic"
	"time"
)

// Stats are the counts an operator's monitoring reads (/metrics): no
// record content, no organization names, nothing per person.
type Stats struct {
	// Requests counts access requests by state (pending, approved,
	// denied, collected, expired).
	Requests map[string]int64
	// AuditEntries is the size of the audit log.
	AuditEntries int64
	// LastVerify is when the audit log was last verified in this process,
	// and whether it verified (zero time: not since start).
	LastVerify   time.Time
	LastVerifyOK bool
	// CommitBatches is a histogram of group-commit batch sizes: bucket i
	// counts batches of at most 2^i uses; CommitUses is their sum.
	CommitBatches [commitBuckets]int64
	CommitUses    int64
	// LastBackup is when a scheduled backup was last attempted in this
	// process, and whether it was made and verified.
	LastBackup   time.Time
	LastBackupOK bool
}

// commitBuckets covers batches of 1 to maxBatch (512 = 2^9) uses.
const commitBuckets = 10

// counters are the Stats kept in memory as things happen.
type counters struct {
	commitBatches [commitBuckets]atomic.Int64
	commitUses    atomic.Int64
	verifyAt      atomic.Int64 // unix seconds; 0: never
	verifyOK      atomic.Bool
	backupAt      atomic.Int64 // unix seconds of the last scheduled backup attempt; 0: none
	backupOK      atomic.Bool
}

func (c *counters) backedUp(at time.Time, ok bool) {
	c.backupOK.Store(ok)
	c.backupAt.Store(at.Unix())
}

func (c *counters) commitBatch(n int) {
	b := bits.Len(uint(n - 1)) // 1 -> 0, 2 -> 1, 3..4 -> 2, ...
	c.commitBatches[min(b, commitBuckets-1)].Add(1)
	c.commitUses.Add(int64(n))
}

func (c *counters) verified(at time.Time, ok bool) {
	c.verifyOK.Store(ok)
	c.verifyAt.Store(at.Unix())
}

// Stats reads the counts (two indexed queries).
func (v *Vault) Stats(ctx context.Context) (Stats, error) {
	if v.closed.Load() {
		return Stats{}, ErrLocked
	}
	s := Stats{Requests: map[string]int64{}}
	for _, st := range []string{StatusPending, StatusApproved, StatusDenied, StatusCollected, StatusExpired} {
		s.Requests[st] = 0
	}
	rows, err := v.db.r.QueryContext(ctx, `SELECT CASE WHEN status = ? AND expires <= ? THEN ? ELSE status END, count(*) FROM requests GROUP BY 1`,
		StatusPending, v.opts.Now().Unix(), StatusExpired)
	if err != nil {
		return Stats{}, storageError("count requests", err)
	}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			rows.Close()
			return Stats{}, storageError("count requests", err)
		}
		s.Requests[st] += n
	}
	if err := rows.Close(); err != nil {
		return Stats{}, storageError("count requests", err)
	}
	if err := v.db.r.QueryRowContext(ctx, `SELECT size FROM audit_head WHERE id = 1`).Scan(&s.AuditEntries); err != nil {
		return Stats{}, storageError("read audit head", err)
	}
	c := &v.counters
	if at := c.backupAt.Load(); at != 0 {
		s.LastBackup, s.LastBackupOK = time.Unix(at, 0), c.backupOK.Load()
	}
	if at := c.verifyAt.Load(); at != 0 {
		s.LastVerify, s.LastVerifyOK = time.Unix(at, 0).UTC(), c.verifyOK.Load()
	}
	for i := range s.CommitBatches {
		s.CommitBatches[i] = c.commitBatches[i].Load()
	}
	s.CommitUses = c.commitUses.Load()
	return s, nil
}

// Ready says whether the vault can serve: unlocked, and its database
// takes a write lock (not read-only, not wedged by another process).
func (v *Vault) Ready(ctx context.Context) error {
	if v.closed.Load() {
		return ErrLocked
	}
	conn, err := v.db.w.Conn(ctx)
	if err != nil {
		return storageError("readiness", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return storageError("readiness", err)
	}
	if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
		return storageError("readiness", err)
	}
	return nil
}
