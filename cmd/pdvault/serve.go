package main

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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

func (a *app) cmdServe(ctx context.Context, args []string) error {
	fs := a.flags("serve", "serve [--dir DIR | --dev] [--addr HOST:PORT]")
	dir := fs.String("dir", a.defaultDir(), "vault directory (env PDVAULT_DIR)")
	dev := fs.Bool("dev", false, "run a throwaway vault with sample records in a temporary directory, deleted on exit")
	addr := fs.String("addr", DefaultAddr, "address to listen on")
	pfile := fs.String("passphrase-file", "", "read the passphrase from this file (or env PDVAULT_PASSPHRASE)")
	issuer := fs.String("issuer", "", "public base URL of the vault, if clients reach it through a proxy (default: the listen URL)")
	allowLoopback := fs.Bool("allow-loopback-http", false, "let notices and domain checks reach loopback addresses over plain HTTP (local testing only; on with --dev)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text or json")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile (pprof) to this file until the server stops")
	rateAddr := fs.Float64("rate-limit-address", 300, "requests per second per client address (burst twice that); 0 for no limit")
	rateOrg := fs.Float64("rate-limit-org", 200, "requests per second per organization key (burst twice that); 0 for no limit")
	if err := a.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"serve takes no arguments", `run "pdvault serve -h" for its flags`}
	}
	log, err := newLogger(a.stderr, *logLevel, *logFormat)
	if err != nil {
		return err
	}
	tuneGC()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	opts := vault.Options{Logger: log, AllowLoopbackHTTP: *allowLoopback || *dev, RatePerOrg: noLimitIfZero(*rateOrg)}
	opts.Courier = api.NewCourier(opts.AllowLoopbackHTTP, outboundTimeout)

	var (
		v          *vault.Vault
		devPass    string
		cleanupDir string
	)
	if *dev {
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
		v, _, err = a.openVault(ctx, *dir, *pfile, opts)
	}
	if err != nil {
		if v != nil {
			v.Close()
		}
		return err
	}
	defer v.Close()

	hs, err := startHTTP(v, *addr, *issuer, log, noLimitIfZero(*rateAddr))
	if err != nil {
		return err
	}
	url := hs.url
	if *dev {
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
		fmt.Fprintf(a.stdout, "pdvault serving vault %s at %s\n", v.ID(), url)
		if !isLoopback(hs.addr) {
			log.Warn("listening beyond loopback without TLS; put a TLS-terminating proxy in front", "addr", hs.addr.String())
		}
	}
	if a.listening != nil {
		a.listening(url)
	}

	// Background work: notice delivery, re-encryption after a key rotation.
	bctx, stopBackground := context.WithCancel(ctx)
	var background sync.WaitGroup
	background.Go(func() { v.RunNotices(bctx, noticeTick) })
	background.Go(func() { v.RunReencryption(bctx) })
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

// httpServer is a running API server.
type httpServer struct {
	url  string
	addr net.Addr
	srv  *http.Server
	errc chan error
}

// startHTTP listens on addr and serves the vault's API. The vault's issuer
// becomes issuer, or the URL it listens on.
func startHTTP(v *vault.Vault, addr, issuer string, log *slog.Logger, ratePerAddress float64) (*httpServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, hint(fmt.Errorf("cannot listen on %s: %w", addr, err), "choose another address with --addr HOST:PORT")
	}
	hs := &httpServer{url: "http://" + ln.Addr().String(), addr: ln.Addr(), errc: make(chan error, 1)}
	if issuer == "" {
		issuer = hs.url
	}
	v.SetIssuer(strings.TrimRight(issuer, "/"))
	// The issuer's host, and the address it listens on (for local use by
	// address): no other Host is answered (DNS rebinding).
	hosts := []string{ln.Addr().String()}
	if h, p, err := net.SplitHostPort(ln.Addr().String()); err == nil && (h == "127.0.0.1" || h == "::1") {
		hosts = append(hosts, net.JoinHostPort("localhost", p))
	}
	hs.srv = api.NewServer(addr, api.New(v, api.Config{Logger: log, RatePerAddress: ratePerAddress, Hosts: hosts}), log)
	go func() { hs.errc <- hs.srv.Serve(ln) }()
	return hs, nil
}

// stop shuts down gracefully: no new connections, and in-flight requests
// get shutdownGrace to finish.
func (hs *httpServer) stop(log *slog.Logger) error {
	log.Info("shutting down", "grace", shutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
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
