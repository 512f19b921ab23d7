package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pdvault/pdvault/internal/s3test"
	"github.com/pdvault/pdvault/vault"
	"github.com/pdvault/pdvault/vault/host"
)

// The operator's commands and a serving host: invite, create, list, serve,
// sign-up over HTTP, a sealed vault after creation, delete refused while the
// host runs and done once it stops.
func TestHostCommands(t *testing.T) {
	c := &cli{t: t, env: map[string]string{}}
	root := filepath.Join(t.TempDir(), "host")
	pfile := writeFile(t, "pass", testPass)

	r := c.run("host", "invite", "--root", root, "--expires", "1h")
	expect(t, r, 0, "single-use")
	code := strings.TrimSpace(r.stdout)
	if len(code) != 24 {
		t.Fatalf("invite printed %q", r.stdout)
	}
	expect(t, c.run("host", "invite", "--root", root, "--expires", "10y"), 2, "--expires")
	expect(t, c.run("host", "create", "Alice", "--root", root, "--passphrase-file", pfile), 1, "3 to 63 lowercase")
	r = c.run("host", "create", "alice", "--root", root, "--passphrase-file", pfile)
	expect(t, r, 0, "")
	expect(t, c.run("host", "create", "alice", "--root", root, "--passphrase-file", pfile), 1, "taken")
	expect(t, c.run("host", "serve", "--root", root), 2, "--domain")
	expect(t, c.run("host", "serve", "--root", root, "--domain", "vaults.test", "--signup", "maybe"), 2, "invite, open or closed")
	expect(t, c.run("host", "serve", "--root", root, "--domain", "vaults.test", "--page-size", "1000"), 2, "--page-size")
	expect(t, c.run("host", "serve", "--root", root, "--domain", "vaults.test", "--acme-email", "a@b.test"), 2, "--acme-* flags need --acme")
	expect(t, c.run("host", "serve", "--root", root, "--domain", "vaults.test", "--acme", "--tls-cert", "c.pem", "--tls-key", "k.pem"), 2, "--acme and --tls-cert")
	expect(t, c.run("host", "serve", "--root", root, "--domain", "vaults.test", "--dns-resolver", "127.0.0.1:53"), 2, "--dns-resolver needs --custom-domains")
	expect(t, c.run("host", "serve", "--root", root, "--domain", "vaults.test", "--custom-domains", "--dns-resolver", "127.0.0.1"), 2, "HOST:PORT")
	// Sharing vaults: flags that need --replica, a bad location, missing
	// credentials, a lease too short; release with no host running.
	expect(t, c.run("host", "serve", "--root", root, "--domain", "vaults.test", "--host-id", "a"), 2, "need --replica")
	expect(t, c.run("host", "serve", "--root", root, "--domain", "vaults.test", "--replica-confirm"), 2, "need --replica")
	expect(t, c.run("host", "serve", "--root", root, "--domain", "vaults.test", "--replica-confirm-timeout", "1s"), 2, "need --replica")
	// The domain book for a router: flags checked before anything is read.
	expect(t, c.run("host", "domains", "--root", root), 2, "needs the host's domain")
	expect(t, c.run("host", "domains", "--root", root, "--domain", "vaults.test", "--format", "xml"), 2, "choose map or json")
	expect(t, c.run("host", "domains", "--root", root, "--domain", "vaults.test", "--dns-resolver", "127.0.0.1"), 2, "HOST:PORT")
	expect(t, c.run("host", "domains", "--root", filepath.Join(root, "nowhere"), "--domain", "vaults.test"), 1, "no host directory")
	expect(t, c.run("host", "domains", "--root", root, "--domain", "vaults.test"), 0, "")
	expect(t, c.run("host", "serve", "--root", root, "--domain", "vaults.test", "--replica", "http://bucket/x"), 2, "s3://BUCKET")
	expect(t, c.run("host", "serve", "--root", root, "--domain", "vaults.test", "--replica", "s3://b/p?endpoint=http://127.0.0.1:1"), 2, "AWS_ACCESS_KEY_ID")
	c.env["AWS_ACCESS_KEY_ID"], c.env["AWS_SECRET_ACCESS_KEY"] = "k", "s"
	expect(t, c.run("host", "serve", "--root", root, "--domain", "vaults.test", "--replica", "s3://b/p?endpoint=http://127.0.0.1:1", "--lease-ttl", "1s"), 2, "--lease-ttl")
	expect(t, c.run("host", "serve", "--root", root, "--domain", "vaults.test", "--replica", "s3://b/p?endpoint=http://127.0.0.1:1", "--replica-sync", "20s"), 2, "--replica-sync")
	expect(t, c.run("host", "serve", "--root", root, "--domain", "vaults.test", "--replica", "s3://b/p?endpoint=http://127.0.0.1:1", "--replica-sync", "2s", "--replica-max-lag", "3s"), 2, "--replica-max-lag 3s")
	expect(t, c.run("host", "serve", "--root", root, "--domain", "vaults.test", "--replica", "s3://b/p?endpoint=http://127.0.0.1:1", "--replica-confirm-timeout", "2s"), 2, "--replica-confirm-timeout needs --replica-confirm")
	expect(t, c.run("host", "serve", "--root", root, "--domain", "vaults.test", "--replica", "s3://b/p?endpoint=http://127.0.0.1:1", "--replica-confirm", "--replica-confirm-timeout", "2h"), 2, "from 100ms to 1m")
	delete(c.env, "AWS_ACCESS_KEY_ID")
	delete(c.env, "AWS_SECRET_ACCESS_KEY")
	expect(t, c.run("host", "release", "alice", "--root", root), 1, "no host is serving")
	expect(t, c.run("host", "release", "--root", root), 2, "one vault name")

	u, stop := c.start("host", "serve", "--root", root, "--domain", "vaults.test", "--addr", "127.0.0.1:0")
	pu, _ := url.Parse(u)
	if pu.Hostname() != "vaults.test" {
		t.Fatalf("host serves at %s", u)
	}
	addr := "127.0.0.1:" + pu.Port()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}}
	do := func(method, u, body string) (int, string) {
		req, _ := http.NewRequest(method, u, strings.NewReader(body))
		res, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	st, body := do("POST", u+"/v1/host/vaults", fmt.Sprintf(`{"name":"bob","passphrase":%q,"invite":%q}`, testPass, code))
	if st != 201 {
		t.Fatalf("sign-up: %d %s", st, body)
	}
	var su struct{ Issuer string }
	json.Unmarshal([]byte(body), &su)
	if su.Issuer != "http://bob.vaults.test:"+pu.Port() {
		t.Fatalf("bob's issuer: %s", su.Issuer)
	}
	if st, body := do("GET", su.Issuer+"/v1/terms", ""); st != 200 {
		t.Fatalf("bob's terms: %d %s", st, body)
	}
	// Created by the operator's CLI: sealed until alice logs in.
	if st, body := do("GET", "http://alice.vaults.test:"+pu.Port()+"/v1/terms", ""); st != 503 || !strings.Contains(body, "vault_sealed") {
		t.Fatalf("alice before her login: %d %s", st, body)
	}
	expect(t, c.run("host", "delete", "alice", "--root", root, "--yes"), 1, "stop the host first")
	expect(t, c.run("host", "delete", "alice", "--root", root), 2, "--yes")

	if res := stop(); res.code != 0 || !strings.Contains(res.stdout, "pdvault host stopped") {
		t.Fatalf("stop: %+v", res)
	}
	expect(t, c.run("host", "delete", "alice", "--root", root, "--yes"), 0, "")
	r = c.run("host", "list", "--root", root, "--format", "json")
	var list []struct{ Name string }
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0].Name != "bob" {
		t.Fatalf("list after delete: %s %v", r.stdout, err)
	}
	r = c.run("host", "list", "--root", root)
	if !strings.Contains(r.stdout, "bob") || strings.Contains(r.stdout, "alice") {
		t.Fatalf("list: %s", r.stdout)
	}
}

