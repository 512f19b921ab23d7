package vault

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/pdvault/pdvault/policy"
)

// The DPoP replay cache (RFC 9449 §11.1). A proof's jti is remembered for
// as long as the proof could still be accepted: proofLife after it was
// seen (its iat may be up to the skew ahead, and it is accepted up to
// ProofMaxAge plus the skew after that).
//
//   - Keys are fixed-size (16 bytes of SHA-256 over the key thumbprint and
//     the jti), whatever the jti's length.
//   - Entries sit in time buckets of bucketWidth; a whole bucket is dropped
//     when it is old enough, so expiry costs nothing per entry.
//   - It is consulted only after the cheap checks *and* after the proof's
//     key is shown to belong here (it holds the grant, or it is a key of a
//     relationship or of the request it polls for): a stranger's proofs
//     from fresh keys never reach it, so they cannot fill it.
//   - It holds at most replayMax entries (about 100 bytes each); beyond
//     that proofs are refused (fail closed) until buckets age out.
//   - A restart must not reopen replays: on Close the live entries are
//     written to the database with a clean-shutdown mark and read back at
//     the next Open. After an unclean stop there is nothing to read, so
//     proofs dated before the restart are refused instead (a client gets
//     invalid_dpop_proof and signs a fresh one, dated now). What remains is
//     a proof dated in the second of the restart or up to the clock skew
//     into the future, used just before a crash, replayed just after it.

const (
	bucketWidth = 30 * time.Second
	proofLife   = policy.ProofMaxAge + 2*policy.ClockSkew
	nBuckets    = int(proofLife/bucketWidth) + 2
	replayMax   = 1 << 20
)

type replayKey [16]byte

func proofKey(jkt, jti string) replayKey {
	h := sha256.New()
	h.Write([]byte(jkt))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	var k replayKey
	copy(k[:], h.Sum(nil))
	return k
}

type replayCache struct {
	mu        sync.Mutex
	buckets   [nBuckets]map[replayKey]struct{}
	windows   [nBuckets]int64 // the window (unix / bucketWidth) each bucket holds
	n         int
	max       int
	notBefore time.Time // proofs issued before this are refused (after an unclean stop)
}

func newReplayCache(max int) *replayCache {
	c := &replayCache{max: max}
	for i := range c.buckets {
		c.buckets[i] = map[replayKey]struct{}{}
		c.windows[i] = -1
	}
	return c
}

// ErrProofBeforeRestart refuses a proof that may have been used before the
// vault restarted without saving its replay cache.
var ErrProofBeforeRestart = policy.E(policy.KindUnauthenticated, "invalid_dpop_proof", "the DPoP proof was made before the vault restarted; make a fresh one")

func window(t time.Time) int64 { return t.Unix() / int64(bucketWidth/time.Second) }

// expire drops buckets that can hold nothing acceptable any more.
func (c *replayCache) expire(now time.Time) {
	oldest := window(now) - int64(nBuckets) + 1
	for i := range c.buckets {
		if c.windows[i] >= 0 && c.windows[i] < oldest {
			c.n -= len(c.buckets[i])
			c.buckets[i] = map[replayKey]struct{}{}
			c.windows[i] = -1
		}
	}
}

// use records a proof and reports whether it was new.
func (c *replayCache) use(k replayKey, iat, now time.Time) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if iat.Before(c.notBefore) {
		return false, ErrProofBeforeRestart
	}
	c.expire(now)
	for i := range c.buckets {
		if _, dup := c.buckets[i][k]; dup {
			return false, nil
		}
	}
	if c.n >= c.max {
		return false, ErrReplayCacheFull
	}
	c.add(k, window(now))
	return true, nil
}

func (c *replayCache) add(k replayKey, w int64) {
	i := int(w % int64(nBuckets))
	if c.windows[i] != w {
		c.n -= len(c.buckets[i])
		c.buckets[i] = map[replayKey]struct{}{}
		c.windows[i] = w
	}
	if _, ok := c.buckets[i][k]; !ok {
		c.buckets[i][k] = struct{}{}
		c.n++
	}
}

