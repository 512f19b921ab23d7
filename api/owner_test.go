package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pdvault/pdvault/vault"
)

const testPass = "correct horse battery staple"

type testEnv struct {
	t     *testing.T
	v     *vault.Vault
	srv   *httptest.Server
	token string
}

func newEnv(t *testing.T) *testEnv { return newEnvWith(t, vault.Options{}) }

func newEnvWith(t *testing.T, opts vault.Options) *testEnv {
	t.Helper()
	if opts.RatePerOrg == 0 {
		opts.RatePerOrg = -1 // tests hammer one key; TestRateLimits sets its own
	}
	v, err := vault.Create(t.Context(), filepath.Join(t.TempDir(), "v"), []byte(testPass), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return newEnvFor(t, v)
}

// newEnvFor serves an existing vault.
func newEnvFor(t *testing.T, v *vault.Vault) *testEnv {
	t.Helper()
	// No per-address limit here: every test client shares 127.0.0.1
	// (TestRateLimits tests the limit on its own server).
	srv := httptest.NewServer(validatingHandler(t, New(v, Config{RatePerAddress: -1})))
	t.Cleanup(srv.Close)
	v.SetIssuer(srv.URL)
	return &testEnv{t: t, v: v, srv: srv, token: v.NewSession().Token}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("response %d is not JSON: %q", r.status, r.body)
	}
}

// errCode returns the "error" member of a JSON error body.
func (r resp) errCode(t *testing.T) string {
	t.Helper()
	var e errorBody
	r.json(t, &e)
	if e.Error == "" || e.Description == "" {
		t.Fatalf("error body lacks error or error_description: %s", r.body)
	}
	return e.Error
}

