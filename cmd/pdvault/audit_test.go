package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

// grow appends n entries to a stopped vault's audit log (each published
// intent is one), tagged so two histories differ.
func grow(t *testing.T, dir, tag string, n int) {
	t.Helper()
	v, err := vault.Open(t.Context(), dir, []byte(testPass), vault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for i := range n {
		if _, err := v.PublishIntent(t.Context(), policy.IntentInput{Title: fmt.Sprintf("Looking for: %s %d", tag, i)}); err != nil {
			t.Fatal(err)
		}
	}
}

// The CLI keeps the signed tree head of each log it verified, and refuses
// a later log that does not extend it: a whole older copy of the file put
// back (consistent in itself, so the vault alone cannot tell) and a
// rewritten history are both caught.
func TestAuditVerifyAnchorsCatchRollbackAndFork(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "v")
	anchors := t.TempDir()
	c := &cli{t: t, env: map[string]string{"PDVAULT_PASSPHRASE": testPass, "PDVAULT_ANCHORS": anchors}}
	expect(t, c.run("init", "--dir", dir), 0, "")
	grow(t, dir, "a", 3)
	old, err := os.ReadFile(filepath.Join(dir, vault.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	grow(t, dir, "a", 3)

	r := c.run("audit", "verify", "--dir", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "ok: 7 entries") || !strings.Contains(r.stdout, "kept the signed tree head (size 7)") {
		t.Fatalf("first verify: %+v", r)
	}
	grow(t, dir, "a", 2)
	r = c.run("audit", "verify", "--dir", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "consistent with the tree head kept") || !strings.Contains(r.stdout, "now keeping size 9") {
		t.Fatalf("second verify: %+v", r)
	}
	// A backup file verifies offline too, and is held against the same anchor.
	bk := filepath.Join(t.TempDir(), "b.db")
	expect(t, c.run("backup", "--dir", dir, "--out", bk), 0, "")
	expect(t, c.run("audit", "verify", "--dir", bk), 0, "")

	// The whole file rolled back to an older copy.
	if err := os.WriteFile(filepath.Join(dir, vault.DBFile), old, 0o600); err != nil {
		t.Fatal(err)
	}
	r = c.run("audit", "verify", "--dir", dir)
	expect(t, r, 1, "the audit log is shorter than a tree head seen before")
	if !strings.Contains(r.stderr, "it has 4 entries") {
		t.Fatalf("rollback message: %q", r.stderr)
	}
	// The older copy grown into another history longer than the kept one:
	// a fork.
	grow(t, dir, "b", 8)
	expect(t, c.run("audit", "verify", "--dir", dir), 1, "not consistent with a tree head seen before")

	// Another machine (no anchor yet) trusts what it sees first.
	other := &cli{t: t, env: map[string]string{"PDVAULT_PASSPHRASE": testPass, "PDVAULT_ANCHORS": t.TempDir()}}
	expect(t, other.run("audit", "verify", "--dir", dir), 0, "")
	expect(t, c.run("audit", "verify", "--dir", filepath.Join(t.TempDir(), "none")), 1, "no vault")
}
