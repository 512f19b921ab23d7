package api

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

// The owner's web UI: server-rendered HTML forms, no JavaScript, embedded
// in the binary. Each handler, like the JSON API's, makes vault calls and
// renders; the decisions are the vault's.
//
// Security: the session is the owner token in an HttpOnly, SameSite=Strict
// cookie; every POST carries a CSRF token derived from that session (an
// attacker's page cannot read the cookie, so cannot compute it) and must
// come from this origin; pages send a Content-Security-Policy that allows
// nothing but this origin's stylesheet.

//go:embed ui
var uiFiles embed.FS

const (
	sessionCookie = "pdvault_session"
	uiCSP         = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

// pageData is what every template gets.
type pageData struct {
	Title   string
	Nav     string
	CSRF    string
	Flash   string
	Error   string
	Reasons []string
	Refresh int // seconds; the page reloads itself (a running import)
	Data    any
	Scripts bool // the page loads its own script (uiScriptCSP)
	// DomainNav shows the "Domain" page (a host with custom domains).
	DomainNav bool
}

// templates are parsed once per process: a host opens many vaults.
var templates = sync.OnceValue(loadTemplates)

func loadTemplates() map[string]*template.Template {
	funcs := template.FuncMap{
		"dur": func(secs int64) string { return humanDuration(time.Duration(secs) * time.Second) },
		"date": func(t any) string {
			switch x := t.(type) {
			case time.Time:
				return x.UTC().Format("2006-01-02 15:04 UTC")
			case *time.Time:
				if x == nil {
					return ""
				}
				return x.UTC().Format("2006-01-02 15:04 UTC")
			case int64:
				return time.Unix(x, 0).UTC().Format("2006-01-02 15:04:05 UTC")
			}
			return ""
		},
		"join":  strings.Join,
		"scope": policy.Scope,
		"short": func(s string) string {
			if len(s) > 12 {
				return s[:12] + "…"
			}
			return s
		},
		"json": func(b []byte) string {
			var out bytes.Buffer
			if json.Indent(&out, b, "", "  ") != nil {
				return string(b)
			}
			return out.String()
		},
		"checked":   func(list []string, s string) bool { return slices.Contains(list, s) },
		"hasPrefix": strings.HasPrefix,
		"bytes":     humanBytes,
	}
	pages, err := fs.Glob(uiFiles, "ui/*.html")
	if err != nil {
		panic(err)
	}
	out := map[string]*template.Template{}
	for _, p := range pages {
		name := strings.TrimSuffix(strings.TrimPrefix(p, "ui/"), ".html")
		if name == "layout" {
			continue
		}
		out[name] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(uiFiles, "ui/layout.html", p))
	}
	return out
}

// humanDuration says a duration in the largest whole unit.
func humanDuration(d time.Duration) string {
	unit := func(n int64, word string) string {
		if n == 1 {
			return "1 " + word
		}
		return strconv.FormatInt(n, 10) + " " + word + "s"
	}
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return unit(int64(d/(24*time.Hour)), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	case d >= time.Minute:
		return unit(int64(d/time.Minute), "minute")
	}
	return unit(int64(d/time.Second), "second")
}

// staticFiles serves the UI's style sheet and scripts under /ui/static/.
func staticFiles() http.Handler {
	static, _ := fs.Sub(uiFiles, "ui/static")
	return http.StripPrefix("/ui/static/", http.FileServerFS(static))
}

