package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/smtp"
	"strconv"
	"strings"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"
	"github.com/gorilla/mux"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/pdvault/pdvault/vault"
)

// Notifier delivers the vault's notifications to the owner (vault.Notifier):
// ntfy (an HTTP POST to a topic URL), Standard Webhooks (HMAC-SHA256 over
// id, timestamp and body, with the standard-webhooks reference library),
// Web Push (RFC 8030 delivery, RFC 8291 encryption, RFC 8292 VAPID, with
// webpush-go) and email over SMTP (net/smtp: STARTTLS or implicit TLS,
// PLAIN auth only over TLS). HTTP goes through the Courier's client, so
// only public addresses are dialled unless loopback is allowed.
type Notifier struct {
	courier *Courier
	roots   *x509.CertPool // for SMTP servers; nil: the system's
	timeout time.Duration
}

// NewNotifier returns a Notifier. roots, if set, are the CAs trusted for
// SMTP servers (a private relay); nil trusts the system's.
func NewNotifier(c *Courier, roots *x509.CertPool, timeout time.Duration) *Notifier {
	return &Notifier{courier: c, roots: roots, timeout: timeout}
}

// GenerateVAPID makes a VAPID key pair (vault.VAPID stores it).
func GenerateVAPID() (pub, priv string, err error) {
	priv, pub, err = webpush.GenerateVAPIDKeys()
	return pub, priv, err
}

// Send delivers one notification on one channel.
func (nt *Notifier) Send(ctx context.Context, ch vault.ChannelConfig, n vault.Notification, vk vault.VAPIDKeys) error {
	switch ch.Kind {
	case vault.ChannelNtfy:
		h := http.Header{"Title": {n.Title}, "Tags": {"pdvault"}}
		if n.Link != "" {
			h.Set("Click", n.Link)
			h.Set("Actions", "view, Decide, "+n.Link)
		}
		if ch.Token != "" {
			h.Set("Authorization", "Bearer "+ch.Token)
		}
		return nt.post(ctx, ch.URL, "text/plain; charset=utf-8", h, []byte(n.Body))
	case vault.ChannelWebhook:
		body := webhookBody(n)
		wh, err := standardwebhooks.NewWebhook(ch.Secret)
		if err != nil {
			return &vault.OutboundError{Reason: "the webhook secret is not usable", Err: err}
		}
		ts := time.Now()
		sig, err := wh.Sign(n.ID, ts, body)
		if err != nil {
			return &vault.OutboundError{Reason: "signing failed", Err: err}
		}
		h := http.Header{"Webhook-Id": {n.ID}, "Webhook-Timestamp": {strconv.FormatInt(ts.Unix(), 10)}, "Webhook-Signature": {sig}}
		return nt.post(ctx, ch.URL, "application/json", h, body)
	case vault.ChannelWebPush:
		return nt.push(ctx, ch.Push, n, vk)
	case vault.ChannelEmail:
		return nt.mail(ctx, ch.SMTP, n)
	}
	return &vault.OutboundError{Reason: "unknown channel kind"}
}

// webhookBody is the Standard Webhooks payload: type, timestamp, data.
func webhookBody(n vault.Notification) []byte {
	b, _ := json.Marshal(map[string]any{
		"type": "pdvault." + n.Event, "timestamp": n.Time.Format(time.RFC3339),
		"data": map[string]string{"title": n.Title, "body": n.Body, "link": n.Link},
	})
	return b
}

func (nt *Notifier) post(ctx context.Context, url, contentType string, h http.Header, body []byte) error {
	if err := nt.courier.check(url); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return &vault.OutboundError{Reason: "bad URL", Err: err}
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "pdvault")
	res, err := nt.courier.client.Do(req)
	if err != nil {
		return classify(err)
	}
	defer res.Body.Close()
	io.Copy(io.Discard, io.LimitReader(res.Body, 4096))
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return &vault.OutboundError{Reason: fmt.Sprintf("the server answered HTTP %d", res.StatusCode)}
	}
	return nil
}

// checkedClient is the Courier's client with the URL check first, for
// webpush-go.
type checkedClient struct{ c *Courier }

func (cc checkedClient) Do(req *http.Request) (*http.Response, error) {
	if err := cc.c.check(req.URL.String()); err != nil {
		return nil, err
	}
	res, err := cc.c.client.Do(req)
	if err != nil {
		return nil, classify(err)
	}
	return res, nil
}

