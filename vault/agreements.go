package vault

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"

	"github.com/pdvault/pdvault/policy"
)

// IEEE 7012 agreement records (docs/terms.md, "IEEE 7012"). When the owner
// proffers agreements, or an organization answers them, the vault records
// the exchange with the request: the answer (or its absence), bound to the
// organization's signed request by hash, countersigned by the vault. The
// grant names the record; the owner can export a dispute bundle.

var tAgreements = newTable("agreements", "id", "id", "request_id", "client_id", "record", "countersigned", "created")

// ErrAgreementNotFound is an unknown agreement record.
var ErrAgreementNotFound = policy.E(policy.KindNotFound, "not_found", "no such agreement record")

// Agreement is an agreement record as the owner sees it.
type Agreement struct {
	ID            string                 `json:"id"`
	Record        policy.AgreementRecord `json:"record"`
	Countersigned string                 `json:"countersigned"` // the vault's JWS
	Hash          string                 `json:"hash"`          // base64url SHA-256 of Countersigned, as grants name it
}

// recordAgreement writes the agreement record of a request being admitted,
// in its transaction, if there is anything to record. It returns the
// countersigned record ("" when there is none).
func (v *Vault) recordAgreement(ctx context.Context, tx *sql.Tx, requestID, signed string, req *policy.AccessRequest, terms policy.Terms, termsHash string, now int64) (string, error) {
	if len(terms.Agreements) == 0 && req.MyTerms == nil {
		return "", nil
	}
	sum := sha256.Sum256([]byte(signed))
	rec := policy.AgreementRecord{Issuer: v.Issuer(), Audience: req.ClientID, ID: newID(), IssuedAt: now, RequestID: requestID,
		RequestSHA256: hex.EncodeToString(sum[:]), SecondParty: req.ClientURI, TermsHash: termsHash, Proffered: []string{},
		Response: policy.MyTermsNoAnswer, WireFormat: policy.MyTermsWireFormat}
	for _, a := range terms.Agreements {
		rec.Proffered = append(rec.Proffered, a.ID)
	}
	if req.MyTerms != nil {
		rec.Response, rec.Agreement = req.MyTerms.Response, req.MyTerms.Agreement
	}
	jws, err := policy.SignAgreementRecord(v.signer(), rec)
	if err != nil {
		return "", policy.Internal("countersign agreement", err)
	}
	body, _ := json.Marshal(rec)
	if err := v.st.insert(ctx, tx, tAgreements, rec.ID, `INSERT INTO agreements (id, request_id, client_id, record, countersigned, created) VALUES (?, ?, ?, ?, ?, ?)`,
		rec.ID, requestID, req.ClientID, string(body), jws, now); err != nil {
		return "", err
	}
	return jws, nil
}

func agreementFrom(r row) (Agreement, error) {
	a := Agreement{ID: r.str("id"), Countersigned: r.str("countersigned")}
	if err := json.Unmarshal([]byte(r.str("record")), &a.Record); err != nil {
		return Agreement{}, ErrTampered.WithCause(err)
	}
	a.Hash = agreementHash(a.Countersigned)
	return a, nil
}

func agreementHash(countersigned string) string {
	h := sha256.Sum256([]byte(countersigned))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// agreementOfRequest returns the agreement record of a request, if any.
func (v *Vault) agreementOfRequest(ctx context.Context, q queryer, requestID string) (*Agreement, error) {
	rows, err := v.st.rows(ctx, q, tAgreements, `request_id = ?`, requestID)
	if err != nil {
		return nil, storageError("read agreement", err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	a, err := agreementFrom(rows[0])
	if err != nil {
		return nil, err
	}
	return &a, nil
}

// GetAgreement returns one agreement record.
func (v *Vault) GetAgreement(ctx context.Context, id string) (Agreement, error) {
	r, err := v.st.row(ctx, v.db.r, tAgreements, id)
	if errors.Is(err, sql.ErrNoRows) {
		return Agreement{}, ErrAgreementNotFound
	}
	if err != nil {
		return Agreement{}, storageError("read agreement", err)
	}
	return agreementFrom(r)
}

// AgreementBundle is what a dispute needs, for anyone to check without
// the vault: the organization's signed request (its signature on its
// answer), the vault's countersigned record, the hash of the agreement
// text agreed to, and the audit entry that logged the exchange with its
// inclusion proof in a signed tree head.
type AgreementBundle struct {
	Agreement       Agreement  `json:"agreement"`
	Request         string     `json:"request"`                    // the organization's signed request (JWS)
	AgreementSHA256 string     `json:"agreement_sha256,omitempty"` // of the roster text, if one was accepted or proposed
	Audit           EntryProof `json:"audit"`                      // the request.received entry naming the record's hash
	JWKS            any        `json:"jwks"`                       // the vault's public keys, for the countersignature and the tree head
}

// ExportAgreement builds the dispute bundle of an agreement record.
func (v *Vault) ExportAgreement(ctx context.Context, id string) (AgreementBundle, error) {
	tx, err := v.db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return AgreementBundle{}, storageError("agreement bundle", err)
	}
	defer tx.Rollback()
	r, err := v.st.row(ctx, tx, tAgreements, id)
	if errors.Is(err, sql.ErrNoRows) {
		return AgreementBundle{}, ErrAgreementNotFound
	}
	if err != nil {
		return AgreementBundle{}, storageError("read agreement", err)
	}
	a, err := agreementFrom(r)
	if err != nil {
		return AgreementBundle{}, err
	}
	req, err := v.loadRequest(ctx, tx, a.Record.RequestID)
	if err != nil {
		return AgreementBundle{}, err
	}
	b := AgreementBundle{Agreement: a, Request: req.Signed, JWKS: v.JWKS()}
	if a.Record.Agreement != nil {
		b.AgreementSHA256 = a.Record.Agreement.SHA256
	}
	size, root, err := v.loadHead(ctx, tx)
	if err != nil {
		return AgreementBundle{}, storageError("agreement bundle", err)
	}
	// The entry that logged the request names the record's hash.
	var seq int64
	var entry string
	err = tx.QueryRowContext(ctx, `SELECT seq, entry FROM audit WHERE json_extract(entry, '$.request_id') = ? AND json_extract(entry, '$.event') = ? ORDER BY seq LIMIT 1`,
		a.Record.RequestID, EvRequestReceived).Scan(&seq, &entry)
	if err != nil {
		return AgreementBundle{}, storageError("find the audit entry", err)
	}
	if !strings.Contains(entry, a.Hash) || seq > size {
		return AgreementBundle{}, ErrTampered.WithCause(errors.New("the audit entry of request " + a.Record.RequestID + " does not name its agreement record"))
	}
	if b.Audit, err = v.proveSeq(ctx, tx, size, root, seq, entry); err != nil {
		return AgreementBundle{}, err
	}
	return b, nil
}
