package vault

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/pdvault/pdvault/policy"
)

// A custom domain (docs/operations.md, "A domain of your own"). On a host,
// a vault lives at NAME.DOMAIN; its owner may bring a domain of their own,
// and the vault then answers there with that domain as its issuer: the
// iss and aud of new grants, discovery and the URLs DPoP proofs name. Who
// holds the domain proves it in DNS (the host checks, vault/host); the
// vault records the choice in an authenticated row that moves with its
// export, tells every organization where it now lives (a vault.moved
// notice, as for a move), and keeps the issuer it leaves among its former
// issuers, so grants already held stay good until they expire.

// Errors a caller must tell apart.
var (
	ErrBadDomain  = policy.E(policy.KindInvalid, "invalid_domain", "a domain is a DNS name of two or more labels (letters, digits, inner hyphens), such as data.example.org")
	ErrNoDomains  = policy.E(policy.KindForbidden, "custom_domains_unsupported", "this vault's server does not serve custom domains")
	ErrSameDomain = policy.E(policy.KindConflict, "domain_unchanged", "the vault already answers at that domain")
)

// Domain is the custom domain the vault answers at, "" for none.
func (v *Vault) Domain() string {
	if d := v.domain.Load(); d != nil {
		return *d
	}
	return ""
}

// loadDomain reads the recorded domain at opening and, where the server
// serves custom domains, makes it the issuer. A row that fails its MAC
// stops the opening: the issuer decides which grants are good.
func (v *Vault) loadDomain(ctx context.Context) error {
	r, err := v.st.row(ctx, v.db.r, tDomain, 1)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return err
	}
	d := r.str("name")
	v.domain.Store(&d)
	if d != "" && v.opts.DomainIssuer != nil {
		iss := v.opts.DomainIssuer(d)
		v.issuer.Store(&iss)
	}
	return nil
}

// SetDomain makes domain the vault's address and issuer ("" returns it to
// the address its server gives it). The caller has checked that the
// domain's holder points it at this vault. In one transaction: the row,
// the former issuer kept, a vault.moved notice to each organization and
// the audit entry; the new issuer holds from the commit on.
func (v *Vault) SetDomain(ctx context.Context, domain string) (MoveResult, error) {
	if v.opts.DomainIssuer == nil {
		return MoveResult{}, ErrNoDomains
	}
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if domain != "" && !policy.ValidHostName(domain) {
		return MoveResult{}, ErrBadDomain
	}
	if domain == v.Domain() {
		return MoveResult{}, ErrSameDomain
	}
	old, next := v.Issuer(), v.opts.Issuer
	if domain != "" {
		next = v.opts.DomainIssuer(domain)
	}
	now := v.now().Unix()
	var res MoveResult
	err := v.db.tx(ctx, func(tx *sql.Tx) error {
		// Read through the MAC check: a tampered row is refused, not
		// overwritten.
		if _, err := v.st.row(ctx, tx, tDomain, 1); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if err := v.st.put(ctx, tx, tDomain, int64(1), domain, now); err != nil {
			return err
		}
		if err := v.recordIssuer(ctx, tx, old, now); err != nil {
			return err
		}
		var err error
		if res, err = v.noticeMove(ctx, tx, strings.TrimSuffix(next, "/")); err != nil {
			return err
		}
		what := "the vault now answers at " + next
		if domain == "" {
			what = "custom domain removed; the vault answers at " + next
		}
		return v.appendAudit(ctx, tx, AuditEntry{Event: EvVaultMoved, Actor: "owner", Outcome: OutcomeAllowed,
			Reason: fmt.Sprintf("%s; %d organizations notified, %d without a callback", what, len(res.Notices), len(res.NoCallback))})
	})
	if err != nil {
		return MoveResult{}, err
	}
	v.domain.Store(&domain)
	v.issuer.Store(&next)
	v.wakeNotices()
	return res, nil
}

// HomeIssuer is the address the vault's server gives it, which it keeps
// answering at (for its owner) while a custom domain is its issuer.
func (v *Vault) HomeIssuer() string { return v.opts.Issuer }

// DomainsAllowed says whether the vault's server lets its owner bring a
// domain (a host with custom domains).
func (v *Vault) DomainsAllowed() bool { return v.opts.DomainIssuer != nil }
