package api

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
	"github.com/pdvault/pdvault/vault/host"
)

// The owner's page for a domain of their own (docs/operations.md, "A domain
// of your own"): the web UI's form of /v1/owner/domain. It is the host's,
// not the vault's, because setting a domain asks the host's DNS; it
// authenticates and renders as every vault page does.

type domainPage struct {
	Domain   string             // the domain the vault answers at, "" for none
	Issuer   string             // the vault's address now
	Home     string             // its address on this host
	HomeHost string             // Home's host name, for a CNAME
	Want     string             // the domain typed in the form
	Record   *host.DomainRecord // the TXT record Want needs
}

// uiDomain serves GET /ui/domain, POST /ui/domain (action "check" shows
// the record, "save" brings the domain) and POST /ui/domain/remove.
func (hs *hosting) uiDomain(w http.ResponseWriter, r *http.Request, name string, v *vault.Vault) {
	s := &server{svc: v, log: hs.s.log, maxBody: hs.s.maxBody, pages: hs.s.pages}
	post := r.Method == http.MethodPost
	var h func(http.ResponseWriter, *http.Request, string)
	switch {
	case r.URL.Path == "/ui/domain" && r.Method == http.MethodGet:
		h = func(w http.ResponseWriter, r *http.Request, session string) {
			hs.renderDomain(w, r, s, session, name, v, strings.TrimSpace(r.URL.Query().Get("domain")), nil)
		}
	case r.URL.Path == "/ui/domain" && post:
		h = func(w http.ResponseWriter, r *http.Request, session string) {
			want := strings.ToLower(strings.TrimSpace(r.PostFormValue("domain")))
			if r.PostFormValue("action") != "save" {
				hs.renderDomain(w, r, s, session, name, v, want, nil)
				return
			}
			if want == "" {
				hs.renderDomain(w, r, s, session, name, v, want, vault.ErrBadDomain)
				return
			}
			if _, err := hs.h.SetDomain(r.Context(), name, want); err != nil {
				hs.renderDomain(w, r, s, session, name, v, want, err)
				return
			}
			http.Redirect(w, r, "/ui/domain?done=domain", http.StatusSeeOther)
		}
	case r.URL.Path == "/ui/domain/remove" && post:
		h = func(w http.ResponseWriter, r *http.Request, session string) {
			if _, err := hs.h.SetDomain(r.Context(), name, ""); err != nil {
				hs.renderDomain(w, r, s, session, name, v, "", err)
				return
			}
			http.Redirect(w, r, "/ui/domain?done=nodomain", http.StatusSeeOther)
		}
	default:
		writeError(w, r, hs.s.log, errNotFound)
		return
	}
	if !v.DomainsAllowed() {
		h = func(w http.ResponseWriter, r *http.Request, session string) {
			s.uiFail(w, r, session, 0, vault.ErrNoDomains)
		}
	}
	s.uiAuth(h, post).ServeHTTP(w, r)
}

// renderDomain shows the page, with the record want needs and, after a
// refused change, why (a refusal's reasons name the record to publish).
func (hs *hosting) renderDomain(w http.ResponseWriter, r *http.Request, s *server, session, name string, v *vault.Vault, want string, failed error) {
	d := domainPage{Domain: v.Domain(), Issuer: v.Issuer(), Home: v.HomeIssuer(), Want: want}
	if u, err := url.Parse(d.Home); err == nil {
		d.HomeHost = u.Hostname()
	}
	pd := pageData{Title: "Your domain", Nav: "domain", Data: &d}
	code := http.StatusOK
	if want != "" {
		if rec, err := hs.h.Record(name, want); err == nil {
			d.Record = &rec
		} else if failed == nil {
			failed = err
		}
	}
	if failed != nil {
		var pe *policy.Error
		if !errors.As(failed, &pe) || statusOf(pe.Kind) >= 500 {
			s.uiFail(w, r, session, 0, failed)
			return
		}
		code, pd.Error, pd.Reasons = statusOf(pe.Kind), pe.Msg, pe.Reasons
	}
	s.render(w, r, code, "domain", session, pd)
}
