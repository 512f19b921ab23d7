package api

import (
	"cmp"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
	"github.com/pdvault/pdvault/vault/importers"
)

// The owner's records as pages a person reads: by collection (cards, a
// timeline for health and calendar), transactions as a table with running
// balances and a server-rendered SVG chart, documents with upload,
// download and preview, and search. The reading is done in vault/views.go;
// here only layout.

type recordsData struct {
	Collection string
	Items      []vault.Summary
	Next       string
	Timeline   bool
}

func (s *server) uiRecords(w http.ResponseWriter, r *http.Request, session string) {
	coll := mux.Vars(r)["collection"]
	if coll == "transactions" {
		s.uiTransactions(w, r, session)
		return
	}
	p, err := s.svc.ListRecords(r.Context(), coll, 50, r.URL.Query().Get("cursor"))
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	d := recordsData{Collection: coll, Next: p.Next, Timeline: coll == "health" || coll == "calendar"}
	for _, rec := range p.Records {
		d.Items = append(d.Items, vault.Summarize(rec))
	}
	if d.Timeline {
		// Within the page, by the record's own date, newest first.
		slices.SortStableFunc(d.Items, func(a, b vault.Summary) int { return cmp.Compare(b.When, a.When) })
	}
	s.render(w, r, http.StatusOK, "records", session, pageData{Title: "Records: " + coll, Nav: "records", Data: d})
}

// chart is the geometry of the monthly bar chart, in SVG user units.
type chart struct {
	Width, Height, Base int
	Bars                []bar
}

type bar struct {
	Month, In, Out                           string
	X, OutX, W, InY, InH, OutY, OutH, LabelX int
	LabelY                                   int
}

// monthChart draws the last 12 months of a view: a green bar for money
// in and a red one for money out, side by side, on one scale.
func monthChart(months []vault.MonthTotal) *chart {
	if len(months) == 0 {
		return nil
	}
	months = months[max(0, len(months)-12):]
	const h, top, label, slot = 200, 10, 20, 72
	c := &chart{Width: max(slot*len(months), 480), Height: h, Base: h - label}
	peak := 0.0
	for _, m := range months {
		peak = max(peak, m.InF, m.OutF)
	}
	scale := func(v float64) int {
		if peak == 0 {
			return 0
		}
		return int(v / peak * float64(c.Base-top))
	}
	for i, m := range months {
		x := i*slot + 8
		in, out := scale(m.InF), scale(m.OutF)
		c.Bars = append(c.Bars, bar{Month: m.Month, In: m.In, Out: m.Out, X: x, OutX: x + 22, W: 20,
			InY: c.Base - in, InH: in, OutY: c.Base - out, OutH: out, LabelX: x + 21, LabelY: h - 5})
	}
	return c
}

type transactionsData struct {
	View  vault.TxView
	Chart *chart
}

func (s *server) uiTransactions(w http.ResponseWriter, r *http.Request, session string) {
	q := r.URL.Query()
	v, err := s.svc.TransactionsView(r.Context(), vault.TxFilter{Account: q.Get("account"), Month: q.Get("month"), Counterparty: q.Get("counterparty")})
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	s.render(w, r, http.StatusOK, "transactions", session, pageData{Title: "Transactions", Nav: "records",
		Data: transactionsData{View: v, Chart: monthChart(v.Months)}})
}

type documentItem struct {
	ID      string
	Meta    vault.DocumentMeta
	Preview bool
}

type documentsData struct {
	Items []documentItem
	Next  string
}

func (s *server) uiDocuments(w http.ResponseWriter, r *http.Request, session string) {
	p, err := s.svc.ListRecords(r.Context(), vault.DocumentsCollection, 50, r.URL.Query().Get("cursor"))
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	d := documentsData{Next: p.Next}
	for _, rec := range p.Records {
		m, _ := vault.DocumentMedia(rec)
		mt, _, _ := mime.ParseMediaType(m.EncodingFormat)
		d.Items = append(d.Items, documentItem{ID: rec.ID, Meta: m, Preview: previewable[mt]})
	}
	s.render(w, r, http.StatusOK, "documents", session, pageData{Title: "Documents", Nav: "documents", Data: d})
}

