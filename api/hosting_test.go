package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/vault"
	"github.com/pdvault/pdvault/vault/host"
)

// hostEnv is a host serving vaults under vaults.test on a loopback port;
// its client dials that port whatever the host name.
type hostEnv struct {
	t      *testing.T
	root   string
	port   string
	hc     *http.Client
	h      *host.Host
	cfg    HostConfig
	hopts  host.Options
	handle atomic.Pointer[http.Handler]
	dns    host.Resolver // when set, owners may bring their own domains
}

const hostDomain = "vaults.test"

func newHostEnv(t *testing.T, cfg HostConfig) *hostEnv {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	he := &hostEnv{t: t, root: filepath.Join(t.TempDir(), "host"), port: port, cfg: cfg}
	he.cfg.Domain = hostDomain
	he.hc = &http.Client{
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, ln.Addr().String())
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	he.start()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*he.handle.Load()).ServeHTTP(w, r) })}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		he.h.Close(context.Background())
	})
	return he
}

// start (re)starts the host over its directory: a restart knows no key.
func (he *hostEnv) start() {
	he.t.Helper()
	if he.h != nil {
		he.h.Close(context.Background())
	}
	vcfg := he.cfg.Config
	if vcfg.RatePerAddress == 0 {
		vcfg.RatePerAddress = -1
	}
	opts := host.Options{Root: he.root, Vault: vault.Options{RatePerOrg: -1},
		IssuerFor: func(n string) string { return he.url(n) }, Attach: VaultHandler(vcfg)}
	if he.dns != nil {
		opts.Domain, opts.Resolver = hostDomain, he.dns
		opts.Vault.DomainIssuer = func(d string) string { return "http://" + d + ":" + he.port }
	}
	h, err := host.New(opts)
	if err != nil {
		he.t.Fatal(err)
	}
	he.h = h
	cfg := he.cfg
	cfg.RatePerAddress = -1
	var hh http.Handler = NewHost(h, cfg)
	he.handle.Store(&hh)
}

// url is a vault's address: name is a vault's name, "" for the apex, or
// a domain (with a dot) its owner brought.
func (he *hostEnv) url(name string) string {
	switch {
	case name == "":
		return "http://" + hostDomain + ":" + he.port
	case strings.Contains(name, "."):
		return "http://" + name + ":" + he.port
	}
	return "http://" + name + "." + hostDomain + ":" + he.port
}

