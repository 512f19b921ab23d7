// Package api is pdvault's HTTP adapter: it decodes a request, calls one
// vault method, and encodes the answer. No business rule lives here; the
// only decisions made here are about HTTP itself (routing, limits, status
// codes).
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

// DefaultMaxBody is the default limit on a request body: 1 MiB.
const DefaultMaxBody = 1 << 20

// Config tunes the HTTP layer. The zero value is ready to use.
type Config struct {
	Logger  *slog.Logger
	MaxBody int64 // bytes; default DefaultMaxBody
	// RatePerAddress limits requests per client IP address, per second,
	// with a burst of twice that; default 300; negative means no limit.
	// Behind a proxy every client shares the proxy's address.
	RatePerAddress float64
	// Hosts are the Host header values accepted besides the issuer's own
	// host (serve adds its listen address). Anything else is refused: a
	// page on another site whose name was made to resolve to the vault's
	// address (DNS rebinding) must not reach the API.
	Hosts []string
	// TrustedProxies are the peers whose Forwarded / X-Forwarded-*
	// headers are believed (proxy.go); empty: nobody's.
	TrustedProxies []netip.Prefix
	// Metrics, when set, counts requests by route and outcome (metrics.go).
	Metrics *Metrics
	// MetricsToken, when set with Metrics, serves /metrics on this handler
	// to requests bearing it; without it /metrics is not served here.
	MetricsToken string
}

type server struct {
	svc     vault.Service
	log     *slog.Logger
	maxBody int64
	pages   map[string]*template.Template
	metrics *Metrics

	headHeader atomic.Pointer[encodedHead] // the last tree head, as a header value
	openapi    *openAPIDoc                 // shared by a host's vaults; nil: built from this router
}

// New returns the HTTP handler for a vault.
func New(svc vault.Service, cfg Config) http.Handler {
	cfg.defaults()
	s, inner := newVaultHandler(svc, cfg)
	return s.outer(cfg, inner)
}

func (cfg *Config) defaults() {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.RatePerAddress == 0 {
		cfg.RatePerAddress = 300
	}
}

// newVaultHandler is one vault's routes behind its host check and its
// per-address limit: what a host serving many vaults puts behind its own
// outer layers (hosting.go).
func newVaultHandler(svc vault.Service, cfg Config) (*server, http.Handler) {
	s := &server{svc: svc, log: cfg.Logger.With("component", "api"), maxBody: cfg.MaxBody, pages: templates(), metrics: cfg.Metrics}
	r := s.routes(cfg)
	limit := policy.NewLimiter(cfg.RatePerAddress, int(2*cfg.RatePerAddress))
	return s, s.checkHost(cfg.Hosts, limitAddresses(limit, s.log, r))
}

// outer is what every request meets first: recovery, the proxy's
// forwarded headers, the access log and metrics, the security headers.
func (s *server) outer(cfg Config, next http.Handler) http.Handler {
	return s.recover(forwarded(cfg.TrustedProxies, s.logRequests(securityHeaders(next))))
}