func (e *testEnv) do(method, path, token string, body io.Reader, hdr ...string) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func TestOwnerRecordLifecycle(t *testing.T) {
	e := newEnv(t)
	r := e.do("POST", "/v1/owner/records/profile", e.token, strings.NewReader(`{"name":"Ada","email":"ada@example.org"}`))
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var rec vault.Record
	r.json(t, &rec)
	if r.header.Get("ETag") != `"1"` || r.header.Get("Location") != "/v1/owner/records/profile/"+rec.ID {
		t.Fatalf("headers: %v", r.header)
	}
	if r.header.Get("Cache-Control") != "no-store" || r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("missing security headers: %v", r.header)
	}
	path := "/v1/owner/records/profile/" + rec.ID
	if r := e.do("GET", path, e.token, nil); r.status != 200 || !bytes.Contains(r.body, []byte(`"name":"Ada"`)) {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	if r := e.do("PUT", path, e.token, strings.NewReader(`{"name":"Ada L."}`), "If-Match", `"1"`); r.status != 200 || r.header.Get("ETag") != `"2"` {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	r = e.do("PUT", path, e.token, strings.NewReader(`{"name":"stale"}`), "If-Match", `"1"`)
	if r.status != http.StatusConflict || r.errCode(t) != "version_conflict" {
		t.Fatalf("stale update: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/owner/records/profile?limit=1", e.token, nil); r.status != 200 {
		t.Fatalf("list: %d %s", r.status, r.body)
	} else {
		var p vault.Page
		r.json(t, &p)
		if len(p.Records) != 1 || p.Records[0].Version != 2 || string(p.Records[0].Data) != `{"name":"Ada L."}` {
			t.Fatalf("list = %s", r.body)
		}
	}
	if r := e.do("DELETE", path, e.token, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := e.do("GET", path, e.token, nil); r.status != 404 || r.errCode(t) != "not_found" {
		t.Fatalf("get after delete: %d %s", r.status, r.body)
	}
}

func TestOwnerLogin(t *testing.T) {
	e := newEnv(t)
	r := e.do("POST", "/v1/owner/session", "", strings.NewReader(`{"passphrase":"`+testPass+`"}`))
	if r.status != 200 {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	var lr loginResponse
	r.json(t, &lr)
	if lr.Token == "" || lr.ExpiresIn != 12*3600 || lr.TokenType != "Bearer" {
		t.Fatalf("login response %s", r.body)
	}
	// The same session as a cookie for the web UI; the JSON API does not
	// take the cookie.
	ck := (&http.Response{Header: r.header}).Cookies()
	if len(ck) != 1 || ck[0].Name != sessionCookie || ck[0].Value != lr.Token || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie: %+v", ck)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1/owner/records/profile", nil)
	req.AddCookie(ck[0])
	if res, _ := http.DefaultClient.Do(req); res.StatusCode != 401 {
		t.Fatalf("JSON API with the cookie only: %d", res.StatusCode)
	}
	if r := e.do("GET", "/v1/owner/records/profile", lr.Token, nil); r.status != 200 {
		t.Fatalf("token from login does not work: %d", r.status)
	}
	if r := e.do("DELETE", "/v1/owner/session", lr.Token, nil); r.status != 204 {
		t.Fatalf("logout: %d", r.status)
	}
	if r := e.do("GET", "/v1/owner/records/profile", lr.Token, nil); r.status != 401 {
		t.Fatalf("token works after logout: %d", r.status)
	}
}

// Every bad input gets the exact status and code, and changes nothing.
func TestOwnerBadInput(t *testing.T) {
	e := newEnv(t)
	good := e.do("POST", "/v1/owner/records/profile", e.token, strings.NewReader(`{"keep":"me"}`))
	var rec vault.Record
	good.json(t, &rec)
	recPath := "/v1/owner/records/profile/" + rec.ID
	big := `{"x":"` + strings.Repeat("a", DefaultMaxBody) + `"}`

	cases := []struct {
		name, method, path, token, body string
		hdr                             []string
		status                          int
		code                            string
	}{
		{"malformed JSON", "POST", "/v1/owner/records/profile", e.token, `{"a":`, nil, 400, "invalid_json"},
		{"array record", "POST", "/v1/owner/records/profile", e.token, `[1]`, nil, 400, "invalid_record"},
		{"string record", "PUT", recPath, e.token, `"x"`, nil, 400, "invalid_record"},
		{"empty body", "POST", "/v1/owner/records/profile", e.token, ``, nil, 400, "invalid_record"},
		{"oversized body", "POST", "/v1/owner/records/profile", e.token, big, nil, 413, "request_too_large"},
		{"oversized update", "PUT", recPath, e.token, big, nil, 413, "request_too_large"},
		{"bad collection", "POST", "/v1/owner/records/Bad%20Name", e.token, `{}`, nil, 400, "invalid_collection"},
		{"bad collection list", "GET", "/v1/owner/records/UPPER", e.token, ``, nil, 400, "invalid_collection"},
		{"unknown id", "GET", "/v1/owner/records/profile/aaaaaaaaaaaaaaaaaaaaaaaaaa", e.token, ``, nil, 404, "not_found"},
		{"malformed id", "GET", "/v1/owner/records/profile/..x", e.token, ``, nil, 404, "not_found"},
		{"id in wrong collection", "GET", "/v1/owner/records/health/" + rec.ID, e.token, ``, nil, 404, "not_found"},
		{"update unknown id", "PUT", "/v1/owner/records/profile/aaaaaaaaaaaaaaaaaaaaaaaaaa", e.token, `{}`, nil, 404, "not_found"},
		{"delete unknown id", "DELETE", "/v1/owner/records/profile/aaaaaaaaaaaaaaaaaaaaaaaaaa", e.token, ``, nil, 404, "not_found"},
		{"missing token", "GET", recPath, "", ``, nil, 401, "invalid_token"},
		{"wrong token", "GET", recPath, "not-a-token", ``, nil, 401, "invalid_token"},
		{"wrong token on write", "DELETE", recPath, "not-a-token", ``, nil, 401, "invalid_token"},
		{"basic auth", "GET", recPath, "", ``, []string{"Authorization", "Basic YTpi"}, 401, "invalid_token"},
		{"bad If-Match", "PUT", recPath, e.token, `{}`, []string{"If-Match", "abc"}, 400, "invalid_request"},
		{"bad limit", "GET", "/v1/owner/records/profile?limit=x", e.token, ``, nil, 400, "invalid_limit"},
		{"zero limit", "GET", "/v1/owner/records/profile?limit=0", e.token, ``, nil, 400, "invalid_limit"},
		{"huge limit", "GET", "/v1/owner/records/profile?limit=100000", e.token, ``, nil, 400, "invalid_limit"},
		{"bad cursor", "GET", "/v1/owner/records/profile?cursor=zzz", e.token, ``, nil, 400, "invalid_cursor"},
		{"wrong passphrase", "POST", "/v1/owner/session", "", `{"passphrase":"wrong passphrase"}`, nil, 401, "invalid_passphrase"},
		{"login not JSON", "POST", "/v1/owner/session", "", `passphrase=x`, nil, 400, "invalid_json"},
		{"login unknown field", "POST", "/v1/owner/session", "", `{"password":"x"}`, nil, 400, "invalid_request"},
		{"login empty passphrase", "POST", "/v1/owner/session", "", `{"passphrase":""}`, nil, 400, "invalid_request"},
		{"login trailing data", "POST", "/v1/owner/session", "", `{"passphrase":"x"} {}`, nil, 400, "invalid_json"},
		{"unknown endpoint", "GET", "/v1/nope", "", ``, nil, 404, "not_found"},
		{"wrong method", "PATCH", recPath, e.token, `{}`, nil, 405, "method_not_allowed"},
		{"passphrase change wrong old", "POST", "/v1/owner/passphrase", e.token, `{"old":"wrong passphrase","new":"something long"}`, nil, 401, "invalid_passphrase"},
		{"passphrase change too short", "POST", "/v1/owner/passphrase", e.token, `{"old":"` + testPass + `","new":"short"}`, nil, 400, "weak_passphrase"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, tc.token, strings.NewReader(tc.body), tc.hdr...)
			if r.status != tc.status {
				t.Fatalf("status = %d, want %d: %s", r.status, tc.status, r.body)
			}
			if got := r.errCode(t); got != tc.code {
				t.Fatalf("error = %q, want %q", got, tc.code)
			}
			if r.header.Get("Content-Type") != "application/json" {
				t.Fatalf("content type %q", r.header.Get("Content-Type"))
			}
			if tc.status == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
	// Nothing changed: still exactly the one record, at version 1.
	r := e.do("GET", "/v1/owner/records/profile", e.token, nil)
	var p vault.Page
	r.json(t, &p)
	if len(p.Records) != 1 || p.Records[0].Version != 1 || string(p.Records[0].Data) != `{"keep":"me"}` {
		t.Fatalf("bad input changed the vault: %s", r.body)
	}
	for _, c := range []string{"health", "Bad Name"} {
		if pg, err := e.v.ListRecords(t.Context(), c, 10, ""); err == nil && len(pg.Records) != 0 {
			t.Fatalf("records appeared in %s", c)
		}
	}
}

func TestLoginThrottleSaysRetryAfter(t *testing.T) {
	e := newEnv(t)
	var last resp
	for range 5 {
		last = e.do("POST", "/v1/owner/session", "", strings.NewReader(`{"passphrase":"wrong passphrase"}`))
	}
	if last.status != http.StatusTooManyRequests || last.errCode(t) != "slow_down" || last.header.Get("Retry-After") == "" {
		t.Fatalf("after 5 wrong passphrases: %d %v %s", last.status, last.header, last.body)
	}
}

func TestExportOverHTTP(t *testing.T) {
	e := newEnv(t)
	e.do("POST", "/v1/owner/records/profile", e.token, strings.NewReader(`{"secret":"EXPORTMARKER"}`))
	r := e.do("GET", "/v1/owner/export", e.token, nil)
	if r.status != 200 || !bytes.HasPrefix(r.body, []byte("pdvault-export-v2\n")) || bytes.Contains(r.body, []byte("EXPORTMARKER")) {
		t.Fatalf("export: %d %q...", r.status, r.body[:min(40, len(r.body))])
	}
	dir := filepath.Join(t.TempDir(), "restored")
	st, err := vault.Import(t.Context(), bytes.NewReader(r.body), dir, []byte(testPass), vault.Options{})
	if err != nil || st.Records != 1 {
		t.Fatalf("import of HTTP export: %+v %v", st, err)
	}
	if r := e.do("GET", "/v1/owner/export", "", nil); r.status != 401 {
		t.Fatalf("export without token: %d", r.status)
	}
}

func TestInternalErrorsAreNotLeaked(t *testing.T) {
	e := newEnv(t)
	r := e.do("POST", "/v1/owner/records/profile", e.token, strings.NewReader(`{"a":1}`))
	var rec vault.Record
	r.json(t, &rec)
	e.v.Close() // the database is gone: every call now fails inside
	r = e.do("GET", "/v1/owner/records/profile/"+rec.ID, e.token, nil)
	if r.status < 500 {
		t.Fatalf("status %d", r.status)
	}
	if bytes.Contains(r.body, []byte("sql")) || bytes.Contains(r.body, []byte("database")) {
		t.Fatalf("internal error text leaked: %s", r.body)
	}
}

// A web page the owner visits cannot spend the owner's login attempts
// with cross-site posts (a text/plain form needs no preflight): the
// session endpoint refuses another origin before anything is counted.
func TestLoginRefusesCrossSitePosts(t *testing.T) {
	e := newEnv(t)
	for range 20 {
		r := e.do("POST", "/v1/owner/session", "", strings.NewReader(`{"passphrase":"wrong passphrase!"}`),
			"Origin", "https://evil.example", "Content-Type", "text/plain")
		if r.status != http.StatusForbidden || r.errCode(t) != "cross_site" {
			t.Fatalf("cross-site login: %d %s", r.status, r.body)
		}
	}
	r := e.do("POST", "/v1/owner/session", "", strings.NewReader(`{"passphrase":"`+testPass+`"}`))
	var lr loginResponse
	r.json(t, &lr)
	if r.status != 200 || lr.Device == "" {
		t.Fatalf("the owner after 20 cross-site posts: %d %s", r.status, r.body)
	}
	// Same-origin (the vault's own pages) is fine.
	if r := e.do("POST", "/v1/owner/session", "", strings.NewReader(`{"passphrase":"`+testPass+`","device":"`+lr.Device+`"}`), "Origin", e.srv.URL); r.status != 200 {
		t.Fatalf("same-origin login: %d %s", r.status, r.body)
	}
}

// Per-address limits key an IPv6 client by its /64.
func TestSourceAddressIPv6Prefix(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.1:5000":                      "192.0.2.1",
		"[2001:db8:1:2:aaaa::1]:443":          "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff:ffff:ffff:1]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:3::1]:443":               "2001:db8:1:3::/64",
		"[::ffff:192.0.2.1]:80":               "192.0.2.1",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = addr
		if got := sourceAddress(r); got != want {
			t.Errorf("%s: %s, want %s", addr, got, want)
		}
	}
}

// A body that is not JSON says where it stops being JSON; an unknown
// member is named with the members the endpoint takes.
func TestJSONErrorsSayWhere(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct{ path, body, code, msg string }{
		{"/v1/owner/records/profile", "{\n  \"name\": \"Ada\",\n  \"age\": 3x\n}", "invalid_json", "line 3, column 11"},
		{"/v1/owner/records/profile", `{"name": "Ada"`, "invalid_json", "ends before the JSON value does"},
		{"/v1/owner/session", `{"password":"x"}`, "invalid_request", `unknown member "password"; it takes "passphrase", "device"`},
		{"/v1/owner/session", `{"passphrase": 42}`, "invalid_json", `"passphrase" must be a string, not number`},
		{"/v1/owner/session", `{"passphrase":"x"} {}`, "invalid_json", "data after the JSON value"},
	} {
		r := e.do("POST", c.path, e.token, strings.NewReader(c.body))
		var b errorBody
		r.json(t, &b)
		if r.status != 400 || b.Error != c.code || !strings.Contains(b.Description, c.msg) {
			t.Errorf("POST %s %q: %d %s %q, want 400 %s and %q", c.path, c.body, r.status, b.Error, b.Description, c.code, c.msg)
		}
	}
}