func (s *server) uiRoutes(r *mux.Router) {
	r.PathPrefix("/ui/static/").Handler(staticFiles()).Methods(http.MethodGet).Name("ui.static")
	r.Handle("/", http.RedirectHandler("/ui/", http.StatusSeeOther)).Methods(http.MethodGet).Name("ui.root")
	r.HandleFunc("/ui/login", s.uiLoginForm).Methods(http.MethodGet).Name("ui.login")
	r.HandleFunc("/ui/login", s.uiLogin).Methods(http.MethodPost).Name("ui.login.post")

	get := func(path, name string, h func(http.ResponseWriter, *http.Request, string)) {
		r.Handle(path, s.uiAuth(h, false)).Methods(http.MethodGet).Name(name)
	}
	post := func(path, name string, h func(http.ResponseWriter, *http.Request, string)) {
		r.Handle(path, s.uiAuth(h, true)).Methods(http.MethodPost).Name(name)
	}
	post("/ui/logout", "ui.logout", s.uiLogout)
	get("/ui/", "ui.home", s.uiHome)
	get("/ui/requests", "ui.requests", s.uiRequests)
	get("/ui/requests/{id}", "ui.request", s.uiRequest)
	post("/ui/requests/{id}/approve", "ui.request.approve", s.uiApprove)
	post("/ui/requests/{id}/deny", "ui.request.deny", s.uiDeny)
	get("/ui/relationships", "ui.relationships", s.uiRelationships)
	get("/ui/relationships/{id}", "ui.relationship", s.uiRelationship)
	post("/ui/relationships/{id}/verify", "ui.relationship.verify", s.uiVerifyDomain)
	post("/ui/relationships/{id}/reaccept", "ui.relationship.reaccept", s.uiReaccept)
	get("/ui/grants/{id}/revoke", "ui.grant.revoke.confirm", s.uiRevokeConfirm)
	post("/ui/grants/{id}/revoke", "ui.grant.revoke", s.uiRevoke)
	get("/ui/grants/{id}/consent", "ui.grant.consent", s.uiConsent)
	get("/ui/records", "ui.collections", s.uiCollections)
	get("/ui/records/{collection}", "ui.records", s.uiRecords)
	get("/ui/documents", "ui.documents", s.uiDocuments)
	r.Handle("/ui/documents", s.uiUploadAuth(s.uiDocumentUpload)).Methods(http.MethodPost).Name("ui.documents.upload")
	get("/ui/documents/{id}/content", "ui.documents.content", s.uiDocumentContent)
	get("/ui/search", "ui.search", s.uiSearch)
	get("/ui/imports", "ui.imports", s.uiImports)
	r.Handle("/ui/imports", s.uiUploadAuth(s.uiImportUpload)).Methods(http.MethodPost).Name("ui.imports.upload")
	get("/ui/imports/{id}", "ui.import", s.uiImportJob)
	get("/ui/records/{collection}/new", "ui.record.new", s.uiRecordNew)
	post("/ui/records/{collection}/new", "ui.record.create", s.uiRecordCreate)
	get("/ui/records/{collection}/{id}", "ui.record", s.uiRecord)
	post("/ui/records/{collection}/{id}", "ui.record.save", s.uiRecordSave)
	get("/ui/records/{collection}/{id}/delete", "ui.record.delete.confirm", s.uiRecordDeleteConfirm)
	post("/ui/records/{collection}/{id}/delete", "ui.record.delete", s.uiRecordDelete)
	get("/ui/terms", "ui.terms", s.uiTerms)
	post("/ui/terms", "ui.terms.save", s.uiTermsSave)
	get("/ui/intents", "ui.intents", s.uiIntents)
	post("/ui/intents", "ui.intents.publish", s.uiPublishIntent)
	post("/ui/intents/{id}/close", "ui.intents.close", s.uiCloseIntent)
	post("/ui/offers/{id}/accept", "ui.offers.accept", s.uiAcceptOffer)
	post("/ui/offers/{id}/decline", "ui.offers.decline", s.uiDeclineOffer)
	get("/ui/notifications", "ui.notifications", s.uiNotifications)
	post("/ui/notifications", "ui.notifications.add", s.uiAddChannel)
	post("/ui/notifications/webpush", "ui.notifications.webpush", s.uiAddPush)
	post("/ui/notifications/{id}/test", "ui.notifications.test", s.uiTestChannel)
	post("/ui/notifications/{id}/remove", "ui.notifications.remove", s.uiRemoveChannel)
	get("/ui/audit", "ui.audit", s.uiAudit)
	post("/ui/audit/verify", "ui.audit.verify", s.uiAuditVerify)
}

// csrfFor derives the CSRF token from the session token. Only someone who
// can read the HttpOnly cookie can compute it.
func csrfFor(session string) string {
	sum := sha256.Sum256([]byte("pdvault csrf\x00" + session))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// sameOrigin refuses a state-changing request that says it comes from
// another origin (Origin, or Referer when there is no Origin).
func sameOrigin(r *http.Request) bool {
	src := r.Header.Get("Origin")
	if src == "" {
		src = r.Header.Get("Referer")
	}
	if src == "" || src == "null" {
		return src == "" // no header: not a browser form post from elsewhere
	}
	u, err := url.Parse(src)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

var (
	errCSRF        = policy.E(policy.KindForbidden, "csrf", "the form is stale or came from another site; reload the page and try again")
	errSignedOut   = errors.New("signed out")
	errTickOne     = policy.E(policy.KindInvalid, "invalid_scope", "tick at least one field, or deny the request")
	errBadDuration = policy.E(policy.KindInvalid, "invalid_duration", "choose a duration from the list")
	errFormVersion = policy.E(policy.KindInvalid, "invalid_request", "the form does not say which version of the record it edits; reload the page")
)

// uiAuth admits requests with a live session cookie; POSTs must also carry
// the CSRF token and come from this origin.
func (s *server) uiAuth(h func(http.ResponseWriter, *http.Request, string), post bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(sessionCookie)
		if err != nil || s.svc.Authenticate(c.Value) != nil {
			if post {
				s.uiFail(w, r, "", http.StatusUnauthorized, vault.ErrNoSession)
				return
			}
			http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
			return
		}
		if post {
			r.Body = http.MaxBytesReader(w, r.Body, s.maxBody)
			if err := r.ParseForm(); err != nil {
				s.uiFail(w, r, c.Value, http.StatusRequestEntityTooLarge, errTooLarge)
				return
			}
			want := csrfFor(c.Value)
			if !sameOrigin(r) || subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(want)) != 1 {
				s.uiFail(w, r, c.Value, http.StatusForbidden, errCSRF)
				return
			}
		}
		h(w, r, c.Value)
	})
}

