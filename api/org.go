package api

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

// The organization-facing protocol. Every handler decodes, makes one vault
// call, and encodes; DPoP and grant checks happen in the vault.

// metadata is the RFC 8414 authorization-server metadata, with pdvault's
// own endpoints added.
type metadata struct {
	Issuer                          string   `json:"issuer"`
	JWKSURI                         string   `json:"jwks_uri"`
	TokenEndpoint                   string   `json:"token_endpoint"`
	IntrospectionEndpoint           string   `json:"introspection_endpoint"`
	DeviceAuthorizationEndpoint     string   `json:"device_authorization_endpoint"`
	GrantTypesSupported             []string `json:"grant_types_supported"`
	TokenEndpointAuthMethods        []string `json:"token_endpoint_auth_methods_supported"`
	DPoPAlgs                        []string `json:"dpop_signing_alg_values_supported"`
	RequestObjectAlgs               []string `json:"request_object_signing_alg_values_supported"`
	AuthorizationDetailsTypes       []string `json:"authorization_details_types_supported"`
	ResponseTypesSupported          []string `json:"response_types_supported"`
	IntrospectionEndpointAuthMethod []string `json:"introspection_endpoint_auth_methods_supported,omitempty"`
	RevocationEndpoint              string   `json:"revocation_endpoint"`
	RevocationEndpointAuthMethods   []string `json:"revocation_endpoint_auth_methods_supported"`
	ReceiptsEndpoint                string   `json:"receipts_endpoint"`
	KeysEndpoint                    string   `json:"keys_endpoint"`
	VerificationEndpoint            string   `json:"verification_endpoint"`
	TermsEndpoint                   string   `json:"terms_endpoint"`
	RequestEndpoint                 string   `json:"request_endpoint"`
	DataEndpoint                    string   `json:"data_endpoint"`
	ClaimsEndpoint                  string   `json:"claims_endpoint"`
	IntentsEndpoint                 string   `json:"intents_endpoint"`
	VocabularyEndpoint              string   `json:"vocabulary_endpoint"`
	VocabularyVersion               string   `json:"vocabulary_version"`
}

// deviceCodeGrant is the RFC 8628 grant type the token endpoint serves.
const deviceCodeGrant = "urn:ietf:params:oauth:grant-type:device_code"

func (s *server) discovery(w http.ResponseWriter, r *http.Request) {
	iss := s.svc.Issuer()
	algs := orgAlgs
	writeJSON(w, http.StatusOK, metadata{
		Issuer:                      iss,
		JWKSURI:                     iss + "/.well-known/jwks.json",
		TokenEndpoint:               iss + "/v1/token",
		IntrospectionEndpoint:       iss + "/v1/introspect",
		DeviceAuthorizationEndpoint: iss + "/v1/requests",
		GrantTypesSupported:         []string{deviceCodeGrant},
		TokenEndpointAuthMethods:    []string{"none"},
		DPoPAlgs:                    algs,
		RequestObjectAlgs:           algs,
		AuthorizationDetailsTypes:   []string{policy.DetailType},
		ResponseTypesSupported:      []string{},
		// Only registered names (IANA "OAuth Token Endpoint Authentication
		// Methods"): revocation takes the grant alone ("none", RFC 7009);
		// introspection needs the grant's DPoP key, which is no registered
		// method, so its list is left out (RFC 8414 §2: "determined by other
		// means", docs/protocol.md §8).
		RevocationEndpoint:            iss + "/v1/revoke",
		RevocationEndpointAuthMethods: []string{"none"},
		ReceiptsEndpoint:              iss + "/v1/receipts",
		KeysEndpoint:                  iss + "/v1/keys",
		VerificationEndpoint:          iss + "/v1/verification",
		TermsEndpoint:                 iss + "/v1/terms",
		RequestEndpoint:               iss + "/v1/requests",
		DataEndpoint:                  iss + "/v1/data",
		ClaimsEndpoint:                iss + "/v1/claims",
		IntentsEndpoint:               iss + "/v1/intents",
		VocabularyEndpoint:            iss + "/v1/vocabulary",
		VocabularyVersion:             policy.VocabularyVersion,
	})
}

