package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/pdvault/pdvault/api/client"
)

const docsUsage = `Usage:
  pdvault docs add FILE... [--title T] [--kind K] [--date YYYY-MM-DD] [--counterparty C] [--type MEDIA/TYPE]
                           keep files (contracts, payslips, scans) encrypted in the vault
  pdvault docs list        list documents (id, kind, date, size, title)
  pdvault docs get ID -o FILE
                           write a document's bytes to FILE ("-o -": standard output)
  pdvault docs delete ID   remove a document, its description and its bytes

Each document is sealed with a key of its own as it streams in; nothing of it
is written in the clear. Organizations see a document only if a grant names
the "documents" collection, and its bytes only if the grant names the field
"content". See docs/vocabulary.md and docs/api.md.
`

func (a *app) cmdDocs(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(a.stdout, docsUsage)
		if len(args) == 0 {
			return usageError{"docs needs a subcommand", `run "pdvault docs -h"`}
		}
		return flagHelp
	}
	switch args[0] {
	case "add":
		return a.docsAdd(ctx, args[1:])
	case "list":
		return a.docsList(ctx, args[1:])
	case "get":
		return a.docsGet(ctx, args[1:])
	case "delete":
		return a.docsDelete(ctx, args[1:])
	}
	return usageError{fmt.Sprintf("unknown docs subcommand %q", args[0]), `run "pdvault docs -h"`}
}

// interleaved parses flags that may come before, between or after the
// positional arguments, and returns the positional ones in order. An
// argument that looks like a flag but names none and is as long as an id
// (a relationship's id is a base64url thumbprint, and 1 in 64 begins with
// "-") is positional: "relationships show -DT99..." must not fail as an
// unknown flag. "--" ends the flags.
func (a *app) interleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		t := args[i]
		if t == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(t) < 2 || t[0] != '-' {
			pos = append(pos, t)
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(t, "-"), "=")
		f := fs.Lookup(name)
		if f == nil && len(name) >= minIDLen && name != "help" {
			pos = append(pos, t)
			continue
		}
		flags = append(flags, t)
		if f == nil || hasValue {
			continue // an unknown flag is the parser's to refuse
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !(ok && b.IsBoolFlag()) && i+1 < len(args) {
			i++
			flags = append(flags, args[i]) // the flag's value, whatever it looks like
		}
	}
	if err := a.parse(fs, flags); err != nil {
		return nil, err
	}
	return append(pos, fs.Args()...), nil
}

// minIDLen is the shortest id the vault hands out (16 random bytes in
// base64url); no flag name is that long.
const minIDLen = 20

func (a *app) docsAdd(ctx context.Context, args []string) error {
	fs := a.flags("docs add", "docs add FILE... [--title T] [--kind K] [--date YYYY-MM-DD] [--counterparty C] [--type MEDIA/TYPE]")
	rf := a.remote(fs)
	title := fs.String("title", "", "a title (default: none; the file name is kept anyway)")
	kind := fs.String("kind", "", "what it is, a lower-case word: contract, payslip, invoice, letter, statement, certificate, scan, ...")
	date := fs.String("date", "", "the document's own date, YYYY-MM-DD")
	cp := fs.String("counterparty", "", "who it is with or from")
	mt := fs.String("type", "", "media type, e.g. application/pdf (default: from the file's first bytes or its name)")
	files, err := a.interleaved(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usageError{"docs add needs at least one FILE", `run "pdvault docs add -h"`}
	}
	c, err := a.ownerClient(rf, true)
	if err != nil {
		return err
	}
	var failed int
	for _, path := range files {
		rec, err := a.addOne(ctx, c, path, client.DocumentOptions{Title: *title, Kind: *kind, Date: *date, Counterparty: *cp, MediaType: *mt})
		if err != nil {
			failed++
			a.fail(err)
			continue
		}
		m, _ := rec.Meta()
		fmt.Fprintf(a.stdout, "%s: added %s (%s, %d bytes)\n", path, rec.ID, m.EncodingFormat, m.ContentSize)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d files not added", failed, len(files))
	}
	return nil
}

// addOne streams one file to the vault as a document; the vault checks
// it against the digest.
func (a *app) addOne(ctx context.Context, c *client.Owner, path string, opt client.DocumentOptions) (rec client.Record, err error) {
	err = a.sendFile(path, func(body io.Reader, name string, sum []byte, _ *progress) error {
		opt.FileName, opt.SHA256 = name, sum
		if rec, err = c.AddDocument(ctx, body, opt); err != nil {
			return fmt.Errorf("%s: %w", path, err) // the vault's answer does not name the file
		}
		return nil
	})
	return rec, err
}

func (a *app) docsList(ctx context.Context, args []string) error {
	fs := a.flags("docs list", "docs list [--json]")
	rf := a.remote(fs)
	asJSON := fs.Bool("json", false, "print the metadata records as JSON")
	if err := a.parse(fs, args); err != nil {
		return err
	}
	c, err := a.ownerClient(rf, true)
	if err != nil {
		return err
	}
	var all []client.Record
	cursor := ""
	for {
		p, err := c.Documents(ctx, 500, cursor)
		if err != nil {
			return err
		}
		all = append(all, p.Records...)
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	// Titles and file names may come from files others made: shown
	// through the terminal-safe writer.
	sa := a.safe()
	if *asJSON {
		return sa.printJSON(all)
	}
	for _, r := range all {
		m, _ := r.Meta()
		title := m.Title
		if title == "" {
			title = m.FileName
		}
		fmt.Fprintf(sa.stdout, "%s  %-10s %-10s %10d  %s\n", r.ID, orDash(m.Kind), orDash(m.Date), m.ContentSize, title)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (a *app) docsGet(ctx context.Context, args []string) error {
	fs := a.flags("docs get", "docs get ID -o FILE")
	rf := a.remote(fs)
	out := fs.String("o", "", `file to write (never overwritten); "-" for standard output`)
	pos, err := a.interleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		return usageError{"docs get needs one ID and -o FILE", `run "pdvault docs get -h"`}
	}
	c, err := a.ownerClient(rf, true)
	if err != nil {
		return err
	}
	if *out == "-" {
		// The bytes as they are: docs is not behind the terminal-safe
		// writer for this reason.
		_, err := c.DocumentContent(ctx, pos[0], a.stdout)
		return err
	}
	// Written beside the target and linked into place only when whole:
	// a cut-off download never looks like the document.
	tmp, err := os.CreateTemp(filepath.Dir(*out), ".pdvault-doc-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	n, err := c.DocumentContent(ctx, pos[0], tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), *out); err != nil {
		if errors.Is(err, os.ErrExist) {
			return hint(fmt.Errorf("%s exists", *out), "documents are never written over a file; choose another name")
		}
		return err
	}
	fmt.Fprintf(a.stdout, "%s: %d bytes\n", *out, n)
	return nil
}

func (a *app) docsDelete(ctx context.Context, args []string) error {
	fs := a.flags("docs delete", "docs delete ID")
	rf := a.remote(fs)
	pos, err := a.interleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"docs delete needs one ID", `run "pdvault docs delete -h"`}
	}
	c, err := a.ownerClient(rf, true)
	if err != nil {
		return err
	}
	if err := c.DeleteDocument(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "deleted %s\n", pos[0])
	return nil
}
