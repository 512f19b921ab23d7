package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const testPass = "correct horse battery staple"

type cli struct {
	t      *testing.T
	env    map[string]string
	config string // XDG_CONFIG_HOME unless env sets it: tests never touch the real home
	// prompts answers readPassword calls in order; nil means "no terminal".
	prompts []string
}

type result struct {
	code           int
	stdout, stderr string
}

func (c *cli) app(stdout, stderr *syncBuffer) *app {
	return &app{
		stdin:  strings.NewReader(""),
		stdout: stdout,
		stderr: stderr,
		getenv: func(k string) string {
			if v, ok := c.env[k]; ok || k != "XDG_CONFIG_HOME" {
				return v
			}
			if c.config == "" {
				c.config = c.t.TempDir()
			}
			return c.config
		},
		readPassword: func(string) (string, error) {
			if c.prompts == nil {
				return "", errNoTerminal
			}
			if len(c.prompts) == 0 {
				c.t.Fatal("unexpected extra prompt")
			}
			p := c.prompts[0]
			c.prompts = c.prompts[1:]
			return p, nil
		},
	}
}

func (c *cli) run(args ...string) result {
	c.t.Helper()
	var out, errb syncBuffer
	code := c.app(&out, &errb).run(c.t.Context(), args)
	return result{code, out.String(), errb.String()}
}

// syncBuffer is a bytes.Buffer safe to read while a server goroutine writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serve starts "pdvault serve ARGS" in the background and returns its URL
// and a function that stops it (as Ctrl-C would) and returns its result.
func (c *cli) serve(args ...string) (url string, stop func() result) {
	c.t.Helper()
	return c.start(append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
}

// start runs a serving command until stop.
func (c *cli) start(args ...string) (url string, stop func() result) {
	c.t.Helper()
	ctx, cancel := context.WithCancel(c.t.Context())
	var out, errb syncBuffer
	a := c.app(&out, &errb)
	urlc := make(chan string, 1)
	a.listening = func(u string) { urlc <- u }
	done := make(chan int, 1)
	go func() { done <- a.run(ctx, args) }()
	select {
	case url = <-urlc:
	case code := <-done:
		cancel()
		c.t.Fatalf("%s exited with %d: %s", args[0], code, errb.String())
	case <-time.After(30 * time.Second):
		c.t.Fatal("serve did not start")
	}
	var once sync.Once
	var res result
	stop = func() result {
		once.Do(func() {
			cancel()
			res = result{<-done, out.String(), errb.String()}
		})
		return res
	}
	c.t.Cleanup(func() { stop() })
	return url, stop
}

func dirSnapshot(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	m := map[string][32]byte{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			m[p] = sha256.Sum256(b)
		}
		return err
	})
	return m
}

func equalSnap(a, b map[string][32]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func expect(t *testing.T, r result, code int, stderrHas string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stderr, stderrHas) {
		t.Fatalf("exit %d (want %d), stderr %q (want it to contain %q), stdout %q", r.code, code, r.stderr, stderrHas, r.stdout)
	}
}

