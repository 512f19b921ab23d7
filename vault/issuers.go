package vault

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// Former issuers. A grant names the vault's issuer URL in iss and aud, and
// the vault accepts a grant only from itself. A vault that moves (another
// host, another name: "Leaving a host" in docs/operations.md) changes its
// URL, and organizations follow the signed moved notice with the grants
// they hold. Those grants stay good at the new address until they expire
// if they were issued under a URL the vault has recorded as its own: each
// issuer it signs a grant under is kept in an authenticated table, which
// moves with the vault's export. An issuer never recorded is refused
// (invalid_grant), as before; the grant's signature must be the vault's own
// key in every case, and revocation is checked as for any grant.

// issuerSet remembers the former issuers found recorded (it is asked only
// for grants that carry the vault's own signature, and verified grants are
// cached besides: a miss costs one lookup of a checked row).
type issuerSet struct {
	mu   sync.Mutex
	urls map[string]bool
}

// formerIssuer says whether iss is an issuer the vault signed grants
// under, other than its present one. A row that fails its MAC is no
// record (and raises the alarm).
func (v *Vault) formerIssuer(ctx context.Context, iss string) bool {
	if iss == v.Issuer() {
		return false
	}
	v.issuers.mu.Lock()
	ok := v.issuers.urls[iss]
	v.issuers.mu.Unlock()
	if ok {
		return true
	}
	if _, err := v.st.row(ctx, v.db.r, tIssuers, iss); err != nil {
		return false
	}
	v.issuers.mu.Lock()
	if v.issuers.urls == nil {
		v.issuers.urls = map[string]bool{}
	}
	v.issuers.urls[iss] = true
	v.issuers.mu.Unlock()
	return true
}

// recordIssuer adds the present issuer to the table, in the transaction
// that signs a grant under it (a lookup per grant issued: issuing is rare).
func (v *Vault) recordIssuer(ctx context.Context, tx *sql.Tx, iss string, now int64) error {
	switch _, err := v.st.row(ctx, tx, tIssuers, iss); {
	case err == nil:
		return nil
	case !errors.Is(err, sql.ErrNoRows) && !isTampered(err):
		return err
	}
	// Absent, or a row that fails its MAC: the present issuer is written
	// (again) as the vault's own.
	return v.st.put(ctx, tx, tIssuers, iss, now)
}
