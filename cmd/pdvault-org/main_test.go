package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pdvault/pdvault/api"
	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

type result struct {
	code           int
	stdout, stderr string
}

func runOrg(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(t.Context(), args, &out, &errb, func(k string) string { return env[k] })
	return result{code, out.String(), errb.String()}
}

// The organization's whole side against a real server: keygen, request,
// poll before and after the owner decides, read only what was granted,
// introspect, and a refused read after revocation.
func TestOrgToolAgainstVault(t *testing.T) {
	ctx := t.Context()
	v, err := vault.Create(ctx, filepath.Join(t.TempDir(), "v"), []byte("correct horse battery staple"), vault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	rec, _ := v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada","email":"a@x","phone":"1"}`))
	srv := httptest.NewServer(api.New(v, api.Config{}))
	defer srv.Close()
	v.SetIssuer(srv.URL)

	dir := t.TempDir()
	key := filepath.Join(dir, "key.json")
	env := map[string]string{"PDVAULT_ADDR": srv.URL, "PDVAULT_ORG_KEY": key}
	r := runOrg(t, env, "keygen", "--out", key)
	if r.code != 0 || !strings.Contains(r.stdout, "client_id") {
		t.Fatalf("keygen: %+v", r)
	}
	if fi, _ := os.Stat(key); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", fi.Mode())
	}
	if r := runOrg(t, env, "keygen", "--out", key); r.code != 1 {
		t.Fatalf("keygen overwrote a key: %+v", r)
	}
	if r := runOrg(t, env, "terms"); r.code != 0 || !strings.Contains(r.stdout, "terms_hash: "+v.CurrentTerms().Hash) {
		t.Fatalf("terms: %+v", r)
	}
	r = runOrg(t, env, "request", "--name", "Acme", "--url", "https://acme.example", "--purpose", "service_delivery",
		"--ask", "profile:name,email", "--duration", "7d")
	if r.code != 0 {
		t.Fatalf("request: %+v", r)
	}
	id := strings.TrimSpace(r.stdout)
	r = runOrg(t, env, "poll", id)
	if r.code != 1 || !strings.Contains(r.stderr, "authorization_pending") {
		t.Fatalf("poll before decision: %+v", r)
	}
	if _, err := v.Approve(ctx, id, vault.Approval{}); err != nil {
		t.Fatal(err)
	}
	grant := filepath.Join(dir, "grant.json")
	if r := runOrg(t, env, "poll", "--out", grant, id); r.code != 0 {
		t.Fatalf("poll: %+v", r)
	}
	r = runOrg(t, env, "read", "--grant", grant, "profile")
	var list struct {
		Records []struct{ ID string }
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &list) != nil || len(list.Records) != 1 || list.Records[0].ID == rec.ID {
		t.Fatalf("read collection (ids are pairwise): %+v", r)
	}
	r = runOrg(t, env, "read", "--grant", grant, "profile", list.Records[0].ID)
	var got struct{ Data map[string]json.RawMessage }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &got) != nil || len(got.Data) != 2 || got.Data["phone"] != nil {
		t.Fatalf("read: %+v", r)
	}
	// A witness: with --anchors, read checks the log and keeps its head;
	// audit proves the read's own entry.
	anchors := t.TempDir()
	r = runOrg(t, env, "read", "--grant", grant, "profile", "--anchors", anchors)
	if r.code != 0 || !strings.Contains(r.stderr, "logged as audit entry") || !strings.Contains(r.stderr, "audit log: consistent") {
		t.Fatalf("read as a witness: %+v", r)
	}
	var seq string
	if _, after, ok := strings.Cut(r.stderr, "--prove "); ok {
		seq, _, _ = strings.Cut(after, ")")
	}
	r = runOrg(t, env, "audit", "--anchors", anchors, "--prove", seq)
	if r.code != 0 || !strings.Contains(r.stdout, "entry "+seq+" is in the log") || !strings.Contains(r.stdout, `"event":"data.read"`) {
		t.Fatalf("audit --prove: %+v", r)
	}
	if r := runOrg(t, env, "audit"); r.code != 2 || !strings.Contains(r.stderr, "--anchors DIR") {
		t.Fatalf("audit without anchors: %+v", r)
	}
	if r := runOrg(t, env, "introspect", "--grant", grant); r.code != 0 || !strings.Contains(r.stdout, `"active": true`) {
		t.Fatalf("introspect: %+v", r)
	}
	if r := runOrg(t, env, "receipt", "--grant", grant, "--deleted", "profile"); r.code != 1 || !strings.Contains(r.stderr, "grant_active (HTTP 409)") {
		t.Fatalf("receipt for an active grant: %+v", r)
	}
	if r := runOrg(t, env, "release", "--grant", grant); r.code != 0 {
		t.Fatalf("release: %+v", r)
	}
	r = runOrg(t, env, "read", "--grant", grant, "profile")
	if r.code != 1 || !strings.Contains(r.stderr, "invalid_token (HTTP 401): the grant has been revoked") {
		t.Fatalf("read after release: %+v", r)
	}
	if r := runOrg(t, env, "receipt", "--grant", grant, "--deleted", "profile", "--statement", "wiped"); r.code != 0 || !strings.Contains(r.stdout, `"complete": true`) {
		t.Fatalf("receipt: %+v", r)
	}
	next := filepath.Join(dir, "k2.json")
	if r := runOrg(t, env, "keygen", "--alg", "ES256", "--out", next); r.code != 0 {
		t.Fatalf("keygen: %+v", r)
	}
	r = runOrg(t, env, "rotate-key", "--new", next)
	if r.code != 0 || !strings.Contains(r.stdout, "Linked") {
		t.Fatalf("rotate-key: %+v", r)
	}
	if r := runOrg(t, map[string]string{"PDVAULT_ADDR": srv.URL, "PDVAULT_ORG_KEY": next}, "verify"); r.code != 0 || !strings.HasPrefix(r.stdout, "pdvault-verify=") {
		t.Fatalf("verify with the rotated-in key: %+v", r)
	}
	if r := runOrg(t, env, "request", "--name", "Acme"); r.code != 2 || !strings.Contains(r.stderr, "are required") {
		t.Fatalf("incomplete request: %+v", r)
	}
	if r := runOrg(t, env, "request", "--name", "A", "--url", "https://a.example", "--purpose", "advertising", "--ask", "profile:name"); r.code != 1 || !strings.Contains(r.stderr, "terms_violation (HTTP 422)") {
		t.Fatalf("non-compliant request: %+v", r)
	}
	if r := runOrg(t, env, "nope"); r.code != 2 {
		t.Fatalf("unknown command: %+v", r)
	}

	// Derived claims.
	v.CreateRecord(ctx, "profile", []byte(`{"birth_date":"1990-04-12"}`))
	r = runOrg(t, env, "request", "--name", "Bar", "--url", "https://bar.example", "--purpose", "identity_verification",
		"--claim", "profile:age_over:18", "--duration", "1h")
	if r.code != 0 {
		t.Fatalf("claims request: %+v", r)
	}
	cid := strings.TrimSpace(r.stdout)
	v.Approve(ctx, cid, vault.Approval{})
	cgrant := filepath.Join(dir, "claims.json")
	runOrg(t, env, "poll", "--out", cgrant, cid)
	r = runOrg(t, env, "claims", "--grant", cgrant)
	if r.code != 0 || !strings.Contains(r.stdout, `"age_over:18": true`) || strings.Contains(r.stdout, "1990") {
		t.Fatalf("claims: %+v", r)
	}

	// Intents and offers.
	oi, err := v.PublishIntent(ctx, policy.IntentInput{Title: "Looking for: a bicycle", Budget: &policy.Budget{Max: 500, Currency: "EUR"}})
	if err != nil {
		t.Fatal(err)
	}
	if r := runOrg(t, env, "intents"); r.code != 0 || !strings.Contains(r.stdout, oi.ID+"  Looking for: a bicycle (up to 500 EUR)") {
		t.Fatalf("intents: %+v", r)
	}
	r = runOrg(t, env, "offer", "--intent", oi.ID, "--text", "A bike", "--price", "450EUR", "--name", "Acme", "--url", "https://acme.example", "--ask", "profile:name")
	if r.code != 0 {
		t.Fatalf("offer: %+v", r)
	}
	offerID := strings.TrimSpace(r.stdout)
	if r := runOrg(t, env, "poll", offerID); r.code != 1 || !strings.Contains(r.stderr, "authorization_pending") {
		t.Fatalf("poll on an open offer: %+v", r)
	}
	if r := runOrg(t, env, "offer", "--intent", oi.ID, "--text", "x", "--price", "cheap", "--name", "A", "--url", "https://a.example", "--ask", "profile:name"); r.code != 2 {
		t.Fatalf("bad price: %+v", r)
	}
}

