package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pdvault/pdvault/api/client"
)

// The errors a new user meets first come with what to do next.
func TestHintsForCommonErrors(t *testing.T) {
	port := freePort(t)
	c := &cli{t: t, env: map[string]string{"PDVAULT_ADDR": fmt.Sprintf("http://127.0.0.1:%d", port), "PDVAULT_TOKEN": "x"}}
	r := c.run("record", "list", "profile")
	expect(t, r, 1, "pdvault: hint: no vault is listening at http://127.0.0.1:")

	dev := devVault(t)
	dev.env["PDVAULT_TOKEN"] = "not-a-session"
	r = dev.run("record", "list", "profile")
	expect(t, r, 1, `log in again: eval "$(pdvault login)"`)
	delete(dev.env, "PDVAULT_TOKEN")
	r = dev.run("record", "list", "profile")
	expect(t, r, 1, "pdvault login makes one")
}

func TestHintForThrottling(t *testing.T) {
	a := (&cli{t: t, env: map[string]string{}}).app(&syncBuffer{}, &syncBuffer{})
	err := fmt.Errorf("login: %w", &client.Error{Status: 429, Code: "slow_down", RetryAfter: 31 * time.Second})
	if h := a.adviceFor(err); h != "too many requests; try again in 31s" {
		t.Fatalf("hint %q", h)
	}
}

// init says why it cannot create the directory, and makes an existing
// directory private as the docs say.
func TestInitDirectoryReasonAndMode(t *testing.T) {
	c := &cli{t: t, env: map[string]string{"PDVAULT_PASSPHRASE": testPass}}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	r := c.run("init", "--dir", filepath.Join(file, "vault"))
	expect(t, r, 1, "cannot create the vault directory "+filepath.Join(file, "vault")+": not a directory")

	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	expect(t, c.run("init", "--dir", open), 0, "")
	if fi, _ := os.Stat(open); fi.Mode().Perm() != 0o700 {
		t.Fatalf("an existing directory stays %v after init, want 0700", fi.Mode().Perm())
	}
}

// A passphrase too short is refused before it is asked for again.
func TestShortPassphraseRefusedBeforeRepeat(t *testing.T) {
	c := &cli{t: t, env: map[string]string{}, prompts: []string{"short"}}
	r := c.run("init", "--dir", filepath.Join(t.TempDir(), "v"))
	expect(t, r, 1, "at least")
	if len(c.prompts) != 0 {
		t.Fatalf("prompts left: %v", c.prompts)
	}
}

// A record that is not JSON is refused before anything is sent, saying
// where it stops being JSON.
func TestRecordPutChecksJSONFirst(t *testing.T) {
	// No server: if the CLI sent anything, the error would be about the
	// connection instead.
	c := &cli{t: t, env: map[string]string{"PDVAULT_ADDR": fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), "PDVAULT_TOKEN": "x"}}
	r := c.run("record", "put", "profile", "{\"name\": \"Alex\",\n \"age\": 3x}")
	expect(t, r, 1, "line 2, column 10")
	if !strings.Contains(r.stderr, "nothing was sent") {
		t.Fatalf("stderr %q", r.stderr)
	}
}