// routes is the router: every endpoint, named (the names are the
// OpenAPI operation ids and the metrics' route label).
func (s *server) routes(cfg Config) *mux.Router {
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeError(w, r, s.log, errNotFound) })
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: errMethod.Code, Description: errMethod.Msg})
	})
	// The hot path first: gorilla/mux tries routes in order.
	r.HandleFunc("/v1/data/documents/{id}/content", s.readDocument).Methods(http.MethodGet, http.MethodHead).Name("data.document")
	r.HandleFunc("/v1/data/{collection}", s.readCollection).Methods(http.MethodGet).Name("data.collection")
	r.HandleFunc("/v1/data/{collection}/{id}", s.readRecord).Methods(http.MethodGet).Name("data.record")
	r.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}).Methods(http.MethodGet).Name("healthz")
	// Ready: unlocked, and the database takes a write lock.
	r.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.svc.Ready(r.Context()); err != nil {
			writeError(w, r, s.log, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}).Methods(http.MethodGet).Name("readyz")
	if cfg.Metrics != nil && cfg.MetricsToken != "" {
		// On the public port only behind its own bearer token.
		r.Handle("/metrics", cfg.Metrics.Handler(cfg.MetricsToken)).Methods(http.MethodGet).Name("metrics")
	}

	r.HandleFunc("/openapi.json", s.openAPIHandler(r)).Methods(http.MethodGet).Name("openapi")

	// The organization-facing protocol (docs/protocol.md).
	r.HandleFunc("/.well-known/oauth-authorization-server", s.discovery).Methods(http.MethodGet).Name("discovery")
	r.HandleFunc("/.well-known/jwks.json", s.jwks).Methods(http.MethodGet).Name("jwks")
	r.HandleFunc(protectedResourcePath, s.protectedResource).Methods(http.MethodGet).Name("protected_resource")
	r.HandleFunc("/.well-known/myterms", s.myTerms).Methods(http.MethodGet).Name("myterms")
	r.HandleFunc("/v1/vocabulary", s.vocabulary).Methods(http.MethodGet).Name("vocabulary")
	r.HandleFunc("/v1/vocabulary/{collection}", s.vocabularySchema).Methods(http.MethodGet).Name("vocabulary.schema")
	r.HandleFunc("/v1/terms", s.currentTerms).Methods(http.MethodGet).Name("terms")
	r.HandleFunc("/v1/terms/{hash}", s.termsByHash).Methods(http.MethodGet).Name("terms.byhash")
	r.HandleFunc("/v1/requests", s.submitRequest).Methods(http.MethodPost).Name("requests.submit")
	r.HandleFunc("/v1/token", s.token).Methods(http.MethodPost).Name("token")
	r.HandleFunc("/v1/audit/head", s.auditHead).Methods(http.MethodGet).Name("audit.head")
	r.HandleFunc("/v1/audit/consistency", s.auditConsistencyPublic).Methods(http.MethodGet).Name("audit.consistency")
	r.HandleFunc("/v1/audit/proof", s.auditProof).Methods(http.MethodGet).Name("audit.proof")
	r.HandleFunc("/v1/introspect", s.introspect).Methods(http.MethodPost).Name("introspect")
	r.HandleFunc("/v1/intents", s.listIntents).Methods(http.MethodGet).Name("intents.list")
	r.HandleFunc("/v1/intents.atom", s.intentsAtom).Methods(http.MethodGet).Name("intents.atom")
	r.HandleFunc("/v1/intents/{id}", s.getIntent).Methods(http.MethodGet).Name("intents.get")
	r.HandleFunc("/v1/intents/{id}/offers", s.submitOffer).Methods(http.MethodPost).Name("intents.offer")
	r.HandleFunc("/v1/claims", s.readClaims).Methods(http.MethodGet).Name("claims")
	r.HandleFunc("/v1/revoke", s.release).Methods(http.MethodPost).Name("revoke")
	r.HandleFunc("/v1/receipts", s.receipt).Methods(http.MethodPost).Name("receipts")
	r.HandleFunc("/v1/keys", s.linkKey).Methods(http.MethodPost).Name("keys.link")
	r.HandleFunc("/v1/verification", s.startVerification).Methods(http.MethodPost).Name("verification.start")
	r.HandleFunc("/v1/verification/check", s.checkVerificationOrg).Methods(http.MethodPost).Name("verification.check")

	// Owner routes sit on the main router, not a subrouter: gorilla/mux
	// answers 404 instead of 405 for a wrong method inside a subrouter.
	o := prefixed{r, "/v1/owner"}
	o.HandleFunc("/session", s.login).Methods(http.MethodPost).Name("owner.login")
	o.Handle("/session", s.ownerAuth(s.logout)).Methods(http.MethodDelete).Name("owner.logout")
	o.Handle("/passphrase", s.ownerAuth(s.changePassphrase)).Methods(http.MethodPost).Name("owner.passphrase")
	o.Handle("/export", s.ownerAuth(s.export)).Methods(http.MethodGet).Name("owner.export")
	o.Handle("/records/{collection}", s.ownerAuth(s.listRecords)).Methods(http.MethodGet).Name("owner.records.list")
	o.Handle("/records/{collection}", s.ownerAuth(s.createRecord)).Methods(http.MethodPost).Name("owner.records.create")
	o.Handle("/records/{collection}/{id}", s.ownerAuth(s.getRecord)).Methods(http.MethodGet).Name("owner.records.get")
	o.Handle("/records/{collection}/{id}", s.ownerAuth(s.updateRecord)).Methods(http.MethodPut).Name("owner.records.update")
	o.Handle("/records/{collection}/{id}", s.ownerAuth(s.deleteRecord)).Methods(http.MethodDelete).Name("owner.records.delete")
	o.Handle("/documents", s.ownerAuth(s.listDocuments)).Methods(http.MethodGet).Name("owner.documents.list")
	o.Handle("/documents", s.ownerAuth(s.addDocument)).Methods(http.MethodPost).Name("owner.documents.add")
	o.Handle("/documents/{id}", s.ownerAuth(s.getDocument)).Methods(http.MethodGet).Name("owner.documents.get")
	o.Handle("/documents/{id}", s.ownerAuth(s.deleteDocument)).Methods(http.MethodDelete).Name("owner.documents.delete")
	o.Handle("/documents/{id}/content", s.ownerAuth(s.documentContent)).Methods(http.MethodGet, http.MethodHead).Name("owner.documents.content")
	o.Handle("/imports", s.ownerAuth(s.importData)).Methods(http.MethodPost).Name("owner.imports.create")
	o.Handle("/imports", s.ownerAuth(s.importJobs)).Methods(http.MethodGet).Name("owner.imports.list")
	o.Handle("/imports/formats", s.ownerAuth(s.importFormats)).Methods(http.MethodGet).Name("owner.imports.formats")
	o.Handle("/imports/{id}", s.ownerAuth(s.importJob)).Methods(http.MethodGet).Name("owner.imports.get")
	o.Handle("/terms", s.ownerAuth(s.currentTerms)).Methods(http.MethodGet).Name("owner.terms.get")
	o.Handle("/terms", s.ownerAuth(s.setTerms)).Methods(http.MethodPut).Name("owner.terms.set")
	o.Handle("/requests", s.ownerAuth(s.listRequests)).Methods(http.MethodGet).Name("owner.requests.list")
	o.Handle("/requests/{id}", s.ownerAuth(s.getRequest)).Methods(http.MethodGet).Name("owner.requests.get")
	o.Handle("/requests/{id}/approve", s.ownerAuth(s.approve)).Methods(http.MethodPost).Name("owner.requests.approve")
	o.Handle("/requests/{id}/deny", s.ownerAuth(s.deny)).Methods(http.MethodPost).Name("owner.requests.deny")
	o.Handle("/grants", s.ownerAuth(s.listGrants)).Methods(http.MethodGet).Name("owner.grants.list")
	o.Handle("/grants/{id}", s.ownerAuth(s.getGrant)).Methods(http.MethodGet).Name("owner.grants.get")
	o.Handle("/grants/{id}/revoke", s.ownerAuth(s.revoke)).Methods(http.MethodPost).Name("owner.grants.revoke")
	o.Handle("/grants/{id}/consent", s.ownerAuth(s.consentReceipt)).Methods(http.MethodGet).Name("owner.grants.consent")
	o.Handle("/agreements/{id}", s.ownerAuth(s.exportAgreement)).Methods(http.MethodGet).Name("owner.agreements.export")
	o.Handle("/audit", s.ownerAuth(s.listAudit)).Methods(http.MethodGet).Name("owner.audit.list")
	o.Handle("/audit/verify", s.ownerAuth(s.verifyAudit)).Methods(http.MethodGet, http.MethodPost).Name("owner.audit.verify")
	o.Handle("/audit/checkpoint", s.ownerAuth(s.checkpoint)).Methods(http.MethodPost).Name("owner.audit.checkpoint")
	o.Handle("/audit/consistency", s.ownerAuth(s.auditConsistency)).Methods(http.MethodGet).Name("owner.audit.consistency")
	o.Handle("/intents", s.ownerAuth(s.ownerIntents)).Methods(http.MethodGet).Name("owner.intents.list")
	o.Handle("/intents", s.ownerAuth(s.publishIntent)).Methods(http.MethodPost).Name("owner.intents.publish")
	o.Handle("/intents/{id}", s.ownerAuth(s.ownerIntent)).Methods(http.MethodGet).Name("owner.intents.get")
	o.Handle("/intents/{id}/close", s.ownerAuth(s.closeIntent)).Methods(http.MethodPost).Name("owner.intents.close")
	o.Handle("/offers/{id}/accept", s.ownerAuth(s.acceptOffer)).Methods(http.MethodPost).Name("owner.offers.accept")
	o.Handle("/offers/{id}/decline", s.ownerAuth(s.declineOffer)).Methods(http.MethodPost).Name("owner.offers.decline")
	o.Handle("/notifications/channels", s.ownerAuth(s.listChannels)).Methods(http.MethodGet).Name("owner.notifications.list")
	o.Handle("/notifications/channels", s.ownerAuth(s.addChannel)).Methods(http.MethodPost).Name("owner.notifications.add")
	o.Handle("/notifications/channels/{id}", s.ownerAuth(s.removeChannel)).Methods(http.MethodDelete).Name("owner.notifications.remove")
	o.Handle("/notifications/channels/{id}/test", s.ownerAuth(s.testChannel)).Methods(http.MethodPost).Name("owner.notifications.test")
	o.Handle("/notifications/vapid", s.ownerAuth(s.vapidKey)).Methods(http.MethodGet).Name("owner.notifications.vapid")
	o.Handle("/keys", s.ownerAuth(s.keyStatus)).Methods(http.MethodGet).Name("owner.keys")
	o.Handle("/keys/rotate", s.ownerAuth(s.rotateKeys)).Methods(http.MethodPost).Name("owner.keys.rotate")
	o.Handle("/relationships", s.ownerAuth(s.listRelationships)).Methods(http.MethodGet).Name("owner.relationships.list")
	o.Handle("/relationships/{id}", s.ownerAuth(s.getRelationship)).Methods(http.MethodGet).Name("owner.relationships.get")
	o.Handle("/relationships/{id}/verify", s.ownerAuth(s.checkVerification)).Methods(http.MethodPost).Name("owner.relationships.verify")
	o.Handle("/relationships/{id}/reaccept", s.ownerAuth(s.reaccept)).Methods(http.MethodPost).Name("owner.relationships.reaccept")
	o.Handle("/move", s.ownerAuth(s.announceMove)).Methods(http.MethodPost).Name("owner.move")

	s.uiRoutes(r)
	r.Use(nameRoute)
	return r
}

