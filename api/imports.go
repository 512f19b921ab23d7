package api

import (
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
	"github.com/pdvault/pdvault/vault/importers"
)

// MaxImport bounds one imported file.
const MaxImport = 4 << 30

// importTime is how long an import upload may take, from the owner's
// authenticated request on (the server's 30 s read timeout is for
// everyone else).
const importTime = time.Hour

var (
	errBadDigest = policy.E(policy.KindInvalid, "invalid_digest", "Content-Digest must carry sha-256=:BASE64: (RFC 9530)")
	errBodyRead  = policy.E(policy.KindInvalid, "invalid_request", "could not read the request body")
)

// importData is POST /v1/owner/imports: the body is the file itself,
// streamed; Content-Digest (RFC 9530), if sent, declares its SHA-256;
// Content-Disposition (RFC 6266) may name it. Query: format, collection,
// dry_run, keep_original. With Prefer: respond-async (RFC 7240) the answer
// is 202 as soon as the file is stored, with the job to poll in Location.
func (s *server) importData(w http.ResponseWriter, r *http.Request) {
	sum, err := contentDigest(r.Header.Get("Content-Digest"))
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	name := ""
	if cd := r.Header.Get("Content-Disposition"); cd != "" {
		if _, p, err := mime.ParseMediaType(cd); err == nil {
			name = p["filename"]
		}
	}
	q := r.URL.Query()
	opts, err := importOptions(q.Get("map"))
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	in := vault.DataImport{Name: name, Format: q.Get("format"), Collection: q.Get("collection"), SHA256: sum,
		DryRun: truthy(q.Get("dry_run")), DiscardOriginal: q.Get("keep_original") != "" && !truthy(q.Get("keep_original")),
		Size: r.ContentLength, Options: opts}
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(importTime))
	// The answer comes after the whole file: the server's 60 s write
	// timeout would cut it off for a large one.
	rc.SetWriteDeadline(time.Now().Add(importTime + time.Minute))
	body := &bodyReader{r: http.MaxBytesReader(w, r.Body, MaxImport)}
	if preferAsync(r.Header.Values("Prefer")) {
		j, err := s.svc.StartImport(r.Context(), body, in)
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		w.Header().Set("Preference-Applied", "respond-async")
		w.Header().Set("Location", "/v1/owner/imports/"+j.ID)
		writeJSON(w, http.StatusAccepted, jobBody(j))
		return
	}
	res, err := s.svc.ImportData(r.Context(), body, in)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	code := http.StatusCreated
	if in.DryRun || res.Added == 0 {
		code = http.StatusOK
	}
	writeJSON(w, code, res)
}

func truthy(s string) bool { return s == "true" || s == "1" }

// preferAsync reads RFC 7240's respond-async preference.
func preferAsync(prefer []string) bool {
	for _, h := range prefer {
		for _, p := range strings.Split(h, ",") {
			tok, _, _ := strings.Cut(strings.TrimSpace(p), ";")
			if strings.EqualFold(strings.TrimSpace(tok), "respond-async") {
				return true
			}
		}
	}
	return false
}

// importJob is an import's progress as the API shows it: a failed one
// carries its error in the shape of every other error answer.
type importJob struct {
	vault.ImportJob
	Error *errorBody `json:"error,omitempty"`
}

func jobBody(j vault.ImportJob) importJob {
	out := importJob{ImportJob: j}
	if j.Err != nil {
		b := errorBodyOf(j.Err)
		out.Error = &b
	}
	return out
}

// importJobs is GET /v1/owner/imports: the recent imports, newest first.
func (s *server) importJobs(w http.ResponseWriter, r *http.Request) {
	out := []importJob{}
	for _, j := range s.svc.ImportJobs() {
		out = append(out, jobBody(j))
	}
	writeJSON(w, http.StatusOK, map[string]any{"imports": out})
}

// importJob is GET /v1/owner/imports/{id}.
func (s *server) importJob(w http.ResponseWriter, r *http.Request) {
	j, err := s.svc.ImportJob(mux.Vars(r)["id"])
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, jobBody(j))
}

var errBadMap = policy.E(policy.KindInvalid, "invalid_map", "map is a list of name=value pairs separated by commas (at most 32)")

// importOptions reads map=date=Buchungstag,amount=Betrag,decimal=comma.
func importOptions(m string) (map[string]string, error) {
	if m == "" {
		return nil, nil
	}
	parts := strings.Split(m, ",")
	if len(parts) > 32 || len(m) > 4096 {
		return nil, errBadMap
	}
	out := map[string]string{}
	for _, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.TrimSpace(v) == "" {
			return nil, errBadMap
		}
		if _, dup := out[k]; dup {
			return nil, errBadMap
		}
		out[k] = strings.TrimSpace(v)
	}
	return out, nil
}

// bodyReader turns a failed read of the upload into the client's error,
// not the vault's.
type bodyReader struct{ r io.Reader }

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return n, errTooLarge
		}
		return n, errBodyRead
	}
	return n, err
}

// contentDigest reads the sha-256 member of an RFC 9530 Content-Digest
// (a Structured Fields dictionary of byte sequences); other algorithms
// are ignored, as the RFC allows.
func contentDigest(h string) ([]byte, error) {
	if h == "" {
		return nil, nil
	}
	for _, m := range strings.Split(h, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(m), "=")
		if !ok || strings.ToLower(k) != "sha-256" {
			continue
		}
		if len(v) < 2 || v[0] != ':' || v[len(v)-1] != ':' {
			return nil, errBadDigest
		}
		b, err := base64.StdEncoding.DecodeString(v[1 : len(v)-1])
		if err != nil || len(b) != 32 {
			return nil, errBadDigest
		}
		return b, nil
	}
	return nil, nil // no sha-256 member: nothing declared to check
}

type formatInfo struct {
	Name        string   `json:"name"`
	Version     string   `json:"version"`
	Description string   `json:"description"`
	Collections []string `json:"collections"`
	Extensions  []string `json:"extensions"`
}

// importFormats is GET /v1/owner/imports/formats.
func (s *server) importFormats(w http.ResponseWriter, r *http.Request) {
	out := []formatInfo{}
	for _, f := range importers.Formats() {
		out = append(out, formatInfo{f.Name, f.Version, f.Description, f.Collections, f.Extensions})
	}
	writeJSON(w, http.StatusOK, map[string]any{"formats": out})
}
