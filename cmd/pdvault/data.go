package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/pdvault/pdvault/api/client"
)

const dataUsage = `Usage:
  pdvault data import FILE... [--format F] [--collection C] [--map K=V,...] [--dry-run] [--discard-original]
                              import files you got from banks, doctors, address books
  pdvault data formats        list the importers

Each file is imported whole or not at all; items imported before (from this
file or an earlier export of the same account) are counted as duplicates and
not added again. Every record keeps its provenance: importer, file name, the
file's SHA-256 and the item's place in it. The file itself is kept, encrypted,
as a document of kind "import" (what the importer does not map is not lost);
--discard-original drops it once the records are in. See docs/importers.md.
`

func (a *app) cmdData(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(a.stdout, dataUsage)
		if len(args) == 0 {
			return usageError{"data needs a subcommand", `run "pdvault data -h"`}
		}
		return flagHelp
	}
	switch args[0] {
	case "import":
		return a.dataImport(ctx, args[1:])
	case "formats":
		return a.dataFormats(ctx, args[1:])
	}
	return usageError{fmt.Sprintf("unknown data subcommand %q", args[0]), `run "pdvault data -h"`}
}

func (a *app) dataFormats(ctx context.Context, args []string) error {
	fs := a.flags("data formats", "data formats [--addr URL]")
	rf := a.remote(fs)
	if err := a.parse(fs, args); err != nil {
		return err
	}
	c, err := a.ownerClient(rf, true)
	if err != nil {
		return err
	}
	fmts, err := c.ImportFormats(ctx)
	if err != nil {
		return err
	}
	for _, f := range fmts {
		fmt.Fprintf(a.stdout, "%-10s %-12s %s (%v)\n", f.Name, fmt.Sprint(f.Collections), f.Description, f.Extensions)
	}
	return nil
}

func (a *app) dataImport(ctx context.Context, args []string) error {
	fs := a.flags("data import", "data import FILE... [--format F] [--collection C] [--dry-run]")
	rf := a.remote(fs)
	format := fs.String("format", "", "importer to use (pdvault data formats); default: detected from each file's content")
	coll := fs.String("collection", "", "collection to put the records in (default: the importer's, e.g. contacts)")
	dry := fs.Bool("dry-run", false, "parse and count, keep nothing")
	discard := fs.Bool("discard-original", false, "do not keep the file itself as an encrypted document once its records are in")
	mapping := fs.String("map", "", "importer options, e.g. for CSV: date=Buchungstag,amount=Betrag,decimal=comma,dateformat=02.01.2006,encoding=windows-1252")
	// Flags may follow the files.
	files, err := a.interleaved(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usageError{"data import needs at least one FILE", `run "pdvault data import -h"`}
	}
	c, err := a.ownerClient(rf, true)
	if err != nil {
		return err
	}
	var failed int
	for _, path := range files {
		res, err := a.importOne(ctx, c, path, client.ImportOptions{Format: *format, Collection: *coll, DryRun: *dry, DiscardOriginal: *discard, Map: *mapping})
		if err != nil {
			failed++
			a.fail(err) // the vault's message names the file
			continue
		}
		verb := "added"
		if res.DryRun {
			verb = "would add"
		}
		kept := ""
		if res.Document != "" {
			kept = ", original kept as document " + res.Document
		}
		fmt.Fprintf(a.stdout, "%s: %d %s, %d duplicates (%s -> %s, %d bytes%s)\n",
			path, res.Added, verb, res.Duplicates, res.Format, res.Collection, res.Bytes, kept)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d files not imported; nothing from them was kept", failed, len(files))
	}
	return nil
}

// importPoll is how often a running import is asked how far it is.
const importPoll = 200 * time.Millisecond

// importOne streams one file to the vault, then follows the import until
// it ends; the vault's own message names the file.
func (a *app) importOne(ctx context.Context, c *client.Owner, path string, opt client.ImportOptions) (res client.ImportResult, err error) {
	err = a.sendFile(path, func(body io.Reader, name string, sum []byte, p *progress) error {
		opt.Name = name
		j, err := c.StartImport(ctx, body, sum, opt)
		if err != nil {
			return err
		}
		if p != nil {
			p.phase("importing")
		}
		for j.Running() {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(importPoll):
			}
			if j, err = c.ImportJob(ctx, j.ID); err != nil {
				return err
			}
			if p != nil {
				p.update(j.Bytes, j.Items)
			}
		}
		if j.Error != nil {
			return j.Error
		}
		if j.Result == nil {
			return fmt.Errorf("%s: the vault reported the import %s without a result", name, safeString(j.State))
		}
		res = *j.Result
		return nil
	})
	return res, err
}

// sendFile hashes a file, then streams it to send, with a progress line
// on a terminal: the digest goes first, so that the vault can check what
// it got (and an import's provenance can name it). Errors of the file
// itself name it; send's are returned as they are.
func (a *app) sendFile(path string, send func(body io.Reader, name string, sum []byte, p *progress) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, errors.Unwrap(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if st.IsDir() {
		return fmt.Errorf("%s: is a directory", path)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	name := filepath.Base(path)
	var (
		body io.Reader = f
		p    *progress
	)
	if a.tty != nil {
		p = newProgress(f, a.tty, name, st.Size(), time.Now)
		defer p.clear()
		body = p
	}
	return send(body, name, h.Sum(nil), p)
}
