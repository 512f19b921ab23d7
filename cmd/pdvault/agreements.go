package main

import (
	"context"
	"fmt"
	"os"
)

const agreementsUsage = `Usage:
  pdvault agreements export ID [-o FILE]

An IEEE 7012 agreement record's dispute bundle, as JSON: the organization's
signed request (its answer to the agreements you proffer), the vault's
countersigned record, the SHA-256 of the agreement text, and the audit
entry that logged the exchange with its inclusion proof in a signed tree
head — everything a third party needs to check it without your vault. The
record's ID is in "pdvault requests show" (agreement) and in the grant.
-o writes a new file (never overwrites); the default is standard output.

Flags: --addr URL (env PDVAULT_ADDR), --token T (env PDVAULT_TOKEN)
`

func (a *app) cmdAgreements(ctx context.Context, args []string) error {
	oc, err := a.ownerCommand("agreements", agreementsUsage, args)
	if err != nil {
		return err
	}
	out := oc.fs.String("o", "", "write the bundle to this new file")
	pos, c, err := oc.start()
	if err != nil {
		return err
	}
	if oc.sub != "export" {
		return usageError{fmt.Sprintf("unknown agreements subcommand %q", oc.sub), `run "pdvault agreements -h"`}
	}
	if len(pos) != 1 {
		return usageError{"agreements export takes one agreement record ID", `run "pdvault requests show ID" to find it`}
	}
	b, err := c.ExportAgreement(ctx, pos[0])
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = fmt.Fprintf(a.stdout, "%s\n", b)
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("%s: %w", *out, err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		os.Remove(*out)
		return err
	}
	return f.Close()
}
