package vault

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"time"

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

// VerifyBackup proves that the file at path is a sound copy of this
// vault without its passphrase: SQLite's integrity check passes, the
// file's metadata authenticates under this vault's keys (so it is this
// vault, unaltered), and its audit log verifies. The file is opened
// read-only and immutable: verifying changes no byte of it.
func (v *Vault) VerifyBackup(ctx context.Context, path string) error {
	if v.closed.Load() {
		return ErrLocked
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return ErrBadBackup.WithCause(err)
	}
	registerDriver()
	db, err := sql.Open(driverName, (&url.URL{Scheme: "file", Path: abs, RawQuery: "mode=ro&immutable=1"}).String())
	if err != nil {
		return ErrBadBackup.WithCause(err)
	}
	defer db.Close()
	errDamaged := ErrBadBackup.WithDetail("SQLite integrity check failed: not a database, or damaged")
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return errDamaged
	}
	defer tx.Rollback()
	var res string
	if err := tx.QueryRowContext(ctx, `PRAGMA integrity_check(1)`).Scan(&res); err != nil || res != "ok" {
		return errDamaged
	}
	m, err := loadMeta(ctx, tx)
	if err != nil || m.vaultID != v.id {
		return ErrBadBackup.WithDetail("it is not a copy of this vault")
	}
	if _, err := v.st.row(ctx, tx, tMeta, 1); err != nil {
		return ErrBadBackup.WithDetail("its metadata does not authenticate under this vault's keys")
	}
	rep, err := v.verifyAudit(ctx, tx)
	if err != nil || !rep.OK {
		return ErrBadBackup.WithDetail("its audit log does not verify")
	}
	return nil
}

// BackupSchedule is serve's --backup-dir/--backup-every/--backup-keep.
type BackupSchedule struct {
	Dir   string
	Every time.Duration
	Keep  int
}

// EventBackupFailed tells the owner a scheduled backup was not made.
const EventBackupFailed = "backup.failed"

// backupName is how scheduled backups are named: the UTC time they were
// taken, so that names sort by age and retention touches nothing else.
const backupLayout = "pdvault-20060102T150405Z.db"

// RunBackups takes a backup every s.Every into s.Dir, verifies it, and
// keeps the newest s.Keep. The first is due s.Every after the newest one
// already there (at once if there is none), so restarts neither skip nor
// repeat backups. A backup that fails or does not verify is removed and
// the owner is told.
func (v *Vault) RunBackups(ctx context.Context, s BackupSchedule) {
	for {
		names, _ := scheduledBackups(s.Dir)
		if wait := backupDue(names, s.Every, v.opts.Now()); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err := v.scheduledBackup(ctx, s); err != nil {
			if ctx.Err() != nil {
				return
			}
			v.counters.backedUp(v.opts.Now(), false)
			v.log.Error("scheduled backup failed", "dir", s.Dir, "err", err)
			v.Notify(ctx, Notification{Event: EventBackupFailed, Title: "pdvault: a scheduled backup failed",
				Body: "The backup into " + s.Dir + " failed: " + policy.MessageOf(err) + ". The next attempt is in " + backupRetry.String() + ".",
				Link: v.Issuer() + "/ui/"})
			select {
			case <-ctx.Done():
				return
			case <-time.After(backupRetry):
			}
		}
	}
}

// backupRetry is how soon a failed scheduled backup is tried again.
var backupRetry = 15 * time.Minute

func (v *Vault) scheduledBackup(ctx context.Context, s BackupSchedule) error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return policy.Wrap(policy.KindUnavailable, "write_failed", "cannot create the backup directory", err)
	}
	out := filepath.Join(s.Dir, v.opts.Now().UTC().Format(backupLayout))
	info, err := Backup(ctx, v.dir, out)
	if err != nil {
		return err
	}
	if err := v.VerifyBackup(ctx, out); err != nil {
		os.Remove(out)
		return err
	}
	v.counters.backedUp(v.opts.Now(), true)
	v.log.Info("backup", "file", out, "bytes", info.Bytes)
	names, err := scheduledBackups(s.Dir)
	if err != nil {
		return nil // made and verified; pruning waits for the next one
	}
	for len(names) > max(s.Keep, 1) {
		if err := os.Remove(filepath.Join(s.Dir, names[0])); err != nil {
			v.log.Warn("cannot remove an old backup", "file", names[0], "err", err)
		}
		names = names[1:]
	}
	return nil
}

// backupDue is how long until the next scheduled backup, given those
// already in the directory (oldest first).
func backupDue(names []string, every time.Duration, now time.Time) time.Duration {
	if len(names) == 0 {
		return 0
	}
	t, _ := time.Parse(backupLayout, names[len(names)-1])
	return max(t.Add(every).Sub(now), 0)
}

// scheduledBackups lists the scheduled backups in dir, oldest first.
func scheduledBackups(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if _, err := time.Parse(backupLayout, e.Name()); err == nil && e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}
