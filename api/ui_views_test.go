package api

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/vault"
)

func (e *testEnv) uiGet(t *testing.T, c *http.Client, ck *http.Cookie, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
	status, _, b := uiSend(t, c, ck, req)
	return status, b
}

// uiSend sends req with the session cookie and reads the whole answer.
func uiSend(t *testing.T, c *http.Client, ck *http.Cookie, req *http.Request) (int, http.Header, string) {
	t.Helper()
	req.AddCookie(ck)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

func TestUITransactionsView(t *testing.T) {
	e := newEnv(t)
	e.record("transactions", `{"date":"2026-09-30","amount":"2500.00","currency":"EUR","counterparty":"Employer","account":{"id":"DE01"},"provenance":{"importer":"camt053","source":"sept.xml","item":"entry 1","sourceSha256":"x"}}`)
	e.record("transactions", `{"date":"2026-10-02","amount":"-850.00","currency":"EUR","counterparty":"Landlord <b>","account":{"id":"DE01"}}`)
	c, ck := e.uiLogin(t)
	status, body := e.uiGet(t, c, ck, "/ui/records/transactions")
	for _, want := range []string{"<svg", "<title>2026-10: in 0.00, out 850.00</title>", "net <strong>1650.00</strong>",
		"<td class=\"num\">1650.00</td>", "Landlord &lt;b&gt;", "imported from sept.xml (entry 1) by the camt053 importer", `<option value="DE01"`} {
		if status != 200 || !strings.Contains(body, want) {
			t.Fatalf("transactions page lacks %q (%d):\n%s", want, status, body)
		}
	}
	_, body = e.uiGet(t, c, ck, "/ui/records/transactions?month=2026-09")
	if !strings.Contains(body, "1 transaction(s)") || strings.Contains(body, "Landlord") {
		t.Fatalf("month filter:\n%s", body)
	}
	status, body = e.uiGet(t, c, ck, "/ui/records/transactions?month=soon")
	if status != 400 || !strings.Contains(body, "month is YYYY-MM") {
		t.Fatalf("bad month: %d", status)
	}
}

func TestUIRecordViewsAndSearch(t *testing.T) {
	e := newEnv(t)
	e.record("health", `{"resourceType":"Observation","code":{"text":"Heart rate"},"valueQuantity":{"value":62,"unit":"/min"},"effectiveDateTime":"2026-10-01"}`)
	e.record("health", `{"resourceType":"Immunization","vaccineCode":{"text":"Tetanus"},"occurrenceDateTime":"2026-11-01"}`)
	e.record("contacts", `{"name":"Ada Lovelace","email":[{"value":"ada@example.org"}]}`)
	c, ck := e.uiLogin(t)
	_, body := e.uiGet(t, c, ck, "/ui/records/health")
	if !strings.Contains(body, `class="timeline"`) || strings.Index(body, "2026-11-01") > strings.Index(body, "2026-10-01") ||
		!strings.Contains(body, "Observation: Heart rate") || !strings.Contains(body, "62 /min") {
		t.Fatalf("health timeline:\n%s", body)
	}
	_, body = e.uiGet(t, c, ck, "/ui/records/contacts")
	if !strings.Contains(body, "<strong>Ada Lovelace</strong>") || !strings.Contains(body, "ada@example.org") {
		t.Fatalf("contact cards:\n%s", body)
	}
	_, body = e.uiGet(t, c, ck, "/ui/search?q=lovelace")
	if !strings.Contains(body, "1 match(es)") || !strings.Contains(body, "Ada Lovelace") {
		t.Fatalf("search:\n%s", body)
	}
	status, body := e.uiGet(t, c, ck, "/ui/search?q=x")
	if status != 400 || !strings.Contains(body, "2 to 200 characters") {
		t.Fatalf("short search: %d", status)
	}
}

// The upload form streams the file into the vault: the CSRF token is
// checked before the file is read, and nothing of the file reaches a
// temporary file.
func TestUIDocumentUpload(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where ParseMultipartForm would spill
	e := newEnv(t)
	c, ck := e.uiLogin(t)
	marker := bytes.Repeat([]byte("UPLOADMARKER "), 200_000) // 2.6 MB: more than any in-memory form limit
	form := func(csrf string, fileFirst bool) (*bytes.Buffer, string) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		file := func() {
			fw, _ := mw.CreateFormFile("file", "letter.txt")
			fw.Write(marker)
		}
		if fileFirst {
			file()
		}
		mw.WriteField("csrf", csrf)
		mw.WriteField("title", "A letter")
		mw.WriteField("kind", "letter")
		if !fileFirst {
			file()
		}
		mw.Close()
		return &b, mw.FormDataContentType()
	}
	post := func(body io.Reader, ct string) (int, string) { return e.uiUpload(t, c, ck, "/ui/documents", body, ct) }
	for name, c := range map[string]struct {
		csrf      string
		fileFirst bool
		status    int
	}{
		"wrong token":       {csrfFor("another session"), false, 403},
		"file before token": {csrfFor(ck.Value), true, 403},
	} {
		b, ct := form(c.csrf, c.fileFirst)
		if status, _ := post(b, ct); status != c.status {
			t.Errorf("%s: %d", name, status)
		}
	}
	b, ct := form(csrfFor(ck.Value), false)
	if status, loc := post(b, ct); status != http.StatusSeeOther || !strings.HasPrefix(loc, "/ui/documents?done=uploaded") {
		t.Fatalf("upload: %d %s", status, loc)
	}
	page, _ := e.v.ListRecords(t.Context(), vault.DocumentsCollection, 10, "")
	if len(page.Records) != 1 {
		t.Fatalf("%d documents", len(page.Records))
	}
	m, _ := vault.DocumentMedia(page.Records[0])
	if m.Title != "A letter" || m.Kind != "letter" || m.ContentSize != int64(len(marker)) || m.EncodingFormat != "text/plain; charset=utf-8" {
		t.Fatalf("meta %+v", m)
	}
	_, body := e.uiGet(t, c, ck, "/ui/documents")
	if !strings.Contains(body, "A letter") || !strings.Contains(body, "2.5 MiB") || !strings.Contains(body, "?inline=1") {
		t.Fatalf("documents page:\n%s", body)
	}
	status, got := e.uiGet(t, c, ck, "/ui/documents/"+page.Records[0].ID+"/content")
	if status != 200 || got != string(marker) {
		t.Fatalf("download: %d, %d bytes", status, len(got))
	}
	filepath.WalkDir(tmp, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte("UPLOADMARKER")) {
				t.Errorf("plaintext of the upload in %s", p)
			}
		}
		return nil
	})
}

