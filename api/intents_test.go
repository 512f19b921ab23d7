package api

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

func bikeIntent() policy.IntentInput {
	return policy.IntentInput{Title: "Looking for: a city bicycle", Description: "28 inch, with lights", Category: "bicycles",
		Budget: &policy.Budget{Max: 500, Currency: "EUR"}, Region: "Berlin", ValidFor: "30d"}
}

func bikeOffer(intentID string) client.OfferClaims {
	var c client.OfferClaims
	c.IntentID = intentID
	c.Offer = "A new city bike, 28 inch, with dynamo lights, delivered"
	c.Price = &client.Price{Amount: 450, Currency: "EUR"}
	c.ClientName, c.ClientURI, c.Purpose, c.Duration = "Acme Bikes", "https://bikes.example", "service_delivery", 7*24*3600
	c.AuthorizationDetails = []client.AuthorizationDetail{client.Detail("profile", "name", "address")}
	return c
}

// The whole story: an intent with no personal data, signed by a key of its
// own; an offer; acceptance makes an ordinary request; the owner approves;
// the organization reads what the offer needed.
func TestIntentToOfferToRequest(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.record("profile", `{"name":"Alex Example","email":"alex@example.org","address":{"street":"Musterstrasse 1","city":"Berlin"}}`)
	oi, err := e.v.PublishIntent(ctx, bikeIntent())
	if err != nil {
		t.Fatal(err)
	}
	second, _ := e.v.PublishIntent(ctx, policy.IntentInput{Title: "Looking for: a piano teacher"})

	o := e.org("EdDSA")
	list, err := o.Intents(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("feed: %+v %v", list, err)
	}
	jwks, _ := o.JWKS(ctx)
	keys := map[string]bool{jwks.Keys[0].KeyID: true}
	for _, in := range list {
		got, jkt, err := policy.VerifyIntent(in.Signed)
		if err != nil || got.ID != in.ID || got.Title != in.Title {
			t.Fatalf("intent signature: %+v %v", got, err)
		}
		if keys[jkt] {
			t.Fatal("two intents, or an intent and the vault, share a key")
		}
		keys[jkt] = true
	}
	raw := e.do("GET", "/v1/intents", "", nil)
	for _, leak := range []string{"Alex", "Musterstrasse", "alex@", e.v.ID(), jwks.Keys[0].KeyID} {
		if strings.Contains(string(raw.body), leak) {
			t.Fatalf("the public feed holds %q", leak)
		}
	}

	// The Atom feed carries the same signed intents.
	r := e.do("GET", "/v1/intents.atom", "", nil)
	var feed struct {
		Entries []struct {
			ID      string `xml:"id"`
			Title   string `xml:"title"`
			Content string `xml:"content"`
		} `xml:"entry"`
	}
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/atom+xml") || xml.Unmarshal(r.body, &feed) != nil || len(feed.Entries) != 2 {
		t.Fatalf("atom: %d %s", r.status, r.body)
	}
	if _, err := client.VerifyIntent(feed.Entries[1].Content); err != nil || feed.Entries[1].ID != "urn:pdvault:intent:"+oi.ID {
		t.Fatalf("atom entry: %+v %v", feed.Entries[1], err)
	}

	tk, err := o.SendOffer(ctx, bikeOffer(oi.ID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Poll(ctx, tk.OfferID); !client.IsCode(err, "authorization_pending") {
		t.Fatalf("poll before acceptance: %v", err)
	}
	seen, _ := e.v.OwnerIntent(ctx, oi.ID)
	if len(seen.Offers) != 1 || seen.Offers[0].Price.Amount != 450 || seen.Offers[0].ClientName != "Acme Bikes" {
		t.Fatalf("owner's view: %+v", seen.Offers)
	}
	r = e.do("POST", "/v1/owner/offers/"+tk.OfferID+"/accept", e.token, nil)
	if r.status != 200 {
		t.Fatalf("accept: %d %s", r.status, r.body)
	}
	var req vault.Request
	r.json(t, &req)
	if req.ID != tk.OfferID || req.Status != vault.StatusPending || policy.Scope(req.Details) != "profile:name,address" || req.TermsHash != e.v.CurrentTerms().Hash {
		t.Fatalf("request from the offer: %+v", req)
	}
	if r := e.do("POST", "/v1/owner/offers/"+tk.OfferID+"/accept", e.token, nil); r.status != 409 || r.errCode(t) != "already_decided" {
		t.Fatalf("second accept: %d %s", r.status, r.body)
	}
	if _, err := e.v.Approve(ctx, req.ID, vault.Approval{}); err != nil {
		t.Fatal(err)
	}
	tok, err := o.Poll(ctx, tk.OfferID)
	if err != nil {
		t.Fatal(err)
	}
	page, err := o.ReadCollection(ctx, tok.AccessToken, "profile", 0, "")
	if err != nil || len(page.Records[0].Data) != 2 || page.Records[0].Data["email"] != nil {
		t.Fatalf("read: %+v %v", page, err)
	}

	// Closing an intent takes it off the feed and declines open offers.
	o2 := e.org("EdDSA")
	tk2, _ := o2.SendOffer(ctx, bikeOffer(second.ID))
	if r := e.do("POST", "/v1/owner/intents/"+second.ID+"/close", e.token, nil); r.status != 200 {
		t.Fatalf("close: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/intents/"+second.ID, "", nil); r.status != 410 || r.errCode(t) != "intent_closed" {
		t.Fatalf("closed intent: %d %s", r.status, r.body)
	}
	if _, err := o2.Poll(ctx, tk2.OfferID); !client.IsCode(err, "access_denied") {
		t.Fatalf("poll on a declined offer: %v", err)
	}
	_, err = o2.SendOffer(ctx, bikeOffer(second.ID))
	var ce *client.Error
	if !errorsAs(err, &ce) || ce.Status != 410 || ce.Code != "intent_closed" {
		t.Fatalf("offer to a closed intent: %v", err)
	}
	if list, _ := o.Intents(ctx); len(list) != 1 {
		t.Fatalf("feed after closing: %d", len(list))
	}
}

func TestIntentBadInput(t *testing.T) {
	e := newEnv(t)
	e.record("profile", `{"name":"Alex Example","email":"alex@example.org","address":{"street":"Musterstrasse 1"}}`)
	for _, tc := range []struct {
		name, body, code, reason string
	}{
		{"names the owner", `{"title":"Alex Example wants a bike"}`, "personal_data", "profile's name"},
		{"carries the street", `{"title":"bike","description":"deliver to Musterstrasse 1"}`, "personal_data", "profile's address.street"},
		{"no title", `{"title":" "}`, "invalid_intent", "title:"},
		{"bad budget", `{"title":"bike","budget":{"max":-1,"currency":"euro"}}`, "invalid_intent", "budget:"},
		{"too long", `{"title":"bike","valid_for":"400d"}`, "invalid_intent", "valid_for:"},
		{"unknown member", `{"title":"bike","owner":"me"}`, "invalid_request", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/v1/owner/intents", e.token, strings.NewReader(tc.body))
			if r.status != 400 || r.errCode(t) != tc.code || !strings.Contains(string(r.body), tc.reason) {
				t.Fatalf("%d %s", r.status, r.body)
			}
		})
	}
	if list, _ := e.v.ListIntents(t.Context()); len(list) != 0 {
		t.Fatalf("bad intents were published: %d", len(list))
	}
}

func TestOfferAbuse(t *testing.T) {
	e := newEnvWith(t, vault.Options{OffersPerKey: 2, OffersPerAddress: 4})
	ctx := t.Context()
	oi, _ := e.v.PublishIntent(ctx, bikeIntent())
	o := e.org("EdDSA")

	big := bikeOffer(oi.ID)
	big.Offer = strings.Repeat("x", 1900)
	big.PurposeText = strings.Repeat("y", 990)
	for range 6 {
		big.AuthorizationDetails = append(big.AuthorizationDetails, client.Detail("c"+strings.Repeat("x", 50)+big.IntentID[:3], strings.Split(strings.Repeat("field_with_a_long_name_for_padding,", 90), ",")[:90]...))
	}
	signedBig, _ := o.Key().Sign(policy.TypOffer, big)
	r := e.do("POST", "/v1/intents/"+oi.ID+"/offers", "", strings.NewReader(signedBig))
	if len(signedBig) <= policy.MaxOfferLen || r.status != 413 || r.errCode(t) != "offer_too_large" {
		t.Fatalf("oversized offer (%d bytes): %d %s", len(signedBig), r.status, r.body)
	}

	bad := bikeOffer(oi.ID)
	bad.Purpose = "advertising"
	_, err := o.SendOffer(ctx, bad)
	var ce *client.Error
	if !errorsAs(err, &ce) || ce.Status != 422 || ce.Code != "terms_violation" {
		t.Fatalf("non-compliant offer: %v", err)
	}
	wrongIntent := bikeOffer("aaaaaaaaaaaaaaaaaaaaaaaaaa")
	signed, _ := o.Key().Sign(policy.TypOffer, withFresh(wrongIntent, e))
	if r := e.do("POST", "/v1/intents/"+oi.ID+"/offers", "", strings.NewReader(signed)); r.status != 400 || r.errCode(t) != "invalid_offer" {
		t.Fatalf("offer for another intent: %d %s", r.status, r.body)
	}
	// The key has spent its two offers (the refused ones count too).
	_, err = o.SendOffer(ctx, bikeOffer(oi.ID))
	if !errorsAs(err, &ce) || ce.Status != 429 || ce.Code != "rate_limited" || ce.RetryAfter <= 0 {
		t.Fatalf("third offer from one key: %v", err)
	}
	// The address has spent 4: another key from it is refused too.
	if _, err := e.org("EdDSA").SendOffer(ctx, bikeOffer(oi.ID)); !client.IsCode(err, "rate_limited") {
		t.Fatalf("offer beyond the address's limit: %v", err)
	}
	if r := e.do("POST", "/v1/intents/"+oi.ID+"/offers", "", strings.NewReader("junk")); r.status != 429 {
		t.Fatalf("junk beyond the address's limit: %d", r.status)
	}
}

// withFresh fills what SendOffer would.
func withFresh(c client.OfferClaims, e *testEnv) client.OfferClaims {
	c.TermsHash = e.v.CurrentTerms().Hash
	c.IssuedAt = timeNow().Unix()
	c.ID = "fresh-" + c.IntentID
	for i := range c.AuthorizationDetails {
		c.AuthorizationDetails[i].Type = policy.DetailType
	}
	return c
}

func timeNow() time.Time { return time.Now() }
