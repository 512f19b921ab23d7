package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/pdvault/pdvault/api/client"
)

// The end of a relationship, from the organization's side: receive the
// vault's notices, release a grant, send a deletion receipt, verify the
// domain, rotate the key.

// grantFile reads a grant file written by poll --out.
func grantFile(path string) (client.Token, error) {
	var t client.Token
	b, err := os.ReadFile(path)
	if err != nil {
		return t, err
	}
	if err := json.Unmarshal(b, &t); err != nil || t.AccessToken == "" {
		return t, fmt.Errorf("%s is not a grant file written by poll --out", path)
	}
	return t, nil
}

func (c *cli) release(ctx context.Context, args []string) error {
	return c.withGrant("release", args, func(o *client.Org, grant string) error {
		if err := o.Release(ctx, grant); err != nil {
			return err
		}
		fmt.Fprintln(c.stdout, "Released. Delete the data and send a receipt: pdvault-org receipt --key KEY --grant FILE --deleted COLLECTIONS")
		return nil
	})
}

func (c *cli) receipt(ctx context.Context, args []string) error {
	cm := c.flags("receipt")
	g := cm.fs.String("grant", "", "the grant file from poll --out (for its grant_id)")
	id := cm.fs.String("grant-id", "", "the grant id, instead of --grant")
	deleted := cm.fs.String("deleted", "", "comma-separated collections whose data you deleted (required)")
	statement := cm.fs.String("statement", "", "a sentence on how it was deleted")
	if _, err := cm.parse(args); err != nil {
		return err
	}
	if *id == "" && *g != "" {
		t, err := grantFile(*g)
		if err != nil {
			return err
		}
		*id = t.GrantID
	}
	if *id == "" || *deleted == "" {
		return usageError{"--grant (or --grant-id) and --deleted are required"}
	}
	o, err := cm.org(true)
	if err != nil {
		return err
	}
	res, err := o.SendReceipt(ctx, client.ReceiptClaims{GrantID: *id, Deleted: strings.Split(*deleted, ","), Statement: *statement})
	if err != nil {
		return err
	}
	return c.printJSON(res)
}

func (c *cli) verify(ctx context.Context, args []string) error {
	cm := c.flags("verify")
	check := cm.fs.Bool("check", false, "ask the vault to fetch the published challenge now")
	if _, err := cm.parse(args); err != nil {
		return err
	}
	o, err := cm.org(true)
	if err != nil {
		return err
	}
	if *check {
		d, err := o.CheckVerification(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "verified: %s\n", d)
		return nil
	}
	ch, err := o.StartVerification(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s\n", ch.Challenge)
	fmt.Fprintf(c.stderr, "Publish the line above at %s (within %s), then run: pdvault-org verify%s --check\n",
		ch.URL, time.Duration(ch.ExpiresIn)*time.Second, cm.again(c))
	return nil
}

func (c *cli) rotateKey(ctx context.Context, args []string) error {
	cm := c.flags("rotate-key")
	next := cm.fs.String("new", "", "the new key file (make it with keygen)")
	if _, err := cm.parse(args); err != nil {
		return err
	}
	if *next == "" {
		return usageError{"--new FILE is required"}
	}
	nk, err := client.LoadKey(*next)
	if err != nil {
		return err
	}
	o, err := cm.org(true)
	if err != nil {
		return err
	}
	if err := o.LinkKey(ctx, nk); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Linked %s to your relationship. Use --key %s from now on; grants already issued stay bound to the old key.\n", nk.Thumbprint(), *next)
	return nil
}

// listen serves the organization's side of the callbacks: notices from
// the vault at /notices (verified with the vault's JWKS, printed one JSON
// line each), and a domain challenge at /.well-known/pdvault-challenge.
func (c *cli) listen(ctx context.Context, args []string) error {
	cm := c.flags("listen")
	addr := cm.fs.String("addr", "127.0.0.1:8701", "address to listen on")
	challenge := cm.fs.String("challenge", "", "file whose content is served at /.well-known/pdvault-challenge")
	if _, err := cm.parse(args); err != nil {
		return err
	}
	o, err := cm.org(false)
	if err != nil {
		return err
	}
	var (
		mu   sync.Mutex
		jwks jose.JSONWebKeySet
	)
	verify := func(signed string) (*client.Notice, error) {
		mu.Lock()
		defer mu.Unlock()
		n, err := client.VerifyNotice(signed, jwks, strings.TrimRight(*cm.vault, "/"), o.Key().Thumbprint())
		if err != nil {
			// The vault may have rotated its key: fetch the set again once.
			if jwks, err = o.JWKS(ctx); err != nil {
				return nil, err
			}
			n, err = client.VerifyNotice(signed, jwks, strings.TrimRight(*cm.vault, "/"), o.Key().Thumbprint())
		}
		return n, err
	}
	var outMu sync.Mutex
	h := http.NewServeMux()
	h.HandleFunc("POST /notices", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		n, err := verify(strings.TrimSpace(string(b)))
		if err != nil {
			fmt.Fprintf(c.stderr, "pdvault-org: refused a notice that does not verify: %v\n", err)
			http.Error(w, "notice does not verify", http.StatusBadRequest)
			return
		}
		outMu.Lock()
		json.NewEncoder(c.stdout).Encode(n)
		outMu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	h.HandleFunc("GET /.well-known/pdvault-challenge", func(w http.ResponseWriter, r *http.Request) {
		if *challenge == "" {
			http.NotFound(w, r)
			return
		}
		b, err := os.ReadFile(*challenge)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write(b)
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	fmt.Fprintf(c.stderr, "pdvault-org: listening on http://%s (notices at /notices)\n", ln.Addr())
	if c.listening != nil {
		c.listening("http://" + ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