// listen receives the vault's signed notices and verifies them.
func TestListenReceivesNotices(t *testing.T) {
	ctx := t.Context()
	v, err := vault.Create(ctx, filepath.Join(t.TempDir(), "v"), []byte("correct horse battery staple"),
		vault.Options{AllowLoopbackHTTP: true, Courier: api.NewCourier(true, 2*time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	srv := httptest.NewServer(api.New(v, api.Config{}))
	defer srv.Close()
	v.SetIssuer(srv.URL)
	dir := t.TempDir()
	key := filepath.Join(dir, "key.json")
	env := map[string]string{"PDVAULT_ADDR": srv.URL, "PDVAULT_ORG_KEY": key}
	runOrg(t, env, "keygen", "--out", key)

	var out, errb syncBuffer
	c := &cli{stdout: &out, stderr: &errb, getenv: func(k string) string { return env[k] }}
	urlc := make(chan string, 1)
	c.listening = func(u string) { urlc <- u }
	lctx, stop := context.WithCancel(ctx)
	done := make(chan int, 1)
	go func() { done <- c.run(lctx, []string{"listen", "--addr", "127.0.0.1:0"}) }()
	site := <-urlc

	r := runOrg(t, env, "request", "--name", "Acme", "--url", "https://acme.example", "--purpose", "service_delivery",
		"--ask", "profile:name", "--callback", site+"/notices")
	if r.code != 0 {
		t.Fatalf("request: %+v", r)
	}
	id := strings.TrimSpace(r.stdout)
	v.Approve(ctx, id, vault.Approval{})
	if r := runOrg(t, env, "poll", "--out", filepath.Join(dir, "g.json"), id); r.code != 0 {
		t.Fatalf("poll: %+v", r)
	}
	gp, _ := v.ListGrants(ctx, vault.PageQuery{})
	if _, err := v.Revoke(ctx, gp.Grants[0].ID); err != nil {
		t.Fatal(err)
	}
	if n, err := v.DeliverNotices(ctx); n != 1 || err != nil {
		t.Fatalf("deliver: %d %v", n, err)
	}
	stop()
	if code := <-done; code != 0 {
		t.Fatalf("listen exited %d: %s", code, errb.String())
	}
	var n struct {
		Event   string `json:"event"`
		GrantID string `json:"grant_id"`
	}
	if json.Unmarshal([]byte(out.String()), &n) != nil || n.Event != "grant.revoked" || n.GrantID != gp.Grants[0].ID {
		t.Fatalf("listen printed %q", out.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Help shows a command's own synopsis and only the flags it takes; a bad
// flag is one error line and a hint, not the usage dumped first.
func TestHelpAndFlagErrors(t *testing.T) {
	r := runOrg(t, nil, "keygen", "-h")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "Usage: pdvault-org keygen --out FILE") || strings.Contains(r.stdout, "-vault") || strings.Contains(r.stdout, "-key ") {
		t.Fatalf("keygen -h: %+v", r)
	}
	r = runOrg(t, nil, "read", "-h")
	for _, want := range []string{"-grant", "-key", "-vault", "-anchors"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("read -h lacks %s: %s", want, r.stdout)
		}
	}
	r = runOrg(t, nil, "read", "--bogus")
	if r.code != 2 || r.stdout != "" || r.stderr != "pdvault-org: error: flag provided but not defined: -bogus\npdvault-org: hint: run \"pdvault-org read -h\"\n" {
		t.Fatalf("bad flag: %+v", r)
	}
	if r = runOrg(t, nil, "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "pdvault-org ") {
		t.Fatalf("version: %+v", r)
	}
}
