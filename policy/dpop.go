package policy

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// ProofClaims are the claims of a DPoP proof (RFC 9449 §4.2).
type ProofClaims struct {
	ID          string `json:"jti"`
	Method      string `json:"htm"`
	URL         string `json:"htu"`
	IssuedAt    int64  `json:"iat"`
	AccessToken string `json:"ath,omitempty"` // base64url SHA-256 of the access token
}

// Proof is a verified DPoP proof.
type Proof struct {
	ProofClaims
	JKT string           // thumbprint of the key that signed it
	Key *jose.JSONWebKey // that key
}

// ProofMaxAge is how long after its iat a proof is accepted. The vault
// remembers every jti for at least this long (plus skew) to stop replays.
const ProofMaxAge = 2 * time.Minute

var (
	ErrProofMissing  = E(KindUnauthenticated, "invalid_dpop_proof", "a DPoP proof is required (DPoP header)")
	ErrProofClaims   = E(KindUnauthenticated, "invalid_dpop_proof", "the DPoP proof lacks a required claim")
	ErrProofMethod   = E(KindUnauthenticated, "invalid_dpop_proof", "the DPoP proof is for another HTTP method")
	ErrProofURL      = E(KindUnauthenticated, "invalid_dpop_proof", "the DPoP proof is for another URL")
	ErrProofStale    = E(KindUnauthenticated, "invalid_dpop_proof", "the DPoP proof is too old or dated in the future")
	ErrProofATH      = E(KindUnauthenticated, "invalid_dpop_proof", "the DPoP proof does not match the access token (ath)")
	ErrProofReplayed = E(KindUnauthenticated, "invalid_dpop_proof", "the DPoP proof was already used")
)

// ProofCheck is what a DPoP proof is checked against.
type ProofCheck struct {
	Method      string
	URL         string // the absolute URL of the request, as the client addressed it
	AccessToken string // the token presented with the proof, if any
	Now         time.Time
	Skew        time.Duration
	// Cache, if set, remembers proof headers already checked (see
	// ProofCache). Nil means every proof is parsed in full.
	Cache *ProofCache
	// Holder, if set, is the thumbprint the proof's key must have (the
	// grant's cnf.jkt). It is compared before the signature is checked:
	// a proof by anyone else costs a parse and a hash, not a signature
	// verification, so a flood of strangers' proofs against a copied
	// grant is cheap to refuse.
	Holder string
}

// ProofCache remembers the protected headers of DPoP proofs that have
// passed every header check and a signature verification. An
// organization's proofs all carry the same header bytes (alg, typ, its
// public jwk), so parsing it — JSON, the key, its thumbprint — once per key
// instead of once per request takes most of the parsing off the hot path.
// Only the signature (one Ed25519 or P-256 verification) and the claims are
// checked on every proof. The cache is keyed by the exact base64url header
// text, so a header that differs in any byte is parsed in full.
type ProofCache struct {
	mu sync.RWMutex
	m  map[string]*proofHeader
}

type proofHeader struct {
	alg jose.SignatureAlgorithm
	key *jose.JSONWebKey
	jkt string
}

const proofCacheMax = 10000

// NewProofCache returns an empty cache.
func NewProofCache() *ProofCache { return &ProofCache{m: map[string]*proofHeader{}} }

func (c *ProofCache) get(h64 string) *proofHeader {
	if c == nil {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[h64]
}

func (c *ProofCache) put(h64 string, h *proofHeader) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= proofCacheMax {
		clear(c.m)
	}
	c.m[h64] = h
}

// verifyCached checks the signature of a proof whose header is cached.
func (h *proofHeader) verify(tok string) ([]byte, *Error) {
	h64, rest, _ := strings.Cut(tok, ".")
	p64, s64, _ := strings.Cut(rest, ".")
	sig, err := base64.RawURLEncoding.DecodeString(s64)
	if err != nil {
		return nil, ErrBadSignature
	}
	input := tok[:len(h64)+1+len(p64)]
	switch k := h.key.Key.(type) {
	case ed25519.PublicKey:
		if !isEd25519Alg(string(h.alg)) || !ed25519.Verify(k, []byte(input), sig) {
			return nil, ErrBadSignature
		}
	case *ecdsa.PublicKey:
		// JWS ES256 signatures are r || s, 32 bytes each (RFC 7518 §3.4).
		if h.alg != jose.ES256 || len(sig) != 64 {
			return nil, ErrBadSignature
		}
		digest := sha256.Sum256([]byte(input))
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if !ecdsa.Verify(k, digest[:], r, s) {
			return nil, ErrBadSignature
		}
	default:
		return nil, ErrBadKey
	}
	payload, err := base64.RawURLEncoding.DecodeString(p64)
	if err != nil {
		return nil, ErrMalformedToken
	}
	return payload, nil
}

