package vault

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pdvault/pdvault/policy"
)

// Courier makes the vault's outbound HTTP requests. The vault defines what
// it needs; the HTTP implementation lives in package api (the vault does
// not speak HTTP itself), and tests pass fakes.
type Courier interface {
	// Post sends body and returns the response status.
	Post(ctx context.Context, url, contentType string, body []byte) (status int, err error)
	// Get fetches url, reading at most max bytes; a longer body is an error.
	Get(ctx context.Context, url string, max int64) ([]byte, error)
}

// OutboundError is a Courier failure with a reason safe to show the owner.
type OutboundError struct {
	Reason string
	Err    error
}

func (e *OutboundError) Error() string { return e.Reason }
func (e *OutboundError) Unwrap() error { return e.Err }

func outboundProblem(err error) string {
	var oe *OutboundError
	if errors.As(err, &oe) {
		return oe.Reason
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	return "request failed"
}

// Notice states.
const (
	NoticePending   = "pending"
	NoticeDelivered = "delivered"
	NoticeFailed    = "failed"
)

// queueNotice signs a notice and stores it for delivery, inside tx.
func (v *Vault) queueNotice(ctx context.Context, tx *sql.Tx, relID, clientID, url string, c policy.NoticeClaims) (Notice, error) {
	now := v.now()
	c.Issuer, c.Audience, c.Subject, c.ID, c.IssuedAt = v.Issuer(), clientID, v.pairwiseSubject(relID), newID(), now.Unix()
	if th, err := v.RecentTreeHead(ctx); err == nil {
		c.AuditTreeHead = th.Note
	}
	signed, err := v.signNotice(c)
	if err != nil {
		return Notice{}, policy.Internal("sign notice", err)
	}
	n := Notice{ID: c.ID, GrantID: c.GrantID, Event: c.Event, URL: url, Status: NoticePending, Created: now}
	err = v.st.insert(ctx, tx, tNotices, n.ID, `INSERT INTO notices (id, relationship_id, grant_id, event, url, signed, status, next_attempt, created)
		VALUES (?, ?, nullif(?, ''), ?, ?, ?, ?, ?, ?)`, n.ID, relID, c.GrantID, c.Event, url, signed, NoticePending, now.Unix(), now.Unix())
	if err != nil {
		return Notice{}, err
	}
	v.wakeNotices()
	return n, nil
}

// wakeNotices nudges the delivery loop without blocking.
func (v *Vault) wakeNotices() {
	select {
	case v.noticeWake <- struct{}{}:
	default:
	}
}

// backoff is the wait before attempt n+1 after n failed attempts.
func (v *Vault) backoff(attempts int) time.Duration {
	d := v.opts.NoticeBaseDelay << min(attempts-1, 16)
	return min(d, 6*time.Hour)
}

// DeliverNotices makes one delivery attempt for every notice that is due
// and returns how many were delivered. Each attempt has its own timeout,
// so a callback that never answers holds up only this loop, never a
// request.
func (v *Vault) DeliverNotices(ctx context.Context) (int, error) {
	if v.opts.Courier == nil {
		return 0, nil
	}
	type due struct {
		id, url, signed, event, grant, client string
		attempts                              int
	}
	nrs, err := v.st.rows(ctx, v.db.r, tNotices, `status = ? AND next_attempt <= ? ORDER BY next_attempt LIMIT 50`, NoticePending, v.opts.Now().Unix())
	if err != nil {
		return 0, storageError("due notices", err)
	}
	var list []due
	for _, n := range nrs {
		d := due{id: n.str("id"), url: n.str("url"), signed: n.str("signed"), event: n.str("event"), grant: n.str("grant_id"), attempts: int(n.i64("attempts"))}
		// The audit names the relationship by its first key.
		keys, _, err := v.relationshipKeys(ctx, v.db.r, n.str("relationship_id"))
		if err != nil {
			return 0, storageError("due notices", err)
		}
		for _, k := range keys {
			if !k.Rotated {
				d.client = k.ClientID
			}
		}
		list = append(list, d)
	}
	delivered := 0
	for _, d := range list {
		if ctx.Err() != nil {
			return delivered, nil
		}
		problem := ""
		if err := policy.CheckOutboundURL(d.url, v.opts.AllowLoopbackHTTP); err != nil {
			problem = "the callback URL points at an address that is not allowed"
		} else {
			actx, cancel := context.WithTimeout(ctx, v.opts.OutboundTimeout)
			status, err := v.opts.Courier.Post(actx, d.url, "application/jwt", []byte(d.signed))
			cancel()
			switch {
			case err != nil:
				problem = outboundProblem(err)
			case status < 200 || status > 299:
				problem = fmt.Sprintf("the callback answered HTTP %d", status)
			}
		}
		attempts := d.attempts + 1
		now := v.now()
		// The outcome is recorded even if ctx ends now: the attempt happened.
		wctx := context.WithoutCancel(ctx)
		err := v.db.tx(wctx, func(tx *sql.Tx) error {
			switch {
			case problem == "":
				if err := v.st.update(wctx, tx, tNotices, d.id, `status = ?, attempts = ?, delivered = ?, last_error = NULL`,
					NoticeDelivered, attempts, now.Unix()); err != nil {
					return err
				}
				return v.appendAudit(wctx, tx, AuditEntry{Event: EvNoticeDelivered, Actor: "vault", Outcome: OutcomeAllowed, ClientID: d.client, GrantID: d.grant, Reason: d.event})
			case attempts >= v.opts.NoticeMaxAttempts:
				if err := v.st.update(wctx, tx, tNotices, d.id, `status = ?, attempts = ?, last_error = ?`,
					NoticeFailed, attempts, problem); err != nil {
					return err
				}
				return v.appendAudit(wctx, tx, AuditEntry{Event: EvNoticeFailed, Actor: "vault", Outcome: OutcomeDenied, ClientID: d.client, GrantID: d.grant,
					Reason: fmt.Sprintf("%s: gave up after %d attempts: %s", d.event, attempts, problem)})
			default:
				return v.st.update(wctx, tx, tNotices, d.id, `attempts = ?, last_error = ?, next_attempt = ?`,
					attempts, problem, now.Add(v.backoff(attempts)).Unix())
			}
		})
		if err != nil {
			return delivered, err
		}
		if problem == "" {
			delivered++
		} else if attempts >= v.opts.NoticeMaxAttempts {
			v.Notify(ctx, Notification{Event: EventNoticeFailed, Title: "pdvault: a notice did not reach an organization",
				Body: fmt.Sprintf("The %s notice was not delivered after %d attempts (%s). The organization may not know.", d.event, attempts, problem),
				Link: v.Issuer() + "/ui/relationships"})
		} else {
			v.log.Warn("notice not delivered", "notice", d.id, "attempt", attempts, "problem", problem)
		}
	}
	return delivered, nil
}

// RunNotices delivers notices until ctx ends: at every tick, and at once
// when a new notice is queued.
func (v *Vault) RunNotices(ctx context.Context, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		if _, err := v.DeliverNotices(ctx); err != nil && ctx.Err() == nil {
			v.log.Error("notice delivery", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-v.noticeWake:
		}
	}
}
