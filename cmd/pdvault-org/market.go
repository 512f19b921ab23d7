package main

import (
	"context"
	"fmt"
	"time"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/policy"
)

// intents prints the vault's open intents, each checked against its own
// signature.
func (c *cli) intents(ctx context.Context, args []string) error {
	cm := c.flags("intents")
	if _, err := cm.parse(args); err != nil {
		return err
	}
	o, err := cm.org(false)
	if err != nil {
		return err
	}
	list, err := o.Intents(ctx)
	if err != nil {
		return err
	}
	for _, in := range list {
		signed, err := client.VerifyIntent(in.Signed)
		if err != nil || signed.ID != in.ID || signed.Title != in.Title {
			fmt.Fprintf(c.stderr, "pdvault-org: skipping intent %s: its signature does not match\n", in.ID)
			continue
		}
		fmt.Fprintf(c.stdout, "%s  %s", in.ID, signed.Title)
		if signed.Budget != nil {
			fmt.Fprintf(c.stdout, " (%s)", signed.Budget)
		}
		if signed.Region != "" {
			fmt.Fprintf(c.stdout, " in %s", signed.Region)
		}
		fmt.Fprintf(c.stdout, ", until %s\n", time.Unix(signed.Expiry, 0).UTC().Format("2006-01-02"))
		if signed.Description != "" {
			fmt.Fprintf(c.stdout, "    %s\n", signed.Description)
		}
	}
	if len(list) == 0 {
		fmt.Fprintln(c.stderr, "No open intents.")
	}
	return nil
}

// offer answers an intent with a signed offer and the access it needs.
func (c *cli) offer(ctx context.Context, args []string) error {
	cm := c.flags("offer")
	intent := cm.fs.String("intent", "", "the intent id (required)")
	text := cm.fs.String("text", "", "what you offer (required)")
	price := cm.fs.String("price", "", "the price, e.g. 450EUR")
	name := cm.fs.String("name", "", "organization name (required)")
	uri := cm.fs.String("url", "", "organization URL, https (required)")
	purpose := cm.fs.String("purpose", "service_delivery", "a purpose id from the owner's terms")
	dur := cm.fs.String("duration", "7d", "how long you would need the data")
	var ask askFlag
	cm.fs.Var(&ask, "ask", "COLLECTION:FIELD,FIELD the offer needs (repeatable, required)")
	if _, err := cm.parse(args); err != nil {
		return err
	}
	if *intent == "" || *text == "" || *name == "" || *uri == "" || len(ask) == 0 {
		return usageError{"--intent, --text, --name, --url and at least one --ask are required"}
	}
	d, err := policy.ParseDuration(*dur)
	if err != nil {
		return usageError{err.Error()}
	}
	var oc client.OfferClaims
	oc.IntentID, oc.Offer = *intent, *text
	oc.ClientName, oc.ClientURI, oc.Purpose, oc.AuthorizationDetails = *name, *uri, *purpose, ask
	oc.Duration = int64(time.Duration(d) / time.Second)
	if *price != "" {
		amount, cur, err := policy.ParseMoney(*price)
		if err != nil {
			return usageError{"price: " + err.Error()}
		}
		oc.Price = &client.Price{Amount: amount, Currency: cur}
	}
	o, err := cm.org(true)
	if err != nil {
		return err
	}
	t, err := o.SendOffer(ctx, oc)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, t.OfferID)
	fmt.Fprintf(c.stderr, "Offer sent. If the owner accepts and approves it: pdvault-org poll%s --wait %s\n", cm.again(c), t.OfferID)
	return nil
}

// claims reads the derived claims a grant covers.
func (c *cli) claims(ctx context.Context, args []string) error {
	return c.withGrant("claims", args, func(o *client.Org, grant string) error {
		res, err := o.ReadClaims(ctx, grant)
		if err != nil {
			return err
		}
		return c.printJSON(res)
	})
}
