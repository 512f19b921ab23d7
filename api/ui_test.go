package api

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

// uiClient logs in through the form and keeps the session cookie.
func (e *testEnv) uiLogin(t *testing.T) (*http.Client, *http.Cookie) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.PostForm(e.srv.URL+"/ui/login", url.Values{"passphrase": {testPass}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/ui/" {
		t.Fatalf("login: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	for _, ck := range res.Cookies() {
		if ck.Name == sessionCookie {
			return c, ck
		}
	}
	t.Fatal("no session cookie")
	return nil, nil
}

func (e *testEnv) uiPost(t *testing.T, c *http.Client, ck *http.Cookie, path string, form url.Values, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if ck != nil {
		req.AddCookie(ck)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestUISessionCookieAndCSRF(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	o := e.org("EdDSA")
	tk, err := o.Request(ctx, askProfile("name"))
	if err != nil {
		t.Fatal(err)
	}
	c, ck := e.uiLogin(t)
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" {
		t.Fatalf("cookie flags: %+v", ck)
	}
	deny := "/ui/requests/" + tk.RequestID + "/deny"
	good := url.Values{"csrf": {csrfFor(ck.Value)}, "reason": {"no"}}

	// Pages: a strict CSP, and no page without a session.
	req, _ := http.NewRequest("GET", e.srv.URL+"/ui/requests/"+tk.RequestID, nil)
	req.AddCookie(ck)
	res, _ := c.Do(req)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(res.Header.Get("Content-Security-Policy"), "default-src 'none'") || res.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("page headers: %d %v", res.StatusCode, res.Header)
	}
	res, _ = c.Get(e.srv.URL + "/ui/requests")
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/ui/login" {
		t.Fatalf("page without session: %d", res.StatusCode)
	}

	for _, tc := range []struct {
		name   string
		ck     *http.Cookie
		form   url.Values
		hdr    []string
		status int
		says   string
	}{
		{"no session", nil, good, nil, 401, "missing, unknown or expired"},
		{"no CSRF token", ck, url.Values{"reason": {"no"}}, nil, 403, "came from another site"},
		{"wrong CSRF token", ck, url.Values{"csrf": {csrfFor("another session")}}, nil, 403, "came from another site"},
		{"another origin", ck, good, []string{"Origin", "https://evil.example"}, 403, "came from another site"},
		{"another referer", ck, good, []string{"Referer", "https://evil.example/page"}, 403, "came from another site"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.uiPost(t, c, tc.ck, deny, tc.form, tc.hdr...)
			if status != tc.status || !strings.Contains(body, tc.says) {
				t.Fatalf("%d %s", status, body)
			}
		})
	}
	if r, _ := e.v.GetRequest(ctx, tk.RequestID); r.Status != vault.StatusPending {
		t.Fatalf("a refused form changed the request: %s", r.Status)
	}
	status, _ := e.uiPost(t, c, ck, deny, good, "Origin", e.srv.URL)
	if status != http.StatusSeeOther {
		t.Fatalf("a good form: %d", status)
	}
	if r, _ := e.v.GetRequest(ctx, tk.RequestID); r.Status != vault.StatusDenied {
		t.Fatalf("the good form did not deny: %s", r.Status)
	}

	// Sign out ends the session on the server too.
	if status, _ := e.uiPost(t, c, ck, "/ui/logout", url.Values{"csrf": {csrfFor(ck.Value)}}); status != http.StatusSeeOther {
		t.Fatalf("logout: %d", status)
	}
	if err := e.v.Authenticate(ck.Value); err == nil {
		t.Fatal("session still valid after sign-out")
	}
}