// render writes a page with the UI's security headers.
func (s *server) render(w http.ResponseWriter, r *http.Request, status int, page string, session string, d pageData) {
	t, ok := s.pages[page]
	if !ok {
		panic("no page " + page)
	}
	if session != "" {
		d.CSRF = csrfFor(session)
		if dv, ok := s.svc.(interface{ DomainsAllowed() bool }); ok && dv.DomainsAllowed() {
			d.DomainNav = true
		}
	}
	if d.Flash == "" {
		d.Flash = flashes[r.URL.Query().Get("done")]
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		s.log.Error("render", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	if d.Scripts {
		h.Set("Content-Security-Policy", uiScriptCSP)
	} else {
		h.Set("Content-Security-Policy", uiCSP)
	}
	// Browsers send Origin: null on form posts from a no-referrer page;
	// same-origin keeps the Origin header honest for the CSRF check while
	// still sending nothing to other sites.
	h.Set("Referrer-Policy", "same-origin")
	w.WriteHeader(status)
	io.WriteString(w, bidiNeutral.Replace(buf.String()))
}

// bidiNeutral shows the bidi embedding, override and isolate controls as
// a visible mark wherever they occur on a page: an organization's name
// holding U+202E would otherwise render reversed ("exe.pdf" for
// "fdp.exe"). The marks U+200E/U+200F, which right-to-left text needs and
// which reorder nothing by themselves, are kept.
var bidiNeutral = strings.NewReplacer(
	"\u202a", "\ufffd", "\u202b", "\ufffd", "\u202c", "\ufffd", "\u202d", "\ufffd", "\u202e", "\ufffd",
	"\u2066", "\ufffd", "\u2067", "\ufffd", "\u2068", "\ufffd", "\u2069", "\ufffd")

// flashes are the messages a redirect may ask for, by key: the UI never
// echoes text from the URL.
var flashes = map[string]string{
	"approved": "Approved. The organization can now collect its grant.",
	"denied":   "Denied.",
	"revoked":  "Revoked. The organization's next request with that grant is refused.",
	"saved":    "Saved.",
	"channel":  "Channel added. Send it a test message to check it.",
	"test":     "Test message queued; its delivery shows below within seconds.",
	"removed":  "Channel removed.",
	"created":  "Record created.",
	"uploaded": "Document added, encrypted.",
	"deleted":  "Record deleted.",
	"terms":    "Terms saved. New requests must accept this version.",
	"reaccept": "Notice queued: the organization is asked to accept your current terms.",
	"verified": "Domain verified.",
	"intent":   "Published. Organizations can read it at /v1/intents and answer with offers.",
	"closed":   "Closed. It is off the feed; open offers were declined.",
	"accepted": "Offer accepted: it is now a request. Approve it, narrow it or deny it below.",
	"declined": "Offer declined.",
	"domain":   "Your vault now answers at your domain. Organizations were sent a signed notice and keep their grants.",
	"nodomain": "Your vault answers at its address on this host again. Organizations were sent a signed notice.",
}

// uiDo runs one vault action and, if it worked, redirects to the page
// that shows the result; if not, it shows why.
func (s *server) uiDo(w http.ResponseWriter, r *http.Request, session string, action func() error, next string) {
	if err := action(); err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// uiFail renders an error page for a vault error, with its status.
func (s *server) uiFail(w http.ResponseWriter, r *http.Request, session string, status int, err error) {
	var pe *policy.Error
	if !errors.As(err, &pe) {
		pe = policy.Internal("ui", err)
	}
	if status == 0 {
		status = statusOf(pe.Kind)
	}
	if status >= 500 {
		s.log.Error("ui request failed", "route", routeName(r), "err", err)
	}
	s.render(w, r, status, "error", session, pageData{Title: "Something went wrong", Error: pe.Msg, Reasons: pe.Reasons})
}

func statusOf(k policy.Kind) int { return status(k) }

func (s *server) uiLoginForm(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "login", "", pageData{Title: "Unlock"})
}

func (s *server) uiLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil || !sameOrigin(r) {
		s.render(w, r, http.StatusBadRequest, "login", "", pageData{Title: "Unlock", Error: "The form could not be read; try again."})
		return
	}
	pass := r.PostFormValue("passphrase")
	if pass == "" || len(pass) > maxPassphrase {
		s.render(w, r, http.StatusBadRequest, "login", "", pageData{Title: "Unlock", Error: "Enter your passphrase."})
		return
	}
	var device string
	if ck, err := r.Cookie(deviceCookie); err == nil {
		device = ck.Value
	}
	res, err := s.svc.Login(r.Context(), []byte(pass), vault.LoginSource{Address: sourceAddress(r), Device: device})
	if err != nil {
		var pe *policy.Error
		errors.As(err, &pe)
		msg := "The passphrase is wrong."
		if pe != nil && pe.Kind == policy.KindThrottled {
			msg = fmt.Sprintf("Too many wrong passphrases. Try again in %d seconds.", int(pe.RetryAfter.Seconds()+0.999))
			w.Header().Set("Retry-After", strconv.Itoa(int(pe.RetryAfter.Seconds()+0.999)))
		} else if pe == nil || pe.Kind != policy.KindUnauthenticated {
			s.uiFail(w, r, "", 0, err)
			return
		}
		s.render(w, r, statusOf(policy.KindOf(err)), "login", "", pageData{Title: "Unlock", Error: msg})
		return
	}
	s.setSessionCookie(w, res.Session)
	// The device token: this browser stays exempt from the global login
	// throttle (it is throttled only by its own failures).
	http.SetCookie(w, &http.Cookie{Name: deviceCookie, Value: res.Device, Path: "/ui/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: strings.HasPrefix(s.svc.Issuer(), "https://"), MaxAge: 365 * 24 * 3600})
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

func (s *server) setSessionCookie(w http.ResponseWriter, sess vault.Session) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: sess.Token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: strings.HasPrefix(s.svc.Issuer(), "https://"), MaxAge: int(sess.ExpiresIn.Seconds()),
	})
}

func (s *server) uiLogout(w http.ResponseWriter, r *http.Request, session string) {
	s.svc.Logout(session)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

type homeData struct {
	Pending       []vault.Request
	MorePending   bool
	Dropped       int64
	Relationships []vault.Relationship
	Attention     []vault.Relationship // overdue deletions or failed notices
}

// homePage is how many requests and relationships the overview shows.
const homePage = 20

func (s *server) uiHome(w http.ResponseWriter, r *http.Request, session string) {
	pending, err := s.svc.ListRequests(r.Context(), vault.StatusPending, vault.PageQuery{Limit: homePage})
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	rels, err := s.svc.ListRelationships(r.Context(), vault.PageQuery{Limit: homePage})
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	d := homeData{Pending: pending.Requests, MorePending: pending.Next != "", Dropped: pending.Dropped, Relationships: rels.Relationships}
	for _, rel := range rels.Relationships {
		failed := slices.ContainsFunc(rel.Notices, func(n vault.Notice) bool { return n.Status == vault.NoticeFailed })
		if rel.Deletion == policy.DeletionOverdue || failed {
			d.Attention = append(d.Attention, rel)
		}
	}
	s.render(w, r, http.StatusOK, "home", session, pageData{Title: "Overview", Nav: "home", Data: d})
}

func (s *server) uiRequests(w http.ResponseWriter, r *http.Request, session string) {
	reqs, err := s.svc.ListRequests(r.Context(), "", vault.PageQuery{Cursor: r.URL.Query().Get("cursor")})
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	s.render(w, r, http.StatusOK, "requests", session, pageData{Title: "Requests", Nav: "requests", Data: reqs})
}

// requestView is a request with what the owner needs to judge it.
type requestView struct {
	vault.Request
	Verified       string
	PurposeText    string // the terms' description of the purpose
	TermsCurrent   bool
	Durations      []durationChoice
	GrantedFields  []string // collection.field, for a decided request
	RequestedPairs []string
	// Documents the owner may pick to grant only those (a pending request
	// for documents): the newest 100 of the kinds asked for.
	Documents []documentChoice
}

type documentChoice struct {
	ID                string
	Title, Kind, Date string
}

type durationChoice struct {
	Seconds int64
	Label   string
}

func (s *server) requestView(r *http.Request, req vault.Request) requestView {
	v := requestView{Request: req}
	if rel, err := s.svc.GetRelationship(r.Context(), req.RelationshipID); err == nil {
		v.Verified = rel.VerifiedDomain
	}
	terms := s.svc.CurrentTerms()
	v.TermsCurrent = terms.Hash == req.TermsHash
	for _, p := range terms.Terms.Purposes {
		if p.ID == req.Purpose {
			v.PurposeText = p.Description
		}
	}
	v.Durations = []durationChoice{{req.Duration, humanDuration(time.Duration(req.Duration)*time.Second) + " (as asked)"}}
	for _, d := range []time.Duration{30 * 24 * time.Hour, 7 * 24 * time.Hour, 24 * time.Hour, time.Hour} {
		if secs := int64(d / time.Second); secs < req.Duration {
			v.Durations = append(v.Durations, durationChoice{secs, humanDuration(d)})
		}
	}
	for _, d := range req.GrantedDetails {
		for _, f := range d.Fields {
			v.GrantedFields = append(v.GrantedFields, d.Collection+"."+f)
		}
	}
	if d, ok := policy.Detail(req.Details, vault.DocumentsCollection); ok && req.Status == vault.StatusPending && len(d.Fields) > 0 {
		if p, err := s.svc.ListRecords(r.Context(), vault.DocumentsCollection, 100, ""); err == nil {
			for _, rec := range p.Records {
				m, err := vault.DocumentMedia(rec)
				if err != nil || (len(d.Kinds) > 0 && !slices.Contains(d.Kinds, m.Kind)) {
					continue
				}
				v.Documents = append(v.Documents, documentChoice{ID: rec.ID, Title: cmp.Or(m.Title, m.FileName, "document"), Kind: m.Kind, Date: m.Date})
			}
		}
	}
	return v
}

func (s *server) uiRequest(w http.ResponseWriter, r *http.Request, session string) {
	req, err := s.svc.GetRequest(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	s.render(w, r, http.StatusOK, "request", session, pageData{Title: "Request from " + req.ClientName, Nav: "requests", Data: s.requestView(r, req)})
}

// uiApprove turns the ticked boxes and the chosen duration into an
// approval; everything ticked and the asked duration is "as asked".
func (s *server) uiApprove(w http.ResponseWriter, r *http.Request, session string) {
	id := mux.Vars(r)["id"]
	req, err := s.svc.GetRequest(r.Context(), id)
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	ticked, tickedClaims, docs := r.PostForm["field"], r.PostForm["claim"], r.PostForm["document"]
	var a vault.Approval
	all := true
	for _, d := range req.Details {
		var fields, claims, ids []string
		if d.Collection == vault.DocumentsCollection && len(docs) > 0 {
			ids, all = docs, false // only the documents ticked (the vault checks they are ids)
		}
		for _, f := range d.Fields {
			if slices.Contains(ticked, d.Collection+"."+f) {
				fields = append(fields, f)
			} else {
				all = false
			}
		}
		for _, c := range d.Claims {
			if slices.Contains(tickedClaims, d.Collection+"|"+c) {
				claims = append(claims, c)
			} else {
				all = false
			}
		}
		if len(fields) > 0 || len(claims) > 0 {
			a.Details = append(a.Details, policy.AuthorizationDetail{Type: policy.DetailType, Collection: d.Collection, Fields: fields, Claims: claims,
				Kinds: d.Kinds, IDs: ids})
		}
	}
	if len(a.Details) == 0 {
		s.uiFail(w, r, session, http.StatusBadRequest, errTickOne)
		return
	}
	if all {
		a.Details = nil
	}
	if d := r.PostFormValue("duration"); d != "" {
		secs, err := strconv.ParseInt(d, 10, 64)
		if err != nil {
			s.uiFail(w, r, session, http.StatusBadRequest, errBadDuration)
			return
		}
		if secs != req.Duration {
			a.Duration = secs
		}
	}
	s.uiDo(w, r, session, func() error { _, err := s.svc.Approve(r.Context(), id, a); return err }, "/ui/requests/"+id+"?done=approved")
}

func (s *server) uiDeny(w http.ResponseWriter, r *http.Request, session string) {
	id := mux.Vars(r)["id"]
	s.uiDo(w, r, session, func() error { _, err := s.svc.Deny(r.Context(), id, r.PostFormValue("reason")); return err }, "/ui/requests/"+id+"?done=denied")
}

func (s *server) uiRelationships(w http.ResponseWriter, r *http.Request, session string) {
	rels, err := s.svc.ListRelationships(r.Context(), vault.PageQuery{Cursor: r.URL.Query().Get("cursor")})
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	s.render(w, r, http.StatusOK, "relationships", session, pageData{Title: "Relationships", Nav: "relationships", Data: rels})
}

func (s *server) uiRelationship(w http.ResponseWriter, r *http.Request, session string) {
	rel, err := s.svc.GetRelationship(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	s.render(w, r, http.StatusOK, "relationship", session, pageData{Title: rel.Name, Nav: "relationships", Data: rel})
}

func (s *server) uiVerifyDomain(w http.ResponseWriter, r *http.Request, session string) {
	id := mux.Vars(r)["id"]
	s.uiDo(w, r, session, func() error { _, err := s.svc.CheckVerification(r.Context(), id); return err }, "/ui/relationships/"+id+"?done=verified")
}

func (s *server) uiReaccept(w http.ResponseWriter, r *http.Request, session string) {
	id := mux.Vars(r)["id"]
	s.uiDo(w, r, session, func() error { _, err := s.svc.AskReaccept(r.Context(), id); return err }, "/ui/relationships/"+id+"?done=reaccept")
}

func (s *server) uiRevokeConfirm(w http.ResponseWriter, r *http.Request, session string) {
	g, err := s.svc.GetGrant(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	s.render(w, r, http.StatusOK, "revoke", session, pageData{Title: "Revoke grant", Nav: "relationships", Data: g})
}

func (s *server) uiRevoke(w http.ResponseWriter, r *http.Request, session string) {
	g, err := s.svc.Revoke(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	rel := g.ClientID
	if req, err := s.svc.GetRequest(r.Context(), g.RequestID); err == nil && req.RelationshipID != "" {
		rel = req.RelationshipID
	}
	http.Redirect(w, r, "/ui/relationships/"+rel+"?done=revoked", http.StatusSeeOther)
}

func (s *server) uiCollections(w http.ResponseWriter, r *http.Request, session string) {
	cs, err := s.svc.ListCollections(r.Context())
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	s.render(w, r, http.StatusOK, "collections", session, pageData{Title: "Records", Nav: "records", Data: cs})
}

type recordData struct {
	Collection string
	Record     vault.Record
	JSON       string
	New        bool
}

func (s *server) uiRecordNew(w http.ResponseWriter, r *http.Request, session string) {
	coll := mux.Vars(r)["collection"]
	if coll == "_" {
		coll = r.URL.Query().Get("name")
	}
	if err := policy.ValidateCollection(coll); err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	s.render(w, r, http.StatusOK, "record", session, pageData{Title: "New record", Nav: "records", Data: recordData{Collection: coll, JSON: "{\n  \n}", New: true}})
}

func (s *server) uiRecordCreate(w http.ResponseWriter, r *http.Request, session string) {
	coll := mux.Vars(r)["collection"]
	body := r.PostFormValue("data")
	rec, err := s.svc.CreateRecord(r.Context(), coll, []byte(body))
	if err != nil {
		s.recordFormError(w, r, session, recordData{Collection: coll, JSON: body, New: true}, err)
		return
	}
	http.Redirect(w, r, "/ui/records/"+coll+"/"+rec.ID+"?done=created", http.StatusSeeOther)
}

// recordFormError shows the form again, with what the owner typed and what
// is wrong with it.
func (s *server) recordFormError(w http.ResponseWriter, r *http.Request, session string, d recordData, err error) {
	var pe *policy.Error
	if !errors.As(err, &pe) || pe.Kind == policy.KindInternal {
		s.uiFail(w, r, session, 0, err)
		return
	}
	s.render(w, r, statusOf(pe.Kind), "record", session, pageData{Title: "Edit record", Nav: "records", Error: pe.Msg, Data: d})
}

func (s *server) uiRecord(w http.ResponseWriter, r *http.Request, session string) {
	v := mux.Vars(r)
	rec, err := s.svc.GetRecord(r.Context(), v["collection"], v["id"])
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	var pretty bytes.Buffer
	json.Indent(&pretty, rec.Data, "", "  ")
	s.render(w, r, http.StatusOK, "record", session, pageData{Title: "Record", Nav: "records", Data: recordData{Collection: rec.Collection, Record: rec, JSON: pretty.String()}})
}

// formVersion reads the version a form was made from: the edit applies
// only to that version.
func formVersion(r *http.Request) (int64, error) {
	ver, err := strconv.ParseInt(r.PostFormValue("version"), 10, 64)
	if err != nil || ver < 1 {
		return 0, errFormVersion
	}
	return ver, nil
}

func (s *server) uiRecordSave(w http.ResponseWriter, r *http.Request, session string) {
	v := mux.Vars(r)
	ver, err := formVersion(r)
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	body := r.PostFormValue("data")
	rec, err := s.svc.UpdateRecord(r.Context(), v["collection"], v["id"], []byte(body), ver)
	if err != nil {
		cur, gerr := s.svc.GetRecord(r.Context(), v["collection"], v["id"])
		if gerr != nil {
			s.uiFail(w, r, session, 0, err)
			return
		}
		s.recordFormError(w, r, session, recordData{Collection: v["collection"], Record: cur, JSON: body}, err)
		return
	}
	http.Redirect(w, r, "/ui/records/"+rec.Collection+"/"+rec.ID+"?done=saved", http.StatusSeeOther)
}

func (s *server) uiRecordDeleteConfirm(w http.ResponseWriter, r *http.Request, session string) {
	v := mux.Vars(r)
	rec, err := s.svc.GetRecord(r.Context(), v["collection"], v["id"])
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	s.render(w, r, http.StatusOK, "delete", session, pageData{Title: "Delete record", Nav: "records", Data: rec})
}

func (s *server) uiRecordDelete(w http.ResponseWriter, r *http.Request, session string) {
	v := mux.Vars(r)
	ver, err := formVersion(r)
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	s.uiDo(w, r, session, func() error { return s.svc.DeleteRecord(r.Context(), v["collection"], v["id"], ver) }, "/ui/records/"+v["collection"]+"?done=deleted")
}

type termsData struct {
	Current vault.TermsDoc
	JSON    string
	Preview *vault.TermsDoc
}

func (s *server) uiTerms(w http.ResponseWriter, r *http.Request, session string) {
	cur := s.svc.CurrentTerms()
	b, _ := json.MarshalIndent(cur.Terms, "", "  ")
	s.render(w, r, http.StatusOK, "terms", session, pageData{Title: "Terms", Nav: "terms", Data: termsData{Current: cur, JSON: string(b)}})
}

// uiTermsSave previews or saves the terms typed in the form.
func (s *server) uiTermsSave(w http.ResponseWriter, r *http.Request, session string) {
	body := r.PostFormValue("terms")
	d := termsData{Current: s.svc.CurrentTerms(), JSON: body}
	if r.PostFormValue("action") == "save" {
		if _, err := s.svc.SetTerms(r.Context(), []byte(body)); err == nil {
			http.Redirect(w, r, "/ui/terms?done=terms", http.StatusSeeOther)
			return
		} else {
			s.termsError(w, r, session, d, err)
			return
		}
	}
	p, err := s.svc.PreviewTerms([]byte(body))
	if err != nil {
		s.termsError(w, r, session, d, err)
		return
	}
	d.Preview = &p
	s.render(w, r, http.StatusOK, "terms", session, pageData{Title: "Terms", Nav: "terms", Data: d})
}

func (s *server) termsError(w http.ResponseWriter, r *http.Request, session string, d termsData, err error) {
	var pe *policy.Error
	if !errors.As(err, &pe) || pe.Kind == policy.KindInternal {
		s.uiFail(w, r, session, 0, err)
		return
	}
	s.render(w, r, statusOf(pe.Kind), "terms", session, pageData{Title: "Terms", Nav: "terms", Error: pe.Msg, Reasons: pe.Reasons, Data: d})
}

type auditData struct {
	Page   vault.AuditPage
	Report *vault.AuditReport
	Anchor *browserAnchor
}

// The web UI's anchor: the head of the last log this browser verified,
// kept in the browser (an HttpOnly cookie) — outside the vault's file, so a
// whole older copy of the file put back is caught the next time the owner
// verifies from this browser, as the CLI's anchor catches it.
const (
	anchorCookie = "pdvault_audit_head"
	deviceCookie = "pdvault_device"
)

type browserAnchor struct {
	KeptSize int64
	KeptAt   time.Time
	Size     int64
	Problem  string // rolled back or rewritten since this browser's last check
}

// checkBrowserAnchor holds a verified report against the head this browser
// kept, and returns the cookie to keep (nil when the log does not extend it).
func (s *server) checkBrowserAnchor(r *http.Request, rep vault.AuditReport) (browserAnchor, *http.Cookie) {
	ba := browserAnchor{Size: rep.Entries}
	vid, ok := strings.CutPrefix(strings.SplitN(rep.TreeHead, "\n", 2)[0], policy.TreeHeadOrigin(""))
	root, err := tlog.ParseHash(base64StdFromURL(rep.Head))
	if !ok || err != nil {
		return ba, nil
	}
	if ck, err := r.Cookie(anchorCookie); err == nil {
		if size, kroot, at, ok := parseAnchorCookie(ck.Value); ok {
			ba.KeptSize, ba.KeptAt = size, at
			kept := policy.TreeHead{Size: size, Root: kroot}
			ba.Problem = s.anchorProblem(r, vid, kept, policy.TreeHead{Size: rep.Entries, Root: root})
			if ba.Problem != "" {
				return ba, nil
			}
		}
	}
	return ba, &http.Cookie{Name: anchorCookie, Path: "/ui/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: strings.HasPrefix(s.svc.Issuer(), "https://"), MaxAge: 10 * 365 * 24 * 3600,
		Value: fmt.Sprintf("%d.%s.%d", rep.Entries, base64.RawURLEncoding.EncodeToString(root[:]), time.Now().Unix())}
}

// anchorProblem says why the current log does not extend the kept head, or "".
func (s *server) anchorProblem(r *http.Request, vid string, kept, now policy.TreeHead) string {
	if now.Size < kept.Size {
		return policy.ErrLogRolledBack.Msg
	}
	p, err := s.svc.Consistency(r.Context(), kept.Size)
	if err != nil {
		return policy.ErrLogRolledBack.Msg
	}
	var keys []ed25519.PublicKey
	for _, k := range s.svc.JWKS().Keys {
		if pk, ok := k.Key.(ed25519.PublicKey); ok {
			keys = append(keys, pk)
		}
	}
	nh, err := policy.OpenTreeHead(p.TreeHead, vid, keys)
	if err != nil {
		return policy.ErrLogForked.Msg
	}
	proof := make(tlog.TreeProof, len(p.Proof))
	for i, h := range p.Proof {
		if proof[i], err = tlog.ParseHash(h); err != nil {
			return policy.ErrLogForked.Msg
		}
	}
	if err := policy.CheckConsistency(kept, nh, proof); err != nil {
		return policy.ErrLogForked.Msg
	}
	return ""
}

func parseAnchorCookie(v string) (int64, tlog.Hash, time.Time, bool) {
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return 0, tlog.Hash{}, time.Time{}, false
	}
	size, err1 := strconv.ParseInt(parts[0], 10, 64)
	raw, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	at, err3 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || size < 1 || len(raw) != tlog.HashSize {
		return 0, tlog.Hash{}, time.Time{}, false
	}
	var h tlog.Hash
	copy(h[:], raw)
	return size, h, time.Unix(at, 0), true
}

func base64StdFromURL(s string) string {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(b)
}

func (s *server) uiAudit(w http.ResponseWriter, r *http.Request, session string) {
	p, err := s.svc.ListAudit(r.Context(), 100, r.URL.Query().Get("cursor"))
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	s.render(w, r, http.StatusOK, "audit", session, pageData{Title: "Audit log", Nav: "audit", Data: auditData{Page: p}})
}

func (s *server) uiAuditVerify(w http.ResponseWriter, r *http.Request, session string) {
	rep, err := s.svc.VerifyAudit(r.Context())
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	p, err := s.svc.ListAudit(r.Context(), 100, "")
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	data := auditData{Page: p, Report: &rep}
	if rep.OK && rep.TreeHead != "" {
		ba, ck := s.checkBrowserAnchor(r, rep)
		data.Anchor = &ba
		if ck != nil {
			http.SetCookie(w, ck)
		}
	}
	s.render(w, r, http.StatusOK, "audit", session, pageData{Title: "Audit log", Nav: "audit", Data: data})
}

func (s *server) uiIntents(w http.ResponseWriter, r *http.Request, session string) {
	list, err := s.svc.OwnerIntents(r.Context())
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	s.render(w, r, http.StatusOK, "intents", session, pageData{Title: "Intents", Nav: "intents", Data: list})
}

func (s *server) uiPublishIntent(w http.ResponseWriter, r *http.Request, session string) {
	in := policy.IntentInput{Title: r.PostFormValue("title"), Description: r.PostFormValue("description"),
		Category: r.PostFormValue("category"), Region: r.PostFormValue("region"), ValidFor: r.PostFormValue("valid")}
	if b := strings.TrimSpace(r.PostFormValue("budget")); b != "" {
		amount, cur, err := policy.ParseMoney(b)
		if err != nil {
			s.uiFail(w, r, session, http.StatusBadRequest, policy.ErrInvalidIntent.WithReasons([]string{"budget: " + err.Error()}))
			return
		}
		in.Budget = &policy.Budget{Max: amount, Currency: cur}
	}
	s.uiDo(w, r, session, func() error { _, err := s.svc.PublishIntent(r.Context(), in); return err }, "/ui/intents?done=intent")
}

func (s *server) uiCloseIntent(w http.ResponseWriter, r *http.Request, session string) {
	s.uiDo(w, r, session, func() error { _, err := s.svc.CloseIntent(r.Context(), mux.Vars(r)["id"]); return err }, "/ui/intents?done=closed")
}

func (s *server) uiAcceptOffer(w http.ResponseWriter, r *http.Request, session string) {
	req, err := s.svc.AcceptOffer(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	http.Redirect(w, r, "/ui/requests/"+req.ID+"?done=accepted", http.StatusSeeOther)
}

func (s *server) uiDeclineOffer(w http.ResponseWriter, r *http.Request, session string) {
	s.uiDo(w, r, session, func() error { return s.svc.DeclineOffer(r.Context(), mux.Vars(r)["id"]) }, "/ui/intents?done=declined")
}
