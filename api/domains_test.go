package api

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/vault"
)

// txtZone answers TXT lookups for the host (the command's test asks a real
// DNS server: cmd/pdvault TestHostCustomDomain).
type txtZone struct {
	mu  sync.Mutex
	txt map[string][]string
}

func (z *txtZone) LookupTXT(_ context.Context, name string) ([]string, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if r, ok := z.txt[name]; ok {
		return r, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// An owner brings a domain over the API: refused until DNS names the
// vault, then the vault answers there as its issuer; the organization
// follows with the grant it holds; the home address stays the owner's;
// a domain the vault never chose, or another vault's, is not served; after
// a restart the owner is sent home to unlock; DELETE takes the domain away.
func TestOwnerBringsADomain(t *testing.T) {
	he := newHostEnv(t, HostConfig{})
	z := &txtZone{txt: map[string][]string{}}
	he.dns = z
	he.start()
	ctx := t.Context()
	alice, bob := he.signup("alice"), he.signup("bob")
	he.do("alice", "POST", "/v1/owner/records/profile", alice, strings.NewReader(`{"name":"Ada"}`))
	k, err := client.GenerateKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	o := he.org("alice", k)
	ask := askNotes()
	ask.CallbackURI = "https://bikes.example/cb"
	tok := he.grant("alice", o, ask)

	const domain = "data.alice.example"
	r := he.do(domain, "GET", "/.well-known/oauth-authorization-server", "", nil)
	wantError(t, r, http.StatusMisdirectedRequest, "misdirected_request")
	r = he.do("alice", "GET", "/v1/owner/domain?domain="+domain, "", nil)
	wantError(t, r, http.StatusUnauthorized, "")
	r = he.do("alice", "GET", "/v1/owner/domain?domain=Data.Alice.Example.", alice, nil)
	var got domainResponse
	r.json(t, &got)
	if r.status != http.StatusOK || got.Domain != "" || got.Issuer != he.url("alice") || got.Record == nil ||
		got.Record.Name != "_pdvault."+domain || got.Record.Value != "vault=alice.vaults.test" {
		t.Fatalf("preview: %d %s", r.status, r.body)
	}
	r = he.do("alice", "PUT", "/v1/owner/domain", alice, strings.NewReader(`{"domain":"`+domain+`"}`))
	wantError(t, r, http.StatusUnprocessableEntity, "domain_unverified")
	if !strings.Contains(string(r.body), `_pdvault.data.alice.example TXT \"vault=alice.vaults.test\"`) {
		t.Fatalf("the refusal does not say what to publish: %s", r.body)
	}
	for _, bad := range []string{`{"domain":""}`, `{"domain":"bob.vaults.test"}`, `{"domain":"127.0.0.1"}`, `{"domain":"x"}`} {
		r = he.do("alice", "PUT", "/v1/owner/domain", alice, strings.NewReader(bad))
		wantError(t, r, http.StatusBadRequest, "invalid_domain")
	}
	r = he.do("alice", "POST", "/v1/owner/domain", alice, nil)
	wantError(t, r, http.StatusMethodNotAllowed, "method_not_allowed")

	z.mu.Lock()
	z.txt["_pdvault."+domain] = []string{"vault=alice.vaults.test"}
	z.txt["_pdvault.evil.example"] = []string{"vault=alice.vaults.test"}
	z.mu.Unlock()
	r = he.do("alice", "PUT", "/v1/owner/domain", alice, strings.NewReader(`{"domain":"`+domain+`"}`))
	got = domainResponse{}
	r.json(t, &got)
	if r.status != http.StatusOK || got.Domain != domain || got.Issuer != he.url(domain) || got.Home != he.url("alice") ||
		got.Moved == nil || len(got.Moved.Notices) != 1 || got.Moved.Location != he.url(domain) {
		t.Fatalf("bring the domain: %d %s", r.status, r.body)
	}
	// Discovery at the domain names it; the organization follows with
	// the grant it holds.
	var meta map[string]any
	r = he.do(domain, "GET", "/.well-known/oauth-authorization-server", "", nil)
	r.json(t, &meta)
	if r.status != http.StatusOK || meta["issuer"] != he.url(domain) {
		t.Fatalf("discovery at the domain: %d %s", r.status, r.body)
	}
	moved := he.org(domain, o.Key())
	page, err := moved.ReadCollection(ctx, tok.AccessToken, "profile", 10, "")
	if err != nil || len(page.Records) != 1 {
		t.Fatalf("read at the domain with the old grant: %+v %v", page, err)
	}
	// At home the organization's proofs no longer match the issuer; the
	// owner is still at home there.
	if _, err := o.ReadCollection(ctx, tok.AccessToken, "profile", 10, ""); err == nil || !strings.Contains(err.Error(), "invalid_dpop_proof") {
		t.Fatalf("read at home after the domain: %v", err)
	}
	r = he.do("alice", "GET", "/v1/owner/domain", alice, nil)
	got = domainResponse{}
	r.json(t, &got)
	if r.status != http.StatusOK || got.Domain != domain || got.Record == nil {
		t.Fatalf("the owner at home: %d %s", r.status, r.body)
	}
	// A domain pointed at alice that alice never chose; alice's domain
	// claimed by bob.
	r = he.do("evil.example", "GET", "/.well-known/oauth-authorization-server", "", nil)
	wantError(t, r, http.StatusMisdirectedRequest, "misdirected_request")
	r = he.do("bob", "PUT", "/v1/owner/domain", bob, strings.NewReader(`{"domain":"`+domain+`"}`))
	wantError(t, r, http.StatusUnprocessableEntity, "domain_unverified")

	// A restart seals the vault. The domain book (not the sealed vault)
	// says alice chose the domain: its pages there lead to the unlock form
	// there, its API says sealed, and the owner unlocks at the domain.
	he.start()
	r = he.do(domain, "GET", "/ui/requests", "", nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/ui/login" {
		t.Fatalf("sealed, a page at the domain: %d %q", r.status, r.header.Get("Location"))
	}
	r = he.do(domain, "GET", "/ui/login", "", nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `name="passphrase"`) {
		t.Fatalf("sealed, the unlock form at the domain: %d %.200s", r.status, r.body)
	}
	r = he.do(domain, "GET", "/v1/data/profile", "", nil)
	wantError(t, r, http.StatusServiceUnavailable, "vault_sealed")
	r = he.do(domain, "GET", "/.well-known/oauth-authorization-server", "", nil)
	wantError(t, r, http.StatusServiceUnavailable, "vault_sealed")
	r = he.do(domain, "POST", "/v1/owner/session", "", strings.NewReader(`{"passphrase":"not the passphrase"}`))
	wantError(t, r, http.StatusUnauthorized, "invalid_passphrase")
	var sess struct {
		Token string `json:"token"`
	}
	unlock := func(at string) {
		t.Helper()
		r = he.do(at, "POST", "/v1/owner/session", "", strings.NewReader(fmt.Sprintf(`{"passphrase":%q}`, testPass)))
		sess.Token = ""
		r.json(t, &sess)
		if (r.status != http.StatusOK && r.status != http.StatusCreated) || sess.Token == "" {
			t.Fatalf("unlock at %s: %d %s", at, r.status, r.body)
		}
	}
	unlock(domain)
	alice = sess.Token
	if _, err := moved.ReadCollection(ctx, tok.AccessToken, "profile", 10, ""); err != nil {
		t.Fatalf("read at the domain after the unlock: %v", err)
	}
	if r = he.do(domain, "GET", "/v1/owner/domain", alice, nil); r.status != http.StatusOK {
		t.Fatalf("the owner at the domain with the session from the unlock there: %d %s", r.status, r.body)
	}

	// Without the book's entry (a host whose book lost it), a sealed vault
	// cannot confirm its domain: pages lead home to unlock there.
	he.start()
	if err := os.Remove(filepath.Join(he.root, "domains", domain, "alice")); err != nil {
		t.Fatal(err)
	}
	r = he.do(domain, "GET", "/ui/requests", "", nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != he.url("alice")+"/ui/login" {
		t.Fatalf("sealed and not in the book, a page at the domain: %d %q", r.status, r.header.Get("Location"))
	}
	r = he.do(domain, "POST", "/v1/owner/session", "", strings.NewReader(fmt.Sprintf(`{"passphrase":%q}`, testPass)))
	wantError(t, r, http.StatusServiceUnavailable, "vault_sealed")
	unlock("alice")
	alice = sess.Token
	// Opening the vault wrote its domain back to the book.
	if _, err := os.Stat(filepath.Join(he.root, "domains", domain, "alice")); err != nil {
		t.Fatalf("the book after the vault opened: %v", err)
	}

	// The owner takes the domain away (at the domain itself).
	r = he.do(domain, "DELETE", "/v1/owner/domain", alice, nil)
	got = domainResponse{}
	r.json(t, &got)
	if r.status != http.StatusOK || got.Domain != "" || got.Issuer != he.url("alice") {
		t.Fatalf("take the domain away: %d %s", r.status, r.body)
	}
	r = he.do(domain, "GET", "/.well-known/oauth-authorization-server", "", nil)
	wantError(t, r, http.StatusMisdirectedRequest, "misdirected_request")
	if _, err := o.ReadCollection(ctx, tok.AccessToken, "profile", 10, ""); err != nil {
		t.Fatalf("read at home again: %v", err)
	}
}

// wantError checks a response's status and, unless code is "", its error
// code.
func wantError(t *testing.T, r resp, status int, code string) {
	t.Helper()
	var body errorBody
	if r.status != status || (code != "" && (json.Unmarshal(r.body, &body) != nil || body.Error != code)) {
		t.Fatalf("got %d %s, want %d %s", r.status, r.body, status, code)
	}
}

// The owner brings a domain in the web UI: the page shows the record to
// publish, refuses with the record until DNS has it, then moves the vault
// and can move it back; it needs the session and its CSRF token, and only
// a host with custom domains shows it.
func TestOwnerBringsADomainInTheUI(t *testing.T) {
	he := newHostEnv(t, HostConfig{})
	z := &txtZone{txt: map[string][]string{}}
	he.dns = z
	he.start()
	alice := he.signup("alice")
	const domain = "data.alice.example"
	cookie := sessionCookie + "=" + alice
	page := func(name, path string) resp {
		t.Helper()
		return he.do(name, "GET", path, "", nil, "Cookie", cookie)
	}
	form := func(path string, v url.Values) resp {
		t.Helper()
		if _, ok := v["csrf"]; !ok {
			v.Set("csrf", csrfFor(alice))
		}
		return he.do("alice", "POST", path, "", strings.NewReader(v.Encode()),
			"Cookie", cookie, "Content-Type", "application/x-www-form-urlencoded", "Origin", he.url("alice"))
	}
	wantPage := func(r resp, status int, has ...string) {
		t.Helper()
		if r.status != status {
			t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
		}
		for _, s := range has {
			if !strings.Contains(string(r.body), s) {
				t.Fatalf("the page lacks %q:\n%s", s, r.body)
			}
		}
	}

	if r := he.do("alice", "GET", "/ui/domain", "", nil); r.status != http.StatusSeeOther || r.header.Get("Location") != "/ui/login" {
		t.Fatalf("without a session: %d %v", r.status, r.header)
	}
	wantPage(page("alice", "/ui/"), http.StatusOK, `href="/ui/domain"`)
	wantPage(page("alice", "/ui/domain"), http.StatusOK, "Bring a domain", "<code>alice.vaults.test</code>")

	rec := "_pdvault." + domain
	wantPage(form("/ui/domain", url.Values{"domain": {"Data.Alice.Example"}, "action": {"check"}}), http.StatusOK,
		`id="record-name">`+rec+`<`, `id="record-value">vault=alice.vaults.test<`)
	wantPage(form("/ui/domain", url.Values{"domain": {domain}, "action": {"save"}}), http.StatusUnprocessableEntity,
		`role="alert"`, rec+" TXT &#34;vault=alice.vaults.test&#34;")
	wantPage(form("/ui/domain", url.Values{"domain": {"bob.vaults.test"}, "action": {"save"}}), http.StatusBadRequest, "the host&#39;s own")
	wantPage(form("/ui/domain", url.Values{"domain": {"x"}, "action": {"save"}}), http.StatusBadRequest, vault.ErrBadDomain.Msg)
	if r := form("/ui/domain", url.Values{"domain": {domain}, "action": {"save"}, "csrf": {"forged"}}); r.status != http.StatusForbidden {
		t.Fatalf("without the CSRF token: %d", r.status)
	}
	if r := he.do("alice", "GET", "/v1/owner/domain", alice, nil); !strings.Contains(string(r.body), `"issuer":"`+he.url("alice")+`"`) {
		t.Fatalf("a refused form changed the vault: %s", r.body)
	}

	z.mu.Lock()
	z.txt[rec] = []string{"vault=alice.vaults.test"}
	z.mu.Unlock()
	if r := form("/ui/domain", url.Values{"domain": {domain}, "action": {"save"}}); r.status != http.StatusSeeOther || r.header.Get("Location") != "/ui/domain?done=domain" {
		t.Fatalf("use the domain: %d %s", r.status, r.body)
	}
	wantPage(page("alice", "/ui/domain?done=domain"), http.StatusOK, flashes["domain"], `href="`+he.url(domain)+`/ui/"`, "Stop using "+domain)
	wantPage(page(domain, "/ui/domain"), http.StatusOK, "Stop using "+domain) // the same page at the domain
	if r := he.do(domain, "GET", "/.well-known/oauth-authorization-server", "", nil); !strings.Contains(string(r.body), `"issuer":"`+he.url(domain)+`"`) {
		t.Fatalf("discovery at the domain: %s", r.body)
	}

	if r := form("/ui/domain/remove", url.Values{}); r.status != http.StatusSeeOther || r.header.Get("Location") != "/ui/domain?done=nodomain" {
		t.Fatalf("stop using the domain: %d %s", r.status, r.body)
	}
	wantPage(page("alice", "/ui/domain"), http.StatusOK, "Bring a domain", "<code>"+he.url("alice")+"</code>")
	if r := form("/ui/domain/remove", url.Values{}); r.status != http.StatusConflict {
		t.Fatalf("removing no domain: %d %s", r.status, r.body)
	}

	// A host without custom domains neither links nor serves the page.
	plain := newHostEnv(t, HostConfig{})
	bob := plain.signup("bob")
	r := plain.do("bob", "GET", "/ui/", "", nil, "Cookie", sessionCookie+"="+bob)
	if r.status != http.StatusOK || strings.Contains(string(r.body), "/ui/domain") {
		t.Fatalf("home without custom domains: %d, links the domain page: %v", r.status, strings.Contains(string(r.body), "/ui/domain"))
	}
	if r := plain.do("bob", "GET", "/ui/domain", "", nil, "Cookie", sessionCookie+"="+bob); r.status != http.StatusForbidden || !strings.Contains(string(r.body), html.EscapeString(vault.ErrNoDomains.Msg)) {
		t.Fatalf("the page without custom domains: %d %s", r.status, r.body)
	}
}

// A TLS-terminating proxy asks before it gets a certificate on demand:
// yes for the host's domain, its vaults and a domain an owner brought
// (once DNS and the vault agree), no for anything else; only a loopback
// or trusted peer may ask.
func TestCertificateAllowed(t *testing.T) {
	he := newHostEnv(t, HostConfig{})
	z := &txtZone{txt: map[string][]string{}}
	he.dns = z
	he.start()
	alice := he.signup("alice")
	ask := func(name string) resp {
		t.Helper()
		return he.do("", "GET", certificatePath+"?domain="+url.QueryEscape(name), "", nil)
	}
	for _, name := range []string{hostDomain, "alice." + hostDomain, "ALICE." + hostDomain + "."} {
		if r := ask(name); r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", name, r.status, r.body)
		}
	}
	for _, name := range []string{"nobody." + hostDomain, "a.alice." + hostDomain, "evil.example", "", "data.alice.example", "127.0.0.1"} {
		wantError(t, ask(name), http.StatusNotFound, "not_served")
	}
	const domain = "data.alice.example"
	z.mu.Lock()
	z.txt["_pdvault."+domain] = []string{"vault=alice." + hostDomain}
	z.mu.Unlock()
	wantError(t, ask(domain), http.StatusNotFound, "not_served") // DNS agrees, the owner has not chosen it
	if r := he.do("alice", "PUT", "/v1/owner/domain", alice, strings.NewReader(`{"domain":"`+domain+`"}`)); r.status != http.StatusOK {
		t.Fatalf("bring the domain: %d %s", r.status, r.body)
	}
	if r := ask(domain); r.status != http.StatusOK {
		t.Fatalf("the brought domain: %d %s", r.status, r.body)
	}
	// The same question from any Host header, and only from the proxy.
	if r := he.do("alice", "GET", certificatePath+"?domain=alice."+hostDomain, "", nil); r.status != http.StatusOK {
		t.Fatalf("asked at a vault's name: %d", r.status)
	}
	req := httptest.NewRequest("GET", he.url("")+certificatePath+"?domain=alice."+hostDomain, nil)
	req.RemoteAddr = "192.0.2.1:4321"
	rec := httptest.NewRecorder()
	(*he.handle.Load()).ServeHTTP(rec, req)
	wantError(t, resp{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}, http.StatusNotFound, "not_found")
	wantError(t, he.do("", "POST", certificatePath+"?domain="+hostDomain, "", nil), http.StatusMethodNotAllowed, "method_not_allowed")

	// After a restart the vault is sealed: the domain book vouches for its
	// domain, so the certificate is there when its owner comes to unlock.
	he.start()
	if r := ask(domain); r.status != http.StatusOK {
		t.Fatalf("a sealed vault's brought domain: %d %s", r.status, r.body)
	}
	// DNS moved elsewhere: no longer.
	z.mu.Lock()
	z.txt["_pdvault."+domain] = []string{"vault=bob." + hostDomain}
	z.mu.Unlock()
	he.start()
	wantError(t, ask(domain), http.StatusNotFound, "not_served")
}
