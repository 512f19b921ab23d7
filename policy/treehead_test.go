package policy

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/mod/sumdb/tlog"
)

// tree is an in-memory log of n entries "e1".."en".
func tree(t *testing.T, n int64) (tlog.HashReader, func(size int64) tlog.Hash) {
	var mem []tlog.Hash
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = mem[x]
		}
		return out, nil
	})
	for i := range n {
		hs, err := tlog.StoredHashes(i, entry(i+1), r)
		if err != nil {
			t.Fatal(err)
		}
		mem = append(mem, hs...)
	}
	return r, func(size int64) tlog.Hash {
		h, err := tlog.TreeHash(size, r)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
}

func entry(i int64) []byte { return []byte("e" + strings.Repeat("x", int(i))) }

func TestTreeHeadSignOpen(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	s := &testSigner{kid: "k", priv: priv}
	_, root := tree(t, 10)
	th, err := SignTreeHead(s, "vault1", 10, root(10))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(th.Note, "pdvault.org/audit/vault1\n10\n") || !strings.Contains(th.Note, "\n\n— pdvault.org/audit/vault1 ") {
		t.Fatalf("not a C2SP checkpoint: %q", th.Note)
	}
	pubs := []ed25519.PublicKey{other.Public().(ed25519.PublicKey), priv.Public().(ed25519.PublicKey)}
	got, err := OpenTreeHead(th.Note, "vault1", pubs)
	if err != nil || got.Size != 10 || got.Root != root(10) {
		t.Fatalf("open: %+v %v", got, err)
	}
	for name, c := range map[string]struct {
		note, vault string
		keys        []ed25519.PublicKey
	}{
		"another vault's origin": {th.Note, "vault2", pubs},
		"not the vault's key":    {th.Note, "vault1", pubs[:1]},
		"size changed":           {strings.Replace(th.Note, "\n10\n", "\n11\n", 1), "vault1", pubs},
		"signature cut":          {th.Note[:len(th.Note)-10] + "\n", "vault1", pubs},
		"not a note":             {"hello", "vault1", pubs},
	} {
		if _, err := OpenTreeHead(c.note, c.vault, c.keys); !errors.Is(err, ErrBadTreeHead) {
			t.Errorf("%s: got %v, want ErrBadTreeHead", name, err)
		}
	}
}