func (he *hostEnv) do(name, method, path, token string, body io.Reader, hdr ...string) resp {
	he.t.Helper()
	req, err := http.NewRequest(method, he.url(name)+path, body)
	if err != nil {
		he.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := he.hc.Do(req)
	if err != nil {
		he.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// signup creates a vault over HTTP with an invitation and returns the
// owner's token.
func (he *hostEnv) signup(name string) string {
	he.t.Helper()
	code, err := he.h.Invite(time.Hour)
	if err != nil {
		he.t.Fatal(err)
	}
	r := he.do("", "POST", "/v1/host/vaults", "", strings.NewReader(fmt.Sprintf(`{"name":%q,"passphrase":%q,"invite":%q}`, name, testPass, code)))
	if r.status != http.StatusCreated {
		he.t.Fatalf("sign-up %s: %d %s", name, r.status, r.body)
	}
	var out signupResponse
	r.json(he.t, &out)
	if out.Issuer != he.url(name) || out.Token == "" {
		he.t.Fatalf("sign-up answered %+v", out)
	}
	return out.Token
}

func (he *hostEnv) org(name string, k *client.Key) *client.Org {
	he.t.Helper()
	o, err := client.NewOrg(he.url(name), k, he.hc)
	if err != nil {
		he.t.Fatal(err)
	}
	return o
}

// grant runs request → approve (the whole request) → collect at a vault.
func (he *hostEnv) grant(name string, o *client.Org, req client.AccessRequest) client.Token {
	he.t.Helper()
	ctx := he.t.Context()
	tk, err := o.Request(ctx, req)
	if err != nil {
		he.t.Fatal(err)
	}
	hd, err := he.h.Acquire(ctx, name)
	if err != nil {
		he.t.Fatal(err)
	}
	defer hd.Release()
	if _, err := hd.Vault.Approve(ctx, tk.RequestID, vault.Approval{}); err != nil {
		he.t.Fatal(err)
	}
	tok, err := o.Poll(ctx, tk.RequestID)
	if err != nil {
		he.t.Fatal(err)
	}
	return tok
}

func askNotes() client.AccessRequest {
	return client.AccessRequest{ClientName: "Acme Bikes", ClientURI: "https://bikes.example", Purpose: "service_delivery",
		PurposeText: "deliver your bicycle", AuthorizationDetails: []client.AuthorizationDetail{client.Detail("profile", "name")}, Duration: 3600}
}

// One vault's session, grant, proof, cursor and record id are useless at
// another vault on the same host.
func TestHostIsolation(t *testing.T) {
	he := newHostEnv(t, HostConfig{})
	ctx := t.Context()
	alice, bob := he.signup("alice"), he.signup("bob")
	var ids []string
	for _, n := range []string{"Ada", "Grace", "Edsger"} {
		r := he.do("alice", "POST", "/v1/owner/records/profile", alice, strings.NewReader(fmt.Sprintf(`{"name":%q}`, n)))
		if r.status != http.StatusCreated {
			t.Fatalf("create at alice: %d %s", r.status, r.body)
		}
		var rec vault.Record
		r.json(t, &rec)
		ids = append(ids, rec.ID)
	}
	he.do("bob", "POST", "/v1/owner/records/profile", bob, strings.NewReader(`{"name":"Bob"}`))

	// The owner's session.
	if r := he.do("bob", "GET", "/v1/owner/records/profile", alice, nil); r.status != http.StatusUnauthorized || r.errCode(t) != "invalid_token" {
		t.Fatalf("alice's session at bob: %d %s", r.status, r.body)
	}
	// Discovery is per vault.
	var md client.Metadata
	he.do("bob", "GET", "/.well-known/oauth-authorization-server", "", nil).json(t, &md)
	if md.Issuer != he.url("bob") || md.TokenEndpoint != he.url("bob")+"/v1/token" {
		t.Fatalf("bob's metadata: %+v", md)
	}
	// So is the OpenAPI document's server (one document, built once).
	for _, n := range []string{"alice", "bob"} {
		var doc struct{ Servers []struct{ URL string } }
		he.do(n, "GET", "/openapi.json", "", nil).json(t, &doc)
		if len(doc.Servers) != 1 || doc.Servers[0].URL != he.url(n) {
			t.Fatalf("%s's OpenAPI servers: %+v", n, doc.Servers)
		}
	}

	k, _ := client.GenerateKey("ES256")
	atAlice, atBob := he.org("alice", k), he.org("bob", k)
	tokA := he.grant("alice", atAlice, askNotes())
	page, err := atAlice.ReadCollection(ctx, tokA.AccessToken, "profile", 2, "")
	if err != nil || len(page.Records) != 2 || page.NextCursor == "" {
		t.Fatalf("alice's read: %+v %v", page, err)
	}
	recID := page.Records[0].ID
	// The grant, with a proof for bob's URL (the organization's own key).
	_, err = atBob.ReadCollection(ctx, tokA.AccessToken, "profile", 2, "")
	wantCode(t, err, "invalid_token")
	// A proof made for alice's URL, sent to bob with bob's own grant.
	tokB := he.grant("bob", atBob, askNotes())
	proof, _ := k.Proof("GET", he.url("alice")+"/v1/data/profile", tokB.AccessToken, time.Now())
	r := he.do("bob", "GET", "/v1/data/profile", "", nil, "Authorization", "DPoP "+tokB.AccessToken, "DPoP", proof)
	if r.status != http.StatusUnauthorized || r.errCode(t) != "invalid_dpop_proof" {
		t.Fatalf("alice's proof at bob: %d %s", r.status, r.body)
	}
	// Alice's cursor and record id mean nothing at bob.
	_, err = atBob.ReadCollection(ctx, tokB.AccessToken, "profile", 2, page.NextCursor)
	wantCode(t, err, "invalid_cursor")
	_, err = atBob.ReadRecord(ctx, tokB.AccessToken, "profile", recID)
	wantCode(t, err, "not_found")
	// And the same organization key has different pairwise identities.
	if tokA.GrantID == tokB.GrantID {
		t.Fatal("one grant id at two vaults")
	}
	// Alice's data is still hers.
	if _, err := atAlice.ReadRecord(ctx, tokA.AccessToken, "profile", recID); err != nil {
		t.Fatalf("alice's own read after bob's refusals: %v", err)
	}
}

// After a restart a vault is sealed: every route answers (never a 500),
// organizations hear 503 vault_sealed with Retry-After, the UI leads to the
// unlock form, and the owner's passphrase unseals it with everything in it.
func TestSealedVaultAnswersEveryRoute(t *testing.T) {
	he := newHostEnv(t, HostConfig{})
	ctx := t.Context()
	alice := he.signup("alice")
	he.do("alice", "POST", "/v1/owner/records/profile", alice, strings.NewReader(`{"name":"Ada"}`))
	k, _ := client.GenerateKey("EdDSA")
	o := he.org("alice", k)
	tok := he.grant("alice", o, askNotes())

	he.start() // the host restarts: nothing is unsealed
	if _, err := o.ReadCollection(ctx, tok.AccessToken, "profile", 10, ""); !client.IsCode(err, "vault_sealed") {
		t.Fatalf("read at a sealed vault: %v", err)
	}
	r := he.do("alice", "GET", "/v1/data/profile", "", nil)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || r.errCode(t) != "vault_sealed" {
		t.Fatalf("sealed: %d %v %s", r.status, r.header, r.body)
	}

	// Every route of a vault, with its variables filled in.
	s := &server{log: he.h.Logger(), pages: templates()}
	router := s.routes(Config{})
	n := 0
	router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return nil
		}
		methods, _ := route.GetMethods()
		path := strings.NewReplacer("{collection}", "profile", "{id}", "x", "{hash}", "x").Replace(tpl)
		for _, m := range methods {
			if m == "HEAD" {
				continue
			}
			r := he.do("alice", m, path, "", strings.NewReader("{}"), "Content-Type", "application/json", "Origin", he.url("alice"))
			n++
			switch {
			case r.status >= 500 && r.status != http.StatusServiceUnavailable:
				t.Errorf("%s %s: %d %s", m, path, r.status, r.body)
			case r.status == http.StatusServiceUnavailable:
				if r.errCode(t) != "vault_sealed" || r.header.Get("Retry-After") == "" {
					t.Errorf("%s %s: 503 without vault_sealed and Retry-After: %v %s", m, path, r.header, r.body)
				}
			case m == "GET" && strings.HasPrefix(path, "/ui/") && path != "/ui/login" && !strings.HasPrefix(path, "/ui/static/"):
				if r.status != http.StatusSeeOther || r.header.Get("Location") != "/ui/login" {
					t.Errorf("%s %s: %d, want a redirect to the unlock form", m, path, r.status)
				}
			}
		}
		return nil
	})
	if n < 80 {
		t.Fatalf("walked only %d routes", n)
	}
	if r := he.do("alice", "GET", "/readyz", "", nil); r.status != http.StatusServiceUnavailable {
		t.Fatalf("readyz of a sealed vault: %d", r.status)
	}

	// A wrong passphrase stays sealed; the right one unseals.
	r = he.do("alice", "POST", "/v1/owner/session", "", strings.NewReader(`{"passphrase":"not the passphrase"}`))
	if r.status != http.StatusUnauthorized || r.errCode(t) != "invalid_passphrase" {
		t.Fatalf("wrong passphrase: %d %s", r.status, r.body)
	}
	r = he.do("alice", "POST", "/v1/owner/session", "", strings.NewReader(fmt.Sprintf(`{"passphrase":%q}`, testPass)))
	if r.status != http.StatusOK {
		t.Fatalf("unseal: %d %s", r.status, r.body)
	}
	var login loginResponse
	r.json(t, &login)
	if r := he.do("alice", "GET", "/v1/owner/records/profile", login.Token, nil); r.status != http.StatusOK || !strings.Contains(string(r.body), "Ada") {
		t.Fatalf("records after unseal: %d %s", r.status, r.body)
	}
	if _, err := o.ReadCollection(ctx, tok.AccessToken, "profile", 10, ""); err != nil {
		t.Fatalf("the grant after unseal: %v", err)
	}
	// The UI's login unseals too (bob, still sealed).
	he.signup("bob")
	he.start()
	form := url.Values{"passphrase": {testPass}}
	r = he.do("bob", "POST", "/ui/login", "", strings.NewReader(form.Encode()), "Content-Type", "application/x-www-form-urlencoded", "Origin", he.url("bob"))
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/ui/" || len(r.header.Values("Set-Cookie")) < 2 {
		t.Fatalf("UI unseal: %d %v %s", r.status, r.header, r.body)
	}
}

