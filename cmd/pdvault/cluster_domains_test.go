package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/vault/host"
)

// A domain an owner brought, on several hosts (docs/operations.md,
// "Several hosts and brought domains"), with real DNS (challtestsrv),
// HAProxy and the S3 gateway: `pdvault host domains` gives the router the
// domain book from the shared storage; the router sends the domain where
// the vault's name goes, across a move; a host that does not serve the
// vault vouches for the domain's certificate; and an owner whose vault
// arrives sealed unlocks it at the domain, logged in there at once.
func TestBroughtDomainAcrossHosts(t *testing.T) {
	const mine = "data.alice.test"
	dns := startDNS(t)
	cl := startCluster(t, `    http-request set-var(txn.vault) req.hdr(host),field(1,:),lower,map(DOMAINS)
    http-request set-var(txn.vault) req.hdr(host),field(1,:),lower unless { var(txn.vault) -m found }
    use_backend %[var(txn.vault),map(VAULTS,host_a)]
`)
	cl.hostArgs = []string{"--custom-domains", "--dns-resolver", dns.addr}
	cl.start(cl.a)
	cl.start(cl.b)
	hc := dialOnly(cl.port, 30*time.Second)
	do := func(method, url, token, body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	home, at := fmt.Sprintf("http://alice.vaults.test:%d", cl.port), fmt.Sprintf("http://%s:%d", mine, cl.port)
	passphrase := `{"passphrase":"correct horse battery staple"}`

	// Alice signs up (on host A) and brings her domain.
	code, b := do("POST", fmt.Sprintf("http://vaults.test:%d/v1/host/vaults", cl.port), "", `{"name":"alice","passphrase":"correct horse battery staple"}`)
	var signup struct {
		Token string `json:"access_token"`
	}
	json.Unmarshal(b, &signup)
	if code != http.StatusCreated {
		t.Fatalf("sign-up: %d %s", code, b)
	}
	owner, _ := client.NewOwner(home, signup.Token, hc)
	if _, err := owner.CreateRecord(t.Context(), "notes", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	dns.setTXT(t, host.DomainLabel+mine, "vault=alice.vaults.test")
	dns.setTXT(t, host.DomainLabel+"evil.test", "vault=alice.vaults.test") // never chosen by alice
	if code, b := do("PUT", home+"/v1/owner/domain", signup.Token, `{"domain":"`+mine+`"}`); code != http.StatusOK {
		t.Fatalf("bring the domain: %d %s", code, b)
	}

	// The router learns the domain from the shared domain book.
	domains := func() string {
		t.Helper()
		cmd := exec.Command(cl.bin, "host", "domains", "--domain", "vaults.test", "--replica", cl.s3.URL("vaults"), "--dns-resolver", dns.addr)
		cmd.Env = append(os.Environ(), cl.s3.Env()...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("host domains: %v\n%s", err, out)
		}
		return string(out)
	}
	out := domains()
	if out != mine+" alice.vaults.test\n" {
		t.Fatalf("host domains printed %q", out)
	}
	cl.haproxy("add map DOMAINS " + strings.TrimSpace(out))

	// Alice moves to host B: the router's one change for her name moves
	// her domain too.
	cl.haproxy("set map VAULTS alice.vaults.test host_b")
	if out, err := exec.Command(cl.bin, "host", "release", "alice", "--root", cl.a.root).CombinedOutput(); err != nil {
		t.Fatalf("host release: %v\n%s", err, out)
	}
	var meta struct{ Issuer string }
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, b = do("GET", at+"/.well-known/oauth-authorization-server", "", "")
		if code == http.StatusOK || time.Now().After(deadline) {
			break
		}
	}
	json.Unmarshal(b, &meta)
	if code != http.StatusOK || meta.Issuer != at {
		t.Fatalf("discovery at the domain after the move: %d %s", code, b)
	}
	if got := holder(t, cl.s3, "alice"); got != "host-b" {
		t.Fatalf("lease holder after the move: %q", got)
	}

	// Host A, which no longer serves alice, vouches for her domain's
	// certificate from the shared book (and not for a domain she never
	// chose), without taking her vault back.
	ask := func(name string) int {
		t.Helper()
		res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/v1/host/certificate-allowed?domain=%s", cl.a.port, name))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if c := ask(mine); c != http.StatusOK {
		t.Fatalf("host A asked for %s: %d", mine, c)
	}
	if c := ask("evil.test"); c != http.StatusNotFound {
		t.Fatalf("host A asked for evil.test: %d", c)
	}
	if got := holder(t, cl.s3, "alice"); got != "host-b" {
		t.Fatalf("lease holder after host A vouched: %q", got)
	}

	// Host B restarts without the handover key: alice's vault comes back
	// sealed. At her domain she finds the unlock form (not a trip home),
	// unlocks there, and is logged in there.
	cl.b.cmd.Process.Signal(syscall.SIGTERM)
	cl.b.cmd.Wait()
	cl.start(cl.b, "--no-handover")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, b = do("GET", at+"/v1/data/notes", "", "")
		if strings.Contains(string(b), "vault_sealed") || time.Now().After(deadline) {
			break
		}
	}
	if code != http.StatusServiceUnavailable || !strings.Contains(string(b), "vault_sealed") {
		t.Fatalf("at the domain after B's restart: %d %s", code, b)
	}
	hcNoRedirect := *hc
	hcNoRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := hcNoRedirect.Get(at + "/ui/requests")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/ui/login" {
		t.Fatalf("a page at the sealed vault's domain: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if code, b := do("GET", at+"/ui/login", "", ""); code != http.StatusOK || !strings.Contains(string(b), `name="passphrase"`) {
		t.Fatalf("the unlock form at the domain: %d %.300s", code, b)
	}
	code, b = do("POST", at+"/v1/owner/session", "", passphrase)
	var sess struct{ Token string }
	json.Unmarshal(b, &sess)
	if code != http.StatusOK || sess.Token == "" {
		t.Fatalf("unlock at the domain: %d %s", code, b)
	}
	ownerAt, _ := client.NewOwner(at, sess.Token, hc)
	page, err := ownerAt.ListRecords(t.Context(), "notes", 10, "")
	if err != nil || len(page.Records) != 1 {
		t.Fatalf("alice's notes at her domain after unlocking there: %+v %v", page, err)
	}
}
