package api

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/pdvault/pdvault/vault"
)

// documentTime bounds one document upload or download (the server's
// read and write timeouts are for everyone else).
const documentTime = time.Hour

// addDocument is POST /v1/owner/documents: the body is the file,
// streamed; Content-Type is its media type (application/octet-stream or
// none: the vault names it from the first bytes); Content-Disposition
// may name the file; Content-Digest (RFC 9530), if sent, is checked.
// Query: title, kind, date, counterparty.
func (s *server) addDocument(w http.ResponseWriter, r *http.Request) {
	var sum []byte
	if h := r.Header.Get("Content-Digest"); h != "" {
		var err error
		if sum, err = contentDigest(h); err != nil {
			writeError(w, r, s.log, err)
			return
		}
	}
	mt := r.Header.Get("Content-Type")
	if t, _, _ := mime.ParseMediaType(mt); t == "application/octet-stream" {
		mt = ""
	}
	q := r.URL.Query()
	in := vault.DocumentInput{FileName: fileName(r), Title: q.Get("title"), Kind: q.Get("kind"), Date: q.Get("date"),
		Counterparty: q.Get("counterparty"), MediaType: mt, SHA256: sum}
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(documentTime))
	rc.SetWriteDeadline(time.Now().Add(documentTime + time.Minute))
	body := &bodyReader{r: http.MaxBytesReader(w, r.Body, vault.MaxDocumentSize)}
	rec, err := s.svc.AddDocument(r.Context(), body, in)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeRecord(w, http.StatusCreated, rec)
}

// fileName is the filename of an RFC 6266 Content-Disposition, if any.
func fileName(r *http.Request) string {
	if cd := r.Header.Get("Content-Disposition"); cd != "" {
		if _, p, err := mime.ParseMediaType(cd); err == nil {
			return p["filename"]
		}
	}
	return ""
}

func (s *server) listDocuments(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	page, err := s.svc.ListRecords(r.Context(), vault.DocumentsCollection, limit, r.URL.Query().Get("cursor"))
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *server) getDocument(w http.ResponseWriter, r *http.Request) {
	rec, err := s.svc.GetRecord(r.Context(), vault.DocumentsCollection, mux.Vars(r)["id"])
	if errors.Is(err, vault.ErrRecordNotFound) {
		err = vault.ErrDocumentNotFound
	}
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeRecord(w, http.StatusOK, rec)
}

func (s *server) deleteDocument(w http.ResponseWriter, r *http.Request) {
	if err := s.svc.DeleteDocument(r.Context(), mux.Vars(r)["id"]); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// documentContent is GET /v1/owner/documents/{id}/content, with Range
// (RFC 9110 §14). ?inline=1 asks for a preview in the browser, given only
// for types a browser shows without running anything.
func (s *server) documentContent(w http.ResponseWriter, r *http.Request) {
	rec, d, err := s.svc.OpenDocument(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	defer d.Close()
	m, err := vault.DocumentMedia(rec)
	if err != nil {
		writeError(w, r, s.log, vault.ErrTampered)
		return
	}
	s.serveDocument(w, r, m, d, r.URL.Query().Get("inline") == "1")
}

// readDocument is GET /v1/data/documents/{id}/content for organizations:
// DPoP like every read, audited before the first byte.
func (s *server) readDocument(w http.ResponseWriter, r *http.Request) {
	a, err := s.dpopAccess(r)
	if err != nil {
		s.dpopChallenge(w, err)
		writeError(w, r, s.log, err)
		return
	}
	rec, d, err := s.svc.ReadDocument(r.Context(), a, mux.Vars(r)["id"])
	if err != nil {
		s.dpopChallenge(w, err)
		writeError(w, r, s.log, err)
		return
	}
	defer d.Close()
	s.auditHeaders(w, r, rec.AuditSeq)
	// Only what the grant covers of the metadata shapes the answer (a
	// file name not granted is not sent); the bytes go out as an
	// attachment of application/octet-stream.
	var m vault.DocumentMeta
	if b, err := json.Marshal(rec.Data); err == nil {
		_ = json.Unmarshal(b, &m)
	}
	s.serveDocument(w, r, m, d, false)
}

// previewable are the types the owner's browser may show inline: none
// of them runs script (no HTML, no SVG).
var previewable = map[string]bool{"application/pdf": true, "image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true, "text/plain": true}

// serveDocument sends a document's bytes with Range support. The type is
// the recorded one only for a preview of a safe type; everything else is
// an attachment of application/octet-stream, and nothing is sniffed.
func (s *server) serveDocument(w http.ResponseWriter, r *http.Request, m vault.DocumentMeta, d *vault.DocumentReader, inline bool) {
	mt, _, _ := mime.ParseMediaType(m.EncodingFormat)
	h := w.Header()
	disp := "attachment"
	h.Set("Content-Type", "application/octet-stream")
	if inline && previewable[mt] {
		disp = "inline"
		h.Set("Content-Type", mt)
		if mt == "text/plain" {
			h.Set("Content-Type", "text/plain; charset=utf-8")
		}
	}
	if m.FileName != "" {
		h.Set("Content-Disposition", mime.FormatMediaType(disp, map[string]string{"filename": m.FileName}))
	} else {
		h.Set("Content-Disposition", disp)
	}
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "private, no-store")
	if mt != "application/pdf" || !inline {
		h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	} else {
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'self'")
	}
	if len(m.SHA256) == 64 && !strings.ContainsFunc(m.SHA256, func(c rune) bool { return !strings.ContainsRune("0123456789abcdef", c) }) {
		h.Set("ETag", `"`+m.SHA256[:32]+`"`) // If-Range needs a strong validator
	}
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Now().Add(documentTime))
	// A chunk that fails its check mid-way can only cut the body short:
	// the client sees fewer bytes than Content-Length, and the vault has
	// logged the chunk.
	http.ServeContent(w, r, "", time.Time{}, d)
}