// The apex: sign-up rules, and hosts this server does not serve.
func TestHostSignupRules(t *testing.T) {
	he := newHostEnv(t, HostConfig{SignupsPerHour: 2})
	post := func(body string) resp {
		return he.do("", "POST", "/v1/host/vaults", "", strings.NewReader(body))
	}
	for _, c := range []struct {
		body, code string
		status     int
	}{
		{`{"name":"alice","passphrase":"` + testPass + `"}`, "invalid_invite", 403},
		{`{"name":"alice","passphrase":"` + testPass + `","invite":"nope"}`, "invalid_invite", 403},
		{`{"name":"alice","passphrase":"` + testPass + `","invite":"nope"}`, "rate_limited", 429}, // 2 an hour per address
	} {
		r := post(c.body)
		if r.status != c.status || r.errCode(t) != c.code {
			t.Fatalf("%s: %d %s, want %d %s", c.body, r.status, r.body, c.status, c.code)
		}
	}
	if r := post(`{"name":`); r.status != 400 || r.errCode(t) != "invalid_json" {
		t.Fatalf("bad JSON: %d %s", r.status, r.body)
	}
	if r := he.do("nobody", "GET", "/v1/terms", "", nil); r.status != 404 || r.errCode(t) != "no_such_vault" {
		t.Fatalf("unknown vault: %d %s", r.status, r.body)
	}
	req, _ := http.NewRequest("GET", he.url("alice")+"/healthz", nil)
	req.Host = "alice.elsewhere.test:" + he.port
	res, err := he.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("another domain: %d", res.StatusCode)
	}
	page := he.do("", "GET", "/", "", nil)
	if page.status != 200 || !strings.Contains(string(page.body), "Invitation code") || page.header.Get("Content-Security-Policy") == "" {
		t.Fatalf("sign-up page: %d %s", page.status, page.body)
	}

	closed := newHostEnv(t, HostConfig{Signup: "closed"})
	r := closed.do("", "POST", "/v1/host/vaults", "", strings.NewReader(`{"name":"alice","passphrase":"`+testPass+`"}`))
	if r.status != 403 || r.errCode(t) != "signup_closed" {
		t.Fatalf("closed sign-up: %d %s", r.status, r.body)
	}
	open := newHostEnv(t, HostConfig{Signup: "open"})
	r = open.do("", "POST", "/v1/host/vaults", "", strings.NewReader(`{"name":"alice","passphrase":"`+testPass+`"}`))
	if r.status != 201 {
		t.Fatalf("open sign-up: %d %s", r.status, r.body)
	}
	var out map[string]any
	json.Unmarshal(r.body, &out)
	if _, ok := out["passphrase"]; ok {
		t.Fatal("the sign-up answer echoes the passphrase")
	}
}

