package main

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/pdvault/pdvault/api"
	"github.com/pdvault/pdvault/vault"
)

// DefaultAddr is where serve listens unless told otherwise: loopback only.
const DefaultAddr = "127.0.0.1:8700"

// shutdownGrace is how long in-flight requests get after Ctrl-C.
const shutdownGrace = 10 * time.Second

// Outbound requests (notices, domain checks): each attempt's time limit,
// and how often the notice queue is looked at.
const (
	outboundTimeout = 10 * time.Second
	noticeTick      = 5 * time.Second
)

// serveSettings are serve's flags, which a config file may also set.
type serveSettings struct {
	fs                              *flag.FlagSet
	dir, addr, pfile, issuer        string
	dev, allowLoopback              bool
	to                              tlsOptions
	metricsAddr, metricsTokenFile   string
	logLevel, logFormat, cpuProfile string
	rateAddr, rateOrg               float64
	config                          string
	backup                          vault.BackupSchedule
	channels                        []vault.ChannelConfig // [[notify]] tables of the config file
	set                             map[string]string     // flag name -> where its value came from
}

func (a *app) serveFlags() *serveSettings {
	s := &serveSettings{}
	fs := a.flags("serve", "serve [--config FILE] [--dir DIR | --dev] [--addr HOST:PORT] [--domain NAME | --tls-cert FILE --tls-key FILE]")
	s.fs = fs
	fs.StringVar(&s.config, "config", "", "read settings from this TOML file (env PDVAULT_CONFIG); flags and environment variables override it")
	fs.StringVar(&s.dir, "dir", a.defaultDir(), "vault directory (env PDVAULT_DIR)")
	fs.BoolVar(&s.dev, "dev", false, "run a throwaway vault with sample records in a temporary directory, deleted on exit")
	fs.StringVar(&s.addr, "addr", DefaultAddr, "address to listen on (default :443 with --domain)")
	fs.StringVar(&s.to.domain, "domain", "", "serve HTTPS for this host name with certificates obtained and renewed by ACME (Let's Encrypt unless --acme-directory); implies agreeing to the CA's terms")
	fs.StringVar(&s.to.acmeDir, "acme-directory", "", "ACME directory URL of another CA (staging, a private CA)")
	fs.StringVar(&s.to.acmeEmail, "acme-email", "", "contact address given to the ACME CA (expiry warnings)")
	fs.StringVar(&s.to.acmeRoots, "acme-ca-roots", "", "PEM file of roots to trust for the ACME directory itself (a private CA)")
	fs.StringVar(&s.to.certFile, "tls-cert", "", "serve HTTPS with this PEM certificate chain (reloaded on SIGHUP or when it changes)")
	fs.StringVar(&s.to.keyFile, "tls-key", "", "the PEM private key of --tls-cert")
	fs.StringVar(&s.to.httpAddr, "http-addr", "", "with HTTPS, also listen here for plain HTTP: redirects to HTTPS and ACME HTTP-01 (default :80 with --domain)")
	fs.StringVar(&s.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics on this separate address (HOST:PORT); off by default")
	fs.StringVar(&s.metricsTokenFile, "metrics-token-file", "", "file holding a bearer token for /metrics (or env PDVAULT_METRICS_TOKEN); without --metrics-addr, /metrics is then served on the main port to requests bearing it")
	fs.StringVar(&s.to.trustedProxies, "trusted-proxy", "", "comma-separated addresses or CIDRs of reverse proxies whose Forwarded / X-Forwarded-* headers are believed")
	fs.StringVar(&s.pfile, "passphrase-file", "", "read the passphrase from this file (or env PDVAULT_PASSPHRASE; under systemd, the credential \"passphrase\")")
	fs.StringVar(&s.issuer, "issuer", "", "public base URL of the vault, if clients reach it through a proxy (default: the listen URL)")
	fs.BoolVar(&s.allowLoopback, "allow-loopback-http", false, "let notices and domain checks reach loopback addresses over plain HTTP (local testing only; on with --dev)")
	fs.StringVar(&s.backup.Dir, "backup-dir", "", "take scheduled, verified backups into this directory")
	fs.DurationVar(&s.backup.Every, "backup-every", 24*time.Hour, "time between scheduled backups (with --backup-dir)")
	fs.IntVar(&s.backup.Keep, "backup-keep", 7, "scheduled backups to keep; older ones are removed (with --backup-dir)")
	fs.StringVar(&s.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&s.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&s.cpuProfile, "cpuprofile", "", "write a CPU profile (pprof) to this file until the server stops")
	fs.Float64Var(&s.rateAddr, "rate-limit-address", 300, "requests per second per client address (burst twice that); 0 for no limit")
	fs.Float64Var(&s.rateOrg, "rate-limit-org", 200, "requests per second per organization key (burst twice that); 0 for no limit")
	return s
}

// servePlan is what serve's settings come to once checked, before any
// vault is opened or port bound.
type servePlan struct {
	proxies      []netip.Prefix
	metricsToken string
	log          *slog.Logger
}

// load parses the command line, applies the config file under it, and
// checks everything that can be checked without the vault.
func (a *app) loadServe(s *serveSettings, args []string) (*servePlan, error) {
	if err := a.parse(s.fs, args); err != nil {
		return nil, err
	}
	if s.fs.NArg() > 0 {
		return nil, usageError{s.fs.Name() + " takes no arguments", fmt.Sprintf(`run "pdvault %s -h" for its flags`, s.fs.Name())}
	}
	s.set = map[string]string{}
	s.fs.Visit(func(f *flag.Flag) { s.set[f.Name] = "flag" })
	if s.config == "" {
		s.config = a.getenv("PDVAULT_CONFIG")
	}
	if s.config != "" {
		chs, err := a.applyConfig(s.fs, s.config, s.set)
		if err != nil {
			return nil, err
		}
		s.channels = chs
	}
	if s.to.domain != "" {
		if s.set["addr"] == "" {
			s.addr = ":443"
		}
		if s.set["http-addr"] == "" {
			s.to.httpAddr = ":80"
		}
	}
	var p servePlan
	var err error
	if p.proxies, err = parseProxies(s.to.trustedProxies); err != nil {
		return nil, err
	}
	p.metricsToken = a.getenv("PDVAULT_METRICS_TOKEN")
	if s.metricsTokenFile == "" && p.metricsToken == "" {
		s.metricsTokenFile = a.credential("metrics-token")
	}
	if s.pfile == "" && a.getenv("PDVAULT_PASSPHRASE") == "" {
		s.pfile = a.credential("passphrase")
	}
	if s.metricsTokenFile != "" {
		b, err := os.ReadFile(s.metricsTokenFile)
		if err != nil {
			return nil, fmt.Errorf("--metrics-token-file: %w", err)
		}
		p.metricsToken = strings.TrimSpace(string(b))
	}
	if p.metricsToken != "" && len(p.metricsToken) < 16 {
		return nil, usageError{"the metrics token is shorter than 16 characters", "use a random one, e.g. openssl rand -hex 16"}
	}
	if s.backup.Dir != "" {
		if s.backup.Every < time.Minute {
			return nil, usageError{fmt.Sprintf("--backup-every %v is shorter than a minute", s.backup.Every), "e.g. --backup-every 24h"}
		}
		if s.backup.Keep < 1 {
			return nil, usageError{"--backup-keep must be at least 1", ""}
		}
		if s.dev {
			return nil, usageError{"--backup-dir does not go with --dev", "a dev vault is thrown away on exit"}
		}
	}
	if p.log, err = newLogger(a.stderr, s.logLevel, s.logFormat); err != nil {
		return nil, err
	}
	return &p, nil
}

func (a *app) cmdServe(ctx context.Context, args []string) error {
	s := a.serveFlags()
	plan, err := a.loadServe(s, args)
	if err != nil {
		return err
	}
	proxies, metricsToken, log := plan.proxies, plan.metricsToken, plan.log
	tuneGC()
	if s.cpuProfile != "" {
		f, err := os.Create(s.cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	opts := vault.Options{Logger: log, AllowLoopbackHTTP: s.allowLoopback || s.dev, RatePerOrg: noLimitIfZero(s.rateOrg)}
	courier := api.NewCourier(opts.AllowLoopbackHTTP, outboundTimeout)
	opts.Courier = courier
	opts.Notifier = api.NewNotifier(courier, nil, outboundTimeout)
	var metrics *api.Metrics
	if s.metricsAddr != "" || metricsToken != "" {
		metrics = api.NewMetrics(nil) // the vault is attached once open
		opts.OnDelivery = metrics.Delivered
	}

	var (
		v          *vault.Vault
		devPass    string
		cleanupDir string
	)
	if s.dev {
		cleanupDir, err = os.MkdirTemp("", "pdvault-dev-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(cleanupDir)
		devPass = randomPassphrase()
		v, err = vault.Create(ctx, cleanupDir, []byte(devPass), opts)
		if err == nil {
			err = loadSamples(ctx, v)
		}
	} else {
		v, _, err = a.openVault(ctx, s.dir, s.pfile, opts)
	}
	var ts *tlsSetup
	if err == nil {
		tdir := s.dir
		if s.dev {
			tdir = cleanupDir
		}
		ts, err = newTLS(s.to, tdir)
	}
	if err != nil {
		if v != nil {
			v.Close()
		}
		return err
	}
	defer v.Close()

	if metrics != nil {
		metrics.Attach(v)
	}
	if len(s.channels) > 0 {
		n, err := v.EnsureChannels(ctx, s.channels)
		if err != nil {
			return hint(err, "in the [[notify]] entries of "+s.config)
		}
		log.Info("notification channels from the config file", "added", n, "listed", len(s.channels))
	}
	ho := httpOptions{addr: s.addr, issuer: s.issuer, tls: ts, httpAddr: s.to.httpAddr, proxies: proxies, ratePerAddress: noLimitIfZero(s.rateAddr), metrics: metrics}
	if s.metricsAddr == "" {
		ho.metricsToken = metricsToken // on the main port, behind the token
	}
	hs, err := startHTTP(v, ho, log)
	if err != nil {
		return err
	}
	if s.metricsAddr != "" {
		ms, err := startMetrics(s.metricsAddr, metrics.Handler(metricsToken), log)
		if err != nil {
			hs.stop(log)
			return err
		}
		defer ms.Close()
		if metricsToken == "" && !isLoopback(ms.addr) {
			log.Warn("metrics listen beyond loopback without a token", "addr", ms.addr.String())
		}
	}
	url := hs.url
	if hs.warning != "" {
		log.Warn(hs.warning)
	}
	if s.dev {
		tok := v.NewSession().Token
		fmt.Fprintf(a.stdout, `pdvault dev vault %s (throwaway: deleted when you press Ctrl-C)
  URL:          %s
  owner token:  %s
  passphrase:   %s
  directory:    %s

  export PDVAULT_ADDR=%s PDVAULT_TOKEN=%s
  pdvault record list profile
`, v.ID(), url, tok, devPass, cleanupDir, url, tok)
	} else {
		fmt.Fprintf(a.stdout, "pdvault serving vault %s at %s (web UI: %s/ui/)\n", v.ID(), url, url)
		if ts == nil && len(proxies) == 0 && !isLoopback(hs.addr) {
			log.Warn("listening beyond loopback without TLS; use --domain or --tls-cert, or a TLS proxy with --trusted-proxy", "addr", hs.addr.String())
		}
	}
	// Background work: certificates, notice delivery, re-encryption after
	// a key rotation.
	bctx, stopBackground := context.WithCancel(ctx)
	if ts != nil {
		ts.start(bctx, log)
	}
	if a.listening != nil {
		a.listening(url)
	}
	var background sync.WaitGroup
	background.Go(func() { v.RunNotices(bctx, noticeTick) })
	background.Go(func() { v.RunReencryption(bctx) })
	background.Go(func() { v.RunNotifications(bctx, noticeTick, api.GenerateVAPID) })
	if s.backup.Dir != "" {
		background.Go(func() { v.RunBackups(bctx, s.backup) })
	}
	background.Go(func() { sdReady(bctx, v, log) })

	defer func() { stopBackground(); background.Wait() }()

	select {
	case err := <-hs.errc:
		return err
	case <-ctx.Done():
	}
	if err := hs.stop(log); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout, "pdvault stopped")
	return nil
}

// httpServer is a running API server, and its plain-HTTP redirector
// when it speaks HTTPS.
type httpServer struct {
	url      string
	addr     net.Addr
	srv      *http.Server
	redirect *http.Server
	errc     chan error
	warning  string // a start-up problem clients would hit, for the log
}

type httpOptions struct {
	addr, issuer   string
	tls            *tlsSetup
	httpAddr       string
	proxies        []netip.Prefix
	ratePerAddress float64
	metrics        *api.Metrics
	metricsToken   string
}

// startHTTP listens on o.addr and serves the vault's API. The vault's
// issuer becomes o.issuer, or the URL it listens on.
func startHTTP(v *vault.Vault, o httpOptions, log *slog.Logger) (*httpServer, error) {
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return nil, hint(fmt.Errorf("cannot listen on %s: %w", o.addr, err), "choose another address with --addr HOST:PORT")
	}
	issuer := strings.TrimRight(o.issuer, "/")
	if issuer == "" {
		issuer = defaultIssuer(o.tls, ln.Addr())
	}
	warn, err := checkIssuer(issuer, o.tls, o.proxies, o.issuer != "", ln.Addr())
	if err != nil {
		ln.Close()
		return nil, err
	}
	hs := &httpServer{url: issuer, addr: ln.Addr(), errc: make(chan error, 2), warning: warn}
	v.SetIssuer(issuer)
	// The issuer's host, and the address it listens on (for local use by
	// address): no other Host is answered (DNS rebinding).
	hosts := []string{ln.Addr().String()}
	if h, p, err := net.SplitHostPort(ln.Addr().String()); err == nil && (h == "127.0.0.1" || h == "::1") {
		hosts = append(hosts, net.JoinHostPort("localhost", p))
	}
	hs.srv = api.NewServer(o.addr, api.New(v, api.Config{Logger: log, RatePerAddress: o.ratePerAddress, Hosts: hosts, TrustedProxies: o.proxies,
		Metrics: o.metrics, MetricsToken: o.metricsToken}), log)
	if o.tls == nil {
		go func() { hs.errc <- hs.srv.Serve(ln) }()
		return hs, nil
	}
	hs.srv.TLSConfig = o.tls.config
	if o.httpAddr != "" {
		rl, err := net.Listen("tcp", o.httpAddr)
		if err != nil {
			ln.Close()
			return nil, hint(fmt.Errorf("cannot listen on %s for plain HTTP: %w", o.httpAddr, err), "choose another address with --http-addr HOST:PORT, or --http-addr '' for none (ACME then needs TLS-ALPN-01 on the HTTPS port)")
		}
		hs.redirect = api.NewServer(o.httpAddr, o.tls.redirect(issuer), log)
		go func() {
			if err := hs.redirect.Serve(rl); err != nil && !errors.Is(err, http.ErrServerClosed) {
				hs.errc <- err
			}
		}()
	}
	go func() { hs.errc <- hs.srv.ServeTLS(ln, "", "") }()
	return hs, nil
}

// metricsServer serves /metrics on its own address.
type metricsServer struct {
	addr net.Addr
	srv  *http.Server
}

func startMetrics(addr string, h http.Handler, log *slog.Logger) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, hint(fmt.Errorf("cannot listen on %s for metrics: %w", addr, err), "choose another address with --metrics-addr HOST:PORT")
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	ms := &metricsServer{addr: ln.Addr(), srv: api.NewServer(addr, mux, log)}
	go ms.srv.Serve(ln)
	log.Info("metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return ms, nil
}

func (ms *metricsServer) Close() { ms.srv.Close() }

// displayAddr is a listen address as a URL host: a wildcard address is
// shown as loopback, which is where a browser on this machine finds it.
func displayAddr(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok || !ta.IP.IsUnspecified() {
		return a.String()
	}
	return net.JoinHostPort("127.0.0.1", fmt.Sprint(ta.Port))
}

// stop shuts down gracefully: no new connections, and in-flight requests
// get shutdownGrace to finish.
func (hs *httpServer) stop(log *slog.Logger) error {
	log.Info("shutting down", "grace", shutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if hs.redirect != nil {
		hs.redirect.Shutdown(sctx)
	}
	if err := hs.srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown incomplete", "err", err)
	}
	if err := <-hs.errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// noLimitIfZero maps the flags' "0 = no limit" to the options' negative.
func noLimitIfZero(rate float64) float64 {
	if rate == 0 {
		return -1
	}
	return rate
}

// tuneGC trades a little memory for less collector CPU on the read path
// (docs/benchmarks.md): the heap may grow to 3x live before a collection,
// with a soft ceiling of 128 MiB. GOGC and GOMEMLIMIT, if set, win.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(128 << 20)
	}
}

func isLoopback(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

func randomPassphrase() string {
	b := make([]byte, 18)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// samples are the records a dev vault starts with: one person's profile,
// transactions, health records, memberships and contracts, all invented.
//
//go:embed samples.json
var samplesJSON []byte

func loadSamples(ctx context.Context, v *vault.Vault) error {
	var samples map[string][]json.RawMessage
	if err := json.Unmarshal(samplesJSON, &samples); err != nil {
		return fmt.Errorf("samples.json: %w", err)
	}
	for _, coll := range []string{"profile", "transactions", "health", "memberships", "contracts"} {
		for _, rec := range samples[coll] {
			if _, err := v.CreateRecord(ctx, coll, rec); err != nil {
				return err
			}
		}
	}
	return nil
}
