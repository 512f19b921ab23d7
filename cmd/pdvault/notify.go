package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"
)

const notifyUsage = `Usage:
  pdvault notify add ntfy URL [--ntfy-token T]         an ntfy topic URL (https://ntfy.sh/your-secret-topic)
  pdvault notify add webhook URL                       a signed webhook (Standard Webhooks); prints the secret once
  pdvault notify add email --smtp-host H [--smtp-port 587] [--smtp-tls starttls|implicit]
                     [--smtp-user U] --from ADDR --to ADDR  (password: env PDVAULT_SMTP_PASSWORD)
  pdvault notify add webpush --subscription FILE       a browser's PushSubscription JSON (endpoint, keys)
  pdvault notify list [--json]                         channels, deliveries and the last failure
  pdvault notify test ID                               send a test message now
  pdvault notify remove ID

You hear about: a request or offer arriving, a request about to expire
undecided, a notice that did not reach an organization, an audit log that does
not verify, repeated wrong passphrases. Messages say who asks for what and link
to the decision page; they never carry your records.
Flags: --addr URL (env PDVAULT_ADDR), --token T (env PDVAULT_TOKEN)
`

func (a *app) cmdNotify(ctx context.Context, args []string) error {
	oc, err := a.ownerCommand("notify", notifyUsage, args)
	if err != nil {
		return err
	}
	fs := oc.fs
	asJSON := fs.Bool("json", false, "print JSON (list)")
	token := fs.String("ntfy-token", "", "ntfy access token (add ntfy)")
	host := fs.String("smtp-host", "", "SMTP server (add email)")
	port := fs.Int("smtp-port", 0, "SMTP port (default 587, 465 with --smtp-tls implicit)")
	tlsMode := fs.String("smtp-tls", "starttls", "starttls or implicit")
	user := fs.String("smtp-user", "", "SMTP user name")
	from := fs.String("from", "", "sender address (add email)")
	to := fs.String("to", "", "your address (add email)")
	subFile := fs.String("subscription", "", "file with the browser's PushSubscription JSON (add webpush)")
	name := fs.String("name", "", "a name for the channel")
	pos, c, err := oc.start()
	if err != nil {
		return err
	}
	switch oc.sub {
	case "add":
		if len(pos) == 0 {
			return usageError{"notify add needs a kind: ntfy, webhook, email or webpush", `run "pdvault notify -h"`}
		}
		cfg := map[string]any{"kind": pos[0], "name": *name}
		switch pos[0] {
		case "ntfy", "webhook":
			if len(pos) != 2 {
				return usageError{"notify add " + pos[0] + " takes one URL", ""}
			}
			cfg["url"] = pos[1]
			if *token != "" {
				cfg["token"] = *token
			}
		case "email":
			cfg["smtp"] = map[string]any{"host": *host, "port": *port, "tls": *tlsMode, "username": *user,
				"password": a.getenv("PDVAULT_SMTP_PASSWORD"), "from": *from, "to": *to}
		case "webpush":
			b, err := os.ReadFile(*subFile)
			if err != nil {
				return usageError{"notify add webpush needs --subscription FILE: " + err.Error(), ""}
			}
			cfg["push"] = json.RawMessage(b)
		default:
			return usageError{fmt.Sprintf("unknown channel kind %q", pos[0]), "ntfy, webhook, email or webpush"}
		}
		body, _ := json.Marshal(cfg)
		ch, err := c.AddChannel(ctx, body)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "Added %s channel %s (%s).\n", ch.Kind, ch.ID, ch.Target)
		if ch.Secret != "" {
			fmt.Fprintf(a.stdout, "Signing secret (shown once; give it to the receiver): %s\n", ch.Secret)
		}
		fmt.Fprintf(a.stdout, "Try it: pdvault notify test %s\n", ch.ID)
		return nil
	case "list":
		list, err := c.Channels(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return a.printJSON(list)
		}
		if len(list) == 0 {
			fmt.Fprintln(a.stdout, "No notification channels. Add one: pdvault notify add ntfy https://ntfy.sh/TOPIC")
			return nil
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tKIND\tTARGET\tDELIVERED\tPENDING\tFAILED\tLAST PROBLEM")
		for _, ch := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", ch.ID, ch.Kind, ch.Target, ch.Delivered, ch.Pending, ch.Failed, ch.LastError)
		}
		return tw.Flush()
	case "test", "remove":
		id, err := needOne(pos, usageError{"notify " + oc.sub + " takes one ID", `run "pdvault notify list" to find it`})
		if err != nil {
			return err
		}
		if oc.sub == "test" {
			if err := c.TestChannel(ctx, id); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, "Test message queued; see pdvault notify list for the outcome.")
			return nil
		}
		if err := c.RemoveChannel(ctx, id); err != nil {
			return err
		}
		fmt.Fprintln(a.stdout, "Removed.")
		return nil
	}
	return usageError{fmt.Sprintf("unknown notify command %q", oc.sub), `run "pdvault notify -h"`}
}
