package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

// orgSite is an organization's web site on loopback: it receives notices
// at /notices and serves whatever challenge body the test sets.
type orgSite struct {
	srv *httptest.Server

	mu        sync.Mutex
	notices   []string
	challenge func(w http.ResponseWriter, r *http.Request)
	noticeFn  func(w http.ResponseWriter, r *http.Request)
}

func newOrgSite(t *testing.T) *orgSite {
	s := &orgSite{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		ch, nf := s.challenge, s.noticeFn
		s.mu.Unlock()
		switch r.URL.Path {
		case "/notices":
			if nf != nil {
				nf(w, r)
				return
			}
			b, _ := io.ReadAll(r.Body)
			s.mu.Lock()
			s.notices = append(s.notices, string(b))
			s.mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		case "/.well-known/pdvault-challenge":
			if ch == nil {
				http.NotFound(w, r)
				return
			}
			ch(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *orgSite) set(f func(w http.ResponseWriter, r *http.Request)) {
	s.mu.Lock()
	s.challenge = f
	s.mu.Unlock()
}

func loopbackEnv(t *testing.T, timeout time.Duration) *testEnv {
	return newEnvWith(t, vault.Options{
		AllowLoopbackHTTP: true, Courier: NewCourier(true, timeout), OutboundTimeout: timeout,
		NoticeBaseDelay: time.Millisecond, NoticeMaxAttempts: 3,
	})
}

// siteRequest asks with the site as client_uri and callback.
func siteRequest(site *orgSite) client.AccessRequest {
	req := askProfile("name", "email")
	req.ClientURI = site.srv.URL
	req.CallbackURI = site.srv.URL + "/notices"
	return req
}

// The end of a relationship: revoke, a signed notice at the callback, a
// deletion receipt, and the relationship showing it all.
func TestRelationshipEndToEnd(t *testing.T) {
	e := loopbackEnv(t, 2*time.Second)
	ctx := t.Context()
	e.record("profile", `{"name":"Ada","email":"a@x"}`)
	e.record("transactions", `{"amount":1}`)
	site := newOrgSite(t)
	o := e.org("EdDSA")
	tok := e.grantFor(o, siteRequest(site), vault.Approval{})
	if _, err := o.ReadCollection(ctx, tok.AccessToken, "profile", 0, ""); err != nil {
		t.Fatal(err)
	}

	// A receipt before the grant ends is refused.
	_, err := o.SendReceipt(ctx, client.ReceiptClaims{GrantID: tok.GrantID, Deleted: []string{"profile"}})
	wantCode(t, err, "grant_active")

	r := e.do("POST", "/v1/owner/grants/"+tok.GrantID+"/revoke", e.token, nil)
	if r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	n, err := e.v.DeliverNotices(ctx)
	if err != nil || n != 1 {
		t.Fatalf("deliver: %d %v", n, err)
	}
	site.mu.Lock()
	got := append([]string(nil), site.notices...)
	site.mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("notices at the callback: %d", len(got))
	}
	jwks, _ := o.JWKS(ctx)
	notice, err := client.VerifyNotice(got[0], jwks, e.srv.URL, o.Key().Thumbprint())
	if err != nil || notice.Event != "grant.revoked" || notice.GrantID != tok.GrantID || notice.Audience != o.Key().Thumbprint() || notice.DeletionDeadline == 0 {
		t.Fatalf("notice: %+v %v", notice, err)
	}
	// 30 days: the default terms' max_retention, as the request named none.
	if d := time.Unix(notice.DeletionDeadline, 0).Sub(time.Unix(notice.IssuedAt, 0)); d != 30*24*time.Hour {
		t.Fatalf("deadline %v after the notice", d)
	}
	// A notice meant for another organization, or from another vault, is refused.
	if _, err := client.VerifyNotice(got[0], jwks, e.srv.URL, e.org("EdDSA").Key().Thumbprint()); !errors.Is(err, policy.ErrGrantAudience) {
		t.Fatalf("notice for another organization: %v", err)
	}
	if _, err := client.VerifyNotice(got[0], jwks, "https://other-vault.example", o.Key().Thumbprint()); !errors.Is(err, policy.ErrGrantIssuer) {
		t.Fatalf("notice from another vault: %v", err)
	}

	rel := e.relationship(o.Key().Thumbprint())
	if rel.Deletion != "due" || len(rel.Notices) != 1 || rel.Notices[0].Status != "delivered" || rel.Reads != 1 || rel.Grants[0].EndedBy != "owner" {
		t.Fatalf("relationship after revoke: %+v", rel)
	}

	// A partial receipt, then a complete one.
	res, err := o.SendReceipt(ctx, client.ReceiptClaims{GrantID: tok.GrantID, Deleted: []string{"transactions"}, Statement: "deleted from CRM"})
	if err != nil || res.Complete || len(res.Missing) != 1 || res.Missing[0] != "profile" {
		t.Fatalf("partial receipt: %+v %v", res, err)
	}
	if rel := e.relationship(o.Key().Thumbprint()); rel.Deletion != "due" {
		t.Fatalf("a partial receipt settled the deletion: %s", rel.Deletion)
	}
	res, err = o.SendReceipt(ctx, client.ReceiptClaims{GrantID: tok.GrantID, Deleted: []string{"profile"}})
	if err != nil || !res.Complete {
		t.Fatalf("receipt: %+v %v", res, err)
	}
	rel = e.relationship(o.Key().Thumbprint())
	if rel.Deletion != "received" || len(rel.Receipts) != 2 || rel.Grants[0].Deletion != "received" {
		t.Fatalf("relationship after receipt: %+v", rel)
	}
	r = e.do("GET", "/v1/owner/relationships", e.token, nil)
	if r.status != 200 || !strings.Contains(string(r.body), o.Key().Thumbprint()) {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	rep, _ := e.v.VerifyAudit(ctx)
	if !rep.OK {
		t.Fatalf("audit: %+v", rep)
	}
}

func (e *testEnv) relationship(id string) vault.Relationship {
	e.t.Helper()
	rel, err := e.v.GetRelationship(e.t.Context(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return rel
}

func TestReceiptBadInput(t *testing.T) {
	e := loopbackEnv(t, time.Second)
	ctx := t.Context()
	e.record("profile", `{"name":"Ada"}`)
	acme, other := e.org("EdDSA"), e.org("EdDSA")
	tok := e.grantFor(acme, askProfile("name"), vault.Approval{})
	otherTok := e.grantFor(other, askProfile("name"), vault.Approval{})
	if err := acme.Release(ctx, tok.AccessToken); err != nil {
		t.Fatal(err)
	}
	e.v.Revoke(ctx, otherTok.GrantID)

	good, _ := acme.SignReceipt(client.ReceiptClaims{GrantID: tok.GrantID, Deleted: []string{"profile"}})
	parts := strings.Split(good, ".")
	forgedClaims, _ := other.SignReceipt(client.ReceiptClaims{GrantID: tok.GrantID, Deleted: []string{"profile"}})
	for _, tc := range []struct {
		name, signed, code string
		status             int
	}{
		{"forged signature", parts[0] + "." + parts[1] + "." + flipB64(parts[2]), "invalid_receipt", 400},
		{"claims from another signer", parts[0] + "." + strings.Split(forgedClaims, ".")[1] + "." + parts[2], "invalid_receipt", 400},
		{"not a JWS", "hello", "invalid_receipt", 400},
		{"a DPoP proof", mustProof(t, acme.Key(), e.srv.URL), "invalid_receipt", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/v1/receipts", "", strings.NewReader(tc.signed))
			if r.status != tc.status || r.errCode(t) != tc.code {
				t.Fatalf("%d %s", r.status, r.body)
			}
		})
	}
	t.Run("another organization's grant", func(t *testing.T) {
		_, err := acme.SendReceipt(ctx, client.ReceiptClaims{GrantID: otherTok.GrantID, Deleted: []string{"profile"}})
		wantCode(t, err, "not_found")
	})
	t.Run("unknown grant", func(t *testing.T) {
		_, err := acme.SendReceipt(ctx, client.ReceiptClaims{GrantID: "aaaaaaaaaaaaaaaaaaaaaaaaaa", Deleted: []string{"profile"}})
		wantCode(t, err, "not_found")
	})
	t.Run("replayed", func(t *testing.T) {
		if _, err := acme.SendSignedReceipt(ctx, good); err != nil {
			t.Fatal(err)
		}
		_, err := acme.SendSignedReceipt(ctx, good)
		wantCode(t, err, "replayed")
	})
	t.Run("missing claims", func(t *testing.T) {
		_, err := acme.SendReceipt(ctx, client.ReceiptClaims{GrantID: tok.GrantID})
		wantCode(t, err, "invalid_receipt")
	})
	if rel := e.relationship(acme.Key().Thumbprint()); len(rel.Receipts) != 1 || rel.Grants[0].EndedBy != "organization" {
		t.Fatalf("bad receipts changed the relationship: %+v", rel.Receipts)
	}
}

func mustProof(t *testing.T, k *client.Key, base string) string {
	p, err := k.Proof("POST", base+"/v1/receipts", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func flipB64(s string) string {
	b := []byte(s)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}

func TestDomainVerification(t *testing.T) {
	e := loopbackEnv(t, 300*time.Millisecond)
	ctx := t.Context()
	site := newOrgSite(t)
	o := e.org("EdDSA")
	if _, err := o.StartVerification(ctx); !client.IsCode(err, "unknown_organization") {
		t.Fatalf("verification before any request: %v", err)
	}
	if _, err := o.Request(ctx, siteRequest(site)); err != nil {
		t.Fatal(err)
	}
	ch, err := o.StartVerification(ctx)
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(site.srv.URL, "http://")
	if ch.Domain != host || ch.URL != site.srv.URL+"/.well-known/pdvault-challenge" || !strings.HasPrefix(ch.Challenge, "pdvault-verify=") {
		t.Fatalf("challenge %+v", ch)
	}
	relID := o.Key().Thumbprint()
	for _, tc := range []struct {
		name  string
		serve func(w http.ResponseWriter, r *http.Request)
		want  string
	}{
		{"not published", nil, "answered HTTP 404"},
		{"wrong content", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "pdvault-verify=somethingelse\n") }, "challenge was not found"},
		{"oversized", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, strings.Repeat("x", 5000)+"\n"+ch.Challenge+"\n")
		}, "larger than 4096 bytes"},
		{"slow", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
		}, "timed out"},
		{"redirect to another host", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://localhost:1/x", http.StatusFound)
		}, "redirected to another host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			site.set(tc.serve)
			start := time.Now()
			r := e.do("POST", "/v1/owner/relationships/"+relID+"/verify", e.token, nil)
			if r.status != 422 || r.errCode(t) != "verification_failed" || !strings.Contains(string(r.body), tc.want) {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("the check took %v", time.Since(start))
			}
		})
	}
	site.set(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "other-vault-code\n"+ch.Challenge+"\n")
	})
	domain, err := o.CheckVerification(ctx)
	if err != nil || domain != host {
		t.Fatalf("verify: %q %v", domain, err)
	}
	rel := e.relationship(relID)
	if rel.VerifiedDomain != host || rel.VerifiedAt == nil {
		t.Fatalf("relationship: %+v", rel)
	}
	// The challenge is used up.
	r := e.do("POST", "/v1/owner/relationships/"+relID+"/verify", e.token, nil)
	if r.status != 409 || r.errCode(t) != "no_challenge" {
		t.Fatalf("second check: %d %s", r.status, r.body)
	}
}

