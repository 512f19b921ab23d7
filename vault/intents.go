package vault

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault/internal/crypt"
)

// Intentcasting. The owner publishes an intent with no personal data,
// signed by a key made for that intent alone; organizations answer with
// signed offers; accepting an offer turns it into an ordinary access
// request, under the owner's terms, that the owner then approves or not.

// Offer and intent states.
const (
	IntentOpen    = "open"
	IntentClosed  = "closed"
	OfferOpen     = "open"
	OfferAccepted = "accepted"
	OfferDeclined = "declined"
)

var (
	ErrIntentNotFound = policy.E(policy.KindNotFound, "not_found", "no such intent")
	ErrIntentClosed   = policy.E(policy.KindGone, "intent_closed", "the intent is closed or expired; it takes no more offers")
	ErrOfferNotFound  = policy.E(policy.KindNotFound, "not_found", "no such offer")
	ErrOfferDecided   = policy.E(policy.KindConflict, "already_decided", "the offer has already been accepted or declined")
	ErrOfferReplayed  = policy.E(policy.KindInvalid, "invalid_offer", "an offer with this jti was already received from this organization")
	ErrOfferConflict  = policy.E(policy.KindConflict, "offer_conflict", "the organization already sent a request with the id this offer would take; ask it to send a new offer")
	ErrPersonalData   = policy.E(policy.KindInvalid, "personal_data", "the intent would reveal something from your profile")
)

// PublicIntent is an intent as anyone may read it.
type PublicIntent struct {
	policy.Intent
	Signed string `json:"signed"` // JWS by the intent's own key
}

// OwnerIntent is an intent as the owner sees it, with its offers.
type OwnerIntent struct {
	PublicIntent
	Status string       `json:"status"`
	Offers []OwnerOffer `json:"offers"`
}

// OwnerOffer is an offer as the owner sees it.
type OwnerOffer struct {
	ID         string                       `json:"id"`
	IntentID   string                       `json:"intent_id"`
	ClientID   string                       `json:"client_id"`
	ClientName string                       `json:"client_name"`
	ClientURI  string                       `json:"client_uri"`
	Offer      string                       `json:"offer"`
	Price      *policy.Price                `json:"price,omitempty"`
	Purpose    string                       `json:"purpose"`
	Needs      []policy.AuthorizationDetail `json:"authorization_details"`
	Duration   int64                        `json:"duration"`
	Status     string                       `json:"status"`
	Received   time.Time                    `json:"received"`
}

// OfferTicket is the answer to an offer: poll the token endpoint with the
// offer id, as with a request (RFC 8628).
type OfferTicket struct {
	OfferID   string `json:"offer_id"`
	Interval  int64  `json:"interval"`
	ExpiresIn int64  `json:"expires_in"`
}

// profileValues are the owner's string values from the profile, to keep
// them out of intents.
func (v *Vault) profileValues(ctx context.Context) (map[string]string, error) {
	data, err := v.collectionData(ctx, "profile")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	var walk func(prefix string, raw json.RawMessage)
	walk = func(prefix string, raw json.RawMessage) {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			// Coarse places are what an intent's region is for.
			if leaf := prefix[strings.LastIndex(prefix, ".")+1:]; leaf != "city" && leaf != "country" {
				out[prefix] = s
			}
			return
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) == nil {
			for k, v := range m {
				walk(prefix+"."+k, v)
			}
		}
	}
	for _, d := range data {
		var m map[string]json.RawMessage
		json.Unmarshal(d, &m)
		for k, v := range m {
			walk(k, v)
		}
	}
	return out, nil
}