// consumeProof records a proof's jti, refusing a replay. Call it only once
// the proof's key is known to belong here.
func (v *Vault) consumeProof(p *policy.Proof) error {
	fresh, err := v.replay.use(proofKey(p.JKT, p.ID), time.Unix(p.IssuedAt, 0), v.opts.Now())
	if err != nil {
		return err
	}
	if !fresh {
		return policy.ErrProofReplayed
	}
	return nil
}

var tShutdown = newTable("shutdown", "id", "id", "clean_at", "not_before", "digest")

// replayDigest is SHA-256 over the saved entries in key order.
func replayDigest(keys map[replayKey]int64) []byte {
	ks := make([]replayKey, 0, len(keys))
	for k := range keys {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(a, b replayKey) int { return bytes.Compare(a[:], b[:]) })
	h := sha256.New()
	for _, k := range ks {
		h.Write(k[:])
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(keys[k])))
	}
	return h.Sum(nil)
}

// saveReplay keeps the live replay entries and marks a clean shutdown.
func (v *Vault) saveReplay(ctx context.Context) error {
	c := v.replay
	c.mu.Lock()
	c.expire(v.opts.Now())
	type entry struct {
		k replayKey
		w int64
	}
	var es []entry
	for i := range c.buckets {
		for k := range c.buckets[i] {
			es = append(es, entry{k, c.windows[i]})
		}
	}
	c.mu.Unlock()
	return v.db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM replay_seen`); err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO replay_seen (key, window) VALUES (?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, e := range es {
			if _, err := stmt.ExecContext(ctx, e.k[:], e.w); err != nil {
				return err
			}
		}
		c.mu.Lock()
		nb := c.notBefore.Unix()
		c.mu.Unlock()
		saved := make(map[replayKey]int64, len(es))
		for _, e := range es {
			saved[e.k] = e.w
		}
		return v.st.put(ctx, tx, tShutdown, int64(1), v.now().Unix(), nb, replayDigest(saved))
	})
}

// loadReplay reads back what the last clean shutdown kept, or, after an
// unclean stop, refuses proofs made before now. Either way the mark is
// removed: the next stop must set it again.
func (v *Vault) loadReplay(ctx context.Context) error {
	now := v.opts.Now()
	return v.db.tx(ctx, func(tx *sql.Tx) error {
		mark, err := v.st.row(ctx, tx, tShutdown, int64(1))
		switch {
		case errors.Is(err, sql.ErrNoRows), isTampered(err):
			// Unclean stop (or a mark nobody can vouch for). Proofs
			// carry whole seconds: those of the restart's own second
			// still pass.
			v.replay.notBefore = now.Truncate(time.Second)
		case err != nil:
			return err
		default:
			// An earlier unclean stop still counts while its proofs live.
			v.replay.notBefore = time.Unix(mark.i64("not_before"), 0)
			rows, err := tx.QueryContext(ctx, `SELECT key, window FROM replay_seen`)
			if err != nil {
				return err
			}
			saved := map[replayKey]int64{}
			for rows.Next() {
				var b []byte
				var w int64
				if err := rows.Scan(&b, &w); err != nil {
					rows.Close()
					return err
				}
				var k replayKey
				copy(k[:], b)
				saved[k] = w
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			if !mark.null("digest") && !bytes.Equal(replayDigest(saved), mark.bytes("digest")) {
				// Entries were removed or changed behind the vault's back:
				// treat it as an unclean stop.
				v.log.Error("the saved replay cache does not match its mark; proofs made before now are refused")
				v.replay.notBefore = now.Truncate(time.Second)
				break
			}
			oldest := window(now) - int64(nBuckets) + 1
			for k, w := range saved {
				if w >= oldest {
					v.replay.add(k, w)
				}
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM replay_seen`); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM shutdown`)
		return err
	})
}
