package policy

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"
)

// Intentcasting: the owner states a need to the market ("looking for a
// bicycle, up to 500 EUR, in Berlin") without saying who they are, and
// organizations answer with signed offers.

const (
	TypIntent = "pdvault-intent+jwt"
	TypOffer  = "pdvault-offer+jwt"
)

// Budget is the most the owner will pay, in whole units of a currency.
type Budget struct {
	Max      int64  `json:"max"`
	Currency string `json:"currency"` // ISO 4217
}

// IntentInput is what the owner writes.
type IntentInput struct {
	Title       string  `json:"title"`
	Description string  `json:"description,omitempty"`
	Category    string  `json:"category,omitempty"`
	Budget      *Budget `json:"budget,omitempty"`
	Region      string  `json:"region,omitempty"`
	ValidFor    string  `json:"valid_for,omitempty"` // a Duration; default 30d
}

// Intent is the public, signed form: nothing in it points at the owner.
type Intent struct {
	ID          string  `json:"id"`
	Title       string  `json:"title"`
	Description string  `json:"description,omitempty"`
	Category    string  `json:"category,omitempty"`
	Budget      *Budget `json:"budget,omitempty"`
	Region      string  `json:"region,omitempty"`
	IssuedAt    int64   `json:"iat"`
	Expiry      int64   `json:"exp"`
}

