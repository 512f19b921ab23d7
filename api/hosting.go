package api

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
	"github.com/pdvault/pdvault/vault/host"
)

// A host serving many vaults (docs/operations.md, "Hosting pdvault for
// many people") answers for <name>.<domain>, one origin per vault: the
// browser's same-origin policy is then the wall between two people's
// pages, cookies and storage, which path prefixes under one origin would
// not give. The apex domain serves sign-up. Each vault's requests meet its
// own handler — its issuer, JWKS, discovery and DPoP htu are its own — once
// the host has opened it; a sealed vault answers only its owner's unlock.

// HostConfig configures the HTTP face of a host.
type HostConfig struct {
	Config        // for every vault's handler, and the outer layers
	Domain string // vaults are <name>.<Domain>; the apex serves sign-up
	// Signup is who may create a vault over HTTP: "invite" (default; a
	// code from `pdvault host invite`), "open", or "closed" (the
	// operator's CLI only).
	Signup string
	// SignupsPerHour bounds sign-ups per client address (open or by
	// invitation); default 3.
	SignupsPerHour float64
}

// VaultHandler returns what a host attaches to each vault it opens: the
// vault's own API and UI behind its host check (host.Options.Attach).
//
// The routes are matched by one router for all vaults: gorilla/mux
// compiles a regular expression per route, some 600 KiB for the ~130
// routes, which a router per open vault would hold a thousand times. Each
// open vault keeps only its handlers by route name; the shared router finds
// the route and calls the vault's handler of that name.
func VaultHandler(cfg Config) func(name string, v *vault.Vault) any {
	cfg.defaults()
	cfg.Hosts = nil // a hosted vault answers to its issuer's host only
	proto := &server{log: cfg.Logger.With("component", "api"), maxBody: cfg.MaxBody, pages: templates(), metrics: cfg.Metrics}
	shared := proto.routes(cfg)
	doc := &openAPIDoc{r: shared}
	shared.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		name := route.GetName()
		route.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Context().Value(routeTableKey{}).(routeTable)[name].ServeHTTP(w, r)
		}))
		return nil
	})
	return func(_ string, v *vault.Vault) any {
		s := &server{svc: v, log: proto.log, maxBody: cfg.MaxBody, pages: proto.pages, metrics: cfg.Metrics, openapi: doc}
		// The vault's own router is built to collect its handlers, then
		// dropped.
		table := routeTable{}
		s.routes(cfg).Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
			table[route.GetName()] = route.GetHandler()
			return nil
		})
		limit := policy.NewLimiter(cfg.RatePerAddress, int(2*cfg.RatePerAddress))
		// The vault answers at its issuer and, when that is a domain its
		// owner brought, still at its home address: the owner's way in
		// if the domain's DNS fails. Organizations' proofs name the
		// issuer, so their requests at home fail the htu check.
		var home []string
		if u, err := url.Parse(v.HomeIssuer()); err == nil {
			home = []string{u.Host}
		}
		return s.checkHost(home, limitAddresses(limit, s.log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			shared.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), routeTableKey{}, table)))
		})))
	}
}

// routeTable is an open vault's handlers by route name.
type routeTable map[string]http.Handler

type routeTableKey struct{}

type hosting struct {
	h      *host.Host
	cfg    HostConfig
	s      *server // the host's own pages and errors
	apex   http.Handler
	signup *policy.Limiter
	logins *policy.Limiter // passphrase attempts per address, all vaults together
}

// NewHost returns the HTTP handler of a host. Its vaults' handlers come
// from the host's Attach, which must be VaultHandler.
func NewHost(h *host.Host, cfg HostConfig) http.Handler {
	cfg.Config.defaults()
	cfg.Domain = strings.ToLower(strings.TrimSuffix(cfg.Domain, "."))
	if cfg.Signup == "" {
		cfg.Signup = "invite"
	}
	if cfg.SignupsPerHour <= 0 {
		cfg.SignupsPerHour = 3
	}
	s := &server{log: cfg.Logger.With("component", "host"), maxBody: cfg.MaxBody, pages: templates(), metrics: cfg.Metrics}
	hs := &hosting{h: h, cfg: cfg, s: s, signup: policy.NewLimiter(cfg.SignupsPerHour/3600, int(max(cfg.SignupsPerHour, 1))),
		logins: policy.NewLimiter(loginsPerMinute/60.0, loginsPerMinute)}
	hs.apex = hs.apexRoutes()
	limit := policy.NewLimiter(cfg.RatePerAddress, int(2*cfg.RatePerAddress))
	return s.outer(cfg.Config, limitAddresses(limit, s.log, http.HandlerFunc(hs.route)))
}