// checkHost refuses requests for a host the vault does not answer to
// (421 Misdirected Request, RFC 9110 §15.5.20): the issuer's host, read at
// each request since the issuer is set at start-up, and the extra hosts.
func (s *server) checkHost(extra []string, next http.Handler) http.Handler {
	allowed := map[string]bool{}
	for _, h := range extra {
		allowed[strings.ToLower(h)] = true
	}
	// The issuer's host, parsed once per issuer (it changes only at start).
	type parsed struct{ issuer, scheme, host string }
	var cache atomic.Pointer[parsed]
	issuerOrigin := func() *parsed {
		iss := s.svc.Issuer()
		if p := cache.Load(); p != nil && p.issuer == iss {
			return p
		}
		p := &parsed{issuer: iss}
		if u, err := url.Parse(iss); err == nil {
			p.scheme, p.host = u.Scheme, strings.ToLower(u.Host)
		}
		cache.Store(p)
		return p
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := strings.ToLower(r.Host)
		if allowed[host] {
			next.ServeHTTP(w, r)
			return
		}
		// The issuer's host, by the issuer's scheme when the scheme is
		// known (the vault's TLS or a trusted proxy): htu is checked
		// against the issuer, so anything else could only fail later,
		// and less clearly.
		iss := issuerOrigin()
		scheme := requestScheme(r)
		if host == iss.host && (scheme == "" || scheme == iss.scheme) {
			next.ServeHTTP(w, r)
			return
		}
		if scheme == "" {
			scheme = "http"
		}
		writeError(w, r, s.log, wrongOrigin(iss.issuer, scheme, r.Host))
	})
}

