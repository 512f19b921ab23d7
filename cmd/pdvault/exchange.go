package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/policy"
)

// Owner commands for the exchange: requests, grants, audit, terms. They
// all talk to a running vault with the owner token.

// ownerCmd is a "pdvault X SUB ..." command that talks to a running vault
// as its owner.
type ownerCmd struct {
	a    *app
	sub  string
	fs   *flag.FlagSet
	rf   remoteFlags
	args []string
}

// ownerCommand reads the subcommand and sets up the flags every owner
// command has (--addr, --token); the caller adds its own to fs, then calls
// start.
func (a *app) ownerCommand(name, usage string, args []string) (*ownerCmd, error) {
	sub, args, err := a.subcommand(name, usage, args)
	if err != nil {
		return nil, err
	}
	fs := a.flags(name+" "+sub, name+" "+sub)
	fs.Usage = func() { fmt.Fprint(a.stdout, usage) }
	return &ownerCmd{a: a, sub: sub, fs: fs, rf: a.remote(fs), args: args}, nil
}

// start parses the flags (anywhere among the arguments) and makes the
// owner client; it returns the positional arguments.
// page adds --limit and --cursor, for a listing.
func (oc *ownerCmd) page() *client.PageQuery {
	var q client.PageQuery
	oc.fs.IntVar(&q.Limit, "limit", 0, "items per page (default 50, at most 500)")
	oc.fs.StringVar(&q.Cursor, "cursor", "", "continue from this cursor")
	return &q
}

// more tells how to get the next page.
func (a *app) more(next, cmd string) {
	if next != "" {
		fmt.Fprintf(a.stderr, "More: pdvault %s --cursor %s\n", cmd, next)
	}
}

func (oc *ownerCmd) start() ([]string, *client.Owner, error) {
	pos, err := oc.a.interleaved(oc.fs, oc.args)
	if err != nil {
		return nil, nil, err
	}
	c, err := oc.a.ownerClient(oc.rf, true)
	if err != nil {
		return nil, nil, err
	}
	return pos, c, nil
}

// needOne returns the single positional argument, or the usage error.
func needOne(pos []string, ue usageError) (string, error) {
	if len(pos) != 1 {
		return "", ue
	}
	return pos[0], nil
}

// subcommand splits "pdvault X sub args" and prints usage for -h.
func (a *app) subcommand(name, usage string, args []string) (string, []string, error) {
	if len(args) == 0 {
		fmt.Fprint(a.stdout, usage)
		return "", nil, usageError{name + " needs a subcommand", `run "pdvault ` + name + ` -h"`}
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(a.stdout, usage)
		return "", nil, flagHelp
	}
	return args[0], args[1:], nil
}

var flagHelp = errors.New("help shown")

