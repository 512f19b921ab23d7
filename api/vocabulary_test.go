package api

import (
	"encoding/json"
	"net/http"
	"testing"
)

// The vocabulary is discoverable: the metadata names the endpoint and
// version, the index lists every standard collection, and each schema is
// served as application/schema+json; the same for every vault.
func TestVocabularyDiscovery(t *testing.T) {
	e := newEnv(t)
	var md struct {
		Endpoint string `json:"vocabulary_endpoint"`
		Version  string `json:"vocabulary_version"`
	}
	e.do("GET", "/.well-known/oauth-authorization-server", "", nil).json(t, &md)
	if md.Endpoint != e.srv.URL+"/v1/vocabulary" || md.Version != "1" {
		t.Fatalf("metadata %+v", md)
	}
	var idx struct {
		Version     string                       `json:"version"`
		Collections map[string]map[string]string `json:"collections"`
		Nested      bool                         `json:"nested_fields"`
	}
	e.do("GET", "/v1/vocabulary", "", nil).json(t, &idx)
	if len(idx.Collections) != 9 || idx.Nested {
		t.Fatalf("index %+v", idx)
	}
	for _, c := range []string{"profile", "contacts", "transactions", "accounts", "health", "calendar", "memberships", "contracts", "documents"} {
		u := idx.Collections[c]["schema"]
		if u != e.srv.URL+"/v1/vocabulary/"+c {
			t.Fatalf("%s: schema at %q", c, u)
		}
		r := e.do("GET", "/v1/vocabulary/"+c, "", nil)
		var s struct {
			Schema string         `json:"$schema"`
			Props  map[string]any `json:"properties"`
		}
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/schema+json" || json.Unmarshal(r.body, &s) != nil ||
			s.Schema != "https://json-schema.org/draft/2020-12/schema" || len(s.Props) == 0 {
			t.Fatalf("%s: %d %s", c, r.status, r.body)
		}
	}
	for _, bad := range []string{"my-own", "a.b", "Transactions"} {
		if r := e.do("GET", "/v1/vocabulary/"+bad, "", nil); r.status != 404 || r.errCode(t) != "not_found" {
			t.Fatalf("%s: %d %s", bad, r.status, r.body)
		}
	}
}
