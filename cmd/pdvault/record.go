package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/policy"
)

// remoteFlags adds --addr and --token to a command that talks to a running
// vault.
type remoteFlags struct {
	addr, token *string
}

func (a *app) remote(fs *flag.FlagSet) remoteFlags {
	return remoteFlags{
		addr:  fs.String("addr", a.env("PDVAULT_ADDR", "http://"+DefaultAddr), "vault URL (env PDVAULT_ADDR)"),
		token: fs.String("token", "", "owner token (env PDVAULT_TOKEN)"),
	}
}

func (a *app) ownerClient(rf remoteFlags, needToken bool) (*client.Owner, error) {
	tok := *rf.token
	if tok == "" {
		tok = a.getenv("PDVAULT_TOKEN")
	}
	if needToken && tok == "" {
		return nil, hint(errors.New("no owner token"), "set PDVAULT_TOKEN (serve --dev prints one; pdvault login makes one) or pass --token")
	}
	c, err := client.NewOwner(*rf.addr, tok, nil)
	if err != nil {
		return nil, usageError{err.Error(), "pass --addr http://HOST:PORT"}
	}
	return c, nil
}

func (a *app) cmdLogin(ctx context.Context, args []string) error {
	fs := a.flags("login", "login [--addr URL] [--passphrase-file FILE]")
	rf := remoteFlags{addr: fs.String("addr", a.env("PDVAULT_ADDR", "http://"+DefaultAddr), "vault URL (env PDVAULT_ADDR)"), token: new(string)}
	pfile := fs.String("passphrase-file", "", "read the passphrase from this file (or env PDVAULT_PASSPHRASE)")
	if err := a.parse(fs, args); err != nil {
		return err
	}
	c, err := a.ownerClient(rf, false)
	if err != nil {
		return err
	}
	pass, err := a.readPassphrase(passphraseSource{file: *pfile, envName: "PDVAULT_PASSPHRASE", prompt: "Passphrase"})
	if err != nil {
		return err
	}
	devFile := a.deviceFile(rf)
	if b, err := os.ReadFile(devFile); err == nil {
		c.Device = strings.TrimSpace(string(b))
	}
	tok, exp, err := c.Login(ctx, string(pass))
	if err != nil {
		return err
	}
	// The device token keeps this machine out of the global login
	// throttle next time (docs/security.md).
	if c.Device != "" {
		if err := os.MkdirAll(filepath.Dir(devFile), 0o700); err == nil {
			os.WriteFile(devFile, []byte(c.Device+"\n"), 0o600)
		}
	}
	fmt.Fprintf(a.stderr, "Logged in; the token expires in %s. The line below sets PDVAULT_TOKEN; run eval \"$(pdvault login)\" to set it in this shell.\n", exp)
	fmt.Fprintf(a.stdout, "export PDVAULT_TOKEN=%s\n", tok)
	return nil
}

const recordUsage = `Usage:
  pdvault record put COLLECTION [ID] (JSON | -)   create (no ID) or replace a record; - reads stdin
  pdvault record get COLLECTION ID
  pdvault record list COLLECTION [--limit N] [--cursor C] [--all]
  pdvault record delete COLLECTION ID

Flags (any subcommand): --addr URL (env PDVAULT_ADDR), --token T (env PDVAULT_TOKEN)
put and delete also take --if-version N: act only if the record is at version N.
`

func (a *app) cmdRecord(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(a.stdout, recordUsage)
		if len(args) == 0 {
			return usageError{"record needs a subcommand", "put, get, list or delete"}
		}
		return nil
	}
	sub, args := args[0], args[1:]
	fs := a.flags("record "+sub, "record "+sub+" ...")
	fs.Usage = func() { fmt.Fprint(a.stdout, recordUsage) }
	rf := a.remote(fs)
	ifVersion := fs.Int64("if-version", 0, "only if the record is at this version")
	limit := fs.Int("limit", 0, "records per page (list)")
	cursor := fs.String("cursor", "", "continue a listing from this cursor (list)")
	all := fs.Bool("all", false, "follow cursors to list every record (list)")
	// Flags may come before or after the positional arguments.
	pos, err := a.interleaved(fs, args)
	if err != nil {
		return err
	}
	c, err := a.ownerClient(rf, true)
	if err != nil {
		return err
	}
	want := func(n ...int) error {
		for _, k := range n {
			if len(pos) == k {
				return nil
			}
		}
		return usageError{fmt.Sprintf("record %s: wrong number of arguments", sub), `run "pdvault record -h"`}
	}
	switch sub {
	case "put":
		if err := want(2, 3); err != nil {
			return err
		}
		data, err := a.recordData(pos[len(pos)-1])
		if err != nil {
			return err
		}
		// Checked here first, so a typo is shown where it is and nothing
		// is sent; the vault checks again.
		var probe any
		if err := json.Unmarshal(data, &probe); err != nil {
			return hint(policy.BadJSON(data, err), "nothing was sent; a record is a JSON object, e.g. '{\"name\":\"Alex\"}' (quote it for the shell)")
		}
		var r client.Record
		if len(pos) == 2 {
			r, err = c.CreateRecord(ctx, pos[0], data)
		} else {
			r, err = c.UpdateRecord(ctx, pos[0], pos[1], data, *ifVersion)
		}
		if err != nil {
			return err
		}
		return a.printJSON(r)
	case "get":
		if err := want(2); err != nil {
			return err
		}
		r, err := c.GetRecord(ctx, pos[0], pos[1])
		if err != nil {
			return err
		}
		return a.printJSON(r)
	case "list":
		if err := want(1); err != nil {
			return err
		}
		p, err := c.ListRecords(ctx, pos[0], *limit, *cursor)
		if err != nil {
			return err
		}
		for *all && p.NextCursor != "" {
			next, err := c.ListRecords(ctx, pos[0], *limit, p.NextCursor)
			if err != nil {
				return err
			}
			p.Records = append(p.Records, next.Records...)
			p.NextCursor = next.NextCursor
		}
		return a.printJSON(p)
	case "delete":
		if err := want(2); err != nil {
			return err
		}
		if err := c.DeleteRecord(ctx, pos[0], pos[1], *ifVersion); err != nil {
			return err
		}
		fmt.Fprintf(a.stderr, "Deleted %s/%s\n", pos[0], pos[1])
		return nil
	}
	return usageError{fmt.Sprintf("unknown record subcommand %q", sub), "use put, get, list or delete"}
}

// recordData reads the record from the argument, or from stdin for "-".
func (a *app) recordData(arg string) ([]byte, error) {
	if arg == "-" {
		b, err := io.ReadAll(io.LimitReader(a.stdin, 16<<20))
		if err != nil {
			return nil, fmt.Errorf("reading stdin: %w", err)
		}
		return b, nil
	}
	if strings.HasPrefix(arg, "@") {
		return os.ReadFile(arg[1:])
	}
	return []byte(arg), nil
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
