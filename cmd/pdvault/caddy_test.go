package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The reference deployment with Caddy (Debian's) in front: Caddy ends TLS
// with certificates it obtains on demand, from its own internal CA here
// (an ACME CA in production), and asks the host first
// (/v1/host/certificate-allowed). The host's domain and its vaults get
// certificates and are served through Caddy with https issuers; a name
// that is not a vault gets no certificate, so a stranger's handshakes with
// invented names cost the CA nothing.
func TestHostBehindCaddy(t *testing.T) {
	caddy, err := exec.LookPath("caddy")
	if err != nil {
		t.Fatal("caddy is not installed (scripts/test.sh installs Debian's package caddy)")
	}
	bin := buildPdvault(t)
	work := t.TempDir()
	hp, cp, chp := freePort(t), freePort(t), freePort(t)
	hostLog := &lockedWriter{w: &bytes.Buffer{}}
	hostCmd := exec.Command(bin, "host", "serve", "--root", filepath.Join(work, "host"), "--domain", "vaults.test",
		"--addr", fmt.Sprintf("127.0.0.1:%d", hp), "--public-url", fmt.Sprintf("https://vaults.test:%d", cp),
		"--signup", "open", "--trusted-proxy", "127.0.0.1", "--rate-limit-address", "0")
	hostCmd.Stdout, hostCmd.Stderr = hostLog, hostLog
	if err := hostCmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hostCmd.Process.Signal(syscall.SIGTERM); hostCmd.Wait() })
	waitListening(t, hp)

	data := filepath.Join(work, "caddy")
	caddyfile := fmt.Sprintf(`{
	admin off
	skip_install_trust
	http_port %d
	https_port %d
	storage file_system {
		root %s
	}
	on_demand_tls {
		ask http://127.0.0.1:%d/v1/host/certificate-allowed
	}
}
https:// {
	bind 127.0.0.1
	tls internal {
		on_demand
	}
	reverse_proxy 127.0.0.1:%d
}
`, chp, cp, data, hp, hp)
	cfgFile := filepath.Join(work, "Caddyfile")
	os.WriteFile(cfgFile, []byte(caddyfile), 0o600)
	caddyLog := &lockedWriter{w: &bytes.Buffer{}}
	cc := exec.Command(caddy, "run", "--config", cfgFile, "--adapter", "caddyfile")
	cc.Env = append(os.Environ(), "HOME="+work, "XDG_DATA_HOME="+filepath.Join(work, "xdg-data"), "XDG_CONFIG_HOME="+filepath.Join(work, "xdg-config"))
	cc.Stdout, cc.Stderr = caddyLog, caddyLog
	if err := cc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cc.Process.Kill()
		cc.Wait()
		if t.Failed() {
			t.Logf("caddy log:\n%s\nhost log:\n%s", caddyLog, hostLog)
		}
	})
	waitListening(t, cp)

	handshake := func(name string, roots *x509.CertPool) error {
		d := &net.Dialer{Timeout: 10 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", fmt.Sprintf("127.0.0.1:%d", cp), &tls.Config{ServerName: name, RootCAs: roots, InsecureSkipVerify: roots == nil})
		if err == nil {
			c.Close()
		}
		return err
	}
	// The first handshake makes Caddy create its CA; then it is trusted.
	if err := handshake("vaults.test", nil); err != nil {
		t.Fatalf("handshake for the host's domain: %v", err)
	}
	root, err := os.ReadFile(filepath.Join(data, "pki", "authorities", "local", "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(root) {
		t.Fatal("caddy's root certificate does not parse")
	}
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", cp))
		},
		TLSClientConfig: &tls.Config{RootCAs: roots},
	}}

	// Sign up over HTTPS through Caddy; the vault is served at its name.
	res, err := hc.Post(fmt.Sprintf("https://vaults.test:%d/v1/host/vaults", cp), "application/json",
		strings.NewReader(`{"name":"alice","passphrase":"correct horse battery staple"}`))
	if err != nil {
		t.Fatal(err)
	}
	var signup struct {
		Token string `json:"access_token"`
	}
	json.NewDecoder(res.Body).Decode(&signup)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated || signup.Token == "" {
		t.Fatalf("sign-up through caddy: %d", res.StatusCode)
	}
	alice := fmt.Sprintf("https://alice.vaults.test:%d", cp)
	res, err = hc.Get(alice + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatalf("the vault's name through caddy: %v", err)
	}
	var meta struct{ Issuer string }
	json.NewDecoder(res.Body).Decode(&meta)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || meta.Issuer != alice {
		t.Fatalf("discovery through caddy: %d, issuer %q, want %q", res.StatusCode, meta.Issuer, alice)
	}
	req, _ := http.NewRequest("POST", alice+"/v1/owner/records/notes", strings.NewReader(`{"n":1}`))
	req.Header.Set("Authorization", "Bearer "+signup.Token)
	req.Header.Set("Content-Type", "application/json")
	if res, err = hc.Do(req); err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("owner's write through caddy: %v %v", err, res)
	}
	res.Body.Close()

	// No certificate for a name that is not a vault.
	for _, name := range []string{"nobody.vaults.test", "evil.test"} {
		if err := handshake(name, nil); err == nil || !strings.Contains(err.Error(), "remote error: tls: internal error") {
			t.Fatalf("handshake for %s: %v, want caddy's refusal (a TLS internal_error alert)", name, err)
		}
	}
	var issued []string
	entries, _ := os.ReadDir(filepath.Join(data, "certificates", "local"))
	for _, e := range entries {
		issued = append(issued, e.Name())
	}
	slices.Sort(issued)
	if !slices.Equal(issued, []string{"alice.vaults.test", "vaults.test"}) {
		t.Fatalf("certificates caddy obtained: %v, want the host's domain and alice's only", issued)
	}
}
