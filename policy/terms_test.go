package policy

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCanonicalJCS(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
	}{
		{map[string]any{"b": 1, "a": []any{true, nil, "x"}}, `{"a":[true,null,"x"],"b":1}`},
		{"<&>\u2028\n\x01é", "\"<&>\u2028\\n\\u0001é\""},
		{map[string]any{"\u00e9": 1, "z": 2, "\U0001F600": 3, "\uff61": 4}, "{\"z\":2,\"é\":1,\"\U0001F600\":3,\"\uff61\":4}"},
	} {
		got, err := Canonical(tc.in)
		if err != nil || string(got) != tc.want {
			t.Errorf("Canonical(%v) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	if _, err := Canonical(map[string]any{"f": 1.5}); !errors.Is(err, errNotCanonical) {
		t.Fatalf("float: %v", err)
	}
}

func TestDefaultTermsValidAndStableHash(t *testing.T) {
	d := DefaultTerms()
	b, _ := json.Marshal(d)
	parsed, err := ParseTerms(b)
	if err != nil {
		t.Fatalf("default terms do not parse: %v", err)
	}
	h1, _, _ := d.Hash()
	h2, _, _ := parsed.Hash()
	if h1 != h2 || len(h1) != 43 {
		t.Fatalf("hash not stable over a round trip: %s %s", h1, h2)
	}
	parsed.Text += "."
	if h3, _, _ := parsed.Hash(); h3 == h1 {
		t.Fatal("changing the text did not change the hash")
	}
	r := d.Render()
	for _, want := range []string{"service_delivery", "90 days", "30 days", "not share", "health records are shared only for: medical_care"} {
		if !strings.Contains(r, want) {
			t.Errorf("rendering lacks %q:\n%s", want, r)
		}
	}
}

func TestParseTermsReportsEveryProblem(t *testing.T) {
	_, err := ParseTerms([]byte(`{"title":"","purposes":[{"id":"Bad Id","description":""},{"id":"ok","description":"x"},{"id":"ok","description":"x"}],
		"max_grant_duration":"0d","max_retention":"5d","collections":{"BAD":{},"health":{"purposes":["nope"]}}}`))
	if !errors.Is(err, ErrInvalidTerms) {
		t.Fatalf("err = %v", err)
	}
	var pe *Error
	errors.As(err, &pe)
	want := []string{"title:", `id "Bad Id"`, `"Bad Id" needs a description`, `id "ok" appears twice`, "max_grant_duration:", `"BAD" is not a valid`, `names purpose "nope"`}
	for _, w := range want {
		if !slices.ContainsFunc(pe.Reasons, func(r string) bool { return strings.Contains(r, w) }) {
			t.Errorf("no reason mentions %q: %q", w, pe.Reasons)
		}
	}
	for _, bad := range []string{`{"title":"x","unknown":1}`, `{"max_grant_duration":90}`, `{"max_grant_duration":"90 days"}`, `[]`, `{`} {
		if _, err := ParseTerms([]byte(bad)); !errors.Is(err, ErrInvalidTerms) {
			t.Errorf("ParseTerms(%s) = %v", bad, err)
		}
	}
}

func TestDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "36h": 36 * time.Hour, "30m": 30 * time.Minute, "45s": 45 * time.Second, "0s": 0} {
		d, err := ParseDuration(in)
		if err != nil || time.Duration(d) != want {
			t.Errorf("ParseDuration(%q) = %v, %v", in, d, err)
		}
	}
	if Duration(48*time.Hour).String() != "2d" || Duration(90*time.Minute).String() != "90m" {
		t.Fatal("Duration does not encode in the largest unit")
	}
	for _, bad := range []string{"", "d", "-1d", "1w", "1.5d", "99999999999d"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
}

func request(mod func(*RequestClaims)) RequestClaims {
	r := RequestClaims{
		ClientName: "Acme", ClientURI: "https://acme.example", Purpose: "service_delivery",
		AuthorizationDetails: []AuthorizationDetail{{Type: DetailType, Collection: "profile", Fields: []string{"name", "email"}}},
		Duration:             3600, TermsHash: "H", IssuedAt: now.Unix(), ID: "r1",
	}
	if mod != nil {
		mod(&r)
	}
	return r
}