// prefixed registers routes under a path prefix on one router.
type prefixed struct {
	r      *mux.Router
	prefix string
}

func (p prefixed) Handle(path string, h http.Handler) *mux.Route { return p.r.Handle(p.prefix+path, h) }
func (p prefixed) HandleFunc(path string, f http.HandlerFunc) *mux.Route {
	return p.r.HandleFunc(p.prefix+path, f)
}

// NewServer wraps a handler in an http.Server with every timeout set, so a
// slow or silent client cannot hold a connection open forever.
func NewServer(addr string, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		if requestScheme(r) == "https" {
			// RFC 6797: browsers that saw the vault over HTTPS never try
			// it over plain HTTP again (a year, renewed at every visit).
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

// limitAddresses answers 429 to an address over its rate, before any
// parsing or crypto is spent on it.
func limitAddresses(l *policy.Limiter, log *slog.Logger, next http.Handler) http.Handler {
	if l == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ok, wait := l.Allow(sourceAddress(r), time.Now()); !ok {
			writeError(w, r, log, policy.ErrRateLimited.WithRetryAfter(wait))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// statusWriter remembers the status for the access log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type routeKey struct{}

// reqInfo is what the outer layers learn from the inner ones about a
// request: the route that served it and the error code it got, if any.
type reqInfo struct {
	route, errCode string
}

// logRequests writes one line per request and feeds the metrics. It logs
// the route name, not the path or query, and never a header or body:
// those may hold tokens.
func (s *server) logRequests(next http.Handler) http.Handler {
	// With request lines off (--log-level warn and above) and no metrics
	// there is nothing to gather per request.
	logging := s.log.Enabled(context.Background(), slog.LevelInfo)
	if !logging && s.metrics == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		info := &reqInfo{route: "unmatched"}
		r = r.WithContext(context.WithValue(r.Context(), routeKey{}, info))
		next.ServeHTTP(sw, r)
		d := time.Since(start)
		if s.metrics != nil {
			s.metrics.observe(info.route, sw.status, info.errCode, d)
		}
		if logging {
			s.log.Info("request", "method", r.Method, "route", info.route, "status", sw.status, "duration", d.Round(time.Microsecond))
		}
	})
}

// nameRoute, run by the router after matching, tells logRequests which
// route served the request.
func nameRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := r.Context().Value(routeKey{}).(*reqInfo); ok {
			if rt := mux.CurrentRoute(r); rt != nil {
				p.route = rt.GetName()
			}
		}
		next.ServeHTTP(w, r)
	})
}

