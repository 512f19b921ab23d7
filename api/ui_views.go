package api

import (
	"cmp"
	"crypto/subtle"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
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
// vault. Fields come in form order: csrf first (checked before anything
// else is read), then the description, then the file.
func (s *server) uiDocumentUpload(w http.ResponseWriter, r *http.Request, session string) {
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
			mt := part.Header.Get("Content-Type")
			if t, _, _ := mime.ParseMediaType(mt); t == "application/octet-stream" {
				mt = ""
			}
			rc := http.NewResponseController(w)
			rc.SetReadDeadline(time.Now().Add(documentTime))
			rc.SetWriteDeadline(time.Now().Add(documentTime + time.Minute))
			body := &bodyReader{r: http.MaxBytesReader(w, io.NopCloser(part), vault.MaxDocumentSize)}
			_, err := s.svc.AddDocument(r.Context(), body, vault.DocumentInput{FileName: part.FileName(), Title: fields["title"],
				Kind: fields["kind"], Date: fields["date"], Counterparty: fields["counterparty"], MediaType: mt})
			if err != nil {
				s.uiFail(w, r, session, 0, err)
				return
			}
			http.Redirect(w, r, "/ui/documents?done=uploaded", http.StatusSeeOther)
			return
		}
		if _, seen := fields[name]; seen || len(fields) > 8 {
			s.uiFail(w, r, session, http.StatusBadRequest, errUploadForm)
			return
		}
		b, err := io.ReadAll(io.LimitReader(part, 1025))
		if err != nil || len(b) > 1024 {
			s.uiFail(w, r, session, http.StatusBadRequest, errUploadForm)
			return
		}
		fields[name] = strings.TrimSpace(string(b))
	}
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
