package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/vault"
)

func TestRateLimits(t *testing.T) {
	t.Run("per address", func(t *testing.T) {
		v, err := vault.Create(t.Context(), filepath.Join(t.TempDir(), "v"), []byte(testPass), vault.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		srv := httptest.NewServer(New(v, Config{RatePerAddress: 1})) // burst 2
		defer srv.Close()
		v.SetIssuer(srv.URL)
		var last *http.Response
		for range 3 {
			res, err := http.Get(srv.URL + "/v1/terms")
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			last = res
		}
		if last.StatusCode != http.StatusTooManyRequests || last.Header.Get("Retry-After") != "1" {
			t.Fatalf("third request: %d, Retry-After %q", last.StatusCode, last.Header.Get("Retry-After"))
		}
	})
	t.Run("per organization", func(t *testing.T) {
		e := newEnvWith(t, vault.Options{RatePerOrg: 1}) // burst 2
		ctx := t.Context()
		e.record("profile", `{"name":"Ada"}`)
		o := e.org("EdDSA")
		tk, _ := o.Request(ctx, askProfile("name"))
		e.v.Approve(ctx, tk.RequestID, vault.Approval{})
		tok, err := o.Poll(ctx, tk.RequestID) // the first proof
		if err != nil {
			t.Fatal(err)
		}
		if _, err := o.ReadCollection(ctx, tok.AccessToken, "profile", 0, ""); err != nil { // the second
			t.Fatal(err)
		}
		before, _ := e.v.ListAudit(ctx, 500, "")
		_, err = o.ReadCollection(ctx, tok.AccessToken, "profile", 0, "")
		var ce *client.Error
		if !errorsAs(err, &ce) || ce.Status != 429 || ce.Code != "rate_limited" || ce.RetryAfter <= 0 {
			t.Fatalf("third proof-authenticated request: %v", err)
		}
		after, _ := e.v.ListAudit(ctx, 500, "")
		if len(after.Entries) != len(before.Entries) {
			t.Fatal("a rate-limited request was written to the audit log")
		}
		// Another organization is not held back by the first's quota.
		if _, err := e.org("EdDSA").Request(ctx, askProfile("name")); err != nil {
			t.Fatalf("another organization: %v", err)
		}
	})
}

// Headers over the limit are refused by the server itself.
func TestHeaderLimit(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewUnstartedServer(New(e.v, Config{}))
	srv.Config = NewServer("", srv.Config.Handler, e.v.Logger())
	srv.Start()
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/v1/terms", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 100<<10))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("100 KiB header: %d", res.StatusCode)
	}
}

// Only the issuer's host (and hosts configured for the listen address) is
// answered: a page whose name was rebound to the vault's address cannot
// reach the owner API, whatever it sends.
func TestHostAllowList(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		host string
		want int
	}{
		{strings.TrimPrefix(e.srv.URL, "http://"), http.StatusOK},
		{"evil.example", http.StatusMisdirectedRequest},
		{"evil.example:80", http.StatusMisdirectedRequest},
		{"127.0.0.1.nip.example", http.StatusMisdirectedRequest},
	} {
		req, _ := http.NewRequest("GET", e.srv.URL+"/v1/owner/records/profile", nil)
		req.Host = c.host
		req.Header.Set("Authorization", "Bearer "+e.token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != c.want || (c.want != 200 && !strings.Contains(string(b), `"invalid_host"`)) {
			t.Errorf("Host %s: %d %s", c.host, res.StatusCode, b)
		}
	}
	// A configured extra host (serve adds its listen address) is answered.
	srv := httptest.NewServer(New(e.v, Config{RatePerAddress: -1, Hosts: []string{"vault.lan:8700"}}))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/v1/terms", nil)
	req.Host = "vault.lan:8700"
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Fatalf("configured host: %v %v", res.StatusCode, err)
	}
}