const requestsUsage = `Usage:
  pdvault requests list [--status pending|approved|denied|collected|expired] [--json]
  pdvault requests show ID [--json]
  pdvault requests approve ID [--only COLLECTION:FIELD,FIELD ...] [--duration 30d]
  pdvault requests deny ID [--reason TEXT]

approve without --only grants what was asked; each --only keeps one collection
and only the fields named. --duration shortens the grant (90d, 12h, 30m).
Flags: --addr URL (env PDVAULT_ADDR), --token T (env PDVAULT_TOKEN)
`

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func (a *app) cmdRequests(ctx context.Context, args []string) error {
	oc, err := a.ownerCommand("requests", requestsUsage, args)
	if err != nil {
		return err
	}
	sub, fs := oc.sub, oc.fs
	status := fs.String("status", "pending", "which requests to list: pending, approved, denied, collected, expired or all")
	asJSON := fs.Bool("json", false, "print JSON")
	var only listFlag
	fs.Var(&only, "only", "approve only COLLECTION:FIELD,FIELD (repeatable)")
	duration := fs.String("duration", "", "approve for at most this long (e.g. 30d)")
	reason := fs.String("reason", "", "why the request is denied (shown to no one but you)")
	pq := oc.page()
	pos, c, err := oc.start()
	if err != nil {
		return err
	}
	needID := func() (string, error) {
		return needOne(pos, usageError{"requests " + sub + " takes one request ID", `run "pdvault requests -h"`})
	}
	switch sub {
	case "list":
		st := *status
		if st == "all" {
			st = ""
		}
		page, err := c.ListRequests(ctx, st, *pq)
		if err != nil {
			return err
		}
		if *asJSON {
			return a.printJSON(page)
		}
		if page.Dropped > 0 {
			fmt.Fprintf(a.stderr, "%d request(s) were refused since the vault started because too many were pending (a flood?).\n", page.Dropped)
		}
		reqs := page.Requests
		if len(reqs) == 0 {
			fmt.Fprintf(a.stderr, "No %s requests.\n", *status)
			return nil
		}
		defer a.more(page.Next, "requests list --status "+*status)
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATUS\tORGANIZATION\tPURPOSE\tASKS FOR\tFOR\tRECEIVED")
		for _, r := range reqs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Status, r.ClientName, r.Purpose, policy.Scope(r.Details),
				policy.Duration(time.Duration(r.Duration)*time.Second), r.Created.Local().Format("2006-01-02 15:04"))
		}
		return tw.Flush()
	case "show":
		id, err := needID()
		if err != nil {
			return err
		}
		r, err := c.GetRequest(ctx, id)
		if err != nil {
			return err
		}
		if *asJSON {
			return a.printJSON(r)
		}
		a.describeRequest(r)
		return nil
	case "approve":
		id, err := needID()
		if err != nil {
			return err
		}
		var ap client.Approval
		for _, o := range only {
			coll, fields, ok := strings.Cut(o, ":")
			if !ok || coll == "" || fields == "" {
				return usageError{fmt.Sprintf("--only %q: write COLLECTION:FIELD,FIELD", o), "e.g. --only profile:name,email"}
			}
			ap.Details = append(ap.Details, client.Detail(coll, strings.Split(fields, ",")...))
		}
		if *duration != "" {
			d, err := policy.ParseDuration(*duration)
			if err != nil || d <= 0 {
				return usageError{fmt.Sprintf("--duration %q is not a duration", *duration), "write e.g. 30d, 12h or 45m"}
			}
			ap.Duration = int64(time.Duration(d) / time.Second)
		}
		r, err := c.Approve(ctx, id, ap)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "Approved %s for %s: %s for %s.\nThe organization collects the grant at the token endpoint.\n",
			r.ID, r.ClientName, policy.Scope(r.GrantedDetails), policy.Duration(time.Duration(r.GrantedDuration)*time.Second))
		return nil
	case "deny":
		id, err := needID()
		if err != nil {
			return err
		}
		r, err := c.Deny(ctx, id, *reason)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "Denied %s from %s.\n", r.ID, r.ClientName)
		return nil
	}
	return usageError{fmt.Sprintf("unknown requests subcommand %q", sub), "use list, show, approve or deny"}
}

// describeRequest prints a request in plain language.
func (a *app) describeRequest(r client.Request) {
	w := a.stdout
	fmt.Fprintf(w, "Request %s (%s)\n\n", r.ID, r.Status)
	fmt.Fprintf(w, "  Who:       %s, %s\n", r.ClientName, r.ClientURI)
	fmt.Fprintf(w, "  Key:       %s\n", r.ClientID)
	fmt.Fprintf(w, "  Purpose:   %s", r.Purpose)
	if r.PurposeText != "" {
		fmt.Fprintf(w, " (%q)", r.PurposeText)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "  Asks for:")
	for _, d := range r.Details {
		var parts []string
		if len(d.Fields) > 0 {
			parts = append(parts, strings.Join(d.Fields, ", "))
		}
		if len(d.Claims) > 0 {
			parts = append(parts, "claims "+strings.Join(d.Claims, ", "))
		}
		if len(d.Kinds) > 0 {
			parts = append(parts, "kinds "+strings.Join(d.Kinds, ", "))
		}
		fmt.Fprintf(w, "    - %s: %s\n", d.Collection, strings.Join(parts, "; "))
	}
	fmt.Fprintf(w, "  For:       %s\n", policy.Duration(time.Duration(r.Duration)*time.Second))
	if r.Retention != nil {
		fmt.Fprintf(w, "  Keeps it:  %s after the end\n", policy.Duration(time.Duration(*r.Retention)*time.Second))
	}
	fmt.Fprintf(w, "  Terms:     %s (signed by the organization)\n", r.TermsHash)
	fmt.Fprintf(w, "  Received:  %s, open until %s\n", r.Created.Local().Format(time.RFC1123), r.Expires.Local().Format(time.RFC1123))
	if len(r.GrantedDetails) > 0 {
		fmt.Fprintf(w, "  Granted:   %s for %s\n", policy.Scope(r.GrantedDetails), policy.Duration(time.Duration(r.GrantedDuration)*time.Second))
	}
	if r.DenyReason != "" {
		fmt.Fprintf(w, "  Denied:    %s\n", r.DenyReason)
	}
	if r.Status == "pending" {
		fmt.Fprintf(w, "\nDecide with: pdvault requests approve %s [--only COLLECTION:FIELDS] [--duration D]\n         or: pdvault requests deny %s\n", r.ID, r.ID)
	}
}

