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
	m, err := v.st.row(ctx, v.db.r, tMeta, 1)
	if err != nil {
		return storageError("read terms", err)
	}
	if !m.null("terms_hash") {
		return v.cacheTerms(ctx, m.str("terms_hash"))
	}
	_, err = v.setTerms(ctx, policy.DefaultTerms(), "vault")
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
		// A version the vault already has is checked, not rewritten.
		switch _, err := v.termsByHash(ctx, tx, hash); {
		case errors.Is(err, ErrTermsNotFound):
			if err := v.st.insert(ctx, tx, tTerms, hash, `INSERT INTO terms (hash, body, created) VALUES (?, ?, ?)`, hash, string(body), now.Unix()); err != nil {
				return err
			}
		case err != nil:
			return err
		}
		if err := v.st.update(ctx, tx, tMeta, 1, `terms_hash = ?`, hash); err != nil {
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
	doc, err := v.termsByHash(ctx, v.db.r, hash)
	if err != nil {
		return TermsDoc{}, storageError("read terms", err)
	}
	return doc, nil
}

// termsByHash reads one checked version of the terms.
func (v *Vault) termsByHash(ctx context.Context, q queryer, hash string) (TermsDoc, error) {
	r, err := v.st.row(ctx, q, tTerms, hash)
	if errors.Is(err, sql.ErrNoRows) {
		return TermsDoc{}, ErrTermsNotFound
	}
	if err != nil {
		return TermsDoc{}, err
	}
	created := r.i64("created")
	var t policy.Terms
	if err := json.Unmarshal(r.bytes("body"), &t); err != nil {
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
