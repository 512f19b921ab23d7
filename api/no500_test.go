package api

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// Garbage at every endpoint is the client's mistake: never a 5xx, always
// the JSON error shape (or a page, for the UI), and nothing changes.
func TestGarbageNeverA500(t *testing.T) {
	e := newEnv(t)
	rec := e.record("profile", `{"name":"Ada"}`)
	before, _ := e.v.ListAudit(t.Context(), 500, "")
	junk := []string{"", "{", "null", "[]", `{"a":1}`, "a.b.c", strings.Repeat(".", 500), "\x00\xff\xfe", `{"passphrase":1}`,
		"eyJhbGciOiJub25lIn0.e30.", strings.Repeat("A", 5000), `{"authorization_details":"x"}`, "grant_type=x&device_code=y"}
	paths := []struct{ method, path string }{
		{"POST", "/v1/requests"}, {"POST", "/v1/token"}, {"POST", "/v1/introspect"}, {"POST", "/v1/revoke"},
		{"POST", "/v1/receipts"}, {"POST", "/v1/keys"}, {"POST", "/v1/verification"}, {"POST", "/v1/verification/check"},
		{"GET", "/v1/data/profile"}, {"GET", "/v1/data/profile/" + rec.ID}, {"GET", "/v1/claims"},
		{"GET", "/v1/intents/zzz"}, {"POST", "/v1/intents/aaaaaaaaaaaaaaaaaaaaaaaaaa/offers"}, {"GET", "/v1/terms/%00"},
		{"POST", "/v1/owner/session"}, {"POST", "/v1/owner/records/profile"}, {"PUT", "/v1/owner/records/profile/" + rec.ID},
		{"PUT", "/v1/owner/terms"}, {"POST", "/v1/owner/intents"}, {"POST", "/v1/owner/keys/rotate"},
		{"POST", "/v1/owner/requests/aaaaaaaaaaaaaaaaaaaaaaaaaa/approve"}, {"GET", "/v1/owner/audit?limit=-5&cursor=%%%"},
		{"GET", "/v1/owner/records/profile?cursor=" + strings.Repeat("z", 300)}, {"POST", "/ui/login"}, {"POST", "/ui/records/profile/new"},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	contentTypes := []string{"application/json", "application/x-www-form-urlencoded", "application/jwt", "text/plain"}
	for _, p := range paths {
		for _, body := range junk {
			for _, token := range []string{"", e.token} {
				hdr := []string{"Content-Type", contentTypes[rng.IntN(len(contentTypes))]}
				if j := junk[rng.IntN(len(junk))]; rng.IntN(2) == 0 && !strings.ContainsAny(j, "\x00\xff\xfe") {
					hdr = append(hdr, "DPoP", j)
				}
				r := e.do(p.method, p.path, token, strings.NewReader(body), hdr...)
				if r.status >= 500 {
					t.Errorf("%s %s with %q: %d %s", p.method, p.path, body, r.status, r.body)
				}
			}
		}
	}
	after, _ := e.v.ListAudit(t.Context(), 500, "")
	// Some "junk" is a valid record, which the owner may store (and which
	// is logged as the owner's write); but no junk is a valid request,
	// grant, terms or rotation, so nothing else is audited.
	for _, en := range after.Entries[:len(after.Entries)-len(before.Entries)] {
		if en.Actor != "owner" || (en.Event != "record.created" && en.Event != "record.updated") {
			t.Errorf("garbage wrote an audit entry: %+v", en)
		}
	}
}