func (s *server) uiDocumentContent(w http.ResponseWriter, r *http.Request, session string) {
	rec, d, err := s.svc.OpenDocument(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	defer d.Close()
	m, err := vault.DocumentMedia(rec)
	if err != nil {
		s.uiFail(w, r, session, 0, vault.ErrTampered)
		return
	}
	s.serveDocument(w, r, m, d, r.URL.Query().Get("inline") == "1")
}

// uiUploadAuth is uiAuth for the multipart upload: the form must not be
// parsed whole (ParseMultipartForm would spill the file, in the clear, to
// a temporary file), so the CSRF token is read from the first part,
// before any byte of the file.
func (s *server) uiUploadAuth(h func(http.ResponseWriter, *http.Request, string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(sessionCookie)
		if err != nil || s.svc.Authenticate(c.Value) != nil {
			s.uiFail(w, r, "", http.StatusUnauthorized, vault.ErrNoSession)
			return
		}
		if !sameOrigin(r) {
			s.uiFail(w, r, c.Value, http.StatusForbidden, errCSRF)
			return
		}
		h(w, r, c.Value)
	})
}

var errUploadForm = policy.E(policy.KindInvalid, "invalid_request", "the upload form is not as this page sends it; reload the page and try again")

// uiDocumentUpload streams the file part of the upload form into the
// vault.
func (s *server) uiDocumentUpload(w http.ResponseWriter, r *http.Request, session string) {
	s.uiUpload(w, r, session, vault.MaxDocumentSize, func(fields map[string]string, part *multipart.Part, body io.Reader) {
		mt := part.Header.Get("Content-Type")
		if t, _, _ := mime.ParseMediaType(mt); t == "application/octet-stream" {
			mt = ""
		}
		_, err := s.svc.AddDocument(r.Context(), body, vault.DocumentInput{FileName: part.FileName(), Title: fields["title"],
			Kind: fields["kind"], Date: fields["date"], Counterparty: fields["counterparty"], MediaType: mt})
		if err != nil {
			s.uiFail(w, r, session, 0, err)
			return
		}
		http.Redirect(w, r, "/ui/documents?done=uploaded", http.StatusSeeOther)
	})
}

// uiUpload reads an upload form as a stream. Fields come in form order:
// csrf first (checked before anything else is read), then the short
// fields, then the file, which is handed to file unread.
func (s *server) uiUpload(w http.ResponseWriter, r *http.Request, session string, limit int64,
	file func(fields map[string]string, part *multipart.Part, body io.Reader)) {
	mr, err := r.MultipartReader()
	if err != nil {
		s.uiFail(w, r, session, http.StatusBadRequest, errUploadForm)
		return
	}
	fields := map[string]string{}
	for {
		part, err := mr.NextPart()
		if err != nil {
			s.uiFail(w, r, session, http.StatusBadRequest, errUploadForm)
			return
		}
		name := part.FormName()
		if name == "file" {
			if subtle.ConstantTimeCompare([]byte(fields["csrf"]), []byte(csrfFor(session))) != 1 {
				s.uiFail(w, r, session, http.StatusForbidden, errCSRF)
				return
			}
			rc := http.NewResponseController(w)
			rc.SetReadDeadline(time.Now().Add(documentTime))
			rc.SetWriteDeadline(time.Now().Add(documentTime + time.Minute))
			file(fields, part, &bodyReader{r: http.MaxBytesReader(w, io.NopCloser(part), limit)})
			return
		}
		if _, seen := fields[name]; seen || len(fields) > 8 {
			s.uiFail(w, r, session, http.StatusBadRequest, errUploadForm)
			return
		}
		b, err := io.ReadAll(io.LimitReader(part, 4097))
		if err != nil || len(b) > 4096 {
			s.uiFail(w, r, session, http.StatusBadRequest, errUploadForm)
			return
		}
		fields[name] = strings.TrimSpace(string(b))
	}
}