// vocabulary is GET /v1/vocabulary: the standard collections and where
// each one's JSON Schema is. The same for every vault of this version: it
// says what may be asked for, never what this owner holds.
func (s *server) vocabulary(w http.ResponseWriter, r *http.Request) {
	iss := s.svc.Issuer()
	colls := map[string]map[string]string{}
	for _, c := range policy.VocabularyCollections() {
		colls[c] = map[string]string{"schema": iss + "/v1/vocabulary/" + c}
	}
	w.Header().Set("Cache-Control", "public, max-age=86400")
	writeJSON(w, http.StatusOK, map[string]any{"version": policy.VocabularyVersion, "collections": colls,
		"nested_fields": false, "document_content_field": vault.ContentField})
}

// vocabularySchema is GET /v1/vocabulary/{collection}.
func (s *server) vocabularySchema(w http.ResponseWriter, r *http.Request) {
	b, ok := policy.VocabularySchema(mux.Vars(r)["collection"])
	if !ok {
		writeError(w, r, s.log, errNoSchema)
		return
	}
	w.Header().Set("Content-Type", "application/schema+json")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

var errNoSchema = policy.E(policy.KindNotFound, "not_found", "no standard collection of that name; GET /v1/vocabulary lists them")

func (s *server) jwks(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Content-Type", "application/jwk-set+json")
	writeJSONRaw(w, http.StatusOK, s.svc.JWKS())
}

func (s *server) currentTerms(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.svc.CurrentTerms())
}

func (s *server) termsByHash(w http.ResponseWriter, r *http.Request) {
	doc, err := s.svc.TermsByHash(r.Context(), mux.Vars(r)["hash"])
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=86400, immutable")
	writeJSON(w, http.StatusOK, doc)
}

// signedBody reads a body that is a compact JWS.
func (s *server) signedBody(w http.ResponseWriter, r *http.Request) (string, error) {
	body, err := s.readBody(w, r)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(body)), nil
}