// With loopback not allowed, a loopback domain is never fetched.
func TestVerificationRefusesLoopbackWhenNotAllowed(t *testing.T) {
	fetched := false
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fetched = true }))
	defer site.Close()
	e := newEnvWith(t, vault.Options{Courier: NewCourier(false, time.Second)})
	o := e.org("EdDSA")
	req := askProfile("name")
	req.ClientURI = site.URL
	if _, err := o.Request(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if _, err := o.StartVerification(t.Context()); err != nil {
		t.Fatal(err)
	}
	r := e.do("POST", "/v1/owner/relationships/"+o.Key().Thumbprint()+"/verify", e.token, nil)
	if r.status != 422 || !strings.Contains(string(r.body), "not a public https host") || fetched {
		t.Fatalf("%d %s fetched=%v", r.status, r.body, fetched)
	}
}

func TestCallbackAddressesRefused(t *testing.T) {
	e := newEnvWith(t, vault.Options{Courier: NewCourier(false, time.Second)})
	o := e.org("EdDSA")
	for _, cb := range []string{"http://127.0.0.1:9/cb", "https://localhost/cb", "https://10.1.2.3/cb", "https://192.168.1.1/cb", "https://[::1]/cb", "https://169.254.169.254/latest"} {
		req := askProfile("name")
		req.CallbackURI = cb
		_, err := o.Request(t.Context(), req)
		var ce *client.Error
		if !errorsAs(err, &ce) || ce.Code != "invalid_request_object" || ce.Status != 400 || len(ce.Reasons) != 1 || !strings.HasPrefix(ce.Reasons[0], "callback_uri:") {
			t.Errorf("callback %s: %v", cb, err)
		}
	}
	if rp, _ := e.v.ListRequests(t.Context(), "", vault.PageQuery{}); len(rp.Requests) != 0 {
		t.Fatalf("refused requests were stored: %d", len(rp.Requests))
	}
}

