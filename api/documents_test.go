package api

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/vault"
)

func (e *testEnv) ownerClient() *client.Owner {
	e.t.Helper()
	o, err := client.NewOwner(e.srv.URL, e.token, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return o
}

// The owner adds, lists, downloads (whole and by range) and deletes a
// document over HTTP; bad input gets the right codes and keeps nothing.
func TestOwnerDocuments(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	ow := e.ownerClient()
	content := make([]byte, 200_000)
	rand.Read(content)
	copy(content, "%PDF-1.7\n")
	sum := sha256.Sum256(content)
	rec, err := ow.AddDocument(ctx, bytes.NewReader(content), client.DocumentOptions{FileName: "Mietvertrag 2026.pdf", Title: "Lease",
		Kind: "contract", Date: "2026-01-15", Counterparty: "Wohnbau GmbH", SHA256: sum[:]})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := rec.Meta()
	if rec.Collection != "documents" || m.EncodingFormat != "application/pdf" || m.ContentSize != int64(len(content)) || m.Kind != "contract" {
		t.Fatalf("record %+v meta %+v", rec, m)
	}
	page, err := ow.Documents(ctx, 0, "")
	if err != nil || len(page.Records) != 1 || page.Records[0].ID != rec.ID {
		t.Fatalf("list %+v %v", page, err)
	}
	var got bytes.Buffer
	if n, err := ow.DocumentContent(ctx, rec.ID, &got); err != nil || n != int64(len(content)) || !bytes.Equal(got.Bytes(), content) {
		t.Fatalf("download %d %v", n, err)
	}

	r := e.do("GET", "/v1/owner/documents/"+rec.ID+"/content", e.token, nil, "Range", "bytes=70000-70009")
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, content[70000:70010]) || r.header.Get("Content-Range") != "bytes 70000-70009/200000" {
		t.Fatalf("range: %d %q %q", r.status, r.header.Get("Content-Range"), r.body)
	}
	// A download is an attachment of octet-stream, never sniffed; a
	// preview shows only safe types inline.
	r = e.do("GET", "/v1/owner/documents/"+rec.ID+"/content", e.token, nil)
	if r.header.Get("Content-Type") != "application/octet-stream" || !strings.HasPrefix(r.header.Get("Content-Disposition"), "attachment") ||
		r.header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(r.header.Get("Content-Disposition"), `filename="Mietvertrag 2026.pdf"`) {
		t.Fatalf("download headers %v", r.header)
	}
	r = e.do("GET", "/v1/owner/documents/"+rec.ID+"/content?inline=1", e.token, nil)
	if r.header.Get("Content-Type") != "application/pdf" || !strings.HasPrefix(r.header.Get("Content-Disposition"), "inline") {
		t.Fatalf("preview headers %v", r.header)
	}
	html, err := ow.AddDocument(ctx, strings.NewReader("<script>alert(1)</script>"), client.DocumentOptions{MediaType: "text/html"})
	if err != nil {
		t.Fatal(err)
	}
	r = e.do("GET", "/v1/owner/documents/"+html.ID+"/content?inline=1", e.token, nil)
	if r.header.Get("Content-Type") != "application/octet-stream" || !strings.HasPrefix(r.header.Get("Content-Disposition"), "attachment") ||
		!strings.Contains(r.header.Get("Content-Security-Policy"), "sandbox") {
		t.Fatalf("HTML must not be previewed: %v", r.header)
	}

	// Bad input: each its own code, nothing kept.
	for name, c := range map[string]struct {
		path, code string
		status     int
		hdr        []string
	}{
		"bad kind":         {"/v1/owner/documents?kind=Not+A+Kind", "invalid_document", 400, nil},
		"bad date":         {"/v1/owner/documents?date=yesterday", "invalid_document", 400, nil},
		"bad digest":       {"/v1/owner/documents", "invalid_digest", 400, []string{"Content-Digest", "sha-256=:abc:"}},
		"digest mismatch":  {"/v1/owner/documents", "digest_mismatch", 400, []string{"Content-Digest", "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"}},
		"bad media type":   {"/v1/owner/documents", "invalid_document", 400, []string{"Content-Type", "pdf"}},
		"unknown document": {"/v1/owner/documents/aaaaaaaaaaaaaaaaaaaaaaaaaa/content", "not_found", 404, nil},
		"not the owner":    {"/v1/owner/documents", "invalid_token", 401, nil},
	} {
		method, tok := "POST", e.token
		if strings.HasSuffix(c.path, "/content") {
			method = "GET"
		}
		if name == "not the owner" {
			tok = "nope"
		}
		r := e.do(method, c.path, tok, strings.NewReader("some bytes"), c.hdr...)
		if r.status != c.status || r.errCode(t) != c.code {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	if page, _ := ow.Documents(ctx, 0, ""); len(page.Records) != 2 {
		t.Fatalf("bad uploads kept something: %d documents", len(page.Records))
	}
	if err := ow.DeleteDocument(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	_, err = ow.DocumentContent(ctx, rec.ID, io.Discard)
	wantCode(t, err, "not_found")
	wantCode(t, ow.DeleteDocument(ctx, rec.ID), "not_found")
}

// An organization reads a granted document's bytes with DPoP, whole or by
// range; each read is audited and carries the tree head; without
// "content" in the grant, or after revocation, the bytes are not found.
func TestOrgReadsDocumentContent(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	content := make([]byte, 3*65536+123)
	rand.Read(content)
	doc, err := e.v.AddDocument(ctx, bytes.NewReader(content), vault.DocumentInput{Title: "Payslip", Kind: "payslip", FileName: "p.pdf"})
	if err != nil {
		t.Fatal(err)
	}
	o := e.org("EdDSA")
	ask := client.AccessRequest{ClientName: "Bank", ClientURI: "https://bank.example", Purpose: "service_delivery",
		AuthorizationDetails: []client.AuthorizationDetail{client.Detail("documents", "title", "kind", "content")}, Duration: 3600}
	tok := e.grantFor(o, ask, vault.Approval{})
	page, err := o.ReadCollection(ctx, tok.AccessToken, "documents", 0, "")
	if err != nil || len(page.Records) != 1 || page.Records[0].ID == doc.ID {
		t.Fatalf("list %+v %v", page, err)
	}
	id := page.Records[0].ID
	whole, err := o.ReadDocument(ctx, tok.AccessToken, id, "")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(whole.Body)
	whole.Body.Close()
	if whole.Status != 200 || !bytes.Equal(b, content) {
		t.Fatalf("whole: %d, %d bytes", whole.Status, len(b))
	}
	part, err := o.ReadDocument(ctx, tok.AccessToken, id, "bytes=-100")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(part.Body)
	part.Body.Close()
	if part.Status != 206 || !bytes.Equal(b, content[len(content)-100:]) || part.ContentRange != "bytes 196631-196730/196731" {
		t.Fatalf("range: %d %q %d bytes", part.Status, part.ContentRange, len(b))
	}
	audit, _ := e.v.ListAudit(ctx, 3, "")
	reads := 0
	for _, en := range audit.Entries {
		if en.Event == vault.EvDataRead && len(en.Fields) == 1 && en.Fields[0] == "content" {
			reads++
		}
	}
	if reads != 2 {
		t.Fatalf("content reads audited: %d of 2 (%+v)", reads, audit.Entries)
	}
	r := e.do("GET", "/v1/data/documents/"+id+"/content", "", nil)
	if r.status != 401 {
		t.Fatalf("no grant: %d", r.status)
	}

	meta := e.grantFor(o, client.AccessRequest{ClientName: "Bank", ClientURI: "https://bank.example", Purpose: "service_delivery",
		AuthorizationDetails: []client.AuthorizationDetail{client.Detail("documents", "title")}, Duration: 3600}, vault.Approval{})
	_, err = o.ReadDocument(ctx, meta.AccessToken, id, "")
	wantCode(t, err, "not_found")

	if _, err := e.v.Revoke(ctx, tok.GrantID); err != nil {
		t.Fatal(err)
	}
	_, err = o.ReadDocument(ctx, tok.AccessToken, id, "bytes=0-9")
	if err == nil {
		t.Fatal("read after revocation")
	}
}