const grantsUsage = `Usage:
  pdvault grants list [--json]
  pdvault grants revoke ID

Flags: --addr URL (env PDVAULT_ADDR), --token T (env PDVAULT_TOKEN)
`

func (a *app) cmdGrants(ctx context.Context, args []string) error {
	oc, err := a.ownerCommand("grants", grantsUsage, args)
	if err != nil {
		return err
	}
	sub, fs := oc.sub, oc.fs
	asJSON := fs.Bool("json", false, "print JSON")
	pq := oc.page()
	pos, c, err := oc.start()
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		page, err := c.ListGrants(ctx, *pq)
		if err != nil {
			return err
		}
		if *asJSON {
			return a.printJSON(page)
		}
		gs := page.Grants
		defer a.more(page.Next, "grants list")
		if len(gs) == 0 {
			fmt.Fprintln(a.stderr, "No grants.")
			return nil
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATUS\tORGANIZATION\tPURPOSE\tSCOPE\tEXPIRES")
		for _, g := range gs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", g.ID, g.Status, g.ClientName, g.Purpose, policy.Scope(g.Details), g.Expires.Local().Format("2006-01-02 15:04"))
		}
		return tw.Flush()
	case "revoke":
		if len(pos) != 1 {
			return usageError{"grants revoke takes one grant ID", `run "pdvault grants list" to find it`}
		}
		g, err := c.Revoke(ctx, pos[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "Revoked %s (%s). Its next request is refused.\n", g.ID, g.ClientName)
		return nil
	}
	return usageError{fmt.Sprintf("unknown grants subcommand %q", sub), "use list or revoke"}
}

func auditLine(e client.AuditEntry) string {
	who := e.ClientName
	if who == "" {
		who = e.Actor
	}
	s := fmt.Sprintf("%6d  %s  %-32s %-8s %s", e.Seq, time.Unix(e.Time, 0).Local().Format("2006-01-02 15:04:05"), e.Event, e.Outcome, who)
	if e.Collection == "" && len(e.Fields) > 0 {
		s += "  [" + strings.Join(e.Fields, ",") + "]"
	}
	if e.Collection != "" {
		s += "  " + e.Collection
		if len(e.Fields) > 0 {
			s += "[" + strings.Join(e.Fields, ",") + "]"
		}
		if n := len(e.RecordIDs); n > 0 {
			s += " " + plural(int64(n), "record")
		}
	}
	if e.Scope != "" {
		s += "  " + e.Scope
	}
	if e.GrantID != "" {
		s += "  grant " + e.GrantID
	}
	if e.Reason != "" {
		s += "  (" + e.Reason + ")"
	}
	return s
}

const termsUsage = `Usage:
  pdvault terms show [--json]    the terms in force, as organizations read them
  pdvault terms set FILE         replace the terms with a JSON document (docs/terms.md)
  pdvault terms edit             edit the terms in $EDITOR, then set them

Flags: --addr URL (env PDVAULT_ADDR), --token T (env PDVAULT_TOKEN)
`

func (a *app) cmdTerms(ctx context.Context, args []string) error {
	oc, err := a.ownerCommand("terms", termsUsage, args)
	if err != nil {
		return err
	}
	sub, fs := oc.sub, oc.fs
	asJSON := fs.Bool("json", false, "print the JSON document")
	pos, c, err := oc.start()
	if err != nil {
		return err
	}
	set := func(body []byte) error {
		t, err := c.SetTerms(ctx, body)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "Terms set; hash %s. New requests must name this hash; existing grants keep their terms.\n", t.Hash)
		return nil
	}
	switch sub {
	case "show":
		t, err := c.Terms(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return a.printJSON(t.Terms)
		}
		fmt.Fprintf(a.stdout, "%s\nhash: %s\n", t.Text, t.Hash)
		return nil
	case "set":
		if len(pos) != 1 {
			return usageError{"terms set takes one FILE", "pdvault terms show --json > terms.json, edit, then pdvault terms set terms.json"}
		}
		body, err := os.ReadFile(pos[0])
		if err != nil {
			return err
		}
		return set(body)
	case "edit":
		t, err := c.Terms(ctx)
		if err != nil {
			return err
		}
		dir, err := os.MkdirTemp("", "pdvault-terms-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		f := filepath.Join(dir, "terms.json")
		if err := os.WriteFile(f, indentJSON(t.Terms), 0o600); err != nil {
			return err
		}
		editor := a.env("VISUAL", a.env("EDITOR", "vi"))
		cmd := exec.CommandContext(ctx, "sh", "-c", editor+` "$1"`, "editor", f)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, a.stdout, a.stderr
		if err := cmd.Run(); err != nil {
			return hint(fmt.Errorf("the editor failed: %w", err), "set EDITOR to your editor; nothing was changed")
		}
		body, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if string(body) == string(indentJSON(t.Terms)) {
			fmt.Fprintln(a.stderr, "No change.")
			return nil
		}
		return set(body)
	}
	return usageError{fmt.Sprintf("unknown terms subcommand %q", sub), "use show, set or edit"}
}

