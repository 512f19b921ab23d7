package vault

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"maps"
	"slices"
	"sync"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/pdvault/pdvault/policy"
)

const (
	labelSigningKeyAAD = "pdvault.org/v1/signing-key"
	labelAuditKey      = "pdvault.org/v1/audit-mac"
	labelPairwiseKey   = "pdvault.org/v1/pairwise-id"
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
	kid  string
	priv ed25519.PrivateKey
}

func (s *vaultSigner) Public() *jose.JSONWebKey {
	return &jose.JSONWebKey{Key: s.priv.Public(), KeyID: s.kid, Algorithm: string(jose.EdDSA), Use: "sig"}
}

func (s *vaultSigner) Algs() []jose.SignatureAlgorithm {
	return []jose.SignatureAlgorithm{jose.EdDSA}
}

func (s *vaultSigner) SignPayload(payload []byte, alg jose.SignatureAlgorithm) ([]byte, error) {
	if alg != jose.EdDSA {
		return nil, errors.New("vault signer: only EdDSA")
	}
	return ed25519.Sign(s.priv, payload), nil
}

func (v *Vault) secretKey() ([]byte, error) {
	if v.master == nil {
		return nil, ErrLocked
	}
	return subkey(v.master, v.id, labelSecretKey, 0), nil
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
	wrap, err := v.secretKey()
	if err != nil {
		return nil, err
	}
	defer wipe(wrap)
	sealed := seal(wrap, priv.Seed(), aad(labelSigningKeyAAD, []byte(v.id), []byte(kid)))
	if _, err := tx.ExecContext(ctx, `INSERT INTO signing_keys (kid, public, sealed, created) VALUES (?, ?, ?, ?)`,
		kid, []byte(pub), sealed, v.now().Unix()); err != nil {
		return nil, err
	}
	return &vaultSigner{kid: kid, priv: priv}, nil
}

// loadKeys reads the signing keys, making the first one if there is none.
func (v *Vault) loadKeys(ctx context.Context) error {
	return v.db.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT kid, public, sealed, retired FROM signing_keys ORDER BY created`)
		if err != nil {
			return err
		}
		defer rows.Close()
		kr := &keyring{public: map[string]ed25519.PublicKey{}}
		wrap, err := v.secretKey()
		if err != nil {
			return err
		}
		defer wipe(wrap)
		for rows.Next() {
			var (
				kid            string
				pub, sealedKey []byte
				retired        sql.NullInt64
			)
			if err := rows.Scan(&kid, &pub, &sealedKey, &retired); err != nil {
				return err
			}
			if len(pub) != ed25519.PublicKeySize || kidOf(pub) != kid {
				return ErrTampered.WithDetail("signing key " + kid)
			}
			kr.public[kid] = ed25519.PublicKey(pub)
			if retired.Valid {
				continue
			}
			seed, err := open(wrap, sealedKey, aad(labelSigningKeyAAD, []byte(v.id), []byte(kid)))
			if err != nil || len(seed) != ed25519.SeedSize {
				return ErrTampered.WithDetail("signing key " + kid)
			}
			kr.current = &vaultSigner{kid: kid, priv: ed25519.NewKeyFromSeed(seed)}
			wipe(seed)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		if kr.current == nil {
			s, err := v.newSigningKey(ctx, tx)
			if err != nil {
				return err
			}
			kr.current = s
			kr.public[s.kid] = s.priv.Public().(ed25519.PublicKey)
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