func TestUIBadInput(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	o := e.org("EdDSA")
	tk, _ := o.Request(ctx, askProfile("name", "email"))
	c, ck := e.uiLogin(t)
	csrf := csrfFor(ck.Value)
	for _, tc := range []struct {
		name, path string
		form       url.Values
		status     int
		says       string
	}{
		{"approve with nothing ticked", "/ui/requests/" + tk.RequestID + "/approve", url.Values{"csrf": {csrf}}, 400, "tick at least one field"},
		{"approve a field not asked for", "/ui/requests/" + tk.RequestID + "/approve", url.Values{"csrf": {csrf}, "field": {"profile.ssn"}}, 400, "tick at least one field"},
		{"approve longer than asked", "/ui/requests/" + tk.RequestID + "/approve", url.Values{"csrf": {csrf}, "field": {"profile.name"}, "duration": {"99999999"}}, 400, "at most what was asked"},
		{"approve bad duration", "/ui/requests/" + tk.RequestID + "/approve", url.Values{"csrf": {csrf}, "field": {"profile.name"}, "duration": {"soon"}}, 400, "choose a duration"},
		{"unknown request", "/ui/requests/aaaaaaaaaaaaaaaaaaaaaaaaaa/deny", url.Values{"csrf": {csrf}}, 404, "no such request"},
		{"record not an object", "/ui/records/profile/new", url.Values{"csrf": {csrf}, "data": {"[1]"}}, 400, "a record must be a JSON object"},
		{"record bad collection", "/ui/records/BAD/new", url.Values{"csrf": {csrf}, "data": {"{}"}}, 400, "collection names are"},
		{"record edit without version", "/ui/records/profile/aaaaaaaaaaaaaaaaaaaaaaaaaa", url.Values{"csrf": {csrf}, "data": {"{}"}}, 400, "which version of the record"},
		{"terms invalid", "/ui/terms", url.Values{"csrf": {csrf}, "terms": {`{"title":""}`}, "action": {"save"}}, 400, "title: give a title"},
		{"oversized form", "/ui/terms", url.Values{"csrf": {csrf}, "terms": {strings.Repeat("x", DefaultMaxBody+10)}}, 413, "larger than the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.uiPost(t, c, ck, tc.path, tc.form)
			if status != tc.status || !strings.Contains(body, tc.says) {
				t.Fatalf("%d %s", status, body)
			}
		})
	}
	if r, _ := e.v.GetRequest(ctx, tk.RequestID); r.Status != vault.StatusPending {
		t.Fatalf("bad input changed the request: %s", r.Status)
	}
	if cs, _ := e.v.ListCollections(ctx); len(cs) != 0 {
		t.Fatalf("bad input made records: %+v", cs)
	}
	// Wrong passphrases on the login form are throttled like the API's.
	var last int
	var body string
	for range 5 {
		res, _ := c.PostForm(e.srv.URL+"/ui/login", url.Values{"passphrase": {"wrong passphrase"}})
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		last, body = res.StatusCode, string(b)
	}
	if last != http.StatusTooManyRequests || !strings.Contains(body, "Too many wrong passphrases") {
		t.Fatalf("throttled login: %d", last)
	}
}

// Intents from the browser's forms: publish, an offer arrives, accept it.
func TestUIIntents(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.record("profile", `{"name":"Alex Example"}`)
	c, ck := e.uiLogin(t)
	csrf := csrfFor(ck.Value)
	status, body := e.uiPost(t, c, ck, "/ui/intents", url.Values{"csrf": {csrf}, "title": {"Alex Example needs a bike"}})
	if status != 400 || !strings.Contains(body, "profile&#39;s name") {
		t.Fatalf("intent naming the owner: %d", status)
	}
	status, body = e.uiPost(t, c, ck, "/ui/intents", url.Values{"csrf": {csrf}, "title": {"Looking for: a bike"}, "budget": {"lots"}})
	if status != 400 || !strings.Contains(body, "budget:") {
		t.Fatalf("bad budget: %d", status)
	}
	if status, _ := e.uiPost(t, c, ck, "/ui/intents", url.Values{"csrf": {csrf}, "title": {"Looking for: a bike"}, "budget": {"500EUR"}, "valid": {"30d"}}); status != http.StatusSeeOther {
		t.Fatalf("publish: %d", status)
	}
	list, _ := e.v.ListIntents(ctx)
	if len(list) != 1 || list[0].Budget == nil || list[0].Budget.Max != 500 {
		t.Fatalf("published: %+v", list)
	}
	o := e.org("EdDSA")
	tk, err := o.SendOffer(ctx, bikeOffer(list[0].ID))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/ui/intents", nil)
	req.AddCookie(ck)
	res, _ := c.Do(req)
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(page), "Acme Bikes") || !strings.Contains(string(page), "accept-"+tk.OfferID) {
		t.Fatalf("intents page lacks the offer")
	}
	status, _ = e.uiPost(t, c, ck, "/ui/offers/"+tk.OfferID+"/accept", url.Values{"csrf": {csrf}})
	if status != http.StatusSeeOther {
		t.Fatalf("accept: %d", status)
	}
	if r, err := e.v.GetRequest(ctx, tk.OfferID); err != nil || r.Status != vault.StatusPending {
		t.Fatalf("request from the offer: %+v %v", r, err)
	}
	if status, _ := e.uiPost(t, c, ck, "/ui/offers/"+tk.OfferID+"/decline", url.Values{"csrf": {csrf}}); status != 409 {
		t.Fatalf("decline after accept: %d", status)
	}
}

