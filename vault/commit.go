package vault

import (
	"context"
	"database/sql"
	"errors"

	"github.com/pdvault/pdvault/policy"
)

// Group commit for the hot path. Every use of a grant (a read, an answer
// to derived claims) must check revocation and append its audit entry
// durably before data leaves. Doing that in one transaction per use costs
// one fsync per read; here, concurrent uses queue to a single committer,
// which takes all that are waiting and handles them in one transaction:
// one fsync for the batch. Each use still sees revocation exactly as
// before — the batch runs on the single writer connection, serialized with
// Revoke — and each caller is answered only after the batch committed.

// maxBatch bounds one group commit.
const maxBatch = 512

type grantUse struct {
	g      *policy.GrantClaims
	entry  AuditEntry // the entry to log if the grant is still good
	always bool       // log the entry whatever the grant's state (a refusal)
	seq    *int64     // set to the entry's place in the log
	done   chan error
}

func (v *Vault) startCommitter() {
	v.uses = make(chan grantUse)
	v.stopped = make(chan struct{})
	v.committerDone = make(chan struct{})
	go v.runCommitter()
}

func (v *Vault) runCommitter() {
	defer close(v.committerDone)
	for {
		var first grantUse
		select {
		case first = <-v.uses:
		case <-v.stopped:
			return
		}
		batch := []grantUse{first}
	drain:
		for len(batch) < maxBatch {
			select {
			case u := <-v.uses:
				batch = append(batch, u)
			default:
				break drain
			}
		}
		v.counters.commitBatch(len(batch))
		results := make([]error, len(batch))
		ctx := context.Background() // the batch is not one caller's to cancel
		err := v.db.txLocal(ctx, func(tx *sql.Tx) error {
			log := v.auditWriter(tx)
			reads := map[string]int64{} // relationship -> reads in this batch
			for i, u := range batch {
				res, err := v.useGrant(ctx, tx, log, u)
				if err != nil {
					return err
				}
				results[i] = res
				if res == nil && (u.entry.Event == EvDataRead || u.entry.Event == EvClaimsRead) {
					if rel, err := v.relOf(ctx, u.g.ClientID); err == nil {
						reads[rel]++
					}
				}
			}
			if err := v.countReads(ctx, tx, reads); err != nil {
				return err
			}
			return log.flush(ctx)
		})
		for i, u := range batch {
			if err != nil {
				u.done <- err
			} else {
				u.done <- results[i]
			}
		}
	}
}

// countReads adds a batch's reads to the relationships' counters (one
// write per relationship per batch), so that no view of a relationship
// ever scans the audit log.
func (v *Vault) countReads(ctx context.Context, tx *sql.Tx, reads map[string]int64) error {
	now := v.now().Unix()
	for rel, n := range reads {
		r, err := v.st.row(ctx, tx, tRelStats, rel)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		default:
			n += r.i64("reads")
		}
		if err := v.st.put(ctx, tx, tRelStats, rel, n, now); err != nil {
			return err
		}
	}
	return nil
}

// useGrant checks one use inside the batch's transaction. It returns the
// caller's answer (nil, or the refusal), or an error that fails the batch.
func (v *Vault) useGrant(ctx context.Context, tx *sql.Tx, log *auditLog, u grantUse) (refusal error, err error) {
	// The grant's row is checked like every row that carries power: a
	// revocation erased by editing the file is a tampered row, not a
	// live grant. That refuses this use only, not the whole batch.
	// (The row is read raw: the scope comes from the signed grant, so
	// only revocation and the name are needed, not the decoded row.)
	r, err := v.st.row(ctx, tx, tGrants, u.g.ID)
	if u.always {
		// A refusal: logged as it is, with the name when the row has it
		// (a grant from a restored backup may have none).
		e := u.entry
		if err == nil {
			e.ClientName = r.str("client_name")
		}
		if err := log.append(ctx, e); err != nil {
			return nil, err
		}
		*u.seq = log.size
		return nil, nil
	}
	if isTampered(err) {
		return err, log.append(ctx, v.refusal(u.g, u.entry.Collection, err))
	}
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !r.null("revoked")) {
		e := v.refusal(u.g, u.entry.Collection, policy.ErrGrantRevoked)
		if err == nil {
			e.ClientName = r.str("client_name")
		}
		return policy.ErrGrantRevoked, log.append(ctx, e)
	}
	if err != nil {
		return nil, err
	}
	e := u.entry
	e.ClientName = r.str("client_name")
	if err := log.append(ctx, e); err != nil {
		return nil, err
	}
	*u.seq = log.size
	return nil, nil
}

// commitUse hands a use of a grant to the committer and waits for the
// batch that holds it to commit. It returns the entry's place in the log,
// which the organization can later ask an inclusion proof for.
func (v *Vault) commitUse(ctx context.Context, g *policy.GrantClaims, e AuditEntry) (int64, error) {
	return v.commit(ctx, grantUse{g: g, entry: e})
}

// commitEntry logs e through the committer whatever the grant's state.
func (v *Vault) commitEntry(ctx context.Context, g *policy.GrantClaims, e AuditEntry) (int64, error) {
	return v.commit(ctx, grantUse{g: g, entry: e, always: true})
}

func (v *Vault) commit(ctx context.Context, u grantUse) (int64, error) {
	var seq int64
	u.seq, u.done = &seq, make(chan error, 1)
	select {
	case v.uses <- u:
	case <-v.stopped:
		return 0, ErrLocked
	case <-ctx.Done():
		return 0, policy.Wrap(policy.KindUnavailable, "temporarily_unavailable", "the request was cancelled", ctx.Err())
	}
	select {
	case err := <-u.done:
		if err != nil {
			return seq, err
		}
		// Confirmed outside the committer, so that the next batch commits
		// meanwhile; the waits of a batch's callers are shared.
		return seq, v.db.confirmed(ctx)
	case <-ctx.Done():
		// The batch may still commit the entry: the log then says more was
		// read than was delivered, never less.
		return 0, policy.Wrap(policy.KindUnavailable, "temporarily_unavailable", "the request was cancelled", ctx.Err())
	}
}

// stopCommitter ends the committer after its current batch.
func (v *Vault) stopCommitter() {
	if v.stopped == nil {
		return
	}
	select {
	case <-v.stopped:
	default:
		close(v.stopped)
	}
	<-v.committerDone
}