type importsData struct {
	Formats []importers.Format
	Jobs    []vault.ImportJob
}

func (s *server) uiImports(w http.ResponseWriter, r *http.Request, session string) {
	s.render(w, r, http.StatusOK, "imports", session, pageData{Title: "Import", Nav: "import",
		Data: importsData{Formats: importers.Formats(), Jobs: s.svc.ImportJobs()}})
}

// uiImportUpload stores the uploaded file and starts its import; the
// job's page then shows how it goes.
func (s *server) uiImportUpload(w http.ResponseWriter, r *http.Request, session string) {
	s.uiUpload(w, r, session, MaxImport, func(fields map[string]string, part *multipart.Part, body io.Reader) {
		opts, err := importOptions(fields["map"])
		if err != nil {
			s.uiFail(w, r, session, 0, err)
			return
		}
		j, err := s.svc.StartImport(r.Context(), body, vault.DataImport{Name: part.FileName(), Format: fields["format"],
			Collection: fields["collection"], DryRun: fields["dry_run"] == "on", DiscardOriginal: fields["keep_original"] != "on",
			Options: opts})
		if err != nil {
			s.uiFail(w, r, session, 0, err)
			return
		}
		http.Redirect(w, r, "/ui/imports/"+j.ID, http.StatusSeeOther)
	})
}

type importJobData struct {
	Job     vault.ImportJob
	Percent int64
	Error   *errorBody
}

func (s *server) uiImportJob(w http.ResponseWriter, r *http.Request, session string) {
	j, err := s.svc.ImportJob(mux.Vars(r)["id"])
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	d := importJobData{Job: j}
	if j.Total > 0 {
		d.Percent = min(100, j.Bytes*100/j.Total)
	}
	if j.Err != nil {
		b := errorBodyOf(j.Err)
		d.Error = &b
	}
	refresh := 0
	if j.Finished == nil {
		refresh = 1 // no JavaScript: the page reloads itself until the import ends
	}
	s.render(w, r, http.StatusOK, "import", session, pageData{Title: "Import of " + j.File, Nav: "import", Refresh: refresh, Data: d})
}

type searchData struct {
	Query  string
	Result vault.SearchResult
}

func (s *server) uiSearch(w http.ResponseWriter, r *http.Request, session string) {
	q := r.URL.Query().Get("q")
	d := searchData{Query: q}
	if q != "" {
		res, err := s.svc.SearchRecords(r.Context(), q)
		if err != nil {
			s.uiFail(w, r, session, 0, err)
			return
		}
		d.Result = res
	}
	s.render(w, r, http.StatusOK, "search", session, pageData{Title: "Search", Nav: "search", Data: d})
}

// humanBytes says a size in the largest binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// uiConsent downloads a grant's consent receipt: the ISO/IEC TS 27560
// record (JSON-LD) or the Kantara v1.1 receipt.
func (s *server) uiConsent(w http.ResponseWriter, r *http.Request, session string) {
	cr, err := s.svc.ConsentReceipt(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	var body any
	name, ct := "consent-"+cr.Record.ID, "application/json"
	switch r.URL.Query().Get("format") {
	case "kantara":
		body, name = cr.Kantara, name+"-kantara.json"
	case "iso-27560", "":
		body, name, ct = cr.ISO27560, name+"-iso27560.jsonld", "application/ld+json"
	default:
		s.uiFail(w, r, session, http.StatusBadRequest, errConsentFormat)
		return
	}
	b, _ := json.MarshalIndent(body, "", "  ")
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(b)
}
