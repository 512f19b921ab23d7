package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/gorilla/mux"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/vault"
)

// Every request the api tests send through newEnv is checked against the
// served OpenAPI document (validatingHandler): every response, whatever
// its status, must match an operation's documented responses, and every
// request the server accepted (2xx) must match its operation's
// parameters and body. The tests' traffic is the check that the document
// says what the server does.

func init() {
	for _, mt := range []string{"application/jwt", "application/atom+xml", "*/*", "text/calendar", "text/vcard", "text/csv", "application/pdf", "image/png", "application/xml", "application/x-ofx"} {
		openapi3filter.RegisterBodyDecoder(mt, openapi3filter.FileBodyDecoder)
	}
	openapi3filter.RegisterBodyDecoder("text/plain", openapi3filter.FileBodyDecoder)
}

// opsSeen are the operations the suite's traffic exercised
// (PDVAULT_OPENAPI_COVERAGE=1 go test ./api lists those it did not).
var opsSeen sync.Map

const validateMax = 4 << 20 // bodies beyond this are not validated (their headers and status still are)

type openAPICheck struct {
	inner    http.Handler
	once     sync.Once
	router   routers.Router
	loadErr  error
	mu       sync.Mutex
	failures []string
	checked  int
}

func validatingHandler(t *testing.T, inner http.Handler) *openAPICheck {
	c := &openAPICheck{inner: inner}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, f := range c.failures {
			if i == 10 {
				t.Errorf("... and %d more", len(c.failures)-10)
				break
			}
			t.Errorf("OpenAPI: %s", f)
		}
	})
	return c
}

func (c *openAPICheck) fail(format string, args ...any) {
	c.mu.Lock()
	c.failures = append(c.failures, fmt.Sprintf(format, args...))
	c.mu.Unlock()
}

func (c *openAPICheck) load(host string) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "http://"+host+"/openapi.json", nil)
	c.inner.ServeHTTP(rec, req)
	if rec.Code != 200 {
		c.loadErr = fmt.Errorf("GET /openapi.json: %d %s", rec.Code, rec.Body.Bytes())
		return
	}
	doc, err := openapi3.NewLoader().LoadFromData(rec.Body.Bytes())
	if err != nil {
		c.loadErr = err
		return
	}
	if err := doc.Validate(req.Context()); err != nil {
		c.loadErr = fmt.Errorf("the document is not valid OpenAPI: %w", err)
		return
	}
	c.router, c.loadErr = gorillamux.NewRouter(doc)
}

// recorder passes a response through and keeps a copy of its start.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
	big    bool
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if !r.big {
		if r.body.Len()+len(p) > validateMax {
			r.big = true
		} else {
			r.body.Write(p)
		}
	}
	return r.ResponseWriter.Write(p)
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// teeBody keeps the first validateMax bytes of a request body read by the
// handler.
type teeBody struct {
	io.ReadCloser
	buf bytes.Buffer
	big bool
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if !b.big {
		if b.buf.Len()+n > validateMax {
			b.big = true
		} else {
			b.buf.Write(p[:n])
		}
	}
	return n, err
}

func (c *openAPICheck) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.once.Do(func() { c.load(r.Host) })
	if c.loadErr != nil {
		c.fail("%v", c.loadErr)
		c.inner.ServeHTTP(w, r)
		return
	}
	tee := &teeBody{ReadCloser: r.Body}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = tee
	}
	orig := r.Clone(r.Context())
	rec := &recorder{ResponseWriter: w}
	c.inner.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	c.check(orig, tee, rec)
}

