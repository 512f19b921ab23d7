package vault

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/pdvault/pdvault/policy"
)

func vaultKeys(v *Vault) []ed25519.PublicKey {
	var out []ed25519.PublicKey
	for _, k := range v.JWKS().Keys {
		if pk, ok := k.Key.(ed25519.PublicKey); ok {
			out = append(out, pk)
		}
	}
	return out
}

// IEEE 7012: the owner proffers, the organization accepts in its signed
// request, the vault countersigns a bilateral record, the grant names it,
// and the dispute bundle checks without the vault: both signatures, the
// agreement hash, and the audit entry's inclusion in a signed head.
func TestMyTermsAgreement(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada"}`))
	terms := v.CurrentTerms().Terms
	sdBase := policy.AgreementRef{ID: "SD-BASE", URL: "https://customercommons.org/SD-BASE", SHA256: strings.Repeat("0b", 32), Version: "1"}
	terms.Agreements = []policy.AgreementRef{sdBase}
	tb, _ := json.Marshal(terms)
	if _, err := v.SetTerms(ctx, tb); err != nil {
		t.Fatal(err)
	}
	o := newOrg(t)
	// Accepting an agreement that is not proffered (another text) is a
	// terms violation.
	other := sdBase
	other.SHA256 = strings.Repeat("0c", 32)
	_, err := v.SubmitRequest(ctx, o.request(t, v, func(c *policy.RequestClaims) {
		c.MyTerms = &policy.MyTermsAnswer{Response: policy.MyTermsAccept, Agreement: &other}
	}), "")
	if pe := (*policy.Error)(nil); !errors.As(err, &pe) || !errors.Is(err, policy.ErrTermsViolation) || !strings.Contains(strings.Join(pe.Reasons, " "), "not among the agreements") {
		t.Fatalf("accepting an unproffered text: %v", err)
	}
	signed := o.request(t, v, func(c *policy.RequestClaims) {
		c.MyTerms = &policy.MyTermsAnswer{Response: policy.MyTermsAccept, Agreement: &sdBase}
	})
	tk, err := v.SubmitRequest(ctx, signed, "")
	if err != nil {
		t.Fatal(err)
	}
	keyOf := func(kid string) (ed25519.PublicKey, bool) {
		for _, k := range v.JWKS().Keys {
			if k.KeyID == kid {
				pk, ok := k.Key.(ed25519.PublicKey)
				return pk, ok
			}
		}
		return nil, false
	}
	payload, err := policy.VerifyVaultSigned(tk.AgreementRecord, policy.TypAgreementRecord, keyOf)
	if err != nil {
		t.Fatal(err)
	}
	var rec policy.AgreementRecord
	json.Unmarshal(payload, &rec)
	sum := sha256.Sum256([]byte(signed))
	if rec.Response != policy.MyTermsAccept || rec.Agreement == nil || rec.Agreement.ID != "SD-BASE" || rec.RequestSHA256 != hex.EncodeToString(sum[:]) ||
		rec.Audience != o.jkt || len(rec.Proffered) != 1 {
		t.Fatalf("record %+v", rec)
	}
	req, _ := v.GetRequest(ctx, tk.RequestID)
	if req.Agreement == nil || req.Agreement.Record.Response != policy.MyTermsAccept {
		t.Fatalf("the owner does not see the agreement: %+v", req.Agreement)
	}
	// The grant names the record.
	v.Approve(ctx, tk.RequestID, Approval{})
	p, hc := o.proof(t, v, "POST", "/v1/token", "")
	tok, err := v.CollectGrant(ctx, tk.RequestID, p, hc)
	if err != nil {
		t.Fatal(err)
	}
	g, err := v.verifyGrant(tok.AccessToken)
	h := sha256.Sum256([]byte(tk.AgreementRecord))
	if err != nil || g.Agreement != base64.RawURLEncoding.EncodeToString(h[:]) {
		t.Fatalf("grant agreement %q (%v)", g.Agreement, err)
	}

	b, err := v.ExportAgreement(ctx, req.Agreement.ID)
	if err != nil {
		t.Fatal(err)
	}
	if b.Request != signed || b.Agreement.Countersigned != tk.AgreementRecord || b.AgreementSHA256 != sdBase.SHA256 {
		t.Fatalf("bundle %+v", b)
	}
	th, err := policy.OpenTreeHead(b.Audit.TreeHead, v.ID(), vaultKeys(v))
	if err != nil {
		t.Fatal(err)
	}
	rp := make(tlog.RecordProof, len(b.Audit.Proof))
	for i, s := range b.Audit.Proof {
		rp[i], _ = tlog.ParseHash(s)
	}
	if err := policy.CheckInclusion(th, b.Audit.Seq, []byte(b.Audit.Entry), rp); err != nil || !strings.Contains(b.Audit.Entry, b.Agreement.Hash) {
		t.Fatalf("inclusion: %v (entry %s)", err, b.Audit.Entry)
	}
	if _, err := v.ExportAgreement(ctx, "nope"); !errors.Is(err, ErrAgreementNotFound) {
		t.Fatalf("unknown: %v", err)
	}

	// No answer while the owner proffers: recorded as such; a rejection too.
	tk2, err := v.SubmitRequest(ctx, o.request(t, v, nil), "")
	if err != nil || tk2.AgreementRecord == "" {
		t.Fatalf("no answer: %v", err)
	}
	r2, _ := v.GetRequest(ctx, tk2.RequestID)
	if r2.Agreement.Record.Response != policy.MyTermsNoAnswer {
		t.Fatalf("no answer recorded as %q", r2.Agreement.Record.Response)
	}
	tk3, err := v.SubmitRequest(ctx, o.request(t, v, func(c *policy.RequestClaims) {
		c.MyTerms = &policy.MyTermsAnswer{Response: policy.MyTermsReject}
	}), "")
	if err != nil {
		t.Fatal(err)
	}
	if r3, _ := v.GetRequest(ctx, tk3.RequestID); r3.Agreement.Record.Response != policy.MyTermsReject {
		t.Fatalf("rejection recorded as %q", r3.Agreement.Record.Response)
	}
	// The relationship shows every record, the newest as what it is under.
	rel, err := v.GetRelationship(ctx, o.jkt)
	if err != nil || len(rel.Agreements) != 3 || rel.CurrentAgreement().Record.Response != policy.MyTermsReject {
		t.Fatalf("relationship agreements %+v %v", rel.Agreements, err)
	}
	// A malformed answer is the request object's fault.
	_, err = v.SubmitRequest(ctx, o.request(t, v, func(c *policy.RequestClaims) {
		c.MyTerms = &policy.MyTermsAnswer{Response: "maybe"}
	}), "")
	if !errors.Is(err, policy.ErrInvalidRequestObject) {
		t.Fatalf("malformed answer: %v", err)
	}
}
