package client

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/pdvault/pdvault/policy"
)

// An organization is a witness of the vault's audit log: grant and data
// responses carry a recent signed tree head (header PDVault-Audit-Head) and
// reads the place of their own entry (PDVault-Audit-Seq). The client keeps
// the newest head it saw; CheckLog holds it against the head kept from
// before (an AnchorStore) with a consistency proof, and ProveEntry checks
// that one of the organization's own entries is in the log.

// seenHeads is what the responses said, newest head first.
type seenHeads struct {
	mu      sync.Mutex
	head    string // signed note
	size    int64
	lastSeq int64
}

func (s *seenHeads) observe(res *http.Response) {
	if s == nil || res == nil {
		return
	}
	b, err := base64.RawURLEncoding.DecodeString(res.Header.Get("PDVault-Audit-Head"))
	seq, _ := strconv.ParseInt(res.Header.Get("PDVault-Audit-Seq"), 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq > s.lastSeq {
		s.lastSeq = seq
	}
	if err != nil || len(b) == 0 {
		return
	}
	// The latest head, not the largest: a vault that shows a shorter log
	// later must be caught, not outvoted by an older answer. CheckLog
	// verifies the signature before anything is kept.
	if _, size, ok := headSize(string(b)); ok {
		s.head, s.size = string(b), size
	}
}

func headSize(note string) (string, int64, bool) {
	vid, ok := VaultIDOf(note)
	lines := strings.SplitN(note, "\n", 3)
	if !ok || len(lines) < 3 {
		return "", 0, false
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	return vid, n, err == nil
}

// LastTreeHead is the newest signed tree head the vault's responses
// carried (unverified until CheckLog), and LastAuditSeq the place of the
// newest entry logged for one of this client's reads.
func (o *Org) LastTreeHead() string {
	o.seen.mu.Lock()
	defer o.seen.mu.Unlock()
	return o.seen.head
}

// LastAuditSeq is the audit entry of the newest read this client made.
func (o *Org) LastAuditSeq() int64 {
	o.seen.mu.Lock()
	defer o.seen.mu.Unlock()
	return o.seen.lastSeq
}

// TreeHead fetches a recent signed tree head.
func (o *Org) TreeHead(ctx context.Context) (string, error) {
	var out struct {
		TreeHead string `json:"tree_head"`
	}
	err := o.get(ctx, "/v1/audit/head", "", "", &out)
	return out.TreeHead, err
}

// Keys is the vault's JWKS as Ed25519 keys (AuditSource).
func (o *Org) Keys(ctx context.Context) ([]ed25519.PublicKey, error) {
	set, err := o.JWKS(ctx)
	if err != nil {
		return nil, err
	}
	return edKeys(set), nil
}

// Consistency asks for a proof that the log extends size from (AuditSource).
func (o *Org) Consistency(ctx context.Context, from int64) (ConsistencyProof, error) {
	var p ConsistencyProof
	err := o.get(ctx, "/v1/audit/consistency", url.Values{"from": {strconv.FormatInt(from, 10)}}.Encode(), "", &p)
	return p, err
}

// CheckLog holds the latest head the vault's responses carried, and a
// fresh one, against the head kept in store for this vault, and keeps the
// newest. It fails with policy.ErrLogRolledBack or policy.ErrLogForked
// when the vault showed an older or different log than before.
func (o *Org) CheckLog(ctx context.Context, store AnchorStore) (Anchor, error) {
	fresh, err := o.TreeHead(ctx)
	if err != nil {
		return Anchor{}, err
	}
	var next Anchor
	for _, head := range []string{o.LastTreeHead(), fresh} {
		if head == "" {
			continue
		}
		vid, ok := VaultIDOf(head)
		if !ok {
			return Anchor{}, policy.ErrBadTreeHead
		}
		old, err := store.Load(vid)
		if err != nil {
			return Anchor{}, err
		}
		if next, err = Witness(ctx, o, old, head); err != nil {
			return Anchor{}, err
		}
		if err := store.Save(next); err != nil {
			return Anchor{}, err
		}
	}
	return next, nil
}

// ProvenEntry is one of the organization's own audit entries, proven to
// be in a signed head of the vault's log.
type ProvenEntry struct {
	Seq      int64
	Entry    string // canonical JSON
	TreeHead policy.TreeHead
}

// ProveEntry fetches one of this organization's own audit entries with its
// inclusion proof and checks both against the vault's keys.
func (o *Org) ProveEntry(ctx context.Context, seq int64) (ProvenEntry, error) {
	path := "/v1/audit/proof"
	req, err := o.newRequest(ctx, http.MethodGet, path+"?seq="+strconv.FormatInt(seq, 10), nil)
	if err != nil {
		return ProvenEntry{}, err
	}
	proof, err := o.key.Proof(http.MethodGet, o.url+path, "", o.Now())
	if err != nil {
		return ProvenEntry{}, err
	}
	req.Header.Set("DPoP", proof)
	var p struct {
		Seq      int64    `json:"seq"`
		Entry    string   `json:"entry"`
		TreeHead string   `json:"tree_head"`
		Proof    []string `json:"proof"`
	}
	if _, err := o.do(req, &p); err != nil {
		return ProvenEntry{}, err
	}
	keys, err := o.Keys(ctx)
	if err != nil {
		return ProvenEntry{}, err
	}
	vid, ok := VaultIDOf(p.TreeHead)
	if !ok {
		return ProvenEntry{}, policy.ErrBadTreeHead
	}
	th, err := policy.OpenTreeHead(p.TreeHead, vid, keys)
	if err != nil {
		return ProvenEntry{}, err
	}
	rp := make(tlog.RecordProof, len(p.Proof))
	for i, s := range p.Proof {
		if rp[i], err = tlog.ParseHash(s); err != nil {
			return ProvenEntry{}, policy.ErrLogForked.WithDetail("the proof is malformed")
		}
	}
	if p.Seq != seq {
		return ProvenEntry{}, policy.ErrLogForked.WithDetail("the vault proved another entry")
	}
	if err := policy.CheckInclusion(th, seq, []byte(p.Entry), rp); err != nil {
		return ProvenEntry{}, err
	}
	return ProvenEntry{Seq: seq, Entry: p.Entry, TreeHead: th}, nil
}