// vaultName is the vault a Host header names, or "" for the apex; ok is
// false for a host this server does not serve.
func (hs *hosting) vaultName(hostHeader string) (name string, ok bool) {
	hn := bareHost(hostHeader)
	if hn == hs.cfg.Domain {
		return "", true
	}
	name, found := strings.CutSuffix(hn, "."+hs.cfg.Domain)
	if !found || name == "" || strings.Contains(name, ".") {
		return "", false
	}
	return name, true
}

func (hs *hosting) route(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == certificatePath {
		hs.certificateAllowed(w, r)
		return
	}
	name, ok := hs.vaultName(r.Host)
	var hd *host.Handle
	if !ok {
		// Not NAME.DOMAIN: perhaps a domain an owner brought.
		domain := bareHost(r.Host)
		var err error
		if hd, name, err = hs.h.AcquireAt(r.Context(), domain); err != nil {
			if errors.Is(err, vault.ErrSealed) && name != "" && hs.h.ChoseDomain(r.Context(), domain, name) {
				// The domain book says the owner chose this domain: they
				// unlock their vault here, and log in once.
				if hs.allowLogin(w, r) {
					hs.sealed(name, hs.h.DomainIssuer(domain)).ServeHTTP(w, r)
				}
				return
			}
			hs.notAtDomain(w, r, name, err)
			return
		}
		defer hd.Release()
	} else if name == "" {
		hs.apex.ServeHTTP(w, r)
		return
	}
	if !hs.allowLogin(w, r) {
		return
	}
	switch {
	case r.Method == http.MethodDelete && r.URL.Path == "/v1/owner/vault":
		hs.erase(w, r, name)
		return
	case r.URL.Path == "/v1/owner/domain":
		hs.domain(w, r, name)
		return
	}
	if r.URL.Path == "/ui/domain" || r.URL.Path == "/ui/domain/remove" {
		if hd == nil {
			var err error
			if hd, err = hs.h.Acquire(r.Context(), name); err != nil {
				if errors.Is(err, vault.ErrSealed) && r.Method == http.MethodGet {
					http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
					return
				}
				writeError(w, r, hs.s.log, err)
				return
			}
			defer hd.Release()
		}
		hs.uiDomain(w, r, name, hd.Vault)
		return
	}
	if hd == nil {
		var err error
		hd, err = hs.h.Acquire(r.Context(), name)
		switch {
		case errors.Is(err, vault.ErrSealed):
			hs.sealed(name, hs.h.Issuer(name)).ServeHTTP(w, r)
			return
		case err != nil:
			writeError(w, r, hs.s.log, err)
			return
		}
		defer hd.Release()
	}
	hd.Attached.(http.Handler).ServeHTTP(w, r)
}

// allowLogin bounds passphrase attempts per source across the host's
// vaults. Each vault throttles wrong passphrases by source; one source
// trying passphrases at many vaults is bounded here, because every attempt
// costs an Argon2id derivation (64 MiB, tens of ms) of the host's.
func (hs *hosting) allowLogin(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodPost && (r.URL.Path == "/v1/owner/session" || r.URL.Path == "/ui/login") {
		if ok, wait := hs.logins.Allow(sourceAddress(r), time.Now()); !ok {
			writeError(w, r, hs.s.log, vault.ErrThrottled.WithRetryAfter(wait))
			return false
		}
	}
	return true
}

// notAtDomain answers a request at a domain the host cannot serve now. A
// sealed vault the domain book does not know at the domain cannot confirm
// it, so only its owner's way to unlock is shown: pages lead to the
// vault's home address, where the unlock form is; the API hears
// vault_sealed.
func (hs *hosting) notAtDomain(w http.ResponseWriter, r *http.Request, name string, err error) {
	if errors.Is(err, vault.ErrSealed) && name != "" {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && (r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/ui/")) {
			http.Redirect(w, r, hs.h.Issuer(name)+"/ui/login", http.StatusSeeOther)
			return
		}
	}
	if policy.CodeOf(err) == "misdirected_request" {
		err = policy.E(policy.KindMisdirected, "misdirected_request", "this host serves "+hs.cfg.Domain+", its vaults and the domains their owners brought, not "+r.Host)
	}
	writeError(w, r, hs.s.log, err)
}

