package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/pdvault/pdvault/vault"
)

// maxPassphrase bounds what we feed to Argon2id.
const maxPassphrase = 1024

// ownerAuth admits requests that carry a live owner session token.
func (s *server) ownerAuth(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.svc.Authenticate(bearerToken(r)); err != nil {
			writeError(w, r, s.log, err)
			return
		}
		h(w, r)
	})
}

// bearerToken returns the token of an "Authorization: Bearer" header (RFC
// 6750 §2.1), or "".
func bearerToken(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

type loginRequest struct {
	Passphrase string `json:"passphrase"`
	Device     string `json:"device,omitempty"` // the device token of an earlier login
}

type loginResponse struct {
	Token     string `json:"token"`
	TokenType string `json:"token_type"`
	ExpiresIn int64  `json:"expires_in"`
	Device    string `json:"device"` // present it at the next login: exempt from the global throttle
}

func (s *server) login(w http.ResponseWriter, r *http.Request) {
	// A web page the owner visits could post here (a text/plain form needs
	// no preflight) to spend the owner's login attempts: browsers say where
	// such a post comes from, and only this origin may log in.
	if !sameOrigin(r) {
		writeError(w, r, s.log, errCrossSiteLogin)
		return
	}
	var req loginRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if req.Passphrase == "" || len(req.Passphrase) > maxPassphrase {
		writeError(w, r, s.log, errBadPassphrase)
		return
	}
	res, err := s.svc.Login(r.Context(), []byte(req.Passphrase), vault.LoginSource{Address: sourceAddress(r), Device: req.Device})
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	// The same session as a cookie, for the web UI (DESIGN.md): HttpOnly,
	// SameSite=Strict, and only the /ui/ pages accept it, each form with
	// its CSRF token. The JSON API takes the bearer token only.
	s.setSessionCookie(w, res.Session)
	writeJSON(w, http.StatusOK, loginResponse{Token: res.Token, TokenType: "Bearer", ExpiresIn: int64(res.ExpiresIn.Seconds()), Device: res.Device})
}

func (s *server) logout(w http.ResponseWriter, r *http.Request) {
	s.svc.Logout(bearerToken(r))
	w.WriteHeader(http.StatusNoContent)
}

type passphraseRequest struct {
	Old string `json:"old"`
	New string `json:"new"`
}

func (s *server) changePassphrase(w http.ResponseWriter, r *http.Request) {
	var req passphraseRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if req.Old == "" || len(req.Old) > maxPassphrase || len(req.New) > maxPassphrase {
		writeError(w, r, s.log, errBadPassphrase)
		return
	}
	if err := s.svc.ChangePassphrase(r.Context(), []byte(req.Old), []byte(req.New)); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// ifMatch reads an If-Match header holding a record version, as sent back
// from an ETag. 0 means no condition.
func ifMatch(r *http.Request) (int64, error) {
	h := strings.TrimSpace(r.Header.Get("If-Match"))
	if h == "" || h == "*" {
		return 0, nil
	}
	h = strings.TrimPrefix(h, "W/")
	if len(h) < 3 || h[0] != '"' || h[len(h)-1] != '"' {
		return 0, errBadIfMatch
	}
	n, err := strconv.ParseInt(h[1:len(h)-1], 10, 64)
	if err != nil || n < 1 {
		return 0, errBadIfMatch
	}
	return n, nil
}

func writeRecord(w http.ResponseWriter, code int, rec vault.Record) {
	w.Header().Set("ETag", etag(rec.Version))
	writeJSON(w, code, rec)
}

func (s *server) createRecord(w http.ResponseWriter, r *http.Request) {
	body, err := s.readBody(w, r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	coll := mux.Vars(r)["collection"]
	rec, err := s.svc.CreateRecord(r.Context(), coll, body)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	w.Header().Set("Location", fmt.Sprintf("/v1/owner/records/%s/%s", rec.Collection, rec.ID))
	writeRecord(w, http.StatusCreated, rec)
}

func (s *server) getRecord(w http.ResponseWriter, r *http.Request) {
	v := mux.Vars(r)
	rec, err := s.svc.GetRecord(r.Context(), v["collection"], v["id"])
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeRecord(w, http.StatusOK, rec)
}

func (s *server) updateRecord(w http.ResponseWriter, r *http.Request) {
	ver, err := ifMatch(r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	body, err := s.readBody(w, r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	v := mux.Vars(r)
	rec, err := s.svc.UpdateRecord(r.Context(), v["collection"], v["id"], body, ver)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeRecord(w, http.StatusOK, rec)
}

func (s *server) deleteRecord(w http.ResponseWriter, r *http.Request) {
	ver, err := ifMatch(r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	v := mux.Vars(r)
	if err := s.svc.DeleteRecord(r.Context(), v["collection"], v["id"], ver); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) listRecords(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	page, err := s.svc.ListRecords(r.Context(), mux.Vars(r)["collection"], limit, r.URL.Query().Get("cursor"))
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// export streams an encrypted backup. Errors after the first byte can only
// cut the stream short, which import detects (the end frame is missing).
func (s *server) export(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="pdvault-export.pdv"`)
	cw := &countingWriter{w: w}
	if _, err := s.svc.Export(r.Context(), cw); err != nil {
		if cw.n == 0 {
			writeError(w, r, s.log, err)
			return
		}
		s.log.Error("export cut short", "err", err)
	}
}

type countingWriter struct {
	w http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}
