package vault

import (
	"context"
	"io"
)

// OwnerService is what the owner-facing API needs of an unlocked vault.
// The HTTP layer depends on this interface, not on *Vault, so that it stays
// a thin adapter and can be tested against fakes.
type OwnerService interface {
	Login(ctx context.Context, passphrase []byte) (Session, error)
	Authenticate(token string) error
	Logout(token string)
	ChangePassphrase(ctx context.Context, old, new []byte) error

	CreateRecord(ctx context.Context, collection string, data []byte) (Record, error)
	GetRecord(ctx context.Context, collection, id string) (Record, error)
	UpdateRecord(ctx context.Context, collection, id string, data []byte, ifVersion int64) (Record, error)
	DeleteRecord(ctx context.Context, collection, id string, ifVersion int64) error
	ListRecords(ctx context.Context, collection string, limit int, cursor string) (Page, error)

	Export(ctx context.Context, w io.Writer) (ExportStats, error)
}

var _ OwnerService = (*Vault)(nil)