func TestInitServeRecordsAndWrongPassphrase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "v")
	c := &cli{t: t, env: map[string]string{"PDVAULT_PASSPHRASE": testPass}}
	r := c.run("init", "--dir", dir)
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "Created vault") {
		t.Fatalf("init output %q", r.stdout)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("vault dir mode: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "vault.db")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("vault.db mode: %v %v", fi.Mode(), err)
	}

	before := dirSnapshot(t, dir)
	r = c.run("init", "--dir", dir)
	expect(t, r, 1, "pdvault: error: a vault already exists in this directory")
	if !strings.Contains(r.stderr, "pdvault: hint:") || !equalSnap(before, dirSnapshot(t, dir)) {
		t.Fatalf("second init changed the vault or gave no hint: %q", r.stderr)
	}

	bad := &cli{t: t, env: map[string]string{"PDVAULT_PASSPHRASE": "the wrong passphrase"}}
	r = bad.run("serve", "--dir", dir, "--addr", "127.0.0.1:0")
	expect(t, r, 1, "pdvault: error: the passphrase is wrong")
	if !equalSnap(before, dirSnapshot(t, dir)) {
		t.Fatal("a wrong passphrase changed files on disk")
	}

	url, stop := c.serve("--dir", dir)
	r = c.run("login", "--addr", url)
	expect(t, r, 0, "Logged in")
	tok := strings.TrimSpace(strings.TrimPrefix(r.stdout, "export PDVAULT_TOKEN="))
	// The device token is kept (0600) for the next login.
	devs, _ := filepath.Glob(filepath.Join(c.config, "pdvault", "devices", "*"))
	if len(devs) != 1 {
		t.Fatalf("device token files: %v", devs)
	}
	if fi, _ := os.Stat(devs[0]); fi.Mode().Perm() != 0o600 {
		t.Fatalf("device file mode %v", fi.Mode())
	}
	first, _ := os.ReadFile(devs[0])
	expect(t, c.run("login", "--addr", url), 0, "Logged in")
	if again, _ := os.ReadFile(devs[0]); string(again) != string(first) {
		t.Fatal("the device token was not presented and kept")
	}
	rc := &cli{t: t, env: map[string]string{"PDVAULT_ADDR": url, "PDVAULT_TOKEN": tok}}

	r = rc.run("record", "put", "profile", `{"name":"Ada"}`)
	expect(t, r, 0, "")
	var rec struct {
		ID      string `json:"id"`
		Version int64  `json:"version"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rec); err != nil || rec.Version != 1 {
		t.Fatalf("put output %q", r.stdout)
	}
	r = rc.run("record", "put", "profile", rec.ID, `{"name":"Ada L."}`, "--if-version", "1")
	expect(t, r, 0, "")
	r = rc.run("record", "put", "--if-version", "1", "profile", rec.ID, `{"name":"stale"}`)
	expect(t, r, 1, "version_conflict (HTTP 409)")
	r = rc.run("record", "get", "profile", rec.ID)
	if r.code != 0 || !strings.Contains(r.stdout, `"name": "Ada L."`) || !strings.Contains(r.stdout, `"version": 2`) {
		t.Fatalf("get: %+v", r)
	}
	r = rc.run("record", "list", "profile", "--limit", "1", "--all")
	if r.code != 0 || !strings.Contains(r.stdout, rec.ID) {
		t.Fatalf("list: %+v", r)
	}
	r = rc.run("record", "put", "profile", `[1,2]`)
	expect(t, r, 1, "invalid_record (HTTP 400)")
	r = rc.run("record", "delete", "profile", rec.ID)
	expect(t, r, 0, "Deleted profile/"+rec.ID)
	r = rc.run("record", "get", "profile", rec.ID)
	expect(t, r, 1, "not_found (HTTP 404)")
	r = (&cli{t: t, env: map[string]string{"PDVAULT_ADDR": url}}).run("record", "list", "profile")
	expect(t, r, 1, "no owner token")
	r = (&cli{t: t, env: map[string]string{"PDVAULT_ADDR": url, "PDVAULT_TOKEN": "nope"}}).run("record", "list", "profile")
	expect(t, r, 1, "invalid_token (HTTP 401)")
	r = rc.run("record", "get", "profile")
	expect(t, r, 2, "wrong number of arguments")

	res := stop()
	if res.code != 0 || !strings.Contains(res.stdout, "pdvault stopped") {
		t.Fatalf("serve did not stop cleanly: %+v", res)
	}
	// The server's log saw every request above; it holds no secret and no
	// record content.
	if !strings.Contains(res.stderr, "owner.records.create") {
		t.Fatalf("expected an access log, got %q", res.stderr)
	}
	for _, secret := range []string{tok, testPass, "Ada L.", `"name"`} {
		if strings.Contains(res.stderr, secret) {
			t.Fatalf("the server log contains %q", secret)
		}
	}
}

func TestDevServer(t *testing.T) {
	c := &cli{t: t, env: map[string]string{}}
	var out, errb syncBuffer
	a := c.app(&out, &errb)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	urlc := make(chan string, 1)
	a.listening = func(u string) { urlc <- u }
	done := make(chan int, 1)
	go func() { done <- a.run(ctx, []string{"serve", "--dev", "--addr", "127.0.0.1:0"}) }()
	url := <-urlc
	banner := map[string]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.HasPrefix(k, "  ") {
			banner[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if banner["URL"] != url || banner["owner token"] == "" || banner["passphrase"] == "" || banner["directory"] == "" {
		t.Fatalf("dev banner: %q", out.String())
	}
	rc := &cli{t: t, env: map[string]string{"PDVAULT_ADDR": url, "PDVAULT_TOKEN": banner["owner token"]}}
	for _, coll := range []string{"profile", "transactions", "health", "memberships", "contracts"} {
		r := rc.run("record", "list", coll)
		var p struct {
			Records []json.RawMessage `json:"records"`
		}
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &p) != nil || len(p.Records) == 0 {
			t.Fatalf("dev collection %s: %+v", coll, r)
		}
	}
	// The printed passphrase logs in.
	lc := &cli{t: t, env: map[string]string{"PDVAULT_ADDR": url, "PDVAULT_PASSPHRASE": banner["passphrase"]}}
	expect(t, lc.run("login"), 0, "Logged in")
	if _, err := os.Stat(banner["directory"]); err != nil {
		t.Fatalf("dev directory: %v", err)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if _, err := os.Stat(banner["directory"]); !os.IsNotExist(err) {
		t.Fatalf("dev directory left behind after exit: %v", err)
	}
}

func TestInitPassphraseSources(t *testing.T) {
	t.Run("no terminal, no env", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "v")
		r := (&cli{t: t, env: map[string]string{}}).run("init", "--dir", dir)
		expect(t, r, 1, "pdvault: hint: set PDVAULT_PASSPHRASE or pass --passphrase-file FILE")
		if _, err := os.Stat(filepath.Join(dir, "vault.db")); err == nil {
			t.Fatal("vault created without a passphrase")
		}
	})
	t.Run("prompt mismatch", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "v")
		r := (&cli{t: t, env: map[string]string{}, prompts: []string{"one passphrase", "another one"}}).run("init", "--dir", dir)
		expect(t, r, 1, "the passphrases do not match")
		if _, err := os.Stat(filepath.Join(dir, "vault.db")); err == nil {
			t.Fatal("vault created after a mismatch")
		}
	})
	t.Run("prompt confirmed", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "v")
		r := (&cli{t: t, env: map[string]string{}, prompts: []string{testPass, testPass}}).run("init", "--dir", dir)
		expect(t, r, 0, "")
	})
	t.Run("passphrase file", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "v")
		pf := filepath.Join(t.TempDir(), "pass")
		os.WriteFile(pf, []byte(testPass+"\n"), 0o600)
		r := (&cli{t: t, env: map[string]string{}}).run("init", "--dir", dir, "--passphrase-file", pf)
		expect(t, r, 0, "")
		// The trailing newline is not part of the passphrase.
		r = (&cli{t: t, env: map[string]string{"PDVAULT_PASSPHRASE": testPass}}).run("export", "--dir", dir, "-o", filepath.Join(t.TempDir(), "x.pdv"))
		expect(t, r, 0, "")
	})
	t.Run("too short", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "v")
		r := (&cli{t: t, env: map[string]string{"PDVAULT_PASSPHRASE": "short"}}).run("init", "--dir", dir)
		expect(t, r, 1, "at least 8 characters")
	})
}

func TestPassphraseChangeExportImport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "v")
	c := &cli{t: t, env: map[string]string{"PDVAULT_PASSPHRASE": testPass}}
	expect(t, c.run("init", "--dir", dir), 0, "")
	url, stop := c.serve("--dir", dir)
	r := c.run("login", "--addr", url)
	tok := strings.TrimSpace(strings.TrimPrefix(r.stdout, "export PDVAULT_TOKEN="))
	rc := &cli{t: t, env: map[string]string{"PDVAULT_ADDR": url, "PDVAULT_TOKEN": tok}}
	for _, coll := range []string{"profile", "health"} {
		expect(t, rc.run("record", "put", coll, `{"v":"`+coll+`"}`), 0, "")
	}
	stop()

	out := filepath.Join(t.TempDir(), "backup.pdv")
	r = c.run("export", "--dir", dir, "--out", out)
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "Exported 2 records") {
		t.Fatalf("export: %q", r.stdout)
	}
	r = c.run("export", "--dir", dir, "--out", out)
	expect(t, r, 1, "already exists")

	changer := &cli{t: t, env: map[string]string{"PDVAULT_PASSPHRASE": testPass, "PDVAULT_NEW_PASSPHRASE": "a brand new passphrase"}}
	expect(t, changer.run("passphrase", "change", "--dir", dir), 0, "")
	r = c.run("serve", "--dir", dir, "--addr", "127.0.0.1:0")
	expect(t, r, 1, "the passphrase is wrong")

	// The backup opens with the passphrase current when it was made.
	newDir := filepath.Join(t.TempDir(), "restored")
	r = c.run("import", "--dir", newDir, out)
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "Restored 2 records") {
		t.Fatalf("import: %q", r.stdout)
	}
	r = c.run("import", "--dir", newDir, out)
	expect(t, r, 1, "a vault already exists")
	r = c.run("import", out)
	expect(t, r, 2, "usage: pdvault import")

	// backup works without the passphrase (it copies ciphertext); restore
	// needs the one current at the backup.
	bk := filepath.Join(t.TempDir(), "vault-backup.db")
	r = (&cli{t: t, env: map[string]string{}}).run("backup", "--dir", dir, "--out", bk)
	expect(t, r, 0, "")
	expect(t, c.run("backup", "--dir", dir, "--out", bk), 1, "backups are never overwritten")
	expect(t, c.run("restore", "--dir", filepath.Join(t.TempDir(), "r"), bk), 1, "the passphrase is wrong")
	nc := &cli{t: t, env: map[string]string{"PDVAULT_PASSPHRASE": "a brand new passphrase"}}
	r = nc.run("restore", "--dir", filepath.Join(t.TempDir(), "r"), bk)
	if r.code != 0 || !strings.Contains(r.stdout, "its audit log verifies") {
		t.Fatalf("restore: %+v", r)
	}
}

func TestUsage(t *testing.T) {
	c := &cli{t: t, env: map[string]string{}}
	r := c.run("help")
	if r.code != 0 || !strings.Contains(r.stdout, "serve") || !strings.Contains(r.stdout, "PDVAULT_TOKEN") {
		t.Fatalf("help: %+v", r)
	}
	expect(t, c.run("frobnicate"), 2, `unknown command "frobnicate"`)
	expect(t, c.run("serve", "--no-such-flag"), 2, "flag provided but not defined")
	r = c.run("serve", "-h")
	if r.code != 0 || !strings.Contains(r.stdout, "-dev") || !strings.Contains(r.stdout, "-addr") {
		t.Fatalf("serve -h: %+v", r)
	}
	expect(t, c.run("serve", "--log-level", "loud", "--dev"), 2, `unknown log level "loud"`)
	expect(t, c.run("record"), 2, "record needs a subcommand")
	expect(t, c.run("passphrase", "rotate"), 2, "usage: pdvault passphrase change")
	r = c.run("serve", "--dir", filepath.Join(t.TempDir(), "none"), "--addr", "127.0.0.1:0")
	expect(t, r, 1, "pdvault: hint: create one with: pdvault init")
}

// -h prints a command's help once, on stdout, and exits 0; version names
// the binary and the Go version.
func TestHelpOnceAndVersion(t *testing.T) {
	c := &cli{t: t}
	for _, cmd := range [][]string{{"serve", "-h"}, {"init", "-h"}, {"backup", "--help"}} {
		r := c.run(cmd...)
		if r.code != 0 || strings.Count(r.stdout, "Usage: pdvault") != 1 {
			t.Errorf("%v: exit %d, usage printed %d times:\n%s", cmd, r.code, strings.Count(r.stdout, "Usage: pdvault"), r.stdout)
		}
	}
	r := c.run("serve", "-h")
	for _, f := range []string{"-domain", "-tls-cert", "-trusted-proxy", "-metrics-addr"} {
		if !strings.Contains(r.stdout, f) {
			t.Errorf("serve -h lacks %s", f)
		}
	}
	// A bad flag: one error and a hint, no usage dumped before it.
	r = c.run("record", "list", "--bogus")
	if r.code != 2 || r.stdout != "" || !strings.HasPrefix(r.stderr, "pdvault: error: flag provided but not defined: -bogus\n") {
		t.Errorf("bad flag: %+v", r)
	}
	if r = c.run("login", "-h"); strings.Contains(r.stdout, "-token") {
		t.Errorf("login -h offers -token: %s", r.stdout)
	}
	for _, v := range []string{"version", "--version"} {
		r := c.run(v)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "pdvault ") || !strings.Contains(r.stdout, runtime.Version()) {
			t.Errorf("%s: %+v", v, r)
		}
	}
}

// /metrics on its own address, scraped while serving.
func TestServeMetricsAddr(t *testing.T) {
	c := &cli{t: t, env: map[string]string{"PDVAULT_PASSPHRASE": testPass}}
	dir := filepath.Join(t.TempDir(), "v")
	if r := c.run("init", "--dir", dir); r.code != 0 {
		t.Fatalf("init: %+v", r)
	}
	port := freePort(t)
	url, stop := c.serve("--dir", dir, "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", port))
	res, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("/metrics on the public port without a token: %d", res.StatusCode)
	}
	res, err = http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(b), "pdvault_vault_unlocked 1") {
		t.Fatalf("metrics: %d %.300s", res.StatusCode, b)
	}
	stop()
	if r := c.run("serve", "--dir", dir, "--addr", "127.0.0.1:0", "--metrics-token-file", "/nonexistent"); r.code == 0 || !strings.Contains(r.stderr, "--metrics-token-file") {
		t.Fatalf("missing token file: %+v", r)
	}
}

// Flags go anywhere among the positional arguments; an id that begins
// with "-" is positional, a flag's value is the flag's whatever it looks
// like, "--" ends the flags, and a short unknown flag is still refused.
func TestInterleaved(t *testing.T) {
	a := &app{stdout: io.Discard, stderr: io.Discard}
	id := "-DT99xkq3V0aYp1mWc2nB8rTgH5sLzE6uJdQoKfRiA"
	for _, c := range []struct {
		args  []string
		pos   []string
		title string
		json  bool
		err   string
	}{
		{args: []string{"show", id, "--json"}, pos: []string{"show", id}, json: true},
		{args: []string{"--json", id}, pos: []string{id}, json: true},
		{args: []string{"--title", "-a-title-that-starts-with-a-dash", "f"}, pos: []string{"f"}, title: "-a-title-that-starts-with-a-dash"},
		{args: []string{"--title=x", "a", "--", "--json"}, pos: []string{"a", "--json"}, title: "x"},
		{args: []string{"a", "--jsn"}, err: "flag provided but not defined: -jsn"},
	} {
		fs := a.flags("test", "test")
		title := fs.String("title", "", "")
		js := fs.Bool("json", false, "")
		pos, err := a.interleaved(fs, c.args)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.args, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(pos, c.pos) || *title != c.title || *js != c.json {
			t.Errorf("%q: pos %q title %q json %v err %v; want %q %q %v", c.args, pos, *title, *js, err, c.pos, c.title, c.json)
		}
	}
}
