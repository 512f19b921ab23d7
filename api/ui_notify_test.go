package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/pdvault/pdvault/vault"
)

// The notifications page: add channels by form (a webhook's secret shown
// once), see their delivery state including failures, send a test, add a
// browser's push subscription, remove; the page's script is its own file
// under a CSP that allows nothing else.
func TestUINotifications(t *testing.T) {
	e := newEnvWith(t, vault.Options{Notifier: refusingNotifier{}})
	c, ck := e.uiLogin(t)
	csrf := csrfFor(ck.Value)
	code, body := e.uiGet(t, c, ck, "/ui/notifications")
	if code != 200 || !strings.Contains(body, "No channel yet") || !strings.Contains(body, `data-vapid="B`) {
		t.Fatalf("empty page: %d %.400s", code, body)
	}
	res, _ := c.Do(mustReq(t, "GET", e.srv.URL+"/ui/notifications", ck))
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Fatalf("CSP %q", csp)
	}
	res.Body.Close()

	code, _ = e.uiPost(t, c, ck, "/ui/notifications", url.Values{"csrf": {csrf}, "kind": {"ntfy"}, "url": {"https://ntfy.example/topic"}})
	if code != http.StatusSeeOther {
		t.Fatalf("add ntfy: %d", code)
	}
	code, body = e.uiPost(t, c, ck, "/ui/notifications", url.Values{"csrf": {csrf}, "kind": {"webhook"}, "url": {"https://hooks.example/pdvault"}})
	if code != 200 || !strings.Contains(body, `id="webhook-secret">whsec_`) {
		t.Fatalf("add webhook: %d %.300s", code, body)
	}
	sub, _ := json.Marshal(map[string]any{"endpoint": "https://push.example/send/abc", "keys": map[string]string{
		"p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM", "auth": "tBHItJI5svbpez7KI4CCXg"}})
	code, _ = e.uiPost(t, c, ck, "/ui/notifications/webpush", url.Values{"csrf": {csrf}, "subscription": {string(sub)}, "name": {"laptop"}})
	if code != http.StatusSeeOther {
		t.Fatalf("add push: %d", code)
	}
	// A bad subscription: a clear error, nothing added.
	code, body = e.uiPost(t, c, ck, "/ui/notifications/webpush", url.Values{"csrf": {csrf}, "subscription": {"{nope"}})
	if code != 400 || !strings.Contains(body, "not valid JSON") {
		t.Fatalf("bad push subscription: %d %.300s", code, body)
	}
	// Without the CSRF token: refused, nothing added.
	if code, _ = e.uiPost(t, c, ck, "/ui/notifications", url.Values{"kind": {"ntfy"}, "url": {"https://ntfy.example/other"}}); code != http.StatusForbidden {
		t.Fatalf("add without CSRF: %d", code)
	}
	chs, err := e.v.Channels(t.Context())
	if err != nil || len(chs) != 3 {
		t.Fatalf("channels: %d %v", len(chs), err)
	}
	var ntfy vault.Channel
	for _, ch := range chs {
		if ch.Kind == vault.ChannelNtfy {
			ntfy = ch
		}
	}
	// A test message to a receiver that does not exist: queued, then its
	// failure shows on the page.
	if code, _ = e.uiPost(t, c, ck, "/ui/notifications/"+ntfy.ID+"/test", url.Values{"csrf": {csrf}}); code != http.StatusSeeOther {
		t.Fatalf("test: %d", code)
	}
	e.v.DeliverNotifications(t.Context(), nil)
	_, body = e.uiGet(t, c, ck, "/ui/notifications")
	for _, want := range []string{"ntfy.example", "hooks.example", "push.example", "webpush (laptop)", `<span class="bad">`} {
		if !strings.Contains(body, want) {
			t.Fatalf("page lacks %q: %.2000s", want, body)
		}
	}
	if code, _ = e.uiPost(t, c, ck, "/ui/notifications/"+ntfy.ID+"/remove", url.Values{"csrf": {csrf}}); code != http.StatusSeeOther {
		t.Fatalf("remove: %d", code)
	}
	if chs, _ = e.v.Channels(t.Context()); len(chs) != 2 {
		t.Fatalf("after remove: %d channels", len(chs))
	}
	for _, f := range []string{"/ui/static/push.js", "/ui/static/sw.js"} {
		res, err := http.Get(e.srv.URL + f)
		if err != nil || res.StatusCode != 200 || !strings.Contains(res.Header.Get("Content-Type"), "javascript") {
			t.Fatalf("%s: %v %v", f, err, res)
		}
		res.Body.Close()
	}
}

// refusingNotifier fails every delivery, as an unreachable receiver does.
type refusingNotifier struct{}

func (refusingNotifier) Send(context.Context, vault.ChannelConfig, vault.Notification, vault.VAPIDKeys) error {
	return errors.New("connection refused by ntfy.example")
}

func mustReq(t *testing.T, method, u string, ck *http.Cookie) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(ck)
	return req
}
