package api

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
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

// Prefer: respond-async answers 202 once the file is stored; the job in
// Location reports progress and the outcome, failures in the error shape.
func TestImportAsyncOverAPI(t *testing.T) {
	e := newEnv(t)
	// No Content-Digest: the vault computes it while the file arrives.
	r := e.do("POST", "/v1/owner/imports", e.token, strings.NewReader(importCards), "Prefer", "wait=10, respond-async",
		"Content-Disposition", `attachment; filename="friends.vcf"`)
	if r.status != http.StatusAccepted || r.header.Get("Preference-Applied") != "respond-async" || !strings.HasPrefix(r.header.Get("Location"), "/v1/owner/imports/") {
		t.Fatalf("async import: %d %v %s", r.status, r.header, r.body)
	}
	var j struct {
		ID, State, File string
		Items           int
		Result          *struct {
			Added    int
			Document string
		}
		Error *struct {
			Error   string   `json:"error"`
			Reasons []string `json:"reasons"`
		}
	}
	r.json(t, &j)
	poll := func(loc string) {
		t.Helper()
		for range 500 {
			r = e.do("GET", loc, e.token, nil)
			if r.status != 200 {
				t.Fatalf("poll: %d %s", r.status, r.body)
			}
			r.json(t, &j)
			if j.State == "done" || j.State == "failed" {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatal("import did not end")
	}
	poll(r.header.Get("Location"))
	if j.State != "done" || j.File != "friends.vcf" || j.Items != 2 || j.Result == nil || j.Result.Added != 2 || j.Result.Document == "" {
		t.Fatalf("job %s", r.body)
	}
	// The kept source is a document of kind import.
	r = e.do("GET", "/v1/owner/documents/"+j.Result.Document+"/content", e.token, nil)
	if r.status != 200 || string(r.body) != importCards {
		t.Fatalf("kept source: %d", r.status)
	}
	bad := "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:A\r\nEND:VCARD\r\nBEGIN:VCARD\r\nVERSION:4.0\r\n"
	r = e.do("POST", "/v1/owner/imports", e.token, strings.NewReader(bad), "Prefer", "respond-async")
	if r.status != http.StatusAccepted {
		t.Fatalf("%d %s", r.status, r.body)
	}
	poll(r.header.Get("Location"))
	if j.State != "failed" || j.Error == nil || j.Error.Error != "import_failed" || len(j.Error.Reasons) != 1 || j.Error.Reasons[0] != "vcard_unterminated" {
		t.Fatalf("failed job %s", r.body)
	}
	r = e.do("GET", "/v1/owner/imports", e.token, nil)
	if r.status != 200 || strings.Count(string(r.body), `"id"`) != 2 {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	r = e.do("GET", "/v1/owner/imports/nope", e.token, nil)
	if r.status != 404 || r.errCode(t) != "not_found" {
		t.Fatalf("unknown job: %d %s", r.status, r.body)
	}
	if r = e.do("GET", "/v1/owner/imports", "", nil); r.status != 401 {
		t.Fatalf("list without a token: %d", r.status)
	}
	// Refused before the upload: the answer is the error, not a job.
	r = e.do("POST", "/v1/owner/imports?format=xls", e.token, strings.NewReader(importCards), "Prefer", "respond-async")
	if r.status != 400 || r.errCode(t) != "unknown_format" {
		t.Fatalf("bad format, async: %d %s", r.status, r.body)
	}
}