// bareHost is a Host header's name, lowercase, without port or final dot.
func bareHost(hostHeader string) string {
	hn := strings.ToLower(hostHeader)
	if h, _, err := net.SplitHostPort(hn); err == nil {
		hn = h
	}
	return strings.TrimSuffix(hn, ".")
}

type domainRequest struct {
	Domain string `json:"domain"`
}

type domainResponse struct {
	Domain string             `json:"domain,omitempty"` // "" for none
	Issuer string             `json:"issuer"`           // the vault's address now
	Home   string             `json:"home"`             // its address on this host, always served
	Record *host.DomainRecord `json:"record,omitempty"` // what DNS must hold for Domain (or ?domain=)
	Moved  *vault.MoveResult  `json:"moved,omitempty"`  // the notices a change queued
}

// domain is the owner's custom domain: GET shows it (and, with
// ?domain=D, the TXT record D needs); PUT {"domain"} brings one once its
// DNS names the vault; DELETE takes it away. Owner's token required.
func (hs *hosting) domain(w http.ResponseWriter, r *http.Request, name string) {
	hd, err := hs.h.Acquire(r.Context(), name)
	if err != nil {
		writeError(w, r, hs.s.log, err)
		return
	}
	v := hd.Vault
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	err = v.Authenticate(token)
	hd.Release()
	if err != nil {
		writeError(w, r, hs.s.log, err)
		return
	}
	var moved *vault.MoveResult
	switch r.Method {
	case http.MethodGet:
	case http.MethodPut:
		var req domainRequest
		if err := hs.s.decodeJSON(w, r, &req); err != nil {
			writeError(w, r, hs.s.log, err)
			return
		}
		if req.Domain == "" {
			writeError(w, r, hs.s.log, vault.ErrBadDomain)
			return
		}
		res, err := hs.h.SetDomain(r.Context(), name, req.Domain)
		if err != nil {
			writeError(w, r, hs.s.log, err)
			return
		}
		moved = &res
	case http.MethodDelete:
		res, err := hs.h.SetDomain(r.Context(), name, "")
		if err != nil {
			writeError(w, r, hs.s.log, err)
			return
		}
		moved = &res
	default:
		w.Header().Set("Allow", "GET, PUT, DELETE")
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: errMethod.Code, Description: errMethod.Msg})
		return
	}
	out := domainResponse{Domain: v.Domain(), Issuer: v.Issuer(), Home: v.HomeIssuer(), Moved: moved}
	if d := cmp.Or(r.URL.Query().Get("domain"), out.Domain); d != "" {
		rec, err := hs.h.Record(name, d)
		if err != nil {
			writeError(w, r, hs.s.log, err)
			return
		}
		out.Record = &rec
	}
	writeJSON(w, http.StatusOK, out)
}

// loginsPerMinute bounds passphrase attempts per client address across all
// the host's vaults.
const loginsPerMinute = 20

// sealedService is what a sealed vault can do: name its issuer and be
// unlocked by its owner. The sealed router reaches no other method (the
// embedded Service is nil); TestSealedVaultAnswersEveryRoute walks every
// route of the API against it.
type sealedService struct {
	vault.Service
	issuer string
	unseal func(ctx context.Context, passphrase []byte, src vault.LoginSource) (vault.LoginResult, error)
}

func (s sealedService) Issuer() string { return s.issuer }
func (s sealedService) Login(ctx context.Context, passphrase []byte, src vault.LoginSource) (vault.LoginResult, error) {
	return s.unseal(ctx, passphrase, src)
}
func (s sealedService) Ready(context.Context) error { return vault.ErrSealed }