// PublishIntent makes an intent public.
func (v *Vault) PublishIntent(ctx context.Context, in policy.IntentInput) (OwnerIntent, error) {
	life, err := policy.CheckIntent(in)
	if err != nil {
		return OwnerIntent{}, err
	}
	values, err := v.profileValues(ctx)
	if err != nil {
		return OwnerIntent{}, err
	}
	// The region is the owner's deliberate, coarse choice ("Berlin"), so
	// it is not checked; title, description and category are.
	text := strings.Join([]string{in.Title, in.Description, in.Category}, "\n")
	if hits := policy.PersonalData(text, values); len(hits) > 0 {
		return OwnerIntent{}, ErrPersonalData.WithReasons([]string{"it contains the value of your profile's " + strings.Join(hits, ", ")})
	}
	now := v.now()
	pi := policy.Intent{ID: newID(), Title: strings.TrimSpace(in.Title), Description: in.Description, Category: in.Category,
		Budget: in.Budget, Region: in.Region, IssuedAt: now.Unix(), Expiry: now.Add(life).Unix()}
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return OwnerIntent{}, policy.Internal("intent key", err)
	}
	signed, err := policy.SignIntent(priv, pi)
	if err != nil {
		return OwnerIntent{}, policy.Internal("sign intent", err)
	}
	// The intent's key signs once and is dropped: nothing else is ever
	// signed with it, so there is nothing to keep (the column stays empty).
	crypt.Wipe(priv)
	body, _ := json.Marshal(pi)
	err = v.db.tx(ctx, func(tx *sql.Tx) error {
		if err := v.st.insert(ctx, tx, tIntents, pi.ID, `INSERT INTO intents (id, body, signed, public, sealed, status, created, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			pi.ID, string(body), signed, []byte(pub), []byte{}, IntentOpen, pi.IssuedAt, pi.Expiry); err != nil {
			return err
		}
		return v.appendAudit(ctx, tx, AuditEntry{Event: EvIntentPublished, Actor: "owner", Reason: "intent " + pi.ID + ": " + pi.Title})
	})
	if err != nil {
		return OwnerIntent{}, err
	}
	return OwnerIntent{PublicIntent: PublicIntent{Intent: pi, Signed: signed}, Status: IntentOpen, Offers: []OwnerOffer{}}, nil
}

// intentFrom builds an intent from its checked row.
func intentFrom(r row) (OwnerIntent, int64, error) {
	oi := OwnerIntent{Status: r.str("status")}
	oi.Signed = r.str("signed")
	if err := json.Unmarshal(r.bytes("body"), &oi.Intent); err != nil {
		return oi, 0, ErrTampered.WithCause(err)
	}
	return oi, r.i64("expires"), nil
}

// ListIntents returns the open, unexpired intents: the public feed.
func (v *Vault) ListIntents(ctx context.Context) ([]PublicIntent, error) {
	rs, err := v.st.rows(ctx, v.db.r, tIntents, `status = ? AND expires > ? ORDER BY created DESC, rowid DESC LIMIT 500`,
		IntentOpen, v.opts.Now().Unix())
	if err != nil {
		return nil, storageError("list intents", err)
	}
	out := []PublicIntent{}
	for _, r := range rs {
		oi, _, err := intentFrom(r)
		if err != nil {
			return nil, storageError("list intents", err)
		}
		out = append(out, oi.PublicIntent)
	}
	return out, nil
}

// GetIntent returns one open intent; a closed or expired one is gone.
func (v *Vault) GetIntent(ctx context.Context, id string) (PublicIntent, error) {
	oi, err := v.ownerIntent(ctx, v.db.r, id, false)
	if err != nil {
		return PublicIntent{}, err
	}
	if oi.Status != IntentOpen {
		return PublicIntent{}, ErrIntentClosed
	}
	return oi.PublicIntent, nil
}

func (v *Vault) ownerIntent(ctx context.Context, q queryer, id string, withOffers bool) (OwnerIntent, error) {
	if !policy.ValidateRecordID(id) {
		return OwnerIntent{}, ErrIntentNotFound
	}
	r, err := v.st.row(ctx, q, tIntents, id)
	if errors.Is(err, sql.ErrNoRows) {
		return OwnerIntent{}, ErrIntentNotFound
	}
	if err != nil {
		return OwnerIntent{}, storageError("read intent", err)
	}
	oi, expires, err := intentFrom(r)
	if err != nil {
		return OwnerIntent{}, err
	}
	if oi.Status == IntentOpen && v.opts.Now().Unix() >= expires {
		oi.Status = IntentClosed
	}
	oi.Offers = []OwnerOffer{}
	if !withOffers {
		return oi, nil
	}
	ors, err := v.st.rows(ctx, q, tOffers, `intent_id = ? ORDER BY received, id`, id)
	if err != nil {
		return OwnerIntent{}, storageError("read offers", err)
	}
	for _, r := range ors {
		o := OwnerOffer{ID: r.str("id"), ClientID: r.str("client_id"), ClientName: r.str("client_name"), ClientURI: r.str("client_uri"),
			Status: r.str("status"), Received: time.Unix(r.i64("received"), 0).UTC()}
		var c policy.OfferClaims
		if err := json.Unmarshal(r.bytes("body"), &c); err != nil {
			return OwnerIntent{}, ErrTampered.WithCause(err)
		}
		o.IntentID, o.Offer, o.Price, o.Purpose, o.Needs, o.Duration = id, c.Offer, c.Price, c.Purpose, c.AuthorizationDetails, c.Duration
		oi.Offers = append(oi.Offers, o)
	}
	return oi, nil
}

// OwnerIntents lists every intent with its offers, newest first.
func (v *Vault) OwnerIntents(ctx context.Context) ([]OwnerIntent, error) {
	rs, err := v.st.rows(ctx, v.db.r, tIntents, `1 ORDER BY created DESC, rowid DESC LIMIT 500`)
	if err != nil {
		return nil, storageError("list intents", err)
	}
	out := []OwnerIntent{}
	for _, r := range rs {
		oi, err := v.OwnerIntent(ctx, r.str("id"))
		if err != nil {
			return nil, err
		}
		out = append(out, oi)
	}
	return out, nil
}

// OwnerIntent returns one intent with its offers.
func (v *Vault) OwnerIntent(ctx context.Context, id string) (OwnerIntent, error) {
	tx, err := v.db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return OwnerIntent{}, storageError("read intent", err)
	}
	defer tx.Rollback()
	return v.ownerIntent(ctx, tx, id, true)
}

// CloseIntent takes an intent off the feed; offers still open are
// declined.
func (v *Vault) CloseIntent(ctx context.Context, id string) (OwnerIntent, error) {
	err := v.db.tx(ctx, func(tx *sql.Tx) error {
		oi, err := v.ownerIntent(ctx, tx, id, false)
		if err != nil {
			return err
		}
		now := v.now().Unix()
		if err := v.st.update(ctx, tx, tIntents, id, `status = ?, closed = coalesce(closed, ?)`, IntentClosed, now); err != nil {
			return err
		}
		open, err := v.st.rows(ctx, tx, tOffers, `intent_id = ? AND status = ?`, id, OfferOpen)
		if err != nil {
			return err
		}
		for _, o := range open {
			if err := v.st.update(ctx, tx, tOffers, o.str("id"), `status = ?`, OfferDeclined); err != nil {
				return err
			}
		}
		return v.appendAudit(ctx, tx, AuditEntry{Event: EvIntentClosed, Actor: "owner", Reason: "intent " + id + ": " + oi.Title})
	})
	if err != nil {
		return OwnerIntent{}, err
	}
	return v.OwnerIntent(ctx, id)
}

// SubmitOffer takes an organization's signed offer for an open intent.
// Offers are limited per organization key and per source address, checked
// in that order after the signature, so a flood of junk costs the sender
// its address's allowance and a valid key cannot be drowned by others.
func (v *Vault) SubmitOffer(ctx context.Context, intentID, signed, source string) (OfferTicket, error) {
	now := v.opts.Now()
	if ok, wait := v.offerAddrLimit.Allow(source, now); !ok {
		return OfferTicket{}, policy.ErrRateLimited.WithRetryAfter(wait)
	}
	o, err := policy.ParseOffer(signed, v.Issuer(), now)
	if err != nil {
		return OfferTicket{}, err
	}
	if ok, wait := v.offerKeyLimit.Allow(o.ClientID, now); !ok {
		return OfferTicket{}, policy.ErrRateLimited.WithRetryAfter(wait)
	}
	if o.IntentID != intentID {
		return OfferTicket{}, policy.ErrInvalidOffer.WithReasons([]string{"intent_id: does not match the intent the offer was sent to"})
	}
	terms := v.CurrentTerms()
	if reasons := policy.CheckTerms(terms.Terms, terms.Hash, o.RequestClaims); len(reasons) > 0 {
		return OfferTicket{}, policy.ErrTermsViolation.WithReasons(reasons)
	}
	if o.CallbackURI != "" {
		if err := policy.CheckOutboundURL(o.CallbackURI, v.opts.AllowLoopbackHTTP); err != nil {
			return OfferTicket{}, policy.ErrInvalidOffer.WithReasons([]string{"callback_uri: the address is not allowed"})
		}
	}
	jwk, err := o.Key.MarshalJSON()
	if err != nil {
		return OfferTicket{}, policy.Internal("encode jwk", err)
	}
	body, _ := json.Marshal(o.OfferClaims)
	t := OfferTicket{OfferID: newID(), Interval: int64(PollInterval / time.Second), ExpiresIn: int64(RequestLifetime / time.Second)}
	err = v.db.tx(ctx, func(tx *sql.Tx) error {
		oi, err := v.ownerIntent(ctx, tx, intentID, false)
		if err != nil {
			return err
		}
		if oi.Status != IntentOpen {
			return ErrIntentClosed
		}
		err = v.st.insert(ctx, tx, tOffers, t.OfferID, `INSERT INTO offers (id, intent_id, client_id, jwk, client_name, client_uri, signed, body, jti, status, received)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, t.OfferID, intentID, o.ClientID, string(jwk), o.ClientName, o.ClientURI, signed, string(body), o.ID, OfferOpen, now.Unix())
		if isUniqueViolation(err) {
			return ErrOfferReplayed
		}
		if err != nil {
			return err
		}
		return v.appendAudit(ctx, tx, AuditEntry{Event: EvOfferReceived, Actor: o.ClientID, ClientID: o.ClientID, ClientName: o.ClientName,
			Scope: policy.Scope(o.AuthorizationDetails), Reason: "intent " + intentID})
	})
	if err != nil {
		return OfferTicket{}, err
	}
	v.Notify(ctx, Notification{Event: EventOffer, Title: "pdvault: an offer from " + quoteName(o.ClientName),
		Body: fmt.Sprintf("%s answers your intent and asks for %s.", quoteName(o.ClientName), policy.Scope(o.AuthorizationDetails)),
		Link: v.Issuer() + "/ui/intents"})
	return t, nil
}

