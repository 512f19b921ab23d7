package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// HTTPS built in (docs/operations.md, "HTTPS").
//
// Two ways: certificates by ACME (--domain; golang.org/x/crypto's
// autocert, already a dependency, with TLS-ALPN-01 on the HTTPS port and
// HTTP-01 on --http-addr), or a certificate the owner provides
// (--tls-cert/--tls-key, reloaded on SIGHUP and when the files change).
// TLS 1.2 and 1.3 only, with Go's default cipher suites (AEADs with
// forward secrecy for TLS 1.2).

// tlsOptions are serve's TLS flags.
type tlsOptions struct {
	domain, acmeDir, acmeEmail, acmeRoots string
	certFile, keyFile                     string
	httpAddr                              string
	trustedProxies                        string
	// policy, if set, says which names certificates are obtained for
	// (a host: the apex and its vaults); default: domain alone.
	policy autocert.HostPolicy
}

// tlsSetup is what serve needs to speak HTTPS.
type tlsSetup struct {
	config   *tls.Config
	issuer   string                                      // default issuer host name ("" for the listen address)
	redirect func(issuer string) http.Handler            // for --http-addr
	start    func(ctx context.Context, log *slog.Logger) // background work: certificate fetch, reloads
}

// newTLS checks the TLS flags and prepares the configuration; nil when
// serve speaks plain HTTP.
func newTLS(o tlsOptions, dir string) (*tlsSetup, error) {
	if o.domain != "" && (o.certFile != "" || o.keyFile != "") {
		return nil, usageError{"--domain and --tls-cert/--tls-key exclude each other", "--domain obtains certificates by ACME; --tls-cert uses yours"}
	}
	if (o.certFile == "") != (o.keyFile == "") {
		return nil, usageError{"--tls-cert and --tls-key go together", ""}
	}
	if o.domain == "" && (o.acmeDir != "" || o.acmeEmail != "" || o.acmeRoots != "") {
		return nil, usageError{"--acme-* flags need --domain", ""}
	}
	switch {
	case o.domain != "":
		return newACME(o, dir)
	case o.certFile != "":
		return newCertFiles(o.certFile, o.keyFile)
	}
	return nil, nil
}

func baseTLS() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12}
}

func newACME(o tlsOptions, dir string) (*tlsSetup, error) {
	domain := strings.ToLower(strings.TrimSuffix(o.domain, "."))
	if strings.ContainsAny(domain, "/:@ ") || !strings.Contains(domain, ".") {
		return nil, usageError{fmt.Sprintf("--domain %q is not a host name", o.domain), "give the name clients use, e.g. --domain vault.example.org"}
	}
	client := &acme.Client{DirectoryURL: o.acmeDir}
	if client.DirectoryURL == "" {
		client.DirectoryURL = acme.LetsEncryptURL
	}
	if o.acmeRoots != "" {
		// A private CA's directory (Pebble, step-ca) served under its own
		// root: trusted for talking to the CA only.
		pem, err := os.ReadFile(o.acmeRoots)
		if err != nil {
			return nil, fmt.Errorf("--acme-ca-roots: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usageError{"--acme-ca-roots " + o.acmeRoots + " holds no PEM certificate", ""}
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		client.HTTPClient = &http.Client{Transport: tr, Timeout: time.Minute}
	}
	m := &autocert.Manager{
		// Using --domain is agreeing to the CA's terms (docs/operations.md).
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(filepath.Join(dir, "acme")), // 0700 directory, 0600 files
		HostPolicy: cmpOr(o.policy, autocert.HostWhitelist(domain)),
		Email:      o.acmeEmail,
		Client:     client,
	}
	cfg := m.TLSConfig() // adds acme-tls/1 for TLS-ALPN-01
	cfg.MinVersion = tls.VersionTLS12
	return &tlsSetup{
		config: cfg,
		issuer: domain,
		redirect: func(issuer string) http.Handler {
			h := m.HTTPHandler(toHTTPS(issuer)) // HTTP-01 answers, the rest redirected
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// autocert checks Host against the domain as it is: a CA
				// validating on another port than 80 sends the port too.
				if host, _, err := net.SplitHostPort(r.Host); err == nil {
					r = r.Clone(r.Context())
					r.Host = host
				}
				h.ServeHTTP(w, r)
			})
		},
		start: func(ctx context.Context, log *slog.Logger) {
			// The first certificate is fetched at start, not on the first
			// client's handshake, so that a CA or DNS problem shows at once
			// in the log. Renewal is autocert's (a third of the lifetime
			// before expiry).
			go func() {
				hello := &tls.ClientHelloInfo{ServerName: domain, SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
					SupportedCurves: []tls.CurveID{tls.CurveP256}, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}
				c, err := m.GetCertificate(hello)
				if err != nil {
					log.Error("cannot obtain a certificate by ACME", "domain", domain, "ca", client.DirectoryURL, "err", err)
					return
				}
				if c.Leaf != nil {
					log.Info("certificate ready", "domain", domain, "expires", c.Leaf.NotAfter.UTC().Format(time.RFC3339))
				}
			}()
		},
	}, nil
}

