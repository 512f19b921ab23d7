package vault

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault/internal/crypt"
)

// Telling the owner (docs/operations.md, "Notifications").
//
// The owner configures channels — ntfy, email over SMTP, signed webhooks,
// Web Push — each stored sealed (its URL, token, password or push keys are
// secrets) under a key derived for this purpose. An event (a request or
// an offer arrives, a request is about to expire undecided, a notice to an
// organization fails, the audit log does not verify, logins fail again and
// again) becomes one outbox row per channel, sealed too, delivered by
// RunNotifications with retries and backoff; failures stay visible to the
// owner. A notification says who asks for what and links to the decision
// page; it never carries a record value. The network side (SMTP, HTTP,
// Web Push encryption) is the Notifier's, in package notify.

// Channel kinds.
const (
	ChannelNtfy    = "ntfy"
	ChannelWebhook = "webhook"
	ChannelEmail   = "email"
	ChannelWebPush = "webpush"
)

// ChannelConfig is a channel as the owner configures it. Everything in it
// is kept sealed.
type ChannelConfig struct {
	Kind string `json:"kind"`
	Name string `json:"name,omitempty"`
	// URL: the ntfy topic URL or the webhook endpoint.
	URL string `json:"url,omitempty"`
	// Token: an ntfy access token (sent as a bearer token).
	Token string `json:"token,omitempty"`
	// Secret: the webhook signing secret (Standard Webhooks "whsec_"
	// base64); generated when empty.
	Secret string            `json:"secret,omitempty"`
	SMTP   *SMTPConfig       `json:"smtp,omitempty"`
	Push   *PushSubscription `json:"push,omitempty"`
}

// SMTPConfig is an email channel.
type SMTPConfig struct {
	Host     string `json:"host"`
	Port     int    `json:"port"`
	TLS      string `json:"tls"` // starttls (default), implicit, none (loopback only)
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	From     string `json:"from"`
	To       string `json:"to"`
}

// PushSubscription is what a browser's PushSubscription.toJSON() gives
// (W3C Push API): the push service endpoint and the keys (RFC 8291).
type PushSubscription struct {
	Endpoint string `json:"endpoint"`
	Keys     struct {
		P256dh string `json:"p256dh"`
		Auth   string `json:"auth"`
	} `json:"keys"`
}

// Channel is a configured channel as the owner sees it: no secrets.
type Channel struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Name      string    `json:"name,omitempty"`
	Target    string    `json:"target"` // the host of a URL, or the email address
	Created   time.Time `json:"created"`
	Delivered int64     `json:"delivered"`
	Pending   int64     `json:"pending"`
	Failed    int64     `json:"failed"`
	LastError string    `json:"last_error,omitempty"`
	// Secret is the webhook signing secret, shown once when the channel
	// is added.
	Secret string `json:"secret,omitempty"`
}

// Notification is one message to the owner.
type Notification struct {
	ID    string    `json:"id"`
	Event string    `json:"event"`
	Title string    `json:"title"`
	Body  string    `json:"body"`
	Link  string    `json:"link,omitempty"` // the page where the owner decides
	Time  time.Time `json:"time"`
}

// Notification events.
const (
	EventRequest        = "request.received"
	EventOffer          = "offer.received"
	EventRequestExpires = "request.expiring"
	EventNoticeFailed   = "notice.failed"
	EventAuditFailed    = "audit.failed"
	EventLoginFailures  = "login.failed"
	EventReceiptOverdue = "receipt.overdue"
	EventTampered       = "tampered"
	EventTest           = "test"
)

// Notifier delivers a notification on a channel (package notify).
type Notifier interface {
	Send(ctx context.Context, ch ChannelConfig, n Notification, vapid VAPIDKeys) error
}

// VAPIDKeys identify the vault to Web Push services (RFC 8292): P-256,
// base64url, the public key uncompressed. Subject is a mailto: or https:
// URL the push service may contact.
type VAPIDKeys struct {
	Public, Private, Subject string
}

// Notification errors.
var (
	ErrChannelNotFound = policy.E(policy.KindNotFound, "not_found", "no such notification channel")
	errTooManyChannels = policy.E(policy.KindInvalid, "too_many_channels", "at most 16 notification channels")
)

