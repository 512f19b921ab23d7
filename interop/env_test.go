package interop

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/pdvault/pdvault/api"
	"github.com/pdvault/pdvault/vault"
)

// env is a vault served over HTTPS on loopback (httptest's certificate,
// trusted by the clients the tests make), with one profile record.
type env struct {
	v   *vault.Vault
	srv *httptest.Server
}

func newEnv(t *testing.T) *env {
	t.Helper()
	v, err := vault.Create(t.Context(), filepath.Join(t.TempDir(), "v"), []byte("interop passphrase, long enough"), vault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	srv := httptest.NewTLSServer(api.New(v, api.Config{RatePerAddress: -1}))
	t.Cleanup(srv.Close)
	v.SetIssuer(srv.URL)
	if _, err := v.CreateRecord(t.Context(), "profile", []byte(`{"name":"Ada Lovelace","email":"ada@example.org","birth_date":"1815-12-10"}`)); err != nil {
		t.Fatal(err)
	}
	return &env{v: v, srv: srv}
}

// tlsClient trusts the test server's certificate and nothing else.
func (e *env) tlsConfig() *tls.Config {
	return e.srv.Client().Transport.(*http.Transport).TLSClientConfig
}

// approveWhenAsked plays the owner: it approves the request with this
// device code as soon as the vault has it (after delay).
func (e *env) approveWhenAsked(t *testing.T, deviceCode string, delay time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() {
		time.Sleep(delay)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := e.v.Approve(ctx, deviceCode, vault.Approval{})
		done <- err
	}()
	return done
}