// AcceptOffer turns an open offer into a pending access request with the
// offer's id, exactly what the offer said it needs, under the terms it
// accepted. The owner then decides on it like any request.
func (v *Vault) AcceptOffer(ctx context.Context, offerID string) (Request, error) {
	if !policy.ValidateRecordID(offerID) {
		return Request{}, ErrOfferNotFound
	}
	err := v.db.tx(ctx, func(tx *sql.Tx) error {
		r, err := v.st.row(ctx, tx, tOffers, offerID)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrOfferNotFound
		}
		if err != nil {
			return err
		}
		signed, status, intentID := r.str("signed"), r.str("status"), r.str("intent_id")
		if status != OfferOpen {
			return ErrOfferDecided
		}
		// Re-read the signed offer: it is the organization's signed
		// acceptance of the terms, and becomes the request's. Its freshness
		// was checked on arrival.
		c, err := offerClaims(signed)
		if err != nil {
			return err
		}
		req := c.AccessRequest()
		jwk, _ := req.Key.MarshalJSON()
		details, _ := json.Marshal(req.AuthorizationDetails)
		now := v.now().Unix()
		var retention sql.NullInt64
		if req.Retention != nil {
			retention = sql.NullInt64{Int64: *req.Retention, Valid: true}
		}
		err = v.st.insert(ctx, tx, tRequests, offerID, `INSERT INTO requests (id, client_id, jwk, client_name, client_uri, callback_uri, purpose, purpose_text,
			details, duration, retention, terms_hash, jti, signed, status, created, expires, poll_interval)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			offerID, req.ClientID, string(jwk), req.ClientName, req.ClientURI, req.CallbackURI, req.Purpose, req.PurposeText,
			string(details), req.Duration, retention, req.TermsHash, policy.ReservedJTIPrefix+req.ID, signed, StatusPending, now, now+int64(RequestLifetime/time.Second),
			int64(PollInterval/time.Second))
		if isUniqueViolation(err) {
			// Only possible for a request stored before the prefix was
			// reserved: a clear conflict, not a 500.
			return ErrOfferConflict
		}
		if err != nil {
			return err
		}
		if _, err := v.touchRelationship(ctx, tx, req, jwk, now); err != nil {
			return err
		}
		if err := v.st.update(ctx, tx, tOffers, offerID, `status = ?`, OfferAccepted); err != nil {
			return err
		}
		return v.appendAudit(ctx, tx, AuditEntry{Event: EvOfferAccepted, Actor: "owner", ClientID: req.ClientID, ClientName: req.ClientName,
			RequestID: offerID, Scope: policy.Scope(req.AuthorizationDetails), Reason: "intent " + intentID})
	})
	if err != nil {
		return Request{}, err
	}
	return v.GetRequest(ctx, offerID)
}

// offerClaims re-parses a stored offer as of the moment it was signed:
// its freshness and audience were checked when it arrived.
func offerClaims(signed string) (*policy.Offer, error) {
	var c struct {
		IssuedAt int64  `json:"iat"`
		Audience string `json:"aud"`
	}
	if parts := strings.Split(signed, "."); len(parts) == 3 {
		if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			json.Unmarshal(b, &c)
		}
	}
	o, err := policy.ParseOffer(signed, c.Audience, time.Unix(c.IssuedAt, 0))
	if err != nil {
		return nil, ErrTampered.WithDetail("stored offer")
	}
	return o, nil
}

// DeclineOffer says no to an offer.
func (v *Vault) DeclineOffer(ctx context.Context, offerID string) error {
	if !policy.ValidateRecordID(offerID) {
		return ErrOfferNotFound
	}
	return v.db.tx(ctx, func(tx *sql.Tx) error {
		r, err := v.st.row(ctx, tx, tOffers, offerID)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrOfferNotFound
		}
		if err != nil {
			return err
		}
		status, client, name := r.str("status"), r.str("client_id"), r.str("client_name")
		if status != OfferOpen {
			return ErrOfferDecided
		}
		if err := v.st.update(ctx, tx, tOffers, offerID, `status = ?`, OfferDeclined); err != nil {
			return err
		}
		return v.appendAudit(ctx, tx, AuditEntry{Event: EvOfferDeclined, Actor: "owner", ClientID: client, ClientName: name, Reason: "offer " + offerID})
	})
}

// offerPollStatus answers the token endpoint for an offer not yet turned
// into a request: pending while open, denied once declined.
func (v *Vault) offerPollStatus(ctx context.Context, q queryer, id, jkt string, consume func() error) error {
	if !policy.ValidateRecordID(id) {
		return ErrUnknownDeviceCode
	}
	r, err := v.st.row(ctx, q, tOffers, id)
	if isTampered(err) {
		return err
	}
	if err != nil || r.str("client_id") != jkt {
		return ErrUnknownDeviceCode
	}
	if err := consume(); err != nil {
		return err
	}
	if r.str("status") == OfferDeclined {
		return ErrAccessDenied
	}
	return ErrPending
}
