package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The systemd unit in packaging/ is checked by systemd's own tool
// (installed by scripts/test.sh): no unknown or misspelt directive, and a
// hardening ("exposure") score of at most 2.0 of 10.
func TestSystemdUnit(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is not installed (scripts/test.sh installs the systemd package)")
	}
	unit, err := os.ReadFile("../../packaging/pdvault.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=notify", "WatchdogSec=", "ProtectSystem=strict", "NoNewPrivileges=yes", "User=pdvault", "LoadCredential=passphrase:", "--config /etc/pdvault/pdvault.toml"} {
		if !strings.Contains(string(unit), want) {
			t.Fatalf("the unit lacks %q", want)
		}
	}
	// verify wants ExecStart's program to exist: any executable will do.
	exe, _ := os.Executable()
	p := filepath.Join(t.TempDir(), "pdvault.service")
	os.WriteFile(p, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/pdvault", exe)), 0o644)
	out, err := exec.Command(sa, "verify", p).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The threshold is on systemd's internal 0-100 scale (20 = 2.0).
	out, err = exec.Command(sa, "security", "--offline=true", "--threshold=20", p).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: exposure above 2.0 (%v)\n%s", err, out)
	}
}

// The example config in packaging/ is valid: every key known, every value
// well-formed.
func TestExampleConfig(t *testing.T) {
	c := &cli{t: t, env: map[string]string{"PDVAULT_PASSPHRASE": testPass}}
	dir := initVault(t, c)
	c.env["PDVAULT_DIR"] = dir // the example's /var/lib/pdvault is not here
	r := c.run("config", "check", "--config", "../../packaging/pdvault.toml", "--backup-dir", t.TempDir())
	expect(t, r, 0, "")
	for _, want := range []string{"domain", "vault.example.org", "backup-keep", "(config)", "env PDVAULT_DIR"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("config check of the example lacks %q:\n%s", want, r.stdout)
		}
	}
}
