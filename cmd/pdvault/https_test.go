package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/vault/host"
)

// Let's Encrypt's test CA, built from the Go module proxy by the test
// itself (or taken from PDVAULT_PEBBLE_BIN, a directory holding pebble
// and pebble-challtestsrv, which scripts/test.sh fills once).
const pebbleModule = "github.com/letsencrypt/pebble/v2"
const pebbleVersion = "v2.10.1"

type pebbleCA struct {
	dir      string // ACME directory URL
	roots    string // PEM file: the root of Pebble's own HTTPS (for --acme-ca-roots)
	issuing  *x509.CertPool
	mgmt     string
	loopback string
	dns      string   // HOST:PORT of challtestsrv's DNS server, which Pebble asks too
	txt      *testDNS // that server
}

func pebbleBinaries(t *testing.T) (bin, moduleDir string) {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", pebbleModule+"@"+pebbleVersion).Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v", pebbleModule, err)
	}
	var m struct{ Dir string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		t.Fatalf("go mod download: %s", out)
	}
	bin = os.Getenv("PDVAULT_PEBBLE_BIN")
	if bin == "" {
		bin = t.TempDir()
		cmd := exec.Command("go", "install", pebbleModule+"/cmd/pebble@"+pebbleVersion, pebbleModule+"/cmd/pebble-challtestsrv@"+pebbleVersion)
		cmd.Dir = bin
		cmd.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go install pebble: %v\n%s", err, out)
		}
	}
	return bin, m.Dir
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// runLogged runs a test server from bin until the test ends, its output
// in a log shown if the test fails.
func runLogged(t *testing.T, bin, work, name string, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, name), args...)
	cmd.Env = append(os.Environ(), env...)
	logf, _ := os.Create(filepath.Join(work, name+".log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s log:\n%s", name, b)
		}
	})
}

// testDNS is pebble-challtestsrv's DNS server (every name's address is
// 127.0.0.1; TXT records as set) and its management API.
type testDNS struct {
	addr string // HOST:PORT
	mgmt string // POST /set-txt, /clear-txt
}

// startDNS runs a DNS server for tests that need real DNS without a CA.
func startDNS(t *testing.T) *testDNS {
	t.Helper()
	bin, _ := pebbleBinaries(t)
	return runDNS(t, bin, t.TempDir())
}

func runDNS(t *testing.T, bin, work string) *testDNS {
	t.Helper()
	dnsPort, mgmt := freePort(t), freePort(t)
	runLogged(t, bin, work, "pebble-challtestsrv", nil, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsPort),
		"-http01", "", "-https01", "", "-doh", "", "-tlsalpn01", "", "-management", fmt.Sprintf("127.0.0.1:%d", mgmt))
	d := &testDNS{addr: fmt.Sprintf("127.0.0.1:%d", dnsPort), mgmt: fmt.Sprintf("http://127.0.0.1:%d", mgmt)}
	waitListening(t, mgmt)
	return d
}

// setTXT makes name's TXT record value (name without the final dot).
func (d *testDNS) setTXT(t *testing.T, name, value string) {
	t.Helper()
	res, err := http.Post(d.mgmt+"/set-txt", "application/json", strings.NewReader(fmt.Sprintf(`{"host":%q,"value":%q}`, name+".", value)))
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("set-txt: %v %v", res, err)
	}
	res.Body.Close()
}

