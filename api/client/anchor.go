package client

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/pdvault/pdvault/policy"
)

// Anchors: a tree head of a vault's audit log kept outside the vault. The
// owner's CLI keeps one per vault it verified, an organization one per
// vault it deals with; each later head must be consistent with it (RFC 6962
// consistency proof), so a log that was cut, rolled back (even as a whole
// file) or shown differently to someone else is caught.

// Anchor is the last tree head verified for one vault.
type Anchor struct {
	VaultID  string    `json:"vault_id"`
	Size     int64     `json:"size"`
	Root     tlog.Hash `json:"root_hash"`
	TreeHead string    `json:"tree_head"` // the signed note, as evidence
	Seen     time.Time `json:"seen"`
}

// AnchorStore keeps anchors as one JSON file per vault in Dir (0600 files
// in a 0700 directory).
type AnchorStore struct{ Dir string }

var vaultIDRE = regexp.MustCompile(`^[a-z2-7]{26}$`)

func (s AnchorStore) path(vaultID string) (string, error) {
	if !vaultIDRE.MatchString(vaultID) {
		return "", fmt.Errorf("not a vault id: %q", vaultID)
	}
	return filepath.Join(s.Dir, vaultID+".json"), nil
}

// Load returns the anchor for vaultID, or nil if there is none yet.
func (s AnchorStore) Load(vaultID string) (*Anchor, error) {
	p, err := s.path(vaultID)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var a Anchor
	if err := json.Unmarshal(b, &a); err != nil || a.VaultID != vaultID {
		return nil, fmt.Errorf("the anchor file %s is damaged; move it away to start over", p)
	}
	return &a, nil
}

// Save writes the anchor (atomically: a crash leaves the old one).
func (s AnchorStore) Save(a Anchor) error {
	p, err := s.path(a.VaultID)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(a, "", "  ")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// VaultIDOf reads the vault id from a tree head's origin line (before the
// signature is checked: it says which keys to check it with).
func VaultIDOf(treeHead string) (string, bool) {
	line, _, _ := strings.Cut(treeHead, "\n")
	id, ok := strings.CutPrefix(line, policy.TreeHeadOrigin(""))
	return id, ok && vaultIDRE.MatchString(id)
}

// ConsistencyProof is the vault's answer to "does your log extend size N".
type ConsistencyProof struct {
	TreeHead string   `json:"tree_head"`
	Size     int64    `json:"size"`
	Proof    []string `json:"proof"`
}

func (p ConsistencyProof) hashes() (tlog.TreeProof, error) {
	out := make(tlog.TreeProof, len(p.Proof))
	for i, s := range p.Proof {
		h, err := tlog.ParseHash(s)
		if err != nil {
			return nil, policy.ErrLogForked.WithDetail("the proof is malformed")
		}
		out[i] = h
	}
	return out, nil
}

// AuditSource is a vault's log as a witness sees it: its keys, and
// consistency proofs from a size it kept.
type AuditSource interface {
	Keys(ctx context.Context) ([]ed25519.PublicKey, error)
	Consistency(ctx context.Context, from int64) (ConsistencyProof, error)
}

// Witness checks the signed tree head current against the anchor kept for
// its vault (none yet: it is trusted on first use) and returns the anchor to
// keep from now on: the newest head, proven consistent with the old one.
// A shorter log is policy.ErrLogRolledBack, an inconsistent one
// policy.ErrLogForked.
func Witness(ctx context.Context, src AuditSource, old *Anchor, current string) (Anchor, error) {
	vid, ok := VaultIDOf(current)
	if !ok {
		return Anchor{}, policy.ErrBadTreeHead.WithDetail("no vault id in its origin")
	}
	if old != nil && old.VaultID != vid {
		return Anchor{}, policy.ErrBadTreeHead.WithDetail("a head of another vault's log")
	}
	keys, err := src.Keys(ctx)
	if err != nil {
		return Anchor{}, err
	}
	th, err := policy.OpenTreeHead(current, vid, keys)
	if err != nil {
		return Anchor{}, err
	}
	if old == nil {
		return Anchor{VaultID: vid, Size: th.Size, Root: th.Root, TreeHead: th.Note, Seen: time.Now().UTC()}, nil
	}
	kept := policy.TreeHead{Size: old.Size, Root: old.Root}
	// Heads given out with responses may be a little stale, so a head
	// shorter than the kept one is not yet proof of anything. Instead the
	// vault must prove that both the kept head and this one are prefixes
	// of its newest log; a vault whose log no longer reaches the kept size
	// was rolled back.
	newest := th
	for _, older := range []policy.TreeHead{kept, th} {
		if older.Size == 0 {
			continue
		}
		p, err := src.Consistency(ctx, older.Size)
		if errors.Is(err, policy.ErrLogRolledBack) || IsCode(err, "beyond_log") {
			return Anchor{}, policy.ErrLogRolledBack.WithDetail(fmt.Sprintf("it has %d entries; on %s it had %d", th.Size, old.Seen.Format(time.DateOnly), old.Size))
		}
		if err != nil {
			return Anchor{}, err
		}
		nh, err := policy.OpenTreeHead(p.TreeHead, vid, keys)
		if err != nil {
			return Anchor{}, err
		}
		proof, err := p.hashes()
		if err != nil {
			return Anchor{}, err
		}
		if err := policy.CheckConsistency(older, nh, proof); err != nil {
			return Anchor{}, err
		}
		if nh.Size > newest.Size {
			newest = nh
		}
	}
	return Anchor{VaultID: vid, Size: newest.Size, Root: newest.Root, TreeHead: newest.Note, Seen: time.Now().UTC()}, nil
}

// AuditConsistency asks the vault to prove its log extends size from.
func (o *Owner) AuditConsistency(ctx context.Context, from int64) (ConsistencyProof, error) {
	var p ConsistencyProof
	err := o.send(ctx, http.MethodGet, "/v1/owner/audit/consistency?from="+strconv.FormatInt(from, 10), nil, &p)
	return p, err
}

// AuditKeys fetches the vault's public keys (its JWKS) to check heads with.
func (o *Owner) AuditKeys(ctx context.Context) ([]ed25519.PublicKey, error) {
	var set jose.JSONWebKeySet
	if err := o.send(ctx, http.MethodGet, "/.well-known/jwks.json", nil, &set); err != nil {
		return nil, err
	}
	return edKeys(set), nil
}

func edKeys(set jose.JSONWebKeySet) []ed25519.PublicKey {
	var out []ed25519.PublicKey
	for _, k := range set.Keys {
		if pk, ok := k.Key.(ed25519.PublicKey); ok {
			out = append(out, pk)
		}
	}
	return out
}

// OwnerAuditSource is the owner API as an AuditSource.
type OwnerAuditSource struct{ *Owner }

func (s OwnerAuditSource) Keys(ctx context.Context) ([]ed25519.PublicKey, error) {
	return s.AuditKeys(ctx)
}
func (s OwnerAuditSource) Consistency(ctx context.Context, from int64) (ConsistencyProof, error) {
	return s.AuditConsistency(ctx, from)
}