// release is RFC 7009 revocation by the organization: 200 whatever the
// token, unless the caller's proof fails.
func (s *server) release(w http.ResponseWriter, r *http.Request) {
	form, err := s.readForm(w, r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if form.Get("token") == "" {
		writeError(w, r, s.log, errNoToken)
		return
	}
	auth, proof, err := s.callerAuth(r)
	if err != nil {
		s.dpopChallenge(w, err)
		writeError(w, r, s.log, err)
		return
	}
	if err := s.svc.ReleaseGrant(r.Context(), form.Get("token"), auth, proof, s.httpContext(r)); err != nil {
		s.dpopChallenge(w, err)
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *server) receipt(w http.ResponseWriter, r *http.Request) {
	signed, err := s.signedBody(w, r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	res, err := s.svc.SubmitReceipt(r.Context(), signed)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusCreated, res)
}

func (s *server) linkKey(w http.ResponseWriter, r *http.Request) {
	signed, err := s.signedBody(w, r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	proof, ok := s.dpopProof(w, r)
	if !ok {
		return
	}
	k, err := s.svc.LinkKey(r.Context(), signed, proof, s.httpContext(r))
	if err != nil {
		s.dpopChallenge(w, err)
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusCreated, k)
}

func (s *server) startVerification(w http.ResponseWriter, r *http.Request) {
	s.proofCall(w, r, http.StatusOK, func(proof string) (any, error) {
		return s.svc.StartVerification(r.Context(), proof, s.httpContext(r))
	})
}

func (s *server) checkVerificationOrg(w http.ResponseWriter, r *http.Request) {
	s.proofCall(w, r, http.StatusOK, func(proof string) (any, error) {
		rel, err := s.svc.CheckVerificationByProof(r.Context(), proof, s.httpContext(r))
		return map[string]any{"verified_domain": rel.VerifiedDomain}, err
	})
}

// submitRequest takes a compact JWS as the body (RFC 9101 media type
// application/oauth-authz-req+jwt), or as the form field "request".
func (s *server) submitRequest(w http.ResponseWriter, r *http.Request) {
	body, err := s.readBody(w, r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	signed, clientID := strings.TrimSpace(string(body)), ""
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		form, err := url.ParseQuery(signed)
		if err != nil {
			writeError(w, r, s.log, errBadForm)
			return
		}
		// RFC 9101 §5: the client_id parameter, if sent, must be the
		// request object's (the vault checks it against the key).
		signed, clientID = form.Get("request"), form.Get("client_id")
	}
	t, err := s.svc.SubmitRequest(r.Context(), signed, clientID)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	// RFC 8628 §3.2: 200 (a conformant client refuses anything else).
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, t)
}

// httpContext is the method and absolute URL of the request as the client
// addressed it: the vault's public base URL and the path. The query is
// left out, as RFC 9449 §4.3 says htu is compared without it.
func (s *server) httpContext(r *http.Request) vault.HTTPContext {
	return vault.HTTPContext{Method: r.Method, URL: s.svc.Issuer() + r.URL.EscapedPath()}
}

// oneHeader returns the single value of a header; a repeated header is an
// error (RFC 9449 §4.3 point 1: exactly one DPoP header).
func oneHeader(r *http.Request, name string) (string, bool) {
	v := r.Header.Values(name)
	switch len(v) {
	case 0:
		return "", true
	case 1:
		return v[0], true
	}
	return "", false
}

func (s *server) token(w http.ResponseWriter, r *http.Request) {
	form, err := s.readForm(w, r)
	if err != nil {
		writeTokenError(w, r, s.log, err)
		return
	}
	if gt := form.Get("grant_type"); gt != deviceCodeGrant {
		writeTokenError(w, r, s.log, errGrantType)
		return
	}
	id := form.Get("device_code")
	if id == "" {
		id = form.Get("request_id")
	}
	if id == "" {
		writeTokenError(w, r, s.log, errNoDeviceCode)
		return
	}
	proof, ok := oneHeader(r, "DPoP")
	if !ok {
		writeTokenError(w, r, s.log, errTwoProofs)
		return
	}
	res, err := s.svc.CollectGrant(r.Context(), id, proof, s.httpContext(r))
	if err != nil {
		writeTokenError(w, r, s.log, err)
		return
	}
	w.Header().Set("Pragma", "no-cache")
	s.auditHeaders(w, r, 0)
	writeJSON(w, http.StatusOK, res)
}

// Header names of the audit log's witness data (docs/protocol.md §13).
const (
	hdrAuditHead = "PDVault-Audit-Head" // base64url of a recent signed tree head
	hdrAuditSeq  = "PDVault-Audit-Seq"  // the entry this response was logged as
)

// auditHeaders puts a recent signed tree head (and the response's own
// entry, if it has one) on a response to an organization, so that every
// organization is a witness of the log without asking.
func (s *server) auditHeaders(w http.ResponseWriter, r *http.Request, seq int64) {
	if th, err := s.svc.RecentTreeHead(r.Context()); err == nil {
		w.Header().Set(hdrAuditHead, s.headerOf(th))
	}
	if seq > 0 {
		w.Header().Set(hdrAuditSeq, strconv.FormatInt(seq, 10))
	}
}

// headerOf is a head as a header value, encoded once per head.
func (s *server) headerOf(th policy.TreeHead) string {
	if c := s.headHeader.Load(); c != nil && c.note == th.Note {
		return c.value
	}
	c := &encodedHead{note: th.Note, value: base64.RawURLEncoding.EncodeToString([]byte(th.Note))}
	s.headHeader.Store(c)
	return c.value
}

type encodedHead struct{ note, value string }

// auditHead serves a recent signed tree head.
func (s *server) auditHead(w http.ResponseWriter, r *http.Request) {
	th, err := s.svc.RecentTreeHead(r.Context())
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"tree_head": th.Note, "size": th.Size})
}

