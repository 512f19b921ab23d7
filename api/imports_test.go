package api

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func digestHeader(b string) string {
	s := sha256.Sum256([]byte(b))
	return "sha-256=:" + base64.StdEncoding.EncodeToString(s[:]) + ":"
}

const importCards = "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Ann Lee\r\nEND:VCARD\r\nBEGIN:VCARD\r\nVERSION:3.0\r\nN:Lee;Bo;;;\r\nEND:VCARD\r\n"

func TestImportOverAPI(t *testing.T) {
	e := newEnv(t)
	r := e.do("POST", "/v1/owner/imports", e.token, strings.NewReader(importCards),
		"Content-Digest", "md5=:AAAA:, sha-256="+strings.TrimPrefix(digestHeader(importCards), "sha-256="),
		"Content-Disposition", `attachment; filename="friends.vcf"`)
	if r.status != http.StatusCreated {
		t.Fatalf("import: %d %s", r.status, r.body)
	}
	var res struct {
		File, Format, Collection string
		Added, Duplicates        int
	}
	r.json(t, &res)
	if res.File != "friends.vcf" || res.Format != "vcard" || res.Collection != "contacts" || res.Added != 2 {
		t.Fatalf("result %s", r.body)
	}
	// Again: nothing added, 200.
	r = e.do("POST", "/v1/owner/imports", e.token, strings.NewReader(importCards), "Content-Digest", digestHeader(importCards))
	r.json(t, &res)
	if r.status != http.StatusOK || res.Added != 0 || res.Duplicates != 2 {
		t.Fatalf("again: %d %s", r.status, r.body)
	}
	r = e.do("GET", "/v1/owner/records/contacts", e.token, nil)
	if r.status != 200 || strings.Count(string(r.body), `"sourceSha256"`) != 2 || !strings.Contains(string(r.body), `"source":"friends.vcf"`) {
		t.Fatalf("records: %s", r.body)
	}
	r = e.do("GET", "/v1/owner/imports/formats", e.token, nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"name":"vcard"`) {
		t.Fatalf("formats: %d %s", r.status, r.body)
	}
}

// Each client mistake gets its own code and status, and keeps nothing.
func TestImportErrorsOverAPI(t *testing.T) {
	e := newEnv(t)
	bad := "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:A\r\nEND:VCARD\r\nBEGIN:VCARD\r\nVERSION:4.0\r\n"
	for _, tc := range []struct {
		name, body, path, digest string
		status                   int
		code                     string
	}{
		{"no token", importCards, "/v1/owner/imports", digestHeader(importCards), 401, ""},
		{"no digest", importCards, "/v1/owner/imports", "", 400, "digest_required"},
		{"only other digests", importCards, "/v1/owner/imports", "sha-512=:AAAA:", 400, "digest_required"},
		{"bad digest", importCards, "/v1/owner/imports", "sha-256=:nope:", 400, "invalid_digest"},
		{"short digest", importCards, "/v1/owner/imports", "sha-256=:AAAA:", 400, "invalid_digest"},
		{"wrong digest", importCards, "/v1/owner/imports", digestHeader("other"), 400, "digest_mismatch"},
		{"unknown format", importCards, "/v1/owner/imports?format=xls", digestHeader(importCards), 400, "unknown_format"},
		{"undetected", "a,b\n1,2\n", "/v1/owner/imports", digestHeader("a,b\n1,2\n"), 422, "format_not_detected"},
		{"bad collection", importCards, "/v1/owner/imports?collection=A%20B", digestHeader(importCards), 400, "invalid_collection"},
		{"malformed file", bad, "/v1/owner/imports", digestHeader(bad), 422, "import_failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := e.token
			if tc.name == "no token" {
				tok = ""
			}
			var hdr []string
			if tc.digest != "" {
				hdr = []string{"Content-Digest", tc.digest}
			}
			r := e.do("POST", tc.path, tok, strings.NewReader(tc.body), hdr...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.code != "" && r.errCode(t) != tc.code {
				t.Fatalf("code %s, want %s", r.errCode(t), tc.code)
			}
		})
	}
	r := e.do("GET", "/v1/owner/records/contacts", e.token, nil)
	if strings.Contains(string(r.body), "sourceSha256") {
		t.Fatalf("a refused import kept records: %s", r.body)
	}
	r = e.do("POST", "/v1/owner/imports", e.token, strings.NewReader(bad), "Content-Digest", digestHeader(bad))
	var eb struct {
		Description string   `json:"error_description"`
		Reasons     []string `json:"reasons"`
	}
	r.json(t, &eb)
	if !strings.Contains(eb.Description, "card 2") || len(eb.Reasons) != 1 || eb.Reasons[0] != "vcard_unterminated" {
		t.Fatalf("malformed file error: %s", r.body)
	}
}

func TestImportMapOverAPI(t *testing.T) {
	e := newEnv(t)
	body := "Tag|Summe\n31/12/2026|-4,50\n"
	r := e.do("POST", "/v1/owner/imports?format=csv&map="+url.QueryEscape("date=Tag,amount=Summe,dateformat=02/01/2006,delimiter=|"), e.token,
		strings.NewReader(body), "Content-Digest", digestHeader(body))
	if r.status != http.StatusCreated {
		t.Fatalf("%d %s", r.status, r.body)
	}
	for _, bad := range []string{"date", "=x", "date=a,date=b", strings.Repeat("a=b,", 40)} {
		r = e.do("POST", "/v1/owner/imports?format=csv&map="+url.QueryEscape(bad), e.token, strings.NewReader(body), "Content-Digest", digestHeader(body))
		if r.status != 400 || r.errCode(t) != "invalid_map" {
			t.Errorf("map %q: %d %s", bad, r.status, r.body)
		}
	}
	r = e.do("POST", "/v1/owner/imports?format=vcard&map=date%3Dx", e.token, strings.NewReader(body), "Content-Digest", digestHeader(body))
	if r.status != 422 || !strings.Contains(string(r.body), "unsupported_option") {
		t.Errorf("option for vcard: %d %s", r.status, r.body)
	}
}
