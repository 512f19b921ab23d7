package main

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/pdvault/pdvault/api"
	"github.com/pdvault/pdvault/vault"
)

// DefaultAddr is where serve listens unless told otherwise: loopback only.
const DefaultAddr = "127.0.0.1:8700"

// shutdownGrace is how long in-flight requests get after Ctrl-C.
const shutdownGrace = 10 * time.Second

func (a *app) cmdServe(ctx context.Context, args []string) error {
	fs := a.flags("serve", "serve [--dir DIR | --dev] [--addr HOST:PORT]")
	dir := fs.String("dir", a.defaultDir(), "vault directory (env PDVAULT_DIR)")
	dev := fs.Bool("dev", false, "run a throwaway vault with sample records in a temporary directory, deleted on exit")
	addr := fs.String("addr", DefaultAddr, "address to listen on")
	pfile := fs.String("passphrase-file", "", "read the passphrase from this file (or env PDVAULT_PASSPHRASE)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text or json")
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
	opts := vault.Options{Logger: log}

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

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return hint(fmt.Errorf("cannot listen on %s: %w", *addr, err), "choose another address with --addr HOST:PORT")
	}
	url := "http://" + ln.Addr().String()
	srv := api.NewServer(*addr, api.New(v, api.Config{Logger: log}), log)

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
		if !isLoopback(ln.Addr()) {
			log.Warn("listening beyond loopback without TLS; put a TLS-terminating proxy in front", "addr", ln.Addr().String())
		}
	}
	if a.listening != nil {
		a.listening(url)
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", shutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown incomplete", "err", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	fmt.Fprintln(a.stdout, "pdvault stopped")
	return nil
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
