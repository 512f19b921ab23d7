package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pdvault/pdvault/vault"
)

func (a *app) cmdInit(ctx context.Context, args []string) error {
	fs := a.flags("init", "init [--dir DIR] [--passphrase-file FILE]")
	dir := fs.String("dir", a.defaultDir(), "directory for the new vault (env PDVAULT_DIR)")
	pfile := fs.String("passphrase-file", "", "read the passphrase from this file instead of prompting")
	if err := a.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"init takes no arguments", "use --dir DIR"}
	}
	// Refuse before asking for a passphrase the user would type for nothing.
	if _, err := os.Stat(filepath.Join(*dir, vault.DBFile)); err == nil {
		return hint(vault.ErrVaultExists, "nothing was changed; to start over, move "+*dir+" away first")
	}
	pass, err := a.readPassphrase(passphraseSource{file: *pfile, envName: "PDVAULT_PASSPHRASE", prompt: "New passphrase", confirm: true})
	if err != nil {
		return err
	}
	v, err := vault.Create(ctx, *dir, pass, vault.Options{})
	if errors.Is(err, vault.ErrVaultExists) {
		return hint(err, "nothing was changed; to start over, move "+*dir+" away first")
	}
	if err != nil {
		return err
	}
	defer v.Close()
	fmt.Fprintf(a.stdout, "Created vault %s in %s\nStart it with: pdvault serve --dir %s\n", v.ID(), *dir, *dir)
	return nil
}

// openVault unlocks the vault in dir with a passphrase from the usual
// sources.
// It returns the passphrase too, for commands that need it again.
func (a *app) openVault(ctx context.Context, dir, pfile string, opts vault.Options) (*vault.Vault, []byte, error) {
	if _, err := os.Stat(filepath.Join(dir, vault.DBFile)); err != nil {
		return nil, nil, hint(vault.ErrNoVault, "create one with: pdvault init --dir "+dir)
	}
	pass, err := a.readPassphrase(passphraseSource{file: pfile, envName: "PDVAULT_PASSPHRASE", prompt: "Passphrase"})
	if err != nil {
		return nil, nil, err
	}
	v, err := vault.Open(ctx, dir, pass, opts)
	if errors.Is(err, vault.ErrWrongPassphrase) {
		return nil, nil, hint(err, "nothing was changed; check the passphrase and try again")
	}
	return v, pass, err
}

func (a *app) cmdPassphrase(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "change" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(a.stdout, "Usage: pdvault passphrase change [--dir DIR] [--passphrase-file OLD] [--new-passphrase-file NEW]")
			return nil
		}
		return usageError{"usage: pdvault passphrase change", "the only subcommand is change"}
	}
	fs := a.flags("passphrase change", "passphrase change [--dir DIR] [--passphrase-file OLD] [--new-passphrase-file NEW]")
	dir := fs.String("dir", a.defaultDir(), "vault directory (env PDVAULT_DIR)")
	pfile := fs.String("passphrase-file", "", "read the current passphrase from this file (or env PDVAULT_PASSPHRASE)")
	nfile := fs.String("new-passphrase-file", "", "read the new passphrase from this file (or env PDVAULT_NEW_PASSPHRASE)")
	if err := a.parse(fs, args[1:]); err != nil {
		return err
	}
	v, old, err := a.openVault(ctx, *dir, *pfile, vault.Options{})
	if err != nil {
		return err
	}
	defer v.Close()
	newPass, err := a.readPassphrase(passphraseSource{file: *nfile, envName: "PDVAULT_NEW_PASSPHRASE", prompt: "New passphrase", confirm: true})
	if err != nil {
		return err
	}
	if err := v.ChangePassphrase(ctx, old, newPass); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout, "Passphrase changed. The old passphrase no longer unlocks this vault.")
	return nil
}

