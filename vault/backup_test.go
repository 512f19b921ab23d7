package vault

import (
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pdvault/pdvault/policy"
)

func TestScheduledBackupsVerifyAndKeep(t *testing.T) {
	v, _, c := newTestVault(t)
	ctx := t.Context()
	s := BackupSchedule{Dir: filepath.Join(t.TempDir(), "backups"), Every: time.Hour, Keep: 2}
	var made []string
	for range 3 {
		if _, err := v.CreateRecord(ctx, "profile", []byte(`{"name":"Alex"}`)); err != nil {
			t.Fatal(err)
		}
		if err := v.scheduledBackup(ctx, s); err != nil {
			t.Fatalf("scheduledBackup: %v", err)
		}
		made = append(made, c.Now().UTC().Format(backupLayout))
		c.Add(time.Hour)
	}
	names, err := scheduledBackups(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, made[1:]) {
		t.Fatalf("kept %v, want the newest two of %v", names, made)
	}
	for _, n := range names {
		fi, err := os.Stat(filepath.Join(s.Dir, n))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("backup %s: %v mode %v, want 0600", n, err, fi.Mode())
		}
	}
	if st, _ := v.Stats(ctx); !st.LastBackupOK || st.LastBackup.IsZero() {
		t.Fatalf("stats after a good backup: %+v", st)
	}
	// Files that are not scheduled backups are never pruned or counted.
	other := filepath.Join(s.Dir, "keep-me.db")
	if err := os.WriteFile(other, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := v.scheduledBackup(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("a file that is not a scheduled backup was removed: %v", err)
	}

	// The next one is due Every after the newest, whatever time it is now.
	names, _ = scheduledBackups(s.Dir)
	if d := backupDue(names, time.Hour, c.Now().Add(20*time.Minute)); d != 40*time.Minute {
		t.Fatalf("due in %v, want 40m", d)
	}
	if d := backupDue(nil, time.Hour, c.Now()); d != 0 {
		t.Fatalf("with no backup, due in %v, want at once", d)
	}
	if d := backupDue(names, time.Hour, c.Now().Add(3*time.Hour)); d != 0 {
		t.Fatalf("overdue backup due in %v, want at once", d)
	}
}

func TestVerifyBackupRefusesTamperedAndForeign(t *testing.T) {
	v, dir, _ := newTestVault(t)
	ctx := t.Context()
	if _, err := v.CreateRecord(ctx, "profile", []byte(`{"name":"Alex"}`)); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(t.TempDir(), "good.db")
	if _, err := Backup(ctx, dir, good); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(good)
	if err := v.VerifyBackup(ctx, good); err != nil {
		t.Fatalf("a fresh backup does not verify: %v", err)
	}
	after, _ := os.ReadFile(good)
	if !slices.Equal(before, after) {
		t.Fatal("verifying a backup changed it")
	}

	tamper := func(name, stmt string) string {
		p := filepath.Join(t.TempDir(), name)
		if _, err := Backup(ctx, dir, p); err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open(driverName, p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
		db.Close()
		return p
	}
	bad := func(path, why string) {
		t.Helper()
		err := v.VerifyBackup(ctx, path)
		wantErr(t, err, ErrBadBackup)
		if !strings.Contains(policy.MessageOf(err), why) {
			t.Fatalf("%s: %q, want it to say %q", filepath.Base(path), policy.MessageOf(err), why)
		}
	}
	bad(tamper("edited.db", `UPDATE audit SET entry = replace(entry, '"owner"', '"someone"')`), "audit log does not verify")
	bad(tamper("meta.db", `UPDATE meta SET record_key_id = record_key_id + 1`), "does not authenticate")

	_, odir, _ := newTestVault(t)
	foreign := filepath.Join(t.TempDir(), "foreign.db")
	if _, err := Backup(ctx, odir, foreign); err != nil {
		t.Fatal(err)
	}
	bad(foreign, "not a copy of this vault")

	garbage := filepath.Join(t.TempDir(), "garbage.db")
	os.WriteFile(garbage, []byte("not a database"), 0o600)
	bad(garbage, "integrity check")
}