// uiVerify posts the audit verification with the session and any other
// cookies, and returns the page and the cookies set.
func (e *testEnv) uiVerify(t *testing.T, c *http.Client, cookies ...*http.Cookie) (string, []*http.Cookie) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+"/ui/audit/verify", strings.NewReader(url.Values{"csrf": {csrfFor(cookies[0].Value)}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.srv.URL)
	for _, ck := range cookies {
		req.AddCookie(ck)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("verify: %d %s", res.StatusCode, b)
	}
	return string(b), res.Cookies()
}

// The web UI keeps the head of the last log it verified in the browser and
// raises the alarm when the vault later shows a log that does not extend
// it (here: the whole file put back as an older copy).
func TestUIAuditAnchor(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	grow := func(v *vault.Vault, n int) {
		for i := range n {
			if _, err := v.PublishIntent(ctx, policy.IntentInput{Title: fmt.Sprintf("Looking for: thing %d", i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	grow(e.v, 3)
	old := filepath.Join(t.TempDir(), "old.db")
	if _, err := vault.Backup(ctx, e.v.Dir(), old); err != nil {
		t.Fatal(err)
	}
	grow(e.v, 3)
	c, session := e.uiLogin(t)
	page, set := e.uiVerify(t, c, session)
	if !strings.Contains(page, "This browser now keeps the signed head of this log (7 entries)") || len(set) != 1 || set[0].Name != anchorCookie || !set[0].HttpOnly {
		t.Fatalf("first verification: %v\n%s", set, page)
	}
	anchor := set[0]
	grow(e.v, 1)
	page, set = e.uiVerify(t, c, session, anchor)
	if !strings.Contains(page, "It extends the log this browser verified") || len(set) != 1 {
		t.Fatalf("second verification: %s", page)
	}
	anchor = set[0]

	// The older copy, served instead.
	b, _ := os.ReadFile(old)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, vault.DBFile), b, 0o600)
	v2, err := vault.Open(ctx, dir, []byte(testPass), vault.Options{RatePerOrg: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	e2 := newEnvFor(t, v2)
	c2, session2 := e2.uiLogin(t)
	page, set = e2.uiVerify(t, c2, session2, anchor)
	if !strings.Contains(page, `id="anchor-result"`) || !strings.Contains(page, "the audit log is shorter than a tree head seen before") || len(set) != 0 {
		t.Fatalf("rolled-back vault: %v\n%s", set, page)
	}
}

// An organization's name with a right-to-left override is shown with the
// override neutralized, not reversing what the owner reads.
func TestUINeutralizesBidiOverrides(t *testing.T) {
	e := newEnv(t)
	o := e.org("EdDSA")
	req := askProfile("name")
	req.ClientName = "Acme \u202egnp.exe"
	if _, err := o.Request(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	c, ck := e.uiLogin(t)
	r, _ := http.NewRequest("GET", e.srv.URL+"/ui/requests", nil)
	r.AddCookie(ck)
	res, err := c.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if strings.Contains(string(b), "\u202e") || !strings.Contains(string(b), "Acme \ufffdgnp.exe") {
		t.Fatalf("the override reached the page: %q", b)
	}
}