func TestCheckTerms(t *testing.T) {
	terms := DefaultTerms()
	if r := CheckTerms(terms, "H", request(nil)); len(r) != 0 {
		t.Fatalf("compliant request refused: %q", r)
	}
	year := int64(365 * 24 * 3600)
	r := CheckTerms(terms, "CURRENT", request(func(c *RequestClaims) {
		c.Purpose = "advertising"
		c.Duration = year
		ret := year
		c.Retention = &ret
		c.ThirdPartySharing = true
		c.AuthorizationDetails = append(c.AuthorizationDetails, AuthorizationDetail{Type: DetailType, Collection: "health", Fields: []string{"x"}})
	}))
	for _, w := range []string{"terms_hash:", "purpose:", "duration:", "retention:", "third_party_sharing:", "health is shared only for medical_care"} {
		if !slices.ContainsFunc(r, func(s string) bool { return strings.Contains(s, w) }) {
			t.Errorf("no reason mentions %q: %q", w, r)
		}
	}
	if len(r) != 6 {
		t.Fatalf("want 6 reasons, got %d: %q", len(r), r)
	}
}

func TestRequestShape(t *testing.T) {
	r := request(func(c *RequestClaims) {
		c.ClientURI = "ftp://acme"
		c.CallbackURI = "http://evil.example/cb"
		c.AuthorizationDetails = []AuthorizationDetail{
			{Type: "other", Collection: "Profile", Fields: nil, Actions: []string{"write"}},
			{Type: DetailType, Collection: "a", Fields: []string{"x", "x"}},
			{Type: DetailType, Collection: "a", Fields: []string{"bad field"}},
		}
	}).problems("jkt")
	for _, w := range []string{"client_uri", "callback_uri", `type must be`, `"Profile" is not a valid`, "name between 1", `only action`, "field x is named twice", "collection a is named twice", `"bad field"`} {
		if !slices.ContainsFunc(r, func(s string) bool { return strings.Contains(s, w) }) {
			t.Errorf("no problem mentions %q: %q", w, r)
		}
	}
	if p := request(nil).problems("jkt"); len(p) != 0 {
		t.Fatalf("good request has problems: %q", p)
	}
}

func TestNarrowAndProject(t *testing.T) {
	asked := []AuthorizationDetail{
		{Type: DetailType, Collection: "profile", Fields: []string{"name", "email", "birth_date"}},
		{Type: DetailType, Collection: "transactions", Fields: []string{"amount"}},
	}
	ok := []AuthorizationDetail{{Type: DetailType, Collection: "profile", Fields: []string{"name"}}}
	if err := Narrow(asked, ok); err != nil {
		t.Fatal(err)
	}
	for _, wider := range [][]AuthorizationDetail{
		{{Type: DetailType, Collection: "health", Fields: []string{"x"}}},
		{{Type: DetailType, Collection: "profile", Fields: []string{"name", "phone"}}},
		{},
	} {
		if err := Narrow(asked, wider); !errors.Is(err, ErrNotNarrower) {
			t.Errorf("Narrow allowed %v: %v", wider, err)
		}
	}
	got, err := Project(ok[0], json.RawMessage(`{"name":"Ada","email":"a@x","secret":1}`))
	if err != nil || len(got) != 1 || string(got["name"]) != `"Ada"` {
		t.Fatalf("Project = %v, %v", got, err)
	}
}

func TestNameValidators(t *testing.T) {
	for _, s := range []string{"", "a", "profile", "Profile", "a-b_c9", "9a", "-a", strings.Repeat("a", 63), strings.Repeat("a", 64), "a b", "aé", "health\n"} {
		if (ValidateCollection(s) == nil) != collectionRE.MatchString(s) {
			t.Errorf("collection %q: loop and regexp disagree", s)
		}
	}
	for _, s := range []string{"", "aaaaaaaaaaaaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaaaaaaaaaaa1", "aaaaaaaaaaaaaaaaaaaaaaaaa2", "aaaaaaaaaaaaaaaaaaaaaaaaab", "aaaaaaaaaaaaaaaaaaaaaaaaa4", "Aaaaaaaaaaaaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaaaaaaaaaaaaa"} {
		if ValidateRecordID(s) != recordIDRE.MatchString(s) {
			t.Errorf("id %q: loop and regexp disagree", s)
		}
	}
}