func (c *openAPICheck) check(r *http.Request, tee *teeBody, rec *recorder) {
	what := r.Method + " " + r.URL.Path
	// The router matches on the URL's scheme and host: the server's.
	r.URL.Scheme, r.URL.Host = "http", r.Host
	route, params, err := c.router.FindRoute(r)
	if err != nil {
		// Only the web UI and unknown paths are outside the document.
		if strings.HasPrefix(r.URL.Path, "/ui") || r.URL.Path == "/" || rec.status == http.StatusNotFound || rec.status == http.StatusMethodNotAllowed ||
			rec.status == http.StatusMisdirectedRequest || rec.status == http.StatusTooManyRequests || rec.status == http.StatusRequestEntityTooLarge {
			return
		}
		c.fail("%s → %d: no operation in the document (%v)", what, rec.status, err)
		return
	}
	c.mu.Lock()
	c.checked++
	c.mu.Unlock()
	opsSeen.Store(route.Operation.OperationID, true)
	r.Body = io.NopCloser(bytes.NewReader(tee.buf.Bytes()))
	// The owner API reads JSON bodies whatever their Content-Type (the
	// document says so): check them as the JSON they are read as.
	if rb := route.Operation.RequestBody; rb != nil && len(rb.Value.Content) == 1 && rb.Value.Content["application/json"] != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, ExcludeRequestBody: tee.big}}
	if rec.status/100 == 2 {
		if err := openapi3filter.ValidateRequest(r.Context(), in); err != nil {
			c.fail("%s → %d: the accepted request does not match the document: %v", what, rec.status, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: rec.status, Header: rec.Header(),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, ExcludeResponseBody: rec.big || r.Method == http.MethodHead}}
	out.SetBodyBytes(rec.body.Bytes())
	if err := openapi3filter.ValidateResponse(r.Context(), out); err != nil {
		c.fail("%s → %d: the response does not match the document: %v\nbody: %.300s", what, rec.status, err, rec.body.Bytes())
	}
}

func TestOpenAPIDocument(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/openapi.json", "", nil)
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi.json: %d %s", r.status, r.header.Get("Content-Type"))
	}
	doc, err := openapi3.NewLoader().LoadFromData(r.body)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("not valid OpenAPI: %v", err)
	}
	if doc.OpenAPI != "3.1.0" || len(doc.Servers) != 1 || doc.Servers[0].URL != e.srv.URL {
		t.Fatalf("openapi %q, servers %+v", doc.OpenAPI, doc.Servers)
	}
	var ops int
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops++
			if op.Summary == "" || op.OperationID == "" || op.Responses.Default() == nil {
				t.Errorf("%s %s: summary %q, id %q, default response %v", method, path, op.Summary, op.OperationID, op.Responses.Default())
			}
		}
	}
	// A sample of what must be there, and how.
	for _, want := range []struct{ method, path, security string }{
		{"GET", "/v1/data/{collection}/{id}", "dpop"},
		{"POST", "/v1/token", "proof"},
		{"POST", "/v1/owner/records/{collection}", "owner"},
		{"POST", "/v1/owner/session", ""},
		{"GET", "/.well-known/oauth-authorization-server", ""},
	} {
		item := doc.Paths.Value(want.path)
		if item == nil || item.GetOperation(want.method) == nil {
			t.Fatalf("%s %s is not in the document", want.method, want.path)
		}
		op := item.GetOperation(want.method)
		got := ""
		if op.Security != nil && len(*op.Security) > 0 {
			for k := range (*op.Security)[0] {
				got = k
			}
		}
		if got != want.security {
			t.Fatalf("%s %s: security %q, want %q", want.method, want.path, got, want.security)
		}
	}
	b, _ := json.Marshal(doc.Paths.Value("/v1/owner/records/{collection}/{id}").Get.Responses.Status(200).Value.Content["application/json"].Schema)
	if !strings.Contains(string(b), `"version"`) || !strings.Contains(string(b), `"required"`) {
		t.Fatalf("the record schema lacks its fields: %s", b)
	}
	if ops < 80 {
		t.Fatalf("%d operations documented; the API has more than 80", ops)
	}
}

// A route added without an entry in the table fails the build of the
// document, so the document cannot miss an endpoint.
func TestOpenAPIRefusesUndocumentedRoute(t *testing.T) {
	r := mux.NewRouter()
	r.HandleFunc("/v1/new-thing", func(http.ResponseWriter, *http.Request) {}).Methods("GET").Name("new.thing")
	if _, err := buildOpenAPI(r); err == nil || !strings.Contains(err.Error(), "new.thing") {
		t.Fatalf("buildOpenAPI with an undocumented route: %v", err)
	}
}