// startPebble runs Pebble and its DNS server (every name is 127.0.0.1).
// It validates TLS-ALPN-01 on tlsPort and HTTP-01 on httpPort of the
// domain, and issues certificates valid for validity.
func startPebble(t *testing.T, tlsPort, httpPort int, validity time.Duration) *pebbleCA {
	t.Helper()
	bin, mod := pebbleBinaries(t)
	work := t.TempDir()
	api, mgmt := freePort(t), freePort(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":           fmt.Sprintf("127.0.0.1:%d", api),
		"managementListenAddress": fmt.Sprintf("127.0.0.1:%d", mgmt),
		"certificate":             filepath.Join(mod, "test/certs/localhost/cert.pem"),
		"privateKey":              filepath.Join(mod, "test/certs/localhost/key.pem"),
		"httpPort":                httpPort,
		"tlsPort":                 tlsPort,
		"ocspResponderURL":        "",
		"keyAlgorithm":            "ecdsa",
		"profiles":                map[string]any{"default": map[string]any{"description": "test", "validityPeriod": int(validity.Seconds())}},
	}}
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(work, "pebble.json")
	os.WriteFile(cfgFile, b, 0o600)

	dns := runDNS(t, bin, work)
	// No random sleeps before validation, no deliberately rejected
	// nonces, and no reuse of authorizations: a renewal validates again.
	runLogged(t, bin, work, "pebble", []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"},
		"-config", cfgFile, "-dnsserver", dns.addr)

	roots := filepath.Join(mod, "test/certs/pebble.minica.pem")
	pem, _ := os.ReadFile(roots)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	ca := &pebbleCA{dir: fmt.Sprintf("https://127.0.0.1:%d/dir", api), roots: roots, mgmt: fmt.Sprintf("https://127.0.0.1:%d", mgmt),
		dns: dns.addr, txt: dns}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := hc.Get(ca.dir)
		if err == nil {
			res.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not start: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The root Pebble issues under, for the vault's clients.
	res, err := hc.Get(ca.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	root, _ := io.ReadAll(res.Body)
	res.Body.Close()
	ca.issuing = x509.NewCertPool()
	if !ca.issuing.AppendCertsFromPEM(root) {
		t.Fatalf("pebble root: %s", root)
	}
	return ca
}

// httpsClient trusts Pebble's issuing root and finds every name at
// 127.0.0.1 (the vault's domain has no DNS outside the test).
func httpsClient(ca *pebbleCA, seen func(*x509.Certificate)) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, _ := net.SplitHostPort(addr)
			return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
		},
		TLSClientConfig: &tls.Config{RootCAs: ca.issuing, VerifyConnection: func(cs tls.ConnectionState) error {
			if seen != nil {
				seen(cs.PeerCertificates[0])
			}
			return nil
		}},
		DisableKeepAlives: true, // every request a handshake: renewal shows at once
	}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// serve --domain against a real ACME CA: the certificate is obtained by
