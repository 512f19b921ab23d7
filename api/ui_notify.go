package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

// The notifications page: the owner's channels with their delivery state
// (failures visible), forms to add ntfy, webhook and email channels, a
// test message and removal, and "notify this browser" (Web Push). It is
// the one page that runs script — its own two files, no inline code —
// because subscribing a browser to push takes the Push API.

// uiScriptCSP is uiCSP plus scripts and a service worker from this origin.
const uiScriptCSP = "default-src 'none'; script-src 'self'; worker-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

type notifyPage struct {
	Channels []vault.Channel
	VAPID    string
	Secret   string // a new webhook's signing secret, shown once
}

func (s *server) uiNotifications(w http.ResponseWriter, r *http.Request, session string) {
	s.renderNotifications(w, r, session, "")
}

func (s *server) renderNotifications(w http.ResponseWriter, r *http.Request, session, secret string) {
	chs, err := s.svc.Channels(r.Context())
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	p := notifyPage{Channels: chs, Secret: secret}
	if k, err := s.svc.VAPID(r.Context(), GenerateVAPID); err == nil {
		p.VAPID = k.Public
	}
	s.render(w, r, http.StatusOK, "notifications", session, pageData{Title: "Notifications", Nav: "notifications", Data: p, Scripts: true})
}

func (s *server) uiAddChannel(w http.ResponseWriter, r *http.Request, session string) {
	f := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	c := vault.ChannelConfig{Kind: f("kind"), Name: f("name"), URL: f("url"), Token: f("token")}
	if c.Kind == vault.ChannelEmail {
		port, _ := strconv.Atoi(f("smtp_port"))
		c.URL = ""
		c.SMTP = &vault.SMTPConfig{Host: f("smtp_host"), Port: port, TLS: f("smtp_tls"), Username: f("smtp_user"),
			Password: r.PostFormValue("smtp_password"), From: f("from"), To: f("to")}
	}
	ch, err := s.svc.AddChannel(r.Context(), c)
	if err != nil {
		s.uiFail(w, r, session, 0, err)
		return
	}
	if ch.Secret != "" {
		// Shown once, on this page, not in a URL.
		s.renderNotifications(w, r, session, ch.Secret)
		return
	}
	http.Redirect(w, r, "/ui/notifications?done=channel", http.StatusSeeOther)
}

// uiAddPush takes the browser's PushSubscription (toJSON), posted by
// push.js with the form's CSRF token.
func (s *server) uiAddPush(w http.ResponseWriter, r *http.Request, session string) {
	var sub vault.PushSubscription
	if err := json.Unmarshal([]byte(r.PostFormValue("subscription")), &sub); err != nil {
		s.uiFail(w, r, session, http.StatusBadRequest, policy.BadJSON([]byte(r.PostFormValue("subscription")), err))
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	if name == "" {
		name = "this browser"
	}
	s.uiDo(w, r, session, func() error {
		_, err := s.svc.AddChannel(r.Context(), vault.ChannelConfig{Kind: vault.ChannelWebPush, Name: name, Push: &sub})
		return err
	}, "/ui/notifications?done=channel")
}

func (s *server) uiTestChannel(w http.ResponseWriter, r *http.Request, session string) {
	s.uiDo(w, r, session, func() error { return s.svc.TestChannel(r.Context(), mux.Vars(r)["id"]) }, "/ui/notifications?done=test")
}

func (s *server) uiRemoveChannel(w http.ResponseWriter, r *http.Request, session string) {
	s.uiDo(w, r, session, func() error { return s.svc.RemoveChannel(r.Context(), mux.Vars(r)["id"]) }, "/ui/notifications?done=removed")
}