// The check can fail: a response that drifts from the document (a record
// without its version, an undocumented status, a wrong media type) and an
// accepted request the document does not allow are each reported.
func TestOpenAPIValidatorCatchesDrift(t *testing.T) {
	e := newEnv(t)
	real := New(e.v, Config{RatePerAddress: -1})
	drift := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/owner/records/profile/abc":
			writeJSON(w, 200, map[string]any{"id": "abc", "collection": "profile", "data": map[string]any{}})
		case "/v1/owner/records/profile":
			w.WriteHeader(http.StatusTeapot)
		case "/healthz":
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<p>ok</p>"))
		case "/v1/owner/session":
			io.ReadAll(r.Body)
			writeJSON(w, 200, loginResponse{Token: "t", TokenType: "Bearer", ExpiresIn: 1, Device: "d"})
		default:
			real.ServeHTTP(w, r)
		}
	})
	c := &openAPICheck{inner: drift}
	srv := httptest.NewServer(c)
	defer srv.Close()
	e.v.SetIssuer(srv.URL)
	for _, rq := range []struct{ method, path, body string }{
		{"GET", "/v1/owner/records/profile/abc", ""},
		{"GET", "/v1/owner/records/profile", ""},
		{"GET", "/healthz", ""},
		{"POST", "/v1/owner/session", `{"passphrase": 42}`},
	} {
		req, _ := http.NewRequest(rq.method, srv.URL+rq.path, strings.NewReader(rq.body))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	want := []string{"records/profile/abc → 200: the response", "records/profile → 418", "/healthz → 200: the response", "/v1/owner/session → 200: the accepted request"}
	if len(c.failures) != len(want) {
		t.Fatalf("%d failures, want %d:\n%s", len(c.failures), len(want), strings.Join(c.failures, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(c.failures[i], w) {
			t.Errorf("failure %d: %q, want it to mention %q", i, c.failures[i], w)
		}
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if os.Getenv("PDVAULT_OPENAPI_COVERAGE") != "" {
		doc, err := buildOpenAPI((&server{pages: loadTemplates()}).routes(Config{}))
		if err == nil {
			var total, missed []string
			for _, item := range doc.Paths.Map() {
				for _, op := range item.Operations() {
					total = append(total, op.OperationID)
					if _, ok := opsSeen.Load(op.OperationID); !ok {
						missed = append(missed, op.OperationID)
					}
				}
			}
			sort.Strings(missed)
			fmt.Printf("OpenAPI coverage: %d of %d operations exercised; not exercised: %s\n", len(total)-len(missed), len(total), strings.Join(missed, ", "))
		}
	}
	os.Exit(code)
}

// The operations the rest of the suite does not call, called once each so
// that every documented operation has met real traffic.
func TestOpenAPIRemainingOperations(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	o := e.org("ES256")
	e.record("profile", `{"name":"Alex","email":"a@example.org"}`)
	e.grantFor(o, askProfile("name"), vault.Approval{})
	grants := e.do("GET", "/v1/owner/grants", e.token, nil)
	var gp struct {
		Grants []struct {
			ID string `json:"id"`
		} `json:"grants"`
	}
	grants.json(t, &gp)
	if grants.status != 200 || len(gp.Grants) != 1 {
		t.Fatalf("grants: %d %s", grants.status, grants.body)
	}
	in, err := e.ownerClient().PublishIntent(ctx, client.IntentInput{Title: "Looking for: a city bike"})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := e.ownerClient().AddDocument(ctx, strings.NewReader("%PDF-1.4\n"), client.DocumentOptions{FileName: "lease.pdf", Kind: "contract"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/v1/owner/grants/" + gp.Grants[0].ID, 200},
		{"GET", "/v1/owner/terms", 200},
		{"GET", "/v1/owner/keys", 200},
		{"GET", "/v1/owner/notifications/channels", 200},
		{"POST", "/v1/owner/audit/checkpoint", 200},
		{"GET", "/v1/owner/audit/consistency?from=1", 200},
		{"POST", "/v1/owner/audit/verify", 200},
		{"GET", "/v1/owner/intents", 200},
		{"GET", "/v1/owner/intents/" + in.ID, 200},
		{"POST", "/v1/owner/offers/nosuchoffer/decline", 404},
		{"GET", "/v1/owner/agreements/nosuchagreement", 404},
		{"GET", "/v1/owner/documents/" + doc.ID, 200},
		{"HEAD", "/v1/owner/documents/" + doc.ID + "/content", 200},
		{"HEAD", "/v1/data/documents/" + doc.ID + "/content", 401},
	} {
		if r := e.do(c.method, c.path, e.token, nil); r.status != c.want {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, r.status, r.body, c.want)
		}
	}
}