var (
	ErrInvalidIntent = E(KindInvalid, "invalid_intent", "the intent is not valid")
	categoryRE       = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,40}$`)
	currencyRE       = regexp.MustCompile(`^[A-Z]{3}$`)
)

const (
	defaultIntentLife = 30 * 24 * time.Hour
	maxIntentLife     = 365 * 24 * time.Hour
)

// CheckIntent validates what the owner wrote and returns how long the
// intent lives.
func CheckIntent(in IntentInput) (time.Duration, error) {
	var r []string
	if n := utf8.RuneCountInString(strings.TrimSpace(in.Title)); n == 0 || n > 120 {
		r = append(r, "title: 1 to 120 characters")
	}
	if utf8.RuneCountInString(in.Description) > 2000 {
		r = append(r, "description: at most 2000 characters")
	}
	if in.Category != "" && !categoryRE.MatchString(in.Category) {
		r = append(r, "category: lowercase letters, digits, '_' or '-', e.g. bicycles")
	}
	if in.Budget != nil && (in.Budget.Max < 0 || in.Budget.Max > 1e12 || !currencyRE.MatchString(in.Budget.Currency)) {
		r = append(r, "budget: a whole, non-negative max and an ISO 4217 currency such as EUR")
	}
	if utf8.RuneCountInString(in.Region) > 100 {
		r = append(r, "region: at most 100 characters")
	}
	life := defaultIntentLife
	if in.ValidFor != "" {
		d, err := ParseDuration(in.ValidFor)
		if err != nil || d <= 0 || time.Duration(d) > maxIntentLife {
			r = append(r, "valid_for: a duration up to 365d, e.g. 30d")
		} else {
			life = time.Duration(d)
		}
	}
	if len(r) > 0 {
		return 0, ErrInvalidIntent.WithReasons(r)
	}
	return life, nil
}

// PersonalData finds which of the owner's own values appear in text, so an
// intent meant to be anonymous does not carry a name, an e-mail address or
// a street. values maps a field name to the owner's value; only field names
// are reported.
func PersonalData(text string, values map[string]string) []string {
	low := strings.ToLower(text)
	var hits []string
	for field, v := range values {
		v = strings.ToLower(strings.TrimSpace(v))
		if utf8.RuneCountInString(v) >= 4 && strings.Contains(low, v) {
			hits = append(hits, field)
		}
	}
	sort.Strings(hits)
	return hits
}

// SignIntent signs the public intent with the intent's own key, embedded in
// the header: no key the vault uses elsewhere, so intents cannot be linked
// to each other or to the vault by their signatures.
func SignIntent(priv ed25519.PrivateKey, in Intent) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: priv},
		(&jose.SignerOptions{EmbedJWK: true}).WithType(TypIntent))
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(in)
	if err != nil {
		return "", err
	}
	obj, err := signer.Sign(b)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

// VerifyIntent checks a signed intent against its embedded key and
// returns it with the key's thumbprint (the intent's identity).
func VerifyIntent(tok string) (*Intent, string, error) {
	var in Intent
	_, jkt, err := parseOrgSigned(tok, TypIntent, MaxReceiptLen, &in, ErrInvalidIntent)
	if err != nil {
		return nil, "", err
	}
	return &in, jkt, nil
}

// Price is what an offer costs.
type Price struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// OfferClaims are an organization's signed answer to an intent: what it
// offers, and the access request it would need, under the owner's terms.
type OfferClaims struct {
	RequestClaims
	IntentID string `json:"intent_id"`
	Offer    string `json:"offer"`
	Price    *Price `json:"price,omitempty"`
}

// UnmarshalJSON reads the offer's own members, then the rest as request
// claims (whose UnmarshalJSON would otherwise be promoted and refuse the
// offer's members as unknown).
func (o *OfferClaims) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	own := map[string]json.RawMessage{}
	for _, k := range []string{"intent_id", "offer", "price"} {
		if v, ok := m[k]; ok {
			own[k] = v
			delete(m, k)
		}
	}
	var w struct {
		IntentID string `json:"intent_id"`
		Offer    string `json:"offer"`
		Price    *Price `json:"price,omitempty"`
	}
	ob, _ := json.Marshal(own)
	dec := json.NewDecoder(bytes.NewReader(ob))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return err
	}
	rest, _ := json.Marshal(m)
	if err := o.RequestClaims.UnmarshalJSON(rest); err != nil {
		return err
	}
	o.IntentID, o.Offer, o.Price = w.IntentID, w.Offer, w.Price
	return nil
}

// Offer is a verified offer.
type Offer struct {
	OfferClaims
	ClientID string
	Key      *jose.JSONWebKey
}

// MaxOfferLen bounds an offer.
const MaxOfferLen = 16 << 10

var (
	ErrInvalidOffer  = E(KindInvalid, "invalid_offer", "the offer is not valid")
	ErrOfferTooLarge = E(KindTooLarge, "offer_too_large", "the offer is larger than 16 KiB")
)

// ParseOffer verifies an offer like a request object: signature by the
// embedded key, type, freshness, audience and the shape of every claim.
func ParseOffer(tok, issuer string, now time.Time) (*Offer, error) {
	if len(tok) > MaxOfferLen {
		return nil, ErrOfferTooLarge
	}
	var c OfferClaims
	key, jkt, err := parseOrgSigned(tok, TypOffer, MaxOfferLen, &c, ErrInvalidOffer)
	if err != nil {
		return nil, err
	}
	if err := checkFreshness(now, c.IssuedAt, c.Expiry, nonEmpty(c.Audience), issuer, ErrInvalidOffer); err != nil {
		return nil, err
	}
	r := c.RequestClaims.problems(jkt)
	if !idRE.MatchString(c.IntentID) {
		r = append(r, "intent_id: required")
	}
	if n := utf8.RuneCountInString(strings.TrimSpace(c.Offer)); n == 0 || n > 2000 {
		r = append(r, "offer: describe the offer in 1 to 2000 characters")
	}
	if c.Price != nil && (c.Price.Amount < 0 || !currencyRE.MatchString(c.Price.Currency)) {
		r = append(r, "price: a non-negative amount and an ISO 4217 currency")
	}
	if len(r) > 0 {
		return nil, ErrInvalidOffer.WithReasons(r)
	}
	return &Offer{OfferClaims: c, ClientID: jkt, Key: key}, nil
}

// AccessRequest turns an accepted offer into the access request it
// carries.
func (o *Offer) AccessRequest() *AccessRequest {
	return &AccessRequest{RequestClaims: o.RequestClaims, ClientID: o.ClientID, Key: o.Key}
}

// String describes a budget for people.
func (b *Budget) String() string {
	if b == nil {
		return ""
	}
	return fmt.Sprintf("up to %d %s", b.Max, b.Currency)
}

// ParseMoney reads an amount and a currency written together, "450EUR" or
// "450 EUR", for the command-line tools.
func ParseMoney(s string) (int64, string, error) {
	s = strings.ReplaceAll(strings.TrimSpace(s), " ", "")
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	bad := fmt.Errorf("%q is not an amount and a currency, e.g. 450EUR", s)
	if i <= 0 || len(s)-i != 3 {
		return 0, "", bad
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	cur := strings.ToUpper(s[i:])
	if err != nil || !currencyRE.MatchString(cur) {
		return 0, "", bad
	}
	return n, cur, nil
}
