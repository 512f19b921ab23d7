package policy

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// Token types (the JOSE "typ" header). Checking typ keeps one kind of token
// from being accepted as another: a DPoP proof is never a grant, a grant is
// never a request.
const (
	TypGrant   = "at+jwt"              // RFC 9068
	TypProof   = "dpop+jwt"            // RFC 9449
	TypRequest = "oauth-authz-req+jwt" // RFC 9101
)

// Size limits, checked before any parsing: a token with thousands of dots
// or a megabyte header is refused without being decoded.
const (
	MaxGrantLen   = 16 << 10
	MaxProofLen   = 4 << 10
	MaxRequestLen = 64 << 10
	maxHeaderLen  = 2 << 10 // decoded protected header
)

// AlgEd25519 is RFC 9864's fully specified name for Ed25519 signatures,
// which deprecates the polymorphic "EdDSA" for new work. go-jose does not
// know it, so signatures under it are verified here (verifyWith).
const AlgEd25519 = jose.SignatureAlgorithm("Ed25519")

// OrgAlgs are the algorithms organizations may sign with. The vault itself
// signs with "EdDSA" (the same Ed25519 signature): every JOSE library in
// use verifies that name, while "Ed25519" is new enough that many do not
// yet (docs/protocol.md, "Algorithms").
var (
	OrgAlgs   = []jose.SignatureAlgorithm{jose.EdDSA, AlgEd25519, jose.ES256}
	VaultAlgs = []jose.SignatureAlgorithm{jose.EdDSA}
)

// isEd25519Alg reports whether alg names an Ed25519 signature.
func isEd25519Alg(alg string) bool { return alg == string(jose.EdDSA) || alg == string(AlgEd25519) }

// sameTyp compares a typ header with the expected media type, with the
// "application/" prefix optional and case ignored (RFC 7515 §4.1.9).
func sameTyp(got, want string) bool {
	if len(got) > len("application/") && strings.EqualFold(got[:len("application/")], "application/") && !strings.Contains(got[len("application/"):], "/") {
		got = got[len("application/"):]
	}
	return strings.EqualFold(got, want)
}

var (
	ErrMalformedToken = E(KindUnauthenticated, "invalid_token", "the token is not a compact JWS")
	ErrTokenTooLarge  = E(KindUnauthenticated, "invalid_token", "the token is too large")
	ErrJSONSerialized = E(KindUnauthenticated, "invalid_token", "JSON serialization is not accepted; send compact serialization")
	ErrBadAlgorithm   = E(KindUnauthenticated, "invalid_token", "the token's algorithm is not accepted")
	ErrBadHeader      = E(KindUnauthenticated, "invalid_token", "the token's header has a parameter that is not accepted")
	ErrWrongType      = E(KindUnauthenticated, "invalid_token", "the token has the wrong type (typ)")
	ErrBadSignature   = E(KindUnauthenticated, "invalid_token", "the token's signature does not verify")
	ErrBadKey         = E(KindUnauthenticated, "invalid_token", "the embedded key is not an acceptable public key")
)

// parsed is a compact JWS that passed the shape checks, not yet verified.
type parsed struct {
	jws    *jose.JSONWebSignature
	header jose.Header
	raw    string // the compact serialization
}

