package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

// Owner endpoints for the exchange: terms, requests, grants, audit.

func (s *server) setTerms(w http.ResponseWriter, r *http.Request) {
	body, err := s.readBody(w, r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	doc, err := s.svc.SetTerms(r.Context(), body)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, doc)
}

// pageQuery reads ?limit=&cursor= of an owner listing.
func pageQuery(r *http.Request) (vault.PageQuery, error) {
	n, err := limitParam(r)
	return vault.PageQuery{Limit: n, Cursor: r.URL.Query().Get("cursor")}, err
}

// listed answers a paged owner listing.
func (s *server) listed(w http.ResponseWriter, r *http.Request, list func(vault.PageQuery) (any, error)) {
	q, err := pageQuery(r)
	if err == nil {
		var page any
		if page, err = list(q); err == nil {
			writeJSON(w, http.StatusOK, page)
			return
		}
	}
	writeError(w, r, s.log, err)
}

func (s *server) listRequests(w http.ResponseWriter, r *http.Request) {
	s.listed(w, r, func(q vault.PageQuery) (any, error) {
		return s.svc.ListRequests(r.Context(), r.URL.Query().Get("status"), q)
	})
}

func (s *server) getRequest(w http.ResponseWriter, r *http.Request) {
	req, err := s.svc.GetRequest(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}

func (s *server) approve(w http.ResponseWriter, r *http.Request) {
	var a vault.Approval
	if err := s.decodeOptionalJSON(w, r, &a); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	req, err := s.svc.Approve(r.Context(), mux.Vars(r)["id"], a)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}

type denyRequest struct {
	Reason string `json:"reason"`
}

func (s *server) deny(w http.ResponseWriter, r *http.Request) {
	var d denyRequest
	if err := s.decodeOptionalJSON(w, r, &d); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	req, err := s.svc.Deny(r.Context(), mux.Vars(r)["id"], d.Reason)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}

func (s *server) listGrants(w http.ResponseWriter, r *http.Request) {
	s.listed(w, r, func(q vault.PageQuery) (any, error) { return s.svc.ListGrants(r.Context(), q) })
}

func (s *server) getGrant(w http.ResponseWriter, r *http.Request) {
	g, err := s.svc.GetGrant(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

// consentReceipt is GET /v1/owner/grants/{id}/consent: the grant's consent
// record and receipts. format=kantara gives the Kantara v1.1 JSON,
// iso-27560 the DPV JSON-LD record, jws the signed receipt; default all.
func (s *server) consentReceipt(w http.ResponseWriter, r *http.Request) {
	cr, err := s.svc.ConsentReceipt(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	switch r.URL.Query().Get("format") {
	case "":
		writeJSON(w, http.StatusOK, cr)
	case "kantara":
		writeJSON(w, http.StatusOK, cr.Kantara)
	case "iso-27560":
		w.Header().Set("Content-Type", "application/ld+json")
		w.WriteHeader(http.StatusOK)
		json.NewEncoder(w).Encode(cr.ISO27560)
	case "jws":
		w.Header().Set("Content-Type", "application/jwt")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, cr.Signed)
	default:
		writeError(w, r, s.log, errConsentFormat)
	}
}

var errConsentFormat = policy.E(policy.KindInvalid, "invalid_request", "format is kantara, iso-27560 or jws (or absent for all)")

func (s *server) revoke(w http.ResponseWriter, r *http.Request) {
	g, err := s.svc.Revoke(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

func (s *server) listAudit(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	p, err := s.svc.ListAudit(r.Context(), limit, r.URL.Query().Get("cursor"))
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *server) verifyAudit(w http.ResponseWriter, r *http.Request) {
	rep, err := s.svc.VerifyAudit(r.Context())
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// auditConsistency proves that the current log extends the log of size
// from: the owner's CLI checks it against the head it kept.
func (s *server) auditConsistency(w http.ResponseWriter, r *http.Request) {
	from, err := strconv.ParseInt(r.URL.Query().Get("from"), 10, 64)
	if err != nil {
		writeError(w, r, s.log, errBadFrom)
		return
	}
	p, err := s.svc.Consistency(r.Context(), from)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *server) checkpoint(w http.ResponseWriter, r *http.Request) {
	cp, err := s.svc.Checkpoint(r.Context())
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, cp)
}

// decodeOptionalJSON is decodeJSON that also accepts an empty body.
func (s *server) decodeOptionalJSON(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	return decodeStrict(b, v)
}

func (s *server) listRelationships(w http.ResponseWriter, r *http.Request) {
	s.listed(w, r, func(q vault.PageQuery) (any, error) { return s.svc.ListRelationships(r.Context(), q) })
}

func (s *server) getRelationship(w http.ResponseWriter, r *http.Request) {
	rel, err := s.svc.GetRelationship(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, rel)
}

func (s *server) checkVerification(w http.ResponseWriter, r *http.Request) {
	rel, err := s.svc.CheckVerification(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, rel)
}

func (s *server) reaccept(w http.ResponseWriter, r *http.Request) {
	n, err := s.svc.AskReaccept(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusAccepted, n)
}

type moveRequest struct {
	Location string `json:"location"`
}

// announceMove tells every organization the vault's new address.
func (s *server) announceMove(w http.ResponseWriter, r *http.Request) {
	var req moveRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	res, err := s.svc.AnnounceMove(r.Context(), req.Location)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusAccepted, res)
}

type rotateRequest struct {
	Signing bool `json:"signing"`
	Records bool `json:"records"`
}

func (s *server) rotateKeys(w http.ResponseWriter, r *http.Request) {
	var req rotateRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	res, err := s.svc.RotateKeys(r.Context(), req.Signing, req.Records)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *server) keyStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.svc.KeyStatus(r.Context())
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// exportAgreement is GET /v1/owner/agreements/{id}: the IEEE 7012 dispute
// bundle of one agreement record.
func (s *server) exportAgreement(w http.ResponseWriter, r *http.Request) {
	b, err := s.svc.ExportAgreement(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}