func TestConsistencyAndInclusion(t *testing.T) {
	r, root := tree(t, 300)
	head := func(n int64) TreeHead { return TreeHead{Size: n, Root: root(n)} }
	p, err := tlog.ProveTree(300, 100, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckConsistency(head(100), head(300), p); err != nil {
		t.Fatalf("a grown log: %v", err)
	}
	if err := CheckConsistency(head(300), head(100), nil); !errors.Is(err, ErrLogRolledBack) {
		t.Fatalf("a shorter log: %v", err)
	}
	forked := head(100)
	forked.Root[0] ^= 1
	if err := CheckConsistency(forked, head(300), p); !errors.Is(err, ErrLogForked) {
		t.Fatalf("a rewritten log: %v", err)
	}
	if err := CheckConsistency(forked, head(100), nil); !errors.Is(err, ErrLogForked) {
		t.Fatalf("same size, other root: %v", err)
	}
	rp, err := tlog.ProveRecord(300, 41, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckInclusion(head(300), 42, entry(42), rp); err != nil {
		t.Fatalf("inclusion: %v", err)
	}
	if err := CheckInclusion(head(300), 42, entry(43), rp); !errors.Is(err, ErrLogForked) {
		t.Fatalf("another entry: %v", err)
	}
	if err := CheckInclusion(head(300), 301, entry(42), rp); !errors.Is(err, ErrLogForked) {
		t.Fatalf("outside the tree: %v", err)
	}
}

// A signed payload is one JSON object: a second value after it (which a
// decoder reading one value would silently ignore) is refused.
func TestSignedPayloadTrailingDataRefused(t *testing.T) {
	o := fuzzOrg()
	good := orgSigned(o, TypRequest, request(nil))
	if _, err := ParseRequest(good, iss, now); err != nil {
		t.Fatalf("the request itself: %v", err)
	}
	parts := strings.Split(good, ".")
	payload, _ := b64.DecodeString(parts[1])
	for _, tail := range []string{` {"purpose":"marketing"}`, `]`, `x`} {
		input := parts[0] + "." + b64.EncodeToString(append(append([]byte{}, payload...), tail...))
		tok := input + "." + b64.EncodeToString(ed25519.Sign(o.priv, []byte(input)))
		_, err := ParseRequest(tok, iss, now)
		var pe *Error
		if !errors.As(err, &pe) || !errors.Is(err, ErrInvalidRequestObject) || len(pe.Reasons) != 1 || !strings.Contains(pe.Reasons[0], "after the JSON object") {
			t.Errorf("payload + %q: %v", tail, err)
		}
	}
	// Trailing whitespace is still one object.
	input := parts[0] + "." + b64.EncodeToString(append(append([]byte{}, payload...), " \n"...))
	if _, err := ParseRequest(input+"."+b64.EncodeToString(ed25519.Sign(o.priv, []byte(input))), iss, now); err != nil {
		t.Errorf("trailing whitespace: %v", err)
	}
}

// With a holder named, a proof by another key is refused before its
// signature is looked at (a stranger's proof costs no verification); the
// holder's own proof is still fully checked.
func TestProofHolderCheckedFirst(t *testing.T) {
	holder, stranger := fuzzOrg(), newOrgKey(t)
	claims := ProofClaims{ID: "p1", Method: "GET", URL: "https://vault.example/v1/data/x", IssuedAt: now.Unix()}
	chk := ProofCheck{Method: "GET", URL: "https://vault.example/v1/data/x", Now: now, Skew: ClockSkew, Holder: holder.jkt}
	bad := func(tok string) string { return tok[:len(tok)-4] + "AAAA" } // a broken signature
	if _, err := VerifyProof(bad(orgSigned(stranger, TypProof, claims)), chk); !errors.Is(err, ErrWrongHolder) {
		t.Fatalf("a stranger's proof (bad signature, never checked): %v", err)
	}
	if _, err := VerifyProof(bad(orgSigned(holder, TypProof, claims)), chk); err == nil || errors.Is(err, ErrWrongHolder) {
		t.Fatalf("the holder's proof with a bad signature: %v", err)
	}
	if p, err := VerifyProof(orgSigned(holder, TypProof, claims), chk); err != nil || p.JKT != holder.jkt {
		t.Fatalf("the holder's proof: %v", err)
	}
}

// The quick thumbprint agrees with the full one for the keys organizations
// use (Ed25519 and P-256): it never refuses the holder.
func TestQuickThumbprintAgrees(t *testing.T) {
	for range 50 {
		for _, k := range []orgKey{newOrgKey(t), fuzzOrg()} {
			tok := orgSigned(k, TypProof, ProofClaims{ID: "x", Method: "GET", URL: "https://v/x", IssuedAt: now.Unix()})
			h64, _, _ := strings.Cut(tok, ".")
			if quickThumbprintMismatch(h64, k.jkt) {
				t.Fatalf("the holder's own key refused: %v", k.jwk)
			}
			if !quickThumbprintMismatch(h64, "someone-else") {
				t.Fatal("another holder not refused")
			}
		}
	}
	es, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	j := jose.JSONWebKey{Key: es.Public()}
	jkt, _ := Thumbprint(&j)
	raw, _ := j.MarshalJSON()
	h := `{"alg":"ES256","typ":"dpop+jwt","jwk":` + string(raw) + `}`
	if quickThumbprintMismatch(b64.EncodeToString([]byte(h)), jkt) {
		t.Fatal("a P-256 holder refused")
	}
}
