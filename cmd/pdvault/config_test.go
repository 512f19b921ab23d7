package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// initVault makes a vault in a temp dir and returns the dir.
func initVault(t *testing.T, c *cli) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "v")
	if r := c.run("init", "--dir", dir); r.code != 0 {
		t.Fatalf("init: %+v", r)
	}
	return dir
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func getStatus(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestServeConfigFile(t *testing.T) {
	c := &cli{t: t, env: map[string]string{"PDVAULT_PASSPHRASE": testPass}}
	dir := initVault(t, c)
	pass := writeFile(t, "pass", testPass)
	c.env = map[string]string{} // the passphrase comes from the file the config names
	backups := filepath.Join(t.TempDir(), "backups")
	port, other := freePort(t), freePort(t)
	cfg := writeFile(t, "pdvault.toml", fmt.Sprintf(`# pdvault serve settings
dir = %q
passphrase-file = %q
metrics-addr = "127.0.0.1:%d"
backup-dir = %q
backup-every = "1h"
backup-keep = 3
trusted-proxy = ["10.0.0.0/8", "192.168.1.1"]
issuer = "https://vault.example.org"

[[notify]]
kind = "ntfy"
url = "https://ntfy.example/a-long-topic"
`, dir, pass, port, backups))

	_, stop := c.serve("--config", cfg)
	if code, body := getStatus(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", port)); code != 200 || !strings.Contains(body, "pdvault_vault_unlocked 1") {
		t.Fatalf("metrics on the config's address: %d %.200s", code, body)
	}
	// The first scheduled backup is taken at once, verified, and counted.
	deadline := time.Now().Add(20 * time.Second)
	for {
		ents, _ := os.ReadDir(backups)
		if len(ents) == 1 && strings.HasPrefix(ents[0].Name(), "pdvault-") && strings.HasSuffix(ents[0].Name(), "Z.db") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scheduled backup in %s: %v", backups, ents)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The file is in place a moment before the backup is verified and
	// counted: wait for the count.
	for {
		_, body := getStatus(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		if strings.Contains(body, "pdvault_backup_last_ok 1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics do not show the backup: %.2000s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := stop(); r.code != 0 || !strings.Contains(r.stderr, "notification channels from the config file") || !strings.Contains(r.stderr, "added=1") {
		t.Fatalf("serve: %+v", r)
	}

	// A flag beats the file; the environment beats the file for dir.
	_, stop = c.serve("--config", cfg, "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", other))
	if code, _ := getStatus(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", other)); code != 200 {
		t.Fatalf("the flag's metrics address: %d", code)
	}
	if code, _ := getStatus(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", port)); code != 0 {
		t.Fatalf("the config's metrics address still answers (%d) although a flag replaced it", code)
	}
	if r := stop(); !strings.Contains(r.stderr, "added=0") {
		t.Fatalf("the channel was added twice: %s", r.stderr)
	}
	c.env["PDVAULT_DIR"] = filepath.Join(t.TempDir(), "elsewhere")
	r := c.run("serve", "--config", cfg, "--addr", "127.0.0.1:0")
	expect(t, r, 1, "no vault")
	delete(c.env, "PDVAULT_DIR")

	// PDVAULT_CONFIG names the file when --config does not.
	c.env["PDVAULT_CONFIG"] = cfg
	r = c.run("config", "check")
	expect(t, r, 0, "")
	for _, want := range []string{cfg + ": ok", "backup-every", "1h0m0s", "(config)", "10.0.0.0/8,192.168.1.1"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("config check output lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestConfigCheckErrors(t *testing.T) {
	c := &cli{t: t, env: map[string]string{"PDVAULT_PASSPHRASE": testPass}}
	dir := initVault(t, c)
	cases := []struct{ name, body, want, hint string }{
		{"unknown", "dir = %q\nlisten = \":80\"\n", `unknown setting "listen"`, "serve -h"},
		{"secret", "dir = %q\npassphrase = \"hunter2hunter2\"\n", `unknown setting "passphrase"`, "holds no secrets"},
		{"syntax", "dir = %q\ndomain = vault.example.org\n", "line 2", "TOML"},
		{"duration", "dir = %q\nbackup-dir = \"/tmp\"\nbackup-every = \"soon\"\n", `backup-every = "soon"`, ""},
		{"short", "dir = %q\nbackup-dir = \"/tmp\"\nbackup-every = \"10s\"\n", "shorter than a minute", ""},
		{"table", "dir = %q\n[domain]\nname = \"x\"\n", `domain: is a table`, ""},
		{"dev", "dir = %q\ndev = true\n", `"dev" cannot be set in a config file`, ""},
		{"number", "dir = %q\nbackup-keep = \"many\"\n", "backup-keep", ""},
		{"tls", "dir = %q\ntls-cert = \"/nonexistent.pem\"\n", "tls-key", ""},
		{"proxy", "dir = %q\ntrusted-proxy = [\"not-an-address\"]\n", "not-an-address", ""},
		{"webhook", "dir = %q\n[[notify]]\nkind = \"webhook\"\nurl = \"https://hooks.example/x\"\n", "needs secret-file", "[[notify]]"},
		{"notifykey", "dir = %q\n[[notify]]\nkind = \"ntfy\"\ntopic = \"x\"\n", `unknown setting "topic"`, ""},
		{"novault", "dir = \"/nonexistent/vault\" # %q\n", "no vault in /nonexistent/vault", "pdvault init"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeFile(t, "c.toml", fmt.Sprintf(tc.body, dir))
			r := c.run("config", "check", "--config", cfg)
			if r.code == 0 || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, tc.hint) {
				t.Fatalf("config check: code %d, stderr %q; want %q and %q", r.code, r.stderr, tc.want, tc.hint)
			}
			if strings.Contains(r.stderr, "hunter2") {
				t.Fatalf("the error repeats a secret: %q", r.stderr)
			}
			// serve refuses the same file the same way, before opening anything.
			if tc.name != "novault" {
				r2 := c.run("serve", "--config", cfg, "--addr", "127.0.0.1:0")
				if r2.code == 0 || !strings.Contains(r2.stderr, tc.want) {
					t.Fatalf("serve with the same file: %+v", r2)
				}
			}
		})
	}
	r := c.run("config", "check", "--config", filepath.Join(t.TempDir(), "missing.toml"))
	expect(t, r, 2, "no such file")
	r = c.run("config", "check")
	expect(t, r, 2, "no config file")
}

func TestServeSystemdNotifyWatchdogCredential(t *testing.T) {
	c := &cli{t: t, env: map[string]string{"PDVAULT_PASSPHRASE": testPass}}
	dir := initVault(t, c)
	creds := t.TempDir()
	if err := os.WriteFile(filepath.Join(creds, "passphrase"), []byte(testPass+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	c.env = map[string]string{"CREDENTIALS_DIRECTORY": creds}
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "200000")
	next := func() string {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 256)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no message from serve on NOTIFY_SOCKET: %v", err)
		}
		return string(buf[:n])
	}
	url, stop := c.serve("--dir", dir)
	if m := next(); m != "READY=1" {
		t.Fatalf("first message %q, want READY=1", m)
	}
	if code, _ := getStatus(t, url+"/readyz"); code != 200 {
		t.Fatalf("/readyz after READY=1: %d", code)
	}
	for range 2 {
		if m := next(); m != "WATCHDOG=1" {
			t.Fatalf("message %q, want WATCHDOG=1", m)
		}
	}
	stop()
	for {
		m := next()
		if m == "STOPPING=1" {
			break
		}
		if m != "WATCHDOG=1" {
			t.Fatalf("message %q while stopping", m)
		}
	}
}