// auditConsistencyPublic serves consistency proofs to anyone: they are
// hashes, and reveal nothing of any entry.
func (s *server) auditConsistencyPublic(w http.ResponseWriter, r *http.Request) {
	s.auditConsistency(w, r)
}

// auditProof gives an organization one of its own entries with its
// inclusion proof; it authenticates with a DPoP proof of one of its keys.
func (s *server) auditProof(w http.ResponseWriter, r *http.Request) {
	seq, err := strconv.ParseInt(r.URL.Query().Get("seq"), 10, 64)
	if err != nil {
		writeError(w, r, s.log, errBadSeq)
		return
	}
	s.proofCall(w, r, http.StatusOK, func(proof string) (any, error) {
		return s.svc.ProveEntry(r.Context(), seq, proof, s.httpContext(r))
	})
}

// dpopAccess reads "Authorization: DPoP <grant>" and the DPoP header.
func (s *server) dpopAccess(r *http.Request) (vault.Access, error) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "DPoP") || strings.TrimSpace(tok) == "" {
		return vault.Access{}, errNeedDPoP
	}
	proof, ok := oneHeader(r, "DPoP")
	if !ok {
		return vault.Access{}, errTwoProofs
	}
	return vault.Access{Grant: strings.TrimSpace(tok), Proof: proof, HTTP: s.httpContext(r)}, nil
}

// callerAuth reads how an organization authenticates at introspection and
// revocation: an optional "Authorization: DPoP <grant>" (how OAuth
// libraries present an access token) and the DPoP proof. Another scheme is
// a failed client authentication.
func (s *server) callerAuth(r *http.Request) (auth, proof string, err error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "DPoP") || strings.TrimSpace(tok) == "" {
			return "", "", vault.ErrInvalidClient
		}
		auth = strings.TrimSpace(tok)
	}
	proof, ok := oneHeader(r, "DPoP")
	if !ok {
		return "", "", errTwoProofs
	}
	return auth, proof, nil
}

// dpopProof returns the request's single DPoP header (or ""), or answers
// the error itself when there are several.
func (s *server) dpopProof(w http.ResponseWriter, r *http.Request) (string, bool) {
	proof, ok := oneHeader(r, "DPoP")
	if !ok {
		writeError(w, r, s.log, errTwoProofs)
	}
	return proof, ok
}

// proofCall runs a call authenticated by a DPoP proof alone and writes its
// answer: the shape of the verification and key endpoints.
func (s *server) proofCall(w http.ResponseWriter, r *http.Request, status int, call func(proof string) (any, error)) {
	proof, ok := s.dpopProof(w, r)
	if !ok {
		return
	}
	res, err := call(proof)
	if err != nil {
		s.dpopChallenge(w, err)
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, status, res)
}

// dpopChallenge sets the RFC 9449 §7.1 challenge before an error is
// written, pointing to the protected-resource metadata (RFC 9728 §5.1).
func (s *server) dpopChallenge(w http.ResponseWriter, err error) {
	if policy.KindOf(err) == policy.KindUnauthenticated {
		w.Header().Set("WWW-Authenticate", `DPoP error="`+policy.CodeOf(err)+`", algs="`+strings.Join(orgAlgs, " ")+
			`", resource_metadata="`+s.svc.Issuer()+protectedResourcePath+`"`)
	}
}

// orgAlgs are the signature algorithms organizations may use (RFC 9864's
// Ed25519 and its older name EdDSA are the same signatures).
var orgAlgs = []string{"Ed25519", "EdDSA", "ES256"}

const protectedResourcePath = "/.well-known/oauth-protected-resource"

// myTerms is GET /.well-known/myterms: what this first party (IEEE 7012)
// proffers — roster agreements by id, URL and content hash, beside the
// owner's own machine-readable terms — and how to answer. The shape is
// pdvault's (docs/terms.md, "IEEE 7012") until a normative one exists.
func (s *server) myTerms(w http.ResponseWriter, r *http.Request) {
	iss := s.svc.Issuer()
	t := s.svc.CurrentTerms()
	proffered := t.Terms.Agreements
	if proffered == nil {
		proffered = []policy.AgreementRef{}
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, map[string]any{
		"standard":            "IEEE 7012-2025",
		"wire_format":         policy.MyTermsWireFormat,
		"first_party":         iss,
		"proffered":           proffered,
		"roster_ids_known":    policy.RosterIDs,
		"responses_supported": []string{"accept", "propose", "reject"},
		"terms_endpoint":      iss + "/v1/terms",
		"terms_hash":          t.Hash,
		"request_endpoint":    iss + "/v1/requests",
	})
}