// parseCompact applies the checks every token gets before its signature is
// tried: size, exactly three parts, compact (not JSON) serialization, a
// protected header of bounded size with only the allowed parameters, one of
// the allowed algorithms, and the expected typ.
func parseCompact(tok string, maxLen int, algs []jose.SignatureAlgorithm, typ string, allowed ...string) (*parsed, *Error) {
	if len(tok) > maxLen {
		return nil, ErrTokenTooLarge
	}
	tok = strings.TrimSpace(tok)
	if strings.HasPrefix(tok, "{") {
		return nil, ErrJSONSerialized
	}
	if strings.Count(tok, ".") != 2 {
		return nil, ErrMalformedToken
	}
	h64, _, _ := strings.Cut(tok, ".")
	if base64.RawURLEncoding.DecodedLen(len(h64)) > maxHeaderLen {
		return nil, ErrTokenTooLarge
	}
	hb, err := base64.RawURLEncoding.DecodeString(h64)
	if err != nil {
		return nil, ErrMalformedToken
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return nil, ErrMalformedToken
	}
	var alg string
	if json.Unmarshal(hdr["alg"], &alg) != nil || !containsAlg(algs, alg) {
		return nil, ErrBadAlgorithm
	}
	var t string
	if json.Unmarshal(hdr["typ"], &t) != nil || !sameTyp(t, typ) {
		return nil, ErrWrongType
	}
	// Only named parameters: jku, x5u, x5c, crit, b64 and anything else that
	// could steer which key verifies, or how, are refused outright.
	for k := range hdr {
		if k != "alg" && k != "typ" && !contains(allowed, k) {
			return nil, ErrBadHeader.WithDetail(quoteShort(k))
		}
	}
	if j, ok := hdr["jwk"]; ok {
		// A private key in the header is refused by name, before the JWS
		// library sees it (RFC 7515 §4.1.3: only public keys are embedded).
		var members map[string]json.RawMessage
		if json.Unmarshal(j, &members) != nil {
			return nil, ErrBadKey
		}
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := members[private]; ok {
				return nil, ErrBadKey
			}
		}
	}
	jws, err := jose.ParseSignedCompact(tok, algs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, ErrMalformedToken.WithCause(err)
	}
	return &parsed{jws: jws, header: jws.Signatures[0].Protected, raw: tok}, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsAlg(algs []jose.SignatureAlgorithm, alg string) bool {
	for _, a := range algs {
		if string(a) == alg {
			return true
		}
	}
	return false
}

// embeddedKey returns the public key in a "jwk" header, if it is an Ed25519
// or P-256 public key that fits the algorithm, and its RFC 7638 thumbprint.
func embeddedKey(p *parsed) (*jose.JSONWebKey, string, *Error) {
	k := p.header.JSONWebKey
	if k == nil || !k.IsPublic() || !k.Valid() {
		return nil, "", ErrBadKey
	}
	switch pub := k.Key.(type) {
	case ed25519.PublicKey:
		if !isEd25519Alg(p.header.Algorithm) {
			return nil, "", ErrBadKey
		}
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() || p.header.Algorithm != string(jose.ES256) {
			return nil, "", ErrBadKey
		}
	default:
		return nil, "", ErrBadKey
	}
	jkt, err := Thumbprint(k)
	if err != nil {
		return nil, "", ErrBadKey
	}
	return k, jkt, nil
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of a key, base64url. It is
// an organization's client_id and the cnf.jkt of its grants.
func Thumbprint(k *jose.JSONWebKey) (string, error) {
	t, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(t), nil
}

// verifyWith checks the signature with key and returns the payload.
func (p *parsed) verifyWith(key any) ([]byte, *Error) {
	if p.header.Algorithm == string(AlgEd25519) {
		if jwk, ok := key.(*jose.JSONWebKey); ok {
			key = jwk.Key
		}
		pub, ok := key.(ed25519.PublicKey)
		if !ok {
			return nil, ErrBadSignature
		}
		h64, rest, _ := strings.Cut(p.raw, ".")
		p64, s64, _ := strings.Cut(rest, ".")
		sig, err := base64.RawURLEncoding.DecodeString(s64)
		if err != nil || !ed25519.Verify(pub, []byte(p.raw[:len(h64)+1+len(p64)]), sig) {
			return nil, ErrBadSignature
		}
		payload, err := base64.RawURLEncoding.DecodeString(p64)
		if err != nil {
			return nil, ErrMalformedToken
		}
		return payload, nil
	}
	payload, err := p.jws.Verify(key)
	if err != nil {
		return nil, ErrBadSignature
	}
	return payload, nil
}

// Signer signs for the vault without handing out its private key: the
// vault implements it and passes it in (the Factotum model). Every payload
// it is asked to sign is one that this package built.
type Signer = jose.OpaqueSigner

// sign makes a compact JWS of claims with the given typ.
func sign(s Signer, typ string, claims any) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: s},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}
