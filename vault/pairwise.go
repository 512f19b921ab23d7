package vault

import (
	"context"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"sync"

	"github.com/pdvault/pdvault/vault/internal/crypt"
)

// Pairwise identifiers: what one organization sees cannot be matched with
// what another sees.
//
//	sub        = base64url(HMAC-SHA-256(pairwise key, "sub" ‖ 0 ‖ relationship id))
//	record id  = base32(AES-256(K_rel, 16-byte record id))       K_rel = HMAC-SHA-256(pairwise key, "record-id" ‖ 0 ‖ relationship id)
//	cursor     = base64url(AES-256(K_rel, seq ‖ 8 zero bytes))
//
// AES on a single 16-byte block is a pseudorandom permutation: the same
// record always maps to the same id for one organization (so it can keep
// references), ids of two organizations are unrelated, and the vault maps
// an id back by decrypting. Keyed by the relationship, not the key, so an
// organization that rotates its key keeps seeing the same ids. The zero
// half of a cursor block authenticates it: a forged cursor decrypts to
// garbage and is refused.

type pairwise struct {
	mu      sync.Mutex
	ciphers map[string]cipher.Block // relationship id -> AES
	rels    map[string]string       // client id -> relationship id (never changes once set)
}

func (v *Vault) pairwiseSubject(relID string) string {
	return base64.RawURLEncoding.EncodeToString(crypt.Keyed(v.pairwiseKey, "sub", relID))
}

func (v *Vault) relBlock(relID string) cipher.Block {
	v.pw.mu.Lock()
	defer v.pw.mu.Unlock()
	if b, ok := v.pw.ciphers[relID]; ok {
		return b
	}
	b := crypt.Permutation(v.pairwiseKey, "record-id", relID)
	if len(v.pw.ciphers) > 10000 {
		clear(v.pw.ciphers)
	}
	v.pw.ciphers[relID] = b
	return b
}

// relOf maps a client id to its relationship, caching the answer.
func (v *Vault) relOf(ctx context.Context, clientID string) (string, error) {
	v.pw.mu.Lock()
	rel, ok := v.pw.rels[clientID]
	v.pw.mu.Unlock()
	if ok {
		return rel, nil
	}
	rel, err := v.relationshipOf(ctx, v.db.r, clientID)
	if err != nil {
		return "", err
	}
	v.pw.mu.Lock()
	if len(v.pw.rels) > 10000 {
		clear(v.pw.rels)
	}
	v.pw.rels[clientID] = rel
	v.pw.mu.Unlock()
	return rel, nil
}

// forgetRelationships drops the key -> relationship cache (after
// relationships were deleted).
func (v *Vault) forgetRelationships() {
	v.pw.mu.Lock()
	clear(v.pw.rels)
	v.pw.mu.Unlock()
}

// orgRecordID is the id an organization sees for a record.
func (v *Vault) orgRecordID(relID, id string) string {
	raw, err := idEncoding.DecodeString(id)
	if err != nil || len(raw) != 16 {
		return ""
	}
	out := make([]byte, 16)
	v.relBlock(relID).Encrypt(out, raw)
	return idEncoding.EncodeToString(out)
}

// realRecordID maps an organization's id back; ok is false for anything
// that is not an id of the right shape.
func (v *Vault) realRecordID(relID, orgID string) (string, bool) {
	// Only the canonical spelling: base32 of 128 bits leaves two spare
	// bits in the last character, and four spellings of one id must not
	// all be accepted.
	raw, err := idEncoding.DecodeString(orgID)
	if err != nil || len(raw) != 16 || idEncoding.EncodeToString(raw) != orgID {
		return "", false
	}
	out := make([]byte, 16)
	v.relBlock(relID).Decrypt(out, raw)
	return idEncoding.EncodeToString(out), true
}

// cursorBlock is the permutation for one grant's listing of one
// collection, under the cursor key (not the id key): a cursor is good only
// for the grant and collection it was given for.
func (v *Vault) cursorBlock(relID, grantID, collection string) cipher.Block {
	return crypt.Permutation(v.cursorKey, relID, grantID, collection)
}

// orgCursor turns a listing cursor into the organization's own: the
// position, encrypted with eight zero bytes that authenticate it.
func (v *Vault) orgCursor(relID, grantID, collection, cursor string) string {
	if cursor == "" {
		return ""
	}
	seq, err := decodeCursor(cursor)
	if err != nil {
		return ""
	}
	block := make([]byte, 16)
	binary.BigEndian.PutUint64(block, uint64(seq))
	v.cursorBlock(relID, grantID, collection).Encrypt(block, block)
	return base64.RawURLEncoding.EncodeToString(block)
}

// realCursor maps an organization's cursor back, refusing forgeries and
// cursors of another grant or collection (they decrypt to garbage).
func (v *Vault) realCursor(relID, grantID, collection, c string) (string, error) {
	if c == "" {
		return "", nil
	}
	block, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(block) != 16 || base64.RawURLEncoding.EncodeToString(block) != c {
		return "", ErrBadCursor
	}
	v.cursorBlock(relID, grantID, collection).Decrypt(block, block)
	for _, b := range block[8:] {
		if b != 0 {
			return "", ErrBadCursor
		}
	}
	return encodeCursor(int64(binary.BigEndian.Uint64(block[:8]))), nil
}