// sealed is the handler of a sealed vault at issuer (its home address or
// its owner's domain): the owner's login (API and UI) unseals it; health
// answers; everything else is 503 vault_sealed with a Retry-After, and
// the UI's pages lead to the unlock form.
func (hs *hosting) sealed(name, issuer string) http.Handler {
	svc := sealedService{issuer: issuer, unseal: func(ctx context.Context, p []byte, src vault.LoginSource) (vault.LoginResult, error) {
		return hs.h.Unseal(ctx, name, p, src)
	}}
	s := &server{svc: svc, log: hs.s.log, maxBody: hs.s.maxBody, pages: hs.s.pages}
	r := mux.NewRouter()
	r.HandleFunc("/v1/owner/session", s.login).Methods(http.MethodPost).Name("owner.login")
	r.HandleFunc("/ui/login", s.uiLoginForm).Methods(http.MethodGet).Name("ui.login")
	r.HandleFunc("/ui/login", s.uiLogin).Methods(http.MethodPost).Name("ui.login.post")
	r.PathPrefix("/ui/static/").Handler(staticFiles()).Methods(http.MethodGet).Name("ui.static")
	r.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}).Methods(http.MethodGet).Name("healthz")
	r.PathPrefix("/").HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet && (req.URL.Path == "/" || strings.HasPrefix(req.URL.Path, "/ui/")) {
			http.Redirect(w, req, "/ui/login", http.StatusSeeOther)
			return
		}
		writeError(w, req, s.log, vault.ErrSealed)
	}).Name("sealed")
	r.Use(nameRoute)
	return s.checkHost(nil, r)
}

// Sign-up on the apex domain.

type signupRequest struct {
	Name       string `json:"name"`
	Passphrase string `json:"passphrase"`
	Invite     string `json:"invite,omitempty"`
}

type signupResponse struct {
	Name      string `json:"name"`
	Issuer    string `json:"issuer"` // the vault's URL
	Token     string `json:"access_token"`
	TokenType string `json:"token_type"`
	ExpiresIn int64  `json:"expires_in"`
}

var errSignupClosed = policy.E(policy.KindForbidden, "signup_closed", "this host does not take sign-ups over the web; ask its operator")

func (hs *hosting) apexRoutes() http.Handler {
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeError(w, r, hs.s.log, errNotFound) })
	r.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}).Methods(http.MethodGet).Name("host.healthz")
	r.HandleFunc("/v1/host/vaults", hs.signupJSON).Methods(http.MethodPost).Name("host.signup")
	r.HandleFunc("/", hs.signupForm).Methods(http.MethodGet).Name("host.signup.form")
	r.HandleFunc("/signup", hs.signupPost).Methods(http.MethodPost).Name("host.signup.post")
	r.PathPrefix("/ui/static/").Handler(staticFiles()).Methods(http.MethodGet).Name("ui.static")
	r.Use(nameRoute)
	return r
}

// createVault runs a sign-up under the host's rules.
func (hs *hosting) createVault(r *http.Request, req signupRequest) (*host.Handle, error) {
	if hs.cfg.Signup == "closed" {
		return nil, errSignupClosed
	}
	if ok, wait := hs.signup.Allow(sourceAddress(r), time.Now()); !ok {
		return nil, policy.ErrRateLimited.WithRetryAfter(wait)
	}
	if len(req.Passphrase) > maxPassphrase {
		return nil, vault.ErrWeakPassphrase
	}
	return hs.h.SignUp(r.Context(), req.Name, []byte(req.Passphrase), req.Invite, hs.cfg.Signup != "open")
}

func (hs *hosting) signupJSON(w http.ResponseWriter, r *http.Request) {
	var req signupRequest
	if err := hs.s.decodeJSON(w, r, &req); err != nil {
		writeError(w, r, hs.s.log, err)
		return
	}
	hd, err := hs.createVault(r, req)
	if err != nil {
		writeError(w, r, hs.s.log, err)
		return
	}
	defer hd.Release()
	sess := hd.Vault.NewSession()
	writeJSON(w, http.StatusCreated, signupResponse{Name: req.Name, Issuer: hd.Vault.Issuer(), Token: sess.Token, TokenType: "Bearer", ExpiresIn: int64(sess.ExpiresIn.Seconds())})
}

type signupPage struct {
	Domain, Name string
	Invite       bool
	Created      string // the new vault's URL
}

func (hs *hosting) signupForm(w http.ResponseWriter, r *http.Request) {
	hs.s.render(w, r, http.StatusOK, "signup", "", pageData{Title: "Create your vault", Data: signupPage{Domain: hs.cfg.Domain, Invite: hs.cfg.Signup == "invite"}})
}

