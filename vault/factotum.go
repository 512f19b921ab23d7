package vault

import (
	"golang.org/x/mod/sumdb/tlog"

	"github.com/pdvault/pdvault/policy"
)

// The vault's signing operations, one per kind of statement, as Upspin's
// Factotum offers them: each builds its statement through package policy
// (which sets the JOSE type or the note's text), so no code in the vault
// holds a "sign these bytes" handle. vaultSigner itself is a signing
// oracle; only these functions reach it.

// signGrant signs a grant (RFC 9068 at+jwt) and says which key signed it.
func (v *Vault) signGrant(g policy.GrantClaims) (tok, kid string, err error) {
	s := v.signer()
	tok, err = policy.SignGrant(s, g)
	return tok, s.kid, err
}

// signNotice signs a notice to an organization.
func (v *Vault) signNotice(c policy.NoticeClaims) (string, error) {
	return policy.SignNotice(v.signer(), c)
}

// signClaims signs a derived-claims statement.
func (v *Vault) signClaims(st policy.ClaimsStatement) (string, error) {
	return policy.SignClaims(v.signer(), st)
}

// signHead signs the head of this vault's audit log.
func (v *Vault) signHead(size int64, root tlog.Hash) (policy.TreeHead, error) {
	return policy.SignTreeHead(v.signer(), v.id, size, root)
}