func (a *app) cmdExport(ctx context.Context, args []string) error {
	fs := a.flags("export", "export [--dir DIR] --out FILE")
	dir := fs.String("dir", a.defaultDir(), "vault directory (env PDVAULT_DIR); a running server may keep serving")
	out := fs.String("out", "", "file to write (required; never overwritten)")
	fs.StringVar(out, "o", "", "short for --out")
	pfile := fs.String("passphrase-file", "", "read the passphrase from this file (or env PDVAULT_PASSPHRASE)")
	if err := a.parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageError{"--out FILE is required", "pdvault export --out backup.pdv"}
	}
	v, _, err := a.openVault(ctx, *dir, *pfile, vault.Options{})
	if err != nil {
		return err
	}
	defer v.Close()
	// Write beside the target and rename, so a failed export never leaves
	// a file that looks complete.
	tmp := *out + ".partial"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("cannot create %s: %w", tmp, err)
	}
	st, err := v.Export(ctx, f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if _, serr := os.Stat(*out); serr == nil {
			err = hint(fmt.Errorf("%s already exists", *out), "choose another --out; exports are never overwritten")
		} else {
			err = os.Rename(tmp, *out)
		}
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	fmt.Fprintf(a.stdout, "Exported %s (%d rows in %d tables) to %s\nRestore with: pdvault import --dir NEWDIR %s\n", plural(st.Records, "record"), st.Rows, st.Tables, *out, *out)
	return nil
}

func (a *app) cmdImport(ctx context.Context, args []string) error {
	fs := a.flags("import", "import --dir NEWDIR FILE")
	dir := fs.String("dir", "", "directory for the restored vault (required; must not hold a vault)")
	pfile := fs.String("passphrase-file", "", "the passphrase that was current at export (or env PDVAULT_PASSPHRASE)")
	if err := a.parse(fs, args); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() != 1 {
		return usageError{"usage: pdvault import --dir NEWDIR FILE", "NEWDIR must not already hold a vault"}
	}
	if _, err := os.Stat(filepath.Join(*dir, vault.DBFile)); err == nil {
		return hint(vault.ErrVaultExists, "import restores into a new directory; nothing was changed")
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	pass, err := a.readPassphrase(passphraseSource{file: *pfile, envName: "PDVAULT_PASSPHRASE", prompt: "Passphrase of the exported vault"})
	if err != nil {
		return err
	}
	st, err := vault.Import(ctx, f, *dir, pass, vault.Options{})
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Restored %s (%d rows in %d tables) into %s\n", plural(st.Records, "record"), st.Rows, st.Tables, *dir)
	if st.Format == 1 {
		fmt.Fprintln(a.stderr, "pdvault: warning: this export is in the old format (v1), whose frames can be spliced between two exports made under the same passphrase; it was accepted because its log verifies. Make a new export now: pdvault export --out FILE")
	}
	return nil
}

func (a *app) cmdBackup(ctx context.Context, args []string) error {
	fs := a.flags("backup", "backup [--dir DIR] --out FILE")
	dir := fs.String("dir", a.defaultDir(), "vault directory (env PDVAULT_DIR); the server may keep serving")
	out := fs.String("out", "", "file to write (required; never overwritten)")
	fs.StringVar(out, "o", "", "short for --out")
	if err := a.parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageError{"--out FILE is required", "pdvault backup --out vault-backup.db"}
	}
	info, err := vault.Backup(ctx, *dir, *out)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Backed up %s to %s (%d bytes, one consistent snapshot).\nRestore with: pdvault restore --dir NEWDIR %s\n", *dir, *out, info.Bytes, *out)
	return nil
}

func (a *app) cmdRestore(ctx context.Context, args []string) error {
	fs := a.flags("restore", "restore --dir NEWDIR FILE")
	dir := fs.String("dir", "", "directory for the restored vault (required; must not hold a vault)")
	pfile := fs.String("passphrase-file", "", "the passphrase that was current at the backup (or env PDVAULT_PASSPHRASE)")
	if err := a.parse(fs, args); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() != 1 {
		return usageError{"usage: pdvault restore --dir NEWDIR FILE", "NEWDIR must not already hold a vault"}
	}
	if _, err := os.Stat(filepath.Join(*dir, vault.DBFile)); err == nil {
		return hint(vault.ErrVaultExists, "restore into a new directory; nothing was changed")
	}
	pass, err := a.readPassphrase(passphraseSource{file: *pfile, envName: "PDVAULT_PASSPHRASE", prompt: "Passphrase of the backed-up vault"})
	if err != nil {
		return err
	}
	if err := vault.Restore(ctx, fs.Arg(0), *dir, pass, vault.Options{}); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Restored into %s: it opens with the passphrase, passes the integrity check, and its audit log verifies.\n", *dir)
	return nil
}
