package replica

import (
	"context"
	"errors"
	"time"

	"github.com/pdvault/pdvault/vault"
)

// Synchronous replication (Config.Confirm). Litestream ships a vault's WAL
// on its own schedule; here a request that committed something waits, before
// its answer, for a flush (shadow WAL, then an upload) that began after its
// commit. Flushes are grouped as commits are (vault/commit.go): whoever asks
// while one flush runs waits for the next, which serves them all, so the
// cost is one upload per round, not per request.

// errNotReplicating: the claim has no running replication to confirm with
// (released, lost, or not started).
var errNotReplicating = errors.New("replication is not running")

// round is one flush and those waiting for it.
type round struct {
	done chan struct{}
	err  error
}

// Confirm is vault.Confirm for this claim, or nil when replication is
// asynchronous.
func (c *claim) Confirm() vault.Confirm {
	if !c.s.cfg.Confirm {
		return nil
	}
	return c.confirm
}

func (c *claim) confirm(ctx context.Context) error {
	c.cmu.Lock()
	r := c.next
	if r == nil {
		r = &round{done: make(chan struct{})}
		c.next = r
	}
	if !c.flushing {
		c.flushing = true
		go c.flushRounds()
	}
	c.cmu.Unlock()
	t := time.NewTimer(c.s.cfg.ConfirmTimeout)
	defer t.Stop()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return errors.New("the replica did not confirm in time")
	}
}

// flushRounds runs rounds while anyone waits. A round is taken only after
// its waiters joined it, so its flush starts after their commits.
func (c *claim) flushRounds() {
	for {
		c.cmu.Lock()
		r := c.next
		c.next = nil
		if r == nil {
			c.flushing = false
			c.cmu.Unlock()
			return
		}
		c.cmu.Unlock()
		r.err = c.flushHeld()
		close(r.done)
	}
}

// flushHeld is Flush under a live lease and running replication: a claim
// that cannot ship confirms nothing. Commits made while the vault opens,
// before replication starts, are confirmed by Replicate's own flush, which
// comes before the vault serves anyone.
func (c *claim) flushHeld() error {
	if err := c.held(); err != nil {
		return err
	}
	c.mu.Lock()
	started, running := c.started, c.ldb != nil
	c.mu.Unlock()
	if !started {
		return nil
	}
	if !running {
		return errNotReplicating
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.ConfirmTimeout)
	defer cancel()
	return c.Flush(ctx)
}