// TLS-ALPN-01 on the HTTPS port (no plain-HTTP listener, so nothing else
// could answer), an organization reads over HTTPS with DPoP, the
// certificate is renewed before it expires, and the cache is private.
func TestServeDomainACMETLSALPN(t *testing.T) {
	const domain = "vault.pdvault.test"
	tlsPort := freePort(t)
	ca := startPebble(t, tlsPort, freePort(t), 30*time.Second)

	c := &cli{t: t, env: map[string]string{"PDVAULT_PASSPHRASE": testPass}}
	dir := filepath.Join(t.TempDir(), "v")
	if r := c.run("init", "--dir", dir); r.code != 0 {
		t.Fatalf("init: %+v", r)
	}
	url, stop := c.serve("--dir", dir, "--domain", domain, "--addr", fmt.Sprintf("127.0.0.1:%d", tlsPort), "--http-addr", "",
		"--acme-directory", ca.dir, "--acme-ca-roots", ca.roots, "--acme-email", "owner@pdvault.test")
	if want := fmt.Sprintf("https://%s:%d", domain, tlsPort); url != want {
		t.Fatalf("issuer %s, want %s", url, want)
	}
	serials := make(chan string, 100)
	hc := httpsClient(ca, func(c *x509.Certificate) {
		select {
		case serials <- c.SerialNumber.String():
		default:
		}
	})
	// The certificate comes at start (fetched in the background).
	var first string
	deadline := time.Now().Add(60 * time.Second)
	for first == "" {
		res, err := hc.Get(url + "/v1/terms")
		if err == nil {
			if res.Header.Get("Strict-Transport-Security") == "" {
				t.Fatalf("no HSTS over HTTPS: %v", res.Header)
			}
			res.Body.Close()
			first = <-serials
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate from the ACME CA: %v\n%s", err, stop().stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// An organization, over HTTPS, with DPoP proofs naming the https URL.
	ctx := t.Context()
	owner, _ := client.NewOwner(url, "", hc)
	if _, _, err := owner.Login(ctx, testPass); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.CreateRecord(ctx, "profile", []byte(`{"name":"Ada","email":"ada@example.org"}`)); err != nil {
		t.Fatal(err)
	}
	key, _ := client.GenerateKey("ES256")
	org, _ := client.NewOrg(url, key, hc)
	tk, err := org.Request(ctx, client.AccessRequest{ClientName: "Acme", ClientURI: "https://acme.example", Purpose: "service_delivery",
		AuthorizationDetails: []client.AuthorizationDetail{client.Detail("profile", "name")}, Duration: 3600})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Approve(ctx, tk.RequestID, client.Approval{}); err != nil {
		t.Fatal(err)
	}
	tok, err := org.Poll(ctx, tk.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	page, err := org.ReadCollection(ctx, tok.AccessToken, "profile", 10, "")
	if err != nil || len(page.Records) != 1 || len(page.Records[0].Data) != 1 || string(page.Records[0].Data["name"]) != `"Ada"` {
		t.Fatalf("read over HTTPS: %+v %v", page, err)
	}

	// TLS 1.1 is refused.
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", tlsPort), &tls.Config{ServerName: domain, RootCAs: ca.issuing, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}

	// Renewal: with 30-second certificates autocert renews a third of the
	// lifetime before expiry; a new serial must be served without a restart.
	deadline = time.Now().Add(60 * time.Second)
	for {
		res, err := hc.Get(url + "/healthz")
		if err == nil {
			res.Body.Close()
			if s := <-serials; s != first {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the certificate was not renewed: %v\n%s", err, stop().stderr)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// The ACME account key and certificates are in the vault directory,
	// readable by the owner only.
	entries, _ := os.ReadDir(filepath.Join(dir, "acme"))
	if len(entries) < 2 {
		t.Fatalf("acme cache: %v", entries)
	}
	for _, e := range entries {
		fi, _ := e.Info()
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s is %v", e.Name(), fi.Mode())
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "acme")); fi.Mode().Perm() != 0o700 {
		t.Errorf("acme directory is %v", fi.Mode())
	}
	if r := stop(); r.code != 0 {
		t.Fatalf("serve: %+v", r)
	}
}

// With TLS-ALPN-01 unreachable (Pebble looks on a closed port), the
// certificate comes by HTTP-01 on --http-addr, which otherwise sends
// browsers to HTTPS and refuses to take anything else in the clear.
func TestServeDomainACMEHTTP01(t *testing.T) {
	const domain = "vault.pdvault.test"
	tlsPort, httpPort := freePort(t), freePort(t)
	ca := startPebble(t, freePort(t), httpPort, time.Hour)
	c := &cli{t: t, env: map[string]string{"PDVAULT_PASSPHRASE": testPass}}
	dir := filepath.Join(t.TempDir(), "v")
	if r := c.run("init", "--dir", dir); r.code != 0 {
		t.Fatalf("init: %+v", r)
	}
	url, stop := c.serve("--dir", dir, "--domain", domain, "--addr", fmt.Sprintf("127.0.0.1:%d", tlsPort), "--http-addr", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--acme-directory", ca.dir, "--acme-ca-roots", ca.roots)
	hc := httpsClient(ca, nil)
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := hc.Get(url + "/.well-known/oauth-authorization-server")
		if err == nil {
			var md struct{ Issuer string }
			json.NewDecoder(res.Body).Decode(&md)
			res.Body.Close()
			if md.Issuer != url {
				t.Fatalf("discovery issuer %q, want %q", md.Issuer, url)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate by HTTP-01: %v\n%s", err, stop().stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	plain := fmt.Sprintf("http://%s:%d", domain, httpPort)
	res, err := hc.Get(plain + "/ui/?x=1")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != url+"/ui/?x=1" {
		t.Fatalf("plain HTTP GET: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	res, err = hc.Post(plain+"/v1/owner/session", "application/json", strings.NewReader(`{"passphrase":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), `"https_required"`) {
		t.Fatalf("plain HTTP POST: %d %s", res.StatusCode, b)
	}
}

// writeCert writes a certificate for names signed by a fresh CA and
// returns the CA's pool and the leaf's serial.
func writeCert(t *testing.T, certFile, keyFile string, names ...string) (*x509.CertPool, string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, DNSNames: names, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return pool, serial.String()
}

// The owner's own certificate: served, and replaced without a restart
// on SIGHUP and when the files change; a broken replacement keeps the
// working one in service.
func TestServeOwnCertificateReload(t *testing.T) {
	defer func(d time.Duration) { certPoll = d }(certPoll)
	tmp := t.TempDir()
	certFile, keyFile := filepath.Join(tmp, "cert.pem"), filepath.Join(tmp, "key.pem")
	c := &cli{t: t, env: map[string]string{"PDVAULT_PASSPHRASE": testPass}}
	dir := filepath.Join(tmp, "v")
	if r := c.run("init", "--dir", dir); r.code != 0 {
		t.Fatalf("init: %+v", r)
	}
	start := func() (string, func() result) {
		t.Helper()
		port := freePort(t)
		url, stop := c.serve("--dir", dir, "--addr", fmt.Sprintf("127.0.0.1:%d", port), "--tls-cert", certFile, "--tls-key", keyFile)
		if want := fmt.Sprintf("https://vault.pdvault.test:%d", port); url != want {
			t.Fatalf("issuer %s, want %s (the certificate's name)", url, want)
		}
		return url, stop
	}
	served := func(url string, roots *x509.CertPool) (string, error) {
		var got string
		hc := httpsClient(&pebbleCA{issuing: roots}, func(c *x509.Certificate) { got = c.SerialNumber.String() })
		res, err := hc.Get(url + "/healthz")
		if err != nil {
			return "", err
		}
		res.Body.Close()
		return got, nil
	}
	waitFor := func(what, url string, roots *x509.CertPool, want string, stop func() result) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if got, _ := served(url, roots); got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: certificate %s not served\n%s", what, want, stop().stderr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// SIGHUP, with no polling to find the change instead.
	certPoll = time.Hour
	pool, serial := writeCert(t, certFile, keyFile, "vault.pdvault.test")
	url, stop := start()
	if got, err := served(url, pool); err != nil || got != serial {
		t.Fatalf("served %s %v, want %s", got, err, serial)
	}
	pool2, serial2 := writeCert(t, certFile, keyFile, "vault.pdvault.test")
	time.Sleep(300 * time.Millisecond)
	if got, _ := served(url, pool); got != serial {
		t.Fatal("replaced before SIGHUP: the test would prove nothing")
	}
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor("SIGHUP", url, pool2, serial2, stop)
	stop()

	// Files rewritten in place, found by the poll.
	certPoll = 100 * time.Millisecond
	url, stop = start()
	pool3, serial3 := writeCert(t, certFile, keyFile, "vault.pdvault.test")
	waitFor("file change", url, pool3, serial3, stop)
	// A broken key: the working certificate stays.
	os.WriteFile(keyFile, []byte("not a key"), 0o600)
	time.Sleep(5 * certPoll)
	if got, err := served(url, pool3); err != nil || got != serial3 {
		t.Fatalf("after a broken replacement: %s %v", got, err)
	}
	if r := stop(); r.code != 0 || !strings.Contains(r.stderr, "not reloaded") {
		t.Fatalf("serve: %+v", r)
	}
}

// Start-up refuses or warns about an issuer clients could not match.
func TestServeIssuerChecks(t *testing.T) {
	c := &cli{t: t, env: map[string]string{"PDVAULT_PASSPHRASE": testPass}}
	dir := filepath.Join(t.TempDir(), "v")
	if r := c.run("init", "--dir", dir); r.code != 0 {
		t.Fatalf("init: %+v", r)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--trusted-proxy", "10.0.0.1"}, "--trusted-proxy needs --issuer"},
		{[]string{"--trusted-proxy", "10.0.0.0/33", "--issuer", "https://v.example"}, `"10.0.0.0/33" is not an address or CIDR`},
		{[]string{"--issuer", "https://v.example/path"}, "is not an origin"},
		{[]string{"--domain", "v.example", "--tls-cert", "x", "--tls-key", "y"}, "exclude each other"},
		{[]string{"--tls-cert", "x"}, "--tls-cert and --tls-key go together"},
		{[]string{"--acme-email", "a@b.example"}, "--acme-* flags need --domain"},
		{[]string{"--domain", "localhost:443"}, "is not a host name"},
	} {
		r := c.run(append([]string{"serve", "--dir", dir, "--addr", "127.0.0.1:0"}, tc.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("%v: %d %s", tc.args, r.code, r.stderr)
		}
	}
	// Behind a TLS proxy that is not declared: a warning that says what to do.
	_, stop := c.serve("--dir", dir, "--issuer", "https://vault.example.org")
	if r := stop(); !strings.Contains(r.stderr, "trusts no proxy") {
		t.Fatalf("no warning: %s", r.stderr)
	}
}

// host serve --acme against a real ACME CA: the apex and each vault get a
// certificate of their own by TLS-ALPN-01, and an invented name gets none
// (no request to the CA: nothing in the cache).
func TestHostACME(t *testing.T) {
	const domain = "vaults.pdvault.test"
	tlsPort := freePort(t)
	ca := startPebble(t, tlsPort, freePort(t), time.Hour)
	c := &cli{t: t, env: map[string]string{}}
	root := filepath.Join(t.TempDir(), "host")
	expect(t, c.run("host", "create", "alice", "--root", root, "--passphrase-file", writeFile(t, "pass", testPass)), 0, "")
	apex, stop := c.start("host", "serve", "--root", root, "--domain", domain, "--acme", "--addr", fmt.Sprintf("127.0.0.1:%d", tlsPort),
		"--acme-directory", ca.dir, "--acme-ca-roots", ca.roots)
	defer stop()
	if want := fmt.Sprintf("https://%s:%d", domain, tlsPort); apex != want {
		t.Fatalf("apex %s, want %s", apex, want)
	}
	names := make(chan []string, 100)
	hc := httpsClient(ca, func(c *x509.Certificate) {
		select {
		case names <- c.DNSNames:
		default:
		}
	})
	get := func(url string) (int, error) {
		code, _, err := untilServed(hc, "GET", url, "", "")
		return code, err
	}
	if code, err := get(apex + "/healthz"); err != nil || code != http.StatusOK {
		t.Fatalf("apex over HTTPS: %d %v\n%s", code, err, stop().stderr)
	}
	if n := <-names; len(n) != 1 || n[0] != domain {
		t.Fatalf("apex certificate for %v", n)
	}
	alice := fmt.Sprintf("https://alice.%s:%d", domain, tlsPort)
	code, err := get(alice + "/v1/terms")
	if err != nil || code != http.StatusServiceUnavailable { // sealed: created offline
		t.Fatalf("alice over HTTPS: %d %v", code, err)
	}
	if n := <-names; len(n) != 1 || n[0] != "alice."+domain {
		t.Fatalf("alice's certificate for %v", n)
	}
	// No vault, no certificate: the handshake fails at once.
	if _, err := hc.Get(fmt.Sprintf("https://nobody.%s:%d/v1/terms", domain, tlsPort)); err == nil {
		t.Fatal("a certificate was served for a name that is no vault")
	}
	ents, _ := os.ReadDir(filepath.Join(root, "acme"))
	for _, e := range ents {
		if strings.Contains(e.Name(), "nobody") {
			t.Fatalf("a certificate was requested for a name that is no vault: %s", e.Name())
		}
	}
	if len(ents) < 3 { // the account key, the apex's and alice's certificates
		t.Fatalf("acme cache: %v", ents)
	}
}

// An owner's own domain on a host, against real DNS (challtestsrv's
// server, which Pebble asks too) and a real ACME CA: refused until the
// domain's TXT record names the vault, then served there with its own
// certificate and issuer; a domain whose DNS names the vault but which
// the owner never chose gets no certificate.
func TestHostCustomDomain(t *testing.T) {
	const domain, mine = "vaults.pdvault.test", "data.alice.test"
	tlsPort := freePort(t)
	ca := startPebble(t, tlsPort, freePort(t), time.Hour)
	c := &cli{t: t, env: map[string]string{}}
	root := filepath.Join(t.TempDir(), "host")
	expect(t, c.run("host", "create", "alice", "--root", root, "--passphrase-file", writeFile(t, "pass", testPass)), 0, "")
	_, stop := c.start("host", "serve", "--root", root, "--domain", domain, "--acme", "--addr", fmt.Sprintf("127.0.0.1:%d", tlsPort),
		"--acme-directory", ca.dir, "--acme-ca-roots", ca.roots, "--custom-domains", "--dns-resolver", ca.dns)
	defer stop()
	var names atomic.Pointer[[]string]
	hc := httpsClient(ca, func(c *x509.Certificate) { names.Store(&c.DNSNames) })
	do := func(method, url, token, body string) (int, []byte) {
		t.Helper()
		code, b, err := untilServed(hc, method, url, token, body)
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", method, url, err, stop().stderr)
		}
		return code, b
	}
	home := fmt.Sprintf("https://alice.%s:%d", domain, tlsPort)
	code, b := do("POST", home+"/v1/owner/session", "", fmt.Sprintf(`{"passphrase":%q}`, testPass))
	var sess struct{ Token string }
	json.Unmarshal(b, &sess)
	if code != http.StatusOK || sess.Token == "" {
		t.Fatalf("unlock: %d %s", code, b)
	}
	code, b = do("PUT", home+"/v1/owner/domain", sess.Token, `{"domain":"`+mine+`"}`)
	if code != http.StatusUnprocessableEntity || !strings.Contains(string(b), "domain_unverified") {
		t.Fatalf("before the TXT record: %d %s", code, b)
	}
	ca.txt.setTXT(t, host.DomainLabel+mine, "vault=alice."+domain)
	ca.txt.setTXT(t, host.DomainLabel+"evil.test", "vault=alice."+domain)
	code, b = do("PUT", home+"/v1/owner/domain", sess.Token, `{"domain":"`+mine+`"}`)
	at := fmt.Sprintf("https://%s:%d", mine, tlsPort)
	if code != http.StatusOK || !strings.Contains(string(b), `"issuer":"`+at+`"`) {
		t.Fatalf("with the TXT record: %d %s", code, b)
	}
	code, b = do("GET", at+"/.well-known/oauth-authorization-server", "", "")
	var meta struct{ Issuer string }
	json.Unmarshal(b, &meta)
	if code != http.StatusOK || meta.Issuer != at {
		t.Fatalf("discovery at the domain: %d %s", code, b)
	}
	if n := names.Load(); n == nil || len(*n) != 1 || (*n)[0] != mine {
		t.Fatalf("the domain's certificate is for %v", n)
	}
	if _, err := hc.Get(fmt.Sprintf("https://evil.test:%d/v1/terms", tlsPort)); err == nil {
		t.Fatal("a certificate was served for a domain the owner never chose")
	}
	ents, _ := os.ReadDir(filepath.Join(root, "acme"))
	for _, e := range ents {
		if strings.Contains(e.Name(), "evil") {
			t.Fatalf("a certificate was requested for a domain the owner never chose: %s", e.Name())
		}
	}
}

// untilServed makes a request, again while the server cannot be reached or
// its handshake fails (a certificate on its way), for up to a minute.
func untilServed(hc *http.Client, method, url, token, body string) (int, []byte, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := hc.Do(req)
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			return res.StatusCode, b, nil
		}
		if time.Now().After(deadline) {
			return 0, nil, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}
