package vault

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/pdvault/pdvault/policy"
)

// ConsentReceipt is a grant's consent record, its current state, its two
// standard shapes, and the Kantara receipt signed by the vault. The owner
// reads it at /v1/owner/grants/{id}/consent; the organization gets the
// signed receipt with the grant.
type ConsentReceipt struct {
	Record   policy.ConsentRecord `json:"record"`
	State    string               `json:"state"`
	Kantara  map[string]any       `json:"kantara"`
	ISO27560 map[string]any       `json:"iso_27560"`
	Signed   string               `json:"signed"`
}

// ConsentReceipt builds the consent receipt of a grant as it stands now.
func (v *Vault) ConsentReceipt(ctx context.Context, grantID string) (ConsentReceipt, error) {
	g, err := v.loadGrant(ctx, v.db.r, grantID)
	if err != nil {
		return ConsentReceipt{}, err
	}
	rec, err := v.consentRecord(ctx, v.db.r, g)
	if err != nil {
		return ConsentReceipt{}, err
	}
	return v.consentReceipt(rec)
}

func (v *Vault) consentReceipt(rec policy.ConsentRecord) (ConsentReceipt, error) {
	k := rec.Kantara()
	signed, err := policy.SignConsentReceipt(v.signer(), k)
	if err != nil {
		return ConsentReceipt{}, policy.Internal("sign consent receipt", err)
	}
	return ConsentReceipt{Record: rec, State: rec.State(), Kantara: k, ISO27560: rec.DPV27560(), Signed: signed}, nil
}

// consentRecord gathers a grant's consent from the authenticated rows that
// hold it: the grant, its request (what was asked, in the organization's
// signed words), the terms accepted, and any deletion receipts. The
// history is derived from them, so it cannot say other than they do.
func (v *Vault) consentRecord(ctx context.Context, q queryer, g grantRow) (policy.ConsentRecord, error) {
	r, err := v.loadRequest(ctx, q, g.RequestID)
	if err != nil {
		return policy.ConsentRecord{}, err
	}
	terms, err := v.termsByHash(ctx, q, g.TermsHash)
	if err != nil {
		return policy.ConsentRecord{}, err
	}
	rec := policy.ConsentRecord{
		ID: g.ID, Vault: v.Issuer(), Subject: g.Subject,
		ControllerName: g.ClientName, ControllerURI: r.ClientURI, ControllerID: g.ClientID,
		Purpose: g.Purpose, PurposeText: r.PurposeText, Requested: r.Details, Granted: g.Details,
		Given: g.Issued, Expires: g.Expires, Retention: g.retention,
		ThirdPartySharing: signedSharing(r.Signed),
		Jurisdiction:      terms.Terms.Jurisdiction, PolicyURL: v.Issuer() + "/v1/terms/" + g.TermsHash, TermsHash: g.TermsHash,
	}
	if rec.Jurisdiction == "" {
		rec.Jurisdiction = "not stated in the terms"
	}
	given := g.Issued
	if r.Decided != nil {
		given = *r.Decided
	}
	rec.Events = append(rec.Events, policy.ConsentEvent{Type: policy.ConsentGiven, At: given})
	if r.GrantedDuration < r.Duration || !sameDetails(r.Details, g.Details) {
		rec.Events = append(rec.Events, policy.ConsentEvent{Type: policy.ConsentNarrowed, At: given,
			Note: "asked: " + policy.Scope(r.Details) + "; granted: " + policy.Scope(g.Details)})
	}
	switch {
	case g.Revoked != nil && g.endedBy == "organization":
		rec.Events = append(rec.Events, policy.ConsentEvent{Type: policy.ConsentReleased, At: *g.Revoked})
	case g.Revoked != nil:
		rec.Events = append(rec.Events, policy.ConsentEvent{Type: policy.ConsentWithdrawn, At: *g.Revoked})
	case !v.now().Before(g.Expires):
		rec.Events = append(rec.Events, policy.ConsentEvent{Type: policy.ConsentExpired, At: g.Expires})
	}
	receipts, err := v.st.rows(ctx, q, tReceipts, `grant_id = ?`, g.ID)
	if err != nil {
		return policy.ConsentRecord{}, storageError("read receipts", err)
	}
	for _, p := range receipts {
		var names []string
		if err := json.Unmarshal(p.bytes("deleted"), &names); err != nil {
			return policy.ConsentRecord{}, ErrTampered.WithCause(err)
		}
		rec.Events = append(rec.Events, policy.ConsentEvent{Type: policy.ConsentDeleted, At: time.Unix(p.i64("received"), 0).UTC(),
			Note: "deleted: " + strings.Join(names, ", ")})
	}
	rec.SortEvents()
	return rec, nil
}

// sameDetails reports whether two scopes are the same.
func sameDetails(a, b []policy.AuthorizationDetail) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return slices.Equal(ja, jb)
}

// signedSharing reads third_party_sharing from a stored (authenticated,
// verified when received) request object.
func signedSharing(signed string) bool {
	parts := strings.Split(signed, ".")
	if len(parts) != 3 {
		return false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return false
	}
	var c struct {
		Sharing json.RawMessage `json:"third_party_sharing"`
	}
	if json.Unmarshal(payload, &c) != nil {
		return false
	}
	s := strings.Trim(string(c.Sharing), `"`)
	return s == "true"
}