// host delete --replica erases the vault from the shared storage too.
func TestHostDeleteErasesReplica(t *testing.T) {
	s3 := s3test.Start(t)
	c := &cli{t: t, env: map[string]string{"AWS_ACCESS_KEY_ID": s3.AccessKey, "AWS_SECRET_ACCESS_KEY": s3.SecretKey}}
	root := filepath.Join(t.TempDir(), "host")
	pfile := writeFile(t, "pass", testPass)
	expect(t, c.run("host", "create", "alice", "--root", root, "--passphrase-file", pfile), 0, "")
	// A host sharing vaults takes alice on (its lease appears), then stops.
	u, stop := c.start("host", "serve", "--root", root, "--domain", "vaults.test", "--addr", "127.0.0.1:0", "--replica", s3.URL("p"), "--host-id", "a")
	pu, _ := url.Parse(u)
	res, err := dialOnlyAddr("127.0.0.1:" + pu.Port()).Get("http://alice.vaults.test:" + pu.Port() + "/v1/terms")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable { // sealed: it was created offline
		t.Fatalf("alice's terms: %d", res.StatusCode)
	}
	stop()
	if _, err := os.Stat(filepath.Join(s3.Root, s3.Bucket, "p", "alice", "lease.json")); err != nil {
		t.Fatalf("no lease in the bucket after serving alice: %v", err)
	}
	r := c.run("host", "delete", "alice", "--root", root, "--replica", s3.URL("p"), "--host-id", "a", "--yes")
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "and from s3://") {
		t.Fatalf("delete said %q", r.stdout)
	}
	if ents, _ := os.ReadDir(filepath.Join(s3.Root, s3.Bucket, "p", "alice")); len(ents) != 0 {
		t.Fatalf("left in the bucket: %v", ents)
	}
	if _, err := os.Stat(filepath.Join(root, "vaults", "alice")); !os.IsNotExist(err) {
		t.Fatalf("the vault's directory: %v", err)
	}
}

