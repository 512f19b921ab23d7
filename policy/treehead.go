package policy

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Signed tree heads of the audit log, in the C2SP tlog-checkpoint format
// (https://c2sp.org/tlog-checkpoint) as a signed note
// (https://c2sp.org/signed-note), with golang.org/x/mod/sumdb/note:
//
//	pdvault.org/audit/<vault id>
//	<tree size>
//	<base64 RFC 6962 root hash>
//
//	— pdvault.org/audit/<vault id> <base64(key hash ‖ Ed25519 signature)>
//
// The origin names the vault's log and never changes (the issuer URL may).
// Anyone holding the vault's JWKS can check a head; a witness that keeps
// the last head it saw can ask for a consistency proof (RFC 6962 §2.1.2,
// tlog.CheckTree) and so notice a log that was cut or rewritten.

// TreeHeadOrigin is the origin line (and signer name) of a vault's log.
func TreeHeadOrigin(vaultID string) string { return "pdvault.org/audit/" + vaultID }

// TreeHead is a verified signed tree head.
type TreeHead struct {
	Origin string    `json:"origin"`
	Size   int64     `json:"size"`
	Root   tlog.Hash `json:"root_hash"`
	Note   string    `json:"signed_note"`
}

var ErrBadTreeHead = E(KindInvalid, "invalid_tree_head", "the signed tree head is not valid")

// noteSigner adapts the vault's signer to note.Signer for tree heads only:
// SignTreeHead builds the text, so this signs nothing else.
type noteSigner struct {
	s    Signer
	name string
	hash uint32
}

func (n noteSigner) Name() string    { return n.name }
func (n noteSigner) KeyHash() uint32 { return n.hash }
func (n noteSigner) Sign(msg []byte) ([]byte, error) {
	return n.s.SignPayload(msg, jose.EdDSA)
}

func noteVerifier(origin string, pub ed25519.PublicKey) (note.Verifier, error) {
	vkey, err := note.NewEd25519VerifierKey(origin, pub)
	if err != nil {
		return nil, err
	}
	return note.NewVerifier(vkey)
}

// SignTreeHead signs the head of a log of size entries with root hash.
func SignTreeHead(s Signer, vaultID string, size int64, root tlog.Hash) (TreeHead, error) {
	origin := TreeHeadOrigin(vaultID)
	pub, ok := s.Public().Key.(ed25519.PublicKey)
	if !ok {
		return TreeHead{}, errors.New("tree heads are signed with Ed25519")
	}
	v, err := noteVerifier(origin, pub)
	if err != nil {
		return TreeHead{}, err
	}
	text := fmt.Sprintf("%s\n%d\n%s\n", origin, size, base64.StdEncoding.EncodeToString(root[:]))
	signed, err := note.Sign(&note.Note{Text: text}, noteSigner{s: s, name: origin, hash: v.KeyHash()})
	if err != nil {
		return TreeHead{}, err
	}
	return TreeHead{Origin: origin, Size: size, Root: root, Note: string(signed)}, nil
}

// OpenTreeHead verifies a signed tree head of vaultID's log against the
// vault's public keys (any of them may have signed it) and parses it.
func OpenTreeHead(signed, vaultID string, keys []ed25519.PublicKey) (TreeHead, error) {
	origin := TreeHeadOrigin(vaultID)
	var vs []note.Verifier
	for _, k := range keys {
		v, err := noteVerifier(origin, k)
		if err != nil {
			continue
		}
		vs = append(vs, v)
	}
	if len(signed) > 4096 {
		return TreeHead{}, ErrBadTreeHead.WithDetail("too long")
	}
	n, err := note.Open([]byte(signed), note.VerifierList(vs...))
	if err != nil {
		return TreeHead{}, ErrBadTreeHead.WithDetail("no valid signature by the vault").WithCause(err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[0] != origin {
		return TreeHead{}, ErrBadTreeHead.WithDetail("not a head of this vault's log")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return TreeHead{}, ErrBadTreeHead.WithDetail("bad tree size")
	}
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(raw) != tlog.HashSize {
		return TreeHead{}, ErrBadTreeHead.WithDetail("bad root hash")
	}
	var root tlog.Hash
	copy(root[:], raw)
	return TreeHead{Origin: origin, Size: size, Root: root, Note: signed}, nil
}

// Errors of a witness's checks.
var (
	ErrLogRolledBack = E(KindConflict, "log_rolled_back", "the audit log is shorter than a tree head seen before: it was cut or rolled back")
	ErrLogForked     = E(KindConflict, "log_forked", "the audit log is not consistent with a tree head seen before: it was rewritten or forked")
)

// CheckConsistency checks that newer extends older, given the RFC 6962
// consistency proof between them.
func CheckConsistency(older, newer TreeHead, proof tlog.TreeProof) error {
	if newer.Size < older.Size {
		return ErrLogRolledBack
	}
	if newer.Size == older.Size {
		if newer.Root != older.Root {
			return ErrLogForked
		}
		return nil
	}
	if older.Size == 0 {
		return nil
	}
	if err := tlog.CheckTree(proof, newer.Size, newer.Root, older.Size, older.Root); err != nil {
		return ErrLogForked.WithCause(err)
	}
	return nil
}

// CheckInclusion checks that entry (the canonical bytes of audit entry
// number seq, counting from 1) is in the log of head.
func CheckInclusion(head TreeHead, seq int64, entry []byte, proof tlog.RecordProof) error {
	if seq < 1 || seq > head.Size {
		return ErrLogForked.WithDetail("the entry is outside the tree")
	}
	if err := tlog.CheckRecord(proof, head.Size, head.Root, seq-1, tlog.RecordHash(entry)); err != nil {
		return ErrLogForked.WithCause(err)
	}
	return nil
}