// noteError tells logRequests the error code a request got.
func noteError(r *http.Request, code string) {
	if p, ok := r.Context().Value(routeKey{}).(*reqInfo); ok {
		p.errCode = code
	}
}

func routeName(r *http.Request) string {
	if rt := mux.CurrentRoute(r); rt != nil && rt.GetName() != "" {
		return rt.GetName()
	}
	return "unmatched"
}

func (s *server) recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic", "route", routeName(r), "value", v, "stack", string(debug.Stack()))
				writeError(w, r, s.log, policy.Internal("panic", errors.New("recovered")))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// readBody reads the whole body up to the limit.
func (s *server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errTooLarge
		}
		return nil, policy.Wrap(policy.KindInvalid, "invalid_request", "could not read the request body", err)
	}
	return b, nil
}

// decodeJSON reads a JSON object body into v, refusing unknown fields so
// that a misspelt option is an error, not silently ignored.
func (s *server) decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	return decodeStrict(b, v)
}

// members lists the JSON members a body type takes, for an error.
func members(v any) string {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return "no members"
	}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.IsExported() && name != "-" && name != "" {
			names = append(names, strconv.Quote(name))
		}
	}
	return strings.Join(names, ", ")
}

func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		// encoding/json has no typed error for an unknown member.
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return errUnknownMember.WithDetail(fmt.Sprintf("unknown member %s; it takes %s", name, members(v)))
		}
		return policy.BadJSON(b, err)
	}
	if dec.Decode(&json.RawMessage{}) != io.EOF { // trailing data
		return errBadJSON.WithDetail("data after the JSON value")
	}
	return nil
}
