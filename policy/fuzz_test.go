package policy

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/mod/sumdb/tlog"
)

// Fuzz targets for every parser that reads what an outsider sends. Seed
// corpora are in testdata/fuzz/<target>; scripts/test.sh runs each target
// briefly. The properties: no panic, every failure is one of our error
// kinds, and what parses round-trips.

func isOurs(t *testing.T, err error) {
	t.Helper()
	var pe *Error
	if err != nil && !errors.As(err, &pe) {
		t.Fatalf("unclassified error: %v", err)
	}
}

func FuzzParseTerms(f *testing.F) {
	b, _ := json.Marshal(DefaultTerms())
	f.Add(b)
	f.Add([]byte(`{"title":"t","purposes":[{"id":"a","description":"d"}],"max_grant_duration":"1d","max_retention":"0s"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		terms, err := ParseTerms(data)
		isOurs(t, err)
		if err != nil {
			return
		}
		h1, _, err := terms.Hash()
		if err != nil {
			return // a parsed document that cannot be canonicalized is refused where it is set
		}
		again, _ := json.Marshal(terms)
		terms2, err := ParseTerms(again)
		if err != nil {
			t.Fatalf("a parsed document does not parse again: %v\n%s", err, again)
		}
		if h2, _, _ := terms2.Hash(); h1 != h2 {
			t.Fatalf("hash changed over a round trip")
		}
		_ = terms.Render()
	})
}

// fuzzOrg signs valid seeds.
func fuzzOrg() orgKey {
	priv := ed25519.NewKeyFromSeed(append(make([]byte, 31), 1))
	j := jose.JSONWebKey{Key: priv.Public()}
	jkt, _ := Thumbprint(&j)
	raw, _ := j.MarshalJSON()
	var m map[string]any
	json.Unmarshal(raw, &m)
	return orgKey{priv: priv, jwk: m, jkt: jkt}
}

func orgSigned(o orgKey, typ string, claims any) string {
	return rawJWS(map[string]any{"typ": typ, "alg": "EdDSA", "jwk": o.jwk}, claims, edSign(o.priv))
}

func FuzzParseRequest(f *testing.F) {
	f.Add("")
	f.Add("a.b.c")
	f.Add(orgSigned(fuzzOrg(), TypRequest, request(nil)))
	f.Fuzz(func(t *testing.T, tok string) {
		r, err := ParseRequest(tok, iss, now)
		isOurs(t, err)
		if err == nil && (r.ClientID == "" || r.Key == nil || len(r.AuthorizationDetails) == 0) {
			t.Fatalf("accepted a request without its essentials: %+v", r)
		}
	})
}

func FuzzParseReceipt(f *testing.F) {
	f.Add("")
	f.Add(orgSigned(fuzzOrg(), TypReceipt, ReceiptClaims{GrantID: "aaaaaaaaaaaaaaaaaaaaaaaaaa", Deleted: []string{"profile"},
		DeletedAt: now.Unix(), IssuedAt: now.Unix(), ID: "r1"}))
	f.Fuzz(func(t *testing.T, tok string) {
		r, err := ParseReceipt(tok, iss, now)
		isOurs(t, err)
		if err == nil && (r.ClientID == "" || r.GrantID == "" || len(r.Deleted) == 0) {
			t.Fatalf("accepted a receipt without its essentials: %+v", r)
		}
	})
}

// fuzzKey is a fixed vault key, so seeds signed with it stay valid.
var fuzzKey = ed25519.NewKeyFromSeed(make([]byte, 32))

func FuzzVerifyGrant(f *testing.F) {
	f.Add("")
	good, _ := SignGrant(&testSigner{kid: "fuzz", priv: fuzzKey}, grantClaims(fuzzOrg().jkt))
	f.Add(good)
	f.Fuzz(func(t *testing.T, tok string) {
		key := func(kid string) (ed25519.PublicKey, bool) {
			return fuzzKey.Public().(ed25519.PublicKey), kid == "fuzz"
		}
		c, err := VerifyGrant(tok, GrantCheck{Issuer: iss, Audience: aud, Now: now, Skew: ClockSkew, Key: key})
		isOurs(t, err)
		if err == nil && (c.Expiry == 0 || c.Confirmation.JKT == "" || c.ID == "") {
			t.Fatalf("accepted a grant without its essentials: %+v", c)
		}
	})
}

func FuzzVerifyProof(f *testing.F) {
	f.Add("")
	f.Add(proofFor(fuzzOrg(), "GET", iss+"/v1/data/profile", "", now, "p1"))
	cache := NewProofCache()
	f.Fuzz(func(t *testing.T, tok string) {
		for _, c := range []*ProofCache{nil, cache} {
			p, err := VerifyProof(tok, ProofCheck{Method: "GET", URL: iss + "/v1/data/profile", Now: now, Skew: ClockSkew, Cache: c})
			isOurs(t, err)
			if err == nil && (p.JKT == "" || p.ID == "") {
				t.Fatalf("accepted a proof without its essentials: %+v", p)
			}
		}
	})
}

func FuzzNormalizeRecord(f *testing.F) {
	f.Add([]byte(`{"name":"Ada","n":1,"nested":{"a":[1,2]}}`))
	f.Add([]byte(`{"a":1,"a":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := NormalizeRecord(data)
		isOurs(t, err)
		if err != nil {
			return
		}
		again, err := NormalizeRecord(out)
		if err != nil || string(again) != string(out) {
			t.Fatalf("normalizing is not idempotent: %s -> %s (%v)", out, again, err)
		}
	})
}

func FuzzClaims(f *testing.F) {
	f.Add("age_over:18", []byte(`{"birth_date":"1990-04-12"}`))
	f.Add("member_of:ADFC", []byte(`{"organization":"ADFC","until":"2030-01-01"}`))
	f.Fuzz(func(t *testing.T, claim string, record []byte) {
		if normalizeOK(record) {
			_, _ = Derive(claim, []json.RawMessage{record}, time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC))
		}
	})
}

// normalizeOK says whether data is a record the vault would store.
func normalizeOK(data []byte) bool {
	_, err := NormalizeRecord(data)
	return err == nil
}

// FuzzOpenTreeHead: a tree head opens only if the vault's key signed
// exactly that text; whatever it is given, the parser answers with its
// own error kind and never accepts a changed head.
func FuzzOpenTreeHead(f *testing.F) {
	s := &testSigner{kid: "fuzz", priv: fuzzKey}
	keys := []ed25519.PublicKey{fuzzKey.Public().(ed25519.PublicKey)}
	var root tlog.Hash
	root[0] = 7
	good, _ := SignTreeHead(s, "aaaaaaaaaaaaaaaaaaaaaaaaaa", 42, root)
	f.Add(good.Note)
	f.Add("")
	f.Add("pdvault.org/audit/aaaaaaaaaaaaaaaaaaaaaaaaaa\n42\nBwAA\n\n— x AAAA\n")
	f.Fuzz(func(t *testing.T, note string) {
		th, err := OpenTreeHead(note, "aaaaaaaaaaaaaaaaaaaaaaaaaa", keys)
		if err != nil {
			if !errors.Is(err, ErrBadTreeHead) {
				t.Fatalf("not our error: %v", err)
			}
			return
		}
		if note != good.Note && (th.Size != 42 || th.Root != root) {
			t.Fatalf("accepted a changed head: %q", note)
		}
	})
}