const maxChannels = 16

// notifySpacing is the least time between two notifications of the same
// event kind: a stranger sending requests cannot turn them into a stream
// of messages; the next one says how many were folded into it.
var notifySpacing = 10 * time.Minute

func channelAAD(vaultID, id string) []byte {
	return crypt.AAD(crypt.NotifyAAD, []byte(vaultID), []byte(id))
}

func (v *Vault) notifyKey() ([]byte, error) { return v.wrapKey(crypt.NotifyKey) }

// validChannel checks a configuration and fills what has defaults.
func validChannel(c *ChannelConfig, allowLoopback bool) error {
	bad := func(msg string) error { return policy.E(policy.KindInvalid, "invalid_channel", msg) }
	if len(c.Name) > 100 {
		return bad("name: at most 100 characters")
	}
	switch c.Kind {
	case ChannelNtfy, ChannelWebhook:
		if err := policy.CheckOutboundURL(c.URL, allowLoopback); err != nil {
			return bad("url: " + policy.MessageOf(err))
		}
		if c.Kind == ChannelWebhook {
			if c.Secret == "" {
				c.Secret = "whsec_" + base64.StdEncoding.EncodeToString(crypt.Random(32))
			}
			raw, ok := strings.CutPrefix(c.Secret, "whsec_")
			if b, err := base64.StdEncoding.DecodeString(raw); !ok || err != nil || len(b) < 24 || len(b) > 64 {
				return bad("secret: whsec_ and 24 to 64 bytes in base64 (Standard Webhooks)")
			}
		}
	case ChannelEmail:
		s := c.SMTP
		if s == nil || s.Host == "" {
			return bad("smtp: host is required")
		}
		if s.Port == 0 {
			s.Port = map[string]int{"implicit": 465}[s.TLS]
			if s.Port == 0 {
				s.Port = 587
			}
		}
		if s.Port < 1 || s.Port > 65535 {
			return bad("smtp: port 1-65535")
		}
		switch s.TLS {
		case "":
			s.TLS = "starttls"
		case "starttls", "implicit":
		case "none":
			if !allowLoopback {
				return bad("smtp: tls none is for a local relay in testing only (--allow-loopback-http)")
			}
		default:
			return bad("smtp: tls is starttls, implicit or none")
		}
		for name, a := range map[string]string{"from": s.From, "to": s.To} {
			if _, err := mail.ParseAddress(a); err != nil || strings.ContainsAny(a, "\r\n") {
				return bad("smtp: " + name + " must be an email address")
			}
		}
		if strings.ContainsAny(s.Host+s.Username+s.Password, "\r\n") {
			return bad("smtp: no line breaks")
		}
	case ChannelWebPush:
		p := c.Push
		if p == nil {
			return bad("push: the browser's subscription (endpoint and keys) is required")
		}
		if u, err := url.Parse(p.Endpoint); err != nil || (u.Scheme != "https" && !(allowLoopback && u.Scheme == "http")) {
			return bad("push: endpoint must be an https URL")
		}
		k, err1 := base64.RawURLEncoding.DecodeString(strings.TrimRight(p.Keys.P256dh, "="))
		a, err2 := base64.RawURLEncoding.DecodeString(strings.TrimRight(p.Keys.Auth, "="))
		if err1 != nil || err2 != nil || len(k) != 65 || k[0] != 4 || len(a) != 16 {
			return bad("push: keys.p256dh is a P-256 point (65 bytes) and keys.auth 16 bytes, base64url")
		}
	default:
		return bad("kind is ntfy, webhook, email or webpush")
	}
	return nil
}

func (c ChannelConfig) target() string {
	switch {
	case c.SMTP != nil:
		return c.SMTP.To
	case c.Push != nil:
		if u, err := url.Parse(c.Push.Endpoint); err == nil {
			return u.Host
		}
	case c.URL != "":
		if u, err := url.Parse(c.URL); err == nil {
			return u.Host
		}
	}
	return ""
}