// quickThumbprintMismatch reads the jwk of a proof's header with a plain
// JSON decoder and reports whether its RFC 7638 thumbprint is surely not
// holder: a stranger's proof is refused for the cost of a decode and a
// hash, before any JOSE parsing. It answers false whenever it is not sure
// (an unusual key, a non-canonical encoding), and the full checks decide.
func quickThumbprintMismatch(h64, holder string) bool {
	if base64.RawURLEncoding.DecodedLen(len(h64)) > maxHeaderLen {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(h64)
	if err != nil {
		return false
	}
	var h struct {
		JWK struct {
			Kty string `json:"kty"`
			Crv string `json:"crv"`
			X   string `json:"x"`
			Y   string `json:"y"`
		} `json:"jwk"`
	}
	if json.Unmarshal(raw, &h) != nil {
		return false
	}
	canonical := func(s string, n int) bool {
		b, err := base64.RawURLEncoding.DecodeString(s)
		return err == nil && len(b) == n && base64.RawURLEncoding.EncodeToString(b) == s
	}
	var members string
	switch k := h.JWK; {
	case k.Kty == "OKP" && k.Crv == "Ed25519" && canonical(k.X, 32) && k.Y == "":
		members = `{"crv":"Ed25519","kty":"OKP","x":"` + k.X + `"}`
	case k.Kty == "EC" && k.Crv == "P-256" && canonical(k.X, 32) && canonical(k.Y, 32):
		members = `{"crv":"P-256","kty":"EC","x":"` + k.X + `","y":"` + k.Y + `"}`
	default:
		return false
	}
	sum := sha256.Sum256([]byte(members))
	return base64.RawURLEncoding.EncodeToString(sum[:]) != holder
}

// VerifyProof checks a DPoP proof as RFC 9449 §4.3 says: one compact JWS,
// typ dpop+jwt, an accepted algorithm, a public key in the jwk header that
// verifies it, htm and htu matching this request, a recent iat, a jti, and
// when an access token is presented, ath matching it. Replay of the jti is
// checked by the caller, who keeps the state.
func VerifyProof(tok string, chk ProofCheck) (*Proof, error) {
	if tok == "" {
		return nil, ErrProofMissing
	}
	var (
		payload []byte
		key     *jose.JSONWebKey
		jkt     string
		perr    *Error
	)
	h64, _, _ := strings.Cut(tok, ".")
	if len(tok) > MaxProofLen {
		return nil, proofError(ErrTokenTooLarge)
	}
	if h := chk.Cache.get(h64); h != nil && strings.Count(tok, ".") == 2 {
		if chk.Holder != "" && h.jkt != chk.Holder {
			return nil, ErrWrongHolder
		}
		if payload, perr = h.verify(tok); perr != nil {
			return nil, proofError(perr)
		}
		key, jkt = h.key, h.jkt
	} else {
		if chk.Holder != "" && quickThumbprintMismatch(h64, chk.Holder) {
			return nil, ErrWrongHolder
		}
		p, perr := parseCompact(tok, MaxProofLen, OrgAlgs, TypProof, "jwk", "kid")
		if perr != nil {
			return nil, proofError(perr)
		}
		if key, jkt, perr = embeddedKey(p); perr != nil {
			return nil, proofError(perr)
		}
		if chk.Holder != "" && jkt != chk.Holder {
			return nil, ErrWrongHolder
		}
		if payload, perr = p.verifyWith(key); perr != nil {
			return nil, proofError(perr)
		}
		chk.Cache.put(h64, &proofHeader{alg: jose.SignatureAlgorithm(p.header.Algorithm), key: key, jkt: jkt})
	}
	var c ProofClaims
	if json.Unmarshal(payload, &c) != nil || c.ID == "" || len(c.ID) > 256 || c.Method == "" || c.URL == "" || c.IssuedAt == 0 {
		return nil, ErrProofClaims
	}
	if c.Method != chk.Method {
		return nil, ErrProofMethod
	}
	if !sameURL(c.URL, chk.URL) {
		return nil, ErrProofURL
	}
	iat := time.Unix(c.IssuedAt, 0)
	if iat.After(chk.Now.Add(chk.Skew)) || chk.Now.Sub(iat) > ProofMaxAge+chk.Skew {
		return nil, ErrProofStale
	}
	if chk.AccessToken != "" {
		want := ATH(chk.AccessToken)
		if c.AccessToken == "" || subtle.ConstantTimeCompare([]byte(c.AccessToken), []byte(want)) != 1 {
			return nil, ErrProofATH
		}
	}
	return &Proof{ProofClaims: c, JKT: jkt, Key: key}, nil
}

// proofError restates a token failure as a proof failure (RFC 9449 §7.1:
// error "invalid_dpop_proof"), keeping the precise cause for errors.Is.
func proofError(e *Error) error {
	out := E(KindUnauthenticated, "invalid_dpop_proof", "the DPoP proof is not valid: "+e.Msg)
	out.Err = e
	return out
}

// ATH is the ath claim for an access token.
func ATH(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// sameURL compares htu with the request URL, ignoring query and fragment
// (RFC 9449 §4.3 point 9) and the case of scheme and host.
func sameURL(htu, want string) bool {
	a, err1 := url.Parse(htu)
	b, err2 := url.Parse(want)
	if err1 != nil || err2 != nil {
		return false
	}
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Host, b.Host) && a.EscapedPath() == b.EscapedPath()
}
