package vault

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"maps"
	"slices"
	"sync"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault/internal/crypt"
)

// keyring holds the vault's signing keys: the current private key, and the
// public keys of every key that may still have live grants.
type keyring struct {
	mu        sync.RWMutex
	current   *vaultSigner
	public    map[string]ed25519.PublicKey // kid -> key, including retired ones: they verify old checkpoints
	published map[string]bool              // kids the JWKS lists (nil: all)
}

// vaultSigner implements policy.Signer over the vault's Ed25519 key.
//
// It signs whatever payload it is given: it is a signing oracle, and only
// package policy's token builders may reach it. Never hand it to code that
// takes payloads from outside.
type vaultSigner struct {
	kid string
	seq int // how many signing keys existed once this one was made

	mu   sync.RWMutex // Close takes it to wipe priv; signing holds it
	priv ed25519.PrivateKey
}

func (s *vaultSigner) Public() *jose.JSONWebKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return &jose.JSONWebKey{Key: s.pub(), KeyID: s.kid, Algorithm: string(jose.EdDSA), Use: "sig"}
}

func (s *vaultSigner) pub() ed25519.PublicKey {
	if s.priv == nil {
		return nil
	}
	return s.priv.Public().(ed25519.PublicKey)
}

// wipe forgets the private key.
func (s *vaultSigner) wipe() {
	s.mu.Lock()
	defer s.mu.Unlock()
	crypt.Wipe(s.priv)
	s.priv = nil
}

func (s *vaultSigner) Algs() []jose.SignatureAlgorithm {
	return []jose.SignatureAlgorithm{jose.EdDSA}
}

func (s *vaultSigner) SignPayload(payload []byte, alg jose.SignatureAlgorithm) ([]byte, error) {
	if alg != jose.EdDSA {
		return nil, errors.New("vault signer: only EdDSA")
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.priv == nil {
		return nil, ErrLocked
	}
	return ed25519.Sign(s.priv, payload), nil
}

// wrapKey is the key that wraps one kind of stored secret (signing seeds,
// record keys): one sub-key per kind.
func (v *Vault) wrapKey(kind crypt.Label) ([]byte, error) {
	v.keyMu.RLock()
	defer v.keyMu.RUnlock()
	if v.master == nil {
		return nil, ErrLocked
	}
	return crypt.Derive(v.master, v.id, kind), nil
}

func signingKeyAAD(vaultID, kid string) []byte {
	return crypt.AAD(crypt.SigningKeyAAD, []byte(vaultID), []byte(kid))
}

// deriveLegacy derives a sub-key of the master key, or ErrLocked once the
// vault is closed: Close nils the master key under keyMu, so no caller
// ever derives from a wiped (all-zero) key.
func (v *Vault) deriveLegacy(label crypt.Label, n uint32) ([]byte, error) {
	v.keyMu.RLock()
	defer v.keyMu.RUnlock()
	if v.master == nil {
		return nil, ErrLocked
	}
	return crypt.DeriveLegacy(v.master, v.id, label, n), nil
}

func kidOf(pub ed25519.PublicKey) string {
	kid, err := policy.Thumbprint(&jose.JSONWebKey{Key: pub})
	if err != nil {
		panic(err) // an Ed25519 public key always has a thumbprint
	}
	return kid
}

// newSigningKey makes a new Ed25519 key and stores it sealed.
func (v *Vault) newSigningKey(ctx context.Context, tx *sql.Tx) (*vaultSigner, error) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	kid := kidOf(pub)
	wrap, err := v.wrapKey(crypt.SigningKeyWrap)
	if err != nil {
		return nil, err
	}
	defer crypt.Wipe(wrap)
	sealed := crypt.Seal(wrap, priv.Seed(), signingKeyAAD(v.id, kid))
	if err := v.st.insert(ctx, tx, tSigningKeys, kid, `INSERT INTO signing_keys (kid, public, sealed, created) VALUES (?, ?, ?, ?)`,
		kid, []byte(pub), sealed, v.now().Unix()); err != nil {
		return nil, err
	}
	return &vaultSigner{kid: kid, priv: priv}, nil
}

// loadKeys reads the signing keys, making the first one if there is none.
// Every key, retired or not, must pass its row MAC and open from its
// sealed seed to the public key it claims: a public key someone put in
// the file is never trusted, not even to verify.
func (v *Vault) loadKeys(ctx context.Context) error {
	return v.db.tx(ctx, func(tx *sql.Tx) error {
		rs, err := v.st.rows(ctx, tx, tSigningKeys, `1 ORDER BY created, kid`)
		if err != nil {
			return err
		}
		kr := &keyring{public: map[string]ed25519.PublicKey{}}
		wrap, err := v.wrapKey(crypt.SigningKeyWrap)
		if err != nil {
			return err
		}
		defer crypt.Wipe(wrap)
		var current []*vaultSigner
		for _, r := range rs {
			kid := r.str("kid")
			seed, err := crypt.Open(wrap, r.bytes("sealed"), signingKeyAAD(v.id, kid))
			if err != nil || len(seed) != ed25519.SeedSize {
				// The row passed its MAC, so this is not an outsider's
				// key; still, a key that does not open is never used.
				return ErrTampered.WithCause(errors.New("signing key " + kid + " does not open"))
			}
			priv := ed25519.NewKeyFromSeed(seed)
			crypt.Wipe(seed)
			pub := priv.Public().(ed25519.PublicKey)
			if !bytes.Equal(pub, r.bytes("public")) || kidOf(pub) != kid {
				crypt.Wipe(priv)
				return ErrTampered.WithCause(errors.New("signing key " + kid + " does not match its seed"))
			}
			kr.public[kid] = pub
			if r.null("retired") {
				current = append(current, &vaultSigner{kid: kid, priv: priv, seq: len(rs)})
			} else {
				crypt.Wipe(priv)
			}
		}
		switch len(current) {
		case 0:
			s, err := v.newSigningKey(ctx, tx)
			if err != nil {
				return err
			}
			kr.current = s
			kr.public[s.kid] = s.priv.Public().(ed25519.PublicKey)
		case 1:
			kr.current = current[0]
		default:
			// Rotation retires the old key in the transaction that adds
			// the new one, so two active keys are never the vault's doing.
			return ErrTampered.WithCause(errors.New("more than one active signing key"))
		}
		v.keys = kr
		return nil
	})
}

// signer returns the current signing key.
func (v *Vault) signer() *vaultSigner {
	v.keys.mu.RLock()
	defer v.keys.mu.RUnlock()
	return v.keys.current
}

// publicKey finds a public key by kid: only the vault's own keys.
func (v *Vault) publicKey(kid string) (ed25519.PublicKey, bool) {
	v.keys.mu.RLock()
	defer v.keys.mu.RUnlock()
	k, ok := v.keys.public[kid]
	return k, ok
}

// JWKS is the vault's public key set (RFC 7517), served at
// /.well-known/jwks.json so anyone can verify grants offline.
func (v *Vault) JWKS() jose.JSONWebKeySet {
	v.keys.mu.RLock()
	defer v.keys.mu.RUnlock()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	// Current key first, then the rest in a stable order.
	set.Keys = append(set.Keys, *v.keys.current.Public())
	for _, kid := range slices.Sorted(maps.Keys(v.keys.public)) {
		if kid != v.keys.current.kid && (v.keys.published == nil || v.keys.published[kid]) {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: v.keys.public[kid], KeyID: kid, Algorithm: string(jose.EdDSA), Use: "sig"})
		}
	}
	return set
}
