package vault

import (
	"context"
	"io"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/pdvault/pdvault/policy"
)

// OwnerService is what the owner-facing API needs of an unlocked vault.
// The HTTP layer depends on this interface, not on *Vault, so that it stays
// a thin adapter and can be tested against fakes.
type OwnerService interface {
	// Notifications to the owner (notify.go).
	AddChannel(ctx context.Context, c ChannelConfig) (Channel, error)
	RemoveChannel(ctx context.Context, id string) error
	Channels(ctx context.Context) ([]Channel, error)
	TestChannel(ctx context.Context, id string) error
	VAPID(ctx context.Context, generate func() (pub, priv string, err error)) (VAPIDKeys, error)

	Login(ctx context.Context, passphrase []byte, src LoginSource) (LoginResult, error)
	Authenticate(token string) error
	Logout(token string)
	ChangePassphrase(ctx context.Context, old, new []byte) error

	CreateRecord(ctx context.Context, collection string, data []byte) (Record, error)
	GetRecord(ctx context.Context, collection, id string) (Record, error)
	UpdateRecord(ctx context.Context, collection, id string, data []byte, ifVersion int64) (Record, error)
	DeleteRecord(ctx context.Context, collection, id string, ifVersion int64) error
	ListRecords(ctx context.Context, collection string, limit int, cursor string) (Page, error)
	ListCollections(ctx context.Context) ([]Collection, error)
	ImportData(ctx context.Context, r io.Reader, in DataImport) (ImportResult, error)
	StartImport(ctx context.Context, r io.Reader, in DataImport) (ImportJob, error)
	ImportJobs() []ImportJob
	ConsentReceipt(ctx context.Context, grantID string) (ConsentReceipt, error)
	ExportAgreement(ctx context.Context, id string) (AgreementBundle, error)
	ImportJob(id string) (ImportJob, error)
	AddDocument(ctx context.Context, r io.Reader, in DocumentInput) (Record, error)
	OpenDocument(ctx context.Context, id string) (Record, *DocumentReader, error)
	DeleteDocument(ctx context.Context, id string) error
	TransactionsView(ctx context.Context, f TxFilter) (TxView, error)
	SearchRecords(ctx context.Context, q string) (SearchResult, error)

	Export(ctx context.Context, w io.Writer) (ExportStats, error)

	SetTerms(ctx context.Context, body []byte) (TermsDoc, error)
	PreviewTerms(body []byte) (TermsDoc, error)
	CurrentTerms() TermsDoc
	ListRequests(ctx context.Context, status string, q PageQuery) (RequestPage, error)
	GetRequest(ctx context.Context, id string) (Request, error)
	Approve(ctx context.Context, id string, a Approval) (Request, error)
	Deny(ctx context.Context, id, reason string) (Request, error)
	ListGrants(ctx context.Context, q PageQuery) (GrantPage, error)
	GetGrant(ctx context.Context, id string) (Grant, error)
	Revoke(ctx context.Context, id string) (Grant, error)
	ListAudit(ctx context.Context, limit int, cursor string) (AuditPage, error)
	VerifyAudit(ctx context.Context) (AuditReport, error)
	Checkpoint(ctx context.Context) (Checkpoint, error)
	Consistency(ctx context.Context, from int64) (AuditProof, error)
	ListRelationships(ctx context.Context, q PageQuery) (RelationshipPage, error)
	GetRelationship(ctx context.Context, id string) (Relationship, error)
	CheckVerification(ctx context.Context, relID string) (Relationship, error)
	AskReaccept(ctx context.Context, relID string) (Notice, error)
	AnnounceMove(ctx context.Context, location string) (MoveResult, error)
	PublishIntent(ctx context.Context, in policy.IntentInput) (OwnerIntent, error)
	OwnerIntents(ctx context.Context) ([]OwnerIntent, error)
	OwnerIntent(ctx context.Context, id string) (OwnerIntent, error)
	CloseIntent(ctx context.Context, id string) (OwnerIntent, error)
	AcceptOffer(ctx context.Context, offerID string) (Request, error)
	DeclineOffer(ctx context.Context, offerID string) error
	RotateKeys(ctx context.Context, signing, records bool) (RotationResult, error)
	KeyStatus(ctx context.Context) (KeyStatus, error)
}

// OrgService is what the organization-facing protocol needs: discovery,
// terms, requests, token, data and introspection.
type OrgService interface {
	Issuer() string
	// Ready is nil while the vault can serve (/readyz).
	Ready(ctx context.Context) error
	JWKS() jose.JSONWebKeySet
	CurrentTerms() TermsDoc
	TermsByHash(ctx context.Context, hash string) (TermsDoc, error)
	SubmitRequest(ctx context.Context, signed, clientID string) (RequestTicket, error)
	CollectGrant(ctx context.Context, requestID, proof string, hc HTTPContext) (TokenResponse, error)
	ReadCollection(ctx context.Context, a Access, collection string, limit int, cursor string) (DataPage, error)
	ReadRecord(ctx context.Context, a Access, collection, id string) (DataRecord, error)
	ReadDocument(ctx context.Context, a Access, id string) (DataRecord, *DocumentReader, error)
	ReadClaims(ctx context.Context, a Access) (ClaimsResult, error)
	Introspect(ctx context.Context, token, auth, proof string, hc HTTPContext) (Introspection, error)
	ReleaseGrant(ctx context.Context, token, auth, proof string, hc HTTPContext) error
	SubmitReceipt(ctx context.Context, signed string) (ReceiptResult, error)
	LinkKey(ctx context.Context, statement, proof string, hc HTTPContext) (RelationshipKey, error)
	StartVerification(ctx context.Context, proof string, hc HTTPContext) (Challenge, error)
	CheckVerificationByProof(ctx context.Context, proof string, hc HTTPContext) (Relationship, error)
	ListIntents(ctx context.Context) ([]PublicIntent, error)
	GetIntent(ctx context.Context, id string) (PublicIntent, error)
	SubmitOffer(ctx context.Context, intentID, signed, source string) (OfferTicket, error)
	RecentTreeHead(ctx context.Context) (policy.TreeHead, error)
	Consistency(ctx context.Context, from int64) (AuditProof, error)
	ProveEntry(ctx context.Context, seq int64, proof string, hc HTTPContext) (EntryProof, error)
}

// Service is everything the HTTP layer serves.
type Service interface {
	OwnerService
	OrgService
}

var _ Service = (*Vault)(nil)
