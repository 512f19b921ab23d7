package vault

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/pdvault/pdvault/policy"
)

// Backups. An online backup is SQLite's VACUUM INTO: one consistent
// snapshot of the database, taken on its own connection while the server
// keeps serving (WAL lets it read beside the writer). The copy is a vault
// file like the original — everything in it still sealed — and opens with
// the passphrase that was current when it was taken. Unlike an export it
// needs no passphrase to make: it copies ciphertext, as a file copy would,
// but consistently.

// BackupInfo describes a backup.
type BackupInfo struct {
	Bytes int64 `json:"bytes"`
}

var ErrBackupExists = policy.E(policy.KindExists, "file_exists", "the backup file already exists; backups are never overwritten")

// Backup writes a consistent copy of the vault in dir to out.
func Backup(ctx context.Context, dir, out string) (BackupInfo, error) {
	path := filepath.Join(dir, DBFile)
	if _, err := os.Stat(path); err != nil {
		return BackupInfo{}, ErrNoVault
	}
	if _, err := os.Stat(out); err == nil {
		return BackupInfo{}, ErrBackupExists
	}
	registerDriver()
	db, err := sql.Open(driverName, dsnFor(path, modeSnapshot))
	if err != nil {
		return BackupInfo{}, policy.Internal("open for backup", err)
	}
	defer db.Close()
	tmp := out + ".partial"
	os.Remove(tmp)
	// Created private before SQLite writes a byte into it (VACUUM INTO
	// fills an existing empty file and keeps its mode): the copy is never
	// readable by others, not even for a moment.
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return BackupInfo{}, policy.Wrap(policy.KindUnavailable, "write_failed", "cannot write the backup", err)
	}
	f.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, tmp); err != nil {
		os.Remove(tmp)
		return BackupInfo{}, storageError("backup", err)
	}
	if err := syncFile(tmp); err != nil {
		os.Remove(tmp)
		return BackupInfo{}, policy.Wrap(policy.KindUnavailable, "write_failed", "cannot write the backup", err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		os.Remove(tmp)
		return BackupInfo{}, policy.Wrap(policy.KindUnavailable, "write_failed", "cannot write the backup", err)
	}
	if err := os.Link(tmp, out); err != nil { // fails if out appeared meanwhile: never overwrite
		os.Remove(tmp)
		if errors.Is(err, fs.ErrExist) {
			return BackupInfo{}, ErrBackupExists
		}
		return BackupInfo{}, policy.Wrap(policy.KindUnavailable, "write_failed", "cannot write the backup", err)
	}
	os.Remove(tmp)
	fi, err := os.Stat(out)
	if err != nil {
		return BackupInfo{}, policy.Wrap(policy.KindUnavailable, "write_failed", "cannot write the backup", err)
	}
	return BackupInfo{Bytes: fi.Size()}, nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Restore puts a backup in place as the vault in dir, which must not hold
// one. It first proves the backup: it must open with the passphrase, pass
// SQLite's integrity check, and its audit log must verify. Only then is it
// moved into place.
func Restore(ctx context.Context, file, dir string, passphrase []byte, opts Options) error {
	path := filepath.Join(dir, DBFile)
	if _, err := os.Stat(path); err == nil {
		return ErrVaultExists
	}
	src, err := os.Open(file)
	if err != nil {
		return policy.Wrap(policy.KindNotFound, "not_found", "cannot read the backup file", err)
	}
	defer src.Close()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return policy.Wrap(policy.KindInvalid, "invalid_directory", "cannot create the vault directory", err)
	}
	stage := filepath.Join(dir, ".restoring")
	os.RemoveAll(stage)
	if err := os.Mkdir(stage, 0o700); err != nil {
		return policy.Wrap(policy.KindInvalid, "invalid_directory", "cannot create the vault directory", err)
	}
	defer os.RemoveAll(stage)
	staged := filepath.Join(stage, DBFile)
	dst, err := os.OpenFile(staged, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return policy.Wrap(policy.KindInvalid, "invalid_directory", "cannot write the vault", err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return policy.Wrap(policy.KindUnavailable, "write_failed", "cannot write the vault", err)
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return policy.Wrap(policy.KindUnavailable, "write_failed", "cannot write the vault", err)
	}
	dst.Close()

	v, err := Open(ctx, stage, passphrase, opts)
	if err != nil {
		return err
	}
	res, err := v.IntegrityCheck(ctx)
	if err == nil && res != "ok" {
		err = ErrBadBackup.WithDetail("SQLite integrity check failed")
	}
	if err == nil {
		var rep AuditReport
		if rep, err = v.VerifyAudit(ctx); err == nil && !rep.OK {
			err = ErrBadBackup.WithDetail("its audit log does not verify")
		}
	}
	if err == nil {
		err = v.db.tx(ctx, func(tx *sql.Tx) error {
			return v.appendAudit(ctx, tx, AuditEntry{Event: EvRestored, Actor: "owner", Reason: "restored from a backup"})
		})
	}
	if cerr := v.Close(); err == nil && cerr != nil {
		err = storageError("close", cerr)
	}
	if err != nil {
		return err
	}
	if err := os.Rename(staged, path); err != nil {
		return policy.Wrap(policy.KindUnavailable, "write_failed", "cannot move the restored vault into place", err)
	}
	return nil
}

// ErrBadBackup means a backup file is not a sound vault.
var ErrBadBackup = policy.E(policy.KindInvalid, "invalid_backup", "the backup is not a sound vault")
