package api

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/vault"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// An organization reaches the vault through a standard reverse proxy
// (net/http/httputil, X-Forwarded-*) that the vault trusts: its DPoP
// proofs name the proxy's URL, which is the issuer, and they pass. The
// vault's own address answers with a message naming the issuer instead
// of a mysterious invalid_dpop_proof.
func TestBehindTrustedProxy(t *testing.T) {
	e := newEnv(t)
	backend := httptest.NewServer(New(e.v, Config{RatePerAddress: -1, TrustedProxies: loopback}))
	defer backend.Close()
	target, _ := url.Parse(backend.URL)
	proxy := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.SetXForwarded()
	}})
	defer proxy.Close()
	e.v.SetIssuer(proxy.URL)
	e.record("profile", `{"name":"Ada","email":"ada@example.org"}`)

	k, _ := client.GenerateKey("ES256")
	o, err := client.NewOrg(proxy.URL, k, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok := e.grantFor(o, askProfile("name"), vault.Approval{})
	page, err := o.ReadCollection(t.Context(), tok.AccessToken, "profile", 10, "")
	if err != nil || len(page.Records) != 1 {
		t.Fatalf("read through the proxy: %+v %v", page, err)
	}

	// Straight to the vault's own address, past the proxy.
	direct, _ := client.NewOrg(backend.URL, k, nil)
	_, err = direct.ReadCollection(t.Context(), tok.AccessToken, "profile", 10, "")
	wantCode(t, err, "invalid_host")
	if !strings.Contains(err.Error(), "answers as "+proxy.URL) {
		t.Fatalf("the refusal does not name the issuer: %v", err)
	}
}

func TestForwardedHeaders(t *testing.T) {
	e := newEnv(t)
	e.v.SetIssuer("https://vault.example.org")
	h := New(e.v, Config{RatePerAddress: 1, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	call := func(peer string, hdr ...string) *httptest.ResponseRecorder {
		t.Helper()
		r := httptest.NewRequest("GET", "/v1/terms", nil)
		r.RemoteAddr = peer
		r.Host = "10.0.0.5:8700"
		for i := 0; i < len(hdr); i += 2 {
			r.Header.Add(hdr[i], hdr[i+1])
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	code := func(w *httptest.ResponseRecorder) string {
		return resp{status: w.Code, header: w.Header(), body: w.Body.Bytes()}.errCode(t)
	}

	// RFC 7239 from a trusted proxy: the origin is the issuer's; over
	// HTTPS, so HSTS is sent.
	w := call("10.0.0.2:4711", "Forwarded", `for=198.51.100.7;proto=https;host=vault.example.org`)
	if w.Code != 200 || w.Header().Get("Strict-Transport-Security") == "" {
		t.Fatalf("trusted Forwarded: %d %s %v", w.Code, w.Body, w.Header())
	}
	// The same client again: its own rate bucket (1/s, burst 2) is
	// counted, not the proxy's.
	call("10.0.0.2:4711", "Forwarded", `for=198.51.100.7;proto=https;host=vault.example.org`)
	if w := call("10.0.0.2:4711", "Forwarded", `for=198.51.100.7;proto=https;host=vault.example.org`); w.Code != 429 {
		t.Fatalf("the forwarded client's third request: %d", w.Code)
	}
	if w := call("10.0.0.2:4711", "Forwarded", `for="[2001:db8::1]:80";proto=https;host=vault.example.org`); w.Code != 200 {
		t.Fatalf("another client behind the same proxy: %d %s", w.Code, w.Body)
	}
	// A client cannot pick its rate bucket by writing an address the
	// proxy appends to: the nearest untrusted address counts.
	for i := range 3 {
		w := call("10.0.0.2:4711", "X-Forwarded-For", "203.0.113."+string(rune('1'+i))+", 192.0.2.9", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "vault.example.org")
		if i < 2 && w.Code != 200 || i == 2 && w.Code != 429 {
			t.Fatalf("X-Forwarded-For spoofed on the left, request %d: %d %s", i, w.Code, w.Body)
		}
	}

	// The proxy says plain HTTP while the issuer is HTTPS.
	w = call("10.0.0.3:1", "X-Forwarded-Proto", "http", "X-Forwarded-Host", "vault.example.org", "X-Forwarded-For", "198.51.100.8")
	if w.Code != http.StatusMisdirectedRequest || code(w) != "invalid_host" || !strings.Contains(w.Body.String(), "http://vault.example.org") {
		t.Fatalf("wrong scheme: %d %s", w.Code, w.Body)
	}
	// An untrusted peer's Forwarded header is ignored: its Host is the
	// vault's address, which is not the issuer's.
	w = call("192.0.2.50:1", "Forwarded", `for=198.51.100.9;proto=https;host=vault.example.org`)
	if w.Code != http.StatusMisdirectedRequest || code(w) != "invalid_host" || w.Header().Get("Strict-Transport-Security") != "" {
		t.Fatalf("untrusted Forwarded: %d %s", w.Code, w.Body)
	}
}

func TestParseForwarded(t *testing.T) {
	for _, c := range []struct {
		hdr               http.Header
		hops, proto, host string
	}{
		{http.Header{"Forwarded": {`for=192.0.2.43, for="[2001:db8:cafe::17]:4711";proto=HTTPS;host="a.example"`}}, "192.0.2.43 2001:db8:cafe::17", "https", "a.example"},
		{http.Header{"Forwarded": {`for=192.0.2.43;proto=https;host=a.example`, `for=198.51.100.1`}}, "192.0.2.43 198.51.100.1", "", ""},
		{http.Header{"Forwarded": {`for=_hidden`}, "X-Forwarded-Proto": {"https"}}, "_hidden", "", ""},
		{http.Header{"X-Forwarded-For": {"1.1.1.1, 2.2.2.2", "3.3.3.3"}, "X-Forwarded-Proto": {"http, https"}, "X-Forwarded-Host": {"b.example"}}, "1.1.1.1 2.2.2.2 3.3.3.3", "https", "b.example"},
		{http.Header{}, "", "", ""},
	} {
		hops, proto, host := parseForwarded(c.hdr)
		if strings.Join(hops, " ") != c.hops || proto != c.proto || host != c.host {
			t.Errorf("%v: %q %q %q", c.hdr, hops, proto, host)
		}
	}
}
