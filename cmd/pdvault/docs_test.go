package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDocsCLI(t *testing.T) {
	c := devVault(t)
	dir := t.TempDir()
	content := make([]byte, 150_000)
	rand.Read(content)
	copy(content, "%PDF-1.4\n")
	src := filepath.Join(dir, "lease.pdf")
	os.WriteFile(src, content, 0o600)

	// Flags may follow the file.
	r := c.run("docs", "add", src, "--kind", "contract", "--title", "Lease \u202eflat", "--date", "2026-01-15")
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "lease.pdf: added ") || !strings.Contains(r.stdout, "(application/pdf, 150000 bytes)") {
		t.Fatalf("add: %q", r.stdout)
	}
	id := strings.Fields(strings.SplitN(r.stdout, "added ", 2)[1])[0]
	r = c.run("docs", "list")
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, id+"  contract   2026-01-15     150000  Lease \\u202eflat") {
		t.Fatalf("list (the title's escape must be shown, not obeyed): %q", r.stdout)
	}
	out := filepath.Join(dir, "copy.pdf")
	expect(t, c.run("docs", "get", id, "-o", out), 0, "")
	if got, _ := os.ReadFile(out); !bytes.Equal(got, content) {
		t.Fatal("the copy differs")
	}
	expect(t, c.run("docs", "get", id, "-o", out), 1, "copy.pdf exists")
	r = c.run("docs", "get", id, "-o", "-")
	if r.code != 0 || r.stdout != string(content) {
		t.Fatalf("to stdout: %d, %d bytes", r.code, len(r.stdout))
	}
	expect(t, c.run("docs", "add", src, "--kind", "Bad Kind"), 1, "lease.pdf: invalid_document")
	expect(t, c.run("docs", "add", src, "--title", "a\x1b[2Jb"), 1, "no control characters")
	expect(t, c.run("docs", "add", filepath.Join(dir, "missing.pdf")), 1, "missing.pdf: no such file")
	expect(t, c.run("docs", "add"), 2, "needs at least one FILE")
	expect(t, c.run("docs", "get", id), 2, "needs one ID and -o FILE")
	expect(t, c.run("docs", "frob"), 2, "unknown docs subcommand")
	expect(t, c.run("docs", "-h"), 0, "")
	expect(t, c.run("docs", "delete", id), 0, "")
	expect(t, c.run("docs", "delete", id), 1, "no such document")
	expect(t, c.run("docs", "get", id, "-o", filepath.Join(dir, "gone")), 1, "no such document")
	if _, err := os.Stat(filepath.Join(dir, "gone")); err == nil {
		t.Fatal("a failed download left a file")
	}
}