// certFiles serves a certificate the owner provides, read again on
// SIGHUP and when either file changes; a pair that does not load keeps
// the one before in service.
type certFiles struct {
	cert, key string
	mu        sync.RWMutex
	cur       *tls.Certificate
	stamp     string
}

func newCertFiles(cert, key string) (*tlsSetup, error) {
	c := &certFiles{cert: cert, key: key}
	if err := c.load(); err != nil {
		return nil, err
	}
	cfg := baseTLS()
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		c.mu.RLock()
		defer c.mu.RUnlock()
		return c.cur, nil
	}
	host := ""
	if leaf := c.cur.Leaf; leaf != nil && len(leaf.DNSNames) > 0 && !strings.HasPrefix(leaf.DNSNames[0], "*") {
		host = leaf.DNSNames[0]
	}
	return &tlsSetup{config: cfg, issuer: host, redirect: toHTTPS, start: c.watch}, nil
}

func (c *certFiles) load() error {
	pair, err := tls.LoadX509KeyPair(c.cert, c.key)
	if err != nil {
		return hint(fmt.Errorf("cannot load the TLS certificate: %w", err), "--tls-cert is a PEM chain, leaf first; --tls-key its PEM private key")
	}
	c.mu.Lock()
	c.cur, c.stamp = &pair, c.fileStamp()
	c.mu.Unlock()
	return nil
}

// fileStamp changes when either file is replaced or rewritten.
func (c *certFiles) fileStamp() string {
	var s strings.Builder
	for _, f := range []string{c.cert, c.key} {
		if fi, err := os.Stat(f); err == nil {
			fmt.Fprintf(&s, "%d/%d;", fi.ModTime().UnixNano(), fi.Size())
		}
	}
	return s.String()
}

// certPoll is how often the certificate files are looked at.
var certPoll = 10 * time.Second

func (c *certFiles) watch(ctx context.Context, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	period := certPoll
	go func() {
		defer signal.Stop(hup)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			case <-t.C:
				c.mu.RLock()
				same := c.stamp == c.fileStamp()
				c.mu.RUnlock()
				if same {
					continue
				}
			}
			if err := c.load(); err != nil {
				log.Error("TLS certificate not reloaded; the previous one stays in use", "err", err)
				continue
			}
			log.Info("TLS certificate reloaded", "file", c.cert)
		}
	}()
}

// toHTTPS answers plain HTTP: GET and HEAD are sent to the same path on
// the issuer; anything else is refused, since whatever it carried has
// already crossed the network in the clear and must not be repeated.
func toHTTPS(issuer string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":"https_required","error_description":"this vault speaks HTTPS only: use %s"}`+"\n", issuer)
			return
		}
		http.Redirect(w, r, issuer+r.URL.RequestURI(), http.StatusMovedPermanently)
	})
}

// parseProxies reads --trusted-proxy: CIDRs or single addresses.
func parseProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, usageError{fmt.Sprintf("--trusted-proxy %q is not an address or CIDR", f), "e.g. --trusted-proxy 127.0.0.1,10.0.0.0/8"}
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// defaultIssuer is the URL clients are expected to call when --issuer is
// not given: the TLS host name with the listen port (left out if 443), or
// the listen address.
func defaultIssuer(t *tlsSetup, ln net.Addr) string {
	if t == nil {
		return "http://" + displayAddr(ln)
	}
	_, port, _ := net.SplitHostPort(ln.String())
	host := t.issuer
	if host == "" {
		return "https://" + ln.String()
	}
	if port != "443" {
		host = net.JoinHostPort(host, port)
	}
	return "https://" + host
}

// checkIssuer reports, at start, an issuer clients cannot match: every
// DPoP proof names the URL the client called, and the vault compares it
// with the issuer.
func checkIssuer(issuer string, t *tlsSetup, proxies []netip.Prefix, issuerGiven bool, listen net.Addr) (warn string, err error) {
	u, perr := url.Parse(issuer)
	if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", usageError{fmt.Sprintf("--issuer %q is not an origin", issuer), "give scheme and host (and port), e.g. --issuer https://vault.example.org"}
	}
	switch {
	case len(proxies) > 0 && !issuerGiven:
		return "", usageError{"--trusted-proxy needs --issuer", "set --issuer to the URL clients call at the proxy, e.g. --issuer https://vault.example.org"}
	case t != nil && u.Scheme != "https":
		return "", usageError{"--issuer " + issuer + " is plain HTTP but the vault serves HTTPS", ""}
	case t != nil && t.issuer != "" && issuerGiven && !strings.EqualFold(u.Hostname(), t.issuer):
		return fmt.Sprintf("the issuer %s is not the certificate's host %s: clients calling %s will fail the TLS check", issuer, t.issuer, issuer), nil
	case t == nil && len(proxies) == 0 && u.Scheme == "https":
		return fmt.Sprintf("the issuer is %s, but this server speaks plain HTTP on %s and trusts no proxy: give the TLS proxy's address in --trusted-proxy, so that a request reaching the vault under another scheme or host is refused with a message naming the issuer", issuer, listen), nil
	}
	return "", nil
}

// cmpOr is p unless nil, else def (cmp.Or needs comparable types).
func cmpOr(p, def autocert.HostPolicy) autocert.HostPolicy {
	if p != nil {
		return p
	}
	return def
}
