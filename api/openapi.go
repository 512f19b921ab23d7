package api

import (
	"encoding"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3gen"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/gorilla/mux"

	"github.com/pdvault/pdvault/internal/buildinfo"
	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

// The OpenAPI 3.1 document of the API, served at /openapi.json. It is
// built from the router itself (every named route but the web UI's) and
// the table below, with schemas generated from the Go types the handlers
// write: a route without an entry fails the build (TestOpenAPICoversEveryRoute),
// and the test suite validates its real traffic against the document
// (kin-openapi's openapi3filter), so the document cannot drift.

// opSpec describes one operation beyond what the router knows.
type opSpec struct {
	summary string
	tag     string // owner, organization, public, operations
	auth    string // "", "owner" (bearer), "dpop" (DPoP-bound grant), "proof" (a DPoP proof of the organization's key)
	query   []string
	req     any   // request body: a Go value (JSON), or one of the media constants below
	ok      int   // success status (200 when 0)
	res     any   // response body: a Go value (JSON), *openapi3.Schema, a media constant, or nil for none
	also    []int // other success statuses with the same body
	// resMedia: the response's media types when not application/json
	// (the same schema for each).
	resMedia []string
}

// form is the schema of an application/x-www-form-urlencoded body.
type form struct{ schema *openapi3.Schema }

func formOf(required []string, fields ...string) form {
	props := map[string]*openapi3.Schema{}
	for _, f := range fields {
		props[f] = openapi3.NewStringSchema()
	}
	return form{obj(props, required...)}
}

// Media types of non-JSON bodies.
type media string

const (
	mediaJWS    media = "application/jwt"
	mediaBinary media = "application/octet-stream"
	mediaAny    media = "*/*"
	mediaAtom   media = "application/atom+xml"
	mediaText   media = "text/plain"
)

func obj(props map[string]*openapi3.Schema, required ...string) *openapi3.Schema {
	s := openapi3.NewObjectSchema()
	for k, v := range props {
		s.WithPropertyRef(k, v.NewRef())
	}
	s.Required = required
	return s
}

var (
	anyJSON    = &openapi3.Schema{}
	anyObject  = openapi3.NewObjectSchema()
	str        = openapi3.NewStringSchema()
	arrayOf    = func(s *openapi3.Schema) *openapi3.Schema { return openapi3.NewArraySchema().WithItems(s) }
	statusBody = func() *openapi3.Schema { return obj(map[string]*openapi3.Schema{"status": str}, "status") }
)

var operations = map[string]opSpec{
	// Operations.
	"healthz": {summary: "Liveness: the process serves", tag: "operations", res: statusBody()},
	"readyz":  {summary: "Readiness: the vault is unlocked and its database takes writes", tag: "operations", res: statusBody()},
	"metrics": {summary: "Prometheus metrics (behind their own bearer token)", tag: "operations", res: mediaText},
	"openapi": {summary: "This document", tag: "operations", res: anyObject},

	// Discovery and public documents.
	"discovery":          {summary: "OAuth authorization server metadata (RFC 8414)", tag: "public", res: metadata{}},
	"jwks":               {summary: "The vault's public signing keys (RFC 7517)", tag: "public", res: jose.JSONWebKeySet{}, resMedia: []string{"application/jwk-set+json", "application/json"}},
	"protected_resource": {summary: "OAuth protected resource metadata (RFC 9728)", tag: "public", res: anyObject},
	"myterms":            {summary: "The owner's terms in IEEE 7012 (MyTerms) form", tag: "public", res: anyObject},
	"vocabulary":         {summary: "The standard collections and their fields", tag: "public", res: obj(map[string]*openapi3.Schema{"version": str, "collections": anyJSON}, "version", "collections")},
	"vocabulary.schema":  {summary: "The JSON Schema of one standard collection", tag: "public", res: anyObject, resMedia: []string{"application/schema+json"}},
	"terms":              {summary: "The owner's current terms", tag: "public", res: vault.TermsDoc{}},
	"terms.byhash":       {summary: "Terms by their hash (any version ever published)", tag: "public", res: vault.TermsDoc{}},
	"intents.list":       {summary: "Open intents: needs stated to the market, anonymously", tag: "public", res: obj(map[string]*openapi3.Schema{"intents": anyJSON}, "intents")},
	"intents.atom":       {summary: "Open intents as an Atom feed (RFC 4287)", tag: "public", res: mediaAtom},
	"intents.get":        {summary: "One open intent", tag: "public", res: vault.PublicIntent{}},
	"audit.head":         {summary: "The latest signed tree head of the audit log (C2SP signed note)", tag: "public", res: obj(map[string]*openapi3.Schema{"tree_head": str, "size": openapi3.NewInt64Schema()}, "tree_head", "size")},
	"audit.consistency":  {summary: "Proof that the audit log extends an earlier size (RFC 9162)", tag: "public", query: []string{"from"}, res: vault.AuditProof{}},

	// The organization protocol (docs/protocol.md).
	"requests.submit":    {summary: "Submit a signed access request: the JWS as the body, or a form with request=JWS and client_id", tag: "organization", req: openapi3.Content{"application/x-www-form-urlencoded": openapi3.NewMediaType().WithSchema(formOf([]string{"request"}, "request", "client_id").schema), "*/*": openapi3.NewMediaType().WithSchema(openapi3.NewSchema())}, res: vault.RequestTicket{}},
	"token":              {summary: "Collect a grant: OAuth token endpoint, device-code grant, DPoP-bound (RFC 8628, RFC 9449)", tag: "organization", auth: "proof", req: formOf([]string{"grant_type"}, "grant_type", "device_code", "request_id"), res: vault.TokenResponse{}},
	"introspect":         {summary: "Token introspection (RFC 7662)", tag: "organization", auth: "proof", req: formOf([]string{"token"}, "token", "token_type_hint"), res: vault.Introspection{}},
	"revoke":             {summary: "Token revocation by the organization (RFC 7009)", tag: "organization", auth: "proof", req: formOf([]string{"token"}, "token", "token_type_hint"), res: anyObject},
	"receipts":           {summary: "Submit a signed deletion receipt", tag: "organization", req: mediaAny, ok: http.StatusCreated, res: vault.ReceiptResult{}},
	"keys.link":          {summary: "Link a new organization key to a relationship", tag: "organization", auth: "proof", req: mediaAny, ok: http.StatusCreated, res: vault.RelationshipKey{}},
	"verification.start": {summary: "Start domain verification of the organization", tag: "organization", auth: "proof", res: vault.Challenge{}},
	"verification.check": {summary: "Check domain verification of the organization", tag: "organization", auth: "proof", res: obj(map[string]*openapi3.Schema{"verified_domain": str}, "verified_domain")},
	"intents.offer":      {summary: "Submit a signed offer for an intent", tag: "organization", req: mediaAny, ok: http.StatusCreated, res: vault.OfferTicket{}},
	"claims":             {summary: "Read derived claims a grant covers (signed answers)", tag: "organization", auth: "dpop", res: vault.ClaimsResult{}},
	"audit.proof":        {summary: "Inclusion proof of one audit entry about the organization", tag: "organization", auth: "proof", query: []string{"seq"}, res: vault.EntryProof{}},
	"data.collection":    {summary: "Read the records of a collection a grant covers", tag: "organization", auth: "dpop", query: []string{"limit", "cursor"}, res: vault.DataPage{}},
	"data.record":        {summary: "Read one record a grant covers", tag: "organization", auth: "dpop", res: vault.DataRecord{}},
	"data.document":      {summary: "Read a document's content a grant covers, with its own media type (Range supported)", tag: "organization", auth: "dpop", res: mediaAny, also: []int{http.StatusPartialContent}},

	// The owner API (docs/api.md).
	"owner.login":                  {summary: "Log in with the passphrase", tag: "owner", req: loginRequest{}, res: loginResponse{}},
	"owner.logout":                 {summary: "End this session", tag: "owner", auth: "owner", ok: http.StatusNoContent},
	"owner.passphrase":             {summary: "Change the passphrase", tag: "owner", auth: "owner", req: passphraseRequest{}, res: anyObject},
	"owner.export":                 {summary: "Export the whole vault (encrypted stream)", tag: "owner", auth: "owner", res: mediaBinary},
	"owner.records.list":           {summary: "List a collection's records", tag: "owner", auth: "owner", query: []string{"limit", "cursor"}, res: vault.Page{}},
	"owner.records.create":         {summary: "Create a record", tag: "owner", auth: "owner", req: anyObject, ok: http.StatusCreated, res: vault.Record{}},
	"owner.records.get":            {summary: "Get a record", tag: "owner", auth: "owner", res: vault.Record{}},
	"owner.records.update":         {summary: "Replace a record (If-Match or ?if_version)", tag: "owner", auth: "owner", query: []string{"if_version"}, req: anyObject, res: vault.Record{}},
	"owner.records.delete":         {summary: "Delete a record", tag: "owner", auth: "owner", query: []string{"if_version"}, ok: http.StatusNoContent},
	"owner.documents.list":         {summary: "List documents", tag: "owner", auth: "owner", query: []string{"limit", "cursor"}, res: vault.Page{}},
	"owner.documents.add":          {summary: "Add a document (streamed body, encrypted as it arrives)", tag: "owner", auth: "owner", query: []string{"title", "kind", "date", "counterparty", "name", "collection"}, req: mediaAny, ok: http.StatusCreated, res: vault.Record{}},
	"owner.documents.get":          {summary: "A document's metadata record", tag: "owner", auth: "owner", res: vault.Record{}},
	"owner.documents.delete":       {summary: "Delete a document", tag: "owner", auth: "owner", ok: http.StatusNoContent},
	"owner.documents.content":      {summary: "A document's content, with its own media type (Range supported)", tag: "owner", auth: "owner", query: []string{"inline"}, res: mediaAny, also: []int{http.StatusPartialContent}},
	"owner.imports.create":         {summary: "Import a file (streamed; Prefer: respond-async for a job)", tag: "owner", auth: "owner", query: []string{"format", "collection", "map", "dry_run", "name"}, req: mediaAny, res: anyObject, also: []int{http.StatusCreated, http.StatusAccepted}},
	"owner.imports.list":           {summary: "Import jobs", tag: "owner", auth: "owner", res: obj(map[string]*openapi3.Schema{"imports": arrayOf(anyObject)}, "imports")},
	"owner.imports.formats":        {summary: "The importers", tag: "owner", auth: "owner", res: obj(map[string]*openapi3.Schema{"formats": arrayOf(anyObject)}, "formats")},
	"owner.imports.get":            {summary: "One import job's progress", tag: "owner", auth: "owner", res: importJob{}},
	"owner.terms.get":              {summary: "The current terms", tag: "owner", auth: "owner", res: vault.TermsDoc{}},
	"owner.terms.set":              {summary: "Publish new terms", tag: "owner", auth: "owner", req: anyObject, res: vault.TermsDoc{}},
	"owner.requests.list":          {summary: "Access requests", tag: "owner", auth: "owner", query: []string{"status", "limit", "cursor"}, res: vault.RequestPage{}},
	"owner.requests.get":           {summary: "One access request", tag: "owner", auth: "owner", res: vault.Request{}},
	"owner.requests.approve":       {summary: "Approve a request, possibly narrowed", tag: "owner", auth: "owner", req: approvalSchema(), res: vault.Request{}},
	"owner.requests.deny":          {summary: "Deny a request", tag: "owner", auth: "owner", req: denyRequest{}, res: vault.Request{}},
	"owner.grants.list":            {summary: "Grants", tag: "owner", auth: "owner", query: []string{"limit", "cursor"}, res: vault.GrantPage{}},
	"owner.grants.get":             {summary: "One grant", tag: "owner", auth: "owner", res: vault.Grant{}},
	"owner.grants.revoke":          {summary: "Revoke a grant (effective on the next request)", tag: "owner", auth: "owner", res: vault.Grant{}},
	"owner.grants.consent":         {summary: "A grant's consent receipt: ISO/IEC TS 27560 (JSON-LD, default), Kantara (?format=kantara), or a signed JWT (?format=jwt)", tag: "owner", auth: "owner", query: []string{"format"}, res: mediaAny, resMedia: []string{"application/ld+json", "application/json", "application/jwt"}},
	"owner.agreements.export":      {summary: "An IEEE 7012 agreement record's dispute bundle", tag: "owner", auth: "owner", res: vault.AgreementBundle{}},
	"owner.audit.list":             {summary: "The audit log, newest first", tag: "owner", auth: "owner", query: []string{"limit", "cursor"}, res: vault.AuditPage{}},
	"owner.audit.verify":           {summary: "Verify the whole audit log", tag: "owner", auth: "owner", res: vault.AuditReport{}},
	"owner.audit.checkpoint":       {summary: "Sign a tree head now", tag: "owner", auth: "owner", res: vault.Checkpoint{}},
	"owner.audit.consistency":      {summary: "Consistency proof from an earlier size", tag: "owner", auth: "owner", query: []string{"from"}, res: vault.AuditProof{}},
	"owner.intents.list":           {summary: "Your intents", tag: "owner", auth: "owner", res: obj(map[string]*openapi3.Schema{"intents": anyJSON}, "intents")},
	"owner.intents.publish":        {summary: "State a need to the market, anonymously", tag: "owner", auth: "owner", req: policy.IntentInput{}, ok: http.StatusCreated, res: vault.OwnerIntent{}},
	"owner.intents.get":            {summary: "One of your intents, with its offers", tag: "owner", auth: "owner", res: vault.OwnerIntent{}},
	"owner.intents.close":          {summary: "Close an intent", tag: "owner", auth: "owner", res: vault.OwnerIntent{}},
	"owner.offers.accept":          {summary: "Accept an offer: it becomes an access request", tag: "owner", auth: "owner", res: vault.Request{}},
	"owner.offers.decline":         {summary: "Decline an offer", tag: "owner", auth: "owner", ok: http.StatusNoContent},
	"owner.notifications.list":     {summary: "Notification channels and their delivery state", tag: "owner", auth: "owner", res: obj(map[string]*openapi3.Schema{"channels": anyJSON}, "channels")},
	"owner.notifications.add":      {summary: "Add a notification channel (ntfy, webhook, email, webpush)", tag: "owner", auth: "owner", req: vault.ChannelConfig{}, ok: http.StatusCreated, res: vault.Channel{}},
	"owner.notifications.remove":   {summary: "Remove a notification channel", tag: "owner", auth: "owner", ok: http.StatusNoContent},
	"owner.notifications.test":     {summary: "Send a test message on a channel", tag: "owner", auth: "owner", ok: http.StatusAccepted, res: statusBody()},
	"owner.notifications.vapid":    {summary: "The vault's VAPID public key, for a browser's Web Push subscription", tag: "owner", auth: "owner", res: obj(map[string]*openapi3.Schema{"public_key": str}, "public_key")},
	"owner.keys":                   {summary: "Key status", tag: "owner", auth: "owner", res: vault.KeyStatus{}},
	"owner.keys.rotate":            {summary: "Rotate the signing and/or record keys", tag: "owner", auth: "owner", req: rotateRequest{}, res: vault.RotationResult{}},
	"owner.move":                   {summary: "Tell every organization the vault's new address (a signed vault.moved notice each)", tag: "owner", auth: "owner", ok: http.StatusAccepted, req: moveRequest{}, res: vault.MoveResult{}},
	"owner.relationships.list":     {summary: "Relationships with organizations", tag: "owner", auth: "owner", query: []string{"limit", "cursor"}, res: vault.RelationshipPage{}},
	"owner.relationships.get":      {summary: "One relationship", tag: "owner", auth: "owner", res: vault.Relationship{}},
	"owner.relationships.verify":   {summary: "Check the organization's domain now", tag: "owner", auth: "owner", res: vault.Relationship{}},
	"owner.relationships.reaccept": {summary: "Ask the organization to accept the current terms", tag: "owner", auth: "owner", ok: http.StatusAccepted, res: vault.Notice{}},
}

// openAPIDoc is the document built from a router on first use (the router
// is complete by then). A host's vaults share one (hosting.go).
type openAPIDoc struct {
	r    *mux.Router
	once sync.Once
	doc  *openapi3.T
	err  error
}

func (d *openAPIDoc) get() (*openapi3.T, error) {
	d.once.Do(func() { d.doc, d.err = buildOpenAPI(d.r) })
	return d.doc, d.err
}

// openAPIHandler serves the document, with the vault's issuer as its
// server.
func (s *server) openAPIHandler(r *mux.Router) http.HandlerFunc {
	type cached struct {
		issuer string
		body   []byte
	}
	src := s.openapi
	if src == nil {
		src = &openAPIDoc{r: r}
	}
	var cache atomic.Pointer[cached]
	return func(w http.ResponseWriter, req *http.Request) {
		doc, err := src.get()
		if err != nil {
			writeError(w, req, s.log, policy.Internal("openapi", err))
			return
		}
		iss := s.svc.Issuer()
		c := cache.Load()
		if c == nil || c.issuer != iss {
			d := *doc
			d.Servers = openapi3.Servers{{URL: iss}}
			b, err := json.Marshal(&d)
			if err != nil {
				writeError(w, req, s.log, policy.Internal("openapi", err))
				return
			}
			c = &cached{issuer: iss, body: b}
			cache.Store(c)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(c.body)
	}
}

// approvalSchema is vault.Approval's, except that a detail's type may be
// left out: the owner's narrowing has only one type to give.
func approvalSchema() *openapi3.Schema {
	ref, err := schemaFor(vault.Approval{}, openapi3.Schemas{})
	if err != nil {
		panic(err)
	}
	s := ref.Value
	item := s.Properties["authorization_details"].Value.Items.Value
	item.Required = slices.DeleteFunc(slices.Clone(item.Required), func(n string) bool { return n == "type" })
	return s
}

var pathParam = regexp.MustCompile(`\{([^}:]+)(:[^}]*)?\}`)

// buildOpenAPI makes the document from the router's named routes.
func buildOpenAPI(r *mux.Router) (*openapi3.T, error) {
	doc := &openapi3.T{
		OpenAPI: "3.1.0",
		Info: &openapi3.Info{Title: "pdvault", Version: buildinfo.Read().Version,
			Description: "A personal-data vault: the owner API (docs/api.md) and the organization protocol (docs/protocol.md). " +
				"JSON request bodies of the owner API are read as JSON whatever their Content-Type (the owner's bearer token, not a cookie, authorizes them)."},
		Paths:      openapi3.NewPaths(),
		Components: &openapi3.Components{Schemas: openapi3.Schemas{}, SecuritySchemes: openapi3.SecuritySchemes{}},
	}
	doc.Components.SecuritySchemes["owner"] = &openapi3.SecuritySchemeRef{Value: openapi3.NewSecurityScheme().WithType("http").WithScheme("bearer").
		WithDescription("An owner session token from POST /v1/owner/session.")}
	doc.Components.SecuritySchemes["dpop"] = &openapi3.SecuritySchemeRef{Value: openapi3.NewSecurityScheme().WithType("http").WithScheme("DPoP").
		WithDescription("A grant (access token) bound to the organization's key: Authorization: DPoP <grant> and a DPoP proof header (RFC 9449).")}
	doc.Components.SecuritySchemes["proof"] = &openapi3.SecuritySchemeRef{Value: openapi3.NewSecurityScheme().WithType("apiKey").WithIn("header").WithName("DPoP").
		WithDescription("A DPoP proof (RFC 9449) signed with the organization's key.")}
	errSchema, err := schemaFor(errorBody{}, doc.Components.Schemas)
	if err != nil {
		return nil, err
	}
	doc.Components.Schemas["Error"] = errSchema
	var missing []string
	err = r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		name := route.GetName()
		if name == "" || strings.HasPrefix(name, "ui.") {
			return nil
		}
		spec, ok := operations[name]
		if !ok {
			missing = append(missing, name)
			return nil
		}
		tmpl, err := route.GetPathTemplate()
		if err != nil {
			return err
		}
		methods, _ := route.GetMethods()
		path := pathParam.ReplaceAllString(tmpl, "{$1}")
		item := doc.Paths.Value(path)
		if item == nil {
			item = &openapi3.PathItem{}
			doc.Paths.Set(path, item)
		}
		for i, m := range methods {
			id := name
			if i > 0 { // one route, several methods: ids must be unique
				id += "." + strings.ToLower(m)
			}
			op, err := operation(id, m, path, spec, doc.Components.Schemas)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			item.SetOperation(m, op)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("routes without an OpenAPI entry: %s", strings.Join(missing, ", "))
	}
	return doc, nil
}

func operation(name, method, path string, spec opSpec, schemas openapi3.Schemas) (*openapi3.Operation, error) {
	op := openapi3.NewOperation()
	op.OperationID = name
	op.Summary = spec.summary
	op.Tags = []string{spec.tag}
	switch spec.auth {
	case "owner", "dpop", "proof":
		op.Security = &openapi3.SecurityRequirements{openapi3.NewSecurityRequirement().Authenticate(spec.auth)}
	default:
		op.Security = &openapi3.SecurityRequirements{}
	}
	for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
		op.AddParameter(openapi3.NewPathParameter(m[1]).WithSchema(openapi3.NewStringSchema()))
	}
	for _, q := range spec.query {
		op.AddParameter(openapi3.NewQueryParameter(q).WithSchema(openapi3.NewStringSchema()))
	}
	if spec.req != nil && method != http.MethodGet && method != http.MethodHead {
		c, err := content(spec.req, schemas)
		if err != nil {
			return nil, err
		}
		op.RequestBody = &openapi3.RequestBodyRef{Value: openapi3.NewRequestBody().WithContent(c)}
	}
	ok := spec.ok
	if ok == 0 {
		ok = http.StatusOK
	}
	resp := openapi3.NewResponse().WithDescription(http.StatusText(ok))
	if spec.res != nil && ok != http.StatusNoContent {
		c, err := content(spec.res, schemas)
		if err != nil {
			return nil, err
		}
		if len(spec.resMedia) > 0 {
			var sch *openapi3.SchemaRef
			for _, mt := range c {
				sch = mt.Schema
			}
			c = openapi3.Content{}
			for _, m := range spec.resMedia {
				c[m] = openapi3.NewMediaType().WithSchemaRef(sch)
			}
		}
		if method == http.MethodHead {
			c = nil
		}
		resp.Content = c
	}
	op.AddResponse(ok, resp)
	for _, st := range spec.also {
		op.AddResponse(st, resp)
	}
	op.Responses.Set("default", &openapi3.ResponseRef{Value: openapi3.NewResponse().
		WithDescription("An error: the code in error, a message in error_description (docs/api.md lists them)").
		WithJSONSchemaRef(openapi3.NewSchemaRef("#/components/schemas/Error", nil))})
	return op, nil
}

func content(v any, schemas openapi3.Schemas) (openapi3.Content, error) {
	switch v := v.(type) {
	case openapi3.Content:
		return v, nil
	case form:
		return openapi3.Content{"application/x-www-form-urlencoded": openapi3.NewMediaType().WithSchema(v.schema)}, nil
	case media:
		return openapi3.NewContentWithSchema(openapi3.NewSchema(), []string{string(v)}), nil
	case *openapi3.Schema:
		return openapi3.NewContentWithJSONSchema(v), nil
	}
	ref, err := schemaFor(v, schemas)
	if err != nil {
		return nil, err
	}
	return openapi3.NewContentWithJSONSchemaRef(ref), nil
}

var (
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
	timeType          = reflect.TypeFor[time.Time]()
	rawType           = reflect.TypeFor[json.RawMessage]()
)

var genMu sync.Mutex

// schemaFor generates the schema of a Go value as encoding/json writes it:
// fields without omitempty are required; nil slices, maps and pointers
// may be null; types that marshal themselves are left open.
func schemaFor(v any, schemas openapi3.Schemas) (*openapi3.SchemaRef, error) {
	genMu.Lock()
	defer genMu.Unlock()
	return openapi3gen.NewSchemaRefForValue(v, schemas, openapi3gen.SchemaCustomizer(customize))
}

func customize(name string, t reflect.Type, tag reflect.StructTag, s *openapi3.Schema) error {
	if t == rawType || (t != timeType && (t.Implements(marshalerType) || reflect.PointerTo(t).Implements(marshalerType) ||
		t.Implements(textMarshalerType) || reflect.PointerTo(t).Implements(textMarshalerType))) {
		*s = openapi3.Schema{}
		return nil
	}
	if t == timeType {
		*s = *openapi3.NewDateTimeSchema()
	}
	if t.Kind() == reflect.Interface {
		*s = openapi3.Schema{}
		return nil
	}
	if t.Kind() == reflect.Struct && t != timeType {
		s.Required = requiredFields(t)
	}
	omit := strings.Contains(tag.Get("json"), ",omitempty")
	switch t.Kind() {
	case reflect.Slice, reflect.Map, reflect.Pointer:
		if !omit && s.Type != nil && len(*s.Type) == 1 {
			*s.Type = append(*s.Type, "null")
		}
	}
	return nil
}

// requiredFields are the JSON names of t's fields that are always
// written (no omitempty), embedded structs included.
func requiredFields(t reflect.Type) []string {
	var req []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				continue
			}
			if ft.Kind() == reflect.Struct {
				req = append(req, requiredFields(ft)...)
			}
			continue
		}
		if strings.Contains(","+opts+",", ",omitempty,") || strings.Contains(","+opts+",", ",omitzero,") {
			continue
		}
		if name == "" {
			name = f.Name
		}
		req = append(req, name)
	}
	sort.Strings(req)
	return req
}
