package replica

import (
	"context"
	"time"

	"github.com/benbjohnson/litestream"
)

// Uploads to the replica, one at a time. Litestream's Replica.Sync is not
// safe against a second caller: two syncs that start from the same replica
// position upload WAL segments under one key with different ends, and the
// replica keeps the shorter while the position moves to the longer — a gap
// that a restore turns into "database disk image is malformed" (seen once
// confirmations, which flush, raced Litestream's own monitor). So the
// replica's monitor is off (MonitorEnabled=false) and every sync, periodic
// or asked for, goes through ship; shipping does what that monitor and its
// retainer did.

// ship uploads what the shadow WAL holds beyond the replica's position.
func (c *claim) ship(ctx context.Context, r *litestream.Replica) error {
	c.shipMu.Lock()
	defer c.shipMu.Unlock()
	return r.Sync(ctx)
}

// startShipping runs the periodic uploads of a replica: as Litestream's
// monitor, the first at once, then at most every SyncInterval and only
// after the database changed; and its retention (a fresh snapshot, old
// WAL dropped) every RetentionCheckInterval.
func (c *claim) startShipping(ldb *litestream.DB, r *litestream.Replica) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		tick := time.NewTicker(r.SyncInterval)
		defer tick.Stop()
		changed := make(chan struct{})
		close(changed)
		var notify <-chan struct{} = changed
		for first := true; ; first = false {
			if !first {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-notify:
			}
			notify = ldb.Notify()
			if err := c.ship(ctx, r); err != nil && ctx.Err() == nil {
				c.log.Warn("replication: upload failed; retrying", "err", err)
			}
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		if r.Retention <= 0 {
			return
		}
		tick := time.NewTicker(min(r.RetentionCheckInterval, r.Retention))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			c.shipMu.Lock()
			err := r.EnforceRetention(ctx)
			c.shipMu.Unlock()
			if err != nil && ctx.Err() == nil {
				c.log.Warn("replication: retention failed", "err", err)
			}
		}
	}()
	return func() {
		cancel()
		<-done
		<-done
	}
}
