package vault

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/pdvault/pdvault/policy"
)

// TermsDoc is one version of the owner's terms.
type TermsDoc struct {
	Terms   policy.Terms `json:"terms"`
	Hash    string       `json:"hash"`
	Text    string       `json:"text"` // human-readable rendering
	Created time.Time    `json:"created"`
	Current bool         `json:"current"`
}

var ErrTermsNotFound = policy.E(policy.KindNotFound, "not_found", "no terms with that hash")

// ensureTerms installs the default terms in a vault that has none.
func (v *Vault) ensureTerms(ctx context.Context) error {
	var cur sql.NullString
	if err := v.db.r.QueryRowContext(ctx, `SELECT terms_hash FROM meta WHERE id = 1`).Scan(&cur); err != nil {
		return storageError("read terms", err)
	}
	if cur.Valid {
		return v.cacheTerms(ctx, cur.String)
	}
	_, err := v.setTerms(ctx, policy.DefaultTerms(), "vault")
	return err
}

// setTerms stores t (if new) and makes it current, in one transaction with
// its audit entry.
func (v *Vault) setTerms(ctx context.Context, t policy.Terms, actor string) (TermsDoc, error) {
	hash, body, err := t.Hash()
	if err != nil {
		return TermsDoc{}, policy.Internal("hash terms", err)
	}
	now := v.now()
	err = v.db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO terms (hash, body, created) VALUES (?, ?, ?)`, hash, string(body), now.Unix()); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE meta SET terms_hash = ? WHERE id = 1`, hash); err != nil {
			return err
		}
		return v.appendAudit(ctx, tx, AuditEntry{Event: EvTermsChanged, Actor: actor, Reason: "terms " + hash})
	})
	if err != nil {
		return TermsDoc{}, err
	}
	doc := TermsDoc{Terms: t, Hash: hash, Text: t.Render(), Created: now, Current: true}
	v.terms.Store(&doc)
	return doc, nil
}

// SetTerms replaces the owner's terms with the document in body. Requests
// must name the new hash from now on; existing grants keep the terms they
// were issued under.
func (v *Vault) SetTerms(ctx context.Context, body []byte) (TermsDoc, error) {
	t, err := policy.ParseTerms(body)
	if err != nil {
		return TermsDoc{}, err
	}
	return v.setTerms(ctx, t, "owner")
}

func (v *Vault) cacheTerms(ctx context.Context, hash string) error {
	doc, err := v.TermsByHash(ctx, hash)
	if err != nil {
		return err
	}
	doc.Current = true
	v.terms.Store(&doc)
	return nil
}

// CurrentTerms returns the terms in force.
func (v *Vault) CurrentTerms() TermsDoc { return *v.terms.Load() }

// TermsByHash returns any version of the terms, current or old.
func (v *Vault) TermsByHash(ctx context.Context, hash string) (TermsDoc, error) {
	var body string
	var created int64
	err := v.db.r.QueryRowContext(ctx, `SELECT body, created FROM terms WHERE hash = ?`, hash).Scan(&body, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return TermsDoc{}, ErrTermsNotFound
	}
	if err != nil {
		return TermsDoc{}, storageError("read terms", err)
	}
	var t policy.Terms
	if err := json.Unmarshal([]byte(body), &t); err != nil {
		return TermsDoc{}, ErrTampered.WithDetail("terms " + hash)
	}
	// The stored body must still hash to its name.
	if h, _, err := t.Hash(); err != nil || h != hash {
		return TermsDoc{}, ErrTampered.WithDetail("terms " + hash)
	}
	cur := v.terms.Load()
	return TermsDoc{Terms: t, Hash: hash, Text: t.Render(), Created: time.Unix(created, 0).UTC(), Current: cur != nil && cur.Hash == hash}, nil
}

// PreviewTerms parses a terms document and renders it without saving it,
// so the owner can see what organizations would read.
func (v *Vault) PreviewTerms(body []byte) (TermsDoc, error) {
	t, err := policy.ParseTerms(body)
	if err != nil {
		return TermsDoc{}, err
	}
	hash, _, err := t.Hash()
	if err != nil {
		return TermsDoc{}, policy.Internal("hash terms", err)
	}
	return TermsDoc{Terms: t, Hash: hash, Text: t.Render()}, nil
}