const relationshipsUsage = `Usage:
  pdvault relationships list [--json]     every organization you deal with
  pdvault relationships show ID [--json]  one organization: keys, domain, requests, grants, reads, notices, receipts
  pdvault relationships verify ID         fetch the organization's published domain challenge now
  pdvault relationships reaccept ID       tell the organization your terms changed

Flags: --addr URL (env PDVAULT_ADDR), --token T (env PDVAULT_TOKEN)
`

func (a *app) cmdRelationships(ctx context.Context, args []string) error {
	oc, err := a.ownerCommand("relationships", relationshipsUsage, args)
	if err != nil {
		return err
	}
	sub, fs := oc.sub, oc.fs
	asJSON := fs.Bool("json", false, "print JSON")
	pq := oc.page()
	pos, c, err := oc.start()
	if err != nil {
		return err
	}
	needID := func() (string, error) {
		return needOne(pos, usageError{"relationships " + sub + " takes one relationship ID", `run "pdvault relationships list" to find it`})
	}
	switch sub {
	case "list":
		page, err := c.ListRelationships(ctx, *pq)
		if err != nil {
			return err
		}
		if *asJSON {
			return a.printJSON(page)
		}
		rs := page.Relationships
		defer a.more(page.Next, "relationships list")
		if len(rs) == 0 {
			fmt.Fprintln(a.stderr, "No relationships yet.")
			return nil
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tORGANIZATION\tDOMAIN\tACTIVE GRANTS\tREADS\tDELETION\tTERMS")
		for _, r := range rs {
			domain := "unverified"
			if r.VerifiedDomain != "" {
				domain = "verified: " + r.VerifiedDomain
			}
			terms := "current"
			if !r.OnCurrentTerms {
				terms = "older"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", r.ID, r.Name, domain, r.ActiveGrants, r.Reads, r.Deletion, terms)
		}
		return tw.Flush()
	case "show":
		id, err := needID()
		if err != nil {
			return err
		}
		r, err := c.GetRelationship(ctx, id)
		if err != nil {
			return err
		}
		if *asJSON {
			return a.printJSON(r)
		}
		a.describeRelationship(r)
		return nil
	case "verify":
		id, err := needID()
		if err != nil {
			return err
		}
		r, err := c.VerifyRelationship(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "%s verified: %s\n", r.Name, r.VerifiedDomain)
		return nil
	case "reaccept":
		id, err := needID()
		if err != nil {
			return err
		}
		if err := c.AskReaccept(ctx, id); err != nil {
			return err
		}
		fmt.Fprintln(a.stdout, "Notice queued: the organization is asked to accept the current terms with a new request.")
		return nil
	}
	return usageError{fmt.Sprintf("unknown relationships subcommand %q", sub), "use list, show, verify or reaccept"}
}

func (a *app) describeRelationship(r client.Relationship) {
	w := a.stdout
	fmt.Fprintf(w, "%s (%s)\n", r.Name, r.URI)
	if r.VerifiedDomain != "" {
		fmt.Fprintf(w, "  verified: %s since %s\n", r.VerifiedDomain, r.VerifiedAt.Local().Format("2006-01-02"))
	} else {
		fmt.Fprintln(w, "  domain not verified")
	}
	fmt.Fprintf(w, "  first contact %s, last %s; %d reads", r.FirstContact.Local().Format("2006-01-02"), r.LastContact.Local().Format("2006-01-02"), r.Reads)
	if r.LastRead != nil {
		fmt.Fprintf(w, ", last %s", r.LastRead.Local().Format("2006-01-02 15:04"))
	}
	fmt.Fprintf(w, "\n  deletion: %s; terms: %s\n", r.Deletion, map[bool]string{true: "current", false: "an older version"}[r.OnCurrentTerms])
	fmt.Fprintln(w, "  keys:")
	for _, k := range r.Keys {
		note := ""
		if k.Rotated {
			note = " (rotated in)"
		}
		fmt.Fprintf(w, "    %s added %s%s\n", k.ClientID, k.Added.Local().Format("2006-01-02"), note)
	}
	fmt.Fprintln(w, "  grants:")
	for _, g := range r.Grants {
		line := fmt.Sprintf("    %s %-8s %s", g.ID, g.Status, policy.Scope(g.Details))
		if g.EndedBy != "" {
			line += " (ended by " + g.EndedBy + ")"
		}
		line += "  deletion " + g.Deletion
		if g.Deadline != nil {
			line += " by " + g.Deadline.Local().Format("2006-01-02")
		}
		fmt.Fprintln(w, line)
	}
	if len(r.Notices) > 0 {
		fmt.Fprintln(w, "  notices:")
		for _, n := range r.Notices {
			line := fmt.Sprintf("    %s %s to %s: %s after %d attempt(s)", n.ID, n.Event, n.URL, n.Status, n.Attempts)
			if n.LastError != "" {
				line += " (" + n.LastError + ")"
			}
			fmt.Fprintln(w, line)
		}
	}
	if len(r.Receipts) > 0 {
		fmt.Fprintln(w, "  deletion receipts:")
		for _, p := range r.Receipts {
			fmt.Fprintf(w, "    grant %s: deleted %s on %s%s\n", p.GrantID, strings.Join(p.Deleted, ", "), p.DeletedAt.Local().Format("2006-01-02"),
				map[bool]string{true: "", false: " (partial)"}[p.Complete])
		}
	}
}

const intentsUsage = `Usage:
  pdvault intents add --title TEXT [--description TEXT] [--category C] [--budget 500EUR] [--region R] [--valid 30d]
  pdvault intents list [--json]             your intents and how many offers each has
  pdvault intents show ID [--json]          one intent and its offers
  pdvault intents close ID                  take it off the feed; open offers are declined
  pdvault intents accept OFFER_ID           turn an offer into an access request (then approve it as usual)
  pdvault intents decline OFFER_ID

An intent states a need to the market without saying who you are: it must not
contain anything from your profile. It is public at /v1/intents and
/v1/intents.atom, signed by a key made for it alone.
Flags: --addr URL (env PDVAULT_ADDR), --token T (env PDVAULT_TOKEN)
`

func (a *app) cmdIntents(ctx context.Context, args []string) error {
	oc, err := a.ownerCommand("intents", intentsUsage, args)
	if err != nil {
		return err
	}
	sub, fs := oc.sub, oc.fs
	asJSON := fs.Bool("json", false, "print JSON")
	title := fs.String("title", "", "what you are looking for (add)")
	desc := fs.String("description", "", "details (add)")
	category := fs.String("category", "", "a category such as bicycles (add)")
	budget := fs.String("budget", "", "the most you will pay, e.g. 500EUR (add)")
	region := fs.String("region", "", "where, coarsely, e.g. Berlin (add)")
	valid := fs.String("valid", "30d", "how long the intent stays open (add)")
	pos, c, err := oc.start()
	if err != nil {
		return err
	}
	needID := func() (string, error) {
		return needOne(pos, usageError{"intents " + sub + " takes one ID", `run "pdvault intents list" to find it`})
	}
	switch sub {
	case "add":
		in := client.IntentInput{Title: *title, Description: *desc, Category: *category, Region: *region, ValidFor: *valid}
		if *budget != "" {
			amount, cur, err := policy.ParseMoney(*budget)
			if err != nil {
				return usageError{err.Error(), "write e.g. --budget 500EUR"}
			}
			in.Budget = &client.Budget{Max: amount, Currency: cur}
		}
		oi, err := c.PublishIntent(ctx, in)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "Published intent %s: %q, open until %s.\n", oi.ID, oi.Title, time.Unix(oi.Expiry, 0).UTC().Format("2006-01-02"))
		return nil
	case "list":
		list, err := c.Intents(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return a.printJSON(list)
		}
		if len(list) == 0 {
			fmt.Fprintln(a.stderr, "No intents.")
			return nil
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATUS\tTITLE\tOFFERS\tUNTIL")
		for _, in := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", in.ID, in.Status, in.Title, len(in.Offers), time.Unix(in.Expiry, 0).UTC().Format("2006-01-02"))
		}
		return tw.Flush()
	case "show":
		id, err := needID()
		if err != nil {
			return err
		}
		in, err := c.Intent(ctx, id)
		if err != nil {
			return err
		}
		if *asJSON {
			return a.printJSON(in)
		}
		fmt.Fprintf(a.stdout, "%s (%s)\n", in.Title, in.Status)
		if in.Description != "" {
			fmt.Fprintf(a.stdout, "  %s\n", in.Description)
		}
		if len(in.Offers) == 0 {
			fmt.Fprintln(a.stdout, "  no offers yet")
		}
		for _, o := range in.Offers {
			price := ""
			if o.Price != nil {
				price = fmt.Sprintf(" for %d %s", o.Price.Amount, o.Price.Currency)
			}
			fmt.Fprintf(a.stdout, "  offer %s (%s) from %s%s: %s\n    needs %s for %s, purpose %s\n", o.ID, o.Status, o.ClientName, price, o.Offer,
				policy.Scope(o.Needs), policy.Duration(time.Duration(o.Duration)*time.Second), o.Purpose)
		}
		return nil
	case "close":
		id, err := needID()
		if err != nil {
			return err
		}
		if _, err := c.CloseIntent(ctx, id); err != nil {
			return err
		}
		fmt.Fprintln(a.stdout, "Closed. It is off the feed and takes no more offers.")
		return nil
	case "accept":
		id, err := needID()
		if err != nil {
			return err
		}
		r, err := c.AcceptOffer(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "Offer accepted: it is now request %s from %s, asking for %s.\nDecide with: pdvault requests approve %s\n",
			r.ID, r.ClientName, policy.Scope(r.Details), r.ID)
		return nil
	case "decline":
		id, err := needID()
		if err != nil {
			return err
		}
		if err := c.DeclineOffer(ctx, id); err != nil {
			return err
		}
		fmt.Fprintln(a.stdout, "Offer declined.")
		return nil
	}
	return usageError{fmt.Sprintf("unknown intents subcommand %q", sub), "use add, list, show, close, accept or decline"}
}

const keysUsage = `Usage:
  pdvault keys status                      the signing key, the keys published, the record key
  pdvault keys rotate [--signing] [--records]
                                           rotate both (default) or one: a new signing key signs from now
                                           on (the old one stays published until its grants end); a new
                                           record key encrypts from now on, and older records are
                                           re-encrypted in the background by the running server
Flags: --addr URL (env PDVAULT_ADDR), --token T (env PDVAULT_TOKEN)
`

func (a *app) cmdKeys(ctx context.Context, args []string) error {
	oc, err := a.ownerCommand("keys", keysUsage, args)
	if err != nil {
		return err
	}
	sub, fs := oc.sub, oc.fs
	signing := fs.Bool("signing", false, "rotate the signing key")
	records := fs.Bool("records", false, "rotate the record-encryption key")
	_, c, err := oc.start()
	if err != nil {
		return err
	}
	switch sub {
	case "status":
		st, err := c.KeyStatus(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "signing key: %s\npublished:   %s\nrecord key:  %d (%s still under older keys)\n",
			st.SigningKey, strings.Join(st.PublishedKeys, ", "), st.RecordKeyID, plural(int64(st.RecordsToRewrite), "record"))
		if len(st.UnreadableRecords) > 0 {
			fmt.Fprintf(a.stdout, "unreadable:  %s (failed their integrity check; left as they are: restore them from a backup)\n", strings.Join(st.UnreadableRecords, ", "))
		}
		return nil
	case "rotate":
		if !*signing && !*records {
			*signing, *records = true, true
		}
		res, err := c.RotateKeys(ctx, *signing, *records)
		if err != nil {
			return err
		}
		if res.SigningKey != "" {
			fmt.Fprintf(a.stdout, "New signing key %s; %s stays published until the grants it signed have ended.\n", res.SigningKey, res.RetiredKey)
		}
		if res.RecordKeyID != 0 {
			fmt.Fprintf(a.stdout, "New record key %d; %s will be re-encrypted in the background.\n", res.RecordKeyID, plural(int64(res.RecordsToRewrite), "record"))
		}
		return nil
	}
	return usageError{fmt.Sprintf("unknown keys subcommand %q", sub), "use status or rotate"}
}