// Kinds narrow a detail to records of those kinds: the owner may add or
// shrink them, never drop or widen what was asked.
func TestKinds(t *testing.T) {
	asked := []AuthorizationDetail{{Type: DetailType, Collection: "documents", Fields: []string{"title", "content"}, Kinds: []string{"contract", "payslip"}}}
	for _, ok := range [][]string{{"contract"}, {"contract", "payslip"}} {
		if err := Narrow(asked, []AuthorizationDetail{{Type: DetailType, Collection: "documents", Fields: []string{"title"}, Kinds: ok}}); err != nil {
			t.Errorf("kinds %v: %v", ok, err)
		}
	}
	for _, wider := range [][]string{nil, {"letter"}, {"contract", "letter"}} {
		if err := Narrow(asked, []AuthorizationDetail{{Type: DetailType, Collection: "documents", Fields: []string{"title"}, Kinds: wider}}); !errors.Is(err, ErrNotNarrower) {
			t.Errorf("kinds %v allowed: %v", wider, err)
		}
	}
	all := []AuthorizationDetail{{Type: DetailType, Collection: "documents", Fields: []string{"title"}}}
	if err := Narrow(all, []AuthorizationDetail{{Type: DetailType, Collection: "documents", Fields: []string{"title"}, Kinds: []string{"letter"}}}); err != nil {
		t.Errorf("adding kinds to an unlimited detail narrows it: %v", err)
	}
	r := checkDetails([]AuthorizationDetail{{Type: DetailType, Collection: "documents", Fields: []string{"title"}, Kinds: []string{"Bad Kind", "a", "a"}}})
	if len(r) != 2 || !strings.Contains(r[0], "not a valid kind") || !strings.Contains(r[1], "named twice") {
		t.Errorf("kind checks: %v", r)
	}
	d := asked[0]
	for rec, want := range map[string]bool{`{"kind":"contract"}`: true, `{"kind":"letter"}`: false, `{}`: false, `{"kind":1}`: false} {
		if Covers(d, "", json.RawMessage(rec)) != want {
			t.Errorf("Covers(%s) != %v", rec, want)
		}
	}
	if !Covers(all[0], "", json.RawMessage(`{}`)) {
		t.Error("a detail without kinds covers every record")
	}
}

// Record ids narrow a detail to those records: the owner may add them
// when approving; a request may not name them.
func TestIDs(t *testing.T) {
	a, b := "aaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbba"
	asked := []AuthorizationDetail{{Type: DetailType, Collection: "documents", Fields: []string{"title", "content"}, Kinds: []string{"contract"}}}
	one := []AuthorizationDetail{{Type: DetailType, Collection: "documents", Fields: []string{"content"}, Kinds: []string{"contract"}, IDs: []string{a}}}
	if err := Narrow(asked, one); err != nil {
		t.Fatalf("naming a record narrows: %v", err)
	}
	if !Covers(one[0], a, json.RawMessage(`{"kind":"contract"}`)) || Covers(one[0], b, json.RawMessage(`{"kind":"contract"}`)) || Covers(one[0], a, json.RawMessage(`{"kind":"letter"}`)) {
		t.Error("Covers does not apply ids and kinds together")
	}
	// Dropping or widening ids a detail already has is not narrowing.
	if err := Narrow(one, []AuthorizationDetail{{Type: DetailType, Collection: "documents", Fields: []string{"content"}, Kinds: []string{"contract"}, IDs: []string{a, b}}}); !errors.Is(err, ErrNotNarrower) {
		t.Errorf("widened ids allowed: %v", err)
	}
	if err := Narrow(one, []AuthorizationDetail{{Type: DetailType, Collection: "documents", Fields: []string{"content"}, Kinds: []string{"contract"}}}); !errors.Is(err, ErrNotNarrower) {
		t.Errorf("dropped ids allowed: %v", err)
	}
	r := checkDetails([]AuthorizationDetail{{Type: DetailType, Collection: "documents", Fields: []string{"title"}, IDs: []string{"../x", a, a}}})
	if len(r) != 2 || !strings.Contains(r[0], "not a record id") || !strings.Contains(r[1], "named twice") {
		t.Errorf("id checks: %v", r)
	}
}