func (nt *Notifier) push(ctx context.Context, sub *vault.PushSubscription, n vault.Notification, vk vault.VAPIDKeys) error {
	if sub == nil {
		return &vault.OutboundError{Reason: "no push subscription"}
	}
	payload, _ := json.Marshal(map[string]string{"title": n.Title, "body": n.Body, "url": n.Link, "event": n.Event})
	s := &webpush.Subscription{Endpoint: sub.Endpoint, Keys: webpush.Keys{P256dh: sub.Keys.P256dh, Auth: sub.Keys.Auth}}
	res, err := webpush.SendNotificationWithContext(ctx, payload, s, &webpush.Options{
		HTTPClient: checkedClient{nt.courier}, Subscriber: vk.Subject, VAPIDPublicKey: vk.Public, VAPIDPrivateKey: vk.Private,
		TTL: 24 * 3600, Urgency: webpush.UrgencyHigh,
	})
	if err != nil {
		if oe, ok := err.(*vault.OutboundError); ok {
			return oe
		}
		return &vault.OutboundError{Reason: "push failed", Err: err}
	}
	defer res.Body.Close()
	io.Copy(io.Discard, io.LimitReader(res.Body, 4096))
	switch {
	case res.StatusCode == http.StatusNotFound || res.StatusCode == http.StatusGone:
		return &vault.OutboundError{Reason: "the browser's subscription has expired: subscribe again"}
	case res.StatusCode < 200 || res.StatusCode > 299:
		return &vault.OutboundError{Reason: fmt.Sprintf("the push service answered HTTP %d", res.StatusCode)}
	}
	return nil
}

// mail sends a plain-text message. Headers are built from validated
// addresses and a Q-encoded subject; the body is the message's text and
// link, never a record value.
func (nt *Notifier) mail(ctx context.Context, s *vault.SMTPConfig, n vault.Notification) error {
	if s == nil {
		return &vault.OutboundError{Reason: "no SMTP settings"}
	}
	addr := net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	tlsConf := &tls.Config{ServerName: s.Host, RootCAs: nt.roots, MinVersion: tls.VersionTLS12}
	d := &net.Dialer{Timeout: nt.timeout}
	var conn net.Conn
	var err error
	if s.TLS == "implicit" {
		conn, err = (&tls.Dialer{NetDialer: d, Config: tlsConf}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return classify(err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	c, err := smtp.NewClient(conn, s.Host)
	if err != nil {
		return &vault.OutboundError{Reason: "the SMTP server did not greet", Err: err}
	}
	defer c.Close()
	if err := c.Hello("pdvault"); err != nil {
		return &vault.OutboundError{Reason: "the SMTP server refused HELO", Err: err}
	}
	if s.TLS == "starttls" {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return &vault.OutboundError{Reason: "the SMTP server does not offer STARTTLS"}
		}
		if err := c.StartTLS(tlsConf); err != nil {
			return &vault.OutboundError{Reason: "STARTTLS failed (certificate?)", Err: err}
		}
	}
	if s.Username != "" {
		// net/smtp's PLAIN refuses to send credentials without TLS, except
		// to localhost.
		if err := c.Auth(smtp.PlainAuth("", s.Username, s.Password, s.Host)); err != nil {
			return &vault.OutboundError{Reason: "SMTP authentication failed", Err: err}
		}
	}
	if err := c.Mail(s.From); err != nil {
		return &vault.OutboundError{Reason: "the SMTP server refused the sender", Err: err}
	}
	if err := c.Rcpt(s.To); err != nil {
		return &vault.OutboundError{Reason: "the SMTP server refused the recipient", Err: err}
	}
	w, err := c.Data()
	if err != nil {
		return &vault.OutboundError{Reason: "the SMTP server refused the message", Err: err}
	}
	var msg strings.Builder
	fmt.Fprintf(&msg, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@pdvault>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\nAuto-Submitted: auto-generated\r\n\r\n",
		s.From, s.To, mime.QEncoding.Encode("utf-8", n.Title), n.Time.Format(time.RFC1123Z), n.ID)
	body := n.Body
	if n.Link != "" {
		body += "\r\n\r\nDecide here: " + n.Link
	}
	msg.WriteString(strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\n", "\r\n") + "\r\n")
	if _, err := io.WriteString(w, msg.String()); err != nil {
		return &vault.OutboundError{Reason: "sending the message failed", Err: err}
	}
	if err := w.Close(); err != nil {
		return &vault.OutboundError{Reason: "the SMTP server refused the message", Err: err}
	}
	return c.Quit()
}

// The owner's channel settings (docs/api.md, "Notifications").

func (s *server) listChannels(w http.ResponseWriter, r *http.Request) {
	chs, err := s.svc.Channels(r.Context())
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"channels": chs})
}

func (s *server) addChannel(w http.ResponseWriter, r *http.Request) {
	var c vault.ChannelConfig
	if err := s.decodeJSON(w, r, &c); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	ch, err := s.svc.AddChannel(r.Context(), c)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusCreated, ch)
}

func (s *server) removeChannel(w http.ResponseWriter, r *http.Request) {
	if err := s.svc.RemoveChannel(r.Context(), mux.Vars(r)["id"]); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) testChannel(w http.ResponseWriter, r *http.Request) {
	if err := s.svc.TestChannel(r.Context(), mux.Vars(r)["id"]); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "queued"})
}

// vapidKey gives the browser the key to subscribe with
// (PushManager.subscribe's applicationServerKey).
func (s *server) vapidKey(w http.ResponseWriter, r *http.Request) {
	k, err := s.svc.VAPID(r.Context(), GenerateVAPID)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"public_key": k.Public})
}