func (hs *hosting) signupPost(w http.ResponseWriter, r *http.Request) {
	d := signupPage{Domain: hs.cfg.Domain, Invite: hs.cfg.Signup == "invite"}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil || !sameOrigin(r) {
		hs.s.render(w, r, http.StatusBadRequest, "signup", "", pageData{Title: "Create your vault", Error: "The form could not be read; try again.", Data: d})
		return
	}
	req := signupRequest{Name: strings.TrimSpace(r.PostFormValue("name")), Passphrase: r.PostFormValue("passphrase"), Invite: strings.TrimSpace(r.PostFormValue("invite"))}
	d.Name = req.Name
	if req.Passphrase != r.PostFormValue("repeat") {
		hs.s.render(w, r, http.StatusBadRequest, "signup", "", pageData{Title: "Create your vault", Error: "The two passphrases differ.", Data: d})
		return
	}
	hd, err := hs.createVault(r, req)
	if err != nil {
		pe := &policy.Error{Kind: policy.KindInternal, Msg: "The vault could not be created; try again later."}
		errors.As(err, &pe)
		if pe.Kind == policy.KindInternal {
			hs.s.log.Error("sign-up", "err", err)
		}
		if pe.RetryAfter > 0 {
			w.Header().Set("Retry-After", retryAfter(pe.RetryAfter))
		}
		hs.s.render(w, r, statusOf(pe.Kind), "signup", "", pageData{Title: "Create your vault", Error: pe.Msg, Reasons: pe.Reasons, Data: d})
		return
	}
	d.Created = hd.Vault.Issuer()
	hd.Release()
	hs.s.render(w, r, http.StatusCreated, "signup", "", pageData{Title: "Your vault is ready", Data: d})
}

type eraseRequest struct {
	Passphrase string `json:"passphrase"`
}

type eraseResponse struct {
	Deleted string `json:"deleted"`
}

// erase is the owner leaving: DELETE /v1/owner/vault with the owner's
// token and, again, the passphrase (a stolen session alone must not erase
// a life's records). The vault's directory goes; what lies outside it
// (replicas, the operator's backups) is the operator's to erase.
func (hs *hosting) erase(w http.ResponseWriter, r *http.Request, name string) {
	hd, err := hs.h.Acquire(r.Context(), name)
	if err != nil {
		writeError(w, r, hs.s.log, err)
		return
	}
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if err := hd.Vault.Authenticate(token); err != nil {
		hd.Release()
		writeError(w, r, hs.s.log, err)
		return
	}
	var req eraseRequest
	if err := hs.s.decodeJSON(w, r, &req); err != nil {
		hd.Release()
		writeError(w, r, hs.s.log, err)
		return
	}
	if req.Passphrase == "" || len(req.Passphrase) > maxPassphrase {
		hd.Release()
		writeError(w, r, hs.s.log, vault.ErrWrongPassphrase)
		return
	}
	_, err = hd.Vault.Login(r.Context(), []byte(req.Passphrase), vault.LoginSource{Address: sourceAddress(r)})
	hd.Release()
	if err != nil {
		writeError(w, r, hs.s.log, err)
		return
	}
	if err := hs.h.Delete(r.Context(), name); err != nil {
		writeError(w, r, hs.s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, eraseResponse{Deleted: name})
}

// HostAdmin is the operator's control of a running host. It is served on
// a unix socket in the host's directory (mode 0600), never on the network:
// "pdvault host release NAME" hands a vault over to another host.
func HostAdmin(h *host.Host, log *slog.Logger) http.Handler {
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeError(w, r, log, errNotFound) })
	r.HandleFunc("/v1/host/vaults/{name}/release", func(w http.ResponseWriter, r *http.Request) {
		name := mux.Vars(r)["name"]
		if err := host.ValidName(name); err != nil {
			writeError(w, r, log, err)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), releaseWait)
		defer cancel()
		released, err := h.Release(ctx, name)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"vault": name, "released": released})
	}).Methods(http.MethodPost)
	return r
}

// releaseWait bounds how long a release waits for a vault's requests in
// flight and its final flush to the replica.
const releaseWait = 30 * time.Second