// The import page streams the file to StartImport and follows the job on
// a page that reloads itself until the import ends.
func TestUIImport(t *testing.T) {
	e := newEnv(t)
	c, ck := e.uiLogin(t)
	post := func(csrf, file string, keep bool) (int, string) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		mw.WriteField("csrf", csrf)
		mw.WriteField("format", "")
		if keep {
			mw.WriteField("keep_original", "on")
		}
		fw, _ := mw.CreateFormFile("file", "friends.vcf")
		io.WriteString(fw, file)
		mw.Close()
		return e.uiUpload(t, c, ck, "/ui/imports", &b, mw.FormDataContentType())
	}
	if status, _ := post(csrfFor("another session"), importCards, true); status != 403 {
		t.Fatalf("wrong token: %d", status)
	}
	status, loc := post(csrfFor(ck.Value), importCards, true)
	if status != http.StatusSeeOther || !strings.HasPrefix(loc, "/ui/imports/") {
		t.Fatalf("upload: %d %s", status, loc)
	}
	var body string
	for range 500 {
		_, body = e.uiGet(t, c, ck, loc)
		if !strings.Contains(body, `http-equiv="refresh"`) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(body, "2 record(s) added") || !strings.Contains(body, "/ui/records/contacts") || !strings.Contains(body, "/ui/records/documents/") {
		t.Fatalf("finished import page:\n%s", body)
	}
	// Without "keep": no document; again: nothing added.
	_, loc = post(csrfFor(ck.Value), importCards, false)
	for range 500 {
		if _, body = e.uiGet(t, c, ck, loc); !strings.Contains(body, `http-equiv="refresh"`) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(body, "0 record(s) added") || !strings.Contains(body, "2 already in the vault") || strings.Contains(body, "/ui/records/documents/") {
		t.Fatalf("second import page:\n%s", body)
	}
	// A malformed file: the job page says why, in the importer's words.
	_, loc = post(csrfFor(ck.Value), "BEGIN:VCARD\r\nVERSION:4.0\r\n", true)
	for range 500 {
		if _, body = e.uiGet(t, c, ck, loc); !strings.Contains(body, `http-equiv="refresh"`) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(body, "Nothing from this file was imported") || !strings.Contains(body, "vcard_unterminated") {
		t.Fatalf("failed import page:\n%s", body)
	}
	_, body = e.uiGet(t, c, ck, "/ui/imports")
	if strings.Count(body, `href="/ui/imports/`) != 3 || !strings.Contains(body, `<option value="ofx">`) {
		t.Fatalf("imports page:\n%s", body)
	}
	if status, _ := e.uiGet(t, c, ck, "/ui/imports/nope"); status != 404 {
		t.Fatalf("unknown job: %d", status)
	}
}

// On a request for documents the owner can tick the ones to share; the
// grant then covers only those (and keeps the kinds asked for), with the
// organization's ids in its token.
func TestUIApproveChosenDocuments(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	phone, _ := e.v.AddDocument(ctx, strings.NewReader("phone"), vault.DocumentInput{Title: "Phone contract", Kind: "contract"})
	e.v.AddDocument(ctx, strings.NewReader("rent"), vault.DocumentInput{Title: "Rent contract", Kind: "contract"})
	e.v.AddDocument(ctx, strings.NewReader("slip"), vault.DocumentInput{Title: "A payslip", Kind: "payslip"})
	o := e.org("EdDSA")
	d := client.Detail("documents", "title", "content")
	d.Kinds = []string{"contract"}
	tk, err := o.Request(ctx, client.AccessRequest{ClientName: "Bank", ClientURI: "https://bank.example", Purpose: "service_delivery",
		AuthorizationDetails: []client.AuthorizationDetail{d}, Duration: 3600})
	if err != nil {
		t.Fatal(err)
	}
	c, ck := e.uiLogin(t)
	_, page := e.uiGet(t, c, ck, "/ui/requests/"+tk.RequestID)
	if !strings.Contains(page, "Phone contract") || !strings.Contains(page, "Rent contract") || strings.Contains(page, "A payslip") {
		t.Fatalf("request page does not offer the contracts (only):\n%s", page)
	}
	// Unticking a field keeps the kinds asked for (narrowing, not widening).
	status, body := e.uiPost(t, c, ck, "/ui/requests/"+tk.RequestID+"/approve", url.Values{"csrf": {csrfFor(ck.Value)},
		"field": {"documents.content"}, "document": {phone.ID}})
	if status != http.StatusSeeOther {
		t.Fatalf("approve: %d %s", status, body)
	}
	req, _ := e.v.GetRequest(ctx, tk.RequestID)
	g := req.GrantedDetails[0]
	if len(g.IDs) != 1 || g.IDs[0] == phone.ID || len(g.Kinds) != 1 || len(g.Fields) != 1 {
		t.Fatalf("granted %+v", g)
	}
	tok, err := o.Poll(ctx, tk.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	list, err := o.ReadCollection(ctx, tok.AccessToken, "documents", 0, "")
	if err != nil || len(list.Records) != 1 || list.Records[0].ID != g.IDs[0] {
		t.Fatalf("organization lists %+v %v", list, err)
	}
}

// uiUpload posts a multipart form with the session cookie and returns the
// status and the Location header followed by the body.
func (e *testEnv) uiUpload(t *testing.T, c *http.Client, ck *http.Cookie, path string, body io.Reader, ct string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+path, body)
	req.Header.Set("Content-Type", ct)
	status, h, b := uiSend(t, c, ck, req)
	return status, h.Get("Location") + b
}