// protectedResource is RFC 9728 protected-resource metadata: the data
// endpoints are a resource of the vault's own authorization server, and
// take only DPoP-bound grants.
func (s *server) protectedResource(w http.ResponseWriter, r *http.Request) {
	iss := s.svc.Issuer()
	w.Header().Set("Cache-Control", "public, max-age=3600")
	writeJSON(w, http.StatusOK, map[string]any{
		"resource":                              iss,
		"authorization_servers":                 []string{iss},
		"jwks_uri":                              iss + "/.well-known/jwks.json",
		"bearer_methods_supported":              []string{"header"},
		"dpop_bound_access_tokens_required":     true,
		"dpop_signing_alg_values_supported":     orgAlgs,
		"authorization_details_types_supported": []string{policy.DetailType},
		"resource_documentation":                "https://github.com/pdvault/pdvault/blob/main/docs/protocol.md",
	})
}

func (s *server) readCollection(w http.ResponseWriter, r *http.Request) {
	a, err := s.dpopAccess(r)
	if err != nil {
		s.dpopChallenge(w, err)
		writeError(w, r, s.log, err)
		return
	}
	limit, err := limitParam(r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	page, err := s.svc.ReadCollection(r.Context(), a, mux.Vars(r)["collection"], limit, r.URL.Query().Get("cursor"))
	if err != nil {
		s.dpopChallenge(w, err)
		writeError(w, r, s.log, err)
		return
	}
	s.auditHeaders(w, r, page.AuditSeq)
	writeJSON(w, http.StatusOK, page)
}

func (s *server) readRecord(w http.ResponseWriter, r *http.Request) {
	a, err := s.dpopAccess(r)
	if err != nil {
		s.dpopChallenge(w, err)
		writeError(w, r, s.log, err)
		return
	}
	v := mux.Vars(r)
	rec, err := s.svc.ReadRecord(r.Context(), a, v["collection"], v["id"])
	if err != nil {
		s.dpopChallenge(w, err)
		writeError(w, r, s.log, err)
		return
	}
	s.auditHeaders(w, r, rec.AuditSeq)
	writeJSON(w, http.StatusOK, rec)
}

func (s *server) readClaims(w http.ResponseWriter, r *http.Request) {
	a, err := s.dpopAccess(r)
	if err != nil {
		s.dpopChallenge(w, err)
		writeError(w, r, s.log, err)
		return
	}
	res, err := s.svc.ReadClaims(r.Context(), a)
	if err != nil {
		s.dpopChallenge(w, err)
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *server) introspect(w http.ResponseWriter, r *http.Request) {
	form, err := s.readForm(w, r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	tok := form.Get("token")
	if tok == "" {
		writeError(w, r, s.log, errNoToken)
		return
	}
	auth, proof, err := s.callerAuth(r)
	if err != nil {
		s.dpopChallenge(w, err)
		writeError(w, r, s.log, err)
		return
	}
	res, err := s.svc.Introspect(r.Context(), tok, auth, proof, s.httpContext(r))
	if err != nil {
		s.dpopChallenge(w, err)
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// readForm parses an application/x-www-form-urlencoded body within the
// body limit.
func (s *server) readForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return nil, errBadForm
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return nil, err
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, errBadForm
	}
	return form, nil
}

// limitParam reads ?limit=; absent is 0 (the default), and an explicit 0 is
// out of range.
func limitParam(r *http.Request) (int, error) {
	l := r.URL.Query().Get("limit")
	if l == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(l)
	if err != nil || n == 0 {
		return 0, errBadLimitParam
	}
	return n, nil
}