// A flood at one vault is refused by that vault's own limits, not by its
// neighbours': bob keeps answering while alice's limit refuses.
func TestHostFloodAtOneVaultLeavesOthers(t *testing.T) {
	he := newHostEnv(t, HostConfig{Config: Config{RatePerAddress: 5}, Signup: "open"})
	he.signup("alice")
	he.signup("bob")
	limited := 0
	for i := 0; i < 40; i++ {
		if he.do("alice", "GET", "/v1/terms", "", nil).status == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("alice's limit never refused")
	}
	for i := 0; i < 8; i++ {
		if r := he.do("bob", "GET", "/v1/terms", "", nil); r.status != http.StatusOK {
			t.Fatalf("bob during alice's flood: %d %s", r.status, r.body)
		}
	}
}

// Passphrase attempts from one address are bounded across all vaults: each
// costs the host an Argon2id derivation.
func TestHostBoundsLoginsAcrossVaults(t *testing.T) {
	he := newHostEnv(t, HostConfig{Signup: "open", SignupsPerHour: 100})
	// Enough vaults that no vault sees more than its three free failures:
	// whatever is throttled, the host's bound throttled.
	var names []string
	for i := 0; i < 9; i++ {
		names = append(names, fmt.Sprintf("vault%d", i))
		he.signup(names[i])
	}
	he.start() // sealed: every attempt is an unseal
	throttled := 0
	for i := 0; i < loginsPerMinute+5; i++ {
		r := he.do(names[i%len(names)], "POST", "/v1/owner/session", "", strings.NewReader(`{"passphrase":"wrong passphrase"}`))
		switch {
		case r.status == http.StatusTooManyRequests && r.errCode(t) == "slow_down" && r.header.Get("Retry-After") != "":
			throttled++
		case r.status != http.StatusUnauthorized:
			t.Fatalf("attempt %d: %d %s", i, r.status, r.body)
		}
	}
	if throttled == 0 {
		t.Fatalf("none of %d attempts from one address throttled", loginsPerMinute+5)
	}
}