// A callback that never answers costs one timeout per attempt in the
// background loop, is marked failed after the last attempt, and never
// holds up the vault.
func TestCallbackThatNeverAnswers(t *testing.T) {
	e := loopbackEnv(t, 200*time.Millisecond)
	ctx := t.Context()
	e.record("profile", `{"name":"Ada"}`)
	site := newOrgSite(t)
	release := make(chan struct{})
	defer close(release)
	site.mu.Lock()
	site.noticeFn = func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	site.mu.Unlock()
	o := e.org("EdDSA")
	tok := e.grantFor(o, siteRequest(site), vault.Approval{})
	tok2 := e.grantFor(o, siteRequest(site), vault.Approval{})
	if _, err := e.v.Revoke(ctx, tok.GrantID); err != nil {
		t.Fatal(err)
	}
	loop, stop := contextWithCancel(ctx)
	done := make(chan struct{})
	go func() { e.v.RunNotices(loop, 10*time.Millisecond); close(done) }()

	// Meanwhile the vault serves as usual.
	start := time.Now()
	if _, err := o.ReadCollection(ctx, tok2.AccessToken, "profile", 0, ""); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 150*time.Millisecond {
		t.Fatalf("a read waited %v behind the hanging callback", time.Since(start))
	}
	deadline := time.Now().Add(5 * time.Second)
	var rel vault.Relationship
	for time.Now().Before(deadline) {
		rel = e.relationship(o.Key().Thumbprint())
		if len(rel.Notices) == 1 && rel.Notices[0].Status == "failed" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	<-done
	if len(rel.Notices) != 1 || rel.Notices[0].Status != "failed" || rel.Notices[0].Attempts != 3 || rel.Notices[0].LastError != "timed out" {
		t.Fatalf("notice: %+v", rel.Notices)
	}
}

func TestKeyRotation(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.record("profile", `{"name":"Ada"}`)
	o := e.org("EdDSA")
	old := o.Key()
	tok := e.grantFor(o, askProfile("name"), vault.Approval{})
	next, _ := client.GenerateKey("ES256")

	// A stranger cannot link a key, and a link must be proven by the new key.
	stranger := e.org("EdDSA")
	if err := stranger.LinkKey(ctx, next); !client.IsCode(err, "unknown_organization") {
		t.Fatalf("stranger: %v", err)
	}
	if err := o.LinkKey(ctx, next); err != nil {
		t.Fatal(err)
	}
	if o.Key() != next {
		t.Fatal("client did not switch keys")
	}
	// The new key's requests join the same relationship.
	if _, err := o.Request(ctx, askProfile("name")); err != nil {
		t.Fatal(err)
	}
	rel := e.relationship(old.Thumbprint())
	if len(rel.Keys) != 2 || !rel.Keys[1].Rotated || rel.Keys[1].ClientID != next.Thumbprint() || len(rel.Requests) != 2 {
		t.Fatalf("relationship after rotation: keys %+v, %d requests", rel.Keys, len(rel.Requests))
	}
	if rp, _ := e.v.ListRelationships(ctx, vault.PageQuery{}); len(rp.Relationships) != 1 {
		t.Fatalf("rotation made a second relationship: %d", len(rp.Relationships))
	}
	// A key cannot be linked twice.
	back, _ := client.NewOrg(e.srv.URL, old, nil)
	if err := back.LinkKey(ctx, next); !client.IsCode(err, "key_in_use") {
		t.Fatalf("relink: %v", err)
	}
	// Old grants stay bound to the old key.
	oldOrg, _ := client.NewOrg(e.srv.URL, old, nil)
	if _, err := oldOrg.ReadCollection(ctx, tok.AccessToken, "profile", 0, ""); err != nil {
		t.Fatalf("old grant with old key: %v", err)
	}
	// A statement whose proof comes from another key than it names.
	third, _ := client.GenerateKey("EdDSA")
	stmt, _ := next.Sign("pdvault-key-link+jwt", map[string]any{"new_jkt": third.Thumbprint(), "iat": time.Now().Unix(), "jti": "x1"})
	p, _ := old.Proof("POST", e.srv.URL+"/v1/keys", "", time.Now())
	r := e.do("POST", "/v1/keys", "", strings.NewReader(stmt), "DPoP", p)
	if r.status != 400 || r.errCode(t) != "invalid_key_link" {
		t.Fatalf("mismatched proof: %d %s", r.status, r.body)
	}
}

func TestTermsChangeAndReaccept(t *testing.T) {
	e := loopbackEnv(t, time.Second)
	ctx := t.Context()
	site := newOrgSite(t)
	o := e.org("EdDSA")
	e.grantFor(o, siteRequest(site), vault.Approval{})
	relID := o.Key().Thumbprint()
	if rel := e.relationship(relID); !rel.OnCurrentTerms {
		t.Fatal("fresh relationship not on current terms")
	}
	nt := e.v.CurrentTerms().Terms
	nt.Text += " v2"
	if _, err := e.v.SetTerms(ctx, mustJSON(t, nt)); err != nil {
		t.Fatal(err)
	}
	if rel := e.relationship(relID); rel.OnCurrentTerms {
		t.Fatal("relationship still on current terms after a change")
	}
	r := e.do("POST", "/v1/owner/relationships/"+relID+"/reaccept", e.token, nil)
	if r.status != 202 {
		t.Fatalf("reaccept: %d %s", r.status, r.body)
	}
	notice, err := e.deliverOne(site, o)
	if err != nil || notice.Event != "terms.changed" || notice.TermsHash != e.v.CurrentTerms().Hash {
		t.Fatalf("notice %+v %v", notice, err)
	}
	// The organization re-accepts by asking again under the new terms.
	if _, err := o.Request(ctx, siteRequest(site)); err != nil {
		t.Fatal(err)
	}
	if rel := e.relationship(relID); !rel.OnCurrentTerms || len(rel.TermsHashes) != 2 {
		t.Fatalf("after re-accepting: %+v", rel.TermsHashes)
	}
	// A relationship without a callback cannot be notified.
	o2 := e.org("EdDSA")
	o2.Request(ctx, askProfile("name"))
	if r := e.do("POST", "/v1/owner/relationships/"+o2.Key().Thumbprint()+"/reaccept", e.token, nil); r.status != 409 || r.errCode(t) != "no_callback" {
		t.Fatalf("no callback: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/owner/relationships/nope", e.token, nil); r.status != 404 {
		t.Fatalf("unknown relationship: %d", r.status)
	}
}

// deliverOne delivers the one queued notice to site and verifies it as
// organization o would.
func (e *testEnv) deliverOne(site *orgSite, o *client.Org) (*client.Notice, error) {
	e.t.Helper()
	ctx := e.t.Context()
	if n, err := e.v.DeliverNotices(ctx); n != 1 || err != nil {
		e.t.Fatalf("deliver: %d %v", n, err)
	}
	jwks, _ := o.JWKS(ctx)
	site.mu.Lock()
	defer site.mu.Unlock()
	return client.VerifyNotice(site.notices[0], jwks, e.srv.URL, o.Key().Thumbprint())
}

func contextWithCancel(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithCancel(ctx)
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// An owner moving the vault to another server tells every organization:
// a signed vault.moved notice at each callback, naming the new address;
// organizations without a callback are listed; bad addresses are refused
// and change nothing.
func TestAnnounceMove(t *testing.T) {
	e := loopbackEnv(t, time.Second)
	ctx := t.Context()
	site := newOrgSite(t)
	o := e.org("EdDSA")
	e.grantFor(o, siteRequest(site), vault.Approval{})
	o2 := e.org("EdDSA")
	o2.Request(ctx, askProfile("name")) // no callback
	for _, bad := range []string{"", "http://vault.example.org", "https://alice.example.org/vault", "https://a.example?x=1", e.srv.URL, "ftp://x"} {
		r := e.do("POST", "/v1/owner/move", e.token, strings.NewReader(fmt.Sprintf(`{"location":%q}`, bad)))
		if r.status != 400 || r.errCode(t) != "invalid_location" {
			t.Fatalf("location %q: %d %s", bad, r.status, r.body)
		}
	}
	if n, _ := e.v.DeliverNotices(ctx); n != 0 {
		t.Fatalf("a refused move queued %d notices", n)
	}
	if r := e.do("POST", "/v1/owner/move", "", strings.NewReader(`{"location":"https://alice.example.org"}`)); r.status != 401 {
		t.Fatalf("move without the owner: %d", r.status)
	}
	r := e.do("POST", "/v1/owner/move", e.token, strings.NewReader(`{"location":"https://alice.example.org/"}`))
	if r.status != 202 {
		t.Fatalf("move: %d %s", r.status, r.body)
	}
	var res vault.MoveResult
	r.json(t, &res)
	if res.Location != "https://alice.example.org" || len(res.Notices) != 1 || len(res.NoCallback) != 1 || res.NoCallback[0] != o2.Key().Thumbprint() {
		t.Fatalf("move result %+v", res)
	}
	notice, err := e.deliverOne(site, o)
	if err != nil || notice.Event != "vault.moved" || notice.Location != "https://alice.example.org" {
		t.Fatalf("notice %+v %v", notice, err)
	}
	page, err := e.v.ListAudit(ctx, 5, "")
	if err != nil || page.Entries[1].Event != "vault.moved" || page.Entries[0].Event != "notice.delivered" {
		t.Fatalf("audit: %+v %v", page.Entries, err)
	}
}

// After the owner leaves for another address (export, import there), an
// organization that follows the moved notice reads at the new address with
// the grant it holds: the vault recorded the old issuer as its own. The
// new vault still decides: a revocation there ends the old grant.
func TestGrantFollowsTheVault(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	o := e.org("EdDSA")
	e.record("profile", `{"name":"Ada","email":"ada@example.org"}`)
	tok := e.grantFor(o, askProfile("name"), vault.Approval{})
	if _, err := o.ReadCollection(ctx, tok.AccessToken, "profile", 10, ""); err != nil {
		t.Fatal(err)
	}
	var exp bytes.Buffer
	if _, err := e.v.Export(ctx, &exp); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "moved")
	if _, err := vault.Import(ctx, &exp, dir, []byte(testPass), vault.Options{}); err != nil {
		t.Fatal(err)
	}
	v2, err := vault.Open(ctx, dir, []byte(testPass), vault.Options{RatePerOrg: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	e2 := newEnvFor(t, v2)
	if e2.srv.URL == e.srv.URL {
		t.Fatal("the new address is the old one")
	}
	moved, err := client.NewOrg(e2.srv.URL, o.Key(), nil)
	if err != nil {
		t.Fatal(err)
	}
	page, err := moved.ReadCollection(ctx, tok.AccessToken, "profile", 10, "")
	if err != nil || len(page.Records) != 1 || string(page.Records[0].Data["name"]) != `"Ada"` {
		t.Fatalf("read at the new address with the old grant: %+v %v", page, err)
	}
	if _, err := e2.v.Revoke(ctx, tok.GrantID); err != nil {
		t.Fatal(err)
	}
	if _, err := moved.ReadCollection(ctx, tok.AccessToken, "profile", 10, ""); err == nil || !strings.Contains(err.Error(), "invalid_token") {
		t.Fatalf("read after revocation at the new address: %v", err)
	}
	// A vault that never was this one does not take the grant.
	e3 := newEnv(t)
	stranger, _ := client.NewOrg(e3.srv.URL, o.Key(), nil)
	if _, err := stranger.ReadCollection(ctx, tok.AccessToken, "profile", 10, ""); err == nil || !strings.Contains(err.Error(), "invalid_token") {
		t.Fatalf("another vault took the grant: %v", err)
	}
}