// A vault created offline with --replica is claimed in the shared storage
// as a serving host would: its name is taken on every host, and another
// host restores it from the replica.
func TestHostCreateWithReplica(t *testing.T) {
	s3 := s3test.Start(t)
	c := &cli{t: t, env: map[string]string{"AWS_ACCESS_KEY_ID": s3.AccessKey, "AWS_SECRET_ACCESS_KEY": s3.SecretKey}}
	rootA, rootB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	pfile := writeFile(t, "pass", testPass)
	r := c.run("host", "create", "bob", "--root", rootA, "--passphrase-file", pfile, "--replica", s3.URL("p"), "--host-id", "a")
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "in s3://") {
		t.Fatalf("create said %q", r.stdout)
	}
	b, err := os.ReadFile(filepath.Join(s3.Root, s3.Bucket, "p", "bob", "lease.json"))
	if err != nil {
		t.Fatalf("no lease after create --replica: %v", err)
	}
	var lease struct {
		Holder     string `json:"holder"`
		Released   bool   `json:"released"`
		Generation string `json:"generation"`
	}
	if err := json.Unmarshal(b, &lease); err != nil || lease.Holder != "a" || !lease.Released || lease.Generation == "" {
		t.Fatalf("lease after create --replica: %s (%v)", b, err)
	}
	// The name is taken for every host sharing the storage.
	r = c.run("host", "create", "bob", "--root", rootB, "--passphrase-file", pfile, "--replica", s3.URL("p"), "--host-id", "b")
	expect(t, r, 1, "that name is taken")
	// Host B restores bob from the replica: sealed, then opened by its owner.
	u, stop := c.start("host", "serve", "--root", rootB, "--domain", "vaults.test", "--addr", "127.0.0.1:0", "--replica", s3.URL("p"), "--host-id", "b")
	defer stop()
	pu, _ := url.Parse(u)
	hc := dialOnlyAddr("127.0.0.1:" + pu.Port())
	res, err := hc.Get("http://bob.vaults.test:" + pu.Port() + "/v1/terms")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "vault_sealed") {
		t.Fatalf("bob on host B: %d %s", res.StatusCode, body)
	}
	if _, err := os.Stat(filepath.Join(rootB, "vaults", "bob", "vault.db")); err != nil {
		t.Fatalf("host B did not restore bob: %v", err)
	}
}

// --max-open is bounded by the descriptors there are: a quarter (at least
// 256) stays for connections, the rest at FilesPerVault each.
func TestFitOpen(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	per := vault.FilesPerVault(host.ReadersPerVault)
	for _, c := range []struct{ maxOpen, limit, want int }{
		{1000, 0, 1000},                   // unknown limit: as asked
		{1000, 20000, 1000},               // fits
		{1000, 4096, (4096 - 1024) / per}, // does not: what fits
		{1000, 1024, (1024 - 256) / per},  // the reserve is at least 256
		{1000, 200, 1},                    // never below one
		{10000, 1 << 20, 10000},           // a large limit
	} {
		if got := fitOpen(log, c.maxOpen, c.limit); got != c.want {
			t.Errorf("fitOpen(%d, %d) = %d, want %d", c.maxOpen, c.limit, got, c.want)
		}
	}
}