// The owner leaves: with the token and the passphrase again, the vault's
// files go and the name is free; a token alone, or another vault's token,
// erases nothing.
func TestOwnerErasesVault(t *testing.T) {
	he := newHostEnv(t, HostConfig{Signup: "open"})
	alice, bob := he.signup("alice"), he.signup("bob")
	body := func(p string) io.Reader { return strings.NewReader(fmt.Sprintf(`{"passphrase":%q}`, p)) }
	for _, c := range []struct {
		token, pass, code string
		status            int
	}{
		{"", testPass, "invalid_token", 401},
		{bob, testPass, "invalid_token", 401},
		{alice, "not the passphrase", "invalid_passphrase", 401},
	} {
		r := he.do("alice", "DELETE", "/v1/owner/vault", c.token, body(c.pass))
		if r.status != c.status || r.errCode(t) != c.code {
			t.Fatalf("erase with %q/%q: %d %s", c.token, c.pass, r.status, r.body)
		}
	}
	if !he.h.Exists("alice") {
		t.Fatal("a refused erase erased")
	}
	r := he.do("alice", "DELETE", "/v1/owner/vault", alice, body(testPass))
	if r.status != 200 {
		t.Fatalf("erase: %d %s", r.status, r.body)
	}
	if he.h.Exists("alice") {
		t.Fatal("the vault is still there")
	}
	if r := he.do("alice", "GET", "/v1/terms", "", nil); r.status != 404 || r.errCode(t) != "no_such_vault" {
		t.Fatalf("after erase: %d %s", r.status, r.body)
	}
	if r := he.do("bob", "GET", "/v1/owner/records/profile", bob, nil); r.status != 200 {
		t.Fatalf("bob after alice left: %d %s", r.status, r.body)
	}
}