// AddChannel stores a new channel.
func (v *Vault) AddChannel(ctx context.Context, c ChannelConfig) (Channel, error) {
	if err := validChannel(&c, v.opts.AllowLoopbackHTTP); err != nil {
		return Channel{}, err
	}
	key, err := v.notifyKey()
	if err != nil {
		return Channel{}, err
	}
	id := newID()
	b, _ := json.Marshal(c)
	now := v.now()
	err = v.db.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM notify_channels WHERE id != 'vapid'`).Scan(&n); err != nil {
			return err
		}
		if n >= maxChannels {
			return errTooManyChannels
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO notify_channels (id, sealed, created) VALUES (?, ?, ?)`, id, crypt.Seal(key, b, channelAAD(v.id, id)), now.Unix()); err != nil {
			return err
		}
		return v.appendAudit(ctx, tx, AuditEntry{Event: EvSettingsChanged, Actor: "owner", Reason: "notification channel added: " + c.Kind})
	})
	if err != nil {
		return Channel{}, err
	}
	ch := Channel{ID: id, Kind: c.Kind, Name: c.Name, Target: c.target(), Created: now}
	if c.Kind == ChannelWebhook {
		ch.Secret = c.Secret
	}
	return ch, nil
}

// RemoveChannel deletes a channel and what it had yet to deliver.
func (v *Vault) RemoveChannel(ctx context.Context, id string) error {
	return v.db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM notify_channels WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrChannelNotFound
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM notify_outbox WHERE channel_id = ?`, id); err != nil {
			return err
		}
		return v.appendAudit(ctx, tx, AuditEntry{Event: EvSettingsChanged, Actor: "owner", Reason: "notification channel removed"})
	})
}

type storedChannel struct {
	id      string
	cfg     ChannelConfig
	created int64
}

func (v *Vault) loadChannels(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) ([]storedChannel, error) {
	key, err := v.notifyKey()
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT id, sealed, created FROM notify_channels WHERE id != 'vapid' ORDER BY created, id`)
	if err != nil {
		return nil, storageError("read channels", err)
	}
	defer rows.Close()
	var out []storedChannel
	for rows.Next() {
		var s storedChannel
		var sealed []byte
		if err := rows.Scan(&s.id, &sealed, &s.created); err != nil {
			return nil, storageError("read channels", err)
		}
		pt, err := crypt.Open(key, sealed, channelAAD(v.id, s.id))
		if err != nil {
			v.log.Error("notification channel failed its integrity check", "channel", s.id)
			return nil, ErrTampered
		}
		if err := json.Unmarshal(pt, &s.cfg); err != nil {
			return nil, ErrTampered
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Channels lists the channels with their delivery counts and last error.
func (v *Vault) Channels(ctx context.Context) ([]Channel, error) {
	list, err := v.loadChannels(ctx, v.db.r)
	if err != nil {
		return nil, err
	}
	out := []Channel{}
	for _, s := range list {
		ch := Channel{ID: s.id, Kind: s.cfg.Kind, Name: s.cfg.Name, Target: s.cfg.target(), Created: time.Unix(s.created, 0).UTC()}
		rows, err := v.db.r.QueryContext(ctx, `SELECT status, count(*) FROM notify_outbox WHERE channel_id = ? GROUP BY status`, s.id)
		if err != nil {
			return nil, storageError("read outbox", err)
		}
		for rows.Next() {
			var st string
			var n int64
			rows.Scan(&st, &n)
			switch st {
			case NoticeDelivered:
				ch.Delivered = n
			case NoticePending:
				ch.Pending = n
			case NoticeFailed:
				ch.Failed = n
			}
		}
		rows.Close()
		var le sql.NullString
		v.db.r.QueryRowContext(ctx, `SELECT last_error FROM notify_outbox WHERE channel_id = ? AND last_error IS NOT NULL ORDER BY updated DESC LIMIT 1`, s.id).Scan(&le)
		ch.LastError = le.String
		out = append(out, ch)
	}
	return out, nil
}

// notifier state kept in memory: the spacing of events of one kind.
type notifyState struct {
	mu     sync.Mutex
	last   map[string]time.Time
	folded map[string]int
	link   map[string]string // of the newest folded event
	warned map[string]bool   // requests warned about expiry
	wake   chan struct{}

	overdueAt    time.Time // when receipts were last looked at
	overdueSince time.Time // deadlines after this are not yet told
	tamperSeen   int64     // tampered rows already told
}

// Notify queues n for every channel, unless an event of the same kind
// went out less than notifySpacing ago (then it is folded into the next).
// Failures are logged: telling the owner never fails what caused it.
func (v *Vault) Notify(ctx context.Context, n Notification) {
	if err := v.notify(ctx, n, true); err != nil && !errors.Is(err, ErrLocked) {
		v.log.Error("notification not queued", "event", n.Event, "err", err)
	}
}

func (v *Vault) notify(ctx context.Context, n Notification, spaced bool) error {
	s := &v.notifyState
	now := v.opts.Now()
	// No channel, no write: a request costs nothing more then.
	var nch int
	if err := v.db.r.QueryRowContext(ctx, `SELECT count(*) FROM notify_channels WHERE id != 'vapid'`).Scan(&nch); err != nil || nch == 0 {
		return err
	}
	if spaced {
		s.mu.Lock()
		if s.last == nil {
			s.last, s.folded, s.link = map[string]time.Time{}, map[string]int{}, map[string]string{}
		}
		if t, ok := s.last[n.Event]; ok && now.Sub(t) < notifySpacing {
			s.folded[n.Event]++
			s.link[n.Event] = n.Link
			s.mu.Unlock()
			return nil
		}
		if k := s.folded[n.Event]; k > 0 {
			n.Body += fmt.Sprintf(" (and %d more like it since the last message)", k)
		}
		s.last[n.Event], s.folded[n.Event] = now, 0
		s.mu.Unlock()
	}
	if n.ID == "" {
		n.ID = "msg_" + newID()
	}
	n.Time = now.UTC().Truncate(time.Second)
	key, err := v.notifyKey()
	if err != nil {
		return err
	}
	ctx = context.WithoutCancel(ctx)
	err = v.db.tx(ctx, func(tx *sql.Tx) error {
		chs, err := v.loadChannels(ctx, tx)
		if err != nil {
			return err
		}
		for _, ch := range chs {
			if err := v.enqueue(ctx, tx, key, ch.id, n, now); err != nil {
				return err
			}
		}
		// Bounded: delivered and failed messages beyond the newest 1,000
		// go (a failure stays visible until then).
		_, err = tx.ExecContext(ctx, `DELETE FROM notify_outbox WHERE status != ? AND id NOT IN
			(SELECT id FROM notify_outbox WHERE status != ? ORDER BY updated DESC LIMIT 1000)`, NoticePending, NoticePending)
		return err
	})
	if err != nil {
		return err
	}
	v.wakeNotifications()
	return nil
}

// TestChannel queues a test message on one channel (no spacing).
func (v *Vault) TestChannel(ctx context.Context, id string) error {
	chs, err := v.loadChannels(ctx, v.db.r)
	if err != nil {
		return err
	}
	found := false
	for _, c := range chs {
		found = found || c.id == id
	}
	if !found {
		return ErrChannelNotFound
	}
	key, err := v.notifyKey()
	if err != nil {
		return err
	}
	now := v.opts.Now()
	n := Notification{ID: "msg_" + newID(), Event: EventTest, Title: "pdvault: test message", Body: "Notifications from your vault reach you here.",
		Link: v.Issuer() + "/ui/", Time: now.UTC().Truncate(time.Second)}
	if err := v.enqueue(ctx, v.db.w, key, id, n, now); err != nil {
		return storageError("queue test message", err)
	}
	v.wakeNotifications()
	return nil
}

// enqueue stores one sealed message for one channel.
func (v *Vault) enqueue(ctx context.Context, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, key []byte, channelID string, n Notification, now time.Time) error {
	b, _ := json.Marshal(n)
	id := newID()
	_, err := db.ExecContext(ctx, `INSERT INTO notify_outbox (id, channel_id, sealed, status, attempts, next_attempt, created, updated)
		VALUES (?, ?, ?, ?, 0, ?, ?, ?)`, id, channelID, crypt.Seal(key, b, channelAAD(v.id, "outbox/"+id)), NoticePending, now.Unix(), now.Unix(), now.Unix())
	return err
}

func (v *Vault) wakeNotifications() {
	select {
	case v.notifyState.wake <- struct{}{}:
	default:
	}
}

// VAPID returns the vault's Web Push identity, made on first use.
func (v *Vault) VAPID(ctx context.Context, generate func() (pub, priv string, err error)) (VAPIDKeys, error) {
	key, err := v.notifyKey()
	if err != nil {
		return VAPIDKeys{}, err
	}
	var sealed []byte
	err = v.db.r.QueryRowContext(ctx, `SELECT sealed FROM notify_channels WHERE id = 'vapid'`).Scan(&sealed)
	var k VAPIDKeys
	switch {
	case errors.Is(err, sql.ErrNoRows):
		pub, priv, err := generate()
		if err != nil {
			return VAPIDKeys{}, policy.Internal("vapid keys", err)
		}
		k = VAPIDKeys{Public: pub, Private: priv}
		b, _ := json.Marshal(k)
		if _, err := v.db.w.ExecContext(ctx, `INSERT OR IGNORE INTO notify_channels (id, sealed, created) VALUES ('vapid', ?, ?)`,
			crypt.Seal(key, b, channelAAD(v.id, "vapid")), v.now().Unix()); err != nil {
			return VAPIDKeys{}, storageError("store vapid keys", err)
		}
		return v.VAPID(ctx, generate) // whichever was stored first
	case err != nil:
		return VAPIDKeys{}, storageError("read vapid keys", err)
	}
	pt, err := crypt.Open(key, sealed, channelAAD(v.id, "vapid"))
	if err != nil || json.Unmarshal(pt, &k) != nil {
		return VAPIDKeys{}, ErrTampered
	}
	k.Subject = v.Issuer()
	return k, nil
}

// DeliverNotifications makes one attempt for every message that is due.
func (v *Vault) DeliverNotifications(ctx context.Context, vapidGen func() (string, string, error)) (int, error) {
	if v.opts.Notifier == nil {
		return 0, nil
	}
	key, err := v.notifyKey()
	if err != nil {
		return 0, err
	}
	chs, err := v.loadChannels(ctx, v.db.r)
	if err != nil {
		return 0, err
	}
	byID := map[string]ChannelConfig{}
	for _, c := range chs {
		byID[c.id] = c.cfg
	}
	type due struct {
		id, channel string
		sealed      []byte
		attempts    int
	}
	rows, err := v.db.r.QueryContext(ctx, `SELECT id, channel_id, sealed, attempts FROM notify_outbox WHERE status = ? AND next_attempt <= ? ORDER BY next_attempt LIMIT 50`,
		NoticePending, v.opts.Now().Unix())
	if err != nil {
		return 0, storageError("due notifications", err)
	}
	var list []due
	for rows.Next() {
		var d due
		if err := rows.Scan(&d.id, &d.channel, &d.sealed, &d.attempts); err != nil {
			rows.Close()
			return 0, storageError("due notifications", err)
		}
		list = append(list, d)
	}
	rows.Close()
	sent := 0
	for _, d := range list {
		if ctx.Err() != nil {
			break
		}
		var n Notification
		pt, err := crypt.Open(key, d.sealed, channelAAD(v.id, "outbox/"+d.id))
		problem := ""
		if err != nil || json.Unmarshal(pt, &n) != nil {
			problem = "the message failed its integrity check"
		} else if ch, ok := byID[d.channel]; !ok {
			problem = "the channel is gone"
		} else {
			var vk VAPIDKeys
			if ch.Kind == ChannelWebPush {
				vk, err = v.VAPID(ctx, vapidGen)
			}
			if err == nil {
				actx, cancel := context.WithTimeout(ctx, v.opts.OutboundTimeout)
				err = v.opts.Notifier.Send(actx, ch, n, vk)
				cancel()
			}
			if err != nil {
				problem = outboundProblem(err)
			}
		}
		attempts := d.attempts + 1
		now := v.now().Unix()
		wctx := context.WithoutCancel(ctx)
		switch {
		case problem == "":
			_, err = v.db.w.ExecContext(wctx, `UPDATE notify_outbox SET status = ?, attempts = ?, last_error = NULL, updated = ?, sealed = x'' WHERE id = ?`, NoticeDelivered, attempts, now, d.id)
			sent++
		case attempts >= v.opts.NoticeMaxAttempts:
			_, err = v.db.w.ExecContext(wctx, `UPDATE notify_outbox SET status = ?, attempts = ?, last_error = ?, updated = ?, sealed = x'' WHERE id = ?`, NoticeFailed, attempts, problem, now, d.id)
		default:
			_, err = v.db.w.ExecContext(wctx, `UPDATE notify_outbox SET attempts = ?, last_error = ?, next_attempt = ?, updated = ? WHERE id = ?`,
				attempts, problem, now+int64(v.backoff(attempts)/time.Second), now, d.id)
		}
		if v.opts.OnDelivery != nil {
			if ch, ok := byID[d.channel]; ok {
				v.opts.OnDelivery(ch.Kind, problem == "")
			}
		}
		if problem != "" {
			v.log.Warn("notification not delivered", "channel", d.channel, "attempt", attempts, "problem", problem)
		}
		if err != nil {
			return sent, storageError("record delivery", err)
		}
	}
	return sent, nil
}

// RunNotifications delivers until ctx ends, at every tick and at once
// when a message is queued; it also warns of requests about to expire.
func (v *Vault) RunNotifications(ctx context.Context, tick time.Duration, vapidGen func() (string, string, error)) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		v.warnExpiring(ctx)
		v.warnOverdue(ctx)
		v.warnTampered(ctx)
		v.flushFolded(ctx)
		if _, err := v.DeliverNotifications(ctx, vapidGen); err != nil && ctx.Err() == nil && !errors.Is(err, ErrLocked) {
			v.log.Error("notification delivery", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-v.notifyState.wake:
		}
	}
}

// flushFolded sends, once the spacing has passed, a message for the
// events folded since the last one of their kind, so that none waits for
// a later event to be told.
func (v *Vault) flushFolded(ctx context.Context) {
	s := &v.notifyState
	now := v.opts.Now()
	type fold struct {
		event, link string
		n           int
	}
	var due []fold
	s.mu.Lock()
	for ev, k := range s.folded {
		if k > 0 && now.Sub(s.last[ev]) >= notifySpacing {
			due = append(due, fold{ev, s.link[ev], k})
			s.folded[ev], s.last[ev] = 0, now
		}
	}
	s.mu.Unlock()
	for _, f := range due {
		if err := v.notify(ctx, Notification{Event: f.event, Title: "pdvault: more of the same",
			Body: fmt.Sprintf("%d more %s event(s) since the last message; the newest is linked.", f.n, f.event), Link: f.link}, false); err != nil {
			v.log.Error("notification not queued", "event", f.event, "err", err)
		}
	}
}

// expiryWarning is how long before a pending request expires the owner
// is reminded.
const expiryWarning = time.Hour

// warnExpiring tells the owner once about each pending request that
// expires within expiryWarning.
func (v *Vault) warnExpiring(ctx context.Context) {
	now := v.opts.Now().Unix()
	rows, err := v.db.r.QueryContext(ctx, `SELECT id, client_name FROM requests WHERE status = ? AND expires > ? AND expires <= ? LIMIT 100`,
		StatusPending, now, now+int64(expiryWarning/time.Second))
	if err != nil {
		return
	}
	type req struct{ id, name string }
	var list []req
	for rows.Next() {
		var r req
		rows.Scan(&r.id, &r.name)
		list = append(list, r)
	}
	rows.Close()
	s := &v.notifyState
	// Only requests still in the window are remembered: the set stays as
	// small as the query's answer.
	s.mu.Lock()
	before := s.warned
	s.warned = make(map[string]bool, len(list))
	for _, r := range list {
		s.warned[r.id] = true
	}
	s.mu.Unlock()
	for _, r := range list {
		if !before[r.id] {
			v.Notify(ctx, Notification{Event: EventRequestExpires, Title: "pdvault: a request expires soon",
				Body: fmt.Sprintf("%s's request expires within the hour unless you decide.", quoteName(r.name)), Link: v.Issuer() + "/ui/requests/" + r.id})
		}
	}
}

// overdueEvery is how often ended grants are looked at for receipts that
// became overdue; overdueLookback, how far back the first look after
// opening reaches (deadlines that passed while the vault was closed).
const (
	overdueEvery    = 10 * time.Minute
	overdueLookback = 24 * time.Hour
)

// warnOverdue tells the owner of each ended grant whose deletion deadline
// (end + retention) passed since the last look without a complete
// deletion receipt.
func (v *Vault) warnOverdue(ctx context.Context) {
	s := &v.notifyState
	now := v.opts.Now()
	s.mu.Lock()
	if !s.overdueAt.IsZero() && now.Sub(s.overdueAt) < overdueEvery {
		s.mu.Unlock()
		return
	}
	since := s.overdueSince
	if since.IsZero() {
		since = now.Add(-overdueLookback)
	}
	s.overdueAt = now
	s.mu.Unlock()
	rows, err := v.db.r.QueryContext(ctx, `SELECT g.id, g.client_id, g.client_name, COALESCE(g.revoked, g.expires) + g.retention AS deadline FROM grants g
		WHERE COALESCE(g.revoked, g.expires) + g.retention > ? AND COALESCE(g.revoked, g.expires) + g.retention <= ?
		AND NOT EXISTS (SELECT 1 FROM receipts r WHERE r.grant_id = g.id AND r.complete = 1) LIMIT 100`, since.Unix(), now.Unix())
	if err != nil {
		return
	}
	type due struct {
		grant, client, name string
		deadline            int64
	}
	var list []due
	for rows.Next() {
		var d due
		if rows.Scan(&d.grant, &d.client, &d.name, &d.deadline) == nil {
			list = append(list, d)
		}
	}
	if rows.Close() != nil {
		return
	}
	s.mu.Lock()
	s.overdueSince = now
	s.mu.Unlock()
	for _, d := range list {
		link := v.Issuer() + "/ui/relationships"
		if rel, err := v.relOf(ctx, d.client); err == nil {
			link += "/" + rel
		}
		v.Notify(ctx, Notification{Event: EventReceiptOverdue, Title: "pdvault: a deletion receipt is overdue",
			Body: fmt.Sprintf("%s had to delete your data by %s (grant %s) and has sent no signed deletion receipt.",
				quoteName(d.name), time.Unix(d.deadline, 0).UTC().Format("2006-01-02 15:04 MST"), d.grant), Link: link})
	}
}

// warnTampered tells the owner when stored rows failed their integrity
// check since the last look (the request that met them was refused).
func (v *Vault) warnTampered(ctx context.Context) {
	n := v.st.count.Load()
	s := &v.notifyState
	s.mu.Lock()
	seen := s.tamperSeen
	s.tamperSeen = n
	s.mu.Unlock()
	if n <= seen {
		return
	}
	v.Notify(ctx, Notification{Event: EventTampered, Title: "pdvault: stored data failed its integrity check",
		Body: fmt.Sprintf("%d stored row(s) failed their integrity check and were refused: the vault's file may have been altered. Verify the audit log and restore from a backup if needed.", n-seen),
		Link: v.Issuer() + "/ui/audit"})
}

// quoteName bounds an organization-chosen name in a message.
func quoteName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len([]rune(s)) > 80 {
		s = string([]rune(s)[:80]) + "…"
	}
	return "“" + s + "”"
}

// channelIdentity is what makes two channel settings the same channel:
// kind and destination (not name, tokens or secrets).
func channelIdentity(c ChannelConfig) string {
	id := c.Kind + "|" + c.URL
	if c.SMTP != nil {
		id += "|" + c.SMTP.Host + "|" + c.SMTP.To
	}
	if c.Push != nil {
		id += "|" + c.Push.Endpoint
	}
	return id
}

// EnsureChannels adds each of cfgs that is not yet a channel (same kind
// and destination), for channels named in serve's config file. It never
// removes or changes one: the config file adds, the owner removes.
func (v *Vault) EnsureChannels(ctx context.Context, cfgs []ChannelConfig) (added int, err error) {
	have, err := v.loadChannels(ctx, v.db.r)
	if err != nil {
		return 0, err
	}
	seen := map[string]bool{}
	for _, s := range have {
		seen[channelIdentity(s.cfg)] = true
	}
	for _, c := range cfgs {
		if seen[channelIdentity(c)] {
			continue
		}
		if _, err := v.AddChannel(ctx, c); err != nil {
			return added, err
		}
		seen[channelIdentity(c)] = true
		added++
	}
	return added, nil
}
